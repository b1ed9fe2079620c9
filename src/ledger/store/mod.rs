//! The SQLite side of the ledger: one connection, used by the ledger's own thread only.
//! Every method is one transaction (or one statement), so each state change is on disk
//! before the caller takes the next step.

mod events;
mod floor;
mod left_out;
mod object_hashes;
mod operator;
mod runs;
mod s3;

use std::path::Path;

use rusqlite::{Connection, OpenFlags, Row, params};

pub(crate) use floor::OldEntry;
pub(crate) use left_out::LeftOut;

use super::lock::WriterLock;
use super::types::*;
use super::{LedgerError, Result, now_text, schema};

pub(crate) struct Store {
    conn: Connection,
    /// Held for the life of a writer; dropping it releases the lock.
    _lock: Option<WriterLock>,
}

impl Store {
    /// Opens (creating if needed) the ledger for writing: takes the writer lock, creates or
    /// upgrades the schema, and marks runs left `running` by a crash as `interrupted`.
    pub(crate) fn open_writer(path: &Path) -> Result<Store> {
        let lock = WriterLock::acquire(path)?;
        let conn = Connection::open(path).map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Room for every statement the writer prepares once and keeps (rusqlite's default
        // is 16), so a run never parses one of them again.
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = Store {
            conn,
            _lock: Some(lock),
        };
        schema::create_or_upgrade(&mut store.conn, path)?;
        // A run a crash cut short never wrote its counts: they are what its history holds.
        store.conn.execute(
            "UPDATE runs SET status = ?1, finished_at = ?2,
                pushed = (SELECT COUNT(*) FROM event_history h WHERE h.run_id = runs.id AND h.action = ?4),
                failed = (SELECT COUNT(*) FROM event_history h WHERE h.run_id = runs.id AND h.action IN (?5, ?6)),
                message = 'interrupted; counts taken from the event history'
             WHERE status = ?3",
            params![
                RunStatus::Interrupted,
                now_text(),
                RunStatus::Running,
                HistoryAction::Pushed,
                HistoryAction::Failed,
                HistoryAction::GaveUp
            ],
        )?;
        Ok(store)
    }

    /// Opens an existing ledger for reading only (status, events, show): no lock needed,
    /// WAL lets it read while a writer runs.
    pub(crate) fn open_reader(path: &Path) -> Result<Store> {
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
        schema::check_readable(&conn, path)?;
        Ok(Store { conn, _lock: None })
    }

    /// A consistent copy of the ledger at `path` into `target` (a new file): what
    /// `once --dry-run` works on, so that the ledger itself is never written.
    pub(crate) fn copy_file(path: &Path, target: &Path) -> Result<()> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute("VACUUM INTO ?1", params![target.display().to_string()])?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub(crate) fn integrity_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows.join("; "))
    }

    /// The ledger's own consistency check, beyond SQLite's: every pushed event carries its
    /// confirmation (destination, time, message count, bundle hash), a matching `pushed`
    /// history row, and, for the bundle folder, a file that is still there (unless the
    /// folder's retention removed it, which the caller may allow).
    pub(crate) fn verify(&self, files_may_expire: bool) -> Result<VerifyReport> {
        let integrity = self.integrity_check()?;
        let mut problems = Vec::new();
        if integrity != "ok" {
            problems.push(format!("integrity_check: {integrity}"));
        }
        let pushed = self.events_where("status = ?1", params![EventStatus::Pushed])?;
        let mut confirmed = self.conn.prepare(
            "SELECT COUNT(*) FROM event_history WHERE event_uuid = ?1 AND action = ?2
                AND destination = ?3",
        )?;
        for event in &pushed {
            let uuid = &event.uuid;
            let Some(destination) = &event.destination else {
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
            let rows: i64 = confirmed.query_row(
                params![uuid, HistoryAction::Pushed, destination.text()],
                |r| r.get(0),
            )?;
            if rows == 0 {
                problems.push(format!(
                    "event {uuid}: no `pushed` history row for {destination}"
                ));
            }
            if let Some(file) = destination.file()
                && !files_may_expire
                && !file.is_file()
            {
                problems.push(format!(
                    "event {uuid}: bundle file {} is missing",
                    file.display()
                ));
            }
        }
        let mut failing_stmt = self.conn.prepare(
            "SELECT e.uuid, e.status, e.last_error,
                    EXISTS (SELECT 1 FROM s3_objects o WHERE o.key = e.uuid)
             FROM events e WHERE e.status IN (?1, ?2) ORDER BY e.uuid",
        )?;
        let failing = failing_stmt
            .query_map(params![EventStatus::Failed, EventStatus::GaveUp], |r| {
                let (uuid, status, error, is_object): (String, EventStatus, Option<String>, bool) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(format!(
                    "{} {uuid} ({status}): {}",
                    if is_object { "object" } else { "event" },
                    error.as_deref().unwrap_or("no reason recorded")
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(VerifyReport {
            integrity,
            pushed_events: pushed.len() as u64,
            problems,
            failing,
        })
    }

    fn events_where(
        &self,
        condition: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<EventRecord>> {
        let mut stmt = self
            .conn
            .prepare(&format!("{EVENT_COLUMNS} WHERE {condition}"))?;
        let rows = stmt
            .query_map(args, event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// Reads a destination from its two columns; a text without a kind is an error, not a guess.
fn destination_at(
    r: &Row<'_>,
    text_at: usize,
    kind_at: usize,
) -> rusqlite::Result<Option<Destination>> {
    let text: Option<String> = r.get(text_at)?;
    let kind: Option<DestinationKind> = r.get(kind_at)?;
    match (text, kind) {
        (Some(text), Some(kind)) => Ok(Some(Destination::from_parts(kind, text))),
        (None, _) => Ok(None),
        (Some(_), None) => Err(rusqlite::Error::FromSqlConversionFailure(
            kind_at,
            rusqlite::types::Type::Null,
            "a destination without its kind".into(),
        )),
    }
}

fn count_at(r: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(index)?.max(0) as u64)
}

const EVENT_COLUMNS: &str = "SELECT uuid, source_key, manifest_timestamp, info, content_sha256,
    bundle_sha256, status, attempts, last_error, next_attempt_at, destination, messages,
    pushed_at, last_run, updated_at, destination_kind FROM events";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        uuid: r.get(0)?,
        source_key: r.get(1)?,
        manifest_timestamp: r.get(2)?,
        info: r.get(3)?,
        content_sha256: r.get(4)?,
        bundle_sha256: r.get(5)?,
        status: r.get(6)?,
        attempts: count_at(r, 7)? as u32,
        last_error: r.get(8)?,
        next_attempt_at: r.get(9)?,
        destination: destination_at(r, 10, 15)?,
        messages: r.get::<_, Option<i64>>(11)?.map(|m| m.max(0) as u64),
        pushed_at: r.get(12)?,
        last_run: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

const HISTORY_COLUMNS: &str = "SELECT id, event_uuid, run_id, at, action, detail, destination,
    content_sha256, bundle_sha256, destination_kind FROM event_history";

fn history_from_row(r: &Row<'_>) -> rusqlite::Result<HistoryRecord> {
    Ok(HistoryRecord {
        id: r.get(0)?,
        event_uuid: r.get(1)?,
        run_id: r.get(2)?,
        at: r.get(3)?,
        action: r.get(4)?,
        detail: r.get(5)?,
        destination: destination_at(r, 6, 9)?,
        content_sha256: r.get(7)?,
        bundle_sha256: r.get(8)?,
    })
}

/// One row of the audit trail.
#[derive(Default)]
struct HistoryRow<'a> {
    run: Option<RunId>,
    detail: Option<&'a str>,
    destination: Option<&'a Destination>,
    content_sha256: Option<&'a str>,
    bundle_sha256: Option<&'a str>,
}

fn append_history(
    tx: &rusqlite::Transaction<'_>,
    uuid: &str,
    at: &str,
    action: HistoryAction,
    row: HistoryRow<'_>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO event_history (event_uuid, run_id, at, action, detail, destination,
            destination_kind, content_sha256, bundle_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        uuid,
        row.run,
        at,
        action,
        row.detail,
        row.destination.map(Destination::text),
        row.destination.map(Destination::kind),
        row.content_sha256,
        row.bundle_sha256
    ])?;
    Ok(())
}
