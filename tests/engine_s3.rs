//! The engine over S3 (an in-process S3-compatible server on 127.0.0.1): one bundle per
//! event, unchanged ETags skipped, non-destructive by default, and with
//! MISP_FEED_S3_DELETE_AFTER_IMPORT an object is deleted only once all its events are
//! confirmed by the sink.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::s3_server::S3Server;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use misp_feed::config::{Settings, SourceType};
use misp_feed::ledger::{EventStatus, Ledger};
use misp_feed::pipeline::Pipeline;
use misp_feed::sink::directory::DirectorySink;
use misp_feed::sink::{Delivery, Receipt, RunSummary, Sink, SinkError};

const BUCKET: &str = "misp";
const FEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/misp/feed");
const A: &str = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";
const B: &str = "57c4445b-c548-4654-af0b-4be3950d210f";
const C: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";

fn event_bytes(uuid: &str) -> Vec<u8> {
    std::fs::read(Path::new(FEED).join(format!("{uuid}.json"))).unwrap()
}

/// A sink that refuses one event while `failing` is set, and delegates the rest.
struct RefusingSink {
    inner: DirectorySink,
    refuse: String,
    failing: AtomicBool,
}

#[async_trait]
impl Sink for RefusingSink {
    fn name(&self) -> &'static str {
        "refusing"
    }
    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        if self.failing.load(Ordering::SeqCst) && delivery.event_uuid == self.refuse {
            return Err(SinkError::Broker("not confirmed (test)".into()));
        }
        self.inner.push(delivery).await
    }
    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError> {
        self.inner.finish_run(summary).await
    }
}

struct Setup {
    server: S3Server,
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    sink: Arc<RefusingSink>,
    ledger: Ledger,
}

async fn setup(delete_after_import: bool, refuse: &str) -> Setup {
    let server = S3Server::start().await;
    server
        .client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::S3;
    settings.misp_feed.bucket_name = Some(BUCKET.into());
    settings.misp_feed.bucket_prefix = Some("feeds/".into());
    settings.misp_feed.s3_delete_after_import = delete_after_import;
    settings.misp_feed.http_retries = 1;
    settings.misp_feed.retry_backoff = std::time::Duration::ZERO;
    settings.connector.send_to_directory = true;
    settings.connector.send_to_directory_path = Some(dir.path().join("bundles"));
    settings.connector.send_to_directory_retention_days = 0;
    settings.aws = server.aws_settings();
    let settings = Arc::new(settings);
    let source = misp_feed::source::build_source(&settings).await.unwrap();
    let sink = Arc::new(RefusingSink {
        inner: DirectorySink::new(&settings).unwrap(),
        refuse: refuse.to_string(),
        failing: AtomicBool::new(true),
    });
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    let pipeline = Pipeline::new(settings, Arc::from(source), sink.clone(), ledger.clone());
    Setup {
        server,
        _dir: dir,
        pipeline,
        sink,
        ledger,
    }
}

async fn put(server: &S3Server, key: &str, bytes: Vec<u8>) {
    server
        .client()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}

async fn keys(server: &S3Server) -> Vec<String> {
    let out = server
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

async fn status(ledger: &Ledger, uuid: &str) -> Option<EventStatus> {
    ledger.event(uuid.into()).await.unwrap().map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_deleted_only_after_all_their_events_are_confirmed() {
    let s = setup(true, B).await;
    put(&s.server, &format!("feeds/{A}.json"), event_bytes(A)).await;
    put(&s.server, &format!("feeds/{B}.json"), event_bytes(B)).await;
    put(&s.server, "feeds/manifest.json", b"{}".to_vec()).await;
    put(&s.server, "other/elsewhere.json", event_bytes(C)).await;

    let first = s.pipeline.run_once().await.unwrap();
    assert_eq!(first.pushed, 1);
    assert_eq!(first.failed, 1);
    assert_eq!(status(&s.ledger, A).await, Some(EventStatus::Pushed));
    assert_eq!(status(&s.ledger, B).await, Some(EventStatus::Failed));
    assert_eq!(
        status(&s.ledger, C).await,
        None,
        "object outside the prefix was read"
    );
    assert_eq!(
        keys(&s.server).await,
        vec![
            format!("feeds/{B}.json"),
            "feeds/manifest.json".to_string(),
            "other/elsewhere.json".to_string()
        ],
        "only the confirmed object may be deleted"
    );

    s.sink.failing.store(false, Ordering::SeqCst);
    let second = s.pipeline.run_once().await.unwrap();
    assert_eq!(second.pushed, 1);
    assert_eq!(second.failed, 0);
    assert_eq!(status(&s.ledger, B).await, Some(EventStatus::Pushed));
    assert_eq!(
        keys(&s.server).await,
        vec![
            "feeds/manifest.json".to_string(),
            "other/elsewhere.json".to_string()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_destructive_by_default_with_etag_skip_and_event_lists() {
    let s = setup(false, "none").await;
    s.sink.failing.store(false, Ordering::SeqCst);
    put(&s.server, &format!("feeds/{A}.json"), event_bytes(A)).await;
    // One object holding a list of two events, one wrapped and one bare.
    let b: serde_json::Value = serde_json::from_slice(&event_bytes(B)).unwrap();
    let c: serde_json::Value = serde_json::from_slice(&event_bytes(C)).unwrap();
    let list = serde_json::json!([b, c["Event"].clone()]);
    put(
        &s.server,
        "feeds/batch.json",
        serde_json::to_vec(&list).unwrap(),
    )
    .await;

    let first = s.pipeline.run_once().await.unwrap();
    assert_eq!((first.pushed, first.failed), (3, 0));
    for uuid in [A, B, C] {
        assert_eq!(
            status(&s.ledger, uuid).await,
            Some(EventStatus::Pushed),
            "{uuid}"
        );
    }
    assert_eq!(
        keys(&s.server).await.len(),
        2,
        "objects deleted without being asked"
    );

    let second = s.pipeline.run_once().await.unwrap();
    assert_eq!(
        (second.pushed, second.unchanged),
        (0, 2),
        "unchanged ETags re-read"
    );

    // A changed object is read again; only the event whose content changed is pushed.
    let mut changed = list.clone();
    changed[1]["info"] = serde_json::json!("changed info");
    put(
        &s.server,
        "feeds/batch.json",
        serde_json::to_vec(&changed).unwrap(),
    )
    .await;
    let third = s.pipeline.run_once().await.unwrap();
    assert_eq!(third.pushed, 1, "{third:?}");
    assert_eq!(third.unchanged, 2, "{third:?}");
    let history = s.ledger.history(C.into()).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|h| h.action == misp_feed::ledger::HistoryAction::Pushed)
            .count(),
        2
    );
}
