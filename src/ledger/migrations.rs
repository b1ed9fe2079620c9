//! Schema migrations: the SQL files of `migrations/`, applied in order, each recorded in
//! `schema_migrations`. A ledger written by a newer binary is refused rather than guessed at.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{LedgerError, Result, now_text};

/// (version, name, SQL), in order. A new migration is a new file and a new line here.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_init",
    include_str!("../../migrations/0001_init.sql"),
)];

pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

fn current_version(conn: &Connection) -> Result<i64> {
    let has_table: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?)
}

pub fn apply(conn: &mut Connection, path: &Path) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    let current = current_version(conn)?;
    let known = latest_version();
    if current > known {
        return Err(LedgerError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, now_text()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// A reader cannot migrate: it needs a ledger at exactly a version it understands.
pub fn check_readable(conn: &Connection, path: &Path) -> Result<()> {
    let current = current_version(conn)?;
    let known = latest_version();
    if current > known {
        return Err(LedgerError::TooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    if current < known {
        return Err(LedgerError::Open {
            path: path.display().to_string(),
            message: format!(
                "schema version {current} is older than {known}; run `misp-feed once` to migrate it"
            ),
        });
    }
    Ok(())
}
