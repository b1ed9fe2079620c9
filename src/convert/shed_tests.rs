//! Dropping the attribute members no conversion reads (`shed_unread_members`, done before
//! converting to save memory) must change nothing: its list of members read is kept by hand
//! beside the reader, so every fixture event is converted with and without it, in both modes
//! and with every `create_*` option on, and the bundles' objects must be identical (the bundle's own id is random).

use std::path::Path;

use super::{ConvertOptions, MispEvent, ResolvedThreats, convert_event_at, parse_event_file};

fn fixture_events() -> Vec<(String, MispEvent)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut events = Vec::new();
    for folder in ["misp/events", "shapes/events", "convert/events"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(parsed) = parse_event_file(&bytes, &name) {
                events.extend(parsed.into_iter().map(|event| (name.clone(), event)));
            }
        }
    }
    events
}

fn full(reference_compat: bool) -> ConvertOptions {
    ConvertOptions {
        reference_compat,
        ..crate::testsuite::full_profile()
    }
}

#[test]
fn dropping_the_unread_attribute_members_changes_no_bundle() {
    let events = fixture_events();
    assert!(events.len() >= 9, "fixture events not found");
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let threats = ResolvedThreats::default();
    for (name, event) in events {
        let mut shed = event.clone();
        shed.shed_unread_members();
        for options in [full(true), full(false), ConvertOptions::default()] {
            let whole =
                convert_event_at(&event, &options, &threats, None, now).map(|b| b.objects());
            let lean = convert_event_at(&shed, &options, &threats, None, now).map(|b| b.objects());
            match (whole, lean) {
                (Ok(whole), Ok(lean)) => assert!(
                    whole == lean,
                    "{name}: the bundle changed when unread members were dropped \
                     (compat {})",
                    options.reference_compat
                ),
                (Err(whole), Err(lean)) => assert_eq!(
                    whole.to_string(),
                    lean.to_string(),
                    "{name}: another error once unread members were dropped"
                ),
                (whole, lean) => panic!(
                    "{name}: converted {} with all members, {} without the unread ones",
                    if whole.is_ok() {
                        "fine"
                    } else {
                        "with an error"
                    },
                    if lean.is_ok() {
                        "fine"
                    } else {
                        "with an error"
                    }
                ),
            }
        }
    }
}
