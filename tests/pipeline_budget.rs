//! The memory budget (`MISP_FEED_MEMORY_BUDGET_MB`): its option, and a feed whose every event
//! is estimated above a tiny budget, run through the binary: every event is still pushed, one
//! at a time, and the log says which events ran alone and which waited.

use std::collections::{BTreeSet, HashMap};

use chrono::{TimeZone, Utc};
use misp_feed::config::Settings;
use misp_feed::testsuite::generated_event;
use serde_json::{Value, json};

use crate::config_env::Row;
use crate::support::workspace::{Workspace, stderr_lines};

/// The option's row of the option table test (`config_env`).
pub(crate) fn option_rows() -> Vec<Row> {
    vec![Row {
        env: "MISP_FEED_MEMORY_BUDGET_MB",
        yaml: "misp_feed.memory_budget_mb",
        read: |s| s.misp_feed.memory_budget_mb.to_string(),
        default: Some("1024"),
        env_value: "4096",
        env_expected: "4096",
        yaml_value: "512",
        yaml_expected: "512",
        bad: Some("0"),
    }]
}

#[test]
fn a_budget_of_zero_or_not_a_whole_number_of_megabytes_stops_start_up_in_one_line() {
    let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
    for bad in ["0", "-1", "1.5", "lots", "1G", "99999999999"] {
        let env: HashMap<String, String> = [
            ("OPENCTI_URL", "http://opencti:8080"),
            ("OPENCTI_TOKEN", "base-token-value"),
            ("CONNECTOR_ID", "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11"),
            ("MISP_FEED_URL", "https://feed.example/base"),
            ("MISP_FEED_MEMORY_BUDGET_MB", bad),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let error = Settings::load_from(&env, None, now)
            .err()
            .unwrap_or_else(|| panic!("MISP_FEED_MEMORY_BUDGET_MB={bad} was accepted"));
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("MISP_FEED_MEMORY_BUDGET_MB"), "{line}");
        assert!(line.contains("whole number of megabytes"), "{line}");
    }
}

/// A feed folder of `count` generated events of `attributes` attributes each.
fn generated_feed(dir: &std::path::Path, count: usize, attributes: usize) -> Vec<String> {
    let mut manifest = serde_json::Map::new();
    let mut uuids = Vec::new();
    for index in 0..count {
        let bytes = generated_event(attributes, 0xb0d6_0000 + index as u64);
        let event: Value = serde_json::from_slice(&bytes).unwrap();
        let uuid = event["Event"]["uuid"].as_str().unwrap().to_string();
        std::fs::write(dir.join(format!("{uuid}.json")), &bytes).unwrap();
        let entry =
            json!({"timestamp": event["Event"]["timestamp"], "info": event["Event"]["info"]});
        manifest.insert(uuid.clone(), entry);
        uuids.push(uuid);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    uuids
}

#[test]
fn with_a_tiny_budget_every_event_runs_alone_and_is_still_pushed() {
    let feed = tempfile::tempdir().unwrap();
    // Each file is some 200 KB: estimated well above a 1 MB budget, and long enough to
    // convert that the events fetched with it are still waiting when it is admitted.
    let uuids = generated_feed(feed.path(), 4, 500);
    let mut ws = Workspace::new(&feed.path().display().to_string());
    ws.set("MISP_FEED_FETCH_CONCURRENCY", "4");
    ws.set("MISP_FEED_MEMORY_BUDGET_MB", "1");

    let out = ws.run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("MISP_FEED_MEMORY_BUDGET_MB = 1"),
        "check does not show the budget:\n{stdout}"
    );

    let (report, out) = ws.once();
    assert_eq!(report["pushed"], 4, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    for uuid in &uuids {
        assert_eq!(ws.event_status(uuid).as_deref(), Some("pushed"), "{uuid}");
    }

    let lines = stderr_lines(&out);
    let budget_lines: Vec<&Value> = lines
        .iter()
        .filter(|line| line["attributes"]["budget_mb"] == 1)
        .collect();
    let alone: BTreeSet<&str> = budget_lines
        .iter()
        .filter(|line| {
            let message = line["message"].as_str().unwrap_or_default();
            message.contains("it runs alone")
        })
        .filter_map(|line| line["attributes"]["event"].as_str())
        .collect();
    assert_eq!(
        alone,
        uuids.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "every event is estimated above the budget and runs alone:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in &budget_lines {
        let needed = line["attributes"]["needed_mb"].as_u64().unwrap();
        assert!(needed > 1, "{line}");
    }
    // Four events fetched at once, one admitted at a time: the others waited for it.
    let waited = budget_lines
        .iter()
        .filter(|line| line["attributes"]["waited"] == true)
        .count();
    assert!(
        waited >= 1,
        "no event waited for the budget:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
