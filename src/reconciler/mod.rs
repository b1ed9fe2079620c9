//! The reconciler: compares what the feed lists with what the ledger knows and decides, per
//! event, whether to fetch it, skip it, or retry it. It does no I/O; the pipeline carries
//! its decisions out.
//!
//! The ledger knows every manifest entry, so the checkpoint decides nothing (it only keeps
//! the Python connector's meaning for the platform's copy of the state):
//! - an entry never pushed is due, whatever its timestamp, unless it is older than the import
//!   floor (`import_from_date`, or the first run's start); it is then recorded `too_old`, and
//!   becomes due if the floor is lowered;
//! - an event the ledger owes (pending, in flight at a crash, failed and due) goes again;
//! - a pushed event goes again only when its manifest timestamp changed.

pub mod delta;
pub(crate) mod filters;
mod guards;

pub(crate) use guards::{Guards, attribute_count, decision_fingerprint};

use chrono::{DateTime, Utc};

use crate::ledger::{EventRecord, EventStatus, ObjectStatus, S3ObjectRecord};
use crate::source::{ManifestEntry, ObjectEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Fetch, convert and push.
    Process(ProcessReason),
    /// Nothing to do.
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcessReason {
    New,
    TimestampChanged,
    Pending,
    /// It was handed to the sink when the previous run stopped: push it again (OpenCTI
    /// upserts by id, so a repeat is harmless; a skip is not).
    InterruptedInFlight,
    Retry,
    /// An S3 object whose ETag changed (or that was never seen).
    ObjectChanged,
}

impl ProcessReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProcessReason::New => "new event",
            ProcessReason::TimestampChanged => "manifest timestamp changed",
            ProcessReason::Pending => "pending",
            ProcessReason::InterruptedInFlight => "was in flight when a previous run stopped",
            ProcessReason::Retry => "retry after failure",
            ProcessReason::ObjectChanged => "object new or changed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipReason {
    Unchanged,
    /// Older than the import floor: recorded `too_old`, not imported.
    TooOld,
    BackingOff,
    GaveUp,
    /// Left out by the import filters (decided again when they change).
    Filtered,
    /// Refused by a guard (decided again when it changes, or on `misp-feed retry`).
    Refused,
}

impl SkipReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unchanged => "unchanged",
            SkipReason::TooOld => "older than the import floor",
            SkipReason::BackingOff => "failed, waiting for its retry time",
            SkipReason::GaveUp => "gave up after too many failures (use `misp-feed retry`)",
            SkipReason::Filtered => "left out by the import filters",
            SkipReason::Refused => "refused by a guard (use `misp-feed retry` once it allows it)",
        }
    }
}

/// Decides one manifest entry against its record and the import floor.
pub(crate) fn decide_entry(
    entry: &ManifestEntry,
    record: Option<&EventRecord>,
    floor: i64,
    now: DateTime<Utc>,
) -> Decision {
    let record = match record {
        Some(record) if record.status != EventStatus::TooOld => record,
        // Never imported: due unless older than the floor (at the floor's second is in).
        _ if entry.timestamp >= floor => return Decision::Process(ProcessReason::New),
        _ => return Decision::Skip(SkipReason::TooOld),
    };
    match record.status {
        EventStatus::TooOld => Decision::Skip(SkipReason::TooOld),
        EventStatus::Pending => Decision::Process(ProcessReason::Pending),
        EventStatus::InFlight => Decision::Process(ProcessReason::InterruptedInFlight),
        EventStatus::Failed if record.manifest_timestamp != Some(entry.timestamp) => {
            // A new version of a failing event deserves an immediate try.
            Decision::Process(ProcessReason::TimestampChanged)
        }
        EventStatus::Failed if record.retry_due(now) => Decision::Process(ProcessReason::Retry),
        EventStatus::Failed => Decision::Skip(SkipReason::BackingOff),
        EventStatus::GaveUp if record.manifest_timestamp != Some(entry.timestamp) => {
            Decision::Process(ProcessReason::TimestampChanged)
        }
        EventStatus::GaveUp => Decision::Skip(SkipReason::GaveUp),
        EventStatus::Pushed if record.manifest_timestamp != Some(entry.timestamp) => {
            Decision::Process(ProcessReason::TimestampChanged)
        }
        EventStatus::Pushed => Decision::Skip(SkipReason::Unchanged),
        // A new version is decided again; the same one stays left out until the settings
        // that left it out change (the ledger then reopens it).
        EventStatus::Filtered | EventStatus::Refused
            if record.manifest_timestamp != Some(entry.timestamp) =>
        {
            Decision::Process(ProcessReason::TimestampChanged)
        }
        EventStatus::Filtered => Decision::Skip(SkipReason::Filtered),
        EventStatus::Refused => Decision::Skip(SkipReason::Refused),
    }
}

/// Decides one S3 object against its record and the records of its events (and of itself,
/// when it failed whole). An unchanged ETag whose events were all pushed is skipped without a
/// download. A failed object with the same ETag waits for its retry time like any failed
/// event, and stays put once everything in it gave up (until `misp-feed retry`).
pub(crate) fn decide_object(
    object: &ObjectEntry,
    record: Option<&S3ObjectRecord>,
    owed: &[EventRecord],
    now: DateTime<Utc>,
) -> Decision {
    let Some(record) = record else {
        return Decision::Process(ProcessReason::ObjectChanged);
    };
    if record.etag != object.etag {
        return Decision::Process(ProcessReason::ObjectChanged);
    }
    match record.status {
        ObjectStatus::Done | ObjectStatus::Deleted => Decision::Skip(SkipReason::Unchanged),
        ObjectStatus::Failed => {
            let due = owed.iter().any(|e| match e.status {
                EventStatus::Pending | EventStatus::InFlight => true,
                EventStatus::Failed => e.retry_due(now),
                _ => false,
            });
            if due {
                Decision::Process(ProcessReason::Retry)
            } else if owed.iter().any(|e| e.status == EventStatus::Failed) {
                Decision::Skip(SkipReason::BackingOff)
            } else if owed.iter().any(|e| e.status == EventStatus::GaveUp) {
                Decision::Skip(SkipReason::GaveUp)
            } else {
                // Failed, with nothing recorded of why (a ledger from before object records).
                Decision::Process(ProcessReason::Retry)
            }
        }
    }
}

/// After fetching: an event whose content is byte-identical to what was last pushed is not
/// pushed again.
pub(crate) fn content_unchanged(record: Option<&EventRecord>, content_sha256: &str) -> bool {
    record.is_some_and(|r| {
        r.status == EventStatus::Pushed && r.content_sha256.as_deref() == Some(content_sha256)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uuid: &str, timestamp: i64) -> ManifestEntry {
        ManifestEntry {
            uuid: uuid.into(),
            facts: Default::default(),
            key: uuid.into(),
            timestamp,
            info: None,
            date: None,
        }
    }

    fn record(status: EventStatus, manifest_timestamp: i64) -> EventRecord {
        EventRecord {
            uuid: "u".into(),
            source_key: "u".into(),
            manifest_timestamp: Some(manifest_timestamp),
            info: None,
            content_sha256: Some("abc".into()),
            bundle_sha256: None,
            status,
            attempts: 1,
            last_error: None,
            next_attempt_at: None,
            destination: None,
            messages: None,
            pushed_at: None,
            last_run: None,
            updated_at: String::new(),
        }
    }

    #[test]
    fn new_entries_are_due_from_the_floor_on_and_too_old_ones_once_the_floor_drops() {
        let now = Utc::now();
        assert_eq!(
            decide_entry(&entry("a", 100), None, 100, now),
            Decision::Process(ProcessReason::New)
        );
        assert_eq!(
            decide_entry(&entry("a", 99), None, 100, now),
            Decision::Skip(SkipReason::TooOld)
        );
        let too_old = record(EventStatus::TooOld, 99);
        assert_eq!(
            decide_entry(&entry("a", 99), Some(&too_old), 100, now),
            Decision::Skip(SkipReason::TooOld)
        );
        assert_eq!(
            decide_entry(&entry("a", 99), Some(&too_old), 50, now),
            Decision::Process(ProcessReason::New)
        );
    }

    #[test]
    fn owed_events_go_again_whatever_the_checkpoint() {
        let now = Utc::now();
        for (status, reason) in [
            (EventStatus::Pending, ProcessReason::Pending),
            (EventStatus::InFlight, ProcessReason::InterruptedInFlight),
            (EventStatus::Failed, ProcessReason::Retry),
        ] {
            assert_eq!(
                decide_entry(&entry("a", 5), Some(&record(status, 5)), 1000, now),
                Decision::Process(reason)
            );
        }
    }

    #[test]
    fn pushed_events_are_skipped_until_their_timestamp_moves() {
        let now = Utc::now();
        let pushed = record(EventStatus::Pushed, 50);
        assert_eq!(
            decide_entry(&entry("a", 50), Some(&pushed), 10, now),
            Decision::Skip(SkipReason::Unchanged)
        );
        assert_eq!(
            decide_entry(&entry("a", 51), Some(&pushed), 10, now),
            Decision::Process(ProcessReason::TimestampChanged)
        );
        assert!(content_unchanged(Some(&pushed), "abc"));
        assert!(!content_unchanged(Some(&pushed), "abd"));
    }

    #[test]
    fn failed_events_wait_for_their_backoff_and_given_up_ones_wait_for_retry() {
        let now = Utc::now();
        let mut failed = record(EventStatus::Failed, 5);
        failed.next_attempt_at = Some((now + chrono::Duration::hours(1)).to_rfc3339());
        assert_eq!(
            decide_entry(&entry("a", 5), Some(&failed), 0, now),
            Decision::Skip(SkipReason::BackingOff)
        );
        assert_eq!(
            decide_entry(
                &entry("a", 5),
                Some(&record(EventStatus::GaveUp, 5)),
                0,
                now
            ),
            Decision::Skip(SkipReason::GaveUp)
        );
    }

    #[test]
    fn objects_with_the_same_etag_are_skipped_only_once_done() {
        let object = ObjectEntry {
            key: "k.json".into(),
            etag: Some("\"e1\"".into()),
            size: 1,
            last_modified: None,
        };
        let mut rec = S3ObjectRecord {
            key: "k.json".into(),
            etag: Some("\"e1\"".into()),
            size: 1,
            last_modified: None,
            status: ObjectStatus::Done,
            events: 1,
            last_error: None,
        };
        let now = Utc::now();
        assert_eq!(
            decide_object(&object, Some(&rec), &[], now),
            Decision::Skip(SkipReason::Unchanged)
        );
        rec.etag = Some("\"e0\"".into());
        assert_eq!(
            decide_object(&object, Some(&rec), &[], now),
            Decision::Process(ProcessReason::ObjectChanged)
        );
    }

    #[test]
    fn a_failed_object_waits_for_its_backoff_and_stays_once_everything_gave_up() {
        let object = ObjectEntry {
            key: "k.json".into(),
            etag: Some("e1".into()),
            size: 1,
            last_modified: None,
        };
        let rec = S3ObjectRecord {
            key: "k.json".into(),
            etag: Some("e1".into()),
            size: 1,
            last_modified: None,
            status: ObjectStatus::Failed,
            events: 2,
            last_error: None,
        };
        let now = Utc::now();
        let mut waiting = record(EventStatus::Failed, 5);
        waiting.next_attempt_at = Some((now + chrono::Duration::hours(1)).to_rfc3339());
        let pushed = record(EventStatus::Pushed, 5);
        assert_eq!(
            decide_object(&object, Some(&rec), &[pushed.clone(), waiting.clone()], now),
            Decision::Skip(SkipReason::BackingOff)
        );
        waiting.next_attempt_at = Some((now - chrono::Duration::hours(1)).to_rfc3339());
        assert_eq!(
            decide_object(&object, Some(&rec), &[pushed.clone(), waiting], now),
            Decision::Process(ProcessReason::Retry)
        );
        let gave_up = record(EventStatus::GaveUp, 5);
        assert_eq!(
            decide_object(&object, Some(&rec), &[pushed, gave_up], now),
            Decision::Skip(SkipReason::GaveUp)
        );
    }
}
