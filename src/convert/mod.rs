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
pub mod ids;
mod input;
mod links;
pub mod normalize;
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

use serde_json::Value;

use crate::warninglists::Warninglists;

pub use self::file::parse_event_file;
pub(crate) use self::file::parse_event_list;
pub use self::options::{ConvertOptions, ThreatLevelScores};
pub(crate) use self::threats::threat_tag_values;
pub use self::threats::{ResolvedThreats, Threat};

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

/// A converted event: the STIX objects in emission order.
#[derive(Debug, Clone, Default)]
pub struct StixBundle {
    pub objects: Vec<Value>,
    pub(crate) warninglisted: WarninglistTally,
}

impl StixBundle {
    /// Serialises as a STIX 2.1 bundle with a fresh `bundle--<uuid4>` id, as stix2 does,
    /// keeping the objects; [`StixBundle::into_json`] frees them as it goes.
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> String {
        let mut bundle = bundle_head().into_bytes();
        for (index, object) in self.objects.iter().enumerate() {
            if index > 0 {
                bundle.push(b',');
            }
            // A `Value` always serialises to a `Vec`.
            let _ = serde_json::to_writer(&mut bundle, object);
        }
        bundle.extend_from_slice(b"]}");
        String::from_utf8(bundle).unwrap_or_default()
    }

    /// Serialises as a STIX 2.1 bundle with a fresh `bundle--<uuid4>` id, as stix2 does.
    /// Each object is dropped once written, so the objects and their text are not both held
    /// in full.
    pub fn into_json(self) -> String {
        self.into_part_json_and_objects_sha256(None).0
    }

    /// A bundle of the objects at `positions` only (in bundle order; `None`: all of them),
    /// and the SHA-256 (hex) of the serialised `objects` array of the whole bundle, which,
    /// unlike the bundle, does not change between runs. Each object is serialised once,
    /// straight into the bundle text when it is part of it, and dropped once written.
    pub(crate) fn into_part_json_and_objects_sha256(
        self,
        positions: Option<&[usize]>,
    ) -> (String, String) {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        let mut bundle = bundle_head();
        let mut scratch: Vec<u8> = Vec::new();
        let mut wanted = positions.map(|positions| positions.iter().copied().peekable());
        let mut first_in_part = true;
        digest.update(b"[");
        for (index, object) in self.objects.into_iter().enumerate() {
            scratch.clear();
            // A `Value` always serialises; the fallback only keeps the signature total.
            if serde_json::to_writer(&mut scratch, &object).is_err() {
                scratch.clear();
                scratch.extend_from_slice(b"{}");
            }
            drop(object);
            if index > 0 {
                digest.update(b",");
            }
            digest.update(&scratch);
            let in_part = match &mut wanted {
                None => true,
                Some(wanted) => {
                    while wanted.next_if(|&position| position < index).is_some() {}
                    wanted.next_if_eq(&index).is_some()
                }
            };
            if in_part {
                if !first_in_part {
                    bundle.push(',');
                }
                first_in_part = false;
                // serde_json writes UTF-8.
                bundle.push_str(std::str::from_utf8(&scratch).unwrap_or("{}"));
            }
        }
        digest.update(b"]");
        bundle.push_str("]}");
        (bundle, hex::encode(digest.finalize()))
    }
}

/// `{"type":"bundle","id":"bundle--<uuid4>","objects":[`, compact as serde_json writes it.
fn bundle_head() -> String {
    let mut bundle = String::with_capacity(1 << 16);
    bundle.push_str("{\"type\":\"bundle\",\"id\":\"bundle--");
    bundle.push_str(&uuid::Uuid::new_v4().to_string());
    bundle.push_str("\",\"objects\":[");
    bundle
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
    let view = input::read_event(&event.event).map_err(|e| event.error(e))?;
    let now = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (objects, warninglisted) =
        event::convert(&view, options, threats, warninglists, &now).map_err(|e| event.error(e))?;
    Ok(StixBundle {
        objects,
        warninglisted,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::StixBundle;

    fn bundle() -> StixBundle {
        StixBundle {
            objects: vec![
                json!({"type": "identity", "id": "identity--1", "name": "caf\u{e9}"}),
                json!({"type": "report", "id": "report--2", "object_refs": ["identity--1"]}),
                json!({"type": "note", "id": "note--3", "score": 2.5}),
            ],
            ..StixBundle::default()
        }
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
        let expected_objects = serde_json::to_string(&bundle().objects).unwrap();
        let whole = bundle().to_json();
        assert!(whole.ends_with(&format!(",\"objects\":{expected_objects}}}")));
        assert_eq!(without_id(&whole), without_id(&bundle().into_json()));
        let (all, all_sha256) = bundle().into_part_json_and_objects_sha256(None);
        assert_eq!(without_id(&all), without_id(&whole));
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(expected_objects.as_bytes()));
        assert_eq!(all_sha256, digest);
    }

    #[test]
    fn a_part_holds_the_objects_asked_for_and_the_hash_of_all() {
        let (part, sha256) = bundle().into_part_json_and_objects_sha256(Some(&[0, 2]));
        let (_, all_sha256) = bundle().into_part_json_and_objects_sha256(None);
        assert_eq!(sha256, all_sha256);
        let part: Value = serde_json::from_str(&part).unwrap();
        let ids: Vec<&str> = part["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|object| object["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["identity--1", "note--3"]);
        let (empty, _) = bundle().into_part_json_and_objects_sha256(Some(&[]));
        let empty: Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(empty["objects"], json!([]));
    }
}
