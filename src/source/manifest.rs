//! A feed's `manifest.json`, shared by the folder and HTTP sources: a JSON object mapping each
//! event uuid to `{timestamp, info, date, ...}`.
//!
//! Keys become file names and URLs, so only a canonical event uuid is accepted; anything else
//! (a path, a URL, a braced or unhyphenated uuid) is set aside with its reason and never fetched.

use serde_json::Value;

use super::{Listing, ManifestEntry, ManifestValidators, SourceError};
use crate::reconciler::filters::EventFacts;

/// The manifest's file name, next to the event files.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// The file that holds one event: `<uuid>.json`.
pub(crate) fn event_file_name(uuid: &str) -> String {
    format!("{uuid}.json")
}

/// Why a manifest key is not an event uuid (the key shortened for the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NotAnEventUuid {
    #[error("manifest key {0:?} looks like a URL, not an event UUID")]
    Url(String),
    #[error("manifest key {0:?} looks like a path (path traversal refused), not an event UUID")]
    Path(String),
    #[error("manifest key {0:?} is not an event UUID")]
    Other(String),
}

/// The canonical (hyphenated, lower-case) text of an event uuid, or why `key` is not one.
pub(crate) fn canonical_event_uuid(key: &str) -> Result<String, NotAnEventUuid> {
    // The 36-character length pins the hyphenated form: uuid's parser also accepts braced,
    // URN and 32-digit forms, which are not what a feed names its files with.
    if key.len() == 36
        && let Ok(uuid) = uuid::Uuid::try_parse(key)
    {
        return Ok(uuid.hyphenated().to_string());
    }
    let shown = shorten(key);
    if key.contains("://") {
        Err(NotAnEventUuid::Url(shown))
    } else if key.contains('/') || key.contains('\\') || key.contains("..") {
        Err(NotAnEventUuid::Path(shown))
    } else {
        Err(NotAnEventUuid::Other(shown))
    }
}

/// The event file a fetch key names: `<key>.json`, the key spelled as the manifest lists it
/// (a feed on a case-sensitive server names its files so), once the key is known to be an
/// event uuid in some case. Anything else is an error naming the key: only uuids are fetched.
pub(crate) fn event_file_for_key(key: &str) -> Result<String, SourceError> {
    let bare = key.strip_suffix(".json").unwrap_or(key);
    canonical_event_uuid(bare).map_err(|reason| SourceError::Invalid {
        what: shorten(key),
        message: reason.to_string(),
    })?;
    Ok(event_file_name(bare))
}

/// Parses a manifest's bytes. Entries come out sorted by timestamp, then uuid.
pub(crate) fn parse_manifest(
    bytes: &[u8],
    validators: ManifestValidators,
) -> Result<Listing, SourceError> {
    let invalid = |message: String| SourceError::Invalid {
        what: MANIFEST_FILE.into(),
        message,
    };
    let document: Value = serde_json::from_slice(crate::convert::without_utf8_bom(bytes))
        .map_err(|err| invalid(format!("not valid JSON: {err}")))?;
    let Value::Object(map) = document else {
        return Err(invalid(format!(
            "expected a JSON object of event uuid -> entry, found {}",
            json_kind(&document)
        )));
    };

    let mut entries: Vec<ManifestEntry> = Vec::with_capacity(map.len());
    let mut rejected: Vec<(String, String)> = Vec::new();
    for (key, value) in map {
        let uuid = match canonical_event_uuid(&key) {
            Ok(uuid) => uuid,
            Err(reason) => {
                rejected.push((key, reason.to_string()));
                continue;
            }
        };
        let Value::Object(fields) = value else {
            let reason = format!(
                "manifest entry {uuid}: expected an object, found {}",
                json_kind(&value)
            );
            rejected.push((key, reason));
            continue;
        };
        let timestamp = match parse_timestamp(fields.get("timestamp")) {
            Ok(timestamp) => timestamp,
            Err(reason) => {
                rejected.push((key, format!("manifest entry {uuid}: {reason}")));
                continue;
            }
        };
        let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        let facts = EventFacts::of_manifest_entry(&Value::Object(fields.clone()));
        entries.push(ManifestEntry {
            timestamp,
            info: text("info"),
            date: text("date"),
            uuid,
            key,
            facts,
        });
    }
    collapse_case_repeats(&mut entries, &mut rejected);
    entries.sort_by(|a, b| (a.timestamp, &a.uuid).cmp(&(b.timestamp, &b.uuid)));
    Ok(Listing::Manifest {
        entries,
        rejected,
        validators,
    })
}

/// One entry per event: when the manifest lists an event under keys that differ only in case,
/// the same one is kept whatever the order of the file (the newest timestamp, then the key
/// spelled in lower case, then the smallest key), and the others are set aside with the key
/// they repeat.
fn collapse_case_repeats(entries: &mut Vec<ManifestEntry>, rejected: &mut Vec<(String, String)>) {
    entries.sort_by(|a, b| {
        a.uuid
            .cmp(&b.uuid)
            .then(b.timestamp.cmp(&a.timestamp))
            .then((a.key != a.uuid).cmp(&(b.key != b.uuid)))
            .then(a.key.cmp(&b.key))
    });
    let mut kept: Vec<ManifestEntry> = Vec::with_capacity(entries.len());
    for entry in entries.drain(..) {
        match kept.last() {
            Some(winner) if winner.uuid == entry.uuid => {
                let reason = format!(
                    "manifest key {:?} repeats event {} (listed as {:?}) in another case",
                    entry.key, entry.uuid, winner.key
                );
                rejected.push((entry.key, reason));
            }
            _ => kept.push(entry),
        }
    }
    *entries = kept;
}

/// Why a manifest entry's timestamp cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadTimestamp {
    #[error("field timestamp is missing")]
    Missing,
    #[error("field timestamp {0} is out of range")]
    OutOfRange(serde_json::Number),
    #[error("field timestamp {0:?} is not a whole number of seconds")]
    NotWhole(String),
    #[error("field timestamp must be a string or a number, found {0}")]
    WrongType(&'static str),
}

/// Reads a manifest timestamp the way the Python connector's `int(...)` does: an integer, or
/// a string holding one (surrounding blanks allowed); a fractional number is truncated.
fn parse_timestamp(value: Option<&Value>) -> Result<i64, BadTimestamp> {
    match value {
        None | Some(Value::Null) => Err(BadTimestamp::Missing),
        Some(Value::Number(number)) => {
            if let Some(seconds) = number.as_i64() {
                return Ok(seconds);
            }
            match number.as_f64() {
                Some(seconds) if seconds.is_finite() && seconds.abs() < 9.0e15 => {
                    Ok(seconds.trunc() as i64)
                }
                _ => Err(BadTimestamp::OutOfRange(number.clone())),
            }
        }
        Some(Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .map_err(|_| BadTimestamp::NotWhole(shorten(text))),
        Some(other) => Err(BadTimestamp::WrongType(json_kind(other))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Keeps untrusted text short enough for an error message.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 80;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(json: &str) -> (Vec<ManifestEntry>, Vec<(String, String)>) {
        match parse_manifest(json.as_bytes(), ManifestValidators::default()) {
            Ok(Listing::Manifest {
                entries, rejected, ..
            }) => (entries, rejected),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_byte_order_mark_before_the_manifest_is_ignored() {
        let manifest = r#"{"56bf399d-c46c-4fdb-a9cf-d9bb02de0b81": {"timestamp": 1700000001}}"#;
        let with_mark = format!("\u{feff}{manifest}");
        assert_eq!(with_mark.len(), manifest.len() + 3);
        assert_eq!(listing(&with_mark), listing(manifest));
        assert_eq!(listing(&with_mark).0.len(), 1);
    }

    #[test]
    fn accepts_string_and_number_timestamps_and_lowercases_keys() {
        let (entries, rejected) = listing(
            r#"{"5A3C2FCD-8328-42BB-A95E-4F4402DE0B81": {"timestamp": " 1700000002 ", "info": "a", "date": "2023-11-14"},
                "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81": {"timestamp": 1700000001},
                "57153590-f73c-49fa-be4b-4737950d210f": {"timestamp": 1700000003.9}}"#,
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        let got: Vec<(&str, i64)> = entries
            .iter()
            .map(|e| (e.uuid.as_str(), e.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![
                ("56bf399d-c46c-4fdb-a9cf-d9bb02de0b81", 1700000001),
                ("5a3c2fcd-8328-42bb-a95e-4f4402de0b81", 1700000002),
                ("57153590-f73c-49fa-be4b-4737950d210f", 1700000003),
            ]
        );
        assert_eq!(entries[1].info.as_deref(), Some("a"));
        assert_eq!(entries[1].date.as_deref(), Some("2023-11-14"));
        assert_eq!(entries[0].info, None);
    }

    #[test]
    fn rejects_keys_that_are_not_canonical_uuids_with_reasons() {
        let (entries, rejected) = listing(
            r#"{"../etc/passwd": {"timestamp": 1},
                "http://evil.example/x": {"timestamp": 1},
                "{56bf399d-c46c-4fdb-a9cf-d9bb02de0b81}": {"timestamp": 1},
                "56bf399dc46c4fdba9cfd9bb02de0b81": {"timestamp": 1},
                "not-a-uuid": {"timestamp": 1}}"#,
        );
        assert!(entries.is_empty());
        let reasons: Vec<&str> = rejected.iter().map(|(_, r)| r.as_str()).collect();
        assert!(reasons[0].contains("path traversal"), "{}", reasons[0]);
        assert!(reasons[1].contains("URL"), "{}", reasons[1]);
        assert!(reasons[2..].iter().all(|r| r.contains("not an event UUID")));
        assert_eq!(rejected[0].0, "../etc/passwd");
    }

    #[test]
    fn rejects_bad_timestamps_and_case_duplicates() {
        let (entries, rejected) = listing(
            r#"{"56bf399d-c46c-4fdb-a9cf-d9bb02de0b81": {"timestamp": "soon"},
                "56e12e66-f01c-41be-afea-4d9a950d210f": {"info": "no timestamp"},
                "57c4445b-c548-4654-af0b-4be3950d210f": {"timestamp": [1]},
                "5b646415-7b48-40d5-86b4-c0070acd0835": 7,
                "5c066053-0e94-46eb-9746-4b7d950d210f": {"timestamp": 5},
                "5C066053-0E94-46EB-9746-4B7D950D210F": {"timestamp": 6}}"#,
        );
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].timestamp, 6,
            "the newer of the two spellings is kept"
        );
        let reasons: Vec<&str> = rejected.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(reasons[0].contains("\"soon\""));
        assert!(reasons[1].contains("missing"));
        assert!(reasons[2].contains("an array"));
        assert!(reasons[3].contains("expected an object"));
        assert!(reasons[4].contains("in another case"));
    }

    #[test]
    fn invalid_json_names_the_manifest() {
        for bad in ["{not json", "[1, 2]"] {
            let err = parse_manifest(bad.as_bytes(), ManifestValidators::default()).unwrap_err();
            assert!(matches!(err, SourceError::Invalid { .. }), "{err:?}");
            assert!(err.to_string().starts_with("manifest.json: "), "{err}");
        }
    }

    #[test]
    fn fetch_keys_accept_bare_or_json_suffixed_uuids_only_and_keep_their_case() {
        assert_eq!(
            event_file_for_key("5B646415-7B48-40D5-86B4-C0070ACD0835").unwrap(),
            "5B646415-7B48-40D5-86B4-C0070ACD0835.json"
        );
        assert_eq!(
            event_file_for_key("5b646415-7b48-40d5-86b4-c0070acd0835.json").unwrap(),
            "5b646415-7b48-40d5-86b4-c0070acd0835.json"
        );
        assert!(event_file_for_key("../manifest.json").is_err());
        assert!(event_file_for_key("manifest.json").is_err());
    }

    #[test]
    fn keys_repeated_in_another_case_collapse_the_same_way_in_any_order() {
        let upper = r#""5C066053-0E94-46EB-9746-4B7D950D210F": {"timestamp": 6}"#;
        let lower = r#""5c066053-0e94-46eb-9746-4b7d950d210f": {"timestamp": 6}"#;
        let newer = r#""5c066053-0E94-46eb-9746-4b7d950d210f": {"timestamp": 7}"#;
        for order in [
            [upper, lower, newer],
            [newer, lower, upper],
            [lower, upper, newer],
        ] {
            let (entries, rejected) = listing(&format!("{{{}}}", order.join(",")));
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].key, "5c066053-0E94-46eb-9746-4b7d950d210f");
            assert_eq!(entries[0].uuid, "5c066053-0e94-46eb-9746-4b7d950d210f");
            assert_eq!(rejected.len(), 2);
        }
        // Same timestamps: the lower-case key is kept.
        let (entries, _) = listing(&format!("{{{upper},{lower}}}"));
        assert_eq!(entries[0].key, "5c066053-0e94-46eb-9746-4b7d950d210f");
    }
}
