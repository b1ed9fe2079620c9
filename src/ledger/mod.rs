//! The SQLite ledger: the connector's memory.
//!
//! It records every manifest entry, S3 object and event with its push status, and an
//! append-only history of every attempt. Each state change is committed before the next
//! step of the pipeline, so a crash at any point leaves a ledger the next run can resolve:
//! an event is `in_flight` before it is handed to a sink and `pushed` only once the sink
//! confirmed it.
//!
//! One writer at a time: a writer holds an exclusive lock on `<ledger>.lock` for its life.

mod migrations;
mod records;

pub use records::*;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "ledger {path} is in use by another misp-feed process (lock file {lock}); stop it first"
    )]
    Locked { path: String, lock: String },
    #[error(
        "ledger {path} has schema version {found}, newer than this binary knows ({known}); upgrade misp-feed"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, LedgerError>;

pub fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// Held for the life of a writer; dropping it releases the lock.
    _lock: Option<File>,
}

impl Ledger {
    /// Opens (creating if needed) the ledger for writing: takes the writer lock, applies
    /// pending migrations, and marks runs left `running` by a crash as `interrupted`.
    pub fn open(path: &Path) -> Result<Ledger> {
        let lock = acquire_writer_lock(path)?;
        let conn = Connection::open(path).map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        restrict_permissions(path);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: Some(lock),
        };
        migrations::apply(&mut ledger.conn, path)?;
        ledger.conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running'",
            params![now_text()],
        )?;
        Ok(ledger)
    }

    /// Opens an existing ledger for reading only (status, events, show): no lock needed,
    /// WAL lets it read while a writer runs.
    pub fn open_read_only(path: &Path) -> Result<Ledger> {
        if !path.exists() {
            return Err(LedgerError::Open {
                path: path.display().to_string(),
                message: "no ledger here yet (run `misp-feed once` first)".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrations::check_readable(&conn, path)?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows.join("; "))
    }

    /// The ledger's own consistency check, beyond SQLite's: every pushed event carries its
    /// confirmation (destination, time, message count, bundle hash), a matching `pushed`
    /// history row, and, for the bundle folder, a file that is still there (unless the
    /// folder's retention removed it, which the caller may allow).
    pub fn verify(&self, files_may_expire: bool) -> Result<VerifyReport> {
        let integrity = self.integrity_check()?;
        let mut problems = Vec::new();
        if integrity != "ok" {
            problems.push(format!("integrity_check: {integrity}"));
        }
        let mut stmt = self
            .conn
            .prepare(&format!("{} WHERE status = 'pushed'", EventRecord::SELECT))?;
        let pushed: Vec<EventRecord> = stmt
            .query_map([], EventRecord::from_row)?
            .collect::<std::result::Result<_, _>>()?;
        let mut confirmed = self.conn.prepare(
            "SELECT COUNT(*) FROM event_history WHERE event_uuid = ?1 AND action = 'pushed'
                AND (?2 IS NULL OR destination = ?2)",
        )?;
        for event in &pushed {
            let uuid = &event.uuid;
            let Some(destination) = event.destination.as_deref() else {
                problems.push(format!("event {uuid}: pushed without a destination"));
                continue;
            };
            if event.pushed_at.is_none() {
                problems.push(format!("event {uuid}: pushed without a time"));
            }
            if event.messages.unwrap_or(0) == 0 {
                problems.push(format!("event {uuid}: pushed with no confirmed message"));
            }
            if event.bundle_sha256.is_none() {
                problems.push(format!("event {uuid}: pushed without a bundle hash"));
            }
            let rows: i64 = confirmed.query_row(params![uuid, destination], |r| r.get(0))?;
            if rows == 0 {
                problems.push(format!(
                    "event {uuid}: no `pushed` history row for {destination}"
                ));
            }
            let is_file = destination.ends_with(".json") && Path::new(destination).is_absolute();
            if is_file && !files_may_expire && !Path::new(destination).is_file() {
                problems.push(format!(
                    "event {uuid}: bundle file {destination} is missing"
                ));
            }
        }
        Ok(VerifyReport {
            integrity,
            pushed_events: pushed.len() as u64,
            problems,
        })
    }

    // ---- runs -------------------------------------------------------------------------

    pub fn begin_run(&self, source: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (started_at, status, source) VALUES (?1, 'running', ?2)",
            params![now_text(), source],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_run(&self, run_id: i64, outcome: &RunOutcome) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, pushed = ?4, skipped = ?5, failed = ?6,
                    work_id = ?7, message = ?8 WHERE id = ?1",
            params![
                run_id,
                now_text(),
                outcome.status,
                outcome.pushed as i64,
                outcome.skipped as i64,
                outcome.failed as i64,
                outcome.work_id,
                outcome.message
            ],
        )?;
        Ok(())
    }

    pub fn last_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, started_at, finished_at, status, source, pushed, skipped, failed, work_id, message
             FROM runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit as i64], RunRecord::from_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    // ---- checkpoint ---------------------------------------------------------------------

    pub fn checkpoint(&self) -> Result<Checkpoint> {
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

    pub fn set_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
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

    // ---- manifest -----------------------------------------------------------------------

    /// Records the manifest as listed now, in one transaction.
    pub fn record_manifest(
        &mut self,
        run_id: i64,
        entries: &[crate::source::ManifestEntry],
    ) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO manifest_entries (uuid, timestamp, info, date, first_seen_at, last_seen_at, last_seen_run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT(uuid) DO UPDATE SET timestamp = ?2, info = ?3, date = ?4,
                    last_seen_at = ?5, last_seen_run = ?6",
            )?;
            for entry in entries {
                stmt.execute(params![
                    entry.uuid,
                    entry.timestamp,
                    entry.info,
                    entry.date,
                    now,
                    run_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The manifest as last recorded (used when the feed answers "not modified").
    pub fn manifest_entries(&self) -> Result<Vec<crate::source::ManifestEntry>> {
        let mut stmt = self.conn.prepare(
            "SELECT uuid, timestamp, info, date FROM manifest_entries ORDER BY timestamp, uuid",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(crate::source::ManifestEntry {
                    uuid: r.get(0)?,
                    timestamp: r.get(1)?,
                    info: r.get(2)?,
                    date: r.get(3)?,
                })
            })?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    // ---- events -------------------------------------------------------------------------

    pub fn event(&self, uuid: &str) -> Result<Option<EventRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{} WHERE uuid = ?1", EventRecord::SELECT))?;
        Ok(stmt
            .query_row(params![uuid], EventRecord::from_row)
            .optional()?)
    }

    /// Every event record, keyed by uuid (the reconciler's view of the ledger).
    pub fn event_map(&self) -> Result<std::collections::HashMap<String, EventRecord>> {
        let mut stmt = self.conn.prepare(EventRecord::SELECT)?;
        let rows = stmt.query_map([], EventRecord::from_row)?;
        let mut map = std::collections::HashMap::new();
        for row in rows {
            let record = row?;
            map.insert(record.uuid.clone(), record);
        }
        Ok(map)
    }

    pub fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let mut sql = format!("{} WHERE 1 = 1", EventRecord::SELECT);
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(status.as_str().to_string().into());
        }
        if let Some(since) = filter.updated_since {
            sql.push_str(" AND updated_at >= ?");
            args.push(time_text(since).into());
        }
        sql.push_str(" ORDER BY updated_at DESC, uuid");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), EventRecord::from_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn history(&self, uuid: &str) -> Result<Vec<HistoryRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, event_uuid, run_id, at, action, detail, destination, content_sha256, bundle_sha256
             FROM event_history WHERE event_uuid = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![uuid], HistoryRecord::from_row)?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn status_counts(&self) -> Result<Vec<(EventStatus, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM events GROUP BY status")?;
        let mut counts: Vec<(EventStatus, u64)> =
            EventStatus::ALL.iter().map(|s| (*s, 0u64)).collect();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, count) = row?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                slot.1 = count as u64;
            }
        }
        Ok(counts)
    }

    /// Records that an event is due: creates its row (status `pending`) or keeps the existing
    /// one's attempts, so a crash after this point still knows the event is owed.
    pub fn queue_event(&mut self, run_id: i64, event: &QueuedEvent<'_>) -> Result<()> {
        self.queue_events(run_id, std::slice::from_ref(event))
    }

    /// [`Ledger::queue_event`] for a run's whole due list in one transaction: one disk sync
    /// instead of one per event.
    pub fn queue_events(&mut self, run_id: i64, events: &[QueuedEvent<'_>]) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        for event in events {
            tx.execute(
                "INSERT INTO events (uuid, source_key, manifest_timestamp, info, status, attempts, last_run, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6)
                 ON CONFLICT(uuid) DO UPDATE SET source_key = ?2, manifest_timestamp = ?3,
                    info = COALESCE(?4, info), status = CASE WHEN status = 'pushed' OR status = 'gave_up'
                    THEN 'pending' ELSE status END, last_run = ?5, updated_at = ?6",
                params![
                    event.uuid,
                    event.source_key,
                    event.manifest_timestamp,
                    event.info,
                    run_id,
                    now
                ],
            )?;
            append_history(
                &tx,
                event.uuid,
                run_id,
                &now,
                "queued",
                Some(event.reason),
                None,
                None,
                None,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The event is about to be handed to the sink.
    pub fn mark_in_flight(
        &mut self,
        run_id: i64,
        uuid: &str,
        content_sha256: &str,
        bundle_sha256: &str,
    ) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE events SET status = 'in_flight', content_sha256 = ?2, bundle_sha256 = ?3,
                attempts = attempts + 1, last_run = ?4, updated_at = ?5 WHERE uuid = ?1",
            params![uuid, content_sha256, bundle_sha256, run_id, now],
        )?;
        append_history(
            &tx,
            uuid,
            run_id,
            &now,
            "in_flight",
            None,
            None,
            Some(content_sha256),
            Some(bundle_sha256),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The sink confirmed the bundle.
    pub fn mark_pushed(
        &mut self,
        run_id: i64,
        uuid: &str,
        destination: &str,
        messages: u64,
    ) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE events SET status = 'pushed', destination = ?2, messages = ?3, pushed_at = ?4,
                last_error = NULL, next_attempt_at = NULL, attempts = 0, last_run = ?5, updated_at = ?4
             WHERE uuid = ?1",
            params![uuid, destination, messages as i64, now, run_id],
        )?;
        append_history(
            &tx,
            uuid,
            run_id,
            &now,
            "pushed",
            Some(&format!("{messages} message(s) confirmed")),
            Some(destination),
            None,
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The event's content is the same as what was pushed: note the new manifest timestamp.
    pub fn mark_unchanged(&mut self, run_id: i64, uuid: &str, reason: &str) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE events SET status = 'pushed', last_run = ?2, updated_at = ?3 WHERE uuid = ?1",
            params![uuid, run_id, now],
        )?;
        append_history(
            &tx,
            uuid,
            run_id,
            &now,
            "skipped",
            Some(reason),
            None,
            None,
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A fetch, conversion or push failed. Counts an attempt (a fetch or conversion failure
    /// never reached `mark_in_flight`), schedules the retry with exponential backoff, and gives
    /// up once `max_attempts` is reached. Returns the new status.
    pub fn mark_failed(
        &mut self,
        run_id: i64,
        uuid: &str,
        stage: FailureStage,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<EventStatus> {
        let now_time = Utc::now();
        let now = time_text(now_time);
        let tx = self.conn.transaction()?;
        let counted: i64 = tx
            .query_row(
                "SELECT attempts, status FROM events WHERE uuid = ?1",
                params![uuid],
                |r| {
                    let attempts: i64 = r.get(0)?;
                    let status: String = r.get(1)?;
                    // mark_in_flight already counted the attempt of a push failure.
                    Ok(if status == "in_flight" {
                        attempts
                    } else {
                        attempts + 1
                    })
                },
            )
            .optional()?
            .unwrap_or(1);
        let gave_up = counted >= i64::from(policy.max_attempts.max(1));
        let status = if gave_up {
            EventStatus::GaveUp
        } else {
            EventStatus::Failed
        };
        let next_attempt = if gave_up {
            None
        } else {
            Some(time_text(now_time + policy.backoff_after(counted as u32)))
        };
        let message = format!("{}: {}", stage.as_str(), error);
        tx.execute(
            "UPDATE events SET status = ?2, attempts = ?3, last_error = ?4, next_attempt_at = ?5,
                last_run = ?6, updated_at = ?7 WHERE uuid = ?1",
            params![
                uuid,
                status.as_str(),
                counted,
                message,
                next_attempt,
                run_id,
                now
            ],
        )?;
        append_history(
            &tx,
            uuid,
            run_id,
            &now,
            status.as_str(),
            Some(&message),
            None,
            None,
            None,
        )?;
        tx.commit()?;
        Ok(status)
    }

    // ---- S3 objects ---------------------------------------------------------------------

    pub fn s3_object(&self, key: &str) -> Result<Option<S3ObjectRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, etag, size, last_modified, status, events, last_error FROM s3_objects WHERE key = ?1",
        )?;
        Ok(stmt
            .query_row(params![key], S3ObjectRecord::from_row)
            .optional()?)
    }

    pub fn record_s3_object(
        &self,
        run_id: i64,
        object: &crate::source::ObjectEntry,
        status: &str,
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
                object.size as i64,
                object.last_modified.map(time_text),
                status,
                events as i64,
                error,
                run_id,
                now_text()
            ],
        )?;
        Ok(())
    }

    // ---- operator actions ---------------------------------------------------------------

    /// Forgets everything but the audit trail (runs and history are kept): the checkpoint,
    /// the manifest, S3 objects and event states. The next run starts as a first run.
    pub fn reset_all(&mut self, why: &str) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, 'reset', ?2 FROM events",
            params![now, why],
        )?;
        let removed = tx.execute("DELETE FROM events", [])?;
        tx.execute("DELETE FROM manifest_entries", [])?;
        tx.execute("DELETE FROM s3_objects", [])?;
        tx.execute("DELETE FROM checkpoint", [])?;
        tx.commit()?;
        Ok(removed as u64)
    }

    /// Makes one event due again on the next run, whatever the checkpoint says.
    pub fn reset_event(&mut self, uuid: &str) -> Result<bool> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?2 WHERE uuid = ?1",
            params![uuid, now],
        )?;
        if changed > 0 {
            append_history(
                &tx,
                uuid,
                0,
                &now,
                "reset",
                Some("reset by operator"),
                None,
                None,
                None,
            )?;
            tx.execute(
                "DELETE FROM s3_objects WHERE key = (SELECT source_key FROM events WHERE uuid = ?1)",
                params![uuid],
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Makes every event whose manifest timestamp is at or after `since` due again, and moves
    /// the checkpoint back so that entries not yet in the ledger from then on qualify too.
    pub fn reset_since(&mut self, since: DateTime<Utc>) -> Result<u64> {
        let now = now_text();
        let since_ts = since.timestamp();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO event_history (event_uuid, at, action, detail)
             SELECT uuid, ?1, 'reset', ?2 FROM events WHERE manifest_timestamp >= ?3",
            params![now, format!("reset since {}", time_text(since)), since_ts],
        )?;
        let changed = tx.execute(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = NULL,
                content_sha256 = NULL, updated_at = ?1 WHERE manifest_timestamp >= ?2",
            params![now, since_ts],
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
    pub fn retry(&mut self, uuid: Option<&str>) -> Result<u64> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let filter = "status IN ('failed', 'gave_up') AND (?2 IS NULL OR uuid = ?2)";
        tx.execute(
            &format!(
                "INSERT INTO event_history (event_uuid, at, action, detail)
                 SELECT uuid, ?1, 'retry', 'retry requested by operator' FROM events WHERE {filter}"
            ),
            params![now, uuid],
        )?;
        let changed = tx.execute(
            &format!(
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = NULL,
                    updated_at = ?1 WHERE {filter}"
            ),
            params![now, uuid],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }
}

#[allow(clippy::too_many_arguments)]
fn append_history(
    tx: &rusqlite::Transaction<'_>,
    uuid: &str,
    run_id: i64,
    at: &str,
    action: &str,
    detail: Option<&str>,
    destination: Option<&str>,
    content_sha256: Option<&str>,
    bundle_sha256: Option<&str>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO event_history (event_uuid, run_id, at, action, detail, destination, content_sha256, bundle_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            uuid,
            if run_id > 0 { Some(run_id) } else { None },
            at,
            action,
            detail,
            destination,
            content_sha256,
            bundle_sha256
        ],
    )?;
    Ok(())
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn acquire_writer_lock(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: format!("cannot create folder {}: {e}", parent.display()),
        })?;
    }
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: format!("cannot open lock file {}: {e}", lock.display()),
        })?;
    // flock works on a read-only descriptor: a lock file others can open is one they can
    // hold to keep the connector from starting.
    restrict_permissions(&lock);
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LedgerError::Locked {
            path: path.display().to_string(),
            lock: lock.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(LedgerError::Open {
            path: path.display().to_string(),
            message: format!("cannot lock {}: {e}", lock.display()),
        }),
    }
}

/// The ledger names events and their history: owner-only, like the bundles.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}
