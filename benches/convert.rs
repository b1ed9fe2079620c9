//! Converter benchmark (`cargo bench --bench convert`): time and peak heap for generated
//! events of 1,000, 10,000 and 100,000 attributes under the full profile, and throughput
//! in MB of MISP JSON per second over the fixture mix. Each measurement covers reading
//! the file (JSON parsing and checking), the conversion and the bundle's text, as a push
//! needs it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[allow(dead_code)]
mod common;

use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use misp_feed::testsuite::generated_event;

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
