//! The ledger on a real SQLite file, through its handle: schema versions, the single-writer
//! lock, every status change and its history, and the operator's reset and retry.

use misp_feed::ledger::{
    Checkpoint, Destination, EventFilter, EventReset, EventStatus, FailureStage, HistoryAction,
    Ledger, LedgerError, PushedContent, QueuedEvent, Receipt, ResetOrigin, RetryPolicy, RunId,
    RunStatus,
};
use misp_feed::source::ManifestEntry;

const A: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";
const B: &str = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";

fn queued(uuid: &str, ts: i64) -> QueuedEvent {
    QueuedEvent {
        uuid: uuid.into(),
        source_key: uuid.into(),
        manifest_timestamp: Some(ts),
        info: Some("an event".into()),
        reason: "new event".into(),
    }
}

fn content(content: &str, bundle: &str) -> PushedContent {
    PushedContent {
        content_sha256: content.into(),
        bundle_sha256: bundle.into(),
    }
}

fn receipt(destination: Destination, messages: u64) -> Receipt {
    Receipt {
        destination,
        messages,
    }
}

async fn fresh() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite"))
        .await
        .unwrap();
    (dir, ledger)
}

/// Queues, sends and confirms `uuid` in `run`.
async fn push(ledger: &Ledger, run: RunId, uuid: &str, ts: i64, destination: Destination) {
    ledger
        .queue_events(run, vec![queued(uuid, ts)])
        .await
        .unwrap();
    ledger
        .mark_in_flight(run, uuid.into(), content("c", "b"))
        .await
        .unwrap();
    ledger
        .mark_pushed(run, uuid.into(), receipt(destination, 1), None)
        .await
        .unwrap();
}

async fn status_of(ledger: &Ledger, uuid: &str) -> Option<EventStatus> {
    ledger.event(uuid.into()).await.unwrap().map(|r| r.status)
}

#[tokio::test]
async fn a_new_ledger_records_its_schema_version_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(Ledger::open(&path).await.unwrap());
    drop(Ledger::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        vec![misp_feed::ledger::schema_version()],
        "a new ledger is created at the current schema"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_ledger_from_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(Ledger::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    match Ledger::open(&path).await {
        Err(LedgerError::TooNew { found, known, .. }) => {
            assert_eq!(found, 99);
            assert_eq!(known, misp_feed::ledger::schema_version());
        }
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        Ledger::open_read_only(&path).await,
        Err(LedgerError::TooNew { .. })
    ));
}

#[tokio::test]
async fn a_second_writer_is_refused_however_the_path_is_spelled_while_readers_are_welcome() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let first = Ledger::open(&path).await.unwrap();
    let link = dir.path().join("through-a-link.sqlite");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let dotted = dir.path().join(".").join("ledger.sqlite");
    for other in [&path, &link, &dotted] {
        let err = Ledger::open(other)
            .await
            .err()
            .expect("a second writer must be refused");
        assert!(matches!(err, LedgerError::Locked { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("in use by another misp-feed process")
        );
    }
    let reader = Ledger::open_read_only(&link).await.unwrap();
    assert_eq!(reader.integrity_check().await.unwrap(), "ok");
    drop(first);
    Ledger::open(&link)
        .await
        .expect("lock released with the first writer");
}

#[tokio::test]
async fn ledger_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _ledger) = fresh().await;
    let mode = std::fs::metadata(dir.path().join("ledger.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o} lets others read the ledger");
}

#[tokio::test]
async fn an_event_goes_pending_in_flight_pushed_with_its_history() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    ledger
        .queue_events(run, vec![queued(A, 100)])
        .await
        .unwrap();
    assert_eq!(status_of(&ledger, A).await, Some(EventStatus::Pending));
    ledger
        .mark_in_flight(run, A.into(), content("c0ffee", "b0a7"))
        .await
        .unwrap();
    let rec = ledger.event(A.into()).await.unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::InFlight);
    assert_eq!(rec.attempts, 1);
    let work = Destination::Work("work--1".into());
    ledger
        .mark_pushed(run, A.into(), receipt(work.clone(), 12), None)
        .await
        .unwrap();
    let rec = ledger.event(A.into()).await.unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::Pushed);
    assert_eq!(rec.destination, Some(work.clone()));
    assert_eq!(rec.messages, Some(12));
    assert_eq!(rec.content_sha256.as_deref(), Some("c0ffee"));
    assert!(rec.pushed_at.is_some());
    let history = ledger.history(A.into()).await.unwrap();
    let actions: Vec<HistoryAction> = history.iter().map(|h| h.action).collect();
    assert_eq!(
        actions,
        vec![
            HistoryAction::Queued,
            HistoryAction::InFlight,
            HistoryAction::Pushed
        ]
    );
    assert_eq!(history[2].destination, Some(work));
}

#[tokio::test]
async fn a_file_destination_reads_back_as_a_file_even_when_its_name_looks_like_a_work() {
    let (dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    // No `.json` suffix: only the recorded kind says it is a file.
    let file = dir.path().join("bundle-without-suffix");
    push(&ledger, run, A, 1, Destination::File(file.clone())).await;
    let rec = ledger.event(A.into()).await.unwrap().unwrap();
    assert_eq!(rec.destination, Some(Destination::File(file)));
}

#[tokio::test]
async fn failures_back_off_then_give_up_and_retry_revives_them() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    ledger
        .queue_events(run, vec![queued(A, 100)])
        .await
        .unwrap();
    let fail =
        |stage, why: &str| ledger.mark_failed(run, A.into(), stage, why.into(), policy.clone());
    assert_eq!(
        fail(FailureStage::Fetch, "HTTP 500").await.unwrap(),
        EventStatus::Failed
    );
    let rec = ledger.event(A.into()).await.unwrap().unwrap();
    assert_eq!(rec.attempts, 1);
    assert!(rec.next_attempt_at.is_some());
    assert_eq!(rec.last_error.as_deref(), Some("fetch: HTTP 500"));
    assert!(!rec.retry_due(chrono::Utc::now()));
    // A push failure counts the attempt made by mark_in_flight, not one more.
    ledger
        .mark_in_flight(run, A.into(), content("c", "b"))
        .await
        .unwrap();
    assert_eq!(
        fail(FailureStage::Push, "broker down").await.unwrap(),
        EventStatus::Failed
    );
    assert_eq!(ledger.event(A.into()).await.unwrap().unwrap().attempts, 2);
    assert_eq!(
        fail(FailureStage::Convert, "bad").await.unwrap(),
        EventStatus::GaveUp
    );
    assert_eq!(ledger.retry(Some(B.into())).await.unwrap(), 0);
    assert_eq!(ledger.retry(None).await.unwrap(), 1);
    let rec = ledger.event(A.into()).await.unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::Pending);
    assert_eq!(rec.attempts, 0);
    let history = ledger.history(A.into()).await.unwrap();
    assert_eq!(history.last().map(|h| h.action), Some(HistoryAction::Retry));
}

#[tokio::test]
async fn a_refused_manifest_entry_is_recorded_once_per_reason() {
    let (_dir, ledger) = fresh().await;
    for _ in 0..3 {
        let run = ledger.begin_run("test".into()).await.unwrap();
        ledger
            .record_refused_entry(run, "../etc/passwd".into(), "not a uuid".into())
            .await
            .unwrap();
    }
    let rec = ledger.event("../etc/passwd".into()).await.unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::GaveUp);
    assert_eq!(rec.last_error.as_deref(), Some("parse: not a uuid"));
    assert_eq!(
        ledger.history("../etc/passwd".into()).await.unwrap().len(),
        1
    );
    let run = ledger.begin_run("test".into()).await.unwrap();
    ledger
        .record_refused_entry(run, "../etc/passwd".into(), "another reason".into())
        .await
        .unwrap();
    assert_eq!(
        ledger.history("../etc/passwd".into()).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn the_recorded_manifest_is_the_last_one_listed() {
    let (_dir, ledger) = fresh().await;
    let entry = |uuid: &str, timestamp| ManifestEntry {
        uuid: uuid.into(),
        facts: Default::default(),
        key: uuid.into(),
        timestamp,
        info: None,
        date: None,
    };
    let first = ledger.begin_run("test".into()).await.unwrap();
    ledger
        .record_manifest(first, vec![entry(A, 100), entry(B, 200)])
        .await
        .unwrap();
    let second = ledger.begin_run("test".into()).await.unwrap();
    ledger
        .record_manifest(second, vec![entry(B, 300)])
        .await
        .unwrap();
    let recorded: Vec<(String, i64)> = ledger
        .manifest_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.uuid, e.timestamp))
        .collect();
    assert_eq!(
        recorded,
        vec![(B.to_string(), 300)],
        "A is no longer listed"
    );
}

#[tokio::test]
async fn reset_all_forgets_state_but_keeps_the_audit_trail() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    let entry = ManifestEntry {
        uuid: A.into(),
        facts: Default::default(),
        key: A.into(),
        timestamp: 100,
        info: None,
        date: None,
    };
    ledger.record_manifest(run, vec![entry]).await.unwrap();
    push(&ledger, run, A, 100, Destination::Work("w".into())).await;
    ledger
        .store_checkpoint(Checkpoint {
            last_event_timestamp: Some(100),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ledger
            .reset_all("test".into(), ResetOrigin::Operator)
            .await
            .unwrap(),
        1
    );
    assert!(ledger.event(A.into()).await.unwrap().is_none());
    assert!(ledger.manifest_entries().await.unwrap().is_empty());
    assert_eq!(
        ledger.checkpoint().await.unwrap().last_event_timestamp,
        None
    );
    let history = ledger.history(A.into()).await.unwrap();
    assert_eq!(history.last().map(|h| h.action), Some(HistoryAction::Reset));
    assert_eq!(history.len(), 4);
    assert_eq!(ledger.last_runs(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn reset_since_reopens_newer_events_and_moves_the_checkpoint_back() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    for (uuid, ts) in [(A, 1_700_000_000), (B, 1_600_000_000)] {
        push(&ledger, run, uuid, ts, Destination::Work("w".into())).await;
    }
    ledger
        .store_checkpoint(Checkpoint {
            last_event_timestamp: Some(1_700_000_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let since = chrono::DateTime::from_timestamp(1_650_000_000, 0).unwrap();
    assert_eq!(ledger.reset_since(since).await.unwrap(), 1);
    assert_eq!(status_of(&ledger, A).await, Some(EventStatus::Pending));
    assert_eq!(status_of(&ledger, B).await, Some(EventStatus::Pushed));
    assert_eq!(
        ledger.checkpoint().await.unwrap().last_event_timestamp,
        Some(1_650_000_000)
    );
}

#[tokio::test]
async fn reset_event_reopens_one_event_only() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    for uuid in [A, B] {
        push(&ledger, run, uuid, 5, Destination::Work("w".into())).await;
    }
    // Reset, but no manifest lists it any more.
    assert_eq!(
        ledger.reset_event(A.into()).await.unwrap(),
        EventReset::NotListed
    );
    assert_eq!(
        ledger
            .reset_event("00000000-0000-0000-0000-000000000000".into())
            .await
            .unwrap(),
        EventReset::Unknown
    );
    assert_eq!(status_of(&ledger, A).await, Some(EventStatus::Pending));
    assert_eq!(status_of(&ledger, B).await, Some(EventStatus::Pushed));
    let pending = ledger
        .list_events(EventFilter {
            status: Some(EventStatus::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uuid, A);
}

/// Opens the ledger again once the previous handle is dropped. Another test of this binary
/// may be starting a child process at that moment: between its fork and its exec the child
/// holds a copy of every descriptor, the lock's included, so the lock can outlive the drop
/// by that long.
async fn reopen(path: &std::path::Path) -> Ledger {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Ledger::open(path).await {
            Err(LedgerError::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            opened => return opened.unwrap(),
        }
    }
}

#[tokio::test]
async fn a_run_left_running_by_a_crash_is_marked_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = Ledger::open(&path).await.unwrap();
    let run = ledger.begin_run("test".into()).await.unwrap();
    push(&ledger, run, A, 1, Destination::Work("w".into())).await;
    ledger.queue_events(run, vec![queued(B, 2)]).await.unwrap();
    ledger
        .mark_failed(
            run,
            B.into(),
            FailureStage::Fetch,
            "HTTP 500".into(),
            RetryPolicy::default(),
        )
        .await
        .unwrap();
    drop(ledger);
    let ledger = reopen(&path).await;
    let runs = ledger.last_runs(1).await.unwrap();
    assert_eq!(runs[0].id, run);
    assert_eq!(runs[0].status, RunStatus::Interrupted);
    // The counts the run never wrote come from its history.
    assert_eq!((runs[0].pushed, runs[0].failed), (1, 1));
}

#[tokio::test]
async fn verify_finds_a_pushed_event_whose_file_is_gone() {
    let (dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, b"{}").unwrap();
    push(&ledger, run, A, 1, Destination::File(file.clone())).await;
    let report = ledger.verify(false).await.unwrap();
    assert_eq!(report.integrity, "ok");
    assert_eq!(report.pushed_events, 1);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    std::fs::remove_file(&file).unwrap();
    let report = ledger.verify(false).await.unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0].contains("is missing"),
        "{:?}",
        report.problems
    );
    assert!(ledger.verify(true).await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn clones_of_the_handle_share_one_writer_and_calls_from_many_tasks_all_land() {
    let (_dir, ledger) = fresh().await;
    let run = ledger.begin_run("test".into()).await.unwrap();
    let uuids: Vec<String> = (0..40)
        .map(|i| format!("5a3c2fcd-8328-42bb-a95e-4f4402de{i:04x}"))
        .collect();
    let tasks: Vec<_> = uuids
        .iter()
        .map(|uuid| {
            let (ledger, uuid) = (ledger.clone(), uuid.clone());
            tokio::spawn(async move {
                push(&ledger, run, &uuid, 7, Destination::Work("w".into())).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let pushed = ledger
        .list_events(EventFilter {
            status: Some(EventStatus::Pushed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pushed.len(), uuids.len());
}
