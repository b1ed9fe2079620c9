//! STIX 2.1 object builders: the objects the stix2 library prints for the connector's
//! constructor calls (properties set to `None` or `[]` are left out, as stix2 does).

use std::rc::Rc;

use serde_json::{Map, Value};

use super::ids::{TLP_AMBER_ID, TLP_GREEN_ID, TLP_RED_ID, TLP_WHITE_ID};
// The id of every object built here comes from the one definition in `ids.rs`.
pub(crate) use super::ids::{
    attack_pattern_id, identity_id, indicator_id, location_id, marking_definition_id as marking_id,
    name_only_id as named_id, single_property_sco_id,
};
pub(crate) use super::object::Object;

/// A marking definition and its id.
#[derive(Debug, Clone)]
pub(crate) struct Marking {
    pub(crate) id: String,
    pub(crate) object: Object,
}

/// Markings shared by many objects (an event's markings apply to most attributes).
pub(crate) type Markings = Rc<Vec<Marking>>;

/// stix2's TLP constants (fixed ids, created 2017-01-20).
pub(crate) fn tlp(level: &str) -> Marking {
    let id = match level {
        "green" => TLP_GREEN_ID,
        "amber" => TLP_AMBER_ID,
        "red" => TLP_RED_ID,
        _ => TLP_WHITE_ID,
    };
    let mut object = Object::new();
    object.insert("type", "marking-definition".into());
    object.insert("spec_version", "2.1".into());
    object.insert("id", id.into());
    object.insert("created", "2017-01-20T00:00:00.000Z".into());
    object.insert("definition_type", "tlp".into());
    object.insert("name", format!("TLP:{}", level.to_uppercase()).into());
    let mut definition = Map::new();
    definition.insert("tlp".into(), level.into());
    object.insert("definition", Value::Object(definition));
    Marking {
        id: id.to_string(),
        object,
    }
}

/// A statement marking as the connector builds it for `marking:` tags and TLP:AMBER+STRICT.
pub(crate) fn statement_marking(definition_type: &str, definition: &str, now: &str) -> Marking {
    let id = marking_id(definition_type, definition);
    let mut object = Object::new();
    object.insert("type", "marking-definition".into());
    object.insert("spec_version", "2.1".into());
    object.insert("id", id.clone().into());
    object.insert("created", now.into());
    object.insert("definition_type", "statement".into());
    let mut statement = Map::new();
    statement.insert("statement".into(), "custom".into());
    object.insert("definition", Value::Object(statement));
    object.insert("x_opencti_definition_type", definition_type.into());
    object.insert("x_opencti_definition", definition.into());
    Marking { id, object }
}

pub(crate) fn marking_refs(markings: &[Marking]) -> Value {
    Value::Array(
        markings
            .iter()
            .map(|m| Value::String(m.id.clone()))
            .collect(),
    )
}

/// Starts an SDO/SRO: type, spec_version, id, and `created`/`modified`.
pub(crate) fn sdo(kind: &str, id: &str, created: &str, modified: &str) -> Object {
    let mut object = Object::new();
    object.insert("type", kind.into());
    object.insert("spec_version", "2.1".into());
    object.insert("id", id.into());
    object.insert("created", created.into());
    object.insert("modified", modified.into());
    object
}

/// Starts a cyber-observable: type, spec_version, id.
pub(crate) fn sco(kind: &str, id: String) -> Object {
    let mut object = Object::new();
    object.insert("type", kind.into());
    object.insert("spec_version", "2.1".into());
    object.insert("id", id.into());
    object
}

/// Inserts a list unless it is empty (stix2 drops `[]` values).
pub(crate) fn put_list(object: &mut Object, key: &'static str, list: &Value) {
    if list.as_array().is_some_and(|items| !items.is_empty()) {
        object.insert(key, list.clone());
    }
}

pub(crate) fn put_opt_str(object: &mut Object, key: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        object.insert(key, value.into());
    }
}

/// pycti's relationship id as the connector asks for it (no start or stop time).
pub(crate) fn relationship_id(relationship_type: &str, source: &str, target: &str) -> String {
    super::ids::relationship_id(relationship_type, source, target, None, None)
}

/// pycti's sighting id; the connector passes one identity id (a string) as
/// `where_sighted_refs`.
pub(crate) fn sighting_id(
    sighting_of: &str,
    where_sighted: &str,
    first_seen: &str,
    last_seen: &str,
) -> String {
    super::ids::sighting_id(
        sighting_of,
        &Value::String(where_sighted.to_owned()),
        Some(first_seen.into()),
        Some(last_seen.into()),
    )
}

pub(crate) fn report_id(name: &str, published_iso: &str) -> String {
    super::ids::report_id(name, published_iso)
}

pub(crate) fn note_id(created: &str, content: &str) -> String {
    super::ids::note_id(content, Some(created.into()))
}

/// An organization identity as the connector builds authors and sighting sources.
pub(crate) fn organization(name: &str, now: &str) -> Object {
    let id = identity_id(name, "organization");
    let mut object = sdo("identity", &id, now, now);
    object.insert("name", name.into());
    object.insert("identity_class", "organization".into());
    object
}

/// The `id` of a built object.
pub(crate) fn id_of(object: &Object) -> &str {
    object.id()
}
