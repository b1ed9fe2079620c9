//! One MISP event to the list of STIX objects of its bundle (the connector's
//! `_process_event`), in the connector's emission order.
//!
//! The connector de-duplicates with lists (`x not in added_list`); here each list is a
//! `HashSet` checked the same way, so the first object wins and the order is kept.
//! In the default (corrected) mode the objects the corrections add are emitted after every
//! object the connector itself would emit, so they can never displace one of them.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use super::ConvertOptions;
use super::attribute::{
    AttributeContext, AttributeResult, extra_parts, is_external_analysis_link, process_attribute,
};
use super::input::{Attribute, Event, FieldError, JsonPath};
use super::stix::{
    Markings, Object, id_of, marking_refs, note_id, organization, put_list, put_opt_str,
    relationship_id, report_id, sdo, tlp,
};
use super::tags::{ElementContext, prepare_elements, resolve_labels, resolve_markings};
use super::threats::ThreatLookup;
use crate::pycompat::text::py_int;
use crate::pycompat::time::{parse_event_date, utc_millis, utc_seconds};

/// The report's reference when nothing else is in the bundle (the connector's placeholder).
const PLACEHOLDER_REF: &str = "intrusion-set--fc5ee88d-7987-4c00-991e-a863e9aa8a0e";

fn threat_level_score(threat_level: Option<&Value>) -> i64 {
    let level = match threat_level {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(1) => "1",
            Some(2) => "2",
            Some(3) => "3",
            _ => "",
        },
        _ => "",
    };
    match level {
        "1" => 90,
        "2" => 60,
        "3" => 30,
        _ => 50,
    }
}

/// Which of the connector's de-duplication lists an object is checked against.
#[derive(Clone, Copy)]
enum Ledger {
    Markings,
    Entities,
    Sightings,
}

/// The bundle being assembled, with the connector's de-duplication lists as sets.
struct Assembly {
    objects: Vec<Value>,
    compat: bool,
    /// Every emitted id: in the corrected mode no id is emitted twice.
    emitted: HashSet<String>,
    markings: HashSet<String>,
    entities: HashSet<String>,
    sightings: HashSet<String>,
    observables: HashSet<String>,
    /// Relationships already emitted, keyed by source + target.
    relationships: HashSet<String>,
    object_refs: Vec<String>,
    /// `added_object_refs`: ids, and source + target for relationships.
    object_ref_keys: HashSet<String>,
}

impl Assembly {
    fn new(compat: bool) -> Self {
        Assembly {
            objects: Vec::new(),
            compat,
            emitted: HashSet::new(),
            markings: HashSet::new(),
            entities: HashSet::new(),
            sightings: HashSet::new(),
            observables: HashSet::new(),
            relationships: HashSet::new(),
            object_refs: Vec::new(),
            object_ref_keys: HashSet::new(),
        }
    }

    fn emit(&mut self, ledger: Ledger, object: Value) {
        let id = id_of(&object).to_string();
        let set = match ledger {
            Ledger::Markings => &mut self.markings,
            Ledger::Entities => &mut self.entities,
            Ledger::Sightings => &mut self.sightings,
        };
        if set.contains(&id) {
            return;
        }
        if !self.compat && self.emitted.contains(&id) {
            return;
        }
        set.insert(id.clone());
        self.emitted.insert(id);
        self.objects.push(object);
    }

    fn emit_unchecked(&mut self, object: Value) {
        self.emitted.insert(id_of(&object).to_string());
        self.objects.push(object);
    }

    fn reference(&mut self, id: &str) {
        if !self.object_ref_keys.contains(id) {
            self.object_ref_keys.insert(id.to_string());
            self.object_refs.push(id.to_string());
        }
    }

    /// An object referenced by the report and emitted (elements, indicators, observables).
    fn referenced_entity(&mut self, ledger: Ledger, object: Value) {
        self.reference(id_of(&object));
        self.emit(ledger, object);
    }

    fn emit_result(&mut self, result: AttributeResult, relationships: &mut Vec<Value>) {
        if let Some(indicator) = result.indicator {
            self.referenced_entity(Ledger::Entities, indicator);
        }
        if let Some(observable) = result.observable {
            self.referenced_entity(Ledger::Entities, observable);
        }
        for marking in result.markings.iter() {
            // Most attributes carry the event's markings, already emitted: skip the clone.
            if !self.markings.contains(&marking.id) {
                self.emit(Ledger::Markings, marking.object.clone());
            }
        }
        for identity in result.identities {
            self.emit(Ledger::Entities, identity);
        }
        for sighting in result.sightings {
            self.emit(Ledger::Sightings, sighting);
        }
        for element in result.elements.into_all() {
            self.referenced_entity(Ledger::Entities, element.object);
        }
        relationships.extend(result.relationships);
    }

    fn emit_relationship(&mut self, relationship: Value) {
        let source = relationship
            .get("source_ref")
            .and_then(Value::as_str)
            .unwrap_or("");
        let target = relationship
            .get("target_ref")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = format!("{source}{target}");
        if !self.object_ref_keys.contains(&key) {
            self.object_ref_keys.insert(key.clone());
            self.object_refs.push(id_of(&relationship).to_string());
        }
        if self.relationships.contains(&key) {
            return;
        }
        if !self.compat && self.emitted.contains(id_of(&relationship)) {
            return;
        }
        self.relationships.insert(key);
        self.emit_unchecked(relationship);
    }
}

/// The STIX objects made from each MISP attribute and object, for correction (2).
#[derive(Default)]
struct MadeFrom {
    by_uuid: HashMap<String, String>,
}

impl MadeFrom {
    fn record(&mut self, uuid: Option<&str>, id: Option<&str>) {
        if let (Some(uuid), Some(id)) = (uuid.filter(|u| !u.is_empty()), id) {
            self.by_uuid
                .entry(uuid.to_string())
                .or_insert_with(|| id.to_string());
        }
    }

    fn record_result(&mut self, attribute: &Attribute<'_>, result: &AttributeResult) {
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
struct UuidIndex {
    first: HashMap<String, usize>,
    indexed: usize,
}

impl UuidIndex {
    fn new() -> Self {
        UuidIndex {
            first: HashMap::new(),
            indexed: 0,
        }
    }

    /// Adds the objects emitted since the last call.
    fn catch_up(&mut self, objects: &[Value]) {
        for (index, object) in objects.iter().enumerate().skip(self.indexed) {
            if let Some((_, uuid)) = id_of(object).split_once("--") {
                self.first.entry(uuid.to_string()).or_insert(index);
            }
        }
        self.indexed = objects.len();
    }

    fn find<'o>(&self, uuid: &str, objects: &'o [Value]) -> Option<&'o Value> {
        self.first.get(uuid).and_then(|&index| objects.get(index))
    }
}

static NOTE_OBJECT_LINK: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"@\[(object|attribute)\]\(([a-z0-9]{8}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{12})\)").ok()
});
static NOTE_TAG_LINK: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"@\[tag\]\(([a-zA-Z:"'0-9\-=]+)\)"#).ok());

/// The connector's `_process_note`: MISP links in an event report rewritten for OpenCTI.
fn process_note(content: &str, index: &UuidIndex, objects: &[Value]) -> String {
    let linked = match NOTE_OBJECT_LINK.as_ref() {
        Some(re) => re
            .replace_all(content, |caps: &Captures<'_>| {
                let kind = &caps[1];
                let uuid = &caps[2];
                let found = index.find(uuid, objects).and_then(|entity| {
                    let name = if entity.get("type").and_then(Value::as_str) == Some("indicator") {
                        entity.get("pattern")
                    } else {
                        entity.get("value")
                    };
                    Some((name?.as_str()?.to_string(), id_of(entity).to_string()))
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

fn external_reference(attribute: &Attribute<'_>) -> Value {
    let mut reference = Object::new();
    reference.insert("source_name".into(), attribute.category.into());
    reference.insert("url".into(), attribute.value.into());
    reference.insert("external_id".into(), attribute.uuid.into());
    Value::Object(reference)
}

fn pdf_file(attribute: &Attribute<'_>, options: &ConvertOptions) -> Option<Value> {
    if !options.import_with_attachments
        || attribute.kind != "attachment"
        || attribute.category != "External analysis"
        || !(attribute.value.ends_with(".pdf") || attribute.value.ends_with(".PDF"))
    {
        return None;
    }
    let data = attribute.data?;
    let mut file = Object::new();
    file.insert("name".into(), attribute.value.into());
    file.insert("data".into(), data.into());
    file.insert("mime_type".into(), "application/pdf".into());
    file.insert("no_trigger_import".into(), Value::Bool(true));
    Some(Value::Object(file))
}

/// Converts one event to its bundle's objects.
pub fn convert(
    event: &Event<'_>,
    options: &ConvertOptions,
    threats: &dyn ThreatLookup,
    now: &str,
) -> Result<Vec<Value>, FieldError> {
    let root = JsonPath::root("Event");
    let compat = options.reference_compat;
    let no_tags: Vec<super::input::Tag<'_>> = Vec::new();
    let event_tags = event.tags.as_deref().unwrap_or(&no_tags);

    // Author: the last `creator=` tag when asked, else the creator organisation.
    let mut author_name: Option<String> = None;
    if options.author_from_tags {
        for tag in event_tags {
            let lower = tag.name.to_lowercase();
            if lower.starts_with("creator") && lower.contains('=') {
                author_name = lower.split('=').nth(1).map(str::to_string);
            }
        }
    }
    let author_name = author_name.unwrap_or_else(|| {
        event
            .orgc_name
            .or(event.org_name)
            .unwrap_or("MISP")
            .to_string()
    });
    let author = organization(&author_name, now);
    let author_id = id_of(&author).to_string();

    let event_markings: Markings = match &event.tags {
        Some(tags) => Rc::new(resolve_markings(
            tags,
            true,
            options.markings_from_tags,
            now,
        )),
        None => Rc::new(vec![tlp("white")]),
    };
    let event_elements = prepare_elements(
        &event.galaxies,
        event_tags,
        &ElementContext {
            author_id: &author_id,
            now,
            markings: &event_markings,
            guess_threats_from_tags: options.guess_threats_from_tags,
            threats,
        },
    );
    let event_labels = Value::Array(
        resolve_labels(event_tags, options.create_tags_as_labels)
            .into_iter()
            .map(Value::String)
            .collect(),
    );
    let score = threat_level_score(event.threat_level_id);
    let ctx = AttributeContext {
        options,
        threats,
        now,
        author_id: &author_id,
        author_name: &author_name,
        event_elements: &event_elements,
        event_markings: &event_markings,
        event_labels: &event_labels,
        score,
    };

    let no_refs = Value::Array(Vec::new());
    let mut event_external_references = Vec::new();
    let mut files = Vec::new();
    let mut results: Vec<AttributeResult> = Vec::new();
    let mut extra_results: Vec<AttributeResult> = Vec::new();
    let mut made_from = MadeFrom::default();

    let attributes_path = root.key("Attribute");
    let create_relationships = event.attributes.len() < 10000;
    for (index, attribute) in event.attributes.iter().enumerate() {
        let path = attributes_path.index(index);
        let result = process_attribute(
            &ctx,
            attribute,
            &path,
            None,
            &no_refs,
            create_relationships,
            0,
        )?;
        if let Some(result) = &result {
            made_from.record_result(attribute, result);
        }
        if is_external_analysis_link(attribute) {
            event_external_references.push(external_reference(attribute));
        }
        results.extend(result);
        for part in 1..=extra_parts(attribute, options) {
            extra_results.extend(process_attribute(
                &ctx,
                attribute,
                &path,
                None,
                &no_refs,
                create_relationships,
                part,
            )?);
        }
        files.extend(pdf_file(attribute, options));
    }

    let objects_path = root.key("Object");
    let mut object_observables: Vec<Value> = Vec::new();
    for (object_index, object) in event.objects.iter().enumerate() {
        let object_path = objects_path.index(object_index);
        let mut references = Vec::new();
        for attribute in &object.attributes {
            if is_external_analysis_link(attribute) {
                references.push(external_reference(attribute));
            }
            files.extend(pdf_file(attribute, options));
        }
        let references = Value::Array(references);
        let mut object_observable: Option<Value> = None;
        if options.create_object_observables {
            let value = if options.import_unsupported_observables_as_text_transparent {
                object
                    .attributes
                    .first()
                    .map(|first| first.value.to_string())
            } else {
                Some(match object.attributes.first() {
                    Some(first) => format!("{} ({}={})", object.name, first.kind, first.value),
                    None => object.name.to_string(),
                })
            };
            if let Some(value) = value {
                let id = super::stix::single_property_sco_id("text", "value", &value);
                let mut text = super::stix::sco("text", id);
                text.insert("value".into(), value.into());
                put_list(
                    &mut text,
                    "object_marking_refs",
                    &marking_refs(&event_markings),
                );
                put_opt_str(&mut text, "description", object.description);
                text.insert("x_opencti_score".into(), score.into());
                put_list(&mut text, "labels", &event_labels);
                text.insert("created_by_ref".into(), author_id.as_str().into());
                put_list(&mut text, "external_references", &references);
                object_observable = Some(Value::Object(text));
            }
        }
        let object_observable_id = object_observable.as_ref().map(|o| id_of(o).to_string());
        made_from.record(object.uuid, object_observable_id.as_deref());
        object_observables.extend(object_observable);

        let create_relationships = object.attributes.len() < 10000;
        let attributes_path = object_path.key("Attribute");
        for (index, attribute) in object.attributes.iter().enumerate() {
            let path = attributes_path.index(index);
            let result = process_attribute(
                &ctx,
                attribute,
                &path,
                object_observable_id.as_deref(),
                &references,
                create_relationships,
                0,
            )?;
            if let Some(result) = &result {
                made_from.record_result(attribute, result);
            }
            results.extend(result);
            for part in 1..=extra_parts(attribute, options) {
                extra_results.extend(process_attribute(
                    &ctx,
                    attribute,
                    &path,
                    object_observable_id.as_deref(),
                    &references,
                    create_relationships,
                    part,
                )?);
            }
        }
    }

    // Assembly, in the connector's order.
    let mut bundle = Assembly::new(compat);
    bundle.emit_unchecked(author);
    for marking in event_markings.iter() {
        bundle.emit(Ledger::Markings, marking.object.clone());
    }
    for element in event_elements.into_all() {
        bundle.referenced_entity(Ledger::Entities, element.object);
    }
    let mut relationships: Vec<Value> = Vec::new();
    for result in results {
        bundle.emit_result(result, &mut relationships);
    }
    for observable in object_observables {
        bundle.reference(id_of(&observable));
        if !bundle.observables.contains(id_of(&observable))
            && (compat || !bundle.emitted.contains(id_of(&observable)))
        {
            bundle.observables.insert(id_of(&observable).to_string());
            bundle.emit_unchecked(observable);
        }
    }
    // Correction (1): the other parts of composite attributes, after everything the
    // connector emits.
    let mut extra_relationships: Vec<Value> = Vec::new();
    for result in extra_results {
        bundle.emit_result(result, &mut extra_relationships);
    }

    // ObjectReferences: the connector looks the MISP uuids up among the bundle's ids (it
    // never finds them); the corrected mode links the objects made from them (2).
    let mut reference_relationships: Vec<Value> = Vec::new();
    let mut uuid_index = UuidIndex::new();
    if compat {
        // The connector looks both MISP uuids up among the bundle's ids (never finding
        // them: no generated id ends with a MISP uuid), and only with `source_uuid`.
        let has_references = event.objects.iter().any(|o| {
            o.references
                .iter()
                .any(|r| r.source_uuid.is_some() && r.referenced_uuid.is_some())
        });
        if has_references {
            uuid_index.catch_up(&bundle.objects);
        }
    }
    for object in &event.objects {
        for reference in &object.references {
            let ends = if compat {
                let (Some(source_uuid), Some(target_uuid)) =
                    (reference.source_uuid, reference.referenced_uuid)
                else {
                    continue;
                };
                let source = uuid_index.find(source_uuid, &bundle.objects).map(id_of);
                let target = uuid_index.find(target_uuid, &bundle.objects).map(id_of);
                source
                    .zip(target)
                    .map(|(s, t)| (s.to_string(), t.to_string()))
            } else {
                // Correction (2): the reference's source is the object holding it.
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
            let id = relationship_id("related-to", &source, &target);
            let mut rel = sdo("relationship", &id, now, now);
            rel.insert("relationship_type".into(), "related-to".into());
            rel.insert(
                "description".into(),
                format!(
                    "Original Relationship: {}  \nComment: {}",
                    reference.relationship_type, reference.comment
                )
                .into(),
            );
            rel.insert("source_ref".into(), source.into());
            rel.insert("target_ref".into(), target.into());
            rel.insert("created_by_ref".into(), author_id.as_str().into());
            reference_relationships.push(Value::Object(rel));
        }
    }
    for relationship in relationships
        .into_iter()
        .chain(extra_relationships)
        .chain(reference_relationships)
    {
        bundle.emit_relationship(relationship);
    }

    if options.create_reports {
        let report = build_report(
            event,
            options,
            &root,
            &author_id,
            &event_markings,
            &event_labels,
            event_external_references,
            files,
            &mut bundle,
        )?;
        let report_id = id_of(&report).to_string();
        bundle.emit_unchecked(report);

        let reports_path = root.key("EventReport");
        for (index, note) in event.event_reports.iter().enumerate() {
            let bad_timestamp = || {
                FieldError::new(
                    &reports_path.index(index).key("timestamp"),
                    "expected a Unix timestamp (seconds) in the years 1000-9999",
                )
            };
            let secs = note.timestamp.and_then(py_int).ok_or_else(bad_timestamp)?;
            let created = utc_seconds(secs).ok_or_else(bad_timestamp)?;
            let created_ms = utc_millis(secs).ok_or_else(bad_timestamp)?;
            uuid_index.catch_up(&bundle.objects);
            let content = process_note(note.content, &uuid_index, &bundle.objects);
            let id = note_id(&created, &content);
            let mut object = sdo("note", &id, &created_ms, &created_ms);
            object.insert("created_by_ref".into(), author_id.as_str().into());
            put_list(
                &mut object,
                "object_marking_refs",
                &marking_refs(&event_markings),
            );
            put_opt_str(&mut object, "abstract", note.name);
            object.insert("content".into(), content.into());
            object.insert(
                "object_refs".into(),
                Value::Array(vec![report_id.as_str().into()]),
            );
            // Notes never collapse in the connector; in the corrected mode a repeated note
            // (same time, same content) is emitted once.
            if compat || !bundle.emitted.contains(&id) {
                bundle.emit_unchecked(Value::Object(object));
            }
        }
    }
    Ok(bundle.objects)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    event: &Event<'_>,
    options: &ConvertOptions,
    root: &JsonPath<'_>,
    author_id: &str,
    event_markings: &Markings,
    event_labels: &Value,
    external_references: Vec<Value>,
    files: Vec<Value>,
    bundle: &mut Assembly,
) -> Result<Value, FieldError> {
    let info = event
        .info
        .ok_or_else(|| FieldError::new(&root.key("info"), "missing (a report needs a name)"))?;
    let date_path = root.key("date");
    let date_text = event
        .date
        .ok_or_else(|| FieldError::new(&date_path, "missing (a report needs a date)"))?;
    let date = parse_event_date(date_text)
        .filter(|d| (1000..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| FieldError::new(&date_path, "expected a date YYYY-MM-DD"))?;
    let timestamp_path = root.key("timestamp");
    let modified = event
        .timestamp
        .and_then(py_int)
        .and_then(utc_millis)
        .ok_or_else(|| {
            FieldError::new(
                &timestamp_path,
                "expected a Unix timestamp (seconds) in the years 1000-9999",
            )
        })?;
    let day = date.format("%Y-%m-%d");
    let published_iso = format!("{day}T00:00:00+00:00");
    let id = report_id(info, &published_iso);
    let mut object = sdo("report", &id, &format!("{day}T00:00:00.000Z"), &modified);
    object.insert("name".into(), info.into());
    object.insert("description".into(), info.into());
    object.insert(
        "report_types".into(),
        Value::Array(vec![options.report_type.as_str().into()]),
    );
    object.insert("published".into(), format!("{day}T00:00:00Z").into());
    let refs = if bundle.object_refs.is_empty() {
        vec![Value::String(PLACEHOLDER_REF.into())]
    } else {
        std::mem::take(&mut bundle.object_refs)
            .into_iter()
            .map(Value::String)
            .collect()
    };
    object.insert("object_refs".into(), Value::Array(refs));
    put_list(&mut object, "labels", event_labels);
    object.insert("created_by_ref".into(), author_id.into());
    put_list(
        &mut object,
        "object_marking_refs",
        &marking_refs(event_markings),
    );
    put_list(
        &mut object,
        "external_references",
        &Value::Array(external_references),
    );
    put_list(&mut object, "x_opencti_files", &Value::Array(files));
    Ok(Value::Object(object))
}
