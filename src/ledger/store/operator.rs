//! What an operator (or the platform's "reset state") asks of the ledger: import again, or
//! try again. State is forgotten; the audit trail never is.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::Store;
use crate::ledger::types::*;
use crate::ledger::{Result, now_text, time_text};

impl Store {
    /// Forgets every event's state, the manifest, S3 objects and the checkpoint; runs and
    /// history are kept. `scope` says whose reset it is: an operator's keeps the import floor
    /// (everything since it is imported again) and wins over the platform's state until a
    /// ping has delivered the ledger's; the platform's ("reset state" in OpenCTI) forgets the
    /// floor too, so that the next run starts as the first one did.
    pub(crate) fn reset_all(&mut self, why: &str, scope: ResetOrigin) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, ?2, ?3 FROM events",
            params![now, HistoryAction::Reset, why],
        )?;
        let removed = tx.execute("DELETE FROM events", [])?;
        // The next push of every event is a full one.
        tx.execute("DELETE FROM pushed_object_sets", [])?;
        tx.execute("DELETE FROM manifest_entries", [])?;
        tx.execute("DELETE FROM s3_objects", [])?;
        match scope {
            ResetOrigin::Operator => {
                tx.execute(
                    "INSERT INTO checkpoint (id, reset_pending, updated_at) VALUES (1, 1, ?1)
                     ON CONFLICT(id) DO UPDATE SET last_run = NULL, last_event_timestamp = NULL,
                        manifest_etag = NULL, manifest_last_modified = NULL, last_file = NULL,
                        reset_pending = 1, updated_at = ?1",
                    params![now],
                )?;
            }
            ResetOrigin::Platform => {
                tx.execute("DELETE FROM checkpoint", [])?;
            }
        }
        tx.commit()?;
        Ok(removed as u64)
    }

    /// Makes one event due again on the next run. Says whether the ledger knows it, and
    /// whether the feed still lists it (an event no longer listed cannot be fetched).
    pub(crate) fn reset_event(&mut self, uuid: &str) -> Result<EventReset> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE events SET status = ?3, attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?2 WHERE uuid = ?1",
            params![uuid, now, EventStatus::Pending],
        )?;
        if changed == 0 {
            return Ok(EventReset::Unknown);
        }
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             VALUES (?1, ?2, ?3, 'reset by operator')",
            params![uuid, now, HistoryAction::Reset],
        )?;
        tx.execute(
            "DELETE FROM pushed_object_sets WHERE event_uuid = ?1",
            params![uuid],
        )?;
        let listed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM manifest_entries WHERE uuid = ?1)
                OR EXISTS (SELECT 1 FROM s3_objects o JOIN events e ON o.key = e.source_key
                           WHERE e.uuid = ?1 AND o.status != ?2)",
            params![uuid, ObjectStatus::Deleted],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM s3_objects WHERE key = (SELECT source_key FROM events WHERE uuid = ?1)",
            params![uuid],
        )?;
        tx.commit()?;
        Ok(if listed {
            EventReset::Listed
        } else {
            EventReset::NotListed
        })
    }

    /// Makes every event whose manifest timestamp is at or after `since` due again (those
    /// recorded too old included), lowers the import floor to `since` when it was later, and
    /// moves the checkpoint back; the platform is told at the next ping.
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
        tx.execute(
            "DELETE FROM pushed_object_sets WHERE event_uuid IN
                (SELECT uuid FROM events WHERE manifest_timestamp >= ?1)",
            params![since_ts],
        )?;
        let changed = tx.execute(
            "UPDATE events SET status = ?3, attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?1 WHERE manifest_timestamp >= ?2",
            params![now, since_ts, EventStatus::Pending],
        )?;
        tx.execute(
            "INSERT INTO checkpoint (id, import_floor, floor_origin, reset_pending, updated_at)
             VALUES (1, ?1, ?3, 1, ?2)
             ON CONFLICT(id) DO UPDATE SET manifest_etag = NULL, manifest_last_modified = NULL,
                last_event_timestamp = CASE WHEN last_event_timestamp IS NULL
                    OR last_event_timestamp > ?1 THEN ?1 ELSE last_event_timestamp END,
                floor_origin = CASE WHEN import_floor IS NULL OR import_floor > ?1
                    THEN ?3 ELSE floor_origin END,
                import_floor = CASE WHEN import_floor IS NULL OR import_floor > ?1
                    THEN ?1 ELSE import_floor END,
                reset_pending = 1, updated_at = ?2",
            params![since_ts, now, FloorOrigin::Reset],
        )?;
        tx.execute(
            "DELETE FROM s3_objects WHERE updated_at >= ?1",
            params![time_text(since)],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }

    /// Gives failed, given-up and refused events (or one of them) a fresh set of attempts.
    pub(crate) fn retry(&mut self, uuid: Option<&str>) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let filter = "status IN (?3, ?4, ?6) AND (?2 IS NULL OR uuid = ?2)";
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
                HistoryAction::Retry,
                EventStatus::Refused
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
                EventStatus::Pending,
                EventStatus::Refused
            ],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }
}
