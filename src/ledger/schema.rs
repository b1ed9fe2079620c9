//! Schema versions. A new ledger gets the current schema in one step (`migrations/schema.sql`);
//! a ledger made by an older binary is brought to it by the numbered upgrade steps, each in
//! its own transaction and recorded in `schema_migrations`. A ledger written by a newer binary
//! is refused rather than guessed at; a reader never upgrades.
//!
//! Adding a version: write `migrations/NNNN_what.sql`, add it to `UPGRADES`, and change
//! `schema.sql` to match. `tests::an_upgraded_ledger_has_the_schema_of_a_new_one` fails
//! until the two agree.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{LedgerError, Result, now_text};

/// The schema a new ledger is created with.
const CURRENT_SCHEMA: &str = include_str!("../../migrations/schema.sql");

/// The first schema, as binaries before the first upgrade created it (kept to test upgrades).
#[cfg(test)]
const FIRST_SCHEMA: &str = include_str!("../../migrations/0001_init.sql");

/// (version reached, name, SQL), in order; version 1 is the first schema itself.
const UPGRADES: &[(i64, &str, &str)] = &[
    (
        2,
        "0002_destination_kind",
        include_str!("../../migrations/0002_destination_kind.sql"),
    ),
    (
        3,
        "0003_import_floor",
        include_str!("../../migrations/0003_import_floor.sql"),
    ),
    (
        4,
        "0004_left_out",
        include_str!("../../migrations/0004_left_out.sql"),
    ),
    (
        5,
        "0005_pushed_objects",
        include_str!("../../migrations/0005_pushed_objects.sql"),
    ),
    (
        6,
        "0006_pushed_object_sets",
        include_str!("../../migrations/0006_pushed_object_sets.sql"),
    ),
];

pub(crate) fn latest_version() -> i64 {
    UPGRADES.last().map_or(1, |upgrade| upgrade.0)
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

fn too_new(path: &Path, found: i64) -> LedgerError {
    LedgerError::TooNew {
        path: path.display().to_string(),
        found,
        known: latest_version(),
    }
}

const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// Creates the current schema in a new ledger, or upgrades an older one step by step.
pub(crate) fn create_or_upgrade(conn: &mut Connection, path: &Path) -> Result<()> {
    let current = current_version(conn)?;
    if current > latest_version() {
        return Err(too_new(path, current));
    }
    if current == 0 {
        let tx = conn.transaction()?;
        tx.execute_batch(VERSIONS_TABLE)?;
        tx.execute_batch(CURRENT_SCHEMA)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![latest_version(), "schema", now_text()],
        )?;
        return Ok(tx.commit()?);
    }
    for (version, name, sql) in UPGRADES.iter().filter(|upgrade| upgrade.0 > current) {
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

/// A reader cannot upgrade: it needs a ledger at exactly the version it understands.
pub(crate) fn check_readable(conn: &Connection, path: &Path) -> Result<()> {
    let current = current_version(conn)?;
    let known = latest_version();
    if current > known {
        return Err(too_new(path, current));
    }
    if current < known {
        return Err(LedgerError::Open {
            path: path.display().to_string(),
            message: format!(
                "schema version {current} is older than {known}; run `misp-feed once` to upgrade it"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ledger as the first binaries left it: the first schema, recorded as version 1.
    pub(crate) fn first_schema_ledger(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(VERSIONS_TABLE).unwrap();
        conn.execute_batch(FIRST_SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_init', 'then')",
            [],
        )
        .unwrap();
        conn
    }

    /// A ledger as the binaries of schema `version` left it: the first schema and the
    /// upgrades up to `version`.
    pub(crate) fn ledger_at_version(path: &Path, version: i64) -> Connection {
        let conn = first_schema_ledger(path);
        for (reached, name, sql) in UPGRADES.iter().filter(|upgrade| upgrade.0 <= version) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, 'then')",
                params![reached, name],
            )
            .unwrap();
        }
        conn
    }

    /// Every table and index with its columns (name, type, not null, default, key) and SQL
    /// text stripped of comments and spacing, so that two schemas compare as what they are.
    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut names: Vec<(String, String)> = conn
            .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        names.retain(|(_, name)| name != "schema_migrations");
        let mut described = Vec::new();
        for (kind, name) in names {
            if kind == "table" {
                let columns: Vec<String> = conn
                    .prepare(&format!("PRAGMA table_info({name})"))
                    .unwrap()
                    .query_map([], |r| {
                        Ok(format!(
                            "{}.{} {} notnull={} default={:?} pk={}",
                            name,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                described.extend(columns);
                let checks: String = conn
                    .query_row(
                        "SELECT sql FROM sqlite_master WHERE name = ?1",
                        [&name],
                        |r| r.get(0),
                    )
                    .unwrap();
                described.push(format!("{name} checks: {}", checks_of(&checks)));
            } else {
                described.push(format!("{kind} {name}"));
            }
        }
        described
    }

    /// The CHECK clauses of a table's SQL, in order, without comments or spacing.
    fn checks_of(sql: &str) -> String {
        let code: String = sql
            .lines()
            .map(|line| line.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut checks = Vec::new();
        for (at, _) in flat.match_indices("CHECK (") {
            let mut depth = 0;
            for (offset, c) in flat[at..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            checks.push(flat[at..=at + offset].to_string());
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        checks.join(" ")
    }

    #[test]
    fn an_upgraded_ledger_has_the_schema_of_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut upgraded = first_schema_ledger(&dir.path().join("old.sqlite"));
        create_or_upgrade(&mut upgraded, Path::new("old.sqlite")).unwrap();
        let mut fresh = Connection::open(dir.path().join("new.sqlite")).unwrap();
        create_or_upgrade(&mut fresh, Path::new("new.sqlite")).unwrap();
        assert_eq!(schema_of(&upgraded), schema_of(&fresh));
        assert_eq!(current_version(&upgraded).unwrap(), latest_version());
        assert_eq!(current_version(&fresh).unwrap(), latest_version());
    }

    #[test]
    fn upgrading_classifies_the_destinations_already_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = first_schema_ledger(&dir.path().join("old.sqlite"));
        for (uuid, destination) in [
            ("a", "/data/bundles/misp-feed_2024.json"),
            ("b", "d9f8e0c4-7a0b-4d1e-9a53-6f1c2b3a4d5e"),
        ] {
            conn.execute(
                "INSERT INTO events (uuid, source_key, status, destination, updated_at)
                 VALUES (?1, ?1, 'pushed', ?2, 'then')",
                params![uuid, destination],
            )
            .unwrap();
        }
        create_or_upgrade(&mut conn, Path::new("old.sqlite")).unwrap();
        let kinds: Vec<(String, String)> = conn
            .prepare("SELECT uuid, destination_kind FROM events ORDER BY uuid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            kinds,
            vec![("a".into(), "file".into()), ("b".into(), "work".into())]
        );
    }

    #[test]
    fn a_reader_refuses_a_ledger_it_would_have_to_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let conn = first_schema_ledger(&path);
        let refused = check_readable(&conn, &path).unwrap_err();
        assert!(refused.to_string().contains("older than"), "{refused}");
    }
}
