//! The conversion options of ours, one by one on a small event: what each changes in the
//! default mode, and that compat mode ignores it.

use serde_json::{Value, json};

use super::{ConvertOptions, ResolvedThreats, ThreatLevelScores, convert_event, parse_event_file};

fn event() -> Value {
    json!({"Event": {
        "uuid": "5c000000-0000-4000-8000-000000000100", "info": "Options", "date": "2021-03-04",
        "timestamp": "1614816000", "threat_level_id": "2", "Orgc": {"name": "Org"},
        "Tag": [{"name": "tlp:green"}, {"name": "type:OSINT"},
                {"name": "misp-galaxy:threat-actor=\"APT1\""}],
        "Attribute": [
            {"type": "domain", "category": "Network activity", "value": "kept.example",
             "to_ids": true, "comment": "", "uuid": "5c000000-0000-4000-8000-000000000101",
             "timestamp": "1614816000", "Tag": [{"name": "source:honeypot"}]},
            {"type": "domain", "category": "Network activity", "value": "deleted.example",
             "to_ids": true, "comment": "", "uuid": "5c000000-0000-4000-8000-000000000102",
             "timestamp": "1614816000", "deleted": true},
            {"type": "ip-dst", "category": "Network activity", "value": "192.0.2.7",
             "to_ids": false, "comment": "", "uuid": "5c000000-0000-4000-8000-000000000103",
             "timestamp": "1614816000"}
        ],
        "Object": [
            {"name": "file", "uuid": "5c000000-0000-4000-8000-000000000110", "deleted": true,
             "Attribute": [{"type": "md5", "category": "Payload delivery",
                "value": "d41d8cd98f00b204e9800998ecf8427e", "to_ids": true, "comment": "",
                "uuid": "5c000000-0000-4000-8000-000000000111", "timestamp": "1614816000"}]},
            {"name": "domain-ip", "uuid": "5c000000-0000-4000-8000-000000000120",
             "Attribute": [{"type": "hostname", "category": "Network activity",
                "value": "host.example", "to_ids": true, "comment": "",
                "uuid": "5c000000-0000-4000-8000-000000000121", "timestamp": "1614816000"}],
             "ObjectReference": [
                {"referenced_uuid": "5c000000-0000-4000-8000-000000000101",
                 "relationship_type": "resolves-to", "comment": ""},
                {"referenced_uuid": "5c000000-0000-4000-8000-000000000103",
                 "relationship_type": "resolves-to", "comment": "", "deleted": true}]}
        ],
        "EventReport": [
            {"name": "kept", "content": "kept note", "timestamp": "1614816000"},
            {"name": "gone", "content": "deleted note", "timestamp": "1614816000",
             "deleted": true}
        ]
    }})
}

fn base() -> ConvertOptions {
    ConvertOptions {
        create_indicators: true,
        create_observables: true,
        create_object_observables: true,
        ..ConvertOptions::default()
    }
}

fn convert(options: &ConvertOptions) -> Vec<Value> {
    let bytes = event().to_string();
    let events = parse_event_file(bytes.as_bytes(), "options.json").unwrap();
    convert_event(&events[0], options, &ResolvedThreats::default())
        .unwrap()
        .objects()
}

fn compat(options: ConvertOptions) -> ConvertOptions {
    ConvertOptions {
        reference_compat: true,
        ..options
    }
}

fn indicator<'o>(objects: &'o [Value], value: &str) -> Option<&'o Value> {
    objects.iter().find(|o| {
        o["type"] == "indicator"
            && o["pattern"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("'{value}']")))
    })
}

fn observable<'o>(objects: &'o [Value], value: &str) -> Option<&'o Value> {
    objects
        .iter()
        .find(|o| o["type"] != "indicator" && o["value"] == value)
}

fn mentions(objects: &[Value], text: &str) -> bool {
    objects.iter().any(|o| o.to_string().contains(text))
}

/// The relationships made of ObjectReferences (correction 2), by target.
fn reference_targets(objects: &[Value]) -> Vec<&str> {
    objects
        .iter()
        .filter(|o| {
            o["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Original Relationship"))
        })
        .map(|o| o["target_ref"].as_str().unwrap())
        .collect()
}

#[test]
fn deleted_items_are_left_out_unless_asked_for() {
    let default = convert(&base());
    for gone in [
        "deleted.example",
        "d41d8cd98f00b204e9800998ecf8427e",
        "deleted note",
    ] {
        assert!(!mentions(&default, gone), "{gone}");
    }
    assert!(mentions(&default, "kept.example") && mentions(&default, "kept note"));
    let kept_target = indicator(&default, "kept.example").unwrap()["id"].as_str();
    assert_eq!(reference_targets(&default), [kept_target.unwrap()]);

    let with_deleted = ConvertOptions {
        import_deleted: true,
        ..base()
    };
    let all = convert(&with_deleted);
    for kept in [
        "deleted.example",
        "d41d8cd98f00b204e9800998ecf8427e",
        "deleted note",
    ] {
        assert!(mentions(&all, kept), "{kept}");
    }
    assert_eq!(reference_targets(&all).len(), 2);
    // The Python connector imports everything.
    let compat = convert(&compat(base()));
    assert!(mentions(&compat, "deleted.example") && mentions(&compat, "deleted note"));
}

#[test]
fn indicators_only_for_to_ids_attributes() {
    let only = ConvertOptions {
        indicators_only_to_ids: true,
        ..base()
    };
    let objects = convert(&only);
    assert!(indicator(&objects, "kept.example").is_some());
    assert!(indicator(&objects, "192.0.2.7").is_none());
    assert!(
        observable(&objects, "192.0.2.7").is_some(),
        "observables stay"
    );
    let everything = convert(&base());
    assert!(indicator(&everything, "192.0.2.7").is_some());
    assert!(indicator(&convert(&compat(only)), "192.0.2.7").is_some());
}

#[test]
fn indicators_are_valid_for_the_days_asked() {
    let ninety = ConvertOptions {
        indicator_valid_days: Some(90),
        ..base()
    };
    let objects = convert(&ninety);
    let kept = indicator(&objects, "kept.example").unwrap();
    assert_eq!(kept["valid_from"], "2021-03-04T00:00:00Z");
    assert_eq!(kept["valid_until"], "2021-06-02T00:00:00Z");
    let unset = convert(&base());
    assert!(
        indicator(&unset, "kept.example")
            .unwrap()
            .get("valid_until")
            .is_none()
    );
    let compat = convert(&compat(ninety));
    assert!(
        indicator(&compat, "kept.example")
            .unwrap()
            .get("valid_until")
            .is_none()
    );
}

#[test]
fn threat_levels_score_as_mapped() {
    let mapped = ConvertOptions {
        threat_level_score_mapping: ThreatLevelScores::parse("2:75;4:10").unwrap(),
        ..base()
    };
    let objects = convert(&mapped);
    assert_eq!(
        indicator(&objects, "kept.example").unwrap()["x_opencti_score"],
        75
    );
    assert_eq!(
        observable(&objects, "host.example").unwrap()["x_opencti_score"],
        75
    );
    let default = convert(&base());
    assert_eq!(
        indicator(&default, "kept.example").unwrap()["x_opencti_score"],
        60
    );
    let compat = convert(&compat(mapped));
    assert_eq!(
        indicator(&compat, "kept.example").unwrap()["x_opencti_score"],
        60
    );
}

fn labels(object: &Value) -> Vec<&str> {
    object["labels"]
        .as_array()
        .map(|labels| labels.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn report(objects: &[Value]) -> &Value {
    objects.iter().find(|o| o["type"] == "report").unwrap()
}

#[test]
fn tags_kept_as_written_become_labels() {
    let keep = ConvertOptions {
        keep_original_tags_as_label: vec!["type:".into(), "misp-galaxy:threat-actor".into()],
        ..base()
    };
    let objects = convert(&keep);
    assert_eq!(
        labels(report(&objects)),
        ["type:OSINT", "misp-galaxy:threat-actor=\"APT1\""]
    );
    // The galaxy tag still makes its intrusion set.
    assert!(
        objects
            .iter()
            .any(|o| o["type"] == "intrusion-set" && o["name"] == "APT1")
    );
    assert_eq!(labels(report(&convert(&base()))), ["OSINT"]);
    assert_eq!(labels(report(&convert(&compat(keep)))), ["OSINT"]);
}

#[test]
fn event_labels_propagate_to_attributes_with_tags() {
    let propagate = ConvertOptions {
        propagate_labels: true,
        ..base()
    };
    let objects = convert(&propagate);
    let tagged = indicator(&objects, "kept.example").unwrap();
    assert_eq!(labels(tagged), ["OSINT", "honeypot"]);
    // An attribute without tags carries the event's labels in every mode.
    assert_eq!(labels(indicator(&objects, "192.0.2.7").unwrap()), ["OSINT"]);
    let default = convert(&base());
    assert_eq!(
        labels(indicator(&default, "kept.example").unwrap()),
        ["honeypot"]
    );
    let compat = convert(&compat(propagate));
    assert_eq!(
        labels(indicator(&compat, "kept.example").unwrap()),
        ["honeypot"]
    );
}
