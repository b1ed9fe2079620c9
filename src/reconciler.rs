//! The reconciler: compares what the feed lists with what the ledger knows and decides, per
//! event, whether to fetch it, skip it, or retry it. It does no I/O; the pipeline carries
//! its decisions out.
//!
//! Which manifest entries qualify follows the Python connector: an entry newer than the
//! checkpoint (the first checkpoint is `import_from_date`, else "now"). On top of that the
//! ledger is consulted, so that an event is never skipped by mistake:
//! - an entry the ledger has never seen qualifies when its timestamp is at or after the
//!   checkpoint (at, not only after: an event sharing the checkpoint's second is not lost);
//! - an event the ledger owes (pending, in flight at a crash, failed and due) goes again
//!   whatever the checkpoint says;
//! - a pushed event goes again only when its manifest timestamp changed, and even then its
//!   bundle is pushed only if its content changed.

use chrono::{DateTime, Utc};

use crate::ledger::{EventRecord, EventStatus, ObjectStatus, S3ObjectRecord};
use crate::source::{ManifestEntry, ObjectEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Fetch, convert and push.
    Process(ProcessReason),
    /// Nothing to do.
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessReason {
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
    pub fn as_str(self) -> &'static str {
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
pub enum SkipReason {
    Unchanged,
    OlderThanCheckpoint,
    BackingOff,
    GaveUp,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unchanged => "unchanged",
            SkipReason::OlderThanCheckpoint => "older than the checkpoint",
            SkipReason::BackingOff => "failed, waiting for its retry time",
            SkipReason::GaveUp => "gave up after too many failures (use `misp-feed retry`)",
        }
    }
}

/// Decides one manifest entry.
pub fn decide_entry(
    entry: &ManifestEntry,
    record: Option<&EventRecord>,
    checkpoint: i64,
    now: DateTime<Utc>,
) -> Decision {
    let Some(record) = record else {
        return if entry.timestamp >= checkpoint {
            Decision::Process(ProcessReason::New)
        } else {
            Decision::Skip(SkipReason::OlderThanCheckpoint)
        };
    };
    match record.status {
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
    }
}

/// Decides one S3 object: an unchanged ETag whose events were all pushed is skipped without
/// a download.
pub fn decide_object(object: &ObjectEntry, record: Option<&S3ObjectRecord>) -> Decision {
    match record {
        Some(r) if r.status == ObjectStatus::Done && r.etag.is_some() && r.etag == object.etag => {
            Decision::Skip(SkipReason::Unchanged)
        }
        Some(r) if r.status == ObjectStatus::Done && r.etag.is_none() && object.etag.is_none() => {
            Decision::Skip(SkipReason::Unchanged)
        }
        _ => Decision::Process(ProcessReason::ObjectChanged),
    }
}

/// After fetching: an event whose content is byte-identical to what was last pushed is not
/// pushed again.
pub fn content_unchanged(record: Option<&EventRecord>, content_sha256: &str) -> bool {
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
    fn new_entries_qualify_at_or_after_the_checkpoint() {
        let now = Utc::now();
        assert_eq!(
            decide_entry(&entry("a", 100), None, 100, now),
            Decision::Process(ProcessReason::New)
        );
        assert_eq!(
            decide_entry(&entry("a", 101), None, 100, now),
            Decision::Process(ProcessReason::New)
        );
        assert_eq!(
            decide_entry(&entry("a", 99), None, 100, now),
            Decision::Skip(SkipReason::OlderThanCheckpoint)
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
        assert_eq!(
            decide_object(&object, Some(&rec)),
            Decision::Skip(SkipReason::Unchanged)
        );
        rec.status = ObjectStatus::Failed;
        assert_eq!(
            decide_object(&object, Some(&rec)),
            Decision::Process(ProcessReason::ObjectChanged)
        );
        rec.status = ObjectStatus::Done;
        rec.etag = Some("\"e0\"".into());
        assert_eq!(
            decide_object(&object, Some(&rec)),
            Decision::Process(ProcessReason::ObjectChanged)
        );
    }
}
