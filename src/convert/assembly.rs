//! The bundle being assembled: the connector's de-duplication lists (`x not in
//! added_list`) as sets, checked the same way, so the first object wins and the order is
//! kept. In the corrected mode no id is emitted twice.
//!
//! An object is written as text when it is emitted (`written.rs`) and its map dropped. What
//! the connector emits only after every attribute is converted (the objects' Text
//! observables, the corrections' extra parts, the relationships) is written as soon as it is
//! made into a separate text ([`Deferred`]) and moved into the bundle in the connector's
//! order; what is sure to be dropped by then is not written at all.

// foldhash, seeded per process: several times faster than SipHash on the short ids hashed
// here for every object, and the ids are SHA-derived, not chosen by the feed.
use hashbrown::HashSet;
use std::rc::Rc;

use super::object::Object;

use super::attribute::AttributeResult;
use super::stix::{Markings, id_of};
use super::written::ObjectText;

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

/// An object made before its turn to be emitted: its id, and its place in
/// [`Deferred::text`] unless it was sure to be dropped when it was made.
struct Waiting {
    id: SharedId,
    written: Option<usize>,
}

/// A relationship waiting for its turn: the connector emits them after every other object.
struct WaitingRelationship {
    /// Source and target ids: the connector's key for "same relationship".
    key: String,
    id: SharedId,
    written: usize,
}

/// An attribute part made now and emitted after the connector's own objects.
pub(super) struct DeferredResult {
    indicator: Option<Waiting>,
    observable: Option<Waiting>,
    markings: Markings,
    identities: Vec<Waiting>,
    sightings: Vec<Waiting>,
    elements: Vec<Waiting>,
    relationships: Vec<WaitingRelationship>,
}

/// Objects written ahead of their turn.
#[derive(Default)]
pub(super) struct Deferred {
    text: ObjectText,
    /// The relationships, in the connector's order.
    relationships: Vec<WaitingRelationship>,
    /// The objects' Text observables (`create_object_observables`).
    object_observables: Vec<Waiting>,
    /// Ids among `object_observables`: a repeated one is never emitted.
    object_observable_ids: HashSet<SharedId>,
    /// The corrections' extra parts of composite attributes.
    extra_results: Vec<DeferredResult>,
}

/// The bundle being assembled, with the connector's de-duplication lists as sets.
pub(super) struct Assembly {
    /// The bundle's text so far: its head, then the emitted objects.
    pub(super) written: ObjectText,
    pub(super) compat: bool,
    /// Every emitted id: in the corrected mode no id is emitted twice.
    pub(super) emitted: HashSet<SharedId>,
    markings: HashSet<SharedId>,
    entities: HashSet<SharedId>,
    sightings: HashSet<SharedId>,
    observables: HashSet<SharedId>,
    /// Relationships already emitted, keyed by source + target.
    relationships: HashSet<String>,
    pub(super) object_refs: Vec<SharedId>,
    /// `added_object_refs`: ids, and source + target for relationships.
    object_ref_keys: HashSet<SharedId>,
    pub(super) deferred: Deferred,
}

impl Assembly {
    /// A bundle written into `written` (its head already there).
    pub(super) fn new(compat: bool, written: ObjectText) -> Self {
        // The relationships alone can be a third of a bundle: the side text gets room (address
        // space, not memory, until written) so that it does not move as it grows.
        let mut deferred = Deferred {
            text: written.side_text(),
            ..Deferred::default()
        };
        deferred.text.reserve(written.capacity() / 2);
        Assembly {
            written,
            compat,
            emitted: HashSet::new(),
            markings: HashSet::new(),
            entities: HashSet::new(),
            sightings: HashSet::new(),
            observables: HashSet::new(),
            relationships: HashSet::new(),
            object_refs: Vec::new(),
            object_ref_keys: HashSet::new(),
            deferred,
        }
    }

    fn ledger_set(&mut self, ledger: Ledger) -> &mut HashSet<SharedId> {
        match ledger {
            Ledger::Markings => &mut self.markings,
            Ledger::Entities => &mut self.entities,
            Ledger::Sightings => &mut self.sightings,
        }
    }

    /// Whether an object of `ledger` with this id would be dropped now, and so at any later
    /// time (the sets only grow).
    fn is_dropped(&mut self, ledger: Ledger, id: &str) -> bool {
        let compat = self.compat;
        let dropped_by_emitted = !compat && self.emitted.contains(id);
        self.ledger_set(ledger).contains(id) || dropped_by_emitted
    }

    pub(super) fn emit(&mut self, ledger: Ledger, object: &Object) {
        let id = id_of(object);
        if self.is_dropped(ledger, id) {
            return;
        }
        let id = SharedId::from(id);
        self.ledger_set(ledger).insert(id.clone());
        self.emitted.insert(id);
        self.written.write(object);
    }

    pub(super) fn emit_unchecked(&mut self, object: &Object) {
        self.emitted.insert(SharedId::from(id_of(object)));
        self.written.write(object);
    }

    pub(super) fn reference(&mut self, id: &str) {
        if !self.object_ref_keys.contains(id) {
            let id = SharedId::from(id);
            self.object_ref_keys.insert(id.clone());
            self.object_refs.push(id);
        }
    }

    /// An object referenced by the report and emitted (elements, indicators, observables).
    pub(super) fn referenced_entity(&mut self, ledger: Ledger, object: &Object) {
        self.reference(id_of(object));
        self.emit(ledger, object);
    }

    fn emit_markings(&mut self, markings: &Markings) {
        for marking in markings.iter() {
            self.emit(Ledger::Markings, &marking.object);
        }
    }

    /// Emits an attribute part in its turn (its relationships wait for theirs).
    pub(super) fn emit_result(&mut self, result: AttributeResult) {
        for object in result.indicator.iter().chain(&result.observable) {
            self.referenced_entity(Ledger::Entities, object);
        }
        self.emit_markings(&result.markings);
        for identity in &result.identities {
            self.emit(Ledger::Entities, identity);
        }
        for sighting in &result.sightings {
            self.emit(Ledger::Sightings, sighting);
        }
        for element in result.elements.into_all() {
            self.referenced_entity(Ledger::Entities, &element.object);
        }
        for relationship in &result.relationships {
            self.defer_relationship(relationship);
        }
    }

    /// A relationship, written now and emitted after every other object.
    pub(super) fn defer_relationship(&mut self, relationship: &Object) {
        let waiting = self.write_relationship(relationship);
        self.deferred.relationships.push(waiting);
    }

    /// A relationship written into the side text, with its connector key and id.
    fn write_relationship(&mut self, relationship: &Object) -> WaitingRelationship {
        let end = |key: &str| relationship.str(key).unwrap_or("");
        WaitingRelationship {
            key: format!("{}{}", end("source_ref"), end("target_ref")),
            id: SharedId::from(id_of(relationship)),
            written: self.deferred.text.write(relationship),
        }
    }

    /// An object of `ledger` made ahead of its turn: written unless already sure to be
    /// dropped.
    fn wait(&mut self, ledger: Ledger, object: &Object) -> Waiting {
        let id = id_of(object);
        let written = (!self.is_dropped(ledger, id)).then(|| self.deferred.text.write(object));
        Waiting {
            id: SharedId::from(id),
            written,
        }
    }

    /// An extra part of a composite attribute (correction (1)), emitted after everything the
    /// connector emits.
    pub(super) fn defer_extra_result(&mut self, result: AttributeResult) {
        let mut waiting = DeferredResult {
            indicator: None,
            observable: None,
            markings: result.markings.clone(),
            identities: Vec::new(),
            sightings: Vec::new(),
            elements: Vec::new(),
            relationships: Vec::new(),
        };
        waiting.indicator = result
            .indicator
            .as_ref()
            .map(|object| self.wait(Ledger::Entities, object));
        waiting.observable = result
            .observable
            .as_ref()
            .map(|object| self.wait(Ledger::Entities, object));
        for identity in &result.identities {
            let identity = self.wait(Ledger::Entities, identity);
            waiting.identities.push(identity);
        }
        for sighting in &result.sightings {
            let sighting = self.wait(Ledger::Sightings, sighting);
            waiting.sightings.push(sighting);
        }
        for element in result.elements.into_all() {
            let element = self.wait(Ledger::Entities, &element.object);
            waiting.elements.push(element);
        }
        for relationship in &result.relationships {
            let relationship = self.write_relationship(relationship);
            waiting.relationships.push(relationship);
        }
        self.deferred.extra_results.push(waiting);
    }

    /// A MISP object's Text observable, emitted after every attribute part.
    pub(super) fn defer_object_observable(&mut self, observable: &Object) {
        let id = SharedId::from(id_of(observable));
        let sure_to_be_dropped = self.deferred.object_observable_ids.contains(&id)
            || (!self.compat && self.emitted.contains(&id));
        let written = (!sure_to_be_dropped).then(|| self.deferred.text.write(observable));
        self.deferred.object_observable_ids.insert(id.clone());
        self.deferred
            .object_observables
            .push(Waiting { id, written });
    }

    /// Emits a waiting object as [`Assembly::emit`] would have.
    fn emit_waiting(&mut self, ledger: Ledger, waiting: Waiting, text: &ObjectText) {
        let Some(index) = waiting.written else {
            return;
        };
        if self.is_dropped(ledger, &waiting.id) {
            return;
        }
        self.ledger_set(ledger).insert(waiting.id.clone());
        self.emitted.insert(waiting.id);
        self.written.append_from(text, index);
    }

    /// The objects' Text observables, then the extra parts of composite attributes: what the
    /// connector emits after the attributes' objects, in its order.
    pub(super) fn emit_deferred_objects(&mut self) {
        let mut deferred = std::mem::take(&mut self.deferred);
        for observable in std::mem::take(&mut deferred.object_observables) {
            self.reference(&observable.id);
            if !self.observables.contains(&observable.id)
                && (self.compat || !self.emitted.contains(&observable.id))
            {
                self.observables.insert(observable.id.clone());
                self.emitted.insert(observable.id.clone());
                if let Some(index) = observable.written {
                    self.written.append_from(&deferred.text, index);
                }
            }
        }
        for result in std::mem::take(&mut deferred.extra_results) {
            for entity in result.indicator.into_iter().chain(result.observable) {
                self.reference(&entity.id);
                self.emit_waiting(Ledger::Entities, entity, &deferred.text);
            }
            self.emit_markings(&result.markings);
            for identity in result.identities {
                self.emit_waiting(Ledger::Entities, identity, &deferred.text);
            }
            for sighting in result.sightings {
                self.emit_waiting(Ledger::Sightings, sighting, &deferred.text);
            }
            for element in result.elements {
                self.reference(&element.id);
                self.emit_waiting(Ledger::Entities, element, &deferred.text);
            }
            deferred.relationships.extend(result.relationships);
        }
        self.deferred = deferred;
    }

    /// Emits the waiting relationships, in order; `more` (the ObjectReferences' relationships,
    /// made last) follow them.
    pub(super) fn emit_relationships(&mut self, more: &[Object]) {
        for relationship in more {
            self.defer_relationship(relationship);
        }
        let deferred = std::mem::take(&mut self.deferred);
        for relationship in deferred.relationships {
            if !self.object_ref_keys.contains(relationship.key.as_str()) {
                self.object_ref_keys
                    .insert(SharedId::from(relationship.key.as_str()));
                self.object_refs.push(relationship.id.clone());
            }
            if self.relationships.contains(&relationship.key) {
                continue;
            }
            if !self.compat && self.emitted.contains(&relationship.id) {
                continue;
            }
            self.relationships.insert(relationship.key);
            self.emitted.insert(relationship.id);
            self.written
                .append_from(&deferred.text, relationship.written);
        }
    }
}
