//! Runs, the checkpoint and the manifest as last listed.

use rusqlite::{OptionalExtension, params};

use super::{Store, count_at};
use crate::ledger::checkpoint::Checkpoint;
use crate::ledger::types::*;
use crate::ledger::{Result, now_text};
use crate::source::ManifestEntry;

impl Store {
    pub(crate) fn begin_run(&self, source: &str) -> Result<RunId> {
        self.conn.execute(
            "INSERT INTO runs (started_at, status, source) VALUES (?1, ?2, ?3)",
            params![now_text(), RunStatus::Running, source],
        )?;
        Ok(RunId(self.conn.last_insert_rowid()))
    }

    pub(crate) fn finish_run(&self, run: RunId, outcome: &RunOutcome) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, pushed = ?4, skipped = ?5, failed = ?6,
                    message = ?7 WHERE id = ?1",
            params![
                run,
                now_text(),
                outcome.status,
                outcome.pushed as i64,
                outcome.skipped as i64,
                outcome.failed as i64,
                outcome.message
            ],
        )?;
        Ok(())
    }

    pub(crate) fn last_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, started_at, finished_at, status, source, pushed, skipped, failed, work_id, message
             FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    finished_at: r.get(2)?,
                    status: r.get(3)?,
                    source: r.get(4)?,
                    pushed: count_at(r, 5)?,
                    skipped: count_at(r, 6)?,
                    failed: count_at(r, 7)?,
                    work_id: r.get(8)?,
                    message: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub(crate) fn checkpoint(&self) -> Result<Checkpoint> {
        let row = self
            .conn
            .query_row(
                "SELECT last_run, last_event_timestamp, manifest_etag, manifest_last_modified, last_file
                 FROM checkpoint WHERE id = 1",
                [],
                |r| {
                    Ok(Checkpoint {
                        last_run: r.get(0)?,
                        last_event_timestamp: r.get(1)?,
                        manifest_etag: r.get(2)?,
                        manifest_last_modified: r.get(3)?,
                        last_file: r.get(4)?,
                    })
                },
            )
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    pub(crate) fn store_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.conn.execute(
            "INSERT INTO checkpoint (id, last_run, last_event_timestamp, manifest_etag,
                                     manifest_last_modified, last_file, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET last_run = ?1, last_event_timestamp = ?2,
                manifest_etag = ?3, manifest_last_modified = ?4, last_file = ?5, updated_at = ?6",
            params![
                checkpoint.last_run,
                checkpoint.last_event_timestamp,
                checkpoint.manifest_etag,
                checkpoint.manifest_last_modified,
                checkpoint.last_file,
                now_text()
            ],
        )?;
        Ok(())
    }

    /// Records the manifest as listed now, in one transaction: entries the feed no longer
    /// lists are dropped, so that the recorded manifest is the feed's (a "not modified" run
    /// reads it, and `reset --event` tells whether the feed still lists an event).
    pub(crate) fn record_manifest(&mut self, run: RunId, entries: &[ManifestEntry]) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO manifest_entries (uuid, timestamp, info, date, first_seen_at, last_seen_at, last_seen_run, key, facts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)
                 ON CONFLICT(uuid) DO UPDATE SET timestamp = ?2, info = ?3, date = ?4,
                    last_seen_at = ?5, last_seen_run = ?6, key = ?7, facts = ?8",
            )?;
            for entry in entries {
                stmt.execute(params![
                    entry.uuid,
                    entry.timestamp,
                    entry.info,
                    entry.date,
                    now,
                    run,
                    entry.key,
                    serde_json::to_string(&entry.facts).ok()
                ])?;
            }
        }
        // The manifest as listed now: entries the feed no longer lists are not in it.
        tx.execute(
            "DELETE FROM manifest_entries WHERE last_seen_run IS NOT ?1",
            params![run],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The manifest as last recorded (used when the feed answers "not modified").
    pub(crate) fn manifest_entries(&self) -> Result<Vec<ManifestEntry>> {
        let mut stmt = self.conn.prepare(
            "SELECT uuid, timestamp, info, date, COALESCE(key, uuid), facts FROM manifest_entries
             ORDER BY timestamp, uuid",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ManifestEntry {
                    uuid: r.get(0)?,
                    timestamp: r.get(1)?,
                    info: r.get(2)?,
                    date: r.get(3)?,
                    key: r.get(4)?,
                    // Entries recorded before facts were kept know none: the event file decides.
                    facts: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|text| serde_json::from_str(&text).ok())
                        .unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
