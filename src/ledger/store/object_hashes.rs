//! The delta push's memory: per pushed event, the stable-content hash of each object the
//! platform confirmed, kept as one row of text per event (`migrations/0006`): one line per
//! object, `<object id> <hash as 16 hex digits>`.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::Store;
use crate::ledger::Result;
use crate::ledger::types::PushedObjects;

/// What an event's objects hash to, by object id.
pub(crate) type ObjectHashes = HashMap<String, [u8; 8]>;

impl Store {
    /// The stable-content hashes the platform holds for `uuid`'s objects; `None` when none
    /// are known (never pushed, reset, or pushed before hashes were kept).
    pub(crate) fn object_hashes(&self, uuid: &str) -> Result<Option<ObjectHashes>> {
        let hashes = read(&self.conn, uuid)?;
        Ok((!hashes.is_empty()).then_some(hashes))
    }
}

/// Brings the event's recorded hashes to what the platform holds after this push: the
/// objects sent replace the previous set (a full push) or update it (a delta push, which
/// also drops the objects the event no longer has). Lines are in the order they were sent,
/// a later line of an id overriding an earlier one as the set is read back.
pub(super) fn record(tx: &Transaction<'_>, uuid: &str, objects: &PushedObjects) -> Result<()> {
    let text = if objects.full {
        let mut text = String::with_capacity(objects.sent.len() * 80);
        append(&mut text, &objects.sent);
        text
    } else {
        if objects.sent.is_empty() && objects.removed.is_empty() {
            return Ok(());
        }
        // The held lines are copied as they are, except those of the objects this push
        // changed, which are left out and written again after them: an update of a few
        // objects reads no hash and sorts nothing.
        let held = held_text(tx, uuid)?;
        let changed: HashSet<&str> = (objects.sent.iter().map(|(id, _)| id.as_str()))
            .chain(objects.removed.iter().map(String::as_str))
            .collect();
        let held = held.unwrap_or_default();
        let mut text = String::with_capacity(held.len() + objects.sent.len() * 80);
        for line in held.split('\n') {
            let id = line.rsplit_once(' ').map_or(line, |(id, _)| id);
            if line.is_empty() || changed.contains(id) {
                continue;
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
        }
        append(&mut text, &objects.sent);
        text
    };
    if text.is_empty() {
        tx.prepare_cached("DELETE FROM pushed_object_sets WHERE event_uuid = ?1")?
            .execute(params![uuid])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO pushed_object_sets (event_uuid, objects) VALUES (?1, ?2)
             ON CONFLICT(event_uuid) DO UPDATE SET objects = ?2",
        )?
        .execute(params![uuid, text])?;
    }
    Ok(())
}

fn read(conn: &Connection, uuid: &str) -> Result<ObjectHashes> {
    Ok(held_text(conn, uuid)?
        .as_deref()
        .map(decode)
        .unwrap_or_default())
}

/// The event's lines as stored; `None` when it has none.
fn held_text(conn: &Connection, uuid: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT objects FROM pushed_object_sets WHERE event_uuid = ?1")?
        .query_row(params![uuid], |row| row.get(0))
        .optional()?)
}

/// Appends a line per object to `text`.
fn append(text: &mut String, objects: &[(String, [u8; 8])]) {
    let mut digits = [0u8; 16];
    for (id, hash) in objects {
        // An id that could not be read back as one line is not recorded: its object then
        // counts as unknown and is sent again, never taken for another.
        if id.is_empty() || id.contains('\n') {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(id);
        text.push(' ');
        if hex::encode_to_slice(hash, &mut digits).is_ok() {
            text.extend(digits.iter().copied().map(char::from));
        }
    }
}

/// The lines of [`append`] (or of the upgrade from one row per object, whose digits are
/// upper case). A line that does not read as an id and 8 bytes is left out: its object
/// then counts as unknown, and is sent again.
fn decode(text: &str) -> ObjectHashes {
    let mut hashes = HashMap::with_capacity(text.len() / 80);
    for line in text.split('\n') {
        let Some((id, digits)) = line.rsplit_once(' ') else {
            continue;
        };
        let mut hash = [0u8; 8];
        if !id.is_empty() && hex::decode_to_slice(digits, &mut hash).is_ok() {
            hashes.insert(id.to_owned(), hash);
        }
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(lines: &[(&str, [u8; 8])]) -> String {
        let objects: Vec<(String, [u8; 8])> = (lines.iter())
            .map(|(id, hash)| (id.to_string(), *hash))
            .collect();
        let mut text = String::new();
        append(&mut text, &objects);
        text
    }

    #[test]
    fn hashes_read_back_as_written_whatever_the_case_of_their_digits() {
        let hashes = [
            ("indicator--b", [0xab, 0, 1, 2, 3, 4, 5, 0xff]),
            ("report--a", [9; 8]),
        ];
        let text = encode(&hashes);
        assert_eq!(
            text,
            "indicator--b ab000102030405ff\nreport--a 0909090909090909"
        );
        let read = decode(&text);
        assert_eq!(read.len(), 2);
        assert_eq!(read["indicator--b"], hashes[0].1);
        assert_eq!(
            decode(&text.to_uppercase().replace("INDICATOR--B", "indicator--b"))["indicator--b"],
            hashes[0].1
        );
        // An id a line cannot hold is left out rather than split into two lines.
        let odd = [("x--a\nb", [1u8; 8]), ("x--a b", [2u8; 8])];
        let read = decode(&encode(&odd));
        assert_eq!(read.len(), 1, "{read:?}");
        assert_eq!(read["x--a b"], [2; 8]);
        // Damaged lines are unknown objects, not errors.
        let damaged = decode("report--a 0909\nno-hash\n 0909090909090909\nx--1 zz09090909090909\n");
        assert!(damaged.is_empty(), "{damaged:?}");
        assert!(decode("").is_empty());
    }

    #[test]
    fn the_upgrade_keeps_the_hashes_recorded_one_row_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let conn = crate::ledger::schema::tests::ledger_at_version(&path, 5);
        let rows: [(&str, &str, Vec<u8>); 4] = [
            (
                "event-1",
                "indicator--1",
                vec![0xab, 0, 1, 2, 3, 4, 5, 0xff],
            ),
            ("event-1", "report--2", vec![7; 8]),
            ("event-2", "note--3", vec![1; 8]),
            // Damaged: not 8 bytes. Its object is unknown after the upgrade, as before it.
            ("event-2", "note--4", vec![1; 3]),
        ];
        for (event, object, hash) in &rows {
            conn.execute(
                "INSERT INTO pushed_objects (event_uuid, object_id, hash) VALUES (?1, ?2, ?3)",
                params![event, object, hash],
            )
            .unwrap();
        }
        drop(conn);
        let store = Store::open_writer(&path).unwrap();
        let first = store.object_hashes("event-1").unwrap().unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first["indicator--1"], [0xab, 0, 1, 2, 3, 4, 5, 0xff]);
        assert_eq!(first["report--2"], [7; 8]);
        let second = store.object_hashes("event-2").unwrap().unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second["note--3"], [1; 8]);
        assert_eq!(store.object_hashes("event-3").unwrap(), None);
    }

    fn pushed(full: bool, sent: &[(&str, u8)], removed: &[&str]) -> PushedObjects {
        PushedObjects {
            full,
            sent: sent
                .iter()
                .map(|(id, byte)| (id.to_string(), [*byte; 8]))
                .collect(),
            removed: removed.iter().map(|id| id.to_string()).collect(),
            ..PushedObjects::default()
        }
    }

    fn record_in(store: &mut Store, objects: &PushedObjects) {
        let tx = store.conn.transaction().unwrap();
        record(&tx, "event", objects).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_full_push_replaces_the_set_and_a_delta_push_updates_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_writer(&dir.path().join("ledger.sqlite")).unwrap();
        record_in(
            &mut store,
            &pushed(true, &[("b", 1), ("a", 2), ("b", 3)], &[]),
        );
        let held = store.object_hashes("event").unwrap().unwrap();
        assert_eq!((held.len(), held["a"], held["b"]), (2, [2; 8], [3; 8]));

        record_in(&mut store, &pushed(false, &[("b", 4), ("c", 5)], &["a"]));
        let held = store.object_hashes("event").unwrap().unwrap();
        assert_eq!((held.len(), held["b"], held["c"]), (2, [4; 8], [5; 8]));

        record_in(&mut store, &pushed(true, &[("d", 6)], &[]));
        let held = store.object_hashes("event").unwrap().unwrap();
        assert_eq!((held.len(), held["d"]), (1, [6; 8]));

        // A delta push that sent nothing and removed nothing leaves the set as it was.
        record_in(&mut store, &pushed(false, &[], &[]));
        let held = store.object_hashes("event").unwrap().unwrap();
        assert_eq!((held.len(), held["d"]), (1, [6; 8]));

        record_in(&mut store, &pushed(false, &[], &["d"]));
        assert_eq!(store.object_hashes("event").unwrap(), None);
    }
}
