//! Crash-consistency soak: the `misp-feed once` binary syncs a synthetic feed into a real
//! RabbitMQ (through the fake OpenCTI's registration) and is killed with SIGKILL at random
//! moments, then restarted, until a run completes. Afterwards every qualifying event reached
//! the push queue at least once, the ledger passes `PRAGMA integrity_check` and
//! `misp-feed verify`, and the events sent more than once are counted and bounded by what was
//! in flight at each kill.
//!
//! Size: 100 events and 6 kills by default; `MISP_FEED_SOAK=1` (set by `.ci/run`) makes it
//! 500 events and 20 kills. `SOAK_SEED` replays a run's kill times.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::feed_server::FeedServer;
use crate::support::opencti::{FakeOpenCti, TOKEN, unique_connector_id};
use crate::support::rabbitmq::{Broker, report_names};
use crate::support::soak_enabled;
use crate::support::workspace::{
    Lcg, Workspace, seed_from_env, small_synthetic_feed, synthetic_event_title,
};
use serde_json::{Value, json};

pub(crate) const FETCH_CONCURRENCY: usize = 4;

/// Kill moments are drawn in this window (ms) after each start.
pub(crate) const KILL_WINDOW_MS: std::ops::Range<u64> = 150..1_250;

/// The feed's delay per event that makes a sync of `events` events need about 1.5 times the
/// time expected before `kills` kills, so the kills land all along the sync rather than
/// after it.
pub(crate) fn soak_event_delay_ms(kills: usize, events: usize) -> u64 {
    let mean_kill_ms = (KILL_WINDOW_MS.start + KILL_WINDOW_MS.end) / 2;
    (kills as u64 * mean_kill_ms * 3 / 2) * FETCH_CONCURRENCY as u64 / events as u64
}

/// Starts `once` `runs` times and SIGKILLs each at a random moment in `window` (ms) unless it
/// has finished; returns (kills, runs that finished before their kill). Fails the test when
/// fewer than half the runs were killed mid-way: such a soak proves little.
pub(crate) fn kill_at_random_moments(
    ws: &Workspace,
    runs: usize,
    rng: &mut Lcg,
    window: std::ops::Range<u64>,
) -> (usize, usize) {
    let mut kills = 0usize;
    let mut completed_before_kill = 0usize;
    for attempt in 0..runs {
        let mut child = ws.spawn_logged(&format!("once-{attempt}"), &["once"]);
        std::thread::sleep(Duration::from_millis(rng.next_in(window.start, window.end)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no destructor, no flush, no goodbye
            kills += 1;
        } else {
            completed_before_kill += 1;
        }
        child.wait().unwrap();
    }
    if kills * 2 < runs {
        for attempt in 0..runs {
            let log = ws.log(&format!("once-{attempt}"), "stderr");
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            eprintln!("once-{attempt}: {tail:?}");
        }
    }
    assert!(
        kills * 2 >= runs,
        "only {kills} of {runs} runs were killed mid-way; the test proved little"
    );
    (kills, completed_before_kill)
}

/// Restarts `once` until a run completes with nothing failed (at most five times).
pub(crate) fn run_until_clean(ws: &Workspace) {
    for _ in 0..5 {
        let (report, out) = ws.once();
        if out.status.success() && report["failed"] == 0 {
            return;
        }
        eprintln!(
            "run after the kills not clean yet: {report}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("no clean run after the kills");
}

#[test]
fn sigkill_at_random_moments_into_rabbitmq_loses_nothing_and_bounds_repushes() {
    let name = "sigkill_at_random_moments_into_rabbitmq_loses_nothing_and_bounds_repushes";
    let Some(broker) = Broker::shared(name) else {
        return;
    };
    let (events, kills_wanted) = if soak_enabled() { (500, 20) } else { (100, 6) };
    let event_delay_ms = soak_event_delay_ms(kills_wanted, events);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    runtime.block_on(broker.declare_push_queue(&connector_id));

    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), events, 0x50a4_0001);
    let server = FeedServer::start(feed_root.path());
    server.delay_events(Duration::from_millis(event_delay_ms));
    let mut ws = Workspace::new(&server.url());
    for (key, value) in [
        ("OPENCTI_URL", fake.url.as_str()),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id.as_str()),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        ("CONNECTOR_QUEUE_PROTOCOL", "amqp"),
        (
            "MISP_FEED_FETCH_CONCURRENCY",
            &FETCH_CONCURRENCY.to_string(),
        ),
    ] {
        ws.set(key, value);
    }

    let seed = seed_from_env("SOAK_SEED");
    println!(
        "soak: {events} events, {kills_wanted} kills, feed delay {event_delay_ms} ms per event, seed {seed} (SOAK_SEED replays)"
    );
    let mut rng = Lcg(seed);
    let started = Instant::now();
    let (kills, completed_before_kill) =
        kill_at_random_moments(&ws, kills_wanted, &mut rng, KILL_WINDOW_MS);
    run_until_clean(&ws);
    let sync_time = started.elapsed();

    // The ledger: SQLite integrity, every event pushed, and its own consistency check.
    let conn = rusqlite::Connection::open(ws.ledger_path()).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);
    let records = ws.events_json(&[]);
    for uuid in &uuids {
        let record = records
            .iter()
            .find(|e| e["uuid"] == uuid.as_str())
            .unwrap_or_else(|| panic!("{uuid} missing from the ledger"));
        assert_eq!(record["status"], "pushed", "{uuid}: {record}");
    }
    let verify = ws.run(&["verify", "--json"]);
    assert!(
        verify.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let verify: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(verify["integrity"], "ok");
    assert_eq!(verify["pushed_events"], uuids.len());
    assert_eq!(verify["problems"], json!([]));

    // The queue: every event's report arrived at least once; count the extra sends.
    let bodies = runtime.block_on(broker.drain_push_queue_fast(&connector_id));
    let mut sends: HashMap<String, usize> = HashMap::new();
    let title_to_uuid: HashMap<String, &String> = uuids
        .iter()
        .map(|u| (synthetic_event_title(u), u))
        .collect();
    for body in &bodies {
        for name in report_names(body) {
            let uuid = title_to_uuid
                .get(&name)
                .unwrap_or_else(|| panic!("a report {name:?} that no feed event has"));
            *sends.entry((*uuid).clone()).or_insert(0) += 1;
        }
    }
    for uuid in &uuids {
        assert!(
            sends.get(uuid).copied().unwrap_or(0) >= 1,
            "{uuid} is pushed in the ledger but never reached the queue"
        );
    }
    assert_eq!(
        sends.len(),
        uuids.len(),
        "the queue holds reports of events that are not in the feed"
    );
    let repushed_events = sends.values().filter(|n| **n > 1).count();
    let extra_sends: usize = sends.values().map(|n| n - 1).sum();
    println!(
        "soak result: {kills} SIGKILLs ({completed_before_kill} runs finished before their kill), {events} events, \
         {} AMQP messages, {repushed_events} events re-pushed ({extra_sends} extra sends), \
         bound {} (fetch concurrency {FETCH_CONCURRENCY} x {kills} kills), sync with kills took {:.1} s",
        bodies.len(),
        kills * FETCH_CONCURRENCY,
        sync_time.as_secs_f64()
    );
    assert!(
        extra_sends <= kills * FETCH_CONCURRENCY,
        "{extra_sends} extra sends after {kills} kills: more than was in flight"
    );
    // Nothing was left half-recorded: no event is still queued or in flight.
    let counts = ws.status_counts();
    assert_eq!(
        counts.get("pushed").copied(),
        Some(uuids.len()),
        "{counts:?}"
    );
    drop(fake);
}
