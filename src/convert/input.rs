//! A typed, borrowed view of one MISP event, read from its JSON value.
//!
//! Reading checks every field the conversion uses: a field of the wrong JSON type is an
//! error naming its JSON path (`Event.Attribute[12].value: expected a string`). Optional keys
//! may be absent. Numeric fields (timestamps, threat level) are kept as raw values and read
//! with Python's `int()` rules where they are used, because the connector treats a bad
//! attribute timestamp differently from a bad event timestamp.

use serde_json::{Map, Value};

/// One step of a JSON path, kept as a borrowed chain so that a path string is only built
/// when an error is reported.
#[derive(Clone, Copy)]
pub struct JsonPath<'p> {
    parent: Option<&'p JsonPath<'p>>,
    step: Step<'p>,
}

#[derive(Clone, Copy)]
enum Step<'p> {
    Root(&'p str),
    Key(&'p str),
    Index(usize),
}

impl<'p> JsonPath<'p> {
    pub fn root(name: &'p str) -> Self {
        JsonPath {
            parent: None,
            step: Step::Root(name),
        }
    }

    pub fn key(&'p self, key: &'p str) -> JsonPath<'p> {
        JsonPath {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    pub fn index(&'p self, index: usize) -> JsonPath<'p> {
        JsonPath {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    pub fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            steps.push(path.step);
            current = path.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root(name) => out.push_str(name),
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// A field error before the file name is attached: JSON path and message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: &JsonPath<'_>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.render(),
            message: message.into(),
        }
    }
}

type Res<T> = Result<T, FieldError>;

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expected(path: &JsonPath<'_>, what: &str, got: &Value) -> FieldError {
    FieldError::new(path, format!("expected {what}, got {}", json_kind(got)))
}

fn as_object<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| expected(path, "an object", value))
}

fn as_list<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<&'a [Value]> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(expected(path, "a list", other)),
    }
}

/// A required string field.
fn req_str<'a>(map: &'a Map<String, Value>, key: &str, path: &JsonPath<'_>) -> Res<&'a str> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(expected(&path.key(key), "a string", other)),
        None => Err(FieldError::new(&path.key(key), "missing")),
    }
}

/// An optional string field; `null` counts as absent.
fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Res<Option<&'a str>> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(other) => Err(expected(&path.key(key), "a string", other)),
    }
}

/// An optional numeric field given as a number or a string; kept raw.
fn opt_num<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Res<Option<&'a Value>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(Some(v)),
        Some(other) => Err(expected(&path.key(key), "a number or a string", other)),
    }
}

/// An optional list of objects, each read by `read`. `None` when the key is absent.
fn opt_list<'a, T>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
    read: impl Fn(&'a Value, &JsonPath<'_>) -> Res<T>,
) -> Res<Option<Vec<T>>> {
    let Some(value) = map.get(key) else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    let list_path = path.key(key);
    let items = as_list(value, &list_path)?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        out.push(read(item, &list_path.index(index))?);
    }
    Ok(Some(out))
}

#[derive(Debug, Clone)]
pub struct Tag<'a> {
    pub name: &'a str,
}

#[derive(Debug, Clone)]
pub struct GalaxyCluster<'a> {
    pub value: &'a str,
    pub description: Option<&'a str>,
    pub synonyms: Option<&'a Value>,
    pub external_id: Option<&'a Value>,
    pub iso: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct Galaxy<'a> {
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub clusters: Vec<GalaxyCluster<'a>>,
}

#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    /// `Organisation.name` when the sighting names an organisation.
    pub organisation: Option<&'a str>,
    pub date_sighting: Option<&'a Value>,
}

#[derive(Debug, Clone)]
pub struct Attribute<'a> {
    pub kind: &'a str,
    pub value: &'a str,
    pub category: &'a str,
    pub comment: &'a str,
    pub uuid: &'a str,
    pub to_ids: Option<&'a Value>,
    pub timestamp: Option<&'a Value>,
    /// `None` when the attribute has no `Tag` key (then the event's labels apply).
    pub tags: Option<Vec<Tag<'a>>>,
    pub galaxies: Vec<Galaxy<'a>>,
    pub sightings: Vec<Sighting<'a>>,
    pub data: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct ObjectReference<'a> {
    pub source_uuid: Option<&'a str>,
    pub object_uuid: Option<&'a str>,
    pub referenced_uuid: Option<&'a str>,
    pub relationship_type: &'a str,
    pub comment: &'a str,
}

#[derive(Debug, Clone)]
pub struct MispObject<'a> {
    pub uuid: Option<&'a str>,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub attributes: Vec<Attribute<'a>>,
    pub references: Vec<ObjectReference<'a>>,
}

#[derive(Debug, Clone)]
pub struct EventReport<'a> {
    pub name: Option<&'a str>,
    pub content: &'a str,
    pub timestamp: Option<&'a Value>,
}

#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub info: Option<&'a str>,
    pub date: Option<&'a str>,
    pub timestamp: Option<&'a Value>,
    pub threat_level_id: Option<&'a Value>,
    pub orgc_name: Option<&'a str>,
    pub org_name: Option<&'a str>,
    /// `None` when the event has no `Tag` key (default TLP:WHITE marking, no labels).
    pub tags: Option<Vec<Tag<'a>>>,
    pub galaxies: Vec<Galaxy<'a>>,
    pub attributes: Vec<Attribute<'a>>,
    pub objects: Vec<MispObject<'a>>,
    pub event_reports: Vec<EventReport<'a>>,
}

fn read_tag<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Tag<'a>> {
    let map = as_object(value, path)?;
    Ok(Tag {
        name: req_str(map, "name", path)?,
    })
}

fn read_cluster<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<GalaxyCluster<'a>> {
    let map = as_object(value, path)?;
    let meta = match map.get("meta") {
        None | Some(Value::Null) => None,
        Some(Value::Object(meta)) => Some(meta),
        Some(other) => return Err(expected(&path.key("meta"), "an object", other)),
    };
    let meta_path = path.key("meta");
    Ok(GalaxyCluster {
        value: req_str(map, "value", path)?,
        description: opt_str(map, "description", path)?,
        synonyms: meta.and_then(|m| m.get("synonyms")),
        external_id: meta.and_then(|m| m.get("external_id")),
        iso: match meta {
            Some(m) => opt_str(m, "ISO", &meta_path)?,
            None => None,
        },
    })
}

fn read_galaxy<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Galaxy<'a>> {
    let map = as_object(value, path)?;
    Ok(Galaxy {
        namespace: opt_str(map, "namespace", path)?,
        name: opt_str(map, "name", path)?.unwrap_or(""),
        clusters: opt_list(map, "GalaxyCluster", path, read_cluster)?.unwrap_or_default(),
    })
}

fn read_sighting<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Sighting<'a>> {
    let map = as_object(value, path)?;
    let organisation = match map.get("Organisation") {
        None | Some(Value::Null) => None,
        Some(org) => {
            let org_path = path.key("Organisation");
            let org_map = as_object(org, &org_path)?;
            opt_str(org_map, "name", &org_path)?
        }
    };
    Ok(Sighting {
        organisation,
        date_sighting: opt_num(map, "date_sighting", path)?,
    })
}

/// `to_ids` as given (a boolean, or 0/1 as a number or a string): the connector copies it
/// to `x_opencti_detection` unchanged and tests its Python truth value.
fn read_to_ids<'a>(map: &'a Map<String, Value>, path: &JsonPath<'_>) -> Res<Option<&'a Value>> {
    match map.get("to_ids") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => Ok(Some(v)),
        Some(other) => Err(expected(&path.key("to_ids"), "a boolean", other)),
    }
}

pub fn read_attribute<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Attribute<'a>> {
    let map = as_object(value, path)?;
    Ok(Attribute {
        kind: req_str(map, "type", path)?,
        value: req_str(map, "value", path)?,
        category: opt_str(map, "category", path)?.unwrap_or(""),
        comment: opt_str(map, "comment", path)?.unwrap_or(""),
        uuid: opt_str(map, "uuid", path)?.unwrap_or(""),
        to_ids: read_to_ids(map, path)?,
        timestamp: opt_num(map, "timestamp", path)?,
        tags: opt_list(map, "Tag", path, read_tag)?,
        galaxies: opt_list(map, "Galaxy", path, read_galaxy)?.unwrap_or_default(),
        sightings: opt_list(map, "Sighting", path, read_sighting)?.unwrap_or_default(),
        data: opt_str(map, "data", path)?,
    })
}

fn read_reference<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<ObjectReference<'a>> {
    let map = as_object(value, path)?;
    Ok(ObjectReference {
        source_uuid: opt_str(map, "source_uuid", path)?,
        object_uuid: opt_str(map, "object_uuid", path)?,
        referenced_uuid: opt_str(map, "referenced_uuid", path)?,
        relationship_type: opt_str(map, "relationship_type", path)?.unwrap_or(""),
        comment: opt_str(map, "comment", path)?.unwrap_or(""),
    })
}

fn read_object<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<MispObject<'a>> {
    let map = as_object(value, path)?;
    Ok(MispObject {
        uuid: opt_str(map, "uuid", path)?,
        name: opt_str(map, "name", path)?.unwrap_or(""),
        description: opt_str(map, "description", path)?,
        attributes: opt_list(map, "Attribute", path, read_attribute)?.unwrap_or_default(),
        references: opt_list(map, "ObjectReference", path, read_reference)?.unwrap_or_default(),
    })
}

fn read_event_report<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<EventReport<'a>> {
    let map = as_object(value, path)?;
    Ok(EventReport {
        name: opt_str(map, "name", path)?,
        content: req_str(map, "content", path)?,
        timestamp: opt_num(map, "timestamp", path)?,
    })
}

fn org_name<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &JsonPath<'_>,
) -> Res<Option<&'a str>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(org) => {
            let org_path = path.key(key);
            let org_map = as_object(org, &org_path)?;
            opt_str(org_map, "name", &org_path)
        }
    }
}

/// Reads the unwrapped `Event` object.
pub fn read_event(value: &Value) -> Res<Event<'_>> {
    let root = JsonPath::root("Event");
    let map = as_object(value, &root)?;
    Ok(Event {
        info: opt_str(map, "info", &root)?,
        date: opt_str(map, "date", &root)?,
        timestamp: opt_num(map, "timestamp", &root)?,
        threat_level_id: opt_num(map, "threat_level_id", &root)?,
        orgc_name: org_name(map, "Orgc", &root)?,
        org_name: org_name(map, "Org", &root)?,
        tags: opt_list(map, "Tag", &root, read_tag)?,
        galaxies: opt_list(map, "Galaxy", &root, read_galaxy)?.unwrap_or_default(),
        attributes: opt_list(map, "Attribute", &root, read_attribute)?.unwrap_or_default(),
        objects: opt_list(map, "Object", &root, read_object)?.unwrap_or_default(),
        event_reports: opt_list(map, "EventReport", &root, read_event_report)?.unwrap_or_default(),
    })
}

impl Attribute<'_> {
    /// Python's truth value of `to_ids` (a non-empty string, even "0", is true).
    pub fn to_ids_truthy(&self) -> bool {
        match self.to_ids {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }
}
