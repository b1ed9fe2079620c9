//! Outages during a long-running connector (`misp-feed run`, one run a second): the OpenCTI
//! API answering 502 and gateway timeouts, the S3 server going away, the feed server
//! dropping connections. For each: the process does not crash, the outage is reported in
//! the logs and the ledger (and, with OpenCTI, in the work's closing message), and once the
//! part is back every event is pushed without anyone stepping in.
//!
//! The retry backoff is scaled down (1 s, doubling) so recovery fits a test; the rules are
//! the production ones. Outages last a few seconds by default and longer with
//! `MISP_FEED_SOAK=1`. The RabbitMQ outage is in `reliability_broker_outage.rs` (it stops
//! the shared broker, so it runs alone in its binary).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::feed_server::{Fault, FeedServer};
use crate::support::opencti::{ApiOutage, FakeOpenCti, TOKEN, unique_connector_id};
use crate::support::s3_server;
use crate::support::soak_enabled;
use crate::support::workspace::{Workspace, small_synthetic_feed, terminate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The outage length: a few seconds by default, 20 s in the soak.
fn outage_length(default_secs: u64) -> Duration {
    Duration::from_secs(if soak_enabled() { 20 } else { default_secs })
}

/// The environment every outage test shares: runs every second, failed events retried after
/// 1 s (doubling), up to 10 attempts (so a 20 s outage is ridden out).
fn run_mode(ws: &mut Workspace) {
    for (key, value) in [
        ("CONNECTOR_DURATION_PERIOD", "PT1S"),
        ("MISP_FEED_RETRY_BACKOFF", "1"),
        ("MISP_FEED_MAX_ATTEMPTS", "10"),
        ("MISP_FEED_FETCH_CONCURRENCY", "4"),
    ] {
        ws.set(key, value);
    }
}

fn pushed(ws: &Workspace) -> usize {
    ws.status_counts().get("pushed").copied().unwrap_or(0)
}

fn wait_for_pushed(ws: &Workspace, at_least: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while pushed(ws) < at_least {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} events pushed after {limit:?}: {:?}",
            ws.status_counts()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `(action, detail)` of every failure the ledger's history recorded.
fn recorded_failures(ws: &Workspace) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        ws.ledger_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT action, COALESCE(detail, '') FROM event_history
             WHERE action IN ('failed', 'gave_up') ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `(status, message)` of every run that did not complete cleanly.
fn troubled_runs(ws: &Workspace) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        ws.ledger_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT status, COALESCE(message, '') FROM runs
             WHERE status IN ('failed', 'completed_with_errors') ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// True for a JSON log line at error or warning level (pycti's level names).
fn is_problem(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
        matches!(
            v["level"].as_str(),
            Some("ERROR" | "WARNING" | "WARN" | "error" | "warning" | "warn")
        )
    })
}

/// Error and warning log lines that mention `needle`.
fn logged(stderr: &str, needle: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(needle) && is_problem(l))
        .map(str::to_string)
        .collect()
}

/// The end of every outage test: everything pushed by itself within `limit` of the end of
/// the outage, the process still alive, nothing given up, a clean stop on SIGTERM.
fn assert_recovers(
    ws: &Workspace,
    child: &mut std::process::Child,
    events: usize,
    outage_ended: Instant,
    limit: Duration,
) -> Duration {
    let recovered = ws.wait_all_pushed(events, limit);
    let recovery = outage_ended.elapsed();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the connector exited during the outage\n{}",
        ws.log("run", "stderr")
    );
    assert!(
        recovered,
        "not every event pushed {limit:?} after the outage: {:?}\n{}",
        ws.status_counts(),
        ws.log("run", "stderr")
    );
    let counts = ws.status_counts();
    assert_eq!(counts.get("pushed").copied(), Some(events), "{counts:?}");
    let status = terminate(child, Duration::from_secs(20));
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    recovery
}

#[test]
fn opencti_api_502_and_gateway_timeouts_mid_run_then_recovery() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    let outage = outage_length(4);
    let events = 80;
    let feed_root = tempfile::tempdir().unwrap();
    small_synthetic_feed(feed_root.path(), events, 0x0a91_0502);
    let server = FeedServer::start(feed_root.path());
    // The first run lasts about the outage plus four seconds, so the outage starts and ends
    // inside it and its work is closed with the failures counted.
    let per_event = (outage + Duration::from_secs(4)) * 4 / events as u32;
    server.delay_events(per_event);
    let mut ws = Workspace::new(&server.url());
    run_mode(&mut ws);
    for (key, value) in [
        ("OPENCTI_URL", fake.url.as_str()),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id.as_str()),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        // stixBundlePush: every bundle goes through the failing API.
        ("CONNECTOR_QUEUE_PROTOCOL", "api"),
    ] {
        ws.set(key, value);
    }
    let mut child = ws.spawn_logged("run", &["run"]);
    wait_for_pushed(&ws, 8, Duration::from_secs(60));

    let started = Instant::now();
    fake.set_api_outage(Some(ApiOutage::BadGateway));
    std::thread::sleep(outage / 2);
    fake.set_api_outage(Some(ApiOutage::GatewayTimeout(Duration::from_millis(1500))));
    std::thread::sleep(outage / 2);
    fake.set_api_outage(None);
    let ended = Instant::now();
    let answered = fake.platform.lock().unwrap().outage_answers;
    assert!(answered > 0, "no request met the outage");

    let recovery = assert_recovers(&ws, &mut child, events, ended, Duration::from_secs(90));
    let stderr = ws.log("run", "stderr");
    assert!(
        !logged(&stderr, "HTTP 502").is_empty(),
        "the 502 answers are not in the logs: {:?}",
        stderr
            .lines()
            .filter(|l| l.contains("502"))
            .take(3)
            .collect::<Vec<_>>()
    );
    assert!(
        !logged(&stderr, "HTTP 504").is_empty(),
        "the gateway timeouts are not in the logs"
    );
    let failures = recorded_failures(&ws);
    assert!(
        failures
            .iter()
            .any(|(_, d)| d.contains("HTTP 502") || d.contains("HTTP 504")),
        "the ledger recorded no push failure: {failures:?}"
    );
    assert!(
        failures.iter().all(|(a, _)| a == "failed"),
        "an event was given up: {failures:?}"
    );
    let messages = fake.work_messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Connector run finished with errors")),
        "no work was closed with the failures: {messages:?}"
    );
    println!(
        "API outage: {:.1} s ({answered} requests answered 502/504), {} failed pushes recorded, \
         all {events} events pushed {:.1} s after it ended",
        (ended - started).as_secs_f64(),
        failures.len(),
        recovery.as_secs_f64()
    );
}

/// A TCP relay in front of a server that can be taken down (connections refused, open ones
/// cut) and brought back on the same port; every answer chunk is held `latency` so that runs
/// last long enough to be interrupted.
struct ToggleProxy {
    address: SocketAddr,
    target: SocketAddr,
    latency: Duration,
    accepting: Mutex<Option<tokio::task::JoinHandle<()>>>,
    handle: tokio::runtime::Handle,
}

impl ToggleProxy {
    fn start(handle: tokio::runtime::Handle, target: SocketAddr, latency: Duration) -> Arc<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = Arc::new(ToggleProxy {
            address: port,
            target,
            latency,
            accepting: Mutex::new(None),
            handle,
        });
        proxy.up();
        proxy
    }

    fn up(&self) {
        let socket = self
            .handle
            .block_on(async { tokio::net::TcpSocket::new_v4() })
            .unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.address).unwrap();
        let (target, latency) = (self.target, self.latency);
        let task = self.handle.spawn(async move {
            let listener = socket.listen(64).unwrap();
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                relays.spawn(relay(client, target, latency));
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }

    /// Aborting the accepting task drops the listener and its set of relays.
    fn down(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
            let _ = self.handle.block_on(task);
        }
    }
}

async fn relay(client: tokio::net::TcpStream, target: SocketAddr, latency: Duration) {
    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tokio::time::sleep(latency).await;
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[test]
fn s3_server_down_mid_run_then_back() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(s3_server::S3Server::start());
    let client = s3.client();
    let events = 60;
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), events, 0x0a91_0053);
    runtime.block_on(async {
        client.create_bucket().bucket("misp").send().await.unwrap();
        for uuid in &uuids {
            let bytes = std::fs::read(feed_root.path().join(format!("{uuid}.json"))).unwrap();
            client
                .put_object()
                .bucket("misp")
                .key(format!("feed/{uuid}.json"))
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        }
    });
    let target: SocketAddr = s3.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = ToggleProxy::start(runtime.handle().clone(), target, Duration::from_millis(60));

    let mut ws = Workspace::new("unused");
    run_mode(&mut ws);
    let endpoint = format!("http://{}", proxy.address);
    for (key, value) in [
        ("MISP_FEED_SOURCE_TYPE", "s3"),
        ("MISP_FEED_BUCKET_NAME", "misp"),
        ("MISP_FEED_BUCKET_PREFIX", "feed/"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY),
        ("AWS_REGION", s3_server::REGION),
    ] {
        ws.set(key, value);
    }
    let mut child = ws.spawn_logged("run", &["run"]);
    wait_for_pushed(&ws, 4, Duration::from_secs(60));
    let outage = outage_length(5);
    let started = Instant::now();
    proxy.down();
    let pushed_at_outage = pushed(&ws);
    std::thread::sleep(outage);
    proxy.up();
    let ended = Instant::now();
    assert!(
        pushed_at_outage < events,
        "the sync was over before the S3 server went down"
    );

    let recovery = assert_recovers(&ws, &mut child, events, ended, Duration::from_secs(90));
    let stderr = ws.log("run", "stderr");
    let failures = recorded_failures(&ws);
    let runs = troubled_runs(&ws);
    assert!(
        !failures.is_empty() || !runs.is_empty(),
        "neither an event nor a run recorded the outage"
    );
    assert!(
        failures.iter().all(|(a, _)| a == "failed"),
        "an event was given up: {failures:?}"
    );
    // Fetches and listings while the proxy is down meet a refused connection.
    assert!(
        !logged(&stderr, "Connection refused").is_empty(),
        "the S3 outage is not in the logs:\n{stderr}"
    );
    println!(
        "S3 outage: {:.1} s (at {pushed_at_outage}/{events} pushed), {} failed fetches and {} troubled runs recorded, \
         all pushed {:.1} s after it ended",
        (ended - started).as_secs_f64(),
        failures.len(),
        runs.len(),
        recovery.as_secs_f64()
    );
}

/// What the connector reports for a connection closed without an answer, and for a body
/// shorter than announced.
const DROPPED: &str = "connection closed before message completed";
const CUT_SHORT: &str = "body cut short";

/// The failed count of a run's closing message ("…, 3 failed").
fn failed_events(message: &str) -> usize {
    message
        .strip_suffix(" failed")
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

#[test]
fn feed_server_dropping_connections_mid_run_then_back() {
    let events = 60;
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), events, 0x0a91_0d50);
    let server = FeedServer::start(feed_root.path());
    server.delay_events(Duration::from_millis(100));
    let mut ws = Workspace::new(&server.url());
    run_mode(&mut ws);
    let mut child = ws.spawn_logged("run", &["run"]);
    wait_for_pushed(&ws, 8, Duration::from_secs(60));

    // Every request is accepted, then the connection is closed without an answer (half of
    // the event files) or with half the announced body (the others and the manifest).
    let outage = outage_length(5);
    let started = Instant::now();
    for (index, uuid) in uuids.iter().enumerate() {
        let fault = if index % 2 == 0 {
            Fault::Raw(Vec::new())
        } else {
            Fault::Truncate
        };
        server.fail_always(&format!("{uuid}.json"), fault);
    }
    server.fail_always("manifest.json", Fault::Raw(Vec::new()));
    let pushed_at_outage = pushed(&ws);
    std::thread::sleep(outage);
    server.clear_faults();
    let ended = Instant::now();
    assert!(
        pushed_at_outage < events,
        "the sync was over before the feed server failed"
    );

    let recovery = assert_recovers(&ws, &mut child, events, ended, Duration::from_secs(90));
    let stderr = ws.log("run", "stderr");
    let failures = recorded_failures(&ws);
    for needle in [DROPPED, CUT_SHORT] {
        assert!(
            failures.iter().any(|(_, d)| d.contains(needle)),
            "no failed fetch recorded with {needle:?}: {failures:?}"
        );
    }
    assert!(
        failures.iter().all(|(a, _)| a == "failed"),
        "an event was given up: {failures:?}"
    );
    let runs = troubled_runs(&ws);
    assert!(
        runs.iter().any(|(status, message)| {
            (status == "failed" && message.starts_with("cannot list the feed: manifest.json"))
                || failed_events(message) > 0
        }),
        "no run recorded the outage: {runs:?}"
    );
    for needle in [DROPPED, CUT_SHORT] {
        assert!(
            !logged(&stderr, needle).is_empty(),
            "{needle:?} is not in the logs:\n{stderr}"
        );
    }
    println!(
        "feed outage: {:.1} s of dropped/truncated answers (at {pushed_at_outage}/{events} pushed), \
         {} failed fetches and {} troubled runs recorded, all pushed {:.1} s after it ended",
        (ended - started).as_secs_f64(),
        failures.len(),
        runs.len(),
        recovery.as_secs_f64()
    );
}
