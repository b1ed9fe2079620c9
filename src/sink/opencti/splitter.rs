//! pycti's `OpenCTIStix2Splitter.split_bundle_with_expectations`, reproduced byte for byte
//! (pycti 7.261026.0).
//!
//! The platform's workers import what they receive as is, so every split bundle must be the
//! text pycti would have sent: one object per bundle, that object edited the way pycti edits it
//! (refs cleaned, `nb_deps` appended), the bundles ordered by dependency count and serialised
//! with Python's `json.dumps` defaults. Cycles, duplicate refs and objects reachable through an
//! internal id are handled with pycti's exact (sometimes surprising) bookkeeping, because the
//! message order and each `x_opencti_seq` depend on it.

use std::collections::{HashMap, HashSet};

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::raw_json::{array_elements, object_members};
use crate::convert::ids::canonical_json;
use crate::pycompat::json::{PythonJson, python_json_dumps, write_json, write_python_string};

/// OpenCTI's STIX extension definition; its `id` member is an internal id, like `x_opencti_id`.
pub(crate) const OPENCTI_EXTENSION: &str =
    "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";

/// pycti refuses to recurse deeper than Python's recursion limit (about 1000 frames); a chain
/// of references longer than this is reported as an error instead of exhausting the stack.
const MAX_REFERENCE_DEPTH: usize = 2000;

/// The STIX types pycti's splitter accepts (`supported_types` in `opencti_stix2_splitter.py`:
/// entities, internal objects, observables, relationships, `pir`).
const SUPPORTED_TYPES: &[&str] = &[
    "label",
    "vocabulary",
    "kill-chain-phase",
    "attack-pattern",
    "campaign",
    "case-incident",
    "x-opencti-case-incident",
    "case-rfi",
    "x-opencti-case-rfi",
    "case-rft",
    "x-opencti-case-rft",
    "channel",
    "course-of-action",
    "data-component",
    "x-mitre-data-component",
    "data-source",
    "x-mitre-data-source",
    "event",
    "external-reference",
    "feedback",
    "x-opencti-feedback",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "language",
    "location",
    "malware",
    "malware-analysis",
    "marking-definition",
    "narrative",
    "note",
    "observed-data",
    "opinion",
    "report",
    "task",
    "x-opencti-task",
    "threat-actor",
    "tool",
    "vulnerability",
    "security-coverage",
    "security-coverage-result",
    "user",
    "group",
    "capability",
    "role",
    "settings",
    "notification",
    "work",
    "trash",
    "draftworkspace",
    "playbook",
    "deleteoperation",
    "workspace",
    "publicdashboard",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "email-mime-part-type",
    "artifact",
    "file",
    "x509-certificate",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "windows-registry-value-type",
    "hostname",
    "cryptographic-key",
    "cryptocurrency-wallet",
    "text",
    "user-agent",
    "bank-account",
    "phone-number",
    "credential",
    "tracking-number",
    "payment-card",
    "media-content",
    "simple-observable",
    "persona",
    "ssh-key",
    "ai-prompt",
    "imei",
    "iccid",
    "imsi",
    "relationship",
    "sighting",
    "pir",
];

/// pycti's `is_id_supported`: a STIX id (`type--uuid`) must be of a supported type; anything
/// without `--` is not filtered.
pub(crate) fn is_id_supported(id: &str) -> bool {
    match id.split_once("--") {
        Some((id_type, _)) => SUPPORTED_TYPES.contains(&id_type),
        None => true,
    }
}

/// Why a bundle could not be split (pycti raises on the same inputs).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    #[error("bundle is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("bundle has no \"objects\" array")]
    NotABundle,
    #[error("bundle object #{index} has no string \"id\"")]
    ObjectWithoutId { index: usize },
    #[error("bundle object {id} has no string \"type\"")]
    ObjectWithoutType { id: String },
    #[error("bundle object {id}: reference chain deeper than {MAX_REFERENCE_DEPTH}")]
    ReferencesTooDeep { id: String },
}

/// Options of `split_bundle_with_expectations` as `send_stix2_bundle` passes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitOptions {
    /// `event_version`, written as `x_opencti_event_version` when set (the MISP path: unset).
    pub event_version: Option<String>,
    /// `cleanup_inconsistent_bundle`: drop refs to objects missing from the bundle
    /// (the MISP path: false).
    pub cleanup_inconsistent_bundle: bool,
}

/// One split bundle: what goes, base64-encoded, into one AMQP message's `content`.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitBundle {
    /// `id` of the single object the bundle carries.
    pub object_id: String,
    /// `type` of that object.
    pub object_type: String,
    /// Its dependency count (`nb_deps`, also the bundle's `x_opencti_seq`).
    pub nb_deps: u64,
    /// The bundle JSON exactly as pycti serialises it (ASCII only).
    pub content: String,
}

/// Everything the splitter produces, including what it drops.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOutcome {
    /// Number of expectations to announce to the work (= `bundles.len()`).
    pub expectations: usize,
    /// The bundles, in publishing order (`action_sequence` = index + 1).
    pub bundles: Vec<SplitBundle>,
    /// Ids of the objects pycti lists as incompatible (not sent, not counted).
    pub incompatible_ids: Vec<String>,
}

/// pycti `split_bundle_with_expectations(bundle, use_json=True, ...)`:
/// `(expectations, bundles)`; see [`split_bundle_detailed`] for the dropped objects too.
pub fn split_bundle_with_expectations(
    bundle_json: &str,
    options: &SplitOptions,
) -> Result<(usize, Vec<SplitBundle>), SplitError> {
    let outcome = split_bundle_detailed(bundle_json, options)?;
    Ok((outcome.expectations, outcome.bundles))
}

/// [`split_bundle_with_expectations`] with the incompatible objects reported as well.
pub fn split_bundle_detailed(
    bundle_json: &str,
    options: &SplitOptions,
) -> Result<SplitOutcome, SplitError> {
    // The whole text is checked once; after that the bundle is read as slices of it, never
    // as a tree: a bundle of hundreds of megabytes is not held twice.
    serde_json::from_str::<serde::de::IgnoredAny>(bundle_json)
        .map_err(|error| SplitError::InvalidJson(error.to_string()))?;
    let bundle = object_members(bundle_json).ok_or(SplitError::NotABundle)?;
    let bundle_id = match bundle.iter().find(|(key, _)| key == "id") {
        Some((_, raw)) => parse_raw(raw),
        None => Value::String(format!("bundle--{}", uuid::Uuid::new_v4())),
    };
    let objects = bundle
        .iter()
        .find(|(key, _)| key == "objects")
        .and_then(|(_, raw)| array_elements(raw))
        .ok_or(SplitError::NotABundle)?;
    drop(bundle);
    let mut top_level_ids = Vec::with_capacity(objects.len());
    for (index, object) in objects.iter().enumerate() {
        let id = object_members(object).and_then(|members| {
            let (_, raw) = members.iter().find(|(key, _)| key == "id")?;
            raw_str(raw).map(Cow::into_owned)
        });
        top_level_ids.push(id.ok_or(SplitError::ObjectWithoutId { index })?);
    }

    let mut splitter = Splitter::new(objects, options.cleanup_inconsistent_bundle);
    for id in &top_level_ids {
        let mut parents = Vec::new();
        splitter.enlist(id, &mut parents)?;
    }
    drop(top_level_ids);

    // Stable sort, as Python's `list.sort(key=...)`.
    let mut elements = std::mem::take(&mut splitter.elements);
    elements.sort_by_key(|&index| splitter.nb_deps[index]);

    let bundle_id_json = python_json_dumps(&bundle_id);
    let event_version_json = options
        .event_version
        .as_ref()
        .map(|version| python_json_dumps(&Value::String(version.clone())));
    let mut bundles = Vec::with_capacity(elements.len());
    let mut object_json = String::new();
    for index in elements {
        let nb_deps = splitter.nb_deps[index];
        object_json.clear();
        splitter.write_object(index, &mut object_json);
        let mut content = String::with_capacity(object_json.len() + bundle_id_json.len() + 96);
        content.push_str("{\"type\": \"bundle\", \"id\": ");
        content.push_str(&bundle_id_json);
        content.push_str(", \"spec_version\": \"2.1\", \"x_opencti_seq\": ");
        content.push_str(&nb_deps.to_string());
        content.push_str(", \"objects\": [");
        content.push_str(&object_json);
        content.push(']');
        if let Some(version) = &event_version_json {
            content.push_str(", \"x_opencti_event_version\": ");
            content.push_str(version);
        }
        content.push('}');
        bundles.push(SplitBundle {
            object_id: splitter.string_member(index, "id").unwrap_or_default(),
            object_type: splitter.string_member(index, "type").unwrap_or_default(),
            nb_deps,
            content,
        });
    }
    let incompatible_ids = splitter
        .incompatible
        .iter()
        .map(|&index| splitter.string_member(index, "id").unwrap_or_default())
        .collect();
    Ok(SplitOutcome {
        expectations: bundles.len(),
        bundles,
        incompatible_ids,
    })
}

/// A JSON value from a slice of the (already checked) bundle text.
fn parse_raw(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

/// The text of a JSON string value, borrowed when it holds no escape; `None` when the value
/// is not a string.
fn raw_str(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    if raw.contains('\\') {
        return serde_json::from_str::<String>(raw).ok().map(Cow::Owned);
    }
    raw.get(1..raw.len() - 1).map(Cow::Borrowed)
}

/// Writes a member's value as Python's `json.dumps` does; a string of printable ASCII
/// without escapes, and the literals, are the same text in both, so they are copied.
fn write_raw_python(raw: &str, out: &mut String) {
    let plain_string = raw.starts_with('"')
        && raw.len() >= 2
        && raw[1..raw.len() - 1]
            .bytes()
            .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'\\' && byte != b'"');
    if plain_string || matches!(raw, "true" | "false" | "null") {
        out.push_str(raw);
    } else {
        write_json::<PythonJson>(&parse_raw(raw), out);
    }
}

/// Python truthiness of a JSON value (`if item.get(...)`).
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|double| double != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
    }
}

/// The splitter's working state; field names follow pycti's so the two can be read together.
struct Splitter<'a> {
    /// The text of each object of the bundle.
    objects: Vec<&'a str>,
    /// The members pycti edits in place (refs cleaned, lists de-duplicated), per object: they
    /// replace the member of the same key.
    edits: Vec<Vec<(String, Value)>>,
    /// Current `nb_deps` of each object (the member pycti writes into it).
    nb_deps: Vec<u64>,
    /// id (or internal id) -> object; the last object wins on duplicate ids.
    raw_data: HashMap<String, usize>,
    /// id under which an object was enlisted (and its internal ids) -> object.
    cache_index: HashMap<String, usize>,
    /// id -> refs already followed from it (pycti keeps a list; only membership is used).
    cache_refs: HashMap<String, HashSet<String>>,
    /// Objects to send, in enlisting order; the same object can appear twice when it was
    /// first reached through an internal id, as in pycti.
    elements: Vec<usize>,
    incompatible: Vec<usize>,
    cleanup_inconsistent_bundle: bool,
}

impl<'a> Splitter<'a> {
    fn new(objects: Vec<&'a str>, cleanup_inconsistent_bundle: bool) -> Self {
        let mut splitter = Splitter {
            nb_deps: vec![0; objects.len()],
            edits: vec![Vec::new(); objects.len()],
            raw_data: HashMap::with_capacity(objects.len()),
            objects,
            cache_index: HashMap::new(),
            cache_refs: HashMap::new(),
            elements: Vec::new(),
            incompatible: Vec::new(),
            cleanup_inconsistent_bundle,
        };
        for index in 0..splitter.objects.len() {
            if let Some(id) = splitter.string_member(index, "id") {
                splitter.raw_data.insert(id, index);
            }
            for internal_id in splitter.internal_ids(index) {
                splitter.raw_data.insert(internal_id, index);
            }
        }
        splitter
    }

    /// The current value of member `key` of an object (edited or as written).
    fn member(&self, index: usize, key: &str) -> Option<Value> {
        if let Some((_, value)) = self.edits[index].iter().find(|(edited, _)| edited == key) {
            return Some(value.clone());
        }
        let members = object_members(self.objects[index])?;
        let (_, raw) = members.iter().find(|(member, _)| member == key)?;
        Some(parse_raw(raw))
    }

    fn string_member(&self, index: usize, key: &str) -> Option<String> {
        match self.member(index, key)? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    fn edit(&mut self, index: usize, key: &str, value: Value) {
        let edits = &mut self.edits[index];
        match edits.iter_mut().find(|(edited, _)| edited == key) {
            Some(edit) => edit.1 = value,
            None => edits.push((key.to_owned(), value)),
        }
    }

    /// pycti `get_internal_ids_in_extension`: `x_opencti_id` and the OpenCTI extension's `id`.
    fn internal_ids(&self, index: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let Some(members) = object_members(self.objects[index]) else {
            return ids;
        };
        let raw_member = |key: &str| {
            members
                .iter()
                .find(|(member, _)| member == key)
                .map(|(_, raw)| parse_raw(raw))
        };
        if let Some(Value::String(id)) = raw_member("x_opencti_id").filter(is_truthy) {
            ids.push(id);
        }
        let extension_id = raw_member("extensions")
            .and_then(|extensions| extensions.get(OPENCTI_EXTENSION).cloned())
            .filter(is_truthy)
            .and_then(|extension| extension.get("id").cloned())
            .filter(is_truthy);
        if let Some(Value::String(id)) = extension_id {
            ids.push(id);
        }
        ids
    }

    /// The object as pycti sends it: its members in order, the edited ones replaced, and
    /// `nb_deps` (in its place if the object had one, else last), in `json.dumps` form.
    fn write_object(&self, index: usize, out: &mut String) {
        let members = object_members(self.objects[index]).unwrap_or_default();
        let nb_deps = Value::from(self.nb_deps[index]);
        let mut nb_deps_written = false;
        out.push('{');
        for (position, (key, raw)) in members.iter().enumerate() {
            if position > 0 {
                out.push_str(", ");
            }
            write_python_string(key, out);
            out.push_str(": ");
            if key == "nb_deps" {
                nb_deps_written = true;
                write_json::<PythonJson>(&nb_deps, out);
            } else if let Some((_, value)) =
                self.edits[index].iter().find(|(edited, _)| edited == key)
            {
                write_json::<PythonJson>(value, out);
            } else {
                write_raw_python(raw, out);
            }
        }
        if !nb_deps_written {
            if !members.is_empty() {
                out.push_str(", ");
            }
            out.push_str("\"nb_deps\": ");
            write_json::<PythonJson>(&nb_deps, out);
        }
        out.push('}');
    }

    /// The current value of a member whose written text is `raw`.
    fn current(&self, index: usize, key: &str, raw: &str) -> Value {
        match self.edits[index].iter().find(|(edited, _)| edited == key) {
            Some((_, value)) => value.clone(),
            None => parse_raw(raw),
        }
    }

    /// Whether pycti follows `reference` from `item_id` (the checks shared by `_ref` and
    /// `_refs` members).
    fn follows(&self, item_id: &str, reference: &str, parents: &[String]) -> bool {
        let is_missing = !self.raw_data.contains_key(reference);
        let must_be_cleaned = is_missing && self.cleanup_inconsistent_bundle;
        let not_dependency_ref = self
            .cache_refs
            .get(reference)
            .is_none_or(|followed| !followed.contains(item_id));
        is_id_supported(reference)
            && !must_be_cleaned
            && !parents.iter().any(|parent| parent == reference)
            && reference != item_id
            && not_dependency_ref
    }

    /// Records the edge and recurses: pycti's `cache_refs[item_id].append(ref)` followed by
    /// `enlist_element(ref, ..., parent_acc + [ref])`.
    fn follow(
        &mut self,
        item_id: &str,
        reference: &str,
        parents: &mut Vec<String>,
    ) -> Result<u64, SplitError> {
        self.cache_refs
            .entry(item_id.to_owned())
            .or_default()
            .insert(reference.to_owned());
        parents.push(reference.to_owned());
        let result = self.enlist(reference, parents);
        parents.pop();
        result
    }

    /// pycti `enlist_element`: returns the dependency count of `item_id` (0 when the bundle
    /// has no such object), enlisting it and its dependencies on first visit.
    fn enlist(&mut self, item_id: &str, parents: &mut Vec<String>) -> Result<u64, SplitError> {
        let Some(&index) = self.raw_data.get(item_id) else {
            return Ok(0);
        };
        if let Some(&cached) = self.cache_index.get(item_id) {
            return Ok(self.nb_deps[cached]);
        }
        if parents.len() > MAX_REFERENCE_DEPTH {
            return Err(SplitError::ReferencesTooDeep {
                id: item_id.to_owned(),
            });
        }
        let mut nb_deps: u64 = 1;
        self.cache_refs.entry(item_id.to_owned()).or_default();
        let members = object_members(self.objects[index]).unwrap_or_default();
        for (key, raw) in &members {
            let key = key.as_ref();
            if key.ends_with("_refs") {
                let references = match self.current(index, key, raw) {
                    Value::Array(references) => references,
                    // null is skipped by pycti; other shapes are left alone.
                    _ => continue,
                };
                if references.is_empty() {
                    continue;
                }
                let mut kept = Vec::new();
                let mut kept_set = HashSet::new();
                for reference in &references {
                    // A non-string ref would make pycti raise; it is dropped here.
                    let Some(reference) = reference.as_str() else {
                        continue;
                    };
                    if self.follows(item_id, reference, parents) {
                        nb_deps = nb_deps.saturating_add(self.follow(item_id, reference, parents)?);
                        if kept_set.insert(reference.to_owned()) {
                            kept.push(Value::String(reference.to_owned()));
                        }
                    }
                }
                self.edit(index, key, Value::Array(kept));
            } else if key.ends_with("_ref") {
                let reference = match self.current(index, key, raw) {
                    Value::String(reference) => Some(reference),
                    _ => None,
                };
                match reference {
                    Some(reference) if self.follows(item_id, &reference, parents) => {
                        nb_deps =
                            nb_deps.saturating_add(self.follow(item_id, &reference, parents)?);
                    }
                    _ => self.edit(index, key, Value::Null),
                }
            } else if key == "external_references" {
                if let Value::Array(references) = self.current(index, key, raw) {
                    let deduplicated = deduplicate(&references, external_reference_key);
                    self.edit(index, key, Value::Array(deduplicated));
                }
            } else if key == "kill_chain_phases"
                && let Value::Array(phases) = self.current(index, key, raw)
            {
                let deduplicated = deduplicate(&phases, kill_chain_phase_key);
                self.edit(index, key, Value::Array(deduplicated));
            }
        }

        self.nb_deps[index] = nb_deps;
        if !self.cache_index.contains_key(item_id) {
            let compatible = match self.string_member(index, "type").as_deref() {
                Some("relationship") => {
                    is_set(self.member(index, "source_ref").as_ref())
                        && is_set(self.member(index, "target_ref").as_ref())
                }
                Some("sighting") => {
                    is_set(self.member(index, "sighting_of_ref").as_ref())
                        && self
                            .member(index, "where_sighted_refs")
                            .is_some_and(|refs| has_length(&refs))
                }
                Some(_) => is_id_supported(item_id),
                None => {
                    return Err(SplitError::ObjectWithoutType {
                        id: item_id.to_owned(),
                    });
                }
            };
            if compatible {
                self.elements.push(index);
            } else {
                self.incompatible.push(index);
            }
            self.cache_index.insert(item_id.to_owned(), index);
            for internal_id in self.internal_ids(index) {
                self.cache_index.insert(internal_id, index);
            }
        }
        Ok(nb_deps)
    }
}

fn is_set(value: Option<&Value>) -> bool {
    value.is_some_and(|value| !value.is_null())
}

/// Python `len(x) > 0` for the shapes `where_sighted_refs` can take.
fn has_length(value: &Value) -> bool {
    match value {
        Value::Array(items) => !items.is_empty(),
        Value::String(text) => !text.is_empty(),
        Value::Object(members) => !members.is_empty(),
        _ => false,
    }
}

/// Keeps the first of each group of entries with the same key, drops entries without a key.
fn deduplicate(entries: &[Value], key_of: fn(&Map<String, Value>) -> Option<String>) -> Vec<Value> {
    let mut seen = HashSet::new();
    entries
        .iter()
        .filter(|entry| {
            entry
                .as_object()
                .and_then(key_of)
                .is_some_and(|key| seen.insert(key))
        })
        .cloned()
        .collect()
}

fn present(entry: &Map<String, Value>, key: &str) -> Option<Value> {
    entry.get(key).filter(|value| !value.is_null()).cloned()
}

/// The canonical text pycti's `external_reference_generate_id` hashes (equal texts give equal
/// ids): the url, else source name plus external id, else no id (the reference is dropped).
fn external_reference_key(reference: &Map<String, Value>) -> Option<String> {
    let mut data = Map::new();
    if let Some(url) = present(reference, "url") {
        data.insert("url".to_owned(), url);
    } else if let (Some(source), Some(external)) = (
        present(reference, "source_name"),
        present(reference, "external_id"),
    ) {
        data.insert("source_name".to_owned(), source);
        data.insert("external_id".to_owned(), external);
    } else {
        return None;
    }
    Some(canonical_json(&Value::Object(data)))
}

/// The canonical text pycti's `kill_chain_phase_generate_id` hashes (always defined).
fn kill_chain_phase_key(phase: &Map<String, Value>) -> Option<String> {
    let mut data = Map::new();
    data.insert(
        "phase_name".to_owned(),
        phase.get("phase_name").cloned().unwrap_or(Value::Null),
    );
    data.insert(
        "kill_chain_name".to_owned(),
        phase.get("kill_chain_name").cloned().unwrap_or(Value::Null),
    );
    Some(canonical_json(&Value::Object(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_ids() {
        assert!(is_id_supported("report--1"));
        assert!(is_id_supported("no-dashes"));
        assert!(!is_id_supported("x-misp-object--1"));
    }
}
