//! Links between MISP things by uuid: ObjectReferences (the connector looks them up and never
//! finds them; correction (2) links the STIX objects made from both ends), and the
//! `@[attribute](uuid)` links of event-report notes.

use hashbrown::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use super::ConvertOptions;
use super::attribute::AttributeResult;
use super::input::{Attribute, Event};
use super::stix::{Object, id_of, relationship_id, sdo};
use super::written::ObjectText;

/// The STIX objects made from each MISP attribute and object, for correction (2).
#[derive(Default)]
pub(super) struct MadeFrom {
    by_uuid: HashMap<String, String>,
}

impl MadeFrom {
    pub(super) fn record(&mut self, uuid: Option<&str>, id: Option<&str>) {
        if let (Some(uuid), Some(id)) = (uuid.filter(|u| !u.is_empty()), id) {
            self.by_uuid
                .entry(uuid.to_string())
                .or_insert_with(|| id.to_string());
        }
    }

    pub(super) fn record_result(&mut self, attribute: &Attribute<'_>, result: &AttributeResult) {
        let first = result
            .indicator
            .as_ref()
            .or(result.observable.as_ref())
            .map(id_of);
        self.record(Some(attribute.uuid), first);
    }
}

/// Index of bundle objects by the uuid part of their id (after `--`), first one wins:
/// the connector's `_find_type_by_uuid` without its scan of the whole bundle.
pub(super) struct UuidIndex {
    first: HashMap<String, usize>,
    indexed: usize,
}

impl UuidIndex {
    pub(super) fn new() -> Self {
        UuidIndex {
            first: HashMap::new(),
            indexed: 0,
        }
    }

    /// Adds the objects emitted since the last call.
    pub(super) fn catch_up(&mut self, objects: &ObjectText) {
        for index in self.indexed..objects.len() {
            if let Some((_, uuid)) = objects.id(index).split_once("--") {
                self.first.entry(uuid.to_string()).or_insert(index);
            }
        }
        self.indexed = objects.len();
    }

    /// The position of the first object whose id ends with `uuid`.
    fn find(&self, uuid: &str) -> Option<usize> {
        self.first.get(uuid).copied()
    }
}

/// The `related-to` relationships of the event's ObjectReferences. In compat mode the
/// connector's lookup of both MISP uuids among the bundle's ids (it never finds them: no
/// generated id ends with a MISP uuid); otherwise correction (2): the objects made from the
/// reference's source (`source_uuid`, else `object_uuid`, else the object holding it) and
/// target. Deleted references and objects are left out unless asked for.
pub(super) fn reference_relationships(
    event: &Event<'_>,
    options: &ConvertOptions,
    made_from: &MadeFrom,
    bundle: &ObjectText,
    uuid_index: &mut UuidIndex,
    author_id: &str,
    now: &str,
) -> Vec<Object> {
    let compat = options.reference_compat;
    if compat {
        let has_references = event.objects.iter().any(|o| {
            o.references
                .iter()
                .any(|r| r.source_uuid.is_some() && r.referenced_uuid.is_some())
        });
        if has_references {
            uuid_index.catch_up(bundle);
        }
    }
    let mut relationships = Vec::new();
    for object in event.objects.iter().filter(|o| options.keeps(o.deleted)) {
        for reference in object
            .references
            .iter()
            .filter(|r| options.keeps(r.deleted))
        {
            let ends = if compat {
                let (Some(source_uuid), Some(target_uuid)) =
                    (reference.source_uuid, reference.referenced_uuid)
                else {
                    continue;
                };
                let source = uuid_index.find(source_uuid).map(|i| bundle.id(i));
                let target = uuid_index.find(target_uuid).map(|i| bundle.id(i));
                source
                    .zip(target)
                    .map(|(s, t)| (s.into_owned(), t.into_owned()))
            } else {
                let source_uuid = reference
                    .source_uuid
                    .or(reference.object_uuid)
                    .or(object.uuid);
                let source = source_uuid.and_then(|uuid| made_from.by_uuid.get(uuid));
                let target = reference
                    .referenced_uuid
                    .and_then(|uuid| made_from.by_uuid.get(uuid));
                source.zip(target).map(|(s, t)| (s.clone(), t.clone()))
            };
            let Some((source, target)) = ends else {
                continue;
            };
            let text = |field: Option<super::input::Text<'_>>| {
                field.map_or_else(String::new, |t| t.render(compat, ", ").into_owned())
            };
            let id = relationship_id("related-to", &source, &target);
            let mut rel = sdo("relationship", &id, now, now);
            rel.insert("relationship_type", "related-to".into());
            rel.insert(
                "description",
                format!(
                    "Original Relationship: {}  \nComment: {}",
                    text(reference.relationship_type),
                    text(reference.comment)
                )
                .into(),
            );
            rel.insert("source_ref", source.into());
            rel.insert("target_ref", target.into());
            rel.insert("created_by_ref", author_id.into());
            relationships.push(rel);
        }
    }
    relationships
}

static NOTE_OBJECT_LINK: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"@\[(object|attribute)\]\(([a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12})\)").ok()
});
static NOTE_TAG_LINK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"@\[tag\]\(([a-zA-Z:"'0-9\-=]+)\)"#).ok());

/// The connector's `_process_note`: MISP links in an event report rewritten for OpenCTI.
pub(super) fn process_note(content: &str, index: &UuidIndex, objects: &ObjectText) -> String {
    let linked = match NOTE_OBJECT_LINK.as_ref() {
        Some(re) => re
            .replace_all(content, |caps: &Captures<'_>| {
                let kind = &caps[1];
                let uuid = &caps[2];
                let found = index.find(uuid).and_then(|position| {
                    // Notes link few objects: the one found is read back from its text.
                    let entity: Value = serde_json::from_str(objects.object(position)).ok()?;
                    let name = if entity.get("type").and_then(Value::as_str) == Some("indicator") {
                        entity.get("pattern")
                    } else {
                        entity.get("value")
                    };
                    let id = entity.get("id").and_then(Value::as_str)?;
                    Some((name?.as_str()?.to_string(), id.to_string()))
                });
                match found {
                    Some((name, id)) => format!("[{kind}:{name}](/dashboard/search/{id})"),
                    None => format!("[{kind}:{uuid}](/dashboard/search/{uuid})"),
                }
            })
            .into_owned(),
        None => content.to_string(),
    };
    match NOTE_TAG_LINK.as_ref() {
        Some(re) => re.replace_all(&linked, "tag:$1").into_owned(),
        None => linked,
    }
}
