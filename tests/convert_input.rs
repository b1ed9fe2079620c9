//! Accepted input forms, and errors that name the file and the JSON path of bad input.

use misp_feed::convert::{ResolvedThreats, convert_event, parse_event_file};
use misp_feed::testsuite::full_profile;
use serde_json::{Value, json};

fn event() -> Value {
    json!({
        "uuid": "5c000000-0000-4000-8000-000000000009",
        "info": "Input forms",
        "date": "2021-03-04",
        "timestamp": "1614816000",
        "threat_level_id": "2",
        "Orgc": {"name": "Org"},
        "Tag": [{"name": "tlp:green"}],
        "Attribute": [
            {"type": "ip-dst", "category": "Network activity", "value": "192.0.2.1", "to_ids": true,
             "comment": "", "uuid": "5c000000-0000-4000-8000-000000000010", "timestamp": "1614816000"},
            {"type": "domain", "category": "Network activity", "value": "example.org", "to_ids": false,
             "comment": "c2", "uuid": "5c000000-0000-4000-8000-000000000011", "timestamp": "1614816000"}
        ],
        "Object": [{"name": "file", "meta-category": "file", "description": "f",
            "Attribute": [{"type": "md5", "category": "Payload delivery", "value": "d41d8cd98f00b204e9800998ecf8427e",
                "to_ids": true, "comment": "", "uuid": "5c000000-0000-4000-8000-000000000012", "timestamp": "1614816000"}]}]
    })
}

fn convert_bytes(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let events = parse_event_file(bytes, "feed/event.json").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    for event in &events {
        all.push(Value::Array(
            convert_event(event, &full_profile(), &ResolvedThreats::default())
                .map_err(|e| e.to_string())?
                .objects(),
        ));
    }
    Ok(all)
}

fn ids(objects: &Value) -> Vec<String> {
    objects
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !matches!(o["type"].as_str(), Some("identity" | "relationship")))
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn wrapped_bare_and_listed_events_convert_alike() {
    let wrapped = convert_bytes(json!({"Event": event()}).to_string().as_bytes()).unwrap();
    let bare = convert_bytes(event().to_string().as_bytes()).unwrap();
    let listed = convert_bytes(json!([{"Event": event()}]).to_string().as_bytes()).unwrap();
    let listed_bare = convert_bytes(json!([event()]).to_string().as_bytes()).unwrap();
    assert_eq!(wrapped.len(), 1);
    assert!(ids(&wrapped[0]).len() > 5);
    for other in [&bare, &listed, &listed_bare] {
        assert_eq!(ids(&other[0]), ids(&wrapped[0]));
    }
}

#[test]
fn numbers_may_be_given_as_numbers() {
    let mut numeric = event();
    numeric["timestamp"] = json!(1614816000);
    numeric["threat_level_id"] = json!(2);
    for attribute in numeric["Attribute"].as_array_mut().unwrap() {
        attribute["timestamp"] = json!(1614816000);
    }
    let expected = convert_bytes(event().to_string().as_bytes()).unwrap();
    let actual = convert_bytes(numeric.to_string().as_bytes()).unwrap();
    assert_eq!(ids(&actual[0]), ids(&expected[0]));
    let scores = |objects: &Value| -> Vec<Value> {
        objects
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("x_opencti_score").cloned())
            .collect()
    };
    assert_eq!(scores(&actual[0]), scores(&expected[0]));
    assert!(scores(&actual[0]).contains(&json!(60)));
}

#[test]
fn optional_keys_may_be_absent() {
    let minimal =
        json!({"Event": {"info": "Minimal", "date": "2021-03-04", "timestamp": "1614816000"}});
    let objects = convert_bytes(minimal.to_string().as_bytes()).unwrap();
    let types: Vec<&str> = objects[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["identity", "marking-definition", "report"]);
    // Without any key but the attribute's type and value.
    let mut sparse = event();
    sparse["Attribute"] = json!([{"type": "url", "value": "http://example.org/x"}]);
    sparse.as_object_mut().unwrap().remove("Orgc");
    sparse.as_object_mut().unwrap().remove("Object");
    let objects = convert_bytes(sparse.to_string().as_bytes()).unwrap();
    assert!(
        objects[0]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["type"] == "url")
    );
}

fn error_of(value: Value) -> String {
    convert_bytes(value.to_string().as_bytes()).unwrap_err()
}

#[test]
fn a_field_of_the_wrong_type_is_reported_with_its_path() {
    let mut bad = event();
    bad["Attribute"][1]["value"] = json!(12);
    assert_eq!(
        error_of(json!({"Event": bad})),
        "feed/event.json: Event.Attribute[1].value: expected a string, got a number"
    );

    let mut bad = event();
    bad["Tag"] = json!("tlp:green");
    assert_eq!(
        error_of(bad),
        "feed/event.json: Event.Tag: expected a list, got a string"
    );

    let mut bad = event();
    bad["Object"][0]["Attribute"][0]
        .as_object_mut()
        .unwrap()
        .remove("type");
    assert_eq!(
        error_of(bad),
        "feed/event.json: Event.Object[0].Attribute[0].type: missing"
    );

    let mut bad = event();
    bad["Attribute"][0]["Tag"] = json!([{"name": ["x"]}]);
    assert_eq!(
        error_of(json!([{"Event": bad}])),
        "feed/event.json: [0].Event.Attribute[0].Tag[0].name: expected a string, got a list"
    );
}

#[test]
fn values_the_report_needs_are_checked() {
    let mut bad = event();
    bad["date"] = json!("04/03/2021");
    assert_eq!(
        error_of(bad),
        "feed/event.json: Event.date: expected a date YYYY-MM-DD"
    );

    let mut bad = event();
    bad["timestamp"] = json!("soon");
    assert!(
        error_of(bad).starts_with("feed/event.json: Event.timestamp: expected a Unix timestamp")
    );

    let mut bad = event();
    bad.as_object_mut().unwrap().remove("info");
    assert!(error_of(bad).starts_with("feed/event.json: Event.info: missing"));

    let mut bad = event();
    bad["EventReport"] = json!([{"name": "n", "content": "c", "timestamp": "x"}]);
    assert!(
        error_of(bad).starts_with(
            "feed/event.json: Event.EventReport[0].timestamp: expected a Unix timestamp"
        )
    );

    let mut bad = event();
    bad["Attribute"][0]["Sighting"] =
        json!([{"Organisation": {"name": "Elsewhere"}, "date_sighting": "later"}]);
    assert!(error_of(bad).starts_with(
        "feed/event.json: Event.Attribute[0].Sighting[0].date_sighting: expected a Unix timestamp"
    ));
}

#[test]
fn bad_json_and_non_events_are_reported() {
    let error = convert_bytes(b"{\"Event\": ").unwrap_err();
    assert!(
        error.starts_with("feed/event.json: $: invalid JSON"),
        "{error}"
    );
    assert_eq!(
        convert_bytes(b"[]").unwrap_err(),
        "feed/event.json: $: expected an event, got an empty list"
    );
    assert_eq!(
        convert_bytes(b"\"x\"").unwrap_err(),
        "feed/event.json: Event: expected an object, got a string"
    );
    assert_eq!(
        convert_bytes(b"[{\"Event\": 3}]").unwrap_err(),
        "feed/event.json: [0].Event: expected an object, got a number"
    );
}

#[test]
fn an_attribute_timestamp_python_cannot_read_only_drops_the_indicator() {
    // The connector builds indicators in a try block: a bad attribute timestamp (even one
    // of a type no MISP writes) loses the indicator, not the event.
    for timestamp in [json!("not a number"), json!({"s": 1}), json!([1614816000])] {
        let mut odd = event();
        odd["Attribute"][0]["timestamp"] = timestamp;
        let objects = convert_bytes(odd.to_string().as_bytes()).unwrap();
        let objects = objects[0].as_array().unwrap();
        assert!(
            !objects
                .iter()
                .any(|o| o["pattern"] == "[ipv4-addr:value = '192.0.2.1']")
        );
        assert!(
            objects
                .iter()
                .any(|o| o["type"] == "ipv4-addr" && o["value"] == "192.0.2.1")
        );
    }
}
