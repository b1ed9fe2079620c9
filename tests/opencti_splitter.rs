//! The splitter and envelope against the recorded pycti 7.261026.0 run: the feed bundle of
//! event 5a3c2fcd must split into the very 1747 AMQP messages the Python connector published.

use base64::Engine;
use misp_feed::sink::opencti::envelope::{EnvelopeFields, amqp_message_body};
use misp_feed::sink::opencti::splitter::{
    SplitOptions, split_bundle_detailed, split_bundle_with_expectations,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn recorded_messages() -> Vec<Value> {
    let recording: Value = serde_json::from_str(&fixture("opencti/amqp-messages.json")).unwrap();
    recording["messages"].as_array().unwrap().clone()
}

fn input_bundle() -> String {
    fixture("reference/feed-bundles/5a3c2fcd-8328-42bb-a95e-4f4402de0b81.full.json")
}

#[test]
fn sample_bundle_splits_into_the_recorded_messages() {
    let messages = recorded_messages();
    let (expectations, bundles) =
        split_bundle_with_expectations(&input_bundle(), &SplitOptions::default()).unwrap();
    assert_eq!(expectations, 1747);
    assert_eq!(bundles.len(), messages.len());

    for (position, (bundle, message)) in bundles.iter().zip(&messages).enumerate() {
        let summary = &message["envelope"]["content"];
        let context = format!("message {}", position + 1);
        assert_eq!(
            message["envelope"]["action_sequence"],
            position + 1,
            "{context}"
        );
        assert_eq!(
            summary["object_ids"][0],
            bundle.object_id.as_str(),
            "{context}"
        );
        assert_eq!(
            summary["object_types"][0],
            bundle.object_type.as_str(),
            "{context}"
        );
        assert_eq!(summary["nb_deps"][0], bundle.nb_deps, "{context}");
        assert_eq!(summary["x_opencti_seq"], bundle.nb_deps, "{context}");
        // The recording keeps the sha256 of every decoded content: byte-exact for all 1747.
        let digest = hex::encode(Sha256::digest(bundle.content.as_bytes()));
        assert_eq!(summary["content_sha256"], digest.as_str(), "{context}");
        let encoded_len = base64::engine::general_purpose::STANDARD
            .encode(&bundle.content)
            .len();
        assert_eq!(summary["content_base64_length"], encoded_len, "{context}");
    }

    // The two payloads kept verbatim.
    assert_eq!(
        bundles[0].content,
        fixture("opencti/split-bundle-example-1.json")
    );
    assert_eq!(
        bundles[1746].content,
        fixture("opencti/split-bundle-example-2.json")
    );
}

#[test]
fn envelope_bodies_match_the_recorded_bytes() {
    let messages = recorded_messages();
    let (_, bundles) =
        split_bundle_with_expectations(&input_bundle(), &SplitOptions::default()).unwrap();
    let no_types: Vec<String> = Vec::new();
    for (position, message) in messages.iter().enumerate() {
        let envelope = &message["envelope"];
        let fields = EnvelopeFields {
            applicant_id: envelope["applicant_id"].as_str(),
            entities_types: &no_types,
            update: envelope["update"].as_bool().unwrap(),
            draft_id: envelope["draft_id"].as_str(),
            no_split: envelope["no_split"].as_bool().unwrap(),
            work_id: envelope["work_id"].as_str(),
        };
        let body = amqp_message_body(&fields, position + 1, &bundles[position].content);
        assert_eq!(
            message["body_length"],
            body.len(),
            "message {}",
            position + 1
        );
        let parsed: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
        let order: Vec<&str> = parsed.keys().map(String::as_str).collect();
        let recorded_order: Vec<&str> = message["body_member_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key.as_str().unwrap())
            .collect();
        assert_eq!(order, recorded_order, "message {}", position + 1);
        if let Some(raw) = message.get("raw_body_utf8") {
            assert_eq!(body, raw.as_str().unwrap(), "message {}", position + 1);
        }
    }
    let verbatim = messages
        .iter()
        .filter(|message| message.get("raw_body_utf8").is_some())
        .count();
    assert_eq!(verbatim, 2);
}

#[test]
fn envelope_without_work_id_omits_the_member() {
    let types = vec!["Report".to_owned()];
    let fields = EnvelopeFields {
        applicant_id: None,
        entities_types: &types,
        update: true,
        draft_id: Some("draft-1"),
        no_split: true,
        work_id: None,
    };
    assert_eq!(
        amqp_message_body(&fields, 3, "{}"),
        r#"{"bundle_type": "QUEUE_BUNDLE", "applicant_id": null, "action_sequence": 3, "entities_types": ["Report"], "content": "e30=", "update": true, "draft_id": "draft-1", "no_split": true}"#
    );
}

#[test]
fn sample_bundle_has_no_incompatible_object() {
    let outcome = split_bundle_detailed(&input_bundle(), &SplitOptions::default()).unwrap();
    assert!(outcome.incompatible_ids.is_empty());
    assert_eq!(outcome.expectations, outcome.bundles.len());
}

/// Synthetic bundles reaching every corner of the splitter, with the outputs of pycti's real
/// splitter (`scripts/gen_splitter_vectors.py`): cycles, self/duplicate/unsupported/missing
/// refs, internal ids, de-duplication, incompatible objects, escaping, numbers, options.
#[test]
fn splitter_vectors_from_pycti() {
    let vectors: Value = serde_json::from_str(&fixture("opencti/splitter_vectors.json")).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 18);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let options = SplitOptions {
            event_version: case["event_version"].as_str().map(str::to_owned),
            cleanup_inconsistent_bundle: case["cleanup_inconsistent_bundle"].as_bool().unwrap(),
        };
        let outcome = split_bundle_detailed(case["bundle"].as_str().unwrap(), &options).unwrap();
        assert_eq!(outcome.expectations, case["expectations"], "{name}");
        let incompatible: Vec<&str> = case["incompatible_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap())
            .collect();
        assert_eq!(outcome.incompatible_ids, incompatible, "{name}");
        let expected: Vec<&str> = case["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bundle| bundle.as_str().unwrap())
            .collect();
        let actual: Vec<&str> = outcome
            .bundles
            .iter()
            .map(|bundle| bundle.content.as_str())
            .collect();
        assert_eq!(actual, expected, "{name}");
    }
}
