//! What a real pycti run recorded (the GraphQL transcripts and the AMQP messages of
//! `tests/fixtures/opencti/`), and the checks that compare a run of ours with it.

use serde_json::{Value, json};

use super::fixture;
use super::opencti::{Recorded, TOKEN};
use super::rabbitmq::QueuedMessage;

/// The event of the recorded run, whose feed bundle the recorded messages were split from.
pub const RECORDED_EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

/// The feed bundle (`full` profile) of [`RECORDED_EVENT`], as the Python connector made it.
pub fn reference_bundle() -> String {
    std::fs::read_to_string(fixture(&format!(
        "reference/feed-bundles/{RECORDED_EVENT}.full.json"
    )))
    .unwrap()
}

/// pycti's query texts differ from ours only in indentation.
pub fn normalize_query(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A transcript of a real pycti run.
pub fn transcript(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(&format!("opencti/{name}")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Asserts the fake saw the same requests as pycti sent: operation names and types, root
/// fields, body members, query text modulo whitespace, variable keys (and the keys of the
/// `input` / `connectorInfo` objects), and pycti's headers.
pub fn assert_matches_transcript(seen: &[Recorded], expected: &[Value]) {
    let seen_names: Vec<&str> = seen.iter().map(|r| r.operation_name.as_str()).collect();
    let expected_names: Vec<&str> = expected
        .iter()
        .map(|e| e["operationName"].as_str().unwrap())
        .collect();
    assert_eq!(seen_names, expected_names, "operation sequence");
    for (ours, theirs) in seen.iter().zip(expected) {
        let name = &ours.operation_name;
        assert_eq!(ours.rejected, None, "{name} rejected by the schema");
        assert_eq!(
            ours.operation_type,
            theirs["operationType"].as_str().unwrap(),
            "{name}"
        );
        let root: Vec<String> = serde_json::from_value(theirs["rootFields"].clone()).unwrap();
        assert_eq!(ours.root_fields, root, "{name} root fields");
        let body_keys: Vec<String> = serde_json::from_value(theirs["bodyKeys"].clone()).unwrap();
        assert_eq!(ours.body_keys, body_keys, "{name} body members");
        assert_eq!(
            normalize_query(&ours.query),
            normalize_query(theirs["query"].as_str().unwrap()),
            "{name} query text"
        );
        assert_eq!(
            sorted_keys(&ours.variables),
            sorted_keys(&theirs["variables"]),
            "{name} variables"
        );
        for nested in ["input", "connectorInfo"] {
            if let Some(expected_nested) = theirs["variables"].get(nested) {
                assert_eq!(
                    ours.variables[nested]
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                    expected_nested
                        .as_object()
                        .map(|o| o.keys().cloned().collect::<Vec<_>>()),
                    "{name} {nested} members and order"
                );
            }
        }
        let headers = &theirs["headers"];
        assert_eq!(
            ours.headers.get("user-agent").map(String::as_str),
            headers["User-Agent"].as_str(),
            "{name}"
        );
        assert_eq!(
            ours.headers.get("content-type").map(String::as_str),
            headers["Content-Type"].as_str(),
            "{name}"
        );
        assert_eq!(
            ours.headers.get("authorization").cloned(),
            Some(format!("Bearer {TOKEN}")),
            "{name}"
        );
        assert!(!ours.headers.contains_key("opencti-applicant-id"), "{name}");
    }
}

/// Checks one message read back from the push queue against the recorded pycti message at
/// the same position: exchange, routing key, AMQP properties, body length and member order,
/// envelope members, work id, and the split bundle's object, `nb_deps` and sequence number.
/// Returns the body text and the decoded split bundle for stricter checks.
pub fn check_message_against_recording(
    position: usize,
    ours: &QueuedMessage,
    theirs: &Value,
    connector_id: &str,
    work_id: &str,
) -> (String, Vec<u8>) {
    use base64::Engine;
    assert_eq!(ours.exchange, theirs["exchange"].as_str().unwrap());
    assert_eq!(ours.routing_key, format!("push_routing_{connector_id}"));
    let properties = &ours.properties;
    assert_eq!(properties.delivery_mode(), &Some(2), "message {position}");
    assert_eq!(
        properties.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(properties.content_type(), &None);
    assert!(properties.headers().is_none());
    assert!(properties.message_id().is_none() && properties.timestamp().is_none());
    assert!(properties.priority().is_none() && properties.expiration().is_none());
    assert!(properties.app_id().is_none() && properties.kind().is_none());

    let body = std::str::from_utf8(&ours.body).unwrap().to_string();
    let envelope: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = envelope
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys: Vec<&str> = theirs["body_member_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(keys, expected_keys, "message {position}");
    let recorded_envelope = &theirs["envelope"];
    for member in [
        "bundle_type",
        "applicant_id",
        "action_sequence",
        "entities_types",
        "update",
        "draft_id",
        "no_split",
    ] {
        assert_eq!(
            envelope[member], recorded_envelope[member],
            "message {position} {member}"
        );
    }
    assert_eq!(envelope["work_id"], json!(work_id));
    let content = base64::engine::general_purpose::STANDARD
        .decode(envelope["content"].as_str().unwrap())
        .unwrap();
    let summary = &recorded_envelope["content"];
    let split: Value = serde_json::from_slice(&content).unwrap();
    assert_eq!(
        split["x_opencti_seq"], summary["x_opencti_seq"],
        "message {position}"
    );
    assert_eq!(
        split["objects"][0]["id"], summary["object_ids"][0],
        "message {position}"
    );
    assert_eq!(
        split["objects"][0]["nb_deps"], summary["nb_deps"][0],
        "message {position}"
    );
    (body, content)
}
