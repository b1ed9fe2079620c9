//! The engine end to end over a real HTTP feed server: the `misp-feed` binary, a real SQLite
//! ledger, the directory sink. First sync, idempotent re-sync, a bumped event, and each
//! feed fault recorded with its reason and healed by a later run.

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::{Fault, FeedServer};
use crate::support::workspace::Workspace;
use serde_json::Value;

const EVENT: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[test]
fn first_sync_writes_every_event_then_resync_is_idempotent_and_a_bump_goes_again() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    let events = server.event_uuids();
    assert_eq!(events.len(), 9);

    let (first, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&first, "pushed"), 9);
    assert_eq!(count(&first, "failed"), 0);
    let files = ws.bundle_files();
    assert_eq!(files.len(), 9);
    for file in &files {
        let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(v["bundle_type"], "DIRECTORY_BUNDLE");
        assert_eq!(v["bundle"]["type"], "bundle");
    }
    let recorded = ws.events_json(&["--status", "pushed"]);
    assert_eq!(recorded.len(), 9);
    for record in &recorded {
        let dest = record["destination"].as_str().unwrap();
        assert!(std::path::Path::new(dest).is_file(), "{dest} missing");
        assert!(events.contains(&record["uuid"].as_str().unwrap().to_string()));
    }

    let fetched_before = server.requests().len();
    let (second, out) = ws.once();
    assert_eq!(count(&second, "pushed"), 0);
    assert_eq!(count(&second, "unchanged"), 9);
    assert_eq!(ws.bundle_files().len(), 9, "second run wrote files");
    let hits: Vec<String> = server.requests()[fetched_before..]
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(hits, vec!["manifest.json"], "unchanged events were fetched");
    let log = String::from_utf8_lossy(&out.stderr);
    for uuid in &events {
        assert!(
            log.lines()
                .any(|l| l.contains(uuid.as_str()) && l.contains(r#""reason":"unchanged""#)),
            "no 'unchanged' line for {uuid}"
        );
    }

    server.bump_timestamp(EVENT, 60);
    let before = server.requests_for(&format!("{EVENT}.json"));
    let (third, _) = ws.once();
    assert_eq!(count(&third, "pushed"), 1);
    assert_eq!(count(&third, "unchanged"), 8);
    assert_eq!(server.requests_for(&format!("{EVENT}.json")), before + 1);
    assert_eq!(ws.bundle_files().len(), 10);
}

/// Runs once with `fault` on the event, checks it is recorded as failed with one of `expect`
/// in its reason (lower-cased) while the other events go through, then heals and checks a
/// later run pushes it. Each needle is a text that only the expected failure produces (every
/// reason names `<uuid>.json` and the feed's URL, random port included).
fn fault_is_recorded_and_healed(
    fault: Fault,
    expect: &[&str],
    configure: impl Fn(&mut Workspace),
    heal: impl Fn(&FeedServer, &mut Workspace),
) {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    configure(&mut ws);
    server.fail_always(&format!("{EVENT}.json"), fault);
    let (first, out) = ws.once();
    assert_eq!(out.status.code(), Some(2), "failed events give exit code 2");
    assert_eq!(count(&first, "failed"), 1, "{first}");
    assert_eq!(count(&first, "pushed"), 8, "{first}");
    assert_eq!(ws.event_status(EVENT).as_deref(), Some("failed"));
    let reason = ws.event_error(EVENT).unwrap().to_lowercase();
    assert!(
        expect.iter().any(|e| reason.contains(e)),
        "reason {reason:?} mentions none of {expect:?}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains(EVENT) && l.contains(r#""decision":"failed""#)),
        "no failure line for the event in the log"
    );

    server.clear_faults();
    heal(&server, &mut ws);
    let (second, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&second, "pushed"), 1, "{second}");
    assert_eq!(count(&second, "failed"), 0);
    assert_eq!(ws.event_status(EVENT).as_deref(), Some("pushed"));
    let history: Value =
        serde_json::from_slice(&ws.run(&["show", EVENT, "--json"]).stdout).unwrap();
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"failed") && actions.last() == Some(&"pushed"),
        "{actions:?}"
    );
}

#[test]
fn persistent_500_is_recorded_then_healed() {
    fault_is_recorded_and_healed(
        Fault::Status(500),
        &["server answered http 500 internal server error"],
        |_| {},
        |_, _| {},
    );
}

#[test]
fn a_500_then_recovery_is_retried_within_the_run() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    server.fail_next(&format!("{EVENT}.json"), Fault::Status(503));
    let (report, _) = ws.once();
    assert_eq!(count(&report, "pushed"), 9);
    assert_eq!(count(&report, "failed"), 0);
    assert_eq!(server.requests_for(&format!("{EVENT}.json")), 2);
}

#[test]
fn timeout_is_recorded_then_healed() {
    fault_is_recorded_and_healed(
        Fault::Delay(std::time::Duration::from_secs(6)),
        &["timed out"],
        |_| {},
        |_, _| {},
    );
}

#[test]
fn truncated_body_is_recorded_then_healed() {
    fault_is_recorded_and_healed(Fault::Truncate, &["body cut short"], |_| {}, |_, _| {});
}

#[test]
fn invalid_json_is_recorded_with_the_file_then_healed() {
    fault_is_recorded_and_healed(
        Fault::Body(b"{\"Event\": {\"uuid\": ".to_vec()),
        &[&format!("{EVENT}.json: $: invalid json: eof while parsing")],
        |_| {},
        |_, _| {},
    );
}

#[test]
fn missing_event_404_is_recorded_then_healed() {
    fault_is_recorded_and_healed(Fault::Status(404), &["/feed: not found"], |_| {}, |_, _| {});
}

#[test]
fn oversized_file_is_recorded_then_healed() {
    // The chosen event is about 2 KB in feed form; the other events are smaller or larger,
    // so the limit is applied by fault: the server serves an oversized body for it.
    fault_is_recorded_and_healed(
        Fault::Body(vec![b' '; 300_000]),
        &["300000 bytes is over the limit of 250000 bytes"],
        |ws| ws.set("MISP_FEED_MAX_FILE_SIZE", "250000"),
        |_, _| {},
    );
}

#[test]
fn manifest_keys_that_are_not_uuids_are_rejected_recorded_and_never_fetched() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    let mut manifest = server.manifest();
    let template = manifest.values().next().unwrap().clone();
    for key in ["../../etc/passwd", "not-a-uuid", "https://evil.example/x"] {
        manifest.insert(key.to_string(), template.clone());
    }
    server.write_manifest(&manifest);
    let (report, _) = ws.once();
    assert_eq!(count(&report, "pushed"), 9);
    let hits: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert!(
        hits.iter()
            .all(|h| !h.contains("passwd") && !h.contains("not-a-uuid") && !h.contains("evil")),
        "{hits:?}"
    );
    let events = ws.events_json(&["--status", "gave_up"]);
    let keys: Vec<&str> = events.iter().map(|e| e["uuid"].as_str().unwrap()).collect();
    for key in ["../../etc/passwd", "not-a-uuid", "https://evil.example/x"] {
        assert!(keys.contains(&key), "{key} not recorded: {keys:?}");
    }
    for e in &events {
        let entry = format!("manifest.json: entry {:?}", e["uuid"].as_str().unwrap());
        assert!(e["last_error"].as_str().unwrap().contains(&entry), "{e}");
    }
    // A second run neither re-records nor fetches them.
    let (again, _) = ws.once();
    assert_eq!(count(&again, "failed"), 0);
    assert_eq!(ws.events_json(&["--status", "gave_up"]).len(), 3);
}

#[test]
fn operator_commands_status_events_show_reset_retry() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    server.fail_always(&format!("{EVENT}.json"), Fault::Status(500));
    let mut ws_max1 = ws;
    ws_max1.set("MISP_FEED_MAX_ATTEMPTS", "1");
    let ws = ws_max1;
    ws.once();

    // status --json
    let out = ws.run(&["status", "--json"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["events"]["pushed"], 8);
    assert_eq!(status["events"]["gave_up"], 1);
    assert_eq!(status["events"]["pending"], 0);
    assert!(status["checkpoint"]["last_event_timestamp"].is_i64());
    assert!(status["checkpoint"]["last_run"].is_string());
    assert_eq!(status["runs"][0]["status"], "completed_with_errors");
    assert_eq!(status["runs"][0]["pushed"], 8);
    let text = String::from_utf8_lossy(&ws.run(&["status"]).stdout).to_string();
    assert!(text.contains("gave_up") && text.contains("last runs"));

    // events filters
    assert_eq!(ws.events_json(&["--status", "gave_up"]).len(), 1);
    assert_eq!(ws.events_json(&["--since", "2000-01-01"]).len(), 9);
    assert_eq!(ws.events_json(&["--since", "2999-01-01"]).len(), 0);
    let bad = ws.run(&["events", "--status", "bogus"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains(r#"--status "bogus": expected one of"#));

    // show --json
    let show: Value = serde_json::from_slice(&ws.run(&["show", EVENT, "--json"]).stdout).unwrap();
    assert_eq!(show["event"]["uuid"], EVENT);
    assert_eq!(show["event"]["status"], "gave_up");
    assert!(
        show["event"]["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    assert!(!show["history"].as_array().unwrap().is_empty());
    assert!(
        !ws.run(&["show", "00000000-0000-0000-0000-000000000000"])
            .status
            .success()
    );

    // a given-up event waits for retry, even when the feed is healed
    server.clear_faults();
    let (r, _) = ws.once();
    assert_eq!(count(&r, "pushed"), 0);
    let out = ws.run(&["retry", "--event", EVENT]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 event(s) will be retried"));
    let (r, _) = ws.once();
    assert_eq!(count(&r, "pushed"), 1);

    // reset --event
    assert!(ws.run(&["reset", "--event", EVENT]).status.success());
    let (r, _) = ws.once();
    assert_eq!(count(&r, "pushed"), 1);

    // reset --since: every event with a manifest timestamp from then on
    assert!(ws.run(&["reset", "--since", "2000-01-01"]).status.success());
    let (r, _) = ws.once();
    assert_eq!(count(&r, "pushed"), 9);

    // reset --all needs --yes
    let refused = ws.run(&["reset", "--all"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("add --yes to confirm"));
    assert!(ws.run(&["reset", "--all", "--yes"]).status.success());
    let status: Value = serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["events"]["pushed"], 0);
    assert!(status["checkpoint"]["last_event_timestamp"].is_null());
    let (r, _) = ws.once();
    assert_eq!(count(&r, "pushed"), 9);
    // the audit trail survived the reset
    let show: Value = serde_json::from_slice(&ws.run(&["show", EVENT, "--json"]).stdout).unwrap();
    let actions: Vec<&str> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"reset") && actions.contains(&"retry"),
        "{actions:?}"
    );
}

#[test]
fn a_second_process_on_the_same_ledger_exits_with_a_clear_error() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _held = runtime
        .block_on(misp_feed::ledger::Ledger::open(&ws.ledger_path()))
        .unwrap();
    let out = ws.run(&["once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another misp-feed process"));
}
