//! Warninglist cost: loading a folder of lists, and checking a 100,000-attribute event (a mix
//! of the attribute types the lists apply to, some values on a list) against all of them:
//! `cargo bench --bench warninglists`. The lists are the real ones in
//! `tests/fixtures/warninglists`; set `MISP_FEED_BENCH_WARNINGLISTS` to a checkout of MISP's
//! `misp-warninglists` to measure the full set.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use misp_feed::warninglists::Warninglists;

const ATTRIBUTES: usize = 100_000;
const PASSES: usize = 5;

/// A small deterministic generator: the same event on every run.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut text = String::with_capacity(digits);
        while text.len() < digits {
            text.push_str(&format!("{:016x}", self.next()));
        }
        text.truncate(digits);
        text
    }

    fn ipv4(&mut self) -> String {
        let first = [10, 172, 192, 224, 8, 45, 91, 185, 203][self.below(9) as usize];
        format!(
            "{first}.{}.{}.{}",
            self.below(256),
            self.below(256),
            self.below(256)
        )
    }

    fn domain(&mut self) -> String {
        let names = [
            "bio.fm",
            "app.any.run",
            "example",
            "localhost",
            "shop-",
            "cdn",
            "mail",
        ];
        let tlds = ["com", "net", "org", "io", "ru", "test"];
        match self.below(10) {
            0 => format!("user{}.bio.fm", self.below(1000)),
            1 => "app.any.run".to_string(),
            _ => format!(
                "{}{}.{}",
                names[self.below(names.len() as u64) as usize],
                self.below(100_000),
                tlds[self.below(tlds.len() as u64) as usize]
            ),
        }
    }
}

fn event() -> Vec<(&'static str, String)> {
    let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
    (0..ATTRIBUTES)
        .map(|index| {
            let kind = [
                "ip-dst",
                "ip-src|port",
                "domain",
                "url",
                "md5",
                "sha256",
                "email-dst",
                "filename|md5",
                "domain|ip",
                "hostname",
                "text",
                "ip-src",
            ][index % 12];
            let value = match kind {
                "ip-dst" | "ip-src" => numbers.ipv4(),
                "ip-src|port" => format!("{}|{}", numbers.ipv4(), numbers.below(65535)),
                "domain" | "hostname" => numbers.domain(),
                "url" => format!("https://{}/path/{}", numbers.domain(), numbers.below(1000)),
                "md5" if numbers.below(20) == 0 => "d41d8cd98f00b204e9800998ecf8427e".to_string(),
                "md5" => numbers.hex(32),
                "sha256" => numbers.hex(64),
                "email-dst" if numbers.below(10) == 0 => "abuse@example.org".to_string(),
                "email-dst" => format!("person{}@example.org", numbers.below(100_000)),
                "filename|md5" => format!("sample{}.exe|{}", numbers.below(1000), numbers.hex(32)),
                "domain|ip" => format!("{}|{}", numbers.domain(), numbers.ipv4()),
                _ => format!("free text {}", numbers.below(1_000_000)),
            };
            (kind, value)
        })
        .collect()
}

fn main() {
    let folder = std::env::var_os("MISP_FEED_BENCH_WARNINGLISTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/warninglists"
            ))
        });
    let started = Instant::now();
    let lists = match Warninglists::load(&folder) {
        Ok(lists) => lists,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let load = started.elapsed();
    for warning in lists.warnings() {
        eprintln!("{warning}");
    }
    let entries: usize = lists.lists().iter().map(|list| list.entries).sum();
    println!(
        "load {} lists, {entries} entries ({}): {load:?}",
        lists.lists().len(),
        folder.display()
    );

    let event = event();
    let mut fastest = Duration::MAX;
    let mut hits = 0;
    for _ in 0..PASSES {
        let started = Instant::now();
        hits = event
            .iter()
            .filter(|(kind, value)| lists.check(kind, value).is_some())
            .count();
        fastest = fastest.min(started.elapsed());
    }
    println!(
        "check {ATTRIBUTES} attributes: {fastest:?} per event ({:.0} ns per attribute), {hits} on a list",
        fastest.as_nanos() as f64 / ATTRIBUTES as f64
    );
}
