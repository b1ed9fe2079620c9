//! MISP event -> STIX 2.1 bundle, as the Python MISP Feed connector builds it.
//!
//! One code path, two behaviours: `reference_compat` reproduces the Python output exactly,
//! defects included; the default corrects three of its defects, reads values MISP writes as
//! lists or numbers as what they mean (`input/`), and applies the options of ours
//! (`options.rs`); it changes nothing else.
//! The objects a correction adds are emitted after every object the connector emits, so
//! first-wins de-duplication can never let them displace one of the connector's objects.
//!
//! 1. Composite attributes keep both parts. `filename|md5` `a.exe|d41d8cd9...`:
//!    - before: indicator `[file:name = 'a.exe']` and File `{name: a.exe}`; the hash is lost.
//!    - after: also indicator `[file:hashes.MD5 = 'd41d8cd9...']` and File
//!      `{name: a.exe, hashes: {MD5: d41d8cd9...}}`, with their `based-on` and object
//!      relationships (likewise `ip-dst|port`, `domain|ip`, `hostname|port`, `filename|sha*`).
//! 2. ObjectReferences become relationships. A `file` object referencing domain attribute
//!    `evil.example` with `communicates-with`, comment `seen in sandbox`:
//!    - before: nothing (the connector searches for ids ending in the MISP uuid).
//!    - after: `related-to` from the object's Text observable to the attribute's indicator
//!      (its observable when there is no indicator), description
//!      `Original Relationship: communicates-with  \nComment: seen in sandbox`, referenced
//!      by the report. The source is `source_uuid`, else `object_uuid`, else the object
//!      holding the reference; nothing is made when either end produced no STIX object.
//! 3. No two objects share an id. An attribute Text observable and an object Text
//!    observable with the same value:
//!    - before: two `text--<same id>` objects with different fields.
//!    - after: the first one only (the attribute's), as for every other repeated id.

mod assembly;
mod attribute;
mod elements;
mod event;
mod file;
mod id_set;
pub mod ids;
mod input;
mod links;
pub mod normalize;
mod object;
#[cfg(test)]
mod option_tests;
mod options;
mod report;
mod resolve;
#[cfg(test)]
mod shed_tests;
mod stix;
mod tags;
mod threats;
mod written;

use serde_json::Value;

use crate::warninglists::Warninglists;

pub use self::file::parse_event_file;
pub(crate) use self::file::{parse_event_list, without_utf8_bom};
pub use self::options::{ConvertOptions, ThreatLevelScores};
pub(crate) use self::threats::threat_tag_values;
pub use self::threats::{ResolvedThreats, Threat};
pub(crate) use self::written::ObjectHash;
use self::written::ObjectText;
pub use self::written::VOLATILE;

/// One MISP event as read from a feed file.
#[derive(Debug, Clone)]
pub struct MispEvent {
    /// The `Event` object itself (unwrapped).
    pub(crate) event: Value,
    /// The file it came from, for error messages.
    source: String,
    /// The event's JSON path inside the file (`Event`, or `[0].Event` in a list).
    path: String,
    /// What the file holds around the event that no conversion uses.
    warnings: Vec<String>,
    /// The size of the event's text in its file (a share of the file for a list).
    input_bytes: usize,
}

impl MispEvent {
    /// What the file holds around or in the event that the conversion leaves out (keys
    /// beside `Event`, galaxies without a namespace), one line each naming the file and the
    /// JSON path: to be logged by whoever reads the file.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub(crate) fn uuid(&self) -> Option<&str> {
        self.event.get("uuid").and_then(Value::as_str)
    }

    /// The event's `timestamp` (seconds), given as a string or a number.
    pub(crate) fn timestamp(&self) -> Option<i64> {
        match self.event.get("timestamp")? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// Frees what no conversion reads of the event's attributes: for the conversion alone,
    /// once the filters and the warnings are done with the whole event.
    pub(crate) fn shed_unread_members(&mut self) {
        input::shed_unread_members(&mut self.event);
    }

    pub(crate) fn info(&self) -> Option<&str> {
        self.event.get("info").and_then(Value::as_str)
    }

    fn error(&self, field: input::FieldError) -> InputError {
        // Field paths start with `Event`; inside a list the event's own path replaces it.
        let path = match field.path.strip_prefix("Event") {
            Some(rest) => format!("{}{rest}", self.path),
            None => field.path,
        };
        InputError {
            file: self.source.clone(),
            path,
            message: field.message,
        }
    }
}

/// Bad input: names the file and the JSON path of the offending field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct InputError {
    pub file: String,
    pub path: String,
    pub(crate) message: String,
}

/// Attributes that made no indicator because their value is on a warninglist, by list name.
pub(crate) type WarninglistTally = std::collections::BTreeMap<String, usize>;

/// A converted event: its STIX 2.1 bundle, each object written as text when it was emitted
/// (in emission order), with a fresh `bundle--<uuid4>` id as stix2 gives it.
#[derive(Debug, Clone, Default)]
pub struct StixBundle {
    /// The bundle's head (`{"type":"bundle","id":...,"objects":[`), then its objects.
    written: ObjectText,
    pub(crate) warninglisted: WarninglistTally,
}

impl StixBundle {
    /// The number of objects.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written.len() == 0
    }

    /// Each object parsed back, in bundle order: for tests and tools that look at the
    /// objects themselves (the pipeline only moves their text).
    pub fn objects(&self) -> Vec<Value> {
        self.written.values()
    }

    /// The text of object `index` as it is in the bundle.
    pub fn object_text(&self, index: usize) -> &str {
        self.written.object(index)
    }

    /// Each object's id, stable-content hash and whether it lists others, in bundle order
    /// (a bundle converted to be printed has no hashes: see [`convert_event_to_print`]).
    pub(crate) fn summaries(&self) -> impl Iterator<Item = ObjectSummary<'_>> {
        debug_assert!(
            self.written.is_hashed(),
            "summaries of a bundle without hashes"
        );
        self.written
            .entries()
            .iter()
            .enumerate()
            .map(|(index, entry)| ObjectSummary {
                id: self.written.id(index),
                hash: entry.hash,
                container: entry.container,
            })
    }

    /// A bundle of `objects` as the conversion would write it.
    #[cfg(test)]
    pub(crate) fn of_values(objects: &[Value]) -> Self {
        let mut written = ObjectText::with_head(&bundle_head());
        for object in objects {
            written.write_value(object);
        }
        StixBundle {
            written,
            warninglisted: WarninglistTally::new(),
        }
    }

    /// The bundle's text, keeping the bundle; [`StixBundle::into_json`] moves it out.
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> String {
        self.clone().into_json()
    }

    /// The bundle's text: already written, it is only closed.
    pub fn into_json(self) -> String {
        self.written.finish("]}")
    }

    /// [`content_sha256`] of this bundle's objects.
    #[cfg(test)]
    pub(crate) fn content_sha256(&self) -> String {
        let summaries: Vec<ObjectSummary<'_>> = self.summaries().collect();
        content_sha256(summaries.iter().map(|o| (o.id.as_ref(), &o.hash)))
    }

    /// A bundle of the objects at `positions` only (`None`: all of them); positions are in
    /// bundle order, as the delta push lists them.
    pub(crate) fn into_part_json(self, positions: Option<&[usize]>) -> String {
        let Some(positions) = positions else {
            return self.into_json();
        };
        let head = self.written.head();
        let mut part = String::with_capacity(head.len() + 2);
        part.push_str(head);
        let in_bundle = positions
            .iter()
            .filter(|&&position| position < self.written.len());
        for (count, &position) in in_bundle.enumerate() {
            if count > 0 {
                part.push(',');
            }
            part.push_str(self.written.object(position));
        }
        part.push_str("]}");
        part
    }
}

/// The SHA-256 (hex) of a bundle's content: each object's id and stable-content hash, in
/// order. Unlike the bundle's text it does not change between runs of the same event (no
/// bundle id, no field filled from the clock), and it costs a pass over ids only.
pub(crate) fn content_sha256<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a ObjectHash)>,
) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for (id, hash) in objects {
        digest.update(id.as_bytes());
        digest.update([0]);
        digest.update(hash);
    }
    hex::encode(digest.finalize())
}

/// What the delta push reads of one object.
pub(crate) struct ObjectSummary<'b> {
    pub(crate) id: std::borrow::Cow<'b, str>,
    pub(crate) hash: ObjectHash,
    pub(crate) container: bool,
}

/// Room for a bundle made from `input_bytes` of MISP JSON, reserved before it is written: a
/// large text grown by doubling holds its old and new copies at once when it moves, and room
/// reserved but not yet written takes address space only, not memory. Measured bundles are
/// 3.7 to 10 times their input (`BENCHMARKS.md`); a larger one grows as any text does. A
/// small bundle grows as usual: moving it costs little, and a reservation per event costs
/// the allocator more than the moves it saves.
fn expected_bundle_bytes(input_bytes: usize) -> usize {
    const SMALLEST_RESERVATION: usize = 16 << 20;
    const LARGEST_RESERVATION: usize = 1 << 30;
    let expected = input_bytes.saturating_mul(12);
    if expected < SMALLEST_RESERVATION {
        return 0;
    }
    expected.min(LARGEST_RESERVATION)
}

/// `{"type":"bundle","id":"bundle--<uuid4>","objects":[`, compact as serde_json writes it.
fn bundle_head() -> String {
    format!(
        "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[",
        uuid::Uuid::new_v4()
    )
}

/// Converts one event to the objects of its STIX 2.1 bundle, in the connector's order.
/// `threats` answers `guess_threats_from_tags` for the values [`threat_tag_values`] lists
/// (empty when the option is off): the conversion itself asks no one.
pub fn convert_event(
    event: &MispEvent,
    options: &ConvertOptions,
    threats: &ResolvedThreats,
) -> Result<StixBundle, InputError> {
    convert_event_at(event, options, threats, None, chrono::Utc::now())
}

/// [`convert_event`] with the clock given (what stix2 stamps on objects the event gives no
/// time for: the delta push must know which fields those are) and the warninglists whose
/// values make no indicator.
pub(crate) fn convert_event_at(
    event: &MispEvent,
    options: &ConvertOptions,
    threats: &ResolvedThreats,
    warninglists: Option<&Warninglists>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StixBundle, InputError> {
    let written = ObjectText::with_head(&bundle_head());
    convert_into(event, options, threats, warninglists, now, written)
}

/// [`convert_event_at`] for a bundle that is only printed (`misp-feed convert`): its
/// objects' stable-content hashes, which only the pipeline compares and records, are not
/// computed, and [`StixBundle::summaries`] must not be asked of it.
pub(crate) fn convert_event_to_print(
    event: &MispEvent,
    options: &ConvertOptions,
    warninglists: Option<&Warninglists>,
) -> Result<StixBundle, InputError> {
    let written = ObjectText::unhashed_with_head(&bundle_head());
    let threats = ResolvedThreats::default();
    convert_into(
        event,
        options,
        &threats,
        warninglists,
        chrono::Utc::now(),
        written,
    )
}

fn convert_into(
    event: &MispEvent,
    options: &ConvertOptions,
    threats: &ResolvedThreats,
    warninglists: Option<&Warninglists>,
    now: chrono::DateTime<chrono::Utc>,
    mut written: ObjectText,
) -> Result<StixBundle, InputError> {
    let view = input::read_event(&event.event).map_err(|e| event.error(e))?;
    let now = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    written.reserve(expected_bundle_bytes(event.input_bytes));
    let warninglisted = event::convert(&view, options, threats, warninglists, &now, &mut written)
        .map_err(|e| event.error(e))?;
    Ok(StixBundle {
        written,
        warninglisted,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::StixBundle;

    fn objects() -> Vec<Value> {
        vec![
            json!({"type": "identity", "id": "identity--1", "name": "caf\u{e9}"}),
            json!({"type": "report", "id": "report--2", "object_refs": ["identity--1"]}),
            json!({"type": "note", "id": "note--3", "score": 2.5}),
        ]
    }

    fn bundle() -> StixBundle {
        StixBundle::of_values(&objects())
    }

    /// The bundle without its random id.
    fn without_id(text: &str) -> Value {
        let mut bundle: Value = serde_json::from_str(text).unwrap();
        let id = bundle["id"].take();
        assert!(id.as_str().unwrap().starts_with("bundle--"));
        bundle
    }

    #[test]
    fn every_serialisation_writes_the_same_objects() {
        let expected_objects = serde_json::to_string(&objects()).unwrap();
        assert_eq!(bundle().objects(), objects());
        let whole = bundle().to_json();
        assert!(whole.ends_with(&format!(",\"objects\":{expected_objects}}}")));
        assert_eq!(without_id(&whole), without_id(&bundle().into_json()));
        let all = bundle().into_part_json(None);
        assert_eq!(without_id(&all), without_id(&whole));
    }

    #[test]
    fn the_content_hash_follows_the_stable_content_only() {
        let hash = |objects: &[Value]| StixBundle::of_values(objects).content_sha256();
        assert_eq!(hash(&objects()), bundle().content_sha256());
        let mut restamped = objects();
        restamped[0]["created"] = json!("2030-01-01T00:00:00.000Z");
        restamped[0]["modified"] = json!("2030-01-01T00:00:00.000Z");
        assert_eq!(
            hash(&restamped),
            hash(&objects()),
            "identity times are the clock's"
        );
        let mut renamed = objects();
        renamed[0]["name"] = json!("other");
        assert_ne!(hash(&renamed), hash(&objects()));
        let mut reordered = objects();
        reordered.swap(0, 2);
        assert_ne!(hash(&reordered), hash(&objects()));
    }

    #[test]
    fn a_bundle_to_print_is_the_pipelines_bundle_without_hashes() {
        use super::{ObjectText, ResolvedThreats, convert_into, parse_event_file};
        let bytes = crate::testsuite::generated_event(200, 7);
        let event = parse_event_file(&bytes, "generated.json")
            .unwrap()
            .remove(0);
        let options = crate::testsuite::full_profile();
        let now = chrono::Utc::now();
        let threats = ResolvedThreats::default();
        let convert = |written| convert_into(&event, &options, &threats, None, now, written);
        let hashed = convert(ObjectText::with_head("{")).unwrap();
        let printed = convert(ObjectText::unhashed_with_head("{")).unwrap();
        assert!(hashed.len() > 200);
        assert_eq!(printed.into_json(), hashed.to_json());
        assert!(hashed.summaries().all(|object| object.hash != [0; 8]));
    }

    #[test]
    fn a_part_holds_the_objects_asked_for() {
        let part = bundle().into_part_json(Some(&[0, 2]));
        let part: Value = serde_json::from_str(&part).unwrap();
        let ids: Vec<&str> = part["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| object["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["identity--1", "note--3"]);
        let empty = bundle().into_part_json(Some(&[]));
        let empty: Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(empty["objects"], json!([]));
    }
}
