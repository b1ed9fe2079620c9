//! The checkpoint: the Python connector's `last_event_timestamp` (kept so that the platform's
//! copy of the state means what it meant for the Python connector), the manifest's
//! validators for a conditional download, and the S3 mode's last file.
//!
//! Its one rule lives here: after a run the checkpoint moves to the settled watermark, the
//! largest manifest timestamp T such that every qualifying entry at or before T is settled.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::source::{ManifestEntry, ManifestValidators};

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
    pub fn validators(&self) -> ManifestValidators {
        ManifestValidators {
            etag: self.manifest_etag.clone(),
            last_modified: self.manifest_last_modified.clone(),
        }
    }

    /// The timestamp a run starts from: the stored one, else `import_from_date`, else now
    /// (and then nothing older than now is imported, which the caller should say).
    pub fn start_timestamp(
        &self,
        import_from_date: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> i64 {
        self.last_event_timestamp
            .unwrap_or_else(|| import_from_date.unwrap_or(now).timestamp())
    }
}

/// The largest timestamp T such that every entry at or after `previous` and at or before T is
/// settled (pushed, unchanged, or given up); `previous` when the first group is not. A failed
/// event holds it back, so a switch back to the Python connector would not skip it either.
/// `entries_by_timestamp` must be sorted by timestamp.
pub fn settled_watermark(
    entries_by_timestamp: &[ManifestEntry],
    previous: i64,
    is_settled: impl Fn(&ManifestEntry) -> bool,
) -> i64 {
    let mut watermark = previous;
    for group in entries_by_timestamp.chunk_by(|a, b| a.timestamp == b.timestamp) {
        let timestamp = group[0].timestamp;
        if timestamp < previous {
            continue;
        }
        if !group.iter().all(&is_settled) {
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
        assert_eq!(settled_watermark(&entries, 5, settled), 10);
        assert_eq!(settled_watermark(&entries, 5, |_| true), 30);
        // Entries older than the previous checkpoint do not hold it back.
        assert_eq!(settled_watermark(&entries, 25, |e| e.uuid != "a"), 30);
    }

    #[test]
    fn a_run_starts_from_the_stored_timestamp_then_the_import_date_then_now() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let from = DateTime::from_timestamp(500, 0);
        let stored = Checkpoint {
            last_event_timestamp: Some(700),
            ..Checkpoint::default()
        };
        assert_eq!(stored.start_timestamp(from, now), 700);
        assert_eq!(Checkpoint::default().start_timestamp(from, now), 500);
        assert_eq!(Checkpoint::default().start_timestamp(None, now), 1_000);
    }
}
