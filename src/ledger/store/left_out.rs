//! Events left out on purpose: by the import filters (`filtered`) or a guard (`refused`).
//! Each keeps the reason; when the settings that decided them change, they are decided again.

use rusqlite::{OptionalExtension, params};

use super::{HistoryRow, Store, append_history};
use crate::ledger::types::*;
use crate::ledger::{Result, now_text};

/// An event the pipeline leaves out, and why.
#[derive(Debug, Clone)]
pub(crate) struct LeftOut {
    pub(crate) uuid: String,
    pub(crate) source_key: String,
    pub(crate) manifest_timestamp: Option<i64>,
    pub(crate) info: Option<String>,
    /// `Filtered` or `Refused`.
    pub(crate) status: EventStatus,
    pub(crate) reason: String,
}

impl Store {
    /// Records events left out, in one transaction. A history row is written when the status
    /// or the reason changes, not at every run that finds the event left out again.
    pub(crate) fn record_left_out(&mut self, run: RunId, events: &[LeftOut]) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        for event in events {
            let known: Option<(EventStatus, Option<String>)> = tx
                .query_row(
                    "SELECT status, last_error FROM events WHERE uuid = ?1",
                    params![event.uuid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            tx.execute(
                "INSERT INTO events (uuid, source_key, manifest_timestamp, info, status, attempts, last_error, last_run, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)
                 ON CONFLICT(uuid) DO UPDATE SET source_key = ?2, manifest_timestamp = ?3,
                    info = COALESCE(?4, info), status = ?5, last_error = ?6,
                    next_attempt_at = NULL, last_run = ?7, updated_at = ?8",
                params![
                    event.uuid,
                    event.source_key,
                    event.manifest_timestamp,
                    event.info,
                    event.status,
                    event.reason,
                    run,
                    now
                ],
            )?;
            if known != Some((event.status, Some(event.reason.clone()))) {
                let row = HistoryRow {
                    run: Some(run),
                    detail: Some(&event.reason),
                    ..HistoryRow::default()
                };
                append_history(
                    &tx,
                    &event.uuid,
                    &now,
                    HistoryAction::from(event.status),
                    row,
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// When `fingerprint` (of the filters and the size limit) differs from the one stored,
    /// every filtered or refused event becomes due again, and the new fingerprint is stored.
    /// Returns how many were reopened. Pushed events are left as they are.
    pub(crate) fn reopen_left_out(&mut self, fingerprint: &str) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT decision_fingerprint FROM checkpoint WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if stored.as_deref() == Some(fingerprint) {
            return Ok(0);
        }
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, ?2, 'the import filters or the size limit changed: decided again'
             FROM events WHERE status IN (?3, ?4)",
            params![
                now,
                HistoryAction::Queued,
                EventStatus::Filtered,
                EventStatus::Refused
            ],
        )?;
        let reopened = tx.execute(
            "UPDATE events SET status = ?1, last_error = NULL, updated_at = ?2
             WHERE status IN (?3, ?4)",
            params![
                EventStatus::Pending,
                now,
                EventStatus::Filtered,
                EventStatus::Refused
            ],
        )?;
        tx.execute(
            "INSERT INTO checkpoint (id, decision_fingerprint, updated_at) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET decision_fingerprint = ?1, updated_at = ?2",
            params![fingerprint, now],
        )?;
        tx.commit()?;
        Ok(reopened as u64)
    }

    /// When `fingerprint` (of the conversion options) differs from the one stored, the
    /// recorded object hashes are forgotten (every event's next push is a full one) and the
    /// new fingerprint is stored. Returns whether they were.
    pub(crate) fn forget_hashes_if_options_changed(&mut self, fingerprint: &str) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT convert_fingerprint FROM checkpoint WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if stored.as_deref() == Some(fingerprint) {
            return Ok(false);
        }
        tx.execute("DELETE FROM pushed_object_sets", [])?;
        tx.execute(
            "INSERT INTO checkpoint (id, convert_fingerprint, updated_at) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET convert_fingerprint = ?1, updated_at = ?2",
            params![fingerprint, now_text()],
        )?;
        tx.commit()?;
        Ok(stored.is_some())
    }
}
