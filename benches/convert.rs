//! Converter benchmark (`cargo bench --bench convert`): time and peak heap for generated
//! events of 1,000, 10,000 and 100,000 attributes under the full profile, and throughput
//! in MB of MISP JSON per second over the fixture mix. Each measurement covers reading
//! the file (JSON parsing and checking), the conversion and the bundle's text, as a push
//! needs it, with the allocator the binary ships (jemalloc). `MISP_FEED_BENCH_ONLY=mix`
//! runs the fixture mix alone (for a profiler).

use std::alloc::{GlobalAlloc, Layout};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use misp_feed::testsuite::generated_event;

/// The allocator the binary ships with (jemalloc), counting live heap bytes and their
/// high-water mark while [`COUNTING`] is set. The throughput runs leave it unset: two atomic
/// updates per allocation would be the benchmark's cost, not the converter's.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated less bytes freed since counting began (frees of older blocks take it
/// below the start, hence signed).
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static SHIPPED: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to jemalloc with the caller's layout.
        let ptr = unsafe { SHIPPED.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { SHIPPED.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by this allocator with `layout`; jemalloc grows it in
        // place when it can, as it does in the binary.
        let grown = unsafe { SHIPPED.realloc(ptr, layout, new_size) };
        if !grown.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        grown
    }
}

fn count(bytes: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn full_profile() -> ConvertOptions {
    ConvertOptions {
        reference_compat: true,
        ..misp_feed::testsuite::full_profile()
    }
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
                    Ok(bundle) => {
                        made += bundle.len();
                        std::hint::black_box(bundle.into_json());
                    }
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
    let sizes: &[usize] = if std::env::var("MISP_FEED_BENCH_ONLY").as_deref() == Ok("mix") {
        &[]
    } else {
        &[1_000, 10_000, 100_000]
    };
    for &attributes in sizes {
        let bytes = generated_event(attributes, 42);
        let runs = if attributes >= 100_000 { 2 } else { 5 };
        let mut best = Duration::MAX;
        let mut objects = 0;
        // One counted run for the peak, then uncounted runs for the time.
        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        std::hint::black_box(convert_bytes(&bytes, &options));
        COUNTING.store(false, Ordering::Relaxed);
        let peak = (PEAK.load(Ordering::Relaxed) - baseline).max(0) as usize + bytes.len();
        for _ in 0..runs {
            let started = Instant::now();
            objects = std::hint::black_box(convert_bytes(&bytes, &options));
            best = best.min(started.elapsed());
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
        let per_core = mix_bytes as f64 * f64::from(passes) / cpu / 1e6;
        println!(
            "  per CPU-second (user + system time of this process: {cpu:.2} s): {per_core:.1} MB/s"
        );
        println!();
        common::target_header();
        common::target_row(
            "conversion over the fixture mix, per CPU-second",
            &format!("{per_core:.1} MB/s"),
            ">= 150 MB/s per core",
            per_core >= 150.0,
            &common::load_average(),
        );
    }
}
