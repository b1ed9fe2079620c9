//! "The ledger is the truth", in S3 mode (an in-process S3 server that counts requests and
//! honours `If-Match` on deletes as AWS does): with OpenCTI a restart recognises its own
//! state on the platform, and a "reset state" from the UI still resets; an object is deleted
//! after import only while it still holds what was delivered; each event of an object
//! succeeds or fails on its own; an object that cannot be read is a failed record that
//! `status`, `events` and `verify` show, and that backs off and gives up as a manifest event.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use misp_feed::config::{Settings, SourceType};
use misp_feed::ledger::{EventStatus, Ledger, ObjectStatus};
use misp_feed::pipeline::Pipeline;
use misp_feed::sink::directory::DirectorySink;
use misp_feed::sink::{Delivery, Receipt, RunSummary, Sink, SinkError};

use crate::support::FIXTURE_FEED;
use crate::support::opencti::*;
use crate::support::s3_server::{self, S3Server};
use crate::support::workspace::{Workspace, terminate};

const BUCKET: &str = "misp";
const A: &str = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";
const B: &str = "57c4445b-c548-4654-af0b-4be3950d210f";
const C: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";
/// A fixture event of 70 KB, over a size limit of 32K.
const LARGE: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

fn event_bytes(uuid: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURE_FEED).join(format!("{uuid}.json"))).unwrap()
}

fn event_value(uuid: &str) -> Value {
    serde_json::from_slice(&event_bytes(uuid)).unwrap()
}

fn key_of(uuid: &str) -> String {
    format!("feed/{uuid}.json")
}

/// The S3 server with the bucket, on a runtime of its own so that it serves while the test
/// thread waits for the binary.
struct Bucket {
    rt: tokio::runtime::Runtime,
    s3: S3Server,
}

impl Bucket {
    fn start() -> Bucket {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let s3 = rt.block_on(async {
            let s3 = S3Server::start().await;
            s3.client()
                .create_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .unwrap();
            s3
        });
        Bucket { rt, s3 }
    }

    fn put(&self, key: &str, bytes: Vec<u8>) {
        self.rt.block_on(put(&self.s3, key, bytes));
    }

    /// Points a workspace at the bucket's `feed/` prefix.
    fn configure(&self, ws: &mut Workspace) {
        for (key, value) in [
            ("MISP_FEED_SOURCE_TYPE", "s3"),
            ("MISP_FEED_BUCKET_NAME", BUCKET),
            ("MISP_FEED_BUCKET_PREFIX", "feed/"),
            ("AWS_ENDPOINT_URL", self.s3.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY),
            ("AWS_REGION", s3_server::REGION),
        ] {
            ws.set(key, value);
        }
    }
}

async fn put(s3: &S3Server, key: &str, bytes: Vec<u8>) {
    s3.client()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}

async fn keys(s3: &S3Server) -> Vec<String> {
    let out = s3
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

async fn object_bytes(s3: &S3Server, key: &str) -> Vec<u8> {
    let out = s3
        .client()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// `once --json`, which must succeed; its report and its log.
fn once_ok(ws: &Workspace) -> (Value, String) {
    let (report, out) = ws.once();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "once failed: {report}\n{log}");
    (report, log)
}

/// `once --json` in which events failed: exit code 2.
fn once_with_failures(ws: &Workspace) -> Value {
    let (report, out) = ws.once();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn bundles(fake: &FakeOpenCti) -> usize {
    fake.platform.lock().unwrap().pushed_bundles.len()
}

fn connected_workspace(bucket: &Bucket, fake: &FakeOpenCti) -> Workspace {
    let mut ws = platform_workspace("unused", &fake.url, &unique_connector_id());
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");
    bucket.configure(&mut ws);
    ws
}

#[test]
fn with_opencti_a_restart_recognises_its_own_s3_state_and_a_ui_reset_still_resets() {
    let bucket = Bucket::start();
    for uuid in [A, B, C] {
        bucket.put(&key_of(uuid), event_bytes(uuid));
    }
    let fake = bucket.rt.block_on(FakeOpenCti::start(None));
    let ws = connected_workspace(&bucket, &fake);

    let (first, _) = once_ok(&ws);
    assert_eq!(first["pushed"], 3, "{first}");
    assert_eq!(bucket.s3.get_calls(), 3);
    // The state on the platform marks the run as ours, though S3 mode has no event timestamp.
    let stored: Value = serde_json::from_str(&fake.stored_state().unwrap()).unwrap();
    assert!(stored["last_run"].is_string(), "{stored}");

    for start in 2..=3 {
        let (report, log) = once_ok(&ws);
        assert_eq!(
            (report["pushed"].as_u64(), report["unchanged"].as_u64()),
            (Some(0), Some(3)),
            "start {start}: {report}\n{log}"
        );
        assert!(
            !log.contains("ledger reset to match"),
            "start {start}:\n{log}"
        );
        assert_eq!(bucket.s3.get_calls(), 3, "start {start} downloaded again");
        assert_eq!(bundles(&fake), 3, "start {start} pushed again");
    }

    fake.reset_state();
    let (after_reset, log) = once_ok(&ws);
    assert!(log.contains("ledger reset to match"), "{log}");
    assert_eq!(after_reset["pushed"], 3, "{after_reset}");
    assert_eq!(bucket.s3.get_calls(), 6);
    assert_eq!(bundles(&fake), 6);
    let (next, log) = once_ok(&ws);
    assert_eq!(
        next["pushed"], 0,
        "the UI reset was applied twice: {next}\n{log}"
    );
    assert_eq!(bucket.s3.get_calls(), 6);
}

#[test]
fn run_mode_over_an_empty_bucket_keeps_its_state_across_heartbeats_and_a_ui_reset_still_resets() {
    let bucket = Bucket::start();
    let fake = bucket.rt.block_on(FakeOpenCti::start(None));
    let mut ws = connected_workspace(&bucket, &fake);
    ws.set("CONNECTOR_DURATION_PERIOD", "PT1H");
    ws.set("MISP_FEED_HEARTBEAT_PERIOD", "0.2");
    let pings = || {
        fake.operation_names()
            .iter()
            .filter(|name| *name == "PingConnector")
            .count()
    };
    let mut child = ws.spawn_logged("run", &["run"]);

    // The first run (over nothing) ends, then heartbeats carry its state, beat after beat.
    let has_run = || fake.stored_state().is_some_and(|s| s.contains("last_run"));
    assert!(
        wait_until(Duration::from_secs(30), has_run),
        "no heartbeat carried the first run's state:\n{}",
        ws.log("run", "stderr")
    );
    let beats_then = pings();
    assert!(
        wait_until(Duration::from_secs(30), || pings() >= beats_then + 8),
        "the heartbeat stopped"
    );
    let log = ws.log("run", "stderr");
    assert!(
        !log.contains("remotely updated") && !log.contains("ledger reset to match"),
        "the connector's own state was taken for a reset:\n{log}"
    );

    // An object arrives and the operator presses "reset state": the reset runs at once.
    bucket.put(&key_of(A), event_bytes(A));
    fake.reset_state();
    assert!(
        wait_until(Duration::from_secs(30), || bundles(&fake) == 1),
        "the UI reset did not start a run:\n{}",
        ws.log("run", "stderr")
    );
    let status = terminate(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let log = ws.log("run", "stderr");
    assert_eq!(log.matches("ledger reset to match").count(), 1, "{log}");
}

/// A failing object of each kind, and one that is fine.
fn unreadable_objects(bucket: &Bucket) -> [(String, &'static str); 3] {
    bucket.put(&key_of(A), event_bytes(A));
    bucket.put("feed/not-json.json", b"this is not JSON".to_vec());
    bucket.put("feed/empty-list.json", b"[]".to_vec());
    bucket.put("feed/too-large.json", event_bytes(LARGE));
    [
        ("feed/not-json.json".to_string(), "invalid JSON"),
        ("feed/empty-list.json".to_string(), "empty list"),
        (
            "feed/too-large.json".to_string(),
            "over the limit of 32768 bytes",
        ),
    ]
}

#[test]
fn objects_that_cannot_be_read_are_failed_records_in_status_events_and_verify() {
    let bucket = Bucket::start();
    let failing = unreadable_objects(&bucket);
    let mut ws = Workspace::new("unused");
    bucket.configure(&mut ws);
    ws.set("MISP_FEED_MAX_FILE_SIZE", "32K");

    let report = once_with_failures(&ws);
    assert_eq!(
        (report["pushed"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(3))
    );

    let status = ws.run(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["events"]["failed"], 3, "{status}");

    let listed = ws.events_json(&["--status", "failed"]);
    let mut keys: Vec<&str> = listed.iter().map(|e| e["uuid"].as_str().unwrap()).collect();
    keys.sort();
    let mut expected: Vec<&str> = failing.iter().map(|(k, _)| k.as_str()).collect();
    expected.sort();
    assert_eq!(keys, expected);
    for (key, reason) in &failing {
        let error = ws.event_error(key).unwrap();
        assert!(
            error.contains(key.as_str()) && error.contains(reason),
            "{key}: {error}"
        );
    }

    let verify = ws.run(&["verify"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{text}");
    assert!(text.contains("3 failing"), "{text}");
    for (key, reason) in &failing {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("object {key} (failed)")))
            .unwrap_or_else(|| panic!("verify does not list {key}:\n{text}"));
        assert!(line.contains(reason), "{line}");
    }
    let verify_json = ws.run(&["verify", "--json"]);
    let verify_json: Value = serde_json::from_slice(&verify_json.stdout).unwrap();
    assert_eq!(
        verify_json["failing"].as_array().unwrap().len(),
        3,
        "{verify_json}"
    );
}

/// An object holding a list of A, B and C, where B's first attribute has a number for its
/// value.
fn list_with_a_malformed_event() -> Vec<u8> {
    let mut b = event_value(B);
    b["Event"]["Attribute"][0]["value"] = json!(5);
    serde_json::to_vec(&json!([event_value(A), b, event_value(C)])).unwrap()
}

#[test]
fn each_event_of_an_object_succeeds_or_fails_on_its_own() {
    let bucket = Bucket::start();
    bucket.put("feed/batch.json", list_with_a_malformed_event());
    let mut ws = Workspace::new("unused");
    bucket.configure(&mut ws);

    let report = once_with_failures(&ws);
    assert_eq!(
        (report["pushed"].as_u64(), report["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(ws.bundle_files().len(), 2);
    assert_eq!(ws.event_status(A).as_deref(), Some("pushed"));
    assert_eq!(ws.event_status(C).as_deref(), Some("pushed"));
    assert_eq!(ws.event_status(B).as_deref(), Some("failed"));
    let error = ws.event_error(B).unwrap();
    assert!(
        error.contains("feed/batch.json")
            && error.contains("[1].Event.Attribute[0].value: expected a string, got a number"),
        "{error}"
    );
    // The object itself is not a failed record: its events are.
    let failed = ws.events_json(&["--status", "failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["uuid"], B);
    assert_eq!(failed[0]["source_key"], "feed/batch.json");
}

#[test]
fn a_failing_object_backs_off_and_is_not_downloaded_again_until_its_retry_time() {
    let bucket = Bucket::start();
    bucket.put("feed/not-json.json", b"this is not JSON".to_vec());
    bucket.put("feed/batch.json", list_with_a_malformed_event());
    let mut ws = Workspace::new("unused");
    bucket.configure(&mut ws);
    ws.set("MISP_FEED_RETRY_BACKOFF", "3600");

    let first = once_with_failures(&ws);
    assert_eq!(first["failed"], 2, "{first}");
    assert_eq!(bucket.s3.get_calls(), 2);
    for _ in 0..2 {
        let (report, log) = once_ok(&ws);
        assert_eq!(report["skipped"], 2, "{report}\n{log}");
        assert_eq!(
            bucket.s3.get_calls(),
            2,
            "a backing-off object was downloaded again"
        );
    }
    for uuid in ["feed/not-json.json", B] {
        let event = ws
            .events_json(&[])
            .into_iter()
            .find(|e| e["uuid"] == uuid)
            .unwrap();
        assert_eq!(event["status"], "failed", "{event}");
        assert_eq!(event["attempts"], 1, "{event}");
        assert!(event["next_attempt_at"].is_string(), "{event}");
    }

    // Without a backoff (another connector's ledger) they are downloaded and tried again at
    // every run.
    let mut eager = Workspace::new("unused");
    bucket.configure(&mut eager);
    eager.set("MISP_FEED_RETRY_BACKOFF", "0");
    for run in 1..=2 {
        let report = once_with_failures(&eager);
        assert_eq!(report["failed"], 2, "{report}");
        assert_eq!(bucket.s3.get_calls(), 2 + 2 * run);
    }
}

#[test]
fn a_failing_object_gives_up_and_stays_given_up_across_runs_until_retry() {
    let bucket = Bucket::start();
    bucket.put("feed/not-json.json", b"this is not JSON".to_vec());
    bucket.put("feed/batch.json", list_with_a_malformed_event());
    let mut ws = Workspace::new("unused");
    bucket.configure(&mut ws);
    ws.set("MISP_FEED_MAX_ATTEMPTS", "1");

    let first = once_with_failures(&ws);
    assert_eq!(first["failed"], 2, "{first}");
    assert_eq!(bucket.s3.get_calls(), 2);
    let given_up = |ws: &Workspace| -> Vec<String> {
        let mut uuids: Vec<String> = ws
            .events_json(&["--status", "gave_up"])
            .iter()
            .map(|e| e["uuid"].as_str().unwrap().to_string())
            .collect();
        uuids.sort();
        uuids
    };
    let both = vec![B.to_string(), "feed/not-json.json".to_string()];
    assert_eq!(given_up(&ws), both);
    for _ in 0..2 {
        let (report, log) = once_ok(&ws);
        assert_eq!(report["skipped"], 2, "{report}\n{log}");
        assert_eq!(
            bucket.s3.get_calls(),
            2,
            "a given-up object was downloaded again"
        );
        assert_eq!(given_up(&ws), both);
    }
    let verify = String::from_utf8(ws.run(&["verify"]).stdout).unwrap();
    assert!(
        verify.contains("object feed/not-json.json (gave_up)")
            && verify.contains(&format!("event {B} (gave_up)")),
        "{verify}"
    );

    let retry = String::from_utf8(ws.run(&["retry"]).stdout).unwrap();
    assert_eq!(retry, "2 event(s) will be retried by the next run\n");
    let again = once_with_failures(&ws);
    assert_eq!(again["failed"], 2, "{again}");
    assert_eq!(
        bucket.s3.get_calls(),
        4,
        "retry did not make the objects go again"
    );
    assert_eq!(given_up(&ws), both);
}

/// A sink that, when it receives `uuid`'s event, overwrites `key` in the bucket (once), as
/// another writer would while the connector pushes; the rest goes to the bundle folder.
struct OverwritingSink {
    inner: DirectorySink,
    client: aws_sdk_s3::Client,
    uuid: String,
    key: String,
    bytes: Vec<u8>,
    done: AtomicBool,
}

#[async_trait]
impl Sink for OverwritingSink {
    fn name(&self) -> &'static str {
        "overwriting"
    }
    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        if delivery.event_uuid == self.uuid && !self.done.swap(true, Ordering::SeqCst) {
            self.client
                .put_object()
                .bucket(BUCKET)
                .key(&self.key)
                .body(ByteStream::from(self.bytes.clone()))
                .send()
                .await
                .unwrap();
        }
        self.inner.push(delivery).await
    }
    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError> {
        self.inner.finish_run(summary).await
    }
}

struct Engine {
    s3: S3Server,
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    ledger: Ledger,
}

/// A pipeline over the bucket's `feed/` prefix that deletes objects after import, pushing
/// through `sink` (given the bundle folder's settings).
async fn engine(s3: S3Server, sink: impl FnOnce(&Settings, &S3Server) -> Arc<dyn Sink>) -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    settings.misp_feed.bucket_name = Some(BUCKET.into());
    settings.misp_feed.bucket_prefix = Some("feed/".into());
    settings.misp_feed.s3_delete_after_import = true;
    settings.misp_feed.http_retries = 1;
    settings.misp_feed.retry_backoff = Duration::ZERO;
    settings.connector.send_to_directory = true;
    settings.connector.send_to_directory_path = Some(dir.path().join("bundles"));
    settings.connector.send_to_directory_retention_days = 0;
    settings.aws = s3.aws_settings();
    let sink = sink(&settings, &s3);
    let settings = Arc::new(settings);
    let source = misp_feed::source::build_source(&settings).await.unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    let pipeline = Pipeline::new(settings, Arc::from(source), sink, ledger.clone());
    Engine {
        s3,
        _dir: dir,
        pipeline,
        ledger,
    }
}

async fn s3_with_bucket() -> S3Server {
    let s3 = S3Server::start().await;
    s3.client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    s3
}

/// B with a changed title: another version of the same event.
fn b_changed() -> Vec<u8> {
    let mut b = event_value(B);
    b["Event"]["info"] = json!("Ransomware - Xorist, as amended");
    serde_json::to_vec(&b).unwrap()
}

async fn object_status(ledger: &Ledger, key: &str) -> Option<ObjectStatus> {
    ledger
        .s3_object(key.into())
        .await
        .unwrap()
        .map(|o| o.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_overwritten_after_its_download_is_not_deleted_and_an_untouched_one_is() {
    let s3 = s3_with_bucket().await;
    put(&s3, &key_of(A), event_bytes(A)).await;
    put(&s3, &key_of(B), event_bytes(B)).await;
    let e = engine(s3, |settings, s3| {
        Arc::new(OverwritingSink {
            inner: DirectorySink::new(settings).unwrap(),
            client: s3.client(),
            uuid: B.into(),
            key: key_of(B),
            bytes: b_changed(),
            done: AtomicBool::new(false),
        })
    })
    .await;

    let first = e.pipeline.run_once().await.unwrap();
    assert_eq!((first.pushed, first.failed), (2, 0), "{first:?}");
    assert_eq!(
        keys(&e.s3).await,
        vec![key_of(B)],
        "the untouched object must go, the overwritten one stay"
    );
    assert_eq!(object_bytes(&e.s3, &key_of(B)).await, b_changed());
    assert_eq!(
        object_status(&e.ledger, &key_of(A)).await,
        Some(ObjectStatus::Deleted)
    );
    assert_eq!(
        object_status(&e.ledger, &key_of(B)).await,
        Some(ObjectStatus::Done)
    );

    // The new version is imported by the next run, and then deleted.
    let second = e.pipeline.run_once().await.unwrap();
    assert_eq!(second.pushed, 1, "{second:?}");
    assert!(keys(&e.s3).await.is_empty());
    let pushes = e
        .ledger
        .history(B.into())
        .await
        .unwrap()
        .iter()
        .filter(|h| h.action == misp_feed::ledger::HistoryAction::Pushed)
        .count();
    assert_eq!(pushes, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_overwritten_between_the_check_and_the_delete_is_not_deleted() {
    let s3 = s3_with_bucket().await;
    put(&s3, &key_of(B), event_bytes(B)).await;
    let e = engine(s3, |settings, _| {
        Arc::new(DirectorySink::new(settings).unwrap())
    })
    .await;
    // Another writer gets in after the connector compared the ETag: only the conditional
    // delete (If-Match) can keep the new version.
    e.s3.overwrite_before_next_delete(BUCKET, &key_of(B), b_changed());

    let first = e.pipeline.run_once().await.unwrap();
    assert_eq!(first.pushed, 1, "{first:?}");
    assert_eq!((e.s3.head_calls(), e.s3.delete_calls()), (1, 1));
    assert_eq!(keys(&e.s3).await, vec![key_of(B)]);
    assert_eq!(object_bytes(&e.s3, &key_of(B)).await, b_changed());

    let second = e.pipeline.run_once().await.unwrap();
    assert_eq!(
        second.pushed, 1,
        "the new version was not imported: {second:?}"
    );
    assert!(keys(&e.s3).await.is_empty());
    assert_eq!(
        e.ledger.event(B.into()).await.unwrap().map(|r| r.status),
        Some(EventStatus::Pushed)
    );
}
