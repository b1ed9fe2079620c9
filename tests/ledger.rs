//! The ledger on a real SQLite file: migrations, the single-writer lock, every status change
//! and its history, and the operator's reset and retry.

use misp_feed::ledger::{
    EventFilter, EventStatus, FailureStage, Ledger, LedgerError, QueuedEvent, RetryPolicy,
};
use misp_feed::source::ManifestEntry;

const A: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";
const B: &str = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";

fn queued<'a>(uuid: &'a str, ts: i64) -> QueuedEvent<'a> {
    QueuedEvent {
        uuid,
        source_key: uuid,
        manifest_timestamp: Some(ts),
        info: Some("an event"),
        reason: "new event",
    }
}

fn fresh() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
}

#[test]
fn migrations_are_applied_once_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(Ledger::open(&path).unwrap());
    drop(Ledger::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, vec![1]);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_ledger_from_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(Ledger::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    match Ledger::open(&path) {
        Err(LedgerError::TooNew { found, known, .. }) => {
            assert_eq!(found, 99);
            assert_eq!(known, 1);
        }
        other => panic!("expected TooNew, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        Ledger::open_read_only(&path),
        Err(LedgerError::TooNew { .. })
    ));
}

#[test]
fn a_second_writer_is_refused_while_readers_are_welcome() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let first = Ledger::open(&path).unwrap();
    let second = Ledger::open(&path);
    let err = second.err().expect("second writer must be refused");
    assert!(matches!(err, LedgerError::Locked { .. }));
    assert!(
        err.to_string()
            .contains("in use by another misp-feed process")
    );
    let reader = Ledger::open_read_only(&path).unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    drop(first);
    Ledger::open(&path).expect("lock released with the first writer");
}

#[test]
fn ledger_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _ledger) = fresh();
    let mode = std::fs::metadata(dir.path().join("ledger.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o} lets others read the ledger");
}

#[test]
fn an_event_goes_pending_in_flight_pushed_with_its_history() {
    let (_dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    ledger.queue_event(run, &queued(A, 100)).unwrap();
    assert_eq!(
        ledger.event(A).unwrap().unwrap().status,
        EventStatus::Pending
    );
    ledger.mark_in_flight(run, A, "c0ffee", "b0a7").unwrap();
    let rec = ledger.event(A).unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::InFlight);
    assert_eq!(rec.attempts, 1);
    ledger.mark_pushed(run, A, "work--1", 12).unwrap();
    let rec = ledger.event(A).unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::Pushed);
    assert_eq!(rec.destination.as_deref(), Some("work--1"));
    assert_eq!(rec.messages, Some(12));
    assert_eq!(rec.content_sha256.as_deref(), Some("c0ffee"));
    assert!(rec.pushed_at.is_some());
    let actions: Vec<String> = ledger
        .history(A)
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(actions, vec!["queued", "in_flight", "pushed"]);
}

#[test]
fn failures_back_off_then_give_up_and_retry_revives_them() {
    let (_dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    ledger.queue_event(run, &queued(A, 100)).unwrap();
    let s1 = ledger
        .mark_failed(run, A, FailureStage::Fetch, "HTTP 500", &policy)
        .unwrap();
    assert_eq!(s1, EventStatus::Failed);
    let rec = ledger.event(A).unwrap().unwrap();
    assert_eq!(rec.attempts, 1);
    assert!(rec.next_attempt_at.is_some());
    assert_eq!(rec.last_error.as_deref(), Some("fetch: HTTP 500"));
    assert!(!rec.retry_due(chrono::Utc::now()));
    // A push failure counts the attempt made by mark_in_flight, not one more.
    ledger.mark_in_flight(run, A, "c", "b").unwrap();
    let s2 = ledger
        .mark_failed(run, A, FailureStage::Push, "broker down", &policy)
        .unwrap();
    assert_eq!(s2, EventStatus::Failed);
    assert_eq!(ledger.event(A).unwrap().unwrap().attempts, 2);
    let s3 = ledger
        .mark_failed(run, A, FailureStage::Convert, "bad", &policy)
        .unwrap();
    assert_eq!(s3, EventStatus::GaveUp);
    assert_eq!(ledger.retry(Some(B)).unwrap(), 0);
    assert_eq!(ledger.retry(None).unwrap(), 1);
    let rec = ledger.event(A).unwrap().unwrap();
    assert_eq!(rec.status, EventStatus::Pending);
    assert_eq!(rec.attempts, 0);
    assert_eq!(ledger.history(A).unwrap().last().unwrap().action, "retry");
}

#[test]
fn backoff_doubles_and_is_capped() {
    let policy = RetryPolicy {
        max_attempts: 10,
        base_backoff: std::time::Duration::from_secs(10),
        max_backoff: std::time::Duration::from_secs(60),
    };
    assert_eq!(policy.backoff_after(1).num_seconds(), 10);
    assert_eq!(policy.backoff_after(2).num_seconds(), 20);
    assert_eq!(policy.backoff_after(3).num_seconds(), 40);
    assert_eq!(policy.backoff_after(4).num_seconds(), 60);
    assert_eq!(policy.backoff_after(30).num_seconds(), 60);
}

#[test]
fn reset_all_forgets_state_but_keeps_the_audit_trail() {
    let (_dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    ledger
        .record_manifest(
            run,
            &[ManifestEntry {
                uuid: A.into(),
                timestamp: 100,
                info: None,
                date: None,
            }],
        )
        .unwrap();
    ledger.queue_event(run, &queued(A, 100)).unwrap();
    ledger.mark_in_flight(run, A, "c", "b").unwrap();
    ledger.mark_pushed(run, A, "f.json", 1).unwrap();
    ledger
        .set_checkpoint(&misp_feed::ledger::Checkpoint {
            last_event_timestamp: Some(100),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ledger.reset_all("test").unwrap(), 1);
    assert!(ledger.event(A).unwrap().is_none());
    assert!(ledger.manifest_entries().unwrap().is_empty());
    assert_eq!(ledger.checkpoint().unwrap().last_event_timestamp, None);
    let history = ledger.history(A).unwrap();
    assert_eq!(history.last().unwrap().action, "reset");
    assert_eq!(history.len(), 4);
    assert_eq!(ledger.last_runs(10).unwrap().len(), 1);
}

#[test]
fn reset_since_reopens_newer_events_and_moves_the_checkpoint_back() {
    let (_dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    for (uuid, ts) in [(A, 1_700_000_000), (B, 1_600_000_000)] {
        ledger.queue_event(run, &queued(uuid, ts)).unwrap();
        ledger.mark_in_flight(run, uuid, "c", "b").unwrap();
        ledger.mark_pushed(run, uuid, "f.json", 1).unwrap();
    }
    ledger
        .set_checkpoint(&misp_feed::ledger::Checkpoint {
            last_event_timestamp: Some(1_700_000_000),
            ..Default::default()
        })
        .unwrap();
    let since = chrono::DateTime::from_timestamp(1_650_000_000, 0).unwrap();
    assert_eq!(ledger.reset_since(since).unwrap(), 1);
    assert_eq!(
        ledger.event(A).unwrap().unwrap().status,
        EventStatus::Pending
    );
    assert_eq!(
        ledger.event(B).unwrap().unwrap().status,
        EventStatus::Pushed
    );
    assert_eq!(
        ledger.checkpoint().unwrap().last_event_timestamp,
        Some(1_650_000_000)
    );
}

#[test]
fn reset_event_reopens_one_event_only() {
    let (_dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    for uuid in [A, B] {
        ledger.queue_event(run, &queued(uuid, 5)).unwrap();
        ledger.mark_in_flight(run, uuid, "c", "b").unwrap();
        ledger.mark_pushed(run, uuid, "f.json", 1).unwrap();
    }
    assert!(ledger.reset_event(A).unwrap());
    assert!(
        !ledger
            .reset_event("00000000-0000-0000-0000-000000000000")
            .unwrap()
    );
    assert_eq!(
        ledger.event(A).unwrap().unwrap().status,
        EventStatus::Pending
    );
    assert_eq!(
        ledger.event(B).unwrap().unwrap().status,
        EventStatus::Pushed
    );
    let pending = ledger
        .list_events(&EventFilter {
            status: Some(EventStatus::Pending),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].uuid, A);
}

#[test]
fn a_run_left_running_by_a_crash_is_marked_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = Ledger::open(&path).unwrap();
    let run = ledger.begin_run("test").unwrap();
    drop(ledger);
    let ledger = Ledger::open(&path).unwrap();
    let runs = ledger.last_runs(1).unwrap();
    assert_eq!(runs[0].id, run);
    assert_eq!(runs[0].status, "interrupted");
}

#[test]
fn verify_finds_a_pushed_event_whose_file_is_gone() {
    let (dir, mut ledger) = fresh();
    let run = ledger.begin_run("test").unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, b"{}").unwrap();
    let dest = file.display().to_string();
    ledger.queue_event(run, &queued(A, 1)).unwrap();
    ledger.mark_in_flight(run, A, "c", "b").unwrap();
    ledger.mark_pushed(run, A, &dest, 1).unwrap();
    let report = ledger.verify(false).unwrap();
    assert_eq!(report.integrity, "ok");
    assert_eq!(report.pushed_events, 1);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    std::fs::remove_file(&file).unwrap();
    let report = ledger.verify(false).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].contains("missing"));
    assert!(ledger.verify(true).unwrap().problems.is_empty());
}
