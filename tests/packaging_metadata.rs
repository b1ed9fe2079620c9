//! `__metadata__/`: the manifest and the JSON config schema OpenCTI's connector manager reads.
//! Both tables are generated from the option table (`tests/config_docs.rs` checks they are
//! current); these tests check what the generated schema says against what the loader does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::Utc;
use misp_feed::config::{OPTIONS, Settings};
use serde_json::Value;

fn metadata(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("__metadata__")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> Value {
    serde_json::from_str(&metadata("connector_config_schema.json")).unwrap()
}

fn base_env() -> HashMap<String, String> {
    [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "t"),
        ("CONNECTOR_ID", "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11"),
        ("MISP_FEED_URL", "https://feed.example"),
        // So that each value of the enums loads alone (s3 needs a bucket, no queue a folder).
        ("MISP_FEED_BUCKET_NAME", "misp"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY_PATH", "bundles"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A schema default as the summary prints it.
fn shown(default: &Value) -> String {
    match default {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(","),
        Value::String(text) => text.clone(),
        Value::Number(n) => n.as_f64().unwrap().to_string(),
        other => other.to_string(),
    }
}

#[test]
fn schema_describes_exactly_the_options_read() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["type"], "object");
    let properties = schema["properties"].as_object().unwrap();
    let in_schema: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
    let read: BTreeSet<&str> = OPTIONS.iter().map(|spec| spec.env).collect();
    assert_eq!(in_schema, read);
    for spec in OPTIONS.iter() {
        let property = &properties[spec.env];
        assert_eq!(property["description"], spec.description, "{}", spec.env);
        assert!(property["type"].is_string(), "{}", spec.env);
        if spec.secret {
            assert_eq!(property["format"], "password", "{}", spec.env);
            assert_eq!(property["writeOnly"], true, "{}", spec.env);
        }
        assert_eq!(
            property["deprecated"] == true,
            spec.deprecated,
            "{}",
            spec.env
        );
    }
    assert_eq!(
        schema["required"],
        serde_json::json!(["OPENCTI_URL", "OPENCTI_TOKEN"])
    );
}

#[test]
fn schema_defaults_are_the_connectors_defaults() {
    let schema = schema();
    let defaults: BTreeMap<&str, String> =
        Settings::default().redacted_entries().into_iter().collect();
    let mut compared = 0;
    for (name, property) in schema["properties"].as_object().unwrap() {
        match property.get("default") {
            Some(Value::Null) | None => {
                if let Some(ours) = defaults.get(name.as_str()) {
                    assert!(
                        ours.starts_with('<'),
                        "{name}: schema says unset, connector says {ours}"
                    );
                }
            }
            Some(default) => {
                assert_eq!(shown(default), defaults[name.as_str()], "{name}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 35, "{compared}");
}

#[test]
fn every_enum_value_of_the_schema_loads_and_types_match_the_loader() {
    let schema = schema();
    for (name, property) in schema["properties"].as_object().unwrap() {
        let mut samples: Vec<String> = match property["type"].as_str().unwrap() {
            "boolean" => vec!["true".into(), "false".into()],
            "integer" => vec![
                property
                    .get("minimum")
                    .and_then(Value::as_i64)
                    .unwrap_or(1)
                    .max(1)
                    .to_string(),
            ],
            "number" => vec!["1.5".into()],
            _ => Vec::new(),
        };
        if let Some(values) = property.get("enum").and_then(Value::as_array) {
            samples = values
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
        }
        for sample in samples {
            let mut env = base_env();
            env.insert(name.clone(), sample.clone());
            Settings::load_from(&env, None, Utc::now())
                .unwrap_or_else(|e| panic!("{name}={sample}: {e}"));
        }
    }
}

#[test]
fn manifest_has_the_fields_the_manager_reads() {
    let manifest: Value = serde_json::from_str(&metadata("connector_manifest.json")).unwrap();
    for key in [
        "title",
        "slug",
        "description",
        "short_description",
        "logo",
        "use_cases",
        "solution_categories",
        "license_type",
        "verified",
        "playbook_supported",
        "max_confidence_level",
        "support_version",
        "manager_supported",
        "container_version",
        "container_image",
        "container_type",
    ] {
        assert!(manifest.get(key).is_some(), "manifest lacks {key}");
    }
    assert_eq!(manifest["slug"], "misp-feed");
    assert_eq!(manifest["container_type"], "EXTERNAL_IMPORT");
    assert_eq!(manifest["manager_supported"], true);
    assert!(
        manifest["use_cases"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn config_doc_lists_every_option() {
    let doc = metadata("CONNECTOR_CONFIG_DOC.md");
    for spec in OPTIONS.iter() {
        let row = format!("| {} | {}.{} |", spec.env, spec.section, spec.key);
        assert!(doc.contains(&row), "CONNECTOR_CONFIG_DOC.md lacks {row}");
    }
}
