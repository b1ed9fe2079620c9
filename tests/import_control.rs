//! Import control on a real HTTP feed, through the binary: the filters decided from the
//! manifest (an excluded event is never requested) or from the event file, recorded with the
//! rule that excluded them and decided again when the settings change; the attribute guard;
//! and backfill pacing that loses nothing.

use serde_json::Value;

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::FeedServer;
use crate::support::workspace::Workspace;

/// The fixture feed: threat level 2 for two events, 3 for the others; one event created by
/// another organisation than CIRCL; three not published.
const THREAT_LEVEL_2: [&str; 2] = [
    "57153590-f73c-49fa-be4b-4737950d210f",
    "5c7cdc3b-2f40-4dca-8200-276c0a00020f",
];
const SYNOVUS: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";
const UNPUBLISHED: [&str; 3] = [
    "5a3c2fcd-8328-42bb-a95e-4f4402de0b81",
    "5acc88e9-265c-4f22-9d2b-b702950d210f",
    "5c7cdc3b-2f40-4dca-8200-276c0a00020f",
];
/// 370 attributes, the largest; the next largest has 122.
const LARGEST: &str = "57153590-f73c-49fa-be4b-4737950d210f";

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

fn uuids_with_status(ws: &Workspace, status: &str) -> Vec<String> {
    let mut uuids: Vec<String> = ws
        .events_json(&["--status", status])
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    uuids.sort();
    uuids
}

fn sorted(uuids: &[&str]) -> Vec<String> {
    let mut sorted: Vec<String> = uuids.iter().map(|u| u.to_string()).collect();
    sorted.sort();
    sorted
}

#[test]
fn events_excluded_by_manifest_fields_are_recorded_and_never_requested() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_THREAT_LEVELS", "2");
    ws.set("MISP_FEED_IMPORT_CREATOR_ORGS_NOT", "Synovus Financial");
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&report, "pushed"), 2, "{report}");
    assert_eq!(count(&report, "filtered"), 7, "{report}");
    let requested: Vec<String> = server
        .requests()
        .into_iter()
        .map(|r| r.name)
        .filter(|name| name != "manifest.json")
        .collect();
    assert_eq!(
        requested.len(),
        2,
        "only the two events the filters let through are downloaded: {requested:?}"
    );
    assert_eq!(uuids_with_status(&ws, "pushed"), sorted(&THREAT_LEVEL_2));
    // Each left-out event says which rule left it out.
    let filtered = ws.events_json(&["--status", "filtered"]);
    assert_eq!(filtered.len(), 7);
    let reason_of = |uuid: &str| {
        filtered
            .iter()
            .find(|e| e["uuid"] == uuid)
            .and_then(|e| e["last_error"].as_str())
            .unwrap()
            .to_string()
    };
    let reason = reason_of(UNPUBLISHED[0]);
    assert!(
        reason.contains("MISP_FEED_IMPORT_THREAT_LEVELS: threat level 3 is not one of [\"2\"]"),
        "{reason}"
    );
    let reason = reason_of(SYNOVUS);
    assert!(
        reason.contains(
            "MISP_FEED_IMPORT_CREATOR_ORGS_NOT: creator organisation (Orgc) Synovus Financial"
        ),
        "{reason}"
    );
    let shown: Value =
        serde_json::from_slice(&ws.run(&["show", SYNOVUS, "--json"]).stdout).unwrap();
    assert_eq!(shown["history"][0]["action"], "filtered");
    let status: Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["events"]["filtered"], 7);

    // A second run with the same settings neither downloads nor re-records them.
    let before = server.requests().len();
    let (again, _) = ws.once();
    assert_eq!(count(&again, "pushed"), 0);
    assert_eq!(count(&again, "filtered"), 7);
    assert_eq!(server.requests().len() - before, 1, "only the manifest");
    let shown: Value =
        serde_json::from_slice(&ws.run(&["show", SYNOVUS, "--json"]).stdout).unwrap();
    assert_eq!(shown["history"].as_array().unwrap().len(), 1);

    // Changed settings decide the filtered events again; pushed ones stay as they are.
    ws.set("MISP_FEED_IMPORT_THREAT_LEVELS", "2,3");
    let (third, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&third, "pushed"), 6, "{third}");
    assert_eq!(count(&third, "filtered"), 1, "{third}");
    assert_eq!(
        uuids_with_status(&ws, "filtered"),
        vec![SYNOVUS.to_string()]
    );
    let reason = ws.event_error(SYNOVUS).unwrap();
    assert!(
        reason.contains(
            "MISP_FEED_IMPORT_CREATOR_ORGS_NOT: creator organisation (Orgc) Synovus Financial"
        ),
        "{reason}"
    );
    let pushes: usize = THREAT_LEVEL_2
        .iter()
        .map(|uuid| {
            let shown: Value =
                serde_json::from_slice(&ws.run(&["show", uuid, "--json"]).stdout).unwrap();
            shown["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["action"] == "pushed")
                .count()
        })
        .sum();
    assert_eq!(
        pushes, 2,
        "events pushed under the old settings were pushed again"
    );
}

#[test]
fn a_rule_the_manifest_cannot_decide_is_decided_from_the_event_file() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_ONLY_PUBLISHED", "true");
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&report, "pushed"), 6, "{report}");
    assert_eq!(count(&report, "filtered"), 3, "{report}");
    assert_eq!(uuids_with_status(&ws, "filtered"), sorted(&UNPUBLISHED));
    assert!(
        ws.event_error(UNPUBLISHED[0])
            .unwrap()
            .contains("MISP_FEED_IMPORT_ONLY_PUBLISHED: not published")
    );
    // Feed events carry no owner organisation: a rule on it leaves them out, saying so.
    let mut owners = Workspace::new(&server.url());
    owners.set("MISP_FEED_IMPORT_OWNER_ORGS", "CIRCL");
    let (report, _) = owners.once();
    assert_eq!(count(&report, "pushed"), 0, "{report}");
    let reason = owners.event_error(SYNOVUS).unwrap();
    assert!(
        reason.contains("MISP_FEED_IMPORT_OWNER_ORGS: the event does not say"),
        "{reason}"
    );
}

#[test]
fn an_event_over_the_attribute_limit_is_refused_visibly_and_decided_again() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_MAX_ATTRIBUTES", "200");
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&report, "pushed"), 8, "{report}");
    assert_eq!(count(&report, "refused"), 1, "{report}");
    assert_eq!(ws.event_status(LARGEST).as_deref(), Some("refused"));
    let reason = ws.event_error(LARGEST).unwrap();
    assert!(
        reason.starts_with("370 attributes, over MISP_FEED_MAX_ATTRIBUTES=200"),
        "{reason}"
    );
    let (second, _) = ws.once();
    assert_eq!(
        count(&second, "refused"),
        1,
        "still refused, not pushed: {second}"
    );
    assert_eq!(count(&second, "pushed"), 0);

    // `retry --event` decides it again: refused again under the same limit.
    assert!(ws.run(&["retry", "--event", LARGEST]).status.success());
    let (third, _) = ws.once();
    assert_eq!(count(&third, "refused"), 1, "{third}");

    // A raised limit decides it again at the next run.
    ws.set("MISP_FEED_MAX_ATTRIBUTES", "400");
    let (fourth, _) = ws.once();
    assert_eq!(count(&fourth, "pushed"), 1, "{fourth}");
    assert_eq!(ws.event_status(LARGEST).as_deref(), Some("pushed"));
}

#[test]
fn backfill_pacing_spreads_the_feed_over_runs_and_loses_nothing() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_MAX_EVENTS_PER_RUN", "4");
    let mut pushed = 0;
    let mut manifest_timestamps: Vec<i64> = server
        .manifest()
        .values()
        .map(|entry| match &entry["timestamp"] {
            Value::String(text) => text.parse().unwrap(),
            other => other.as_i64().unwrap(),
        })
        .collect();
    manifest_timestamps.sort();
    for (run, (expected, owed)) in [(4, 5), (4, 1), (1, 0)].into_iter().enumerate() {
        let (report, out) = ws.once();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(count(&report, "pushed"), expected, "run {run}: {report}");
        assert_eq!(count(&report, "deferred"), owed, "run {run}: {report}");
        pushed += expected;
        // The oldest go first, and the checkpoint never passes an owed event.
        let status: Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
        let checkpoint = status["checkpoint"]["last_event_timestamp"]
            .as_i64()
            .unwrap();
        if owed > 0 {
            let oldest_owed = manifest_timestamps[pushed as usize];
            assert!(
                checkpoint < oldest_owed,
                "run {run}: checkpoint {checkpoint} passed {oldest_owed}"
            );
            assert_eq!(
                status["events"]["pending"], owed,
                "owed events are recorded"
            );
        }
    }
    assert_eq!(pushed, 9);
    assert_eq!(uuids_with_status(&ws, "pushed").len(), 9);
}

#[test]
fn a_dry_run_says_what_a_run_would_do_and_changes_nothing() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_THREAT_LEVELS", "2");
    ws.set("MISP_FEED_MAX_ATTRIBUTES", "200");
    // A ledger with a run in it: the dry run must leave it as it is.
    let mut first = Workspace::new(&server.url());
    first.set(
        "MISP_FEED_LEDGER_PATH",
        &ws.ledger_path().display().to_string(),
    );
    first.set(
        "CONNECTOR_SEND_TO_DIRECTORY_PATH",
        &ws.bundle_dir().display().to_string(),
    );
    first.set("MISP_FEED_IMPORT_KEYWORD", "cerber");
    let (seeded, _) = first.once();
    assert_eq!(count(&seeded, "pushed"), 1, "{seeded}");
    let ledger_before = std::fs::read(ws.ledger_path()).unwrap();
    let files_before = ws.bundle_files();

    let out = ws.run(&["once", "--dry-run", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    // Threat level 2: one event (the other one of level 2 has 370 attributes).
    assert_eq!(plan["would_push"], 1, "{plan}");
    assert_eq!(plan["refused"], 1, "{plan}");
    assert_eq!(plan["unchanged"], 1, "the event pushed before: {plan}");
    let events = plan["events"].as_array().unwrap();
    let of = |uuid: &str| events.iter().find(|e| e["uuid"] == uuid).cloned();
    let largest = of(LARGEST).unwrap();
    assert_eq!(largest["decision"], "refused");
    assert!(
        largest["reason"]
            .as_str()
            .unwrap()
            .starts_with("370 attributes")
    );
    let pushed = of(THREAT_LEVEL_2[1]).unwrap();
    assert_eq!(pushed["decision"], "push");
    assert!(
        pushed["reason"]
            .as_str()
            .unwrap()
            .ends_with("STIX object(s)")
    );
    assert_eq!(of(SYNOVUS).unwrap()["decision"], "filtered");

    assert_eq!(
        std::fs::read(ws.ledger_path()).unwrap(),
        ledger_before,
        "the ledger was written"
    );
    assert_eq!(ws.bundle_files(), files_before, "bundles were written");
    let text = ws.run(&["once", "--dry-run"]);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.starts_with("dry run (nothing pushed, nothing recorded): 1 event(s) would be pushed"),
        "{said}"
    );

    // Without a ledger at all, the dry run still works and creates none.
    let fresh = Workspace::new(&server.url());
    let out = fresh.run(&["once", "--dry-run", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["would_push"], 9);
    assert!(!fresh.ledger_path().exists());
}
