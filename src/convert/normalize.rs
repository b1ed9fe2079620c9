//! The canonical form the reference bundles are compared in (rules of
//! `tests/fixtures/reference/NORMALIZE.md`):
//! R1 the bundle id is dropped; R2 the 'now' timestamps stix2 stamps on objects built
//! without one are replaced by `"<now>"` (only values that look like a STIX timestamp);
//! R4 objects are sorted by (id, canonical JSON) and the emitted id sequence is kept as
//! `order`; everything else is kept as is.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::ids::canonical_json;

pub(crate) const NOW_PLACEHOLDER: &str = "<now>";
pub(crate) const NORMALIZER: &str = "misp-feed-oracle/1";

static STIX_TIMESTAMP: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$").ok());

/// Types whose `created` and `modified` are the time of conversion (R2a-R2d).
const NOW_STAMPED: &[&str] = &[
    "relationship",
    "identity",
    "malware",
    "intrusion-set",
    "attack-pattern",
    "tool",
    "location",
    "sighting",
];

fn replace_now(object: &mut Map<String, Value>, key: &str) {
    let looks_like_timestamp = object
        .get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| STIX_TIMESTAMP.as_ref().is_some_and(|re| re.is_match(s)));
    if looks_like_timestamp {
        object.insert(key.into(), NOW_PLACEHOLDER.into());
    }
}

/// One object with its 'now' timestamps replaced.
pub fn normalize_object(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(map) = &mut object {
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if NOW_STAMPED.contains(&kind.as_str()) {
            replace_now(map, "created");
            replace_now(map, "modified");
        } else if kind == "marking-definition"
            && map.get("definition_type").and_then(Value::as_str) == Some("statement")
        {
            replace_now(map, "created");
        }
    }
    object
}

/// The canonical form of a bundle given by its objects in emitted order.
pub fn normalize_objects(objects: &[Value]) -> Value {
    let order: Vec<Value> = objects
        .iter()
        .map(|o| o.get("id").cloned().unwrap_or(Value::Null))
        .collect();
    let mut keyed: Vec<(String, String, Value)> = objects
        .iter()
        .map(|o| {
            let normalized = normalize_object(o);
            let id = normalized
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            (id, canonical_json(&normalized), normalized)
        })
        .collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut out = Map::new();
    out.insert("type".into(), "bundle".into());
    out.insert("normalizer".into(), NORMALIZER.into());
    out.insert("order".into(), Value::Array(order));
    out.insert(
        "objects".into(),
        Value::Array(keyed.into_iter().map(|(_, _, o)| o).collect()),
    );
    Value::Object(out)
}

/// The canonical form of a serialized bundle (`{"type": "bundle", "id": ..., "objects": [...]}`).
pub fn normalize_bundle(bundle: &Value) -> Value {
    let objects = bundle
        .get("objects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    normalize_objects(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_only_now_timestamps_of_now_stamped_types() {
        let objects = vec![
            json!({"type": "relationship", "id": "relationship--b", "created": "2026-01-01T00:00:00.123Z", "modified": "bad"}),
            json!({"type": "indicator", "id": "indicator--a", "created": "2016-08-29T14:19:55.000Z"}),
            json!({"type": "marking-definition", "id": "marking-definition--c", "definition_type": "statement", "created": "2026-01-01T00:00:00Z"}),
            json!({"type": "marking-definition", "id": "marking-definition--d", "definition_type": "tlp", "created": "2017-01-20T00:00:00.000Z"}),
        ];
        let normalized = normalize_objects(&objects);
        assert_eq!(
            normalized["order"],
            json!([
                "relationship--b",
                "indicator--a",
                "marking-definition--c",
                "marking-definition--d"
            ])
        );
        let sorted = normalized["objects"].as_array().unwrap();
        assert_eq!(sorted[0]["id"], "indicator--a");
        assert_eq!(sorted[0]["created"], "2016-08-29T14:19:55.000Z");
        assert_eq!(sorted[1]["created"], NOW_PLACEHOLDER);
        assert_eq!(sorted[2]["created"], "2017-01-20T00:00:00.000Z");
        assert_eq!(sorted[3]["created"], NOW_PLACEHOLDER);
        assert_eq!(sorted[3]["modified"], "bad");
    }
}
