//! The import floor, and what the platform was last told: the ledger's side of the mirror
//! between its state and the connector state OpenCTI keeps.

use rusqlite::{OptionalExtension, params};

use super::{HistoryRow, Store, append_history};
use crate::ledger::checkpoint::{ImportFloor, PlatformSync};
use crate::ledger::types::*;
use crate::ledger::{Result, now_text, time_text};

/// An entry the reconciler found older than the import floor.
#[derive(Debug, Clone)]
pub(crate) struct OldEntry {
    pub(crate) uuid: String,
    pub(crate) manifest_timestamp: i64,
    pub(crate) info: Option<String>,
}

impl Store {
    pub(crate) fn import_floor(&self) -> Result<Option<ImportFloor>> {
        let row: Option<(Option<i64>, Option<FloorOrigin>)> = self
            .conn
            .query_row(
                "SELECT import_floor, floor_origin FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(at), origin)) => Some(ImportFloor {
                at,
                origin: origin.unwrap_or(FloorOrigin::FirstRun),
            }),
            _ => None,
        })
    }

    pub(crate) fn store_import_floor(&self, floor: ImportFloor) -> Result<()> {
        self.conn.execute(
            "INSERT INTO checkpoint (id, import_floor, floor_origin, updated_at) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET import_floor = ?1, floor_origin = ?2, updated_at = ?3",
            params![floor.at, floor.origin, now_text()],
        )?;
        Ok(())
    }

    /// The Python connector (or another connector under this id) imported everything up to
    /// `timestamp`: the checkpoint follows, and nothing older is imported again.
    pub(crate) fn adopt_platform_checkpoint(
        &self,
        timestamp: i64,
        last_run: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO checkpoint (id, last_event_timestamp, last_run, import_floor, floor_origin, updated_at)
             VALUES (1, ?1, ?2, ?1, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET last_event_timestamp = ?1,
                last_run = COALESCE(?2, last_run),
                floor_origin = CASE WHEN import_floor IS NULL OR import_floor < ?1 THEN ?3 ELSE floor_origin END,
                import_floor = MAX(COALESCE(import_floor, ?1), ?1),
                updated_at = ?4",
            params![timestamp, last_run, FloorOrigin::Platform, now_text()],
        )?;
        Ok(())
    }

    pub(crate) fn platform_sync(&self) -> Result<PlatformSync> {
        let row: Option<(Option<String>, i64)> = self
            .conn
            .query_row(
                "SELECT sent_state, reset_pending FROM checkpoint WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row
            .map(|(sent_state, reset_pending)| PlatformSync {
                sent_state,
                reset_pending: reset_pending != 0,
            })
            .unwrap_or_default())
    }

    /// A ping delivered `state` to the platform: it now knows the ledger's state, including
    /// any operator reset.
    pub(crate) fn state_delivered(&self, state: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO checkpoint (id, sent_state, reset_pending, updated_at) VALUES (1, ?1, 0, ?2)
             ON CONFLICT(id) DO UPDATE SET sent_state = ?1, reset_pending = 0, updated_at = ?2",
            params![state, now_text()],
        )?;
        Ok(())
    }

    /// Records entries older than the import floor as `too_old`, in one transaction: new
    /// ones, and known ones whose manifest timestamp moved (still too old). Returns how many
    /// records changed.
    pub(crate) fn record_too_old(
        &mut self,
        run: RunId,
        entries: &[OldEntry],
        floor: ImportFloor,
    ) -> Result<usize> {
        let now = now_text();
        let floor_text = chrono::DateTime::from_timestamp(floor.at, 0)
            .map(time_text)
            .unwrap_or_else(|| floor.at.to_string());
        let detail = format!(
            "older than the import floor {floor_text} (set by {}): not imported",
            floor.origin
        );
        let tx = self.conn.transaction()?;
        let mut changed = 0;
        for entry in entries {
            let written = tx.execute(
                "INSERT INTO events (uuid, source_key, manifest_timestamp, info, status, attempts, last_run, updated_at)
                 VALUES (?1, ?1, ?2, ?3, ?4, 0, ?5, ?6)
                 ON CONFLICT(uuid) DO UPDATE SET manifest_timestamp = ?2, info = COALESCE(?3, info),
                    last_run = ?5, updated_at = ?6
                 WHERE status = ?4 AND manifest_timestamp IS NOT ?2",
                params![
                    entry.uuid,
                    entry.manifest_timestamp,
                    entry.info,
                    EventStatus::TooOld,
                    run,
                    now
                ],
            )?;
            if written > 0 {
                changed += 1;
                let row = HistoryRow {
                    run: Some(run),
                    detail: Some(&detail),
                    ..HistoryRow::default()
                };
                append_history(&tx, &entry.uuid, &now, HistoryAction::TooOld, row)?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }
}
