//! RabbitMQ stopped in the middle of a `misp-feed run` (`rabbitmqctl stop_app`, then
//! `start_app`): the process neither crashes nor loses an event, reports the outage in its
//! logs, and once the broker is back every event reaches the push queue by itself.
//!
//! 8 s of outage by default, 30 s with `MISP_FEED_SOAK=1`. It stops the shared broker, so
//! it holds the broker alone (no other test uses it meanwhile); the claim starts the broker
//! again whatever happens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::feed_server::FeedServer;
use crate::support::opencti::{FakeOpenCti, TOKEN, unique_connector_id};
use crate::support::rabbitmq::{BrokerAlone, report_names};
use crate::support::soak_enabled;
use crate::support::workspace::{
    Workspace, small_synthetic_feed, synthetic_event_title, terminate,
};

#[test]
fn rabbitmq_stopped_mid_run_then_started_loses_nothing() {
    let name = "rabbitmq_stopped_mid_run_then_started_loses_nothing";
    let Some(broker) = BrokerAlone::claim(name) else {
        return;
    };
    let outage = Duration::from_secs(if soak_enabled() { 30 } else { 8 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    runtime.block_on(broker.declare_push_queue(&connector_id));

    let events = 80;
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), events, 0x0a91_0a4b);
    let server = FeedServer::start(feed_root.path());
    server.delay_events(Duration::from_millis(100));
    let mut ws = Workspace::new(&server.url());
    for (key, value) in [
        ("OPENCTI_URL", fake.url.as_str()),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id.as_str()),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        ("CONNECTOR_QUEUE_PROTOCOL", "amqp"),
        ("CONNECTOR_DURATION_PERIOD", "PT1S"),
        ("MISP_FEED_RETRY_BACKOFF", "1"),
        ("MISP_FEED_MAX_ATTEMPTS", "10"),
    ] {
        ws.set(key, value);
    }

    let mut child = ws.spawn_logged("run", &["run"]);
    // Stop the broker once the sync is under way: messages are in the queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime
        .block_on(broker.queue_depth(&connector_id))
        .unwrap_or(0)
        < 10
    {
        assert!(Instant::now() < deadline, "the sync never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    assert!(broker.stop(), "cannot stop RabbitMQ");
    let pushed_at_outage = ws.status_counts().get("pushed").copied().unwrap_or(0);
    std::thread::sleep(outage.saturating_sub(started.elapsed()));
    assert!(broker.start(), "cannot start RabbitMQ again");
    let ended = Instant::now();
    assert!(
        pushed_at_outage < events,
        "the sync was over before the broker stopped"
    );

    let recovered = ws.wait_all_pushed(events, Duration::from_secs(180));
    let recovery = ended.elapsed();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the connector exited during the outage\n{}",
        ws.log("run", "stderr")
    );
    assert!(
        recovered,
        "not every event pushed after the broker came back: {:?}\n{}",
        ws.status_counts(),
        ws.log("run", "stderr")
    );
    let status = terminate(&mut child, Duration::from_secs(30));
    assert!(status.success(), "exit after SIGTERM: {status:?}");

    let stderr = ws.log("run", "stderr");
    let outage_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("RabbitMQ did not confirm every message")
                || l.contains("messages confirmed after")
        })
        .collect();
    assert!(
        !outage_lines.is_empty(),
        "the broker outage is not in the logs:\n{stderr}"
    );
    assert!(
        !stderr.contains("guest:guest"),
        "the broker password is in the logs"
    );
    let counts = ws.status_counts();
    assert_eq!(counts.get("pushed").copied(), Some(events), "{counts:?}");

    // Every event's report is in the queue (durable queue, persistent messages).
    let bodies = runtime.block_on(broker.drain_push_queue_fast(&connector_id));
    let titles: HashMap<String, &String> = uuids
        .iter()
        .map(|u| (synthetic_event_title(u), u))
        .collect();
    let mut sends: HashMap<&String, usize> = HashMap::new();
    for body in &bodies {
        for name in report_names(body) {
            let uuid = titles
                .get(&name)
                .unwrap_or_else(|| panic!("a report {name:?} that no feed event has"));
            *sends.entry(uuid).or_insert(0) += 1;
        }
    }
    for uuid in &uuids {
        assert!(
            sends.contains_key(uuid),
            "{uuid} is pushed in the ledger but not in the queue"
        );
    }
    let extra: usize = sends.values().map(|n| n - 1).sum();
    println!(
        "broker outage: {:.1} s (at {pushed_at_outage}/{events} pushed), {} outage log lines, \
         all {events} events pushed {:.1} s after start_app, {} messages in the queue, {extra} extra sends",
        (ended - started).as_secs_f64(),
        outage_lines.len(),
        recovery.as_secs_f64(),
        bodies.len()
    );
}
