//! Delta push benchmark: what an update of one large event costs the platform. The release
//! `misp-feed once` pushes a generated 10,000-attribute event (full conversion profile) into
//! the real RabbitMQ through the schema-validating fake OpenCTI of the tests; the event is
//! then updated as MISP updates it (one attribute's comment changed, one attribute added) and
//! pushed again. Reported: confirmed AMQP messages and wall time of the update's `once`, with
//! the delta push on and off (off: the whole bundle again, as the Python connector does), the
//! time the first push takes with and without recording the object hashes, and the ledger's
//! size per 1,000 objects that the hashes add.
//!
//! Run: `cargo bench --bench delta`. Environment: `MISP_FEED_BENCH_ATTRIBUTES` (default
//! 10000), `MISP_FEED_BENCH_RUNS` (repetitions, default 3; medians are printed). Needs
//! RabbitMQ on 127.0.0.1:5672 (guest/guest); without it the benchmark says so and exits.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::generated::OneEventFeed;
use support::opencti::{FakeOpenCti, platform_workspace, unique_connector_id};
use support::rabbitmq::Broker;
use support::workspace::Workspace;

/// One `once`: its wall time and the messages it left in the push queue.
async fn timed_once(ws: &Workspace, broker: &Broker, connector_id: &str) -> (Duration, usize) {
    let started = Instant::now();
    let (report, out) = ws.once();
    let wall = started.elapsed();
    assert!(
        out.status.success() && report["pushed"] == 1,
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let messages = broker.drain_push_queue_fast(connector_id).await.len();
    broker.declare_push_queue(connector_id).await;
    (wall, messages)
}

/// The ledger's size in bytes (its pages; the write-ahead log is checkpointed first), and
/// what the object hashes take of it: the size a copy loses once they are deleted and the
/// file vacuumed (the hashes are recorded with delta push on or off, so that turning it on
/// later starts from what the platform holds).
fn ledger_bytes(path: &Path) -> (u64, u64) {
    let size_of = |conn: &rusqlite::Connection| -> u64 {
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (pages * size) as u64
    };
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let whole = size_of(&conn);
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(path, copy.path()).unwrap();
    let conn = rusqlite::Connection::open(copy.path()).unwrap();
    conn.execute_batch("DELETE FROM pushed_object_sets; VACUUM;")
        .unwrap();
    (whole, whole.saturating_sub(size_of(&conn)))
}

struct Sample {
    first_wall: Duration,
    first_messages: usize,
    update_wall: Duration,
    update_messages: usize,
    ledger_bytes: (u64, u64),
}

/// A fresh connector pushes the event, then its update.
async fn sample(broker: &Broker, attributes: usize, delta: bool) -> Sample {
    // A platform of its own: the fake keeps one connector state, and a second connector
    // would adopt the first one's checkpoint and skip the event.
    let fake = FakeOpenCti::start(None).await;
    let mut feed = OneEventFeed::new(attributes, 11);
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let mut ws = platform_workspace(&feed.url(), &fake.url, &connector_id);
    ws.set("MISP_FEED_REFERENCE_COMPAT", "false");
    ws.set("MISP_FEED_DELTA_PUSH", if delta { "true" } else { "false" });
    ws.set("CONNECTOR_LOG_LEVEL", "warn");
    let (first_wall, first_messages) = timed_once(&ws, broker, &connector_id).await;
    let ledger_bytes = ledger_bytes(&ws.ledger_path());
    feed.update();
    let (update_wall, update_messages) = timed_once(&ws, broker, &connector_id).await;
    broker.drain_push_queue_fast(&connector_id).await;
    Sample {
        first_wall,
        first_messages,
        update_wall,
        update_messages,
        ledger_bytes,
    }
}

fn median<T: Copy + PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let Some(broker) = Broker::shared("delta benchmark") else {
        return;
    };
    let env_number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: {v:?}")))
            .unwrap_or(default)
    };
    let attributes = env_number("MISP_FEED_BENCH_ATTRIBUTES", 10_000);
    let runs = env_number("MISP_FEED_BENCH_RUNS", 3).max(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut on = Vec::new();
        let mut off = Vec::new();
        for _ in 0..runs {
            on.push(sample(&broker, attributes, true).await);
            off.push(sample(&broker, attributes, false).await);
        }
        let secs = |samples: &[Sample], pick: fn(&Sample) -> Duration| {
            median(samples.iter().map(|s| pick(s).as_secs_f64()).collect())
        };
        let objects = on[0].first_messages;
        println!(
            "delta benchmark: one generated event of {attributes} attributes ({objects} objects), \
             full profile, RabbitMQ with confirms, {runs} run(s), medians"
        );
        println!();
        println!("| push | delta push | confirmed messages | wall s |");
        println!("|---|---|---:|---:|");
        println!(
            "| first push | on | {} | {:.2} |",
            on[0].first_messages,
            secs(&on, |s| s.first_wall)
        );
        println!(
            "| first push | off | {} | {:.2} |",
            off[0].first_messages,
            secs(&off, |s| s.first_wall)
        );
        println!(
            "| update (1 changed, 1 added) | on | {} | {:.2} |",
            on[0].update_messages,
            secs(&on, |s| s.update_wall)
        );
        println!(
            "| update (1 changed, 1 added) | off | {} | {:.2} |",
            off[0].update_messages,
            secs(&off, |s| s.update_wall)
        );
        let whole = median(on.iter().map(|s| s.ledger_bytes.0).collect());
        let hashes = median(on.iter().map(|s| s.ledger_bytes.1).collect());
        println!();
        println!(
            "ledger after the first push: {whole} bytes, of which the object hashes {hashes}: \
             {:.1} KiB per 1,000 objects",
            hashes as f64 / 1024.0 / objects as f64 * 1000.0
        );
    });
}
