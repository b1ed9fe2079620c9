//! Every id vector computed by the real pycti 7.261026.0 and stix2 3.0.2
//! (`scripts/gen_id_vectors.py`) must come out byte-identical from `convert::ids`.

use chrono::DateTime;
use misp_feed::convert::ids::{self, IdTime};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/id_vectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn section<'a>(vectors: &'a Value, name: &str) -> &'a Vec<Value> {
    let cases = vectors[name].as_array().unwrap();
    assert!(!cases.is_empty(), "no {name} vectors");
    cases
}

/// A time argument as the generator wrote it: a string, `{"datetime": isoformat}` or null.
fn time(arg: &Value) -> Option<IdTime<'_>> {
    match arg {
        Value::Null => None,
        Value::String(text) => Some(IdTime::Text(text)),
        Value::Object(map) => {
            let iso = map["datetime"].as_str().unwrap();
            Some(IdTime::DateTime(DateTime::parse_from_rfc3339(iso).unwrap()))
        }
        other => panic!("unexpected time argument {other}"),
    }
}

fn string(arg: &Value) -> &str {
    arg.as_str().unwrap()
}

#[test]
fn canonical_json_matches_stix2_canonicalize() {
    let vectors = vectors();
    for case in section(&vectors, "canonical") {
        assert_eq!(
            ids::canonical_json(&case["input"]),
            case["expected"].as_str().unwrap(),
            "input {}",
            case["input"]
        );
    }
}

#[test]
fn pycti_generate_id_vectors() {
    let vectors = vectors();
    let mut functions_seen = std::collections::BTreeSet::new();
    for case in section(&vectors, "pycti") {
        let function = case["function"].as_str().unwrap();
        let args = case["args"].as_array().unwrap();
        let actual = match function {
            "report" => ids::report_id(string(&args[0]), time(&args[1]).unwrap()),
            "indicator" => ids::indicator_id(string(&args[0])),
            "identity" => ids::identity_id(string(&args[0]), string(&args[1])),
            "malware" => ids::malware_id(string(&args[0])),
            "intrusion_set" => ids::intrusion_set_id(string(&args[0])),
            "tool" => ids::tool_id(string(&args[0])),
            "attack_pattern" => ids::attack_pattern_id(string(&args[0]), args[1].as_str()),
            "location" => ids::location_id(string(&args[0]), string(&args[1])),
            "note" => ids::note_id(string(&args[0]), time(&args[1])),
            "marking_definition" => ids::marking_definition_id(string(&args[0]), string(&args[1])),
            "relationship" => ids::relationship_id(
                string(&args[0]),
                string(&args[1]),
                string(&args[2]),
                time(&args[3]),
                time(&args[4]),
            ),
            "sighting" => {
                ids::sighting_id(string(&args[0]), &args[1], time(&args[2]), time(&args[3]))
            }
            "pycti_id" => ids::pycti_id(string(&args[0]), &args[1]),
            other => panic!("unknown function {other}"),
        };
        assert_eq!(
            actual,
            case["expected"].as_str().unwrap(),
            "{function} {args:?}"
        );
        functions_seen.insert(function.to_owned());
    }
    assert_eq!(functions_seen.len(), 13, "{functions_seen:?}");
}

#[test]
fn sco_ids_match_stix2() {
    let vectors = vectors();
    for case in section(&vectors, "sco") {
        let stix_type = case["type"].as_str().unwrap();
        assert_eq!(
            ids::sco_id(stix_type, &case["properties"]),
            case["expected"].as_str().unwrap(),
            "{stix_type} {}",
            case["properties"]
        );
    }
}

#[test]
fn tlp_constants_match_stix2() {
    let vectors = vectors();
    let tlp = &vectors["tlp"];
    assert_eq!(ids::TLP_WHITE_ID, tlp["white"]);
    assert_eq!(ids::TLP_GREEN_ID, tlp["green"]);
    assert_eq!(ids::TLP_AMBER_ID, tlp["amber"]);
    assert_eq!(ids::TLP_RED_ID, tlp["red"]);
}

#[test]
fn utc_datetime_renders_like_python_isoformat() {
    // The connector passes `datetime.fromtimestamp(ts, tz=timezone.utc)` to Report.generate_id;
    // a chrono UTC time must give the same id as that datetime's isoformat string.
    let published = DateTime::parse_from_rfc3339("2023-01-02T00:00:00Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        ids::report_id("Some event", published),
        ids::report_id("Some event", "2023-01-02T00:00:00+00:00")
    );
}
