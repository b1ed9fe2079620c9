//! MISP event -> STIX 2.1 bundle, as the Python MISP Feed connector builds it.
//!
//! One code path, two behaviours: `reference_compat` reproduces the Python output exactly,
//! defects included; the default corrects three of its defects and changes nothing else.
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

mod attribute;
mod event;
pub mod ids;
mod input;
pub mod normalize;
mod resolve;
mod stix;
mod tags;
mod threats;

use serde_json::Value;

pub use self::threats::{ResolvedThreats, Threat, threat_tag_values};

/// The conversion options of the seed's configuration table (`MISP_FEED_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    pub create_reports: bool,
    pub report_type: String,
    pub create_indicators: bool,
    pub create_observables: bool,
    pub create_object_observables: bool,
    pub create_tags_as_labels: bool,
    pub guess_threats_from_tags: bool,
    pub author_from_tags: bool,
    pub markings_from_tags: bool,
    pub import_to_ids_no_score: Option<i64>,
    pub import_unsupported_observables_as_text: bool,
    pub import_unsupported_observables_as_text_transparent: bool,
    pub import_with_attachments: bool,
    /// `MISP_FEED_REFERENCE_COMPAT`: reproduce the Python connector exactly, defects included.
    pub reference_compat: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            create_reports: true,
            report_type: "misp-event".into(),
            create_indicators: false,
            create_observables: false,
            create_object_observables: false,
            create_tags_as_labels: true,
            guess_threats_from_tags: false,
            author_from_tags: false,
            markings_from_tags: false,
            import_to_ids_no_score: None,
            import_unsupported_observables_as_text: false,
            import_unsupported_observables_as_text_transparent: true,
            import_with_attachments: false,
            reference_compat: false,
        }
    }
}

/// One MISP event as read from a feed file.
#[derive(Debug, Clone)]
pub struct MispEvent {
    /// The `Event` object itself (unwrapped).
    pub event: Value,
    /// The file it came from, for error messages.
    source: String,
    /// The event's JSON path inside the file (`Event`, or `[0].Event` in a list).
    path: String,
}

impl MispEvent {
    /// An event (the unwrapped `Event` object) read from `source`.
    pub fn new(event: Value, source: impl Into<String>) -> Self {
        MispEvent {
            event,
            source: source.into(),
            path: "Event".into(),
        }
    }

    /// The file the event was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uuid(&self) -> Option<&str> {
        self.event.get("uuid").and_then(Value::as_str)
    }

    /// The event's `timestamp` (seconds), given as a string or a number.
    pub fn timestamp(&self) -> Option<i64> {
        match self.event.get("timestamp")? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn info(&self) -> Option<&str> {
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
    pub message: String,
}

/// A converted event: the STIX objects in emission order.
#[derive(Debug, Clone, Default)]
pub struct StixBundle {
    pub objects: Vec<Value>,
}

impl StixBundle {
    /// Serialises as a STIX 2.1 bundle with a fresh `bundle--<uuid4>` id, as stix2 does.
    pub fn to_json(&self) -> String {
        bundle_around(&self.objects_json())
    }

    /// [`StixBundle::to_json`] and the SHA-256 (hex) of the serialised `objects` array, which,
    /// unlike the bundle, does not change between runs. The objects are serialised once and
    /// the bundle is assembled around them.
    pub fn to_json_and_objects_sha256(&self) -> (String, String) {
        use sha2::Digest;
        let objects = self.objects_json();
        let digest = hex::encode(sha2::Sha256::digest(objects.as_bytes()));
        (bundle_around(&objects), digest)
    }

    /// A bundle of the objects at `positions` only (in their order), and the SHA-256 of the
    /// serialised `objects` array of the whole bundle (what [`to_json_and_objects_sha256`]
    /// gives): each object is serialised once for both.
    ///
    /// [`to_json_and_objects_sha256`]: StixBundle::to_json_and_objects_sha256
    pub fn part_json_and_objects_sha256(&self, positions: &[usize]) -> (String, String) {
        use sha2::Digest;
        let texts: Vec<String> = self
            .objects
            .iter()
            .map(|object| serde_json::to_string(object).unwrap_or_else(|_| "{}".to_owned()))
            .collect();
        let mut digest = sha2::Sha256::new();
        digest.update(b"[");
        for (index, text) in texts.iter().enumerate() {
            if index > 0 {
                digest.update(b",");
            }
            digest.update(text.as_bytes());
        }
        digest.update(b"]");
        let mut part = String::from("[");
        for (n, position) in positions.iter().enumerate() {
            if n > 0 {
                part.push(',');
            }
            if let Some(text) = texts.get(*position) {
                part.push_str(text);
            }
        }
        part.push(']');
        (bundle_around(&part), hex::encode(digest.finalize()))
    }

    fn objects_json(&self) -> String {
        serde_json::to_string(&self.objects).unwrap_or_else(|_| "[]".to_owned())
    }
}

/// `{"type":"bundle","id":"bundle--<uuid4>","objects":<objects>}`, compact as serde_json
/// writes it.
fn bundle_around(objects_json: &str) -> String {
    let mut bundle = String::with_capacity(objects_json.len() + 80);
    bundle.push_str("{\"type\":\"bundle\",\"id\":\"bundle--");
    bundle.push_str(&uuid::Uuid::new_v4().to_string());
    bundle.push_str("\",\"objects\":");
    bundle.push_str(objects_json);
    bundle.push('}');
    bundle
}

/// Parses a feed file: `{"Event": {...}}`, a bare event, or a list of either. Every field
/// the conversion reads is checked here, so a malformed event is reported with its path.
pub fn parse_event_file(bytes: &[u8], file: &str) -> Result<Vec<MispEvent>, InputError> {
    parse_event_list(bytes, file)?
        .into_iter()
        .map(|listed| listed.event)
        .collect()
}

/// One event of a feed file, read on its own.
#[derive(Debug)]
pub struct ListedEvent {
    /// Its uuid (lower case) when the event carries one, even if the rest is malformed.
    pub uuid: Option<String>,
    pub event: Result<MispEvent, InputError>,
}

/// [`parse_event_file`], each event on its own: a file that is not JSON (or holds nothing) is
/// an error, but in a list one malformed event is an error for that event only, so that its
/// neighbours still go through.
pub fn parse_event_list(bytes: &[u8], file: &str) -> Result<Vec<ListedEvent>, InputError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| InputError {
        file: file.to_string(),
        path: "$".into(),
        message: format!("invalid JSON: {e}"),
    })?;
    let (items, in_list) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    if items.is_empty() {
        return Err(InputError {
            file: file.to_string(),
            path: "$".into(),
            message: "expected an event, got an empty list".into(),
        });
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let prefix = if in_list {
                format!("[{index}].")
            } else {
                String::new()
            };
            let (event, path) = match item {
                Value::Object(mut map) if map.contains_key("Event") => (
                    map.remove("Event").unwrap_or(Value::Null),
                    format!("{prefix}Event"),
                ),
                other => (other, format!("{prefix}Event")),
            };
            let event = MispEvent {
                event,
                source: file.to_string(),
                path,
            };
            let uuid = event.uuid().map(str::to_lowercase);
            let event = match input::read_event(&event.event) {
                Ok(_) => Ok(event),
                Err(e) => Err(event.error(e)),
            };
            ListedEvent { uuid, event }
        })
        .collect())
}

/// Converts one event to the objects of its STIX 2.1 bundle, in the connector's order.
/// `threats` answers `guess_threats_from_tags` for the values [`threat_tag_values`] lists
/// (empty when the option is off): the conversion itself asks no one.
pub fn convert_event(
    event: &MispEvent,
    options: &ConvertOptions,
    threats: &ResolvedThreats,
) -> Result<StixBundle, InputError> {
    convert_event_at(event, options, threats, chrono::Utc::now())
}

/// [`convert_event`] with the clock given: what stix2 stamps on objects the event gives no
/// time for (the delta push must know which fields those are).
pub fn convert_event_at(
    event: &MispEvent,
    options: &ConvertOptions,
    threats: &ResolvedThreats,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<StixBundle, InputError> {
    let view = input::read_event(&event.event).map_err(|e| event.error(e))?;
    let now = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let objects = event::convert(&view, options, threats, &now).map_err(|e| event.error(e))?;
    Ok(StixBundle { objects })
}
