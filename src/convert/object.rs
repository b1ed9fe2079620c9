//! A STIX object under construction.
//!
//! The conversion makes several objects per MISP attribute and writes each one as text at
//! once (`written.rs`), so a general JSON map is the wrong tool: `serde_json::Map` (an
//! `IndexMap` with SipHash) allocates every key and hashes it on every insert, for objects
//! of a dozen members that live a few microseconds. An object here is its members in order,
//! with the keys the converter's own constants.

use serde_json::Value;

/// A STIX object's members in the order they were first set (stix2's order); setting a
/// member again replaces its value in place, as `serde_json::Map` with `preserve_order` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Object {
    members: Vec<(&'static str, Value)>,
}

impl Object {
    pub(crate) fn new() -> Self {
        Object {
            members: Vec::with_capacity(12),
        }
    }

    pub(crate) fn insert(&mut self, key: &'static str, value: Value) {
        match self
            .members
            .iter_mut()
            .find(|(known, _)| same_key(known, key))
        {
            Some((_, held)) => *held = value,
            None => self.members.push((key, value)),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.members
            .iter()
            .find(|(known, _)| same_key(known, key))
            .map(|(_, value)| value)
    }

    /// A string member.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The `id` member (empty when unset).
    pub(crate) fn id(&self) -> &str {
        self.str("id").unwrap_or("")
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.members.iter().map(|(key, value)| (*key, value))
    }

    /// The object as a JSON value: for tests and tools that compare objects.
    #[cfg(test)]
    pub(crate) fn to_value(&self) -> Value {
        Value::Object(
            self.members
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
        )
    }
}

/// Key equality, with the length and first byte compared before the bytes: every insert
/// compares its key with each member already set, and nearly all differ there.
fn same_key(known: &str, key: &str) -> bool {
    known.len() == key.len() && known.as_bytes().first() == key.as_bytes().first() && known == key
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_keep_their_first_place_and_their_last_value() {
        let mut object = Object::new();
        object.insert("type", json!("indicator"));
        object.insert("id", json!("indicator--1"));
        object.insert("type", json!("note"));
        assert_eq!(object.id(), "indicator--1");
        assert_eq!(object.str("type"), Some("note"));
        assert_eq!(object.get("missing"), None);
        let keys: Vec<&str> = object.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["type", "id"]);
        assert_eq!(
            serde_json::to_string(&object.to_value()).unwrap(),
            r#"{"type":"note","id":"indicator--1"}"#
        );
    }
}
