//! STIX objects written as text the moment they are emitted.
//!
//! A large event makes hundreds of thousands of objects; held as `serde_json::Value` maps
//! until the bundle is serialised they take several times the bundle's size. Each object is
//! instead written once, compact as serde_json writes it, into one growing text, and its map
//! is dropped at once. What the later steps need of an object is recorded beside its text:
//! where it is, its id, whether it lists other objects (`object_refs`), and the hash of its
//! stable content that the delta push compares (computed from the very bytes written, so an
//! object is serialised once for both).

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Number, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::object::Object;
use crate::pycompat::json::{JsonDialect, write_json, write_minimal_string};

/// A short hash of an object's stable content: XXH3-64 (big-endian) of the object's compact
/// JSON without the fields the conversion fills from the clock ([`VOLATILE`]).
///
/// It detects change and authenticates nothing: whoever could forge a collision writes the
/// feed anyway. Earlier versions took the first 8 bytes of a SHA-256 over the members, a
/// sixth of the conversion's CPU, and a ledger they wrote still holds such hashes. None of
/// them matches, so the first update of such an event after the upgrade sends all its
/// objects, and the ids still tell which objects the update removed.
pub(crate) type ObjectHash = [u8; 8];

fn stable_hash(stable_json: &str) -> ObjectHash {
    xxh3_64(stable_json.as_bytes()).to_be_bytes()
}

/// Per STIX type, the fields the conversion fills from the clock (stix2 stamps
/// `created`/`modified` on objects the event gives no time for).
pub const VOLATILE: &[(&str, &[&str])] = &[
    ("attack-pattern", &["created", "modified"]),
    ("identity", &["created", "modified"]),
    ("intrusion-set", &["created", "modified"]),
    ("location", &["created", "modified"]),
    ("malware", &["created", "modified"]),
    ("marking-definition", &["created"]),
    ("relationship", &["created", "modified"]),
    ("sighting", &["created", "modified"]),
    ("tool", &["created", "modified"]),
];

fn volatile_fields(stix_type: &str) -> &'static [&'static str] {
    VOLATILE
        .iter()
        .find(|(t, _)| *t == stix_type)
        .map_or(&[], |(_, fields)| fields)
}

/// Where one written object is, and what is known of it without reading it again.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The object's text.
    span: Range<usize>,
    /// Its `id`'s text (inside the quotes, as written).
    id: Range<usize>,
    pub(crate) hash: ObjectHash,
    /// It has `object_refs`: a container that travels with every push of its event.
    pub(crate) container: bool,
}

/// Objects written one after the other, separated by commas, after an optional head.
#[derive(Debug, Clone)]
pub(crate) struct ObjectText {
    text: String,
    /// The length of the head the objects follow.
    head_len: usize,
    entries: Vec<Entry>,
    /// Whether each object's stable-content hash is computed (else it is all zeros): only
    /// the pipeline compares and records them.
    hashed: bool,
    /// The last object of a type with clock-filled fields, written again without them to be
    /// hashed (kept to reuse its allocation).
    stable_copy: String,
}

impl Default for ObjectText {
    fn default() -> Self {
        ObjectText {
            text: String::new(),
            head_len: 0,
            entries: Vec::new(),
            hashed: true,
            stable_copy: String::new(),
        }
    }
}

impl ObjectText {
    /// An empty text whose objects will follow `head` (a bundle's opening, say).
    pub(crate) fn with_head(head: &str) -> Self {
        let mut text = String::with_capacity(head.len().max(1 << 16));
        text.push_str(head);
        ObjectText {
            text,
            head_len: head.len(),
            entries: Vec::new(),
            hashed: true,
            stable_copy: String::new(),
        }
    }

    /// [`ObjectText::with_head`], without the stable-content hashes: for a bundle only
    /// printed, where the hashes would be computed for nothing.
    pub(crate) fn unhashed_with_head(head: &str) -> Self {
        ObjectText {
            hashed: false,
            ..ObjectText::with_head(head)
        }
    }

    /// An empty text that hashes as this one does (for objects written ahead of their turn
    /// and moved into this one).
    pub(crate) fn side_text(&self) -> Self {
        ObjectText {
            hashed: self.hashed,
            ..ObjectText::default()
        }
    }

    pub(crate) fn is_hashed(&self) -> bool {
        self.hashed
    }

    /// Room for `additional` more bytes of objects, and for the entries of that many bytes
    /// of objects (written objects average 500 to 600 bytes): a large list grown by
    /// doubling is copied into fresh pages at each step.
    pub(crate) fn reserve(&mut self, additional: usize) {
        const TYPICAL_OBJECT_BYTES: usize = 512;
        self.text.reserve(additional);
        self.entries.reserve(additional / TYPICAL_OBJECT_BYTES);
    }

    /// The bytes the text can hold without moving.
    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity()
    }

    /// The head the objects follow.
    pub(crate) fn head(&self) -> &str {
        self.slice(0..self.head_len)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The text of object `index`, as written.
    pub(crate) fn object(&self, index: usize) -> &str {
        self.entries
            .get(index)
            .map_or("", |entry| self.slice(entry.span.clone()))
    }

    /// The id of object `index` (unescaped; ids are plain in practice).
    pub(crate) fn id(&self, index: usize) -> Cow<'_, str> {
        let Some(entry) = self.entries.get(index) else {
            return Cow::Borrowed("");
        };
        let raw = self.slice(entry.id.clone());
        if raw.contains('\\') {
            let quoted = format!("\"{raw}\"");
            return Cow::Owned(serde_json::from_str(&quoted).unwrap_or_default());
        }
        Cow::Borrowed(raw)
    }

    fn slice(&self, range: Range<usize>) -> &str {
        self.text.get(range).unwrap_or("")
    }

    /// Writes `object` after the others; returns its position.
    pub(crate) fn write(&mut self, object: &Object) -> usize {
        // An `Object`'s keys are the converter's own constants: nothing in them to escape.
        debug_assert!(object.iter().all(|(key, _)| !key.contains(['"', '\\'])));
        self.write_members::<true>(object.str("type").unwrap_or(""), object.iter())
    }

    /// Writes a JSON object given as a `Value` (what tests build with `json!`).
    #[cfg(test)]
    pub(crate) fn write_value(&mut self, object: &Value) -> usize {
        let members = object.as_object().into_iter().flatten();
        let stix_type = object.get("type").and_then(Value::as_str).unwrap_or("");
        self.write_members::<false>(stix_type, members.map(|(key, value)| (key.as_str(), value)))
    }

    /// `PLAIN_KEYS`: the keys need no escaping.
    fn write_members<'m, const PLAIN_KEYS: bool>(
        &mut self,
        stix_type: &str,
        members: impl Iterator<Item = (&'m str, &'m Value)>,
    ) -> usize {
        if !self.entries.is_empty() {
            self.text.push(',');
        }
        let start = self.text.len();
        let mut id = start..start;
        let mut container = false;
        let volatile = volatile_fields(stix_type);
        // Most objects have no clock-filled field: their hash is of the text as written.
        let copy_stable = self.hashed && !volatile.is_empty();
        if copy_stable {
            self.stable_copy.clear();
            self.stable_copy.push('{');
        }
        self.text.push('{');
        for (position, (key, value)) in members.enumerate() {
            if position > 0 {
                self.text.push(',');
            }
            let member_start = self.text.len();
            if PLAIN_KEYS {
                self.text.push('"');
                self.text.push_str(key);
                self.text.push_str("\":");
            } else {
                write_minimal_string(key, &mut self.text);
                self.text.push(':');
            }
            let value_start = self.text.len();
            write_json::<CompactJson>(value, &mut self.text);
            match key {
                "id" if value.is_string() => {
                    id = value_start + 1..self.text.len() - 1;
                }
                "object_refs" => container = true,
                _ => {}
            }
            if copy_stable && !volatile.contains(&key) {
                if self.stable_copy.len() > 1 {
                    self.stable_copy.push(',');
                }
                self.stable_copy.push_str(&self.text[member_start..]);
            }
        }
        self.text.push('}');
        let hash = if !self.hashed {
            [0u8; 8]
        } else if copy_stable {
            self.stable_copy.push('}');
            stable_hash(&self.stable_copy)
        } else {
            stable_hash(&self.text[start..])
        };
        self.entries.push(Entry {
            span: start..self.text.len(),
            id,
            hash,
            container,
        });
        self.entries.len() - 1
    }

    /// Appends object `index` of `other`, with what is known of it.
    pub(crate) fn append_from(&mut self, other: &ObjectText, index: usize) {
        let Some(entry) = other.entries.get(index) else {
            return;
        };
        if !self.entries.is_empty() {
            self.text.push(',');
        }
        let start = self.text.len();
        self.text.push_str(other.slice(entry.span.clone()));
        let shift = |range: &Range<usize>| {
            range.start - entry.span.start + start..range.end - entry.span.start + start
        };
        self.entries.push(Entry {
            span: shift(&entry.span),
            id: shift(&entry.id),
            hash: entry.hash,
            container: entry.container,
        });
    }

    /// The whole text: the head, the objects, then `tail`.
    pub(crate) fn finish(mut self, tail: &str) -> String {
        self.text.push_str(tail);
        self.text
    }

    /// Each object parsed back: for tests and tools that look at the objects themselves.
    pub(crate) fn values(&self) -> Vec<Value> {
        (0..self.len())
            .map(|index| serde_json::from_str(self.object(index)).unwrap_or(Value::Null))
            .collect()
    }
}

/// Compact JSON exactly as serde_json writes it (`serde_json::to_string`), written straight
/// into the text: no separators' spaces, members in order, strings escaped minimally.
struct CompactJson;

impl JsonDialect for CompactJson {
    const ITEM_SEPARATOR: &'static str = ",";
    const KEY_SEPARATOR: &'static str = ":";
    const SORT_KEYS_BY_UTF16: bool = false;

    fn write_string(text: &str, out: &mut String) {
        write_minimal_string(text, out);
    }

    fn write_number(number: &Number, out: &mut String) {
        // serde_json prints a number the same way through `Display` as when serialising.
        use std::fmt::Write;
        let _ = write!(out, "{number}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The hash's definition, computed the plain way: the object without its clock-filled
    /// members, as serde_json writes it, through XXH3-64.
    fn reference_hash(object: &Value) -> ObjectHash {
        let mut stable = object.as_object().unwrap().clone();
        let volatile = volatile_fields(object["type"].as_str().unwrap_or(""));
        stable.retain(|key, _| !volatile.contains(&key.as_str()));
        xxh3_64(serde_json::to_string(&stable).unwrap().as_bytes()).to_be_bytes()
    }

    fn sample() -> Vec<Value> {
        vec![
            json!({"type": "identity", "id": "identity--1", "name": "caf\u{e9} \"q\"",
                   "created": "2024-01-01T00:00:00.000Z"}),
            json!({"type": "report", "id": "report--2", "object_refs": ["identity--1"],
                   "x": {"nested": [1, 2.5, null, true]}}),
            json!({"type": "relationship", "id": "relationship--3", "created": "now",
                   "modified": "now", "source_ref": "a", "target_ref": "b"}),
            // A clock-filled member first and last: the stable copy's commas.
            json!({"created": "now", "type": "sighting", "id": "sighting--4",
                   "count": 2, "modified": "now"}),
        ]
    }

    #[test]
    fn objects_are_written_as_serde_json_writes_them_with_their_stable_hash() {
        let mut text = ObjectText::with_head("[");
        for object in sample() {
            text.write_value(&object);
        }
        let expected = serde_json::to_string(&sample()).unwrap();
        assert_eq!(text.finish("]"), expected);

        let mut text = ObjectText::default();
        for object in sample() {
            text.write_value(&object);
        }
        for (index, object) in sample().iter().enumerate() {
            assert_eq!(text.object(index), serde_json::to_string(object).unwrap());
            assert_eq!(text.id(index), object["id"].as_str().unwrap());
            assert_eq!(text.entries()[index].hash, reference_hash(object));
            assert_eq!(
                text.entries()[index].container,
                object.get("object_refs").is_some()
            );
        }
        assert_eq!(text.values(), sample());

        // The converter's own path (constant keys, written without an escape scan) writes
        // the same text and hash as the general one.
        let mut built = Object::new();
        built.insert("type", json!("relationship"));
        built.insert("id", json!("relationship--3"));
        built.insert("created", json!("now"));
        built.insert("x", json!({"nested": ["caf\u{e9} \"q\"", 2.5, null]}));
        let mut both = ObjectText::default();
        both.write(&built);
        both.write_value(&built.to_value());
        assert_eq!(both.object(0), both.object(1));
        assert_eq!(both.id(0), "relationship--3");
        assert_eq!(both.entries()[0].hash, both.entries()[1].hash);
        assert_eq!(both.entries()[0].hash, reference_hash(&built.to_value()));
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!("plain"),
            json!("\"\\\u{0}\u{1f}\u{7f}\u{8}\u{c}\n\r\t caf\u{e9} \u{1f600} </script>"),
            json!([
                0,
                -1,
                u64::MAX,
                i64::MIN,
                0.1,
                -2.5,
                1e21,
                1.5e-7,
                123456789.125
            ]),
            json!({"b": null, "a": [true, false, {}], "": []}),
        ];
        for value in values {
            let mut out = String::new();
            write_json::<CompactJson>(&value, &mut out);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
    }

    #[test]
    fn the_clock_filled_fields_do_not_change_the_hash() {
        let mut text = ObjectText::default();
        let mut later = sample()[2].clone();
        later["created"] = json!("later");
        later["modified"] = json!("later");
        text.write_value(&sample()[2]);
        text.write_value(&later);
        let mut changed = later.clone();
        changed["target_ref"] = json!("c");
        text.write_value(&changed);
        let hashes: Vec<ObjectHash> = text.entries().iter().map(|e| e.hash).collect();
        assert_eq!(hashes[0], hashes[1]);
        assert_ne!(hashes[1], hashes[2]);
    }

    #[test]
    fn an_appended_object_keeps_its_text_id_and_hash() {
        let mut pending = ObjectText::default();
        for object in sample() {
            pending.write_value(&object);
        }
        let mut text = ObjectText::with_head("{\"objects\":[");
        text.write_value(&json!({"type": "note", "id": "note--0"}));
        text.append_from(&pending, 1);
        text.append_from(&pending, 0);
        assert_eq!(text.id(1), "report--2");
        assert_eq!(text.id(2), "identity--1");
        assert_eq!(text.object(2), pending.object(0));
        assert_eq!(text.entries()[1].hash, pending.entries()[1].hash);
        assert!(text.entries()[1].container);
        let bundle = text.finish("]}");
        let parsed: Value = serde_json::from_str(&bundle).unwrap();
        let parsed = parsed["objects"].as_array().unwrap();
        assert_eq!(parsed[0]["id"], "note--0");
        assert_eq!(parsed[1], sample()[1]);
        assert_eq!(parsed[2], sample()[0]);
    }
}
