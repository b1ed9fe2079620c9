//! A typed, borrowed view of one MISP event, read from its JSON value.
//!
//! Every field the conversion uses is read here, in the shapes MISP writes (`shapes.rs`): a
//! list where a text is expected, a PHP array written as an object. A field of a type no
//! MISP writes is an error naming its JSON path (`Event.Attribute[12].value: expected a
//! string`), but only if the conversion uses the field: one the connector reads only in some
//! configurations is [`Deferred`], one it only compares with a constant is read leniently
//! (a number where a text is expected matches nothing), and one it never reads is never
//! looked at. Numeric fields (timestamps, threat level) are kept raw and read with Python's
//! rules where they are used, because the connector treats a bad attribute timestamp
//! differently from a bad event timestamp.

mod path;
mod shapes;

use serde_json::{Map, Value};

use self::path::expected;
pub(crate) use self::path::{Deferred, FieldError, JsonPath};
pub(crate) use self::shapes::Text;
pub(crate) use self::shapes::list_items;

type Res<T> = Result<T, FieldError>;

fn as_object<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| expected(path, "an object", value))
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

/// A string the connector only compares or looks up: anything else is no match.
fn lenient_str<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// A field kept as given, `null` counting as absent.
fn raw<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// MISP's soft deletion: `"deleted": true` (also `1`, `"1"`, `"true"` from other writers).
fn is_deleted(map: &Map<String, Value>) -> bool {
    match map.get("deleted") {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(number)) => number.as_i64() == Some(1),
        Some(Value::String(text)) => text == "1" || text.eq_ignore_ascii_case("true"),
        _ => false,
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
    let items = list_items(value).ok_or_else(|| expected(&list_path, "a list", value))?;
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        out.push(read(item, &list_path.index(index))?);
    }
    Ok(Some(out))
}

#[derive(Debug, Clone)]
pub(crate) struct Tag<'a> {
    pub(crate) name: &'a str,
}

#[derive(Debug, Clone)]
pub(crate) struct GalaxyCluster<'a> {
    pub(crate) value: &'a str,
    pub(crate) description: Option<Text<'a>>,
    /// `meta.synonyms`: a list, or a text where the galaxy has one synonym.
    pub(crate) synonyms: Option<&'a Value>,
    /// `meta.external_id`: a list in MISP exports, a text in the galaxy's own JSON.
    pub(crate) external_id: Option<&'a Value>,
    /// `meta.ISO`: likewise.
    pub(crate) iso: Option<Text<'a>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Galaxy<'a> {
    /// `None` when absent (the connector skips such a galaxy) or not a text (it matches
    /// nothing).
    pub(crate) namespace: Option<&'a str>,
    /// Empty when absent or not a text.
    pub(crate) name: &'a str,
    /// Read only for the galaxies the conversion uses.
    pub(crate) clusters: Deferred<Vec<GalaxyCluster<'a>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Sighting<'a> {
    /// `Organisation.name` when the sighting names an organisation.
    pub(crate) organisation: Option<&'a str>,
    pub(crate) date_sighting: Option<&'a Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attribute<'a> {
    pub(crate) kind: &'a str,
    pub(crate) value: &'a str,
    pub(crate) category: &'a str,
    pub(crate) comment: &'a str,
    pub(crate) uuid: &'a str,
    pub(crate) to_ids: Option<&'a Value>,
    pub(crate) timestamp: Option<&'a Value>,
    pub(crate) deleted: bool,
    /// `None` when the attribute has no `Tag` key (then the event's labels apply).
    pub(crate) tags: Option<Vec<Tag<'a>>>,
    pub(crate) galaxies: Vec<Galaxy<'a>>,
    pub(crate) sightings: Vec<Sighting<'a>>,
    /// The attachment's content, as given (the connector copies it as it is).
    pub(crate) data: Option<&'a Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectReference<'a> {
    pub(crate) source_uuid: Option<&'a str>,
    pub(crate) object_uuid: Option<&'a str>,
    pub(crate) referenced_uuid: Option<&'a str>,
    pub(crate) relationship_type: Option<Text<'a>>,
    pub(crate) comment: Option<Text<'a>>,
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MispObject<'a> {
    pub(crate) uuid: Option<&'a str>,
    /// Read as a text only where the object's name is used (opaque object observables).
    pub(crate) name: Option<&'a Value>,
    pub(crate) description: Option<Text<'a>>,
    pub(crate) deleted: bool,
    pub(crate) attributes: Vec<Attribute<'a>>,
    pub(crate) references: Vec<ObjectReference<'a>>,
}

#[derive(Debug, Clone)]
pub(crate) struct EventReport<'a> {
    pub(crate) name: Option<Text<'a>>,
    pub(crate) content: &'a str,
    pub(crate) timestamp: Option<&'a Value>,
    pub(crate) deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Event<'a> {
    /// Read as texts where the report uses them.
    pub(crate) info: Option<&'a Value>,
    pub(crate) date: Option<&'a Value>,
    pub(crate) timestamp: Option<&'a Value>,
    pub(crate) threat_level_id: Option<&'a Value>,
    /// The author, unless tags name one.
    pub(crate) orgc_name: Deferred<Option<&'a str>>,
    /// Our fallback author: a malformed `Org` is no author.
    pub(crate) org_name: Option<&'a str>,
    /// `None` when the event has no `Tag` key (default TLP:WHITE marking, no labels).
    pub(crate) tags: Option<Vec<Tag<'a>>>,
    pub(crate) galaxies: Vec<Galaxy<'a>>,
    pub(crate) attributes: Vec<Attribute<'a>>,
    pub(crate) objects: Vec<MispObject<'a>>,
    /// Read only when reports are made.
    pub(crate) event_reports: Deferred<Vec<EventReport<'a>>>,
}

fn read_tag<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Tag<'a>> {
    let map = as_object(value, path)?;
    Ok(Tag {
        name: req_str(map, "name", path)?,
    })
}

fn read_cluster<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<GalaxyCluster<'a>> {
    let map = as_object(value, path)?;
    // An empty `meta` is `[]` in MISP exports; the connector only asks it for keys.
    let meta = map.get("meta").and_then(Value::as_object);
    let meta_value = |key: &str| meta.and_then(|m| raw(m, key));
    Ok(GalaxyCluster {
        value: req_str(map, "value", path)?,
        description: Text::of(map.get("description")),
        synonyms: meta.and_then(|m| m.get("synonyms")),
        external_id: meta_value("external_id"),
        iso: Text::of(meta_value("ISO")),
    })
}

fn read_galaxy<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Galaxy<'a>> {
    let map = as_object(value, path)?;
    Ok(Galaxy {
        namespace: lenient_str(map, "namespace"),
        name: lenient_str(map, "name").unwrap_or(""),
        clusters: opt_list(map, "GalaxyCluster", path, read_cluster).map(Option::unwrap_or_default),
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
        date_sighting: raw(map, "date_sighting"),
    })
}

/// The members of an attribute [`read_attribute`] reads: of a large event, the others (MISP's
/// ids, distribution, sharing group, correlation flags, ...) hold much of the memory.
const ATTRIBUTE_MEMBERS_READ: &[&str] = &[
    "type",
    "value",
    "category",
    "comment",
    "uuid",
    "to_ids",
    "timestamp",
    "deleted",
    "Tag",
    "Galaxy",
    "Sighting",
    "data",
];

/// Drops from the attributes of an event (its own and its objects') the members no
/// conversion reads, keeping each attribute's map at its new size. Only lists [`read_event`]
/// reads as lists are touched, so what it reads, and every error it reports, is unchanged.
pub(crate) fn shed_unread_members(event: &mut Value) {
    fn items_mut(list: &mut Value) -> Vec<&mut Value> {
        if list_items(list).is_none() {
            return Vec::new();
        }
        match list {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(members) => members.values_mut().collect(),
            _ => Vec::new(),
        }
    }
    fn shed(attributes: &mut Value) {
        for attribute in items_mut(attributes) {
            if let Value::Object(members) = attribute {
                *members = std::mem::take(members)
                    .into_iter()
                    .filter(|(key, _)| ATTRIBUTE_MEMBERS_READ.contains(&key.as_str()))
                    .collect();
            }
        }
    }
    let Value::Object(event) = event else {
        return;
    };
    if let Some(attributes) = event.get_mut("Attribute") {
        shed(attributes);
    }
    if let Some(objects) = event.get_mut("Object") {
        for object in items_mut(objects) {
            if let Some(attributes) = object.get_mut("Attribute") {
                shed(attributes);
            }
        }
    }
}

pub(crate) fn read_attribute<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<Attribute<'a>> {
    let map = as_object(value, path)?;
    Ok(Attribute {
        kind: req_str(map, "type", path)?,
        value: req_str(map, "value", path)?,
        category: opt_str(map, "category", path)?.unwrap_or(""),
        comment: opt_str(map, "comment", path)?.unwrap_or(""),
        uuid: opt_str(map, "uuid", path)?.unwrap_or(""),
        to_ids: raw(map, "to_ids"),
        timestamp: raw(map, "timestamp"),
        deleted: is_deleted(map),
        tags: opt_list(map, "Tag", path, read_tag)?,
        galaxies: opt_list(map, "Galaxy", path, read_galaxy)?.unwrap_or_default(),
        sightings: opt_list(map, "Sighting", path, read_sighting)?.unwrap_or_default(),
        data: raw(map, "data"),
    })
}

fn read_reference<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<ObjectReference<'a>> {
    let map = as_object(value, path)?;
    Ok(ObjectReference {
        source_uuid: lenient_str(map, "source_uuid"),
        object_uuid: lenient_str(map, "object_uuid"),
        referenced_uuid: lenient_str(map, "referenced_uuid"),
        relationship_type: Text::of(map.get("relationship_type")),
        comment: Text::of(map.get("comment")),
        deleted: is_deleted(map),
    })
}

fn read_object<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<MispObject<'a>> {
    let map = as_object(value, path)?;
    Ok(MispObject {
        uuid: lenient_str(map, "uuid"),
        name: raw(map, "name"),
        description: Text::of(map.get("description")),
        deleted: is_deleted(map),
        attributes: opt_list(map, "Attribute", path, read_attribute)?.unwrap_or_default(),
        references: opt_list(map, "ObjectReference", path, read_reference)?.unwrap_or_default(),
    })
}

fn read_event_report<'a>(value: &'a Value, path: &JsonPath<'_>) -> Res<EventReport<'a>> {
    let map = as_object(value, path)?;
    Ok(EventReport {
        name: Text::of(map.get("name")),
        content: req_str(map, "content", path)?,
        timestamp: raw(map, "timestamp"),
        deleted: is_deleted(map),
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
pub(crate) fn read_event(value: &Value) -> Res<Event<'_>> {
    let root = JsonPath::root("Event");
    let map = as_object(value, &root)?;
    Ok(Event {
        info: raw(map, "info"),
        date: raw(map, "date"),
        timestamp: raw(map, "timestamp"),
        threat_level_id: raw(map, "threat_level_id"),
        orgc_name: org_name(map, "Orgc", &root),
        org_name: org_name(map, "Org", &root).ok().flatten(),
        tags: opt_list(map, "Tag", &root, read_tag)?,
        galaxies: opt_list(map, "Galaxy", &root, read_galaxy)?.unwrap_or_default(),
        attributes: opt_list(map, "Attribute", &root, read_attribute)?.unwrap_or_default(),
        objects: opt_list(map, "Object", &root, read_object)?.unwrap_or_default(),
        event_reports: opt_list(map, "EventReport", &root, read_event_report)
            .map(Option::unwrap_or_default),
    })
}

/// A text field the conversion needs at `path`.
pub(crate) fn required_text<'a>(value: Option<&'a Value>, path: &JsonPath<'_>) -> Res<&'a str> {
    match value {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(expected(path, "a string", other)),
        None => Err(FieldError::new(path, "missing")),
    }
}

impl Attribute<'_> {
    /// Python's truth value of `to_ids` (a non-empty string, even "0", is true): what the
    /// connector tests.
    pub(crate) fn to_ids_truthy(&self) -> bool {
        match self.to_ids {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(members)) => !members.is_empty(),
        }
    }

    /// Whether `to_ids` means yes: `true`, a non-zero number, or a text such as `1`, `true`,
    /// `yes` (`"0"` and `"false"` mean no).
    pub(crate) fn to_ids_flag(&self) -> bool {
        match self.to_ids {
            Some(Value::String(text)) => matches!(
                text.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "y" | "t" | "on"
            ),
            _ => self.to_ids_truthy(),
        }
    }

    /// `to_ids` as the conversion reads it: Python's truth value in compat mode.
    pub(crate) fn to_ids(&self, compat: bool) -> bool {
        if compat {
            self.to_ids_truthy()
        } else {
            self.to_ids_flag()
        }
    }
}
