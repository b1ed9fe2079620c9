//! The bundle being assembled: the connector's de-duplication lists (`x not in
//! added_list`) as sets, checked the same way, so the first object wins and the order is
//! kept. In the corrected mode no id is emitted twice.

use std::collections::HashSet;
use std::rc::Rc;

use serde_json::Value;

use super::attribute::AttributeResult;
use super::stix::id_of;

/// Which of the connector's de-duplication lists an object is checked against.
#[derive(Clone, Copy)]
pub(super) enum Ledger {
    Markings,
    Entities,
    Sightings,
}

/// An id held by several of the sets below at once: one allocation for all of them, which
/// for a large event's hundreds of thousands of ids is tens of megabytes.
pub(super) type SharedId = Rc<str>;

/// The bundle being assembled, with the connector's de-duplication lists as sets.
pub(super) struct Assembly {
    pub(super) objects: Vec<Value>,
    pub(super) compat: bool,
    /// Every emitted id: in the corrected mode no id is emitted twice.
    pub(super) emitted: HashSet<SharedId>,
    pub(super) markings: HashSet<SharedId>,
    pub(super) entities: HashSet<SharedId>,
    pub(super) sightings: HashSet<SharedId>,
    pub(super) observables: HashSet<SharedId>,
    /// Relationships already emitted, keyed by source + target.
    pub(super) relationships: HashSet<String>,
    pub(super) object_refs: Vec<SharedId>,
    /// `added_object_refs`: ids, and source + target for relationships.
    pub(super) object_ref_keys: HashSet<SharedId>,
}

impl Assembly {
    pub(super) fn new(compat: bool) -> Self {
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

    pub(super) fn emit(&mut self, ledger: Ledger, object: Value) {
        let id = SharedId::from(id_of(&object));
        self.emit_with_id(ledger, object, id);
    }

    fn emit_with_id(&mut self, ledger: Ledger, object: Value, id: SharedId) {
        let set = match ledger {
            Ledger::Markings => &mut self.markings,
            Ledger::Entities => &mut self.entities,
            Ledger::Sightings => &mut self.sightings,
        };
        if set.contains(&*id) {
            return;
        }
        if !self.compat && self.emitted.contains(&*id) {
            return;
        }
        set.insert(id.clone());
        self.emitted.insert(id);
        self.objects.push(object);
    }

    pub(super) fn emit_unchecked(&mut self, object: Value) {
        self.emitted.insert(SharedId::from(id_of(&object)));
        self.objects.push(object);
    }

    pub(super) fn reference(&mut self, id: &str) {
        if !self.object_ref_keys.contains(id) {
            self.reference_shared(SharedId::from(id));
        }
    }

    fn reference_shared(&mut self, id: SharedId) {
        if !self.object_ref_keys.contains(&*id) {
            self.object_ref_keys.insert(id.clone());
            self.object_refs.push(id);
        }
    }

    /// An object referenced by the report and emitted (elements, indicators, observables).
    pub(super) fn referenced_entity(&mut self, ledger: Ledger, object: Value) {
        let id = SharedId::from(id_of(&object));
        self.reference_shared(id.clone());
        self.emit_with_id(ledger, object, id);
    }

    pub(super) fn emit_result(&mut self, result: AttributeResult, relationships: &mut Vec<Value>) {
        if let Some(indicator) = result.indicator {
            self.referenced_entity(Ledger::Entities, indicator);
        }
        if let Some(observable) = result.observable {
            self.referenced_entity(Ledger::Entities, observable);
        }
        for marking in result.markings.iter() {
            // Most attributes carry the event's markings, already emitted: skip the clone.
            if !self.markings.contains(marking.id.as_str()) {
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

    pub(super) fn emit_relationship(&mut self, relationship: Value) {
        let source = relationship
            .get("source_ref")
            .and_then(Value::as_str)
            .unwrap_or("");
        let target = relationship
            .get("target_ref")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = format!("{source}{target}");
        if !self.object_ref_keys.contains(key.as_str()) {
            self.object_ref_keys.insert(SharedId::from(key.as_str()));
            self.object_refs.push(SharedId::from(id_of(&relationship)));
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
