//! Whole-pipeline benchmark: the release `misp-feed once` reads a synthetic MISP feed from a
//! local HTTP server, converts every event with the full conversion profile, registers with
//! a fake OpenCTI (the GraphQL schema-validating fake of the tests) and publishes the split
//! bundles into the real RabbitMQ on 127.0.0.1:5672 with publisher confirms, while a consumer
//! drains the push queue as OpenCTI's workers would.
//!
//! Reported per feed size: wall time of the connector process, events/s, confirmed AMQP
//! messages/s, the process's CPU time (in all, and per confirmed message against the target
//! of 15 µs) and its peak resident memory (`ru_maxrss` of the child,
//! read with `wait4`). Running two feed sizes shows whether peak memory follows the feed or
//! the largest event; a run over a feed holding only the event with the most messages gives
//! that event's own peak for comparison.
//!
//! After each connector run, the broker's own ceiling for the same workload is measured: a
//! bare publisher in this process sends messages of exactly the sizes the connector sent
//! (persistent, confirms, the same window), with the same consumer draining. The connector's
//! rate is reported against it, along with RabbitMQ's CPU time during the run (read from
//! `/proc` when the broker runs on this machine): on a small machine the broker's per-message
//! work, not the connector's, sets the pace.
//!
//! Last, a floor for the connector's own CPU per message: messages of the same sizes published
//! by the connector's own publisher alone (`AmqpPublisher` on lapin: one connection, confirms,
//! its window) with no consumer running in this process, its CPU time read with `getrusage`.
//! Whatever the connector does besides publishing (fetching, converting, splitting, the
//! ledger) comes on top of it.
//!
//! Run: `cargo bench --bench pipeline`. Environment:
//! - `MISP_FEED_BENCH_EVENTS`: comma-separated feed sizes (default `2000,4000`); e.g. `200`
//!   for a quick run.
//! - `MISP_FEED_BENCH_LOG_LEVEL`: the connector's `CONNECTOR_LOG_LEVEL` (default `info`).
//! - `MISP_FEED_BENCH_WRITE_FEED=DIR`: write the synthetic feed of the first size into `DIR`
//!   and stop (to run another connector, the Python one, over the same feed).
//! - `MISP_FEED_BENCH_BROKER_VARIANTS=1`: after the runs, the broker ceiling again with the
//!   last run's messages over 1, 2 and 4 channels, and with transient messages.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest); without it the benchmark says so and exits.
//! Every run uses a fresh connector id, so its push queue is its own; the queue is deleted at
//! the end.

// The integration tests' harness; the benchmark uses a part of it.
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[allow(dead_code)]
mod common;

#[path = "common/amqp.rs"]
mod amqp;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqp::{broker_cpu, consume, delete_queue, run_connector};
use common::{mib, own_cpu, target_header, target_row};
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::PublisherConfirm;
use misp_feed::opencti::broker::PublishTarget;
use misp_feed::sink::opencti::amqp::{AmqpPublisher, RetryPolicy};
use serde_json::{Map, Value, json};
use support::FIXTURE_FEED;
use support::opencti::unique_connector_id;
use support::rabbitmq::{BROKER, Broker};

/// How often each fixture event appears in the synthetic feed, per 40 events: the small
/// events dominate, as in public feeds, and the big ones still come back regularly.
const WEIGHTS: [(&str, u32); 9] = [
    ("56bf399d-c46c-4fdb-a9cf-d9bb02de0b81", 10), // 1 KB, 3 objects
    ("5b646415-7b48-40d5-86b4-c0070acd0835", 10), // 2 KB, 18 objects
    ("57c4445b-c548-4654-af0b-4be3950d210f", 10), // 4 KB, 39 objects
    ("5c7cdc3b-2f40-4dca-8200-276c0a00020f", 2),  // 184 KB, 33 objects
    ("56e12e66-f01c-41be-afea-4d9a950d210f", 2),  // 172 KB, 64 objects
    ("5acc88e9-265c-4f22-9d2b-b702950d210f", 2),  // 168 KB, 110 objects
    ("5c066053-0e94-46eb-9746-4b7d950d210f", 2),  // 120 KB, 244 objects
    ("57153590-f73c-49fa-be4b-4737950d210f", 1),  // 138 KB, 775 objects
    ("5a3c2fcd-8328-42bb-a95e-4f4402de0b81", 1),  // 71 KB, 1747 objects
];

/// The fixture event that yields the most AMQP messages.
const LARGEST_EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

/// Fills `dir` with a feed of `count` events cloned from the fixtures under fresh uuids,
/// following `mix` (fixture uuid, weight) in a fixed interleaved order. Returns the feed's
/// total size in bytes.
fn write_feed(dir: &Path, count: usize, mix: &[(&str, u32)]) -> u64 {
    let fixture: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE_FEED).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<(String, String, Value)> = mix
        .iter()
        .map(|(uuid, _)| {
            let text =
                std::fs::read_to_string(Path::new(FIXTURE_FEED).join(format!("{uuid}.json")))
                    .unwrap();
            (uuid.to_string(), text, fixture[*uuid].clone())
        })
        .collect();
    // A weighted round: each fixture `weight` times, spread over the round.
    let mut round: Vec<usize> = Vec::new();
    let total_weight: u32 = mix.iter().map(|(_, w)| w).sum();
    for slot in 0..total_weight {
        let mut best = 0;
        let mut best_score = f64::MAX;
        for (index, (_, weight)) in mix.iter().enumerate() {
            let used = round.iter().filter(|&&i| i == index).count() as f64;
            if used >= f64::from(*weight) {
                continue;
            }
            let due = (used + 0.5) / f64::from(*weight) * f64::from(total_weight);
            let score = due - f64::from(slot);
            if score < best_score {
                best_score = score;
                best = index;
            }
        }
        round.push(best);
    }
    let mut manifest = Map::new();
    let mut bytes = 0u64;
    for i in 0..count {
        let (original, text, entry) = &texts[round[i % round.len()]];
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", 0xbe4c_0000u32, i);
        let text = text.replace(original.as_str(), &uuid);
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("{uuid}.json")), text).unwrap();
        let mut entry = entry.clone();
        entry["timestamp"] = json!((1_600_000_000 + i as i64).to_string());
        manifest.insert(uuid, entry);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    bytes
}

/// The broker's own ceiling for this workload: messages of exactly the sizes the connector
/// published, sent by a publisher that does nothing else (one connection, publisher
/// confirms, the connector's window of 1,024 unconfirmed messages, persistent, into a push
/// queue declared as OpenCTI declares it, with the same consumer draining it). No connector
/// can confirm faster than this on the same broker and machine.
async fn broker_ceiling(broker: &Broker, sizes: &[u32]) -> (Duration, u64) {
    broker_ceiling_with(broker, sizes, 1, 2).await
}

/// [`broker_ceiling`] with `channels` publishers (each on its own connection, sharing the
/// messages) and the given AMQP `delivery_mode` (2 persistent, as pycti; 1 transient).
async fn broker_ceiling_with(
    broker: &Broker,
    sizes: &[u32],
    channels: usize,
    delivery_mode: u8,
) -> (Duration, u64) {
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let queue = format!("push_{connector_id}");
    let consumed = Arc::new(AtomicU64::new(0));
    let consumer = tokio::spawn(consume(
        broker.connection().await,
        queue.clone(),
        consumed.clone(),
        Arc::new(Mutex::new(Vec::new())),
    ));
    let routing_key = format!("push_routing_{connector_id}");
    let shares: Vec<Vec<u32>> = (0..channels.max(1))
        .map(|share| {
            sizes
                .iter()
                .skip(share)
                .step_by(channels.max(1))
                .copied()
                .collect()
        })
        .collect();
    let mut connections = Vec::new();
    for _ in &shares {
        connections.push(broker.connection().await);
    }
    let started = Instant::now();
    let publishers: Vec<_> = shares
        .into_iter()
        .zip(connections)
        .map(|(share, connection)| {
            let routing_key = routing_key.clone();
            tokio::spawn(async move {
                let channel = connection.create_channel().await.unwrap();
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .unwrap();
                let largest = share.iter().copied().max().unwrap_or(0) as usize;
                let filler = vec![b'A'; largest];
                let mut unconfirmed = VecDeque::new();
                for &size in &share {
                    if unconfirmed.len() >= 1024 {
                        let confirm: PublisherConfirm = unconfirmed.pop_front().unwrap();
                        assert!(confirm.await.unwrap().is_ack());
                    }
                    let confirm = channel
                        .basic_publish(
                            "amqp.worker.exchange",
                            &routing_key,
                            BasicPublishOptions::default(),
                            &filler[..size as usize],
                            BasicProperties::default()
                                .with_delivery_mode(delivery_mode)
                                .with_content_encoding("utf-8".into()),
                        )
                        .await
                        .unwrap();
                    unconfirmed.push_back(confirm);
                }
                for confirm in unconfirmed {
                    assert!(confirm.await.unwrap().is_ack());
                }
                connection.close(200, "ok").await.unwrap();
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let elapsed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed.load(Ordering::Relaxed) < sizes.len() as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.abort();
    delete_queue(broker, &queue).await;
    (elapsed, sizes.len() as u64)
}

/// The CPU this process spends publishing `sizes` through the connector's own publisher
/// (`AmqpPublisher`: one connection, confirms, its default window), with nothing consuming
/// meanwhile (the queue is deleted afterwards): what publishing alone costs per confirmed
/// message, below everything else the connector does.
async fn publisher_floor(broker: &Broker, sizes: &[u32]) -> Duration {
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let queue = format!("push_{connector_id}");
    let publisher = AmqpPublisher::new(
        support::rabbitmq::endpoint(),
        PublishTarget {
            exchange: "amqp.worker.exchange".into(),
            routing_key: format!("push_routing_{connector_id}"),
        },
        RetryPolicy::default(),
    );
    let bodies: Vec<String> = sizes
        .iter()
        .map(|&size| "A".repeat(size as usize))
        .collect();
    let cpu_before = own_cpu();
    let confirmed = publisher.publish_all(&bodies).await.unwrap();
    let cpu = own_cpu().saturating_sub(cpu_before);
    assert_eq!(confirmed, bodies.len());
    publisher.close().await;
    delete_queue(broker, &queue).await;
    cpu
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let Some(broker) = Broker::shared("pipeline benchmark") else {
        return;
    };
    let sizes: Vec<usize> = std::env::var("MISP_FEED_BENCH_EVENTS")
        .unwrap_or_else(|_| "2000,4000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("MISP_FEED_BENCH_EVENTS: {s:?} is not a count"))
        })
        .collect();
    let log_level = std::env::var("MISP_FEED_BENCH_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    if let Ok(dir) = std::env::var("MISP_FEED_BENCH_WRITE_FEED") {
        // The same synthetic feed for another connector (the Python one): written, not run.
        let count = sizes.first().copied().unwrap_or(200);
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = write_feed(Path::new(&dir), count, &WEIGHTS);
        println!("wrote a feed of {count} events ({bytes} bytes) into {dir}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!(
            "pipeline benchmark: misp-feed once, full conversion profile, AMQP with confirms into \
             RabbitMQ {}, consumer draining concurrently; {} cores",
            BROKER,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let single = run_connector(
            &broker,
            |dir| (1, write_feed(dir, 1, &[(LARGEST_EVENT, 1)])),
            &log_level,
            &[],
        )
        .await;
        println!(
            "largest event alone ({LARGEST_EVENT}, {} messages): wall {:.2} s, CPU {:.3} s, peak RSS {:.1} MiB",
            single.messages,
            single.wall.as_secs_f64(),
            single.cpu.as_secs_f64(),
            mib(single.peak_rss_kib)
        );
        println!();
        println!(
            "| events | feed MiB | wall s | run s | events/s | confirmed msgs | mean msg KiB | msgs/s | connector CPU s | CPU µs/msg | broker CPU s | peak RSS MiB | broker ceiling msgs/s | of ceiling |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut per_message = Vec::new();
        let mut peaks = Vec::new();
        let mut last_sizes: Option<Vec<u32>> = None;
        for &count in &sizes {
            let m = run_connector(
                &broker,
                |dir| (count, write_feed(dir, count, &WEIGHTS)),
                &log_level,
                &[],
            )
            .await;
            let (ceiling_wall, ceiling_messages) = broker_ceiling(&broker, &m.sizes).await;
            let ceiling_rate = ceiling_messages as f64 / ceiling_wall.as_secs_f64();
            let wall = m.wall.as_secs_f64();
            let rate = m.messages as f64 / wall;
            let mean_kib = m.sizes.iter().map(|&s| u64::from(s)).sum::<u64>() as f64
                / m.sizes.len().max(1) as f64
                / 1024.0;
            let cpu_us_per_message = m.cpu.as_secs_f64() * 1e6 / m.messages.max(1) as f64;
            let floor = publisher_floor(&broker, &m.sizes).await;
            let floor_us_per_message = floor.as_secs_f64() * 1e6 / m.sizes.len().max(1) as f64;
            per_message.push((
                count,
                m.messages,
                cpu_us_per_message,
                floor_us_per_message,
                common::load_average(),
            ));
            println!(
                "| {} | {:.1} | {:.2} | {:.2} | {:.0} | {} | {:.1} | {:.0} | {:.2} | {:.1} | {} | {:.1} | {:.0} | {:.0}% |",
                m.events,
                m.feed_bytes as f64 / 1_048_576.0,
                wall,
                m.run_ms as f64 / 1000.0,
                m.events as f64 / wall,
                m.messages,
                mean_kib,
                rate,
                m.cpu.as_secs_f64(),
                cpu_us_per_message,
                m.broker_cpu
                    .map_or("-".to_owned(), |cpu| format!("{:.2}", cpu.as_secs_f64())),
                mib(m.peak_rss_kib),
                ceiling_rate,
                rate / ceiling_rate * 100.0,
            );
            peaks.push((count, m.peak_rss_kib));
            last_sizes = Some(m.sizes);
        }
        if std::env::var("MISP_FEED_BENCH_BROKER_VARIANTS").is_ok_and(|v| v == "1")
            && let Some(sizes) = &last_sizes
        {
            // What the broker alone can do with the last run's messages, published otherwise.
            println!();
            println!("| broker ceiling variant | messages | msgs/s | RabbitMQ CPU s |");
            println!("|---|---:|---:|---:|");
            for (label, channels, mode) in [
                ("1 channel, persistent (as the connector)", 1, 2),
                ("2 channels, persistent", 2, 2),
                ("4 channels, persistent", 4, 2),
                ("1 channel, transient (not pycti's wire)", 1, 1),
            ] {
                let before = broker_cpu();
                let (elapsed, count) = broker_ceiling_with(&broker, sizes, channels, mode).await;
                let cpu = broker_cpu()
                    .zip(before)
                    .map(|(after, before)| after.saturating_sub(before));
                println!(
                    "| {label} | {count} | {:.0} | {} |",
                    count as f64 / elapsed.as_secs_f64(),
                    cpu.map_or("-".to_owned(), |c| format!("{:.2}", c.as_secs_f64()))
                );
            }
        }
        if let (Some(first), Some(last)) = (peaks.first(), peaks.last())
            && peaks.len() > 1
        {
            println!();
            println!(
                "peak RSS {:.1} MiB at {} events, {:.1} MiB at {} events ({:+.1}%); largest event alone {:.1} MiB",
                mib(first.1),
                first.0,
                mib(last.1),
                last.0,
                (last.1 as f64 / first.1 as f64 - 1.0) * 100.0,
                mib(single.peak_rss_kib)
            );
        }
        println!();
        for (count, messages, _, floor_us, _) in &per_message {
            println!(
                "the connector's publisher alone, {messages} messages of the sizes of {count} events, \
                 nothing consuming: {floor_us:.1} µs CPU per confirmed message"
            );
        }
        println!();
        target_header();
        for (count, messages, cpu_us, _, load) in &per_message {
            target_row(
                &format!("connector CPU per confirmed message, {count} events ({messages} messages)"),
                &format!("{cpu_us:.1} µs"),
                "<= 15 µs",
                *cpu_us <= 15.0,
                load,
            );
        }
    });
}
