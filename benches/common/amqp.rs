//! The whole pipeline into RabbitMQ, measured: the release `misp-feed once` over a feed served
//! by a local HTTP server, registered with a fake OpenCTI (the GraphQL schema-validating fake of
//! the tests), publishing the split bundles into the real RabbitMQ on 127.0.0.1:5672 with
//! publisher confirms while a consumer drains the push queue as OpenCTI's workers would.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

use crate::common::{FULL_PROFILE, run_measured};
use crate::support::feed_server::FeedServer;
use crate::support::opencti::{FakeOpenCti, TOKEN, unique_connector_id};
use crate::support::rabbitmq::Broker;
use crate::support::workspace::Workspace;

/// What one connector run measured.
pub struct Measured {
    pub events: u64,
    pub feed_bytes: u64,
    pub wall: Duration,
    pub run_ms: u64,
    pub messages: u64,
    pub cpu: Duration,
    /// RabbitMQ's CPU time during the run, when readable.
    pub broker_cpu: Option<Duration>,
    pub peak_rss_kib: i64,
    /// Size of every message the consumer received.
    pub sizes: Vec<u32>,
}

/// Counts (and acks) what arrives on `queue`, as a worker would, and keeps each message's
/// size for the broker-ceiling run.
pub async fn consume(
    connection: lapin::Connection,
    queue: String,
    count: Arc<AtomicU64>,
    sizes: Arc<Mutex<Vec<u32>>>,
) {
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            &queue,
            "misp-feed-bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut since_ack = 0u32;
    while let Some(delivery) = consumer.next().await {
        let Ok(delivery) = delivery else { break };
        sizes
            .lock()
            .unwrap()
            .push(u32::try_from(delivery.data.len()).unwrap_or(u32::MAX));
        count.fetch_add(1, Ordering::Relaxed);
        since_ack += 1;
        if since_ack >= 200 {
            delivery
                .ack(BasicAckOptions { multiple: true })
                .await
                .unwrap();
            since_ack = 0;
        }
    }
}

/// CPU time (user + system) RabbitMQ's Erlang VM has used so far, when it runs on this
/// machine and `/proc` shows it.
pub fn broker_cpu() -> Option<Duration> {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if comm.trim() != "beam.smp" {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some(Duration::from_secs_f64((utime + stime) / ticks_per_second));
    }
    None
}

/// One `misp-feed once` over the feed `write_feed` writes into the served folder (it returns
/// the number of events and their bytes), with `env` on top of the full profile.
pub async fn run_connector(
    broker: &Broker,
    write_feed: impl FnOnce(&Path) -> (usize, u64),
    log_level: &str,
    env: &[(&str, &str)],
) -> Measured {
    // A platform of its own: the fake keeps the connector state a previous run sent.
    let fake = FakeOpenCti::start(None).await;
    let empty = tempfile::tempdir().unwrap();
    let server = FeedServer::start(empty.path());
    let (count, feed_bytes) = write_feed(&server.dir);
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let queue = format!("push_{connector_id}");
    let consumed = Arc::new(AtomicU64::new(0));
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let consumer = tokio::spawn(consume(
        broker.connection().await,
        queue.clone(),
        consumed.clone(),
        sizes.clone(),
    ));

    let mut ws = Workspace::new(&server.url());
    for (key, value) in FULL_PROFILE {
        ws.set(key, value);
    }
    for (key, value) in [
        ("OPENCTI_URL", fake.url.as_str()),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id.as_str()),
        ("CONNECTOR_QUEUE_PROTOCOL", "amqp"),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        ("CONNECTOR_LOG_LEVEL", log_level),
        ("MISP_FEED_READ_TIMEOUT", "60"),
        ("MISP_FEED_HTTP_RETRIES", "3"),
    ] {
        ws.set(key, value);
    }
    for (key, value) in env {
        ws.set(key, value);
    }
    let stderr_path = ws.root.path().join("connector.log");
    let command = ws.command(&["once", "--json"]);
    let stderr = std::process::Stdio::from(std::fs::File::create(&stderr_path).unwrap());

    let broker_cpu_before = broker_cpu();
    let run = tokio::task::spawn_blocking(move || run_measured(command, true, stderr))
        .await
        .unwrap();
    let broker_cpu_during = broker_cpu()
        .zip(broker_cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let (stdout, status) = (&run.stdout, run.status);
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "connector exited with status {status}\nstdout: {stdout}\nlog tail: {}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report on stdout: {stdout}"));
    assert_eq!(report["pushed"], json!(count), "report: {report}");
    assert_eq!(report["failed"], json!(0), "report: {report}");

    // Confirmed messages, as recorded in the ledger from the broker's acks.
    let ledger = rusqlite::Connection::open(ws.ledger_path()).unwrap();
    let (pushed, messages): (i64, i64) = ledger
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(messages), 0) FROM events WHERE status = 'pushed'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(pushed as usize, count);
    // The consumer sees every confirmed message (a message confirmed twice after a lost
    // confirm would arrive twice: at least, not exactly).
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed.load(Ordering::Relaxed) < messages as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.abort();
    let consumed = consumed.load(Ordering::Relaxed);
    let sizes = std::mem::take(&mut *sizes.lock().unwrap());
    assert!(
        consumed >= messages as u64,
        "the consumer saw {consumed} of {messages} confirmed messages"
    );
    delete_queue(broker, &queue).await;

    Measured {
        events: count as u64,
        feed_bytes,
        wall: run.wall,
        run_ms: report["duration_ms"].as_u64().unwrap_or(0),
        messages: messages as u64,
        cpu: run.cpu,
        broker_cpu: broker_cpu_during,
        peak_rss_kib: run.peak_rss_kib,
        sizes,
    }
}

pub async fn delete_queue(broker: &Broker, queue: &str) {
    let connection = broker.connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(queue, QueueDeleteOptions::default())
        .await
        .unwrap();
    connection.close(200, "ok").await.unwrap();
}
