//! Converter benchmark (`cargo bench --bench convert`): time and peak heap for generated
//! events of 1,000, 10,000 and 100,000 attributes under the full profile, and throughput
//! in MB of MISP JSON per second over the fixture mix. Each measurement covers reading
//! the file (JSON parsing and checking) and the conversion.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Counts live heap bytes and their high-water mark.
struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn full_profile() -> ConvertOptions {
    ConvertOptions {
        create_indicators: true,
        create_observables: true,
        create_object_observables: true,
        author_from_tags: true,
        markings_from_tags: true,
        import_to_ids_no_score: Some(40),
        import_unsupported_observables_as_text: true,
        import_with_attachments: true,
        reference_compat: true,
        ..ConvertOptions::default()
    }
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    format!(
        "{}-{}-4{}-8{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 3),
        hex(rng, 12)
    )
}

fn word(rng: &mut StdRng) -> String {
    let len = rng.gen_range(4..12);
    (0..len)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}

/// One attribute shaped like the CIRCL OSINT feed's: a realistic type mix, MISP's usual
/// fields, a comment on some, a tag on a few.
fn attribute(rng: &mut StdRng, timestamp: i64) -> Value {
    let (kind, category, value) = match rng.gen_range(0..100) {
        0..=17 => (
            "ip-dst",
            "Network activity",
            format!(
                "{}.{}.{}.{}",
                rng.gen_range(1..224),
                rng.gen_range(0..256),
                rng.gen_range(0..256),
                rng.gen_range(1..255)
            ),
        ),
        18..=33 => (
            "domain",
            "Network activity",
            format!("{}.{}.com", word(rng), word(rng)),
        ),
        34..=45 => (
            "url",
            "Network activity",
            format!("http://{}.net/{}/{}.php", word(rng), word(rng), word(rng)),
        ),
        46..=57 => ("md5", "Payload delivery", hex(rng, 32)),
        58..=67 => ("sha256", "Payload delivery", hex(rng, 64)),
        68..=75 => (
            "filename|md5",
            "Payload delivery",
            format!("{}.exe|{}", word(rng), hex(rng, 32)),
        ),
        76..=81 => (
            "hostname",
            "Network activity",
            format!("{}.{}.org", word(rng), word(rng)),
        ),
        82..=87 => ("sha1", "Payload delivery", hex(rng, 40)),
        88..=92 => (
            "email-src",
            "Payload delivery",
            format!("{}@{}.com", word(rng), word(rng)),
        ),
        93..=96 => (
            "text",
            "Other",
            format!("{} {} {}", word(rng), word(rng), word(rng)),
        ),
        _ => (
            "link",
            "External analysis",
            format!("https://{}.example/{}", word(rng), word(rng)),
        ),
    };
    let comment = if rng.gen_bool(0.3) {
        format!("{} {}", word(rng), word(rng))
    } else {
        String::new()
    };
    let mut attribute = json!({
        "id": rng.gen_range(1..10_000_000).to_string(),
        "type": kind,
        "category": category,
        "to_ids": rng.gen_bool(0.7),
        "uuid": uuid(rng),
        "event_id": "1234",
        "distribution": "5",
        "timestamp": (timestamp - rng.gen_range(0..86_400)).to_string(),
        "comment": comment,
        "sharing_group_id": "0",
        "deleted": false,
        "disable_correlation": false,
        "object_id": "0",
        "object_relation": null,
        "first_seen": null,
        "last_seen": null,
        "value": value,
    });
    if rng.gen_bool(0.05) {
        attribute["Tag"] = json!([{"name": "tlp:green", "colour": "#33FF00"}]);
    }
    attribute
}

/// A seeded event: `attributes` attributes, a tenth of them grouped in MISP objects.
fn generated_event(attributes: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let timestamp = 1_600_000_000;
    let in_objects = attributes / 10;
    let plain: Vec<Value> = (0..attributes - in_objects)
        .map(|_| attribute(&mut rng, timestamp))
        .collect();
    let mut objects = Vec::new();
    let mut remaining = in_objects;
    while remaining > 0 {
        let size = remaining.min(rng.gen_range(2..6));
        remaining -= size;
        let object_uuid = uuid(&mut rng);
        let object_attributes: Vec<Value> =
            (0..size).map(|_| attribute(&mut rng, timestamp)).collect();
        objects.push(json!({
            "name": "file", "meta-category": "file", "description": "File object", "uuid": object_uuid,
            "template_uuid": "688c46fb-5edb-40a3-8273-1af7923e2215", "timestamp": timestamp.to_string(),
            "Attribute": object_attributes,
            "ObjectReference": [{"source_uuid": object_uuid, "referenced_uuid": uuid(&mut rng),
                "relationship_type": "related-to", "comment": ""}],
        }));
    }
    let event = json!({"Event": {
        "uuid": uuid(&mut rng), "info": format!("Generated event with {attributes} attributes"),
        "date": "2020-09-13", "timestamp": timestamp.to_string(), "threat_level_id": "2",
        "analysis": "2", "published": true, "Orgc": {"name": "CIRCL", "uuid": uuid(&mut rng)},
        "Tag": [{"name": "tlp:white"}, {"name": "type:OSINT"}, {"name": "misp-galaxy:threat-actor=\"APT 28\""},
                {"name": "misp-galaxy:mitre-malware=\"X-Agent - S0161\""}],
        "Attribute": plain, "Object": objects,
    }});
    serde_json::to_vec(&event).unwrap_or_default()
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (Linux; clock
/// ticks of 1/100 s). The machines this runs on are shared, so wall time alone understates
/// the per-core rate.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Parses and converts one file; returns the number of objects made.
fn convert_bytes(bytes: &[u8], options: &ConvertOptions) -> usize {
    let mut made = 0;
    match parse_event_file(bytes, "bench.json") {
        Ok(events) => {
            for event in &events {
                match convert_event(event, options, &ResolvedThreats::default()) {
                    Ok(bundle) => made += bundle.objects.len(),
                    Err(error) => eprintln!("{error}"),
                }
            }
        }
        Err(error) => eprintln!("{error}"),
    }
    made
}

fn main() {
    let options = full_profile();
    println!("| attributes | input MB | objects | time | peak heap (input included) |");
    println!("|---:|---:|---:|---:|---:|");
    for attributes in [1_000usize, 10_000, 100_000] {
        let bytes = generated_event(attributes, 42);
        // Best of a few runs for time; the peak is the same every run.
        let runs = if attributes >= 100_000 { 2 } else { 5 };
        let mut best = Duration::MAX;
        let mut objects = 0;
        let mut peak = 0;
        for _ in 0..runs {
            let baseline = LIVE.load(Ordering::Relaxed);
            PEAK.store(baseline, Ordering::Relaxed);
            let started = Instant::now();
            objects = std::hint::black_box(convert_bytes(&bytes, &options));
            best = best.min(started.elapsed());
            peak = PEAK.load(Ordering::Relaxed) - baseline + bytes.len();
        }
        println!(
            "| {attributes} | {:.1} | {objects} | {:.3} s | {:.0} MB |",
            bytes.len() as f64 / 1e6,
            best.as_secs_f64(),
            peak as f64 / 1e6
        );
    }

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/events");
    let mut fixtures: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    fixtures.sort();
    let mix_bytes: usize = fixtures.iter().map(Vec::len).sum();
    let started = Instant::now();
    let cpu_started = cpu_time();
    let mut passes = 0u32;
    while started.elapsed() < Duration::from_secs(3) || passes < 3 {
        for file in &fixtures {
            std::hint::black_box(convert_bytes(file, &options));
        }
        passes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time()
        .zip(cpu_started)
        .map(|(end, start)| end.saturating_sub(start).as_secs_f64());
    println!();
    println!(
        "fixture mix ({} files, {:.2} MB, full profile, one thread): {passes} passes in {elapsed:.2} s = {:.1} MB/s",
        fixtures.len(),
        mix_bytes as f64 / 1e6,
        mix_bytes as f64 * f64::from(passes) / elapsed / 1e6
    );
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        println!(
            "  per CPU-second (user + system time of this process: {cpu:.2} s): {:.1} MB/s",
            mix_bytes as f64 * f64::from(passes) / cpu / 1e6
        );
    }
}
