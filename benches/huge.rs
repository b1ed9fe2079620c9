//! Huge events, whole process (`cargo bench --bench huge`): the release binary on events of
//! the repo's generator (`misp_feed::testsuite::generated_event`, seed 42), full conversion
//! profile, each run measured as a whole by `wait4` (wall time, CPU time, peak resident
//! memory of the child):
//!
//! 1. `misp-feed once` on one 100,000-attribute event into the bundle folder: <= 1 GB peak and
//!    <= 10 s;
//! 2. the same event through RabbitMQ with publisher confirms (a fake OpenCTI, the real broker
//!    on 127.0.0.1:5672, a consumer draining the push queue): <= 1 GB peak;
//! 3. `misp-feed convert` of a 9,999-attribute event: <= 150 MB peak and <= 0.3 s.
//!
//! Each prints its runs, then one row per target, met or missed, with the load average it was
//! measured under (the machines these run on are shared). Environment:
//! - `MISP_FEED_BENCH_RUNS`: runs of each measurement (default 3 for `convert`, 1 for the
//!   others); the best wall time and the largest peak are held against the targets.
//! - `MISP_FEED_BENCH_ATTRIBUTES`: the huge event's attributes (default 100000).
//! - `MISP_FEED_BENCH_ONLY`: comma-separated of `folder`, `amqp`, `convert` (default all).
//! - `MISP_FEED_BENCH_WRITE_EVENT=DIR`: also write the `convert` measurement's event file into
//!   `DIR` (as `event-<attributes>.json`), to profile the same conversion by hand.
//!
//! Without RabbitMQ the AMQP measurement says so and is left out.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[allow(dead_code)]
mod common;

// Some of what a run measures is for the pipeline benchmark only.
#[path = "common/amqp.rs"]
#[allow(dead_code)]
mod amqp;

use std::path::Path;
use std::time::Duration;

use common::{
    ChildRun, FULL_PROFILE, load_average, mib, run_measured, runs, target_header, target_row,
};
use misp_feed::testsuite::generated_event;
use serde_json::{Value, json};
use support::rabbitmq::Broker;
use support::workspace::Workspace;

const SEED: u64 = 42;
const GB_MIB: f64 = 1024.0;

/// Writes a feed folder holding one generated event of `attributes` attributes; returns its
/// file's size.
fn write_generated_feed(dir: &Path, attributes: usize) -> u64 {
    let bytes = generated_event(attributes, SEED);
    let event: Value = serde_json::from_slice(&bytes).unwrap();
    let uuid = event["Event"]["uuid"].as_str().unwrap().to_string();
    std::fs::write(dir.join(format!("{uuid}.json")), &bytes).unwrap();
    let manifest =
        json!({uuid: {"timestamp": event["Event"]["timestamp"], "info": event["Event"]["info"]}});
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    bytes.len() as u64
}

/// One measured run, and the load average when it ended.
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_mib: f64,
    load: String,
}

impl Sample {
    fn of(run: &ChildRun) -> Sample {
        Sample {
            wall: run.wall,
            cpu: run.cpu,
            peak_mib: run.peak_mib(),
            load: load_average(),
        }
    }

    fn print(&self, what: &str) {
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.1} MiB | {} |",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.peak_mib,
            self.load
        );
    }
}

/// The fastest run and the largest peak of `samples`, with the load of the run that set each.
fn best_wall(samples: &[Sample]) -> &Sample {
    samples
        .iter()
        .min_by(|a, b| a.wall.cmp(&b.wall))
        .expect("at least one run")
}

fn largest_peak(samples: &[Sample]) -> &Sample {
    samples
        .iter()
        .max_by(|a, b| a.peak_mib.total_cmp(&b.peak_mib))
        .expect("at least one run")
}

/// 1. `once` into the bundle folder.
fn once_into_folder(attributes: usize) -> Vec<Sample> {
    let feed = tempfile::tempdir().unwrap();
    let feed_bytes = write_generated_feed(feed.path(), attributes);
    let mut samples = Vec::new();
    for _ in 0..runs(1) {
        let mut ws = Workspace::new(&feed.path().display().to_string());
        for (key, value) in FULL_PROFILE {
            ws.set(key, value);
        }
        ws.set("CONNECTOR_LOG_LEVEL", "warning");
        let command = ws.command(&["once", "--json"]);
        let run = run_measured(command, true, std::process::Stdio::inherit());
        assert!(run.succeeded(), "once failed: {}", run.stdout);
        let report: Value = run
            .stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| panic!("no JSON report: {}", run.stdout));
        assert_eq!(report["pushed"], 1, "{report}");
        let sample = Sample::of(&run);
        let bundle_bytes: u64 = ws
            .bundle_files()
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum();
        sample.print(&format!(
            "once, {attributes} attributes ({:.1} MB in, {:.1} MB bundle out), bundle folder",
            feed_bytes as f64 / 1e6,
            bundle_bytes as f64 / 1e6
        ));
        samples.push(sample);
    }
    samples
}

/// 2. `once` through RabbitMQ with confirms.
fn once_into_rabbitmq(attributes: usize) -> Option<Vec<Sample>> {
    let broker = Broker::shared("huge-event benchmark (AMQP)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..runs(1) {
        let measured = runtime.block_on(amqp::run_connector(
            &broker,
            |dir| (1, write_generated_feed(dir, attributes)),
            "warning",
            &[],
        ));
        let sample = Sample {
            wall: measured.wall,
            cpu: measured.cpu,
            peak_mib: mib(measured.peak_rss_kib),
            load: load_average(),
        };
        sample.print(&format!(
            "once, {attributes} attributes ({:.1} MB in), RabbitMQ with confirms ({} messages)",
            measured.feed_bytes as f64 / 1e6,
            measured.messages
        ));
        samples.push(sample);
    }
    Some(samples)
}

/// 3. `convert` of one event file, its bundle written to /dev/null.
fn convert(attributes: usize) -> Vec<Sample> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    let bytes = generated_event(attributes, SEED);
    std::fs::write(&file, &bytes).unwrap();
    if let Ok(keep) = std::env::var("MISP_FEED_BENCH_WRITE_EVENT") {
        let kept = Path::new(&keep).join(format!("event-{attributes}.json"));
        std::fs::write(&kept, &bytes).unwrap();
        println!("event written to {}", kept.display());
    }
    let mut samples = Vec::new();
    for _ in 0..runs(3) {
        let mut ws = Workspace::new("unused");
        ws.env.clear();
        for (key, value) in FULL_PROFILE {
            ws.set(key, value);
        }
        let command = ws.command(&["convert", &file.display().to_string()]);
        let run = run_measured(command, false, std::process::Stdio::inherit());
        assert!(run.succeeded(), "convert failed (status {})", run.status);
        let sample = Sample::of(&run);
        sample.print(&format!(
            "convert, {attributes} attributes ({:.1} MB in)",
            bytes.len() as f64 / 1e6
        ));
        samples.push(sample);
    }
    samples
}

fn main() {
    let attributes: usize = std::env::var("MISP_FEED_BENCH_ATTRIBUTES")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(100_000);
    let only = std::env::var("MISP_FEED_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    println!(
        "huge-event benchmark: release misp-feed, generated events (seed {SEED}), full profile; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| run | wall | CPU | peak RSS | load average (1, 5, 15 min) |");
    println!("|---|---:|---:|---:|---|");
    let folder = wanted("folder").then(|| once_into_folder(attributes));
    let rabbitmq = wanted("amqp")
        .then(|| once_into_rabbitmq(attributes))
        .flatten();
    let converted = wanted("convert").then(|| convert(9_999));

    println!();
    target_header();
    if let Some(samples) = &folder {
        let (peak, fastest) = (largest_peak(samples), best_wall(samples));
        target_row(
            &format!("once, {attributes} attributes, bundle folder: peak RSS"),
            &format!("{:.0} MiB", peak.peak_mib),
            "<= 1 GB",
            peak.peak_mib <= GB_MIB,
            &peak.load,
        );
        target_row(
            &format!("once, {attributes} attributes, bundle folder: wall"),
            &format!("{:.2} s", fastest.wall.as_secs_f64()),
            "<= 10 s",
            fastest.wall <= Duration::from_secs(10),
            &fastest.load,
        );
    }
    if let Some(samples) = &rabbitmq {
        let peak = largest_peak(samples);
        target_row(
            &format!("once, {attributes} attributes, RabbitMQ with confirms: peak RSS"),
            &format!("{:.0} MiB", peak.peak_mib),
            "<= 1 GB",
            peak.peak_mib <= GB_MIB,
            &peak.load,
        );
    }
    if let Some(samples) = &converted {
        let (peak, fastest) = (largest_peak(samples), best_wall(samples));
        target_row(
            "convert, 9999 attributes: peak RSS",
            &format!("{:.0} MiB", peak.peak_mib),
            "<= 150 MB",
            peak.peak_mib * 1_048_576.0 <= 150e6,
            &peak.load,
        );
        target_row(
            "convert, 9999 attributes: wall",
            &format!("{:.3} s", fastest.wall.as_secs_f64()),
            "<= 0.3 s",
            fastest.wall <= Duration::from_millis(300),
            &fastest.load,
        );
    }
}
