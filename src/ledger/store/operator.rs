//! What an operator (or the platform's "reset state") asks of the ledger: import again, or
//! try again. State is forgotten; the audit trail never is.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::Store;
use crate::ledger::types::*;
use crate::ledger::{Result, now_text, time_text};

impl Store {
    /// Forgets everything but the audit trail (runs and history are kept): the checkpoint,
    /// the manifest, S3 objects and event states. The next run starts as a first run.
    pub(crate) fn reset_all(&mut self, why: &str) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, ?2, ?3 FROM events",
            params![now, HistoryAction::Reset, why],
        )?;
        let removed = tx.execute("DELETE FROM events", [])?;
        tx.execute("DELETE FROM manifest_entries", [])?;
        tx.execute("DELETE FROM s3_objects", [])?;
        tx.execute("DELETE FROM checkpoint", [])?;
        tx.commit()?;
        Ok(removed as u64)
    }

    /// Makes one event due again on the next run, whatever the checkpoint says.
    pub(crate) fn reset_event(&mut self, uuid: &str) -> Result<bool> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE events SET status = ?3, attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?2 WHERE uuid = ?1",
            params![uuid, now, EventStatus::Pending],
        )?;
        if changed > 0 {
            tx.execute(
                "INSERT INTO event_history (event_uuid, at, action, detail)
                 VALUES (?1, ?2, ?3, 'reset by operator')",
                params![uuid, now, HistoryAction::Reset],
            )?;
            tx.execute(
                "DELETE FROM s3_objects WHERE key = (SELECT source_key FROM events WHERE uuid = ?1)",
                params![uuid],
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Makes every event whose manifest timestamp is at or after `since` due again, and
    /// moves the checkpoint back so that entries not yet in the ledger from then on qualify.
    pub(crate) fn reset_since(&mut self, since: DateTime<Utc>) -> Result<u64> {
        let now = now_text();
        let since_ts = since.timestamp();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, ?2, ?3 FROM events WHERE manifest_timestamp >= ?4",
            params![
                now,
                HistoryAction::Reset,
                format!("reset since {}", time_text(since)),
                since_ts
            ],
        )?;
        let changed = tx.execute(
            "UPDATE events SET status = ?3, attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?1 WHERE manifest_timestamp >= ?2",
            params![now, since_ts, EventStatus::Pending],
        )?;
        tx.execute(
            "UPDATE checkpoint SET last_event_timestamp = ?1, manifest_etag = NULL,
                manifest_last_modified = NULL, updated_at = ?2
             WHERE last_event_timestamp IS NULL OR last_event_timestamp > ?1",
            params![since_ts, now],
        )?;
        tx.execute(
            "DELETE FROM s3_objects WHERE updated_at >= ?1",
            params![time_text(since)],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }

    /// Gives failed and given-up events (or one of them) a fresh set of attempts.
    pub(crate) fn retry(&mut self, uuid: Option<&str>) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let filter = "status IN (?3, ?4) AND (?2 IS NULL OR uuid = ?2)";
        tx.execute(
            &format!(
                "INSERT INTO event_history (event_uuid, at, action, detail)
                 SELECT uuid, ?1, ?5, 'retry requested by operator' FROM events WHERE {filter}"
            ),
            params![
                now,
                uuid,
                EventStatus::Failed,
                EventStatus::GaveUp,
                HistoryAction::Retry
            ],
        )?;
        let changed = tx.execute(
            &format!(
                "UPDATE events SET status = ?5, attempts = 0, next_attempt_at = NULL,
                    updated_at = ?1 WHERE {filter}"
            ),
            params![
                now,
                uuid,
                EventStatus::Failed,
                EventStatus::GaveUp,
                EventStatus::Pending
            ],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }
}
