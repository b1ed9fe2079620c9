//! The bundle being assembled: the connector's de-duplication lists (`x not in
//! added_list`) as sets, checked the same way, so the first object wins and the order is
//! kept. In the corrected mode no id is emitted twice.
//!
//! An object is written as text when it is emitted (`written.rs`) and its map dropped. What
//! the connector emits only after every attribute is converted (the objects' Text
//! observables, the corrections' extra parts, the relationships) is written as soon as it is
//! made into a separate text ([`Deferred`]) and moved into the bundle in the connector's
//! order; what is sure to be dropped by then is not written at all.

use super::attribute::AttributeResult;
use super::id_set::{IdHasher, IdSet, Key, SharedId};
use super::object::Object;
use super::stix::{Markings, id_of};
use super::written::ObjectText;

/// Which of the connector's de-duplication lists an object is checked against.
#[derive(Clone, Copy)]
pub(super) enum Ledger {
    Markings,
    Entities,
    Sightings,
}

/// An object made before its turn to be emitted: its id, and its place in
/// [`Deferred::text`] unless it was sure to be dropped when it was made.
struct Waiting {
    id: SharedId,
    written: Option<usize>,
}

/// A relationship waiting for its turn: the connector emits them after every other object.
struct WaitingRelationship {
    /// Source and target ids: the connector's key for "same relationship".
    key: SharedId,
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
pub(super) struct Deferred {
    text: ObjectText,
    /// The relationships, in the connector's order.
    relationships: Vec<WaitingRelationship>,
    /// The objects' Text observables (`create_object_observables`).
    object_observables: Vec<Waiting>,
    /// Ids among `object_observables`: a repeated one is never emitted.
    object_observable_ids: IdSet,
    /// The corrections' extra parts of composite attributes.
    extra_results: Vec<DeferredResult>,
}

impl Deferred {
    /// Nothing deferred yet; objects are written as `bundle` writes them.
    fn new(bundle: &ObjectText, hasher: &IdHasher) -> Self {
        Deferred {
            text: bundle.side_text(),
            relationships: Vec::new(),
            object_observables: Vec::new(),
            object_observable_ids: hasher.set(),
            extra_results: Vec::new(),
        }
    }
}

/// The bundle being assembled, with the connector's de-duplication lists as sets.
pub(super) struct Assembly {
    /// The bundle's text so far: its head, then the emitted objects.
    pub(super) written: ObjectText,
    pub(super) compat: bool,
    /// The hasher of every set below.
    hasher: IdHasher,
    /// Every emitted id: in the corrected mode no id is emitted twice.
    emitted: IdSet,
    markings: IdSet,
    entities: IdSet,
    sightings: IdSet,
    observables: IdSet,
    /// Relationships already emitted, keyed by source + target.
    relationships: IdSet,
    pub(super) object_refs: Vec<SharedId>,
    /// `added_object_refs`: ids, and source + target for relationships.
    object_ref_keys: IdSet,
    pub(super) deferred: Deferred,
}

impl Assembly {
    /// A bundle written into `written` (its head already there).
    pub(super) fn new(compat: bool, written: ObjectText) -> Self {
        // The relationships alone can be a third of a bundle: the side text gets room (address
        // space, not memory, until written) so that it does not move as it grows.
        let hasher = IdHasher::default();
        let mut deferred = Deferred::new(&written, &hasher);
        deferred.text.reserve(written.capacity() / 2);
        Assembly {
            compat,
            emitted: hasher.set(),
            markings: hasher.set(),
            entities: hasher.set(),
            sightings: hasher.set(),
            observables: hasher.set(),
            relationships: hasher.set(),
            object_refs: Vec::new(),
            object_ref_keys: hasher.set(),
            deferred,
            written,
            hasher,
        }
    }

    fn ledger_set(&mut self, ledger: Ledger) -> &mut IdSet {
        match ledger {
            Ledger::Markings => &mut self.markings,
            Ledger::Entities => &mut self.entities,
            Ledger::Sightings => &mut self.sightings,
        }
    }

    /// The deferred objects, leaving none in their place.
    fn take_deferred(&mut self) -> Deferred {
        let empty = Deferred::new(&self.written, &self.hasher);
        std::mem::replace(&mut self.deferred, empty)
    }

    /// Whether an object with this id was emitted.
    pub(super) fn was_emitted(&self, id: &str) -> bool {
        self.emitted.contains(self.hasher.key(id))
    }

    /// Whether an object of `ledger` with this id would be dropped now, and so at any later
    /// time (the sets only grow).
    fn is_dropped(&mut self, ledger: Ledger, key: Key<'_>) -> bool {
        let dropped_by_emitted = !self.compat && self.emitted.contains(key);
        self.ledger_set(ledger).contains(key) || dropped_by_emitted
    }

    /// Records the key's id as emitted in `ledger`'s set and the set of every id.
    fn record(&mut self, ledger: Ledger, key: Key<'_>, id: &SharedId) {
        self.ledger_set(ledger).insert(key, || id.clone());
        self.emitted.insert(key, || id.clone());
    }

    pub(super) fn emit(&mut self, ledger: Ledger, object: &Object) {
        let key = self.hasher.key(id_of(object));
        if self.is_dropped(ledger, key) {
            return;
        }
        self.record(ledger, key, &SharedId::from(id_of(object)));
        self.written.write(object);
    }

    pub(super) fn emit_unchecked(&mut self, object: &Object) {
        let id = id_of(object);
        self.emitted
            .insert(self.hasher.key(id), || SharedId::from(id));
        self.written.write(object);
    }

    pub(super) fn reference(&mut self, id: &str) {
        let key = self.hasher.key(id);
        if let Some(added) = self.object_ref_keys.insert(key, || SharedId::from(id)) {
            self.object_refs.push(added.clone());
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
            key: SharedId::from([end("source_ref"), end("target_ref")].concat()),
            id: SharedId::from(id_of(relationship)),
            written: self.deferred.text.write(relationship),
        }
    }

    /// An object of `ledger` made ahead of its turn: written unless already sure to be
    /// dropped.
    fn wait(&mut self, ledger: Ledger, object: &Object) -> Waiting {
        let id = id_of(object);
        let dropped = self.is_dropped(ledger, self.hasher.key(id));
        let written = (!dropped).then(|| self.deferred.text.write(object));
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
        let key = self.hasher.key(&id);
        let sure_to_be_dropped = self.deferred.object_observable_ids.contains(key)
            || (!self.compat && self.emitted.contains(key));
        let written = (!sure_to_be_dropped).then(|| self.deferred.text.write(observable));
        self.deferred
            .object_observable_ids
            .insert(key, || id.clone());
        self.deferred
            .object_observables
            .push(Waiting { id, written });
    }

    /// Emits a waiting object as [`Assembly::emit`] would have.
    fn emit_waiting(&mut self, ledger: Ledger, waiting: Waiting, text: &ObjectText) {
        let Some(index) = waiting.written else {
            return;
        };
        let key = self.hasher.key(&waiting.id);
        if self.is_dropped(ledger, key) {
            return;
        }
        self.record(ledger, key, &waiting.id);
        self.written.append_from(text, index);
    }

    /// The objects' Text observables, then the extra parts of composite attributes: what the
    /// connector emits after the attributes' objects, in its order.
    pub(super) fn emit_deferred_objects(&mut self) {
        let mut deferred = self.take_deferred();
        for observable in std::mem::take(&mut deferred.object_observables) {
            self.reference(&observable.id);
            let key = self.hasher.key(&observable.id);
            if !self.observables.contains(key) && (self.compat || !self.emitted.contains(key)) {
                self.observables.insert(key, || observable.id.clone());
                self.emitted.insert(key, || observable.id.clone());
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
        let deferred = self.take_deferred();
        for relationship in deferred.relationships {
            let key = self.hasher.key(&relationship.key);
            let new_key = || relationship.key.clone();
            if self.object_ref_keys.insert(key, new_key).is_some() {
                self.object_refs.push(relationship.id.clone());
            }
            if self.relationships.contains(key) {
                continue;
            }
            let id_key = self.hasher.key(&relationship.id);
            if !self.compat && self.emitted.contains(id_key) {
                continue;
            }
            self.relationships.insert(key, new_key);
            self.emitted.insert(id_key, || relationship.id.clone());
            self.written
                .append_from(&deferred.text, relationship.written);
        }
    }
}
