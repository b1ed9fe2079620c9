//! The conversion options of ours through the binary: `once` on a local feed folder, each
//! option changing what is pushed in the default mode and nothing with
//! `MISP_FEED_REFERENCE_COMPAT`; what a feed file holds beside its event is logged; a bad
//! value stops start-up with one line.

use std::path::Path;

use misp_feed::convert::normalize::normalize_objects;
use serde_json::{Value, json};

use crate::support::workspace::{Workspace, stderr_lines};

/// `fixtures/shapes/events/other-writers.json`: numbers for texts, soft-deleted items.
const NUMBERS: &str = "5acc88e9-0000-4000-8000-00000000c0de";
/// The same real event as the reference fixture, with one attribute beside `Event`.
const BESIDE: &str = "57c4445b-c548-4654-af0b-4be3950d210f";

fn fixture(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A feed folder holding the two events, and its manifest.
fn write_feed(dir: &Path) {
    let numbers = fixture("shapes/events/other-writers.json");
    let mut beside = fixture(&format!("misp/events/{BESIDE}.json"));
    let moved = beside["Event"]["Attribute"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    beside["Attribute"] = json!([moved]);
    let mut manifest = serde_json::Map::new();
    for (uuid, event) in [(NUMBERS, &numbers), (BESIDE, &beside)] {
        let e = &event["Event"];
        manifest.insert(
            uuid.to_string(),
            json!({"info": e["info"], "date": e["date"], "timestamp": "1600000000",
                   "Orgc": e["Orgc"], "threat_level_id": e["threat_level_id"]}),
        );
        std::fs::write(dir.join(format!("{uuid}.json")), event.to_string()).unwrap();
    }
    std::fs::write(
        dir.join("manifest.json"),
        Value::Object(manifest).to_string(),
    )
    .unwrap();
}

const OPTIONS_OF_OURS: [(&str, &str); 6] = [
    ("MISP_FEED_IMPORT_DELETED", "true"),
    ("MISP_FEED_INDICATORS_ONLY_TO_IDS", "true"),
    ("MISP_FEED_INDICATOR_VALID_DAYS", "30"),
    ("MISP_FEED_THREAT_LEVEL_SCORE_MAPPING", "1:100;4:10"),
    ("MISP_FEED_KEEP_ORIGINAL_TAGS_AS_LABEL", "circl:"),
    ("MISP_FEED_PROPAGATE_LABELS", "true"),
];

/// Runs `once` on the feed with `env`; returns each event's pushed bundle objects, and the
/// log lines.
fn run(feed: &Path, env: &[(&str, &str)]) -> (Vec<(String, Vec<Value>)>, Vec<Value>) {
    let mut ws = Workspace::new(feed.to_str().unwrap());
    for (key, value) in [
        ("MISP_FEED_CREATE_INDICATORS", "true"),
        ("MISP_FEED_CREATE_OBSERVABLES", "true"),
        ("MISP_FEED_CREATE_OBJECT_OBSERVABLES", "true"),
        ("MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT", "true"),
    ]
    .iter()
    .chain(env)
    {
        ws.set(key, value);
    }
    let (report, out) = ws.once();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(report["pushed"], 2, "{report}\n{stderr}");
    let mut bundles: Vec<(String, Vec<Value>)> = ws
        .events_json(&[])
        .into_iter()
        .map(|record| {
            let file = record["destination"].as_str().unwrap();
            let envelope: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            let objects = envelope["bundle"]["objects"].as_array().unwrap().clone();
            (record["uuid"].as_str().unwrap().to_string(), objects)
        })
        .collect();
    bundles.sort_by(|a, b| a.0.cmp(&b.0));
    (bundles, stderr_lines(&out))
}

fn objects_of<'b>(bundles: &'b [(String, Vec<Value>)], uuid: &str) -> &'b [Value] {
    &bundles.iter().find(|(u, _)| u == uuid).unwrap().1
}

fn indicators(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|o| o["type"] == "indicator")
        .collect()
}

#[test]
fn options_of_ours_change_what_is_pushed_and_compat_ignores_them() {
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    let event = fixture("shapes/events/other-writers.json");
    let deleted = event["Event"]["Attribute"][1]["value"].as_str().unwrap();
    let deleted = &serde_json::to_string(deleted).unwrap()[1..40];

    let (plain, logs) = run(feed.path(), &[]);
    let (tuned, _) = run(feed.path(), &OPTIONS_OF_OURS);
    let plain_numbers = objects_of(&plain, NUMBERS);
    let tuned_numbers = objects_of(&tuned, NUMBERS);

    // MISP_FEED_IMPORT_DELETED
    let mentions = |objects: &[Value]| {
        objects
            .iter()
            .any(|o| o["type"] != "report" && o.to_string().contains(deleted))
    };
    assert!(!mentions(plain_numbers), "a deleted attribute was pushed");
    assert!(
        mentions(tuned_numbers),
        "MISP_FEED_IMPORT_DELETED pushed nothing more"
    );
    // MISP_FEED_INDICATORS_ONLY_TO_IDS: the attributes whose to_ids is 0 or "0" lose theirs.
    assert!(
        indicators(tuned_numbers)
            .iter()
            .all(|i| i["x_opencti_detection"] == true)
    );
    assert!(
        indicators(plain_numbers)
            .iter()
            .any(|i| i["x_opencti_detection"] == false)
    );
    // MISP_FEED_INDICATOR_VALID_DAYS
    for indicator in indicators(tuned_numbers) {
        assert!(indicator["valid_until"].is_string(), "{indicator}");
    }
    assert!(
        indicators(plain_numbers)
            .iter()
            .all(|i| i.get("valid_until").is_none())
    );
    // MISP_FEED_THREAT_LEVEL_SCORE_MAPPING: the event's threat level is 1.
    assert!(
        indicators(plain_numbers)
            .iter()
            .all(|i| i["x_opencti_score"] == 90)
    );
    assert!(
        indicators(tuned_numbers)
            .iter()
            .all(|i| i["x_opencti_score"] == 100)
    );
    // MISP_FEED_KEEP_ORIGINAL_TAGS_AS_LABEL and MISP_FEED_PROPAGATE_LABELS
    let report = |objects: &[Value]| {
        objects
            .iter()
            .find(|o| o["type"] == "report")
            .unwrap()
            .clone()
    };
    let kept = "circl:incident-classification=\"malware\"";
    assert!(
        report(tuned_numbers)["labels"]
            .as_array()
            .unwrap()
            .contains(&json!(kept))
    );
    assert!(
        !report(plain_numbers)["labels"]
            .as_array()
            .unwrap()
            .contains(&json!(kept))
    );

    // What sat beside the event is named in the log, with its file.
    let warning = format!("{BESIDE}.json: Attribute (1 item) is beside Event, not in it: left out");
    assert!(
        logs.iter().any(|l| l["level"] == "WARNING"
            && l["message"].as_str().is_some_and(|m| m.ends_with(&warning))),
        "{logs:?}"
    );

    // With MISP_FEED_REFERENCE_COMPAT none of them changes anything.
    let compat = [("MISP_FEED_REFERENCE_COMPAT", "true")];
    let mut tuned_compat_env = compat.to_vec();
    tuned_compat_env.extend(OPTIONS_OF_OURS);
    let (compat_plain, _) = run(feed.path(), &compat);
    let (compat_tuned, _) = run(feed.path(), &tuned_compat_env);
    for ((uuid, plain), (_, tuned)) in compat_plain.iter().zip(&compat_tuned) {
        assert_eq!(normalize_objects(plain), normalize_objects(tuned), "{uuid}");
    }
    assert!(mentions(objects_of(&compat_plain, NUMBERS)));
}

#[test]
fn a_bad_option_value_stops_start_up_with_one_line() {
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    for (key, bad, accepted) in [
        (
            "MISP_FEED_THREAT_LEVEL_SCORE_MAPPING",
            "1:90;2:60",
            "level 4 (undefined) has no score",
        ),
        (
            "MISP_FEED_INDICATOR_VALID_DAYS",
            "0",
            "a whole number of days from 1 to 36500",
        ),
        ("MISP_FEED_IMPORT_DELETED", "sometimes", "a boolean"),
    ] {
        let mut ws = Workspace::new(feed.path().to_str().unwrap());
        ws.set(key, bad);
        let out = ws.run(&["once"]);
        assert_eq!(out.status.code(), Some(1), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("{key}: {stderr}"));
        assert!(
            line.contains(&format!("{bad:?}")) && line.contains(accepted),
            "{line}"
        );
        assert!(ws.bundle_files().is_empty());
    }
}
