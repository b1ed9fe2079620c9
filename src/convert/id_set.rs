//! The de-duplication sets of a bundle under assembly, hashed once per id.
//!
//! An emitted object's id is checked against two sets and added to two, a referenced one's
//! against a third as well, and ids are long (`indicator--` and a uuid; source and target
//! ids for a relationship's key). Every set of one assembly shares one hasher, so an id is
//! hashed once into a [`Key`] and that hash serves every set it meets.

use std::hash::BuildHasher;
use std::rc::Rc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// An id held by several sets at once: one allocation for all of them, which for a large
/// event's hundreds of thousands of ids is tens of megabytes.
pub(super) type SharedId = Rc<str>;

/// An id and its hash under the assembly's [`IdHasher`].
#[derive(Clone, Copy)]
pub(super) struct Key<'a> {
    id: &'a str,
    hash: u64,
}

/// foldhash, seeded at random per assembly: several times faster than SipHash on these short
/// texts. Most ids are SHA-derived; those made from a MISP uuid are the feed's, and the
/// random seed keeps it from knowing which of them collide.
#[derive(Clone, Default)]
pub(super) struct IdHasher(RandomState);

impl IdHasher {
    pub(super) fn key<'a>(&self, id: &'a str) -> Key<'a> {
        Key {
            id,
            hash: self.0.hash_one(id),
        }
    }

    /// An empty set hashed as every other set of this hasher.
    pub(super) fn set(&self) -> IdSet {
        IdSet {
            table: HashTable::new(),
            hasher: self.clone(),
        }
    }
}

/// A set of ids, looked up by [`Key`].
pub(super) struct IdSet {
    table: HashTable<SharedId>,
    /// To place the ids again when the table grows.
    hasher: IdHasher,
}

impl IdSet {
    pub(super) fn contains(&self, key: Key<'_>) -> bool {
        self.table
            .find(key.hash, |held| **held == *key.id)
            .is_some()
    }

    /// Adds the key's id, made by `make` only when it is not there yet; the id added, if it
    /// was.
    pub(super) fn insert(
        &mut self,
        key: Key<'_>,
        make: impl FnOnce() -> SharedId,
    ) -> Option<&SharedId> {
        let hasher = &self.hasher.0;
        let entry = self.table.entry(
            key.hash,
            |held| **held == *key.id,
            |held| hasher.hash_one(&**held),
        );
        match entry {
            Entry::Occupied(_) => None,
            Entry::Vacant(slot) => Some(slot.insert(make()).into_mut()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_by_their_key_in_every_set_of_the_hasher() {
        let hasher = IdHasher::default();
        let mut first = hasher.set();
        let mut second = hasher.set();
        let ids: Vec<String> = (0..2_000).map(|n| format!("indicator--{n:036}")).collect();
        for id in &ids {
            let key = hasher.key(id);
            assert!(!first.contains(key));
            assert_eq!(
                first
                    .insert(key, || SharedId::from(id.as_str()))
                    .map(|a| a.to_string()),
                Some(id.clone())
            );
            assert!(first.insert(key, || unreachable!()).is_none());
        }
        for id in ids.iter().step_by(2) {
            second.insert(hasher.key(id), || SharedId::from(id.as_str()));
        }
        for (index, id) in ids.iter().enumerate() {
            let key = hasher.key(id);
            assert!(first.contains(key), "{id}");
            assert_eq!(second.contains(key), index % 2 == 0, "{id}");
        }
        assert!(!first.contains(hasher.key("indicator--")));
    }
}
