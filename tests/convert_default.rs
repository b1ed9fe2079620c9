//! The default (corrected) mode against compat mode: every object of the compat output is
//! present unchanged, except that the report's `object_refs` may grow and objects sharing
//! an id collapse to the first; every extra object comes from correction (1) (the other
//! part of a composite attribute) or correction (2) (an ObjectReference relationship).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn options(profiles_file: &str, profile: &str, reference_compat: bool) -> ConvertOptions {
    let profiles: Value =
        serde_json::from_slice(&fs::read(fixtures().join(profiles_file)).unwrap()).unwrap();
    let p = &profiles[profile];
    let flag = |key: &str| p[key].as_bool().unwrap();
    ConvertOptions {
        create_reports: flag("create_reports"),
        report_type: p["report_type"].as_str().unwrap().to_string(),
        create_indicators: flag("create_indicators"),
        create_observables: flag("create_observables"),
        create_object_observables: flag("create_object_observables"),
        create_tags_as_labels: flag("create_tags_as_labels"),
        guess_threats_from_tags: flag("guess_threats_from_tags"),
        author_from_tags: flag("author_from_tags"),
        markings_from_tags: flag("markings_from_tags"),
        import_to_ids_no_score: p["import_to_ids_no_score"].as_i64(),
        import_unsupported_observables_as_text: flag("import_unsupported_observables_as_text"),
        import_unsupported_observables_as_text_transparent: flag(
            "import_unsupported_observables_as_text_transparent",
        ),
        import_with_attachments: flag("import_with_attachments"),
        reference_compat,
        ..ConvertOptions::default()
    }
}

/// Second parts of the event's composite attribute values (`a.exe|<md5>` -> `<md5>`).
fn composite_second_parts(event: &Value) -> HashSet<String> {
    let mut parts = HashSet::new();
    let mut visit = |attributes: &Value| {
        for attribute in attributes.as_array().into_iter().flatten() {
            let kind = attribute["type"].as_str().unwrap_or("");
            let value = attribute["value"].as_str().unwrap_or("");
            let split: Vec<&str> = value.split('|').collect();
            if kind.contains('|') && split.len() == 2 {
                parts.insert(split[1].to_string());
            }
        }
    };
    visit(&event["Attribute"]);
    for object in event["Object"].as_array().into_iter().flatten() {
        visit(&object["Attribute"]);
    }
    parts
}

fn pattern_literal(value: &str) -> String {
    format!("'{}']", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An indicator or observable made from one of the given values.
fn made_from_part(object: &Value, parts: &HashSet<String>) -> bool {
    if let Some(pattern) = object["pattern"].as_str() {
        return parts
            .iter()
            .any(|p| pattern.ends_with(&format!("= {}", pattern_literal(p))));
    }
    if let Some(value) = object["value"].as_str() {
        return parts.contains(value);
    }
    if let Some(hashes) = object["hashes"].as_object() {
        return hashes
            .values()
            .any(|h| h.as_str().is_some_and(|h| parts.contains(h)));
    }
    false
}

#[derive(Default)]
struct Tally {
    pairs: usize,
    composite_extras: usize,
    reference_relationships: usize,
    collapsed_duplicates: usize,
}

fn check_pair(event_path: &Path, profiles_file: &str, profile: &str, tally: &mut Tally) {
    let bytes = fs::read(event_path).unwrap();
    let name = event_path.display().to_string();
    let events = parse_event_file(&bytes, &name).unwrap();
    let compat = convert_event(
        &events[0],
        &options(profiles_file, profile, true),
        &ResolvedThreats::default(),
    )
    .unwrap()
    .objects();
    let corrected = convert_event(
        &events[0],
        &options(profiles_file, profile, false),
        &ResolvedThreats::default(),
    )
    .unwrap()
    .objects();
    let label = format!("{name} [{profile}]");
    tally.pairs += 1;

    // (3) no two objects share an id.
    let mut by_id: HashMap<&str, &Value> = HashMap::new();
    for object in &corrected {
        let id = object["id"].as_str().unwrap();
        assert!(
            by_id.insert(id, object).is_none(),
            "{label}: id {id} emitted twice"
        );
    }

    // Every compat object is there unchanged; the first of a duplicate pair wins.
    let mut seen: HashSet<&str> = HashSet::new();
    for object in &compat {
        let id = object["id"].as_str().unwrap();
        if !seen.insert(id) {
            tally.collapsed_duplicates += 1;
            continue;
        }
        let mine = by_id
            .get(id)
            .unwrap_or_else(|| panic!("{label}: {id} missing"));
        let mut expected = object.clone();
        let mut actual = (*mine).clone();
        // 'now' timestamps differ between the two runs.
        for o in [&mut expected, &mut actual] {
            if o["type"] != "indicator" && o["type"] != "report" && o["type"] != "note" {
                o.as_object_mut().unwrap().remove("created");
                o.as_object_mut().unwrap().remove("modified");
            }
        }
        // The connector copies `to_ids` as given; the default mode sends the boolean it
        // means (MISP writes a boolean, other writers 0/1).
        if let Some(detection) = expected.get_mut("x_opencti_detection")
            && !detection.is_boolean()
        {
            *detection = Value::Bool(match &*detection {
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => matches!(s.trim(), "1" | "true" | "yes"),
                _ => false,
            });
        }
        if object["type"] == "report" {
            let compat_refs: Vec<&Value> =
                object["object_refs"].as_array().unwrap().iter().collect();
            let refs: HashSet<&Value> = mine["object_refs"].as_array().unwrap().iter().collect();
            for r in &compat_refs {
                assert!(refs.contains(r), "{label}: report lost ref {r}");
            }
            expected.as_object_mut().unwrap().remove("object_refs");
            actual.as_object_mut().unwrap().remove("object_refs");
        }
        assert_eq!(actual, expected, "{label}: {id} changed");
    }

    // Every extra object is traceable to correction (1) or (2).
    let event = serde_json::from_slice::<Value>(&bytes).unwrap();
    let event = event.get("Event").cloned().unwrap_or(event);
    let parts = composite_second_parts(&event);
    let extras: Vec<&Value> = corrected
        .iter()
        .filter(|o| !seen.contains(o["id"].as_str().unwrap()))
        .collect();
    let part_objects: HashSet<&str> = extras
        .iter()
        .filter(|o| made_from_part(o, &parts))
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    for extra in &extras {
        let id = extra["id"].as_str().unwrap();
        let description = extra["description"].as_str().unwrap_or("");
        if part_objects.contains(id) {
            tally.composite_extras += 1;
        } else if extra["type"] == "relationship"
            && description.starts_with("Original Relationship: ")
        {
            for end in ["source_ref", "target_ref"] {
                let end_id = extra[end].as_str().unwrap();
                assert!(
                    by_id.contains_key(end_id),
                    "{label}: {id} points at missing {end_id}"
                );
            }
            tally.reference_relationships += 1;
        } else if extra["type"] == "relationship" {
            let touches_part = ["source_ref", "target_ref"]
                .iter()
                .any(|end| part_objects.contains(extra[*end].as_str().unwrap()));
            assert!(
                touches_part,
                "{label}: untraceable extra relationship {extra}"
            );
        } else if extra["type"] == "sighting" {
            assert!(
                part_objects.contains(extra["sighting_of_ref"].as_str().unwrap()),
                "{label}: {extra}"
            );
        } else {
            panic!("{label}: untraceable extra object {extra}");
        }
    }
}

fn event_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn corrected_mode_keeps_every_compat_object_and_only_adds_corrections() {
    let mut tally = Tally::default();
    for path in event_files("misp/events") {
        for profile in ["defaults", "full", "opaque-objects"] {
            check_pair(&path, "reference/profiles.json", profile, &mut tally);
        }
    }
    for path in event_files("convert/events") {
        for profile in ["defaults", "full", "opaque-objects", "x", "y", "z"] {
            check_pair(&path, "convert/profiles.json", profile, &mut tally);
        }
    }
    assert_eq!(tally.pairs, 27 + 18);
    // The corrections do happen on these events.
    assert!(
        tally.composite_extras > 100,
        "composite parts converted: {}",
        tally.composite_extras
    );
    assert!(
        tally.reference_relationships > 20,
        "reference relationships: {}",
        tally.reference_relationships
    );
    assert!(tally.collapsed_duplicates > 0, "no duplicate collapsed");
}

#[test]
fn composite_attribute_yields_both_parts() {
    let event = br#"{"Event": {"info": "x", "date": "2020-01-01", "timestamp": "1577836800",
        "Orgc": {"name": "O"}, "Attribute": [{"type": "filename|md5", "category": "Payload delivery",
        "value": "a.exe|d41d8cd98f00b204e9800998ecf8427e", "to_ids": true, "comment": "",
        "uuid": "00000000-0000-4000-8000-000000000001", "timestamp": "1577836800"}]}}"#;
    let events = parse_event_file(event, "inline.json").unwrap();
    let full = options("reference/profiles.json", "full", false);
    let objects = convert_event(&events[0], &full, &ResolvedThreats::default())
        .unwrap()
        .objects();
    let patterns: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["pattern"].as_str())
        .collect();
    assert_eq!(
        patterns,
        [
            "[file:name = 'a.exe']",
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"
        ]
    );
    let hashed = objects
        .iter()
        .find(|o| o["type"] == "file" && o.get("hashes").is_some())
        .unwrap();
    assert_eq!(hashed["name"], "a.exe");
    assert_eq!(hashed["hashes"]["MD5"], "d41d8cd98f00b204e9800998ecf8427e");

    let compat = options("reference/profiles.json", "full", true);
    let objects = convert_event(&events[0], &compat, &ResolvedThreats::default())
        .unwrap()
        .objects();
    let patterns: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["pattern"].as_str())
        .collect();
    assert_eq!(patterns, ["[file:name = 'a.exe']"]);
}

#[test]
fn object_reference_becomes_a_related_to_relationship() {
    let event = br#"{"Event": {"info": "x", "date": "2020-01-01", "timestamp": "1577836800",
        "Orgc": {"name": "O"},
        "Attribute": [{"type": "domain", "category": "Network activity", "value": "evil.example",
            "to_ids": true, "comment": "", "uuid": "00000000-0000-4000-8000-0000000000aa", "timestamp": "1577836800"}],
        "Object": [{"name": "file", "meta-category": "file", "description": "A file",
            "uuid": "00000000-0000-4000-8000-0000000000bb",
            "Attribute": [{"type": "filename", "category": "Payload delivery", "value": "b.exe",
                "to_ids": false, "comment": "", "uuid": "00000000-0000-4000-8000-0000000000cc", "timestamp": "1577836800"}],
            "ObjectReference": [{"referenced_uuid": "00000000-0000-4000-8000-0000000000aa",
                "relationship_type": "communicates-with", "comment": "seen in sandbox"}]}]}}"#;
    let events = parse_event_file(event, "inline.json").unwrap();
    let full = options("reference/profiles.json", "full", false);
    let objects = convert_event(&events[0], &full, &ResolvedThreats::default())
        .unwrap()
        .objects();
    let by_id: HashMap<&str, &Value> = objects
        .iter()
        .map(|o| (o["id"].as_str().unwrap(), o))
        .collect();
    let reference: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Original Relationship"))
        })
        .collect();
    assert_eq!(reference.len(), 1);
    let rel = reference[0];
    assert_eq!(rel["relationship_type"], "related-to");
    assert_eq!(
        rel["description"],
        "Original Relationship: communicates-with  \nComment: seen in sandbox"
    );
    let source = by_id[rel["source_ref"].as_str().unwrap()];
    let target = by_id[rel["target_ref"].as_str().unwrap()];
    assert_eq!(source["type"], "text");
    assert_eq!(source["value"], "b.exe");
    assert_eq!(target["pattern"], "[domain-name:value = 'evil.example']");
    let report = objects.iter().find(|o| o["type"] == "report").unwrap();
    assert!(
        report["object_refs"]
            .as_array()
            .unwrap()
            .contains(&rel["id"])
    );

    let compat = options("reference/profiles.json", "full", true);
    let objects = convert_event(&events[0], &compat, &ResolvedThreats::default())
        .unwrap()
        .objects();
    assert!(!objects.iter().any(|o| {
        o["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Original"))
    }));
}
