//! Events as MISP writes them: galaxy cluster `meta` values as lists (event exports) or texts
//! (the galaxy's own JSON), an empty `meta` as `[]`, tag lists written as objects keyed by
//! index, numbers where MISP writes texts, REST search results, keys beside `Event`.
//!
//! Compat output is the Python connector's on each (`tests/fixtures/shapes/bundles/`, made by
//! the connector itself, see the README there); the default mode uses the values.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use misp_feed::convert::normalize::{normalize_bundle, normalize_object, normalize_objects};
use misp_feed::convert::{
    ConvertOptions, MispEvent, ResolvedThreats, ThreatLevelScores, convert_event, parse_event_file,
};
use serde_json::{Value, json};

use crate::convert_parity::profile_options;

const PROFILES: [&str; 3] = ["defaults", "full", "opaque-objects"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn shape_event(name: &str) -> Value {
    read_json(&fixtures().join(format!("shapes/events/{name}.json")))
}

fn parse(value: &Value) -> Vec<MispEvent> {
    parse_event_file(value.to_string().as_bytes(), "shapes.json").unwrap()
}

fn convert(event: &MispEvent, options: &ConvertOptions) -> Vec<Value> {
    convert_event(event, options, &ResolvedThreats::default())
        .unwrap()
        .objects()
}

fn convert_value(value: &Value, options: &ConvertOptions) -> Vec<Value> {
    let events = parse(value);
    assert_eq!(events.len(), 1);
    convert(&events[0], options)
}

/// Every option of ours at a value other than its default: compat mode must not see them.
fn with_every_option_of_ours(options: ConvertOptions) -> ConvertOptions {
    ConvertOptions {
        import_deleted: true,
        indicators_only_to_ids: true,
        indicator_valid_days: Some(30),
        threat_level_score_mapping: ThreatLevelScores::parse("1:1;2:2;3:3;4:4").unwrap(),
        keep_original_tags_as_label: vec!["misp-galaxy:".into(), "tlp:".into()],
        propagate_labels: true,
        ..options
    }
}

fn shape_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fixtures().join("shapes/events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| path.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn compat_output_is_the_connectors_on_every_shape() {
    let mut compared = 0;
    for name in shape_names() {
        let event = shape_event(&name);
        for profile in PROFILES {
            let reference =
                read_json(&fixtures().join(format!("shapes/bundles/{name}.{profile}.json")));
            let expected = normalize_bundle(&reference);
            for options in [
                profile_options(profile, true),
                with_every_option_of_ours(profile_options(profile, true)),
            ] {
                let actual = normalize_objects(&convert_value(&event, &options));
                assert!(
                    actual == expected,
                    "{name}.{profile} differs from the connector's"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 4 * 3 * 2);
}

#[test]
fn compat_output_stays_the_references_with_every_option_of_ours_set() {
    let mut compared = 0;
    for entry in fs::read_dir(fixtures().join("misp/events")).unwrap() {
        let path = entry.unwrap().path();
        let uuid = path.file_stem().unwrap().to_str().unwrap().to_string();
        let event = read_json(&path);
        for profile in PROFILES {
            let expected =
                read_json(&fixtures().join(format!("reference/normalized/{uuid}.{profile}.json")));
            let options = with_every_option_of_ours(profile_options(profile, true));
            let actual = normalize_objects(&convert_value(&event, &options));
            assert!(
                actual == expected,
                "{uuid}.{profile} differs from the reference"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 27);
}

/// Objects by type, name (or value) and id, normalized, the report left out.
fn by_name(objects: &[Value]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .filter(|o| o["type"] != "report")
        .map(|o| {
            let name = o["name"].as_str().or(o["value"].as_str()).unwrap_or("");
            (
                format!("{} {name} {}", o["type"], o["id"]),
                normalize_object(o),
            )
        })
        .collect()
}

fn find<'o>(objects: &'o [Value], kind: &str, name: &str) -> &'o Value {
    objects
        .iter()
        .find(|o| o["type"] == kind && o["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_default_mode_uses_listed_galaxy_values() {
    let full = profile_options("full", false);
    let exported = convert_value(&shape_event("galaxies-as-exported"), &full);
    let compat = convert_value(
        &shape_event("galaxies-as-exported"),
        &profile_options("full", true),
    );
    assert_eq!(find(&compat, "location", "France")["country"], "['FR']");
    assert_eq!(find(&exported, "location", "France")["country"], "FR");
    assert_eq!(find(&exported, "location", "Germany")["country"], "DE");
    let pattern = find(
        &exported,
        "attack-pattern",
        "Command and Scripting Interpreter",
    );
    assert_eq!(pattern["x_mitre_id"], "T1059");
    // The country made from the attribute's galaxy is the indicator's target.
    let germany = find(&exported, "location", "Germany")["id"].clone();
    assert!(exported.iter().any(|o| o["type"] == "relationship"
        && o["target_ref"] == germany
        && o["source_ref"].as_str().unwrap().starts_with("indicator--")));

    // The galaxy's own JSON writes single values as texts; the connector takes the first
    // character of a text MITRE id, the default mode the id.
    let galaxy_json = convert_value(&shape_event("galaxies-as-galaxy-json"), &full);
    let compat = convert_value(
        &shape_event("galaxies-as-galaxy-json"),
        &profile_options("full", true),
    );
    assert_eq!(
        find(
            &compat,
            "attack-pattern",
            "Command and Scripting Interpreter"
        )["x_mitre_id"],
        "T"
    );
    assert_eq!(
        find(
            &galaxy_json,
            "attack-pattern",
            "Command and Scripting Interpreter"
        )["x_mitre_id"],
        "T1059"
    );
    // Both layouts mean the same: the default mode makes the same objects of them.
    let (exported, galaxy_json) = (by_name(&exported), by_name(&galaxy_json));
    assert!(exported.len() > 40);
    assert!(
        exported == galaxy_json,
        "the two layouts convert differently"
    );
}

/// `{"0": a, "2": b}` -> `[a, b]`, everywhere in the value.
fn php_objects_as_lists(value: &Value) -> Value {
    match value {
        Value::Object(members)
            if !members.is_empty() && members.keys().all(|k| k.parse::<u32>().is_ok()) =>
        {
            Value::Array(members.values().map(php_objects_as_lists).collect())
        }
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), php_objects_as_lists(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(php_objects_as_lists).collect()),
        other => other.clone(),
    }
}

#[test]
fn tag_lists_written_as_objects_read_as_lists() {
    let shaped = shape_event("php-arrays");
    assert!(shaped["Event"]["Tag"].is_object());
    assert!(shaped["Event"]["Attribute"][0]["Tag"].is_object());
    let lists = php_objects_as_lists(&shaped);
    for compat in [true, false] {
        let options = profile_options("full", compat);
        assert_eq!(
            normalize_objects(&convert_value(&shaped, &options)),
            normalize_objects(&convert_value(&lists, &options)),
            "compat {compat}"
        );
    }
}

fn score_of(objects: &[Value], pattern_end: &str) -> Option<i64> {
    objects
        .iter()
        .find(|o| {
            o["pattern"]
                .as_str()
                .is_some_and(|p| p.ends_with(pattern_end))
        })
        .map(|o| o["x_opencti_score"].as_i64().unwrap())
}

#[test]
fn numbers_and_deleted_items_in_the_default_mode() {
    let event = shape_event("other-writers");
    let attributes = event["Event"]["Attribute"].as_array().unwrap();
    let sha256 = attributes.iter().find(|a| a["type"] == "sha256").unwrap();
    assert_eq!(event["Event"]["threat_level_id"], 1);
    let sha256_pattern = format!("'{}']", sha256["value"].as_str().unwrap());
    let compat = convert_value(&event, &profile_options("full", true));
    let default = convert_value(&event, &profile_options("full", false));
    // The connector compares the threat level with the text "1": a number scores 50.
    let to_ids = &sha256["to_ids"];
    assert!(to_ids == &json!(1) || to_ids == &json!("1"), "{to_ids}");
    assert_eq!(score_of(&compat, &sha256_pattern), Some(50));
    assert_eq!(score_of(&default, &sha256_pattern), Some(90));

    // Deleted: attribute 1, object 0, and the first attribute of object 1.
    let deleted_value = |a: &Value| a["value"].as_str().unwrap().to_string();
    let deleted = [
        deleted_value(&attributes[1]),
        deleted_value(&event["Event"]["Object"][0]["Attribute"][0]),
        deleted_value(&event["Event"]["Object"][1]["Attribute"][0]),
    ];
    let mentions = |objects: &[Value], value: &str| {
        let value = serde_json::to_string(value).unwrap();
        let value = value.trim_matches('"');
        objects
            .iter()
            .any(|o| o["type"] != "report" && o.to_string().contains(value))
    };
    for value in &deleted {
        assert!(mentions(&compat, value), "compat keeps {value}");
        assert!(
            !mentions(&default, value),
            "the default mode leaves out {value}"
        );
    }
    let with_deleted = ConvertOptions {
        import_deleted: true,
        ..profile_options("full", false)
    };
    let kept = convert_value(&event, &with_deleted);
    for value in &deleted {
        assert!(mentions(&kept, value), "import_deleted keeps {value}");
    }
}

/// A fixture event of the reference set, and its expected compat output.
fn reference_event(uuid: &str, profile: &str) -> (Value, Value) {
    let event = read_json(&fixtures().join(format!("misp/events/{uuid}.json")));
    let expected =
        read_json(&fixtures().join(format!("reference/normalized/{uuid}.{profile}.json")));
    (event, expected)
}

#[test]
fn a_rest_search_result_holds_events() {
    let uuids = [
        "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81",
        "57c4445b-c548-4654-af0b-4be3950d210f",
    ];
    let (first, first_expected) = reference_event(uuids[0], "full");
    let (second, second_expected) = reference_event(uuids[1], "full");
    let result = json!({"response": [first, second]});
    let events = parse(&result);
    assert_eq!(events.len(), 2);
    let options = profile_options("full", true);
    assert_eq!(
        normalize_objects(&convert(&events[0], &options)),
        first_expected
    );
    assert_eq!(
        normalize_objects(&convert(&events[1], &options)),
        second_expected
    );
    assert!(events.iter().all(|e| e.warnings().is_empty()));

    let broken = json!({"response": [{"Event": {"Attribute": 3}}]});
    let error = parse_event_file(broken.to_string().as_bytes(), "search.json")
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "search.json: response[0].Event.Attribute: expected a list, got a number"
    );
}

#[test]
fn what_sits_beside_the_event_is_named_in_a_warning() {
    let uuid = "57c4445b-c548-4654-af0b-4be3950d210f";
    let (mut wrapped, expected) = reference_event(uuid, "full");
    let moved: Vec<Value> = wrapped["Event"]["Attribute"].as_array().unwrap()[..2].to_vec();
    wrapped["Attribute"] = Value::Array(moved);
    wrapped["Galaxy"] = json!([{"name": "beside"}]);
    wrapped["Tag"] = json!([]);
    wrapped["Event"]["Galaxy"] = json!([{"name": "no namespace", "GalaxyCluster": []}]);
    let events = parse_event_file(wrapped.to_string().as_bytes(), "feed/beside.json").unwrap();
    // The connector ignores them too: the output is unchanged.
    let objects = convert(&events[0], &profile_options("full", true));
    assert_eq!(normalize_objects(&objects), expected);
    assert_eq!(
        events[0].warnings(),
        [
            "feed/beside.json: Attribute (2 items) is beside Event, not in it: left out",
            "feed/beside.json: Galaxy (1 item) is beside Event, not in it: left out",
            "feed/beside.json: Event.Galaxy[0] has no namespace: left out",
        ]
    );

    let listed = json!([{"Event": wrapped["Event"].clone(), "Object": [{"name": "x"}]}]);
    let events = parse(&listed);
    assert_eq!(
        events[0].warnings()[0],
        "shapes.json: [0].Object (1 item) is beside Event, not in it: left out"
    );
}

/// A minimal event, each case then breaking a field only some configurations read.
fn small_event() -> Value {
    json!({"Event": {
        "uuid": "5c000000-0000-4000-8000-0000000000aa", "info": "Small", "date": "2021-03-04",
        "timestamp": "1614816000", "threat_level_id": "2", "Orgc": {"name": "Org"},
        "Attribute": [{"type": "domain", "category": "Network activity", "value": "example.org",
            "to_ids": true, "comment": "", "uuid": "5c000000-0000-4000-8000-0000000000ab",
            "timestamp": "1614816000"}]
    }})
}

#[test]
fn a_field_the_configuration_does_not_read_never_fails_the_event() {
    let no_reports = ConvertOptions {
        create_reports: false,
        create_indicators: true,
        ..ConvertOptions::default()
    };
    let cases: Vec<(&str, Value, ConvertOptions)> = vec![
        (
            "Org",
            json!(["not", "an", "organisation"]),
            ConvertOptions::default(),
        ),
        ("info", json!(["a", "list"]), no_reports.clone()),
        ("date", json!(20210304), no_reports.clone()),
        ("timestamp", json!({"s": 1}), no_reports.clone()),
        ("EventReport", json!("not reports"), no_reports.clone()),
        (
            "Galaxy",
            json!([{"namespace": "misp", "name": "Unused", "GalaxyCluster": "junk"},
                   {"namespace": ["misp"], "name": "Country", "GalaxyCluster": 7}]),
            ConvertOptions::default(),
        ),
        (
            "threat_level_id",
            json!({"level": 1}),
            ConvertOptions::default(),
        ),
    ];
    for (key, junk, options) in cases {
        let mut event = small_event();
        event["Event"][key] = junk;
        let events = parse(&event);
        let result = convert_event(&events[0], &options, &ResolvedThreats::default());
        assert!(result.is_ok(), "{key}: {result:?}");
    }
    // An attachment's data is read only with attachments on.
    let mut event = small_event();
    event["Event"]["Attribute"][0]["data"] = json!({"not": "base64"});
    convert_value(&event, &ConvertOptions::default());

    // Read where it is used, it is still an error naming the field.
    let mut event = small_event();
    event["Event"]["info"] = json!(["a", "list"]);
    let events = parse(&event);
    let error = convert_event(
        &events[0],
        &ConvertOptions::default(),
        &ResolvedThreats::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "shapes.json: Event.info: expected a string, got a list"
    );
    let mut event = small_event();
    event["Event"]["Galaxy"] =
        json!([{"namespace": "misp", "name": "Sector", "GalaxyCluster": [{"value": 7}]}]);
    let events = parse(&event);
    let error = convert_event(
        &events[0],
        &ConvertOptions::default(),
        &ResolvedThreats::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "shapes.json: Event.Galaxy[0].GalaxyCluster[0].value: expected a string, got a number"
    );
}
