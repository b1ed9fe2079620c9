//! Rows of the ledger as the rest of the crate sees them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Due: will be fetched, converted and pushed by the next run.
    Pending,
    /// Handed to the sink, not yet confirmed (a crash here means: push again).
    InFlight,
    /// Confirmed by the sink.
    Pushed,
    /// Failed; retried by a later run after its backoff.
    Failed,
    /// Failed `max_attempts` times; waits for `misp-feed retry`.
    GaveUp,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::InFlight,
        EventStatus::Pushed,
        EventStatus::Failed,
        EventStatus::GaveUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::InFlight => "in_flight",
            EventStatus::Pushed => "pushed",
            EventStatus::Failed => "failed",
            EventStatus::GaveUp => "gave_up",
        }
    }

    pub fn parse(text: &str) -> Option<EventStatus> {
        EventStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text || s.as_str().replace('_', "-") == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureStage {
    Fetch,
    Parse,
    Convert,
    Push,
}

impl FailureStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::Fetch => "fetch",
            FailureStage::Parse => "parse",
            FailureStage::Convert => "convert",
            FailureStage::Push => "push",
        }
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
    pub fn backoff_after(&self, attempts: u32) -> chrono::Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let delay = self
            .base_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Checkpoint {
    pub last_run: Option<String>,
    pub last_event_timestamp: Option<i64>,
    pub manifest_etag: Option<String>,
    pub manifest_last_modified: Option<String>,
    pub last_file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueuedEvent<'a> {
    pub uuid: &'a str,
    pub source_key: &'a str,
    pub manifest_timestamp: Option<i64>,
    pub info: Option<&'a str>,
    pub reason: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub uuid: String,
    pub source_key: String,
    pub manifest_timestamp: Option<i64>,
    pub info: Option<String>,
    pub content_sha256: Option<String>,
    pub bundle_sha256: Option<String>,
    pub status: EventStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub destination: Option<String>,
    pub messages: Option<u64>,
    pub pushed_at: Option<String>,
    pub last_run: Option<i64>,
    pub updated_at: String,
}

impl EventRecord {
    pub(crate) const SELECT: &'static str = "SELECT uuid, source_key, manifest_timestamp, info, content_sha256, bundle_sha256,
        status, attempts, last_error, next_attempt_at, destination, messages, pushed_at, last_run, updated_at
        FROM events";

    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
        let status_text: String = r.get(6)?;
        let status = EventStatus::parse(&status_text).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown event status {status_text:?}").into(),
            )
        })?;
        Ok(EventRecord {
            uuid: r.get(0)?,
            source_key: r.get(1)?,
            manifest_timestamp: r.get(2)?,
            info: r.get(3)?,
            content_sha256: r.get(4)?,
            bundle_sha256: r.get(5)?,
            status,
            attempts: r.get::<_, i64>(7)?.max(0) as u32,
            last_error: r.get(8)?,
            next_attempt_at: r.get(9)?,
            destination: r.get(10)?,
            messages: r.get::<_, Option<i64>>(11)?.map(|m| m.max(0) as u64),
            pushed_at: r.get(12)?,
            last_run: r.get(13)?,
            updated_at: r.get(14)?,
        })
    }

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
    pub id: i64,
    pub event_uuid: String,
    pub run_id: Option<i64>,
    pub at: String,
    pub action: String,
    pub detail: Option<String>,
    pub destination: Option<String>,
    pub content_sha256: Option<String>,
    pub bundle_sha256: Option<String>,
}

impl HistoryRecord {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRecord> {
        Ok(HistoryRecord {
            id: r.get(0)?,
            event_uuid: r.get(1)?,
            run_id: r.get(2)?,
            at: r.get(3)?,
            action: r.get(4)?,
            detail: r.get(5)?,
            destination: r.get(6)?,
            content_sha256: r.get(7)?,
            bundle_sha256: r.get(8)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub source: String,
    pub pushed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub work_id: Option<String>,
    pub message: Option<String>,
}

impl RunRecord {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            id: r.get(0)?,
            started_at: r.get(1)?,
            finished_at: r.get(2)?,
            status: r.get(3)?,
            source: r.get(4)?,
            pushed: r.get::<_, i64>(5)?.max(0) as u64,
            skipped: r.get::<_, i64>(6)?.max(0) as u64,
            failed: r.get::<_, i64>(7)?.max(0) as u64,
            work_id: r.get(8)?,
            message: r.get(9)?,
        })
    }
}

/// How a run ended, as written into `runs`.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub status: String,
    pub pushed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub work_id: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct S3ObjectRecord {
    pub key: String,
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<String>,
    pub status: String,
    pub events: u64,
    pub last_error: Option<String>,
}

impl S3ObjectRecord {
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<S3ObjectRecord> {
        Ok(S3ObjectRecord {
            key: r.get(0)?,
            etag: r.get(1)?,
            size: r.get::<_, i64>(2)?.max(0) as u64,
            last_modified: r.get(3)?,
            status: r.get(4)?,
            events: r.get::<_, i64>(5)?.max(0) as u64,
            last_error: r.get(6)?,
        })
    }
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
    pub problems: Vec<String>,
}
