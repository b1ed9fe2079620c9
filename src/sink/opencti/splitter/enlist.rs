//! pycti's `enlist_element`: the walk over the references that gives every object its
//! `nb_deps`, edits its refs and decides which objects are sent, in what enlisting order.
//! Field names follow pycti's so the two can be read together.
//!
//! Each object's members are read once when the walk starts (its id and internal ids) and
//! once per visit; the values the checks need come from those slices, not from parsing the
//! object again for every question.

use std::borrow::Cow;

// The walk looks ids up several times per reference: a fast hasher, seeded per process.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde_json::{Map, Value};

use super::super::raw_json::{Member, object_members};
use super::{MAX_REFERENCE_DEPTH, OPENCTI_EXTENSION, SplitError, is_id_supported};
use crate::convert::ids::canonical_json;

/// The splitter's working state.
pub(super) struct Splitter<'a> {
    /// The text of each object of the bundle.
    pub(super) objects: Vec<&'a str>,
    /// The members pycti edits in place (refs cleaned, lists de-duplicated), per object: they
    /// replace the member of the same key. An edit that leaves the value as written is not
    /// kept: the member is then written from its text, which gives the same bytes.
    pub(super) edits: Vec<Vec<(String, Value)>>,
    /// Current `nb_deps` of each object (the member pycti writes into it).
    pub(super) nb_deps: Vec<u64>,
    /// `x_opencti_id` and the OpenCTI extension's `id`, for the few objects that have them.
    internal_ids: HashMap<usize, Vec<String>>,
    /// id (or internal id) -> object; the last object wins on duplicate ids.
    raw_data: HashMap<Cow<'a, str>, usize>,
    /// id under which an object was enlisted (and its internal ids) -> object.
    cache_index: HashMap<String, usize>,
    /// id -> refs already followed from it (pycti keeps a list; only membership is used).
    cache_refs: HashMap<String, HashSet<String>>,
    /// Objects to send, in enlisting order; the same object can appear twice when it was
    /// first reached through an internal id, as in pycti.
    pub(super) elements: Vec<usize>,
    pub(super) incompatible: Vec<usize>,
    cleanup_inconsistent_bundle: bool,
}

/// A JSON value from a slice of the (already checked) bundle text.
pub(super) fn parse_raw(raw: &str) -> Value {
    match raw_str(raw) {
        Some(text) => Value::String(text.into_owned()),
        None => serde_json::from_str(raw).unwrap_or(Value::Null),
    }
}

/// The text of a JSON string value, borrowed when it holds no escape; `None` when the value
/// is not a string.
pub(super) fn raw_str(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') {
        return None;
    }
    if raw.contains('\\') {
        return serde_json::from_str::<String>(raw).ok().map(Cow::Owned);
    }
    raw.get(1..raw.len() - 1).map(Cow::Borrowed)
}

fn raw_member<'t>(members: &[Member<'t>], key: &str) -> Option<&'t str> {
    members
        .iter()
        .find(|(member, _)| member == key)
        .map(|(_, raw)| *raw)
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

/// pycti `get_internal_ids_in_extension`: `x_opencti_id` and the OpenCTI extension's `id`.
fn internal_ids_of(members: &[Member<'_>]) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(Value::String(id)) = raw_member(members, "x_opencti_id")
        .map(parse_raw)
        .filter(is_truthy)
    {
        ids.push(id);
    }
    // Most objects carry other extensions only: their text is not parsed. A key written
    // with escapes is parsed, to be safe.
    let extensions = raw_member(members, "extensions")
        .filter(|raw| raw.contains(OPENCTI_EXTENSION) || raw.contains('\\'));
    let extension_id = extensions
        .map(parse_raw)
        .and_then(|extensions| extensions.get(OPENCTI_EXTENSION).cloned())
        .filter(is_truthy)
        .and_then(|extension| extension.get("id").cloned())
        .filter(is_truthy);
    if let Some(Value::String(id)) = extension_id {
        ids.push(id);
    }
    ids
}

impl<'a> Splitter<'a> {
    /// The splitter over `objects`, with the id of each (in order); an object without a
    /// string `id` is an error, as in pycti.
    pub(super) fn new(
        objects: Vec<&'a str>,
        cleanup_inconsistent_bundle: bool,
    ) -> Result<(Self, Vec<Cow<'a, str>>), SplitError> {
        let mut ids = Vec::with_capacity(objects.len());
        let mut raw_data = HashMap::with_capacity(objects.len());
        let mut internal_ids = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            let members = object_members(object).unwrap_or_default();
            let id = raw_member(&members, "id")
                .and_then(raw_str)
                .ok_or(SplitError::ObjectWithoutId { index })?;
            raw_data.insert(id.clone(), index);
            ids.push(id);
            let internal = internal_ids_of(&members);
            if !internal.is_empty() {
                for internal_id in &internal {
                    raw_data.insert(Cow::Owned(internal_id.clone()), index);
                }
                internal_ids.insert(index, internal);
            }
        }
        let splitter = Splitter {
            nb_deps: vec![0; objects.len()],
            edits: vec![Vec::new(); objects.len()],
            internal_ids,
            raw_data,
            objects,
            cache_index: HashMap::new(),
            cache_refs: HashMap::new(),
            elements: Vec::new(),
            incompatible: Vec::new(),
            cleanup_inconsistent_bundle,
        };
        Ok((splitter, ids))
    }

    /// The current value of member `key` of an object whose members are `members` (edited
    /// or as written).
    fn member(&self, index: usize, members: &[Member<'_>], key: &str) -> Option<Value> {
        if let Some((_, value)) = self.edits[index].iter().find(|(edited, _)| edited == key) {
            return Some(value.clone());
        }
        raw_member(members, key).map(parse_raw)
    }

    /// Sets member `key` to `value`. `current` is the member's value when the visit read
    /// it: while the member has no edit, that is its written value, and an edit giving it
    /// back is not kept. An existing edit is always replaced (a nested visit of the same
    /// object may have edited the member since `current` was read).
    fn edit(&mut self, index: usize, key: &str, value: Value, current: &Value) {
        let edits = &mut self.edits[index];
        match edits.iter_mut().find(|(edited, _)| edited == key) {
            Some(edit) => edit.1 = value,
            None if value == *current => {}
            None => edits.push((key.to_owned(), value)),
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
    pub(super) fn enlist(
        &mut self,
        item_id: &str,
        parents: &mut Vec<String>,
    ) -> Result<u64, SplitError> {
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
        for (key, _) in &members {
            let key = key.as_ref();
            if key.ends_with("_refs") {
                let current = self.member(index, &members, key).unwrap_or(Value::Null);
                let Value::Array(references) = &current else {
                    // null is skipped by pycti; other shapes are left alone.
                    continue;
                };
                if references.is_empty() {
                    continue;
                }
                let mut kept = Vec::new();
                let mut kept_set = HashSet::new();
                for reference in references {
                    // A non-string ref would make pycti raise; it is dropped here.
                    let Some(reference) = reference.as_str() else {
                        continue;
                    };
                    if self.follows(item_id, reference, parents) {
                        nb_deps = nb_deps.saturating_add(self.follow(item_id, reference, parents)?);
                        if kept_set.insert(reference) {
                            kept.push(Value::String(reference.to_owned()));
                        }
                    }
                }
                self.edit(index, key, Value::Array(kept), &current);
            } else if key.ends_with("_ref") {
                let current = self.member(index, &members, key).unwrap_or(Value::Null);
                match current.as_str() {
                    Some(reference) if self.follows(item_id, reference, parents) => {
                        nb_deps = nb_deps.saturating_add(self.follow(item_id, reference, parents)?);
                    }
                    _ => self.edit(index, key, Value::Null, &current),
                }
            } else if key == "external_references" || key == "kill_chain_phases" {
                let current = self.member(index, &members, key).unwrap_or(Value::Null);
                if let Value::Array(entries) = &current {
                    let key_of = if key == "external_references" {
                        external_reference_key
                    } else {
                        kill_chain_phase_key
                    };
                    let deduplicated = deduplicate(entries, key_of);
                    self.edit(index, key, Value::Array(deduplicated), &current);
                }
            }
        }

        self.nb_deps[index] = nb_deps;
        if !self.cache_index.contains_key(item_id) {
            let compatible = match self.member(index, &members, "type") {
                Some(Value::String(object_type)) if object_type == "relationship" => {
                    is_set(self.member(index, &members, "source_ref").as_ref())
                        && is_set(self.member(index, &members, "target_ref").as_ref())
                }
                Some(Value::String(object_type)) if object_type == "sighting" => {
                    is_set(self.member(index, &members, "sighting_of_ref").as_ref())
                        && self
                            .member(index, &members, "where_sighted_refs")
                            .is_some_and(|refs| has_length(&refs))
                }
                Some(Value::String(_)) => is_id_supported(item_id),
                _ => {
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
            if let Some(internal_ids) = self.internal_ids.get(&index) {
                for internal_id in internal_ids.clone() {
                    self.cache_index.insert(internal_id, index);
                }
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
