//! S3 objects: which object (by key and ETag) delivered all its events.

use rusqlite::{OptionalExtension, params};

use super::{HistoryRow, Store, append_history, count_at};
use crate::ledger::types::*;
use crate::ledger::{Result, now_text, time_text};
use crate::source::ObjectEntry;

impl Store {
    pub(crate) fn s3_object(&self, key: &str) -> Result<Option<S3ObjectRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, etag, size, last_modified, status, events, last_error FROM s3_objects WHERE key = ?1",
        )?;
        Ok(stmt
            .query_row(params![key], |r| {
                Ok(S3ObjectRecord {
                    key: r.get(0)?,
                    etag: r.get(1)?,
                    size: count_at(r, 2)?,
                    last_modified: r.get(3)?,
                    status: r.get(4)?,
                    events: count_at(r, 5)?,
                    last_error: r.get(6)?,
                })
            })
            .optional()?)
    }

    pub(crate) fn record_s3_object(
        &self,
        run: RunId,
        object: &ObjectEntry,
        status: ObjectStatus,
        events: usize,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO s3_objects (key, etag, size, last_modified, status, events, last_error, last_seen_run, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(key) DO UPDATE SET etag = ?2, size = ?3, last_modified = ?4, status = ?5,
                events = ?6, last_error = ?7, last_seen_run = ?8, updated_at = ?9",
            params![
                object.key,
                object.etag,
                object.size.min(i64::MAX as u64) as i64,
                object.last_modified.map(time_text),
                status,
                events as i64,
                error,
                run,
                now_text()
            ],
        )?;
        Ok(())
    }

    /// The records of an object's events, and of the object itself when it failed whole.
    pub(crate) fn object_events(&self, key: &str) -> Result<Vec<EventRecord>> {
        self.events_where("source_key = ?1", params![key])
    }

    /// The object could be read again: the record of its earlier failure as a whole goes (its
    /// history stays, with a row saying so).
    pub(crate) fn resolve_object_failure(&mut self, run: RunId, key: &str) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let removed = tx.execute(
            "DELETE FROM events WHERE uuid = ?1 AND source_key = ?1",
            params![key],
        )?;
        if removed > 0 {
            let row = HistoryRow {
                run: Some(run),
                detail: Some("the object was read: its events are recorded on their own"),
                ..HistoryRow::default()
            };
            append_history(&tx, key, &now, HistoryAction::Resolved, row)?;
        }
        tx.commit()?;
        Ok(())
    }
}
