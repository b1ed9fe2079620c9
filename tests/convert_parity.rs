//! Compat-mode parity with the Python connector: for every fixture event and option
//! profile, the converter's output normalized by the rules of NORMALIZE.md equals the
//! reference's normalized bundle, emitted order included.

use std::fs;
use std::path::{Path, PathBuf};

use misp_feed::convert::normalize::{normalize_bundle, normalize_objects};
use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use serde_json::Value;

const PROFILES: [&str; 3] = ["defaults", "full", "opaque-objects"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn profile_options(profile: &str, reference_compat: bool) -> ConvertOptions {
    options_from("reference/profiles.json", profile, reference_compat)
}

fn options_from(profiles_file: &str, profile: &str, reference_compat: bool) -> ConvertOptions {
    let profiles: Value =
        serde_json::from_slice(&fs::read(fixtures().join(profiles_file)).unwrap()).unwrap();
    let p = &profiles[profile];
    ConvertOptions {
        create_reports: p["create_reports"].as_bool().unwrap(),
        report_type: p["report_type"].as_str().unwrap().to_string(),
        create_indicators: p["create_indicators"].as_bool().unwrap(),
        create_observables: p["create_observables"].as_bool().unwrap(),
        create_object_observables: p["create_object_observables"].as_bool().unwrap(),
        create_tags_as_labels: p["create_tags_as_labels"].as_bool().unwrap(),
        guess_threats_from_tags: p["guess_threats_from_tags"].as_bool().unwrap(),
        author_from_tags: p["author_from_tags"].as_bool().unwrap(),
        markings_from_tags: p["markings_from_tags"].as_bool().unwrap(),
        import_to_ids_no_score: p["import_to_ids_no_score"].as_i64(),
        import_unsupported_observables_as_text: p["import_unsupported_observables_as_text"]
            .as_bool()
            .unwrap(),
        import_unsupported_observables_as_text_transparent:
            p["import_unsupported_observables_as_text_transparent"]
                .as_bool()
                .unwrap(),
        import_with_attachments: p["import_with_attachments"].as_bool().unwrap(),
        reference_compat,
        ..ConvertOptions::default()
    }
}

fn event_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().is_some_and(|n| n != "manifest.json")
        })
        .collect();
    files.sort();
    files
}

fn convert_file(path: &Path, options: &ConvertOptions) -> Vec<Value> {
    let bytes = fs::read(path).unwrap();
    let events = parse_event_file(&bytes, &path.display().to_string()).unwrap();
    assert_eq!(events.len(), 1, "{}", path.display());
    convert_event(&events[0], options, &ResolvedThreats::default())
        .unwrap()
        .objects()
}

/// Describes the first difference between two normalized bundles.
fn first_difference(actual: &Value, expected: &Value) -> String {
    let a_order = actual["order"].as_array().unwrap();
    let e_order = expected["order"].as_array().unwrap();
    for (i, (a, e)) in a_order.iter().zip(e_order).enumerate() {
        if a != e {
            return format!("order[{i}]: got {a}, expected {e}");
        }
    }
    if a_order.len() != e_order.len() {
        return format!(
            "order length: got {}, expected {} (next expected: {:?}, next got: {:?})",
            a_order.len(),
            e_order.len(),
            e_order.get(a_order.len()),
            a_order.get(e_order.len())
        );
    }
    let a_objects = actual["objects"].as_array().unwrap();
    let e_objects = expected["objects"].as_array().unwrap();
    for (a, e) in a_objects.iter().zip(e_objects) {
        if a != e {
            return format!(
                "object differs:\n got      {}\n expected {}",
                serde_json::to_string(a).unwrap(),
                serde_json::to_string(e).unwrap()
            );
        }
    }
    "objects count differs".into()
}

#[test]
fn compat_output_matches_the_reference_for_every_fixture_and_profile() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in event_files("misp/events") {
        let uuid = path.file_stem().unwrap().to_str().unwrap().to_string();
        for profile in PROFILES {
            let expected_path =
                fixtures().join(format!("reference/normalized/{uuid}.{profile}.json"));
            let expected: Value =
                serde_json::from_slice(&fs::read(&expected_path).unwrap()).unwrap();
            let objects = convert_file(&path, &profile_options(profile, true));
            let actual = normalize_objects(&objects);
            compared += 1;
            if actual != expected {
                failures.push(format!(
                    "{uuid}.{profile}: {}",
                    first_difference(&actual, &expected)
                ));
            }
        }
    }
    assert_eq!(compared, 27);
    assert!(
        failures.is_empty(),
        "{} of 27 differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn feed_form_copies_match_the_raw_reference_bundles() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in event_files("misp/feed") {
        let uuid = path.file_stem().unwrap().to_str().unwrap().to_string();
        for profile in PROFILES {
            let reference =
                fixtures().join(format!("reference/feed-bundles/{uuid}.{profile}.json"));
            let Ok(bytes) = fs::read(&reference) else {
                continue;
            };
            let expected = normalize_bundle(&serde_json::from_slice(&bytes).unwrap());
            let actual = normalize_objects(&convert_file(&path, &profile_options(profile, true)));
            compared += 1;
            if actual != expected {
                failures.push(format!(
                    "{uuid}.{profile}: {}",
                    first_difference(&actual, &expected)
                ));
            }
        }
    }
    assert!(compared > 0, "no feed-form reference bundle found");
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Probe events written to reach what the fixtures do not (event reports with links,
/// sightings, every attribute type the connector knows, composite values, invalid hashes,
/// bad timestamps, statement markings, sectors, countries, tools, attack patterns, object
/// references), converted by the real connector (scripts/convert_oracle.py) under six
/// option profiles.
#[test]
fn compat_output_matches_the_connector_on_probe_events() {
    let profiles: Value =
        serde_json::from_slice(&fs::read(fixtures().join("convert/profiles.json")).unwrap())
            .unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in event_files("convert/events") {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        for profile in profiles
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('_'))
        {
            let reference = fixtures().join(format!("convert/bundles/{name}.{profile}.json"));
            let expected =
                normalize_bundle(&serde_json::from_slice(&fs::read(&reference).unwrap()).unwrap());
            let options = options_from("convert/profiles.json", profile, true);
            let actual = normalize_objects(&convert_file(&path, &options));
            compared += 1;
            if actual != expected {
                failures.push(format!(
                    "{name}.{profile}: {}",
                    first_difference(&actual, &expected)
                ));
            }
        }
    }
    assert_eq!(compared, 18);
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
