//! The checkpoint: the Python connector's `last_event_timestamp` (kept so that the platform's
//! copy of the state means what it meant for the Python connector), the manifest's
//! validators for a conditional download, and the S3 mode's last file.
//!
//! The checkpoint decides nothing about what is imported: the ledger's records and the
//! import floor do (see [`ImportFloor`]). Its one rule lives here: after a run it moves to the
//! settled watermark, the largest manifest timestamp T, never past the run's start, such that
//! every entry from the previous checkpoint up to T is settled.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::types::FloorOrigin;
use crate::source::{ManifestEntry, ManifestValidators};

/// Entries whose manifest timestamp is older than the floor are not imported; they are
/// recorded `too_old`, and imported after all if the floor is lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportFloor {
    /// Epoch seconds.
    pub(crate) at: i64,
    pub(crate) origin: FloorOrigin,
}

impl ImportFloor {
    /// The floor a run imports from. The first run sets it (`MISP_FEED_IMPORT_FROM_DATE`, or
    /// the run's start); later, an earlier `MISP_FEED_IMPORT_FROM_DATE` widens it (a date
    /// moved back, or a longer duration), except over a floor taken from the platform, which
    /// marks what another connector imported already. Returns the floor and whether it
    /// changed (and must be stored).
    pub(crate) fn for_run(
        stored: Option<ImportFloor>,
        import_from_date: Option<DateTime<Utc>>,
        run_started: DateTime<Utc>,
    ) -> (ImportFloor, bool) {
        let configured = import_from_date.map(|date| ImportFloor {
            at: date.timestamp(),
            origin: FloorOrigin::ImportFromDate,
        });
        match (stored, configured) {
            (None, Some(configured)) => (configured, true),
            (None, None) => (
                ImportFloor {
                    at: run_started.timestamp(),
                    origin: FloorOrigin::FirstRun,
                },
                true,
            ),
            (Some(stored), Some(configured))
                if configured.at < stored.at && stored.origin != FloorOrigin::Platform =>
            {
                (configured, true)
            }
            (Some(stored), _) => (stored, false),
        }
    }
}

/// What the platform was last told of the ledger's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformSync {
    /// The state text the last successful ping delivered.
    pub(crate) sent_state: Option<String>,
    /// An operator reset the platform has not been told yet: at start, the ledger wins over
    /// whatever state the platform holds.
    pub(crate) reset_pending: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Checkpoint {
    pub last_run: Option<String>,
    pub last_event_timestamp: Option<i64>,
    pub manifest_etag: Option<String>,
    pub manifest_last_modified: Option<String>,
    pub last_file: Option<String>,
}

impl Checkpoint {
    /// The validators of the manifest download this checkpoint remembers.
    pub(crate) fn validators(&self) -> ManifestValidators {
        ManifestValidators {
            etag: self.manifest_etag.clone(),
            last_modified: self.manifest_last_modified.clone(),
        }
    }
}

/// The largest timestamp T, at most `cap` (the run's start: a future-dated entry never moves
/// it ahead), such that every entry at or after `previous` and at or before T is settled
/// (pushed, unchanged, given up, or too old); `previous` when the first group is not. A
/// failed event holds it back, so a switch back to the Python connector would not skip it
/// either. `entries_by_timestamp` must be sorted by timestamp.
pub fn settled_watermark(
    entries_by_timestamp: &[ManifestEntry],
    previous: i64,
    cap: i64,
    is_settled: impl Fn(&ManifestEntry) -> bool,
) -> i64 {
    let mut watermark = previous;
    for group in entries_by_timestamp.chunk_by(|a, b| a.timestamp == b.timestamp) {
        let timestamp = group[0].timestamp;
        if timestamp < previous {
            continue;
        }
        if timestamp > cap || !group.iter().all(&is_settled) {
            break;
        }
        watermark = watermark.max(timestamp);
    }
    watermark
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uuid: &str, timestamp: i64) -> ManifestEntry {
        ManifestEntry {
            uuid: uuid.into(),
            facts: Default::default(),
            key: uuid.into(),
            timestamp,
            info: None,
            date: None,
        }
    }

    #[test]
    fn watermark_stops_before_an_unsettled_timestamp_group() {
        let entries = vec![
            entry("a", 10),
            entry("b", 20),
            entry("c", 20),
            entry("d", 30),
        ];
        let settled = |e: &ManifestEntry| e.uuid != "c";
        assert_eq!(settled_watermark(&entries, 5, 100, settled), 10);
        assert_eq!(settled_watermark(&entries, 5, 100, |_| true), 30);
        // Entries older than the previous checkpoint do not hold it back.
        assert_eq!(settled_watermark(&entries, 25, 100, |e| e.uuid != "a"), 30);
    }

    #[test]
    fn a_future_dated_entry_never_moves_the_watermark_past_the_cap() {
        let entries = vec![entry("a", 10), entry("b", 20), entry("far", 9_999)];
        assert_eq!(settled_watermark(&entries, 5, 50, |_| true), 20);
    }

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn the_first_run_sets_the_floor_and_only_an_earlier_date_lowers_it() {
        let (first, changed) = ImportFloor::for_run(None, None, at(1_000));
        assert_eq!(
            (first.at, first.origin, changed),
            (1_000, FloorOrigin::FirstRun, true)
        );
        let (dated, changed) = ImportFloor::for_run(None, Some(at(400)), at(1_000));
        assert_eq!(
            (dated.at, dated.origin, changed),
            (400, FloorOrigin::ImportFromDate, true)
        );
        // A later run with the same (or a later, or a duration's drifting) date: unchanged.
        assert_eq!(
            ImportFloor::for_run(Some(dated), Some(at(460)), at(2_000)),
            (dated, false)
        );
        assert_eq!(
            ImportFloor::for_run(Some(first), None, at(2_000)),
            (first, false)
        );
        // An earlier date widens the window.
        let (wider, changed) = ImportFloor::for_run(Some(dated), Some(at(100)), at(2_000));
        assert_eq!((wider.at, changed), (100, true));
        // Not over what another connector imported.
        let platform = ImportFloor {
            at: 700,
            origin: FloorOrigin::Platform,
        };
        assert_eq!(
            ImportFloor::for_run(Some(platform), Some(at(100)), at(2_000)),
            (platform, false)
        );
    }
}
