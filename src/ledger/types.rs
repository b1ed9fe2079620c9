//! The ledger's vocabulary: every status, action and destination is an enum stored as its
//! text, so a value the code does not know is an error when read, never a silent mismatch.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;

/// Declares a text-backed enum: its SQL text, parsing, `ToSql`/`FromSql` and serde form.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub(crate) enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant, )+ }

        impl $name {
            pub(crate) const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            pub(crate) fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )+ }
            }

            /// The stored text, or its spelling with `-` for `_` (as an operator may type it).
            pub(crate) fn parse(text: &str) -> Option<$name> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text || v.as_str().replace('_', "-") == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(
                        format!(concat!("unknown ", stringify!($name), " {:?}"), text).into(),
                    )
                })
            }
        }
    };
}

text_enum! {
    /// Where an event stands.
    pub(crate) enum EventStatus {
        /// Due: will be fetched, converted and pushed by the next run.
        Pending => "pending",
        /// Handed to the sink, not yet confirmed (a crash here means: push again).
        InFlight => "in_flight",
        /// Confirmed by the sink.
        Pushed => "pushed",
        /// Failed; retried by a later run after its backoff.
        Failed => "failed",
        /// Failed `max_attempts` times; waits for `misp-feed retry`.
        GaveUp => "gave_up",
        /// Listed, but older than the import floor: not imported (imported after all if the
        /// floor is lowered by `reset --since` or an earlier `MISP_FEED_IMPORT_FROM_DATE`).
        TooOld => "too_old",
        /// Left out by the import filters, with the rule; decided again when they change.
        Filtered => "filtered",
        /// Refused by a guard (too many attributes); decided again when the limit changes
        /// or on `misp-feed retry`.
        Refused => "refused",
    }
}

text_enum! {
    /// What set the import floor.
    pub(crate) enum FloorOrigin {
        /// The first run, without `MISP_FEED_IMPORT_FROM_DATE`: its start.
        FirstRun => "first_run",
        /// `MISP_FEED_IMPORT_FROM_DATE`.
        ImportFromDate => "import_from_date",
        /// The state found on the platform (left by the Python connector, or by another
        /// connector under the same id): what it imported is not imported again.
        Platform => "platform",
        /// `misp-feed reset --since`.
        Reset => "reset",
    }
}

text_enum! {
    /// One row of an event's audit trail.
    pub(crate) enum HistoryAction {
        Queued => "queued",
        Skipped => "skipped",
        InFlight => "in_flight",
        Pushed => "pushed",
        Failed => "failed",
        GaveUp => "gave_up",
        TooOld => "too_old",
        Filtered => "filtered",
        Refused => "refused",
        Reset => "reset",
        Retry => "retry",
        /// A whole-object failure that a later read of the object cleared.
        Resolved => "resolved",
    }
}

text_enum! {
    /// How a run stands or ended.
    pub(crate) enum RunStatus {
        Running => "running",
        Completed => "completed",
        CompletedWithErrors => "completed_with_errors",
        Failed => "failed",
        /// Left `running` by a process that died; found so by the next writer.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// Where an S3 object stands.
    pub(crate) enum ObjectStatus {
        /// Every event of the object was pushed.
        Done => "done",
        Failed => "failed",
        /// Done, then deleted from the bucket (`MISP_FEED_S3_DELETE_AFTER_IMPORT`).
        Deleted => "deleted",
    }
}

text_enum! {
    /// The step at which an event failed.
    pub(crate) enum FailureStage {
        Fetch => "fetch",
        Parse => "parse",
        Convert => "convert",
        Push => "push",
    }
}

impl From<EventStatus> for HistoryAction {
    fn from(status: EventStatus) -> HistoryAction {
        match status {
            EventStatus::Pending => HistoryAction::Queued,
            EventStatus::InFlight => HistoryAction::InFlight,
            EventStatus::Pushed => HistoryAction::Pushed,
            EventStatus::Failed => HistoryAction::Failed,
            EventStatus::GaveUp => HistoryAction::GaveUp,
            EventStatus::TooOld => HistoryAction::TooOld,
            EventStatus::Filtered => HistoryAction::Filtered,
            EventStatus::Refused => HistoryAction::Refused,
        }
    }
}

/// Who asked for a reset of the whole ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOrigin {
    /// `misp-feed reset --all`.
    Operator,
    /// "Reset state" on the OpenCTI platform.
    Platform,
}

/// What `reset --event` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReset {
    /// The ledger does not know the event.
    Unknown,
    /// Due again; the feed lists it, so the next run fetches it.
    Listed,
    /// Due again, but the feed no longer lists it: nothing can be fetched until it does.
    NotListed,
}

/// Where a sink put a bundle: a file of the bundle folder, or an OpenCTI work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    File(PathBuf),
    Work(String),
}

text_enum! {
    /// The kind of a [`Destination`], as stored beside its text.
    pub(crate) enum DestinationKind {
        File => "file",
        Work => "work",
    }
}

impl Destination {
    pub(crate) fn kind(&self) -> DestinationKind {
        match self {
            Destination::File(_) => DestinationKind::File,
            Destination::Work(_) => DestinationKind::Work,
        }
    }

    pub(crate) fn text(&self) -> String {
        match self {
            Destination::File(path) => path.display().to_string(),
            Destination::Work(id) => id.clone(),
        }
    }

    pub(crate) fn from_parts(kind: DestinationKind, text: String) -> Destination {
        match kind {
            DestinationKind::File => Destination::File(PathBuf::from(text)),
            DestinationKind::Work => Destination::Work(text),
        }
    }

    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Destination::File(path) => Some(path),
            Destination::Work(_) => None,
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::File(path) => write!(f, "{}", path.display()),
            Destination::Work(id) => f.write_str(id),
        }
    }
}

/// How the audit lists show a destination: its text, and its kind beside it.
impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

/// A row of `runs`, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for RunId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(RunId)
    }
}

/// How failed events are retried across runs.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each failed attempt, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff_after(&self, attempts: u32) -> chrono::Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let delay = self
            .base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
    }
}

/// An event the reconciler found due, as the ledger records it before anything is fetched.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub uuid: String,
    /// The manifest key or the S3 object key it comes from.
    pub source_key: String,
    pub manifest_timestamp: Option<i64>,
    pub info: Option<String>,
    pub reason: String,
}

/// The hashes an event carries when it is handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedContent {
    /// sha256 of the event file's bytes (or of the event, for S3 lists).
    pub content_sha256: String,
    /// sha256 of the bundle's content: its objects' ids and stable-content hashes, in order
    /// (the same for two conversions of the same event at different times).
    pub bundle_sha256: String,
}

/// The objects a confirmed push leaves on the platform, by stable-content hash (the delta
/// push's memory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushedObjects {
    /// The whole bundle went: the event's previous hashes are replaced.
    pub(crate) full: bool,
    /// The objects sent, with their hashes.
    pub(crate) sent: Vec<(String, [u8; 8])>,
    /// Objects the previous push had that the event no longer has.
    pub(crate) removed: Vec<String>,
    /// How many objects the event's bundle has in all.
    pub(crate) total: usize,
    /// Attributes that made no indicator because their value is on a warninglist, by list.
    pub(crate) warninglisted: std::collections::BTreeMap<String, usize>,
}

/// Proof that a sink holds an event's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub destination: Destination,
    /// Messages (or files) confirmed.
    pub messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub uuid: String,
    pub(crate) source_key: String,
    pub(crate) manifest_timestamp: Option<i64>,
    pub(crate) info: Option<String>,
    pub content_sha256: Option<String>,
    pub(crate) bundle_sha256: Option<String>,
    pub status: EventStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub destination: Option<Destination>,
    pub messages: Option<u64>,
    pub pushed_at: Option<String>,
    pub(crate) last_run: Option<RunId>,
    pub(crate) updated_at: String,
}

impl EventRecord {
    /// When the backoff of a failed event is over.
    pub fn retry_due(&self, now: DateTime<Utc>) -> bool {
        match &self.next_attempt_at {
            None => true,
            Some(at) => DateTime::parse_from_rfc3339(at)
                .map(|t| t.with_timezone(&Utc) <= now)
                .unwrap_or(true),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRecord {
    pub(crate) id: i64,
    pub(crate) event_uuid: String,
    pub(crate) run_id: Option<RunId>,
    pub(crate) at: String,
    pub action: HistoryAction,
    pub(crate) detail: Option<String>,
    pub destination: Option<Destination>,
    pub(crate) content_sha256: Option<String>,
    pub(crate) bundle_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    pub status: RunStatus,
    pub(crate) source: String,
    pub pushed: u64,
    pub(crate) skipped: u64,
    pub failed: u64,
    pub(crate) work_id: Option<String>,
    pub(crate) message: Option<String>,
}

/// How a run ended, as written into `runs`.
#[derive(Debug, Clone)]
pub(crate) struct RunOutcome {
    pub(crate) status: RunStatus,
    pub(crate) pushed: u64,
    pub(crate) skipped: u64,
    pub(crate) failed: u64,
    pub(crate) message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3ObjectRecord {
    pub(crate) key: String,
    pub(crate) etag: Option<String>,
    pub(crate) size: u64,
    pub(crate) last_modified: Option<String>,
    pub status: ObjectStatus,
    pub(crate) events: u64,
    pub(crate) last_error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub updated_since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// What `misp-feed verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub integrity: String,
    pub pushed_events: u64,
    /// Inconsistencies: the ledger says something it cannot prove.
    pub problems: Vec<String>,
    /// Events and objects that failed (retried by later runs) or gave up (until `retry`),
    /// with their reason: not inconsistencies, but nothing to overlook either.
    pub(crate) failing: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_what_it_writes_and_unknown_text_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for status in EventStatus::ALL {
            let back: EventStatus = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(back, *status);
        }
        let unknown: rusqlite::Result<EventStatus> =
            conn.query_row("SELECT 'done'", [], |r| r.get(0));
        assert!(unknown.is_err());
        assert_eq!(EventStatus::parse("gave-up"), Some(EventStatus::GaveUp));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
        };
        let seconds: Vec<i64> = [1, 2, 3, 4, 30]
            .iter()
            .map(|n| policy.backoff_after(*n).num_seconds())
            .collect();
        assert_eq!(seconds, vec![10, 20, 40, 60, 60]);
    }
}
