//! "The ledger is the truth" on a manifest feed, through the real binary: the checkpoint
//! decides nothing, every entry not imported is recorded with its reason, a file is pushed
//! only as its own event, keys collapse by canonical uuid, one writer however the ledger is
//! reached, and a FIFO in a feed folder cannot hang a run.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::feed_server::FeedServer;
use crate::support::workspace::Workspace;
use crate::support::{FIXTURE_FEED, fixture_feed};

/// Fixture events by manifest timestamp: four from 2016, five from 2018-2019.
const OLD: [&str; 4] = [
    "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81", // 2016-02-13
    "56e12e66-f01c-41be-afea-4d9a950d210f", // 2016-03-10
    "57153590-f73c-49fa-be4b-4737950d210f", // 2016-07-08
    "57c4445b-c548-4654-af0b-4be3950d210f", // 2016-08-30
];
const A: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";
const B: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status_json(ws: &Workspace) -> Value {
    let out = ws.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn history_actions(ws: &Workspace, uuid: &str) -> Vec<(String, String)> {
    let out = ws.run(&["show", uuid, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap().to_string(),
                h["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Adds an event to the served feed: a copy of `template`'s file under `uuid`, listed with
/// `timestamp`.
fn add_event(server: &FeedServer, template: &str, uuid: &str, timestamp: i64) {
    let text = String::from_utf8(server.read_file(&format!("{template}.json"))).unwrap();
    server.write_file(
        &format!("{uuid}.json"),
        text.replace(template, uuid).as_bytes(),
    );
    let mut manifest = server.manifest();
    manifest.insert(
        uuid.to_string(),
        json!({"timestamp": timestamp.to_string(), "info": format!("copy of {template}")}),
    );
    server.write_manifest(&manifest);
}

fn set_timestamp(server: &FeedServer, uuid: &str, timestamp: i64) {
    let mut manifest = server.manifest();
    manifest[uuid]["timestamp"] = json!(timestamp.to_string());
    server.write_manifest(&manifest);
}

#[test]
fn the_checkpoint_skips_nothing_and_entries_older_than_the_floor_are_recorded() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_FROM_DATE", "2017-01-01");

    let (first, out) = ws.once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&first, "pushed"), 5, "{first}");
    assert_eq!(count(&first, "skipped"), 4, "{first}");
    // Every entry not imported has a record and says why.
    let too_old: Vec<String> = ws
        .events_json(&["--status", "too_old"])
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(too_old.len(), 4);
    for uuid in OLD {
        assert!(too_old.contains(&uuid.to_string()), "{uuid} not recorded");
        let history = history_actions(&ws, uuid);
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].0, "too_old");
        assert!(
            history[0]
                .1
                .contains("older than the import floor 2017-01-01"),
            "{history:?}"
        );
    }
    assert_eq!(status_json(&ws)["events"]["too_old"], 4);
    let checkpoint = status_json(&ws)["checkpoint"]["last_event_timestamp"]
        .as_i64()
        .unwrap();

    // A new event dated before the checkpoint (a late arrival) is imported.
    let late = "6a000000-0000-4000-8000-000000000001";
    add_event(&server, A, late, checkpoint - 86_400 * 400);
    let (second, out) = ws.once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&second, "pushed"), 1, "{second}");
    assert_eq!(ws.event_status(late).as_deref(), Some("pushed"));
    // The too-old ones are not re-recorded run after run.
    assert_eq!(history_actions(&ws, OLD[0]).len(), 1);

    // A future-dated entry (a clock off by years) is imported but never carries the
    // checkpoint past the run's start, and later arrivals are still imported.
    let now = chrono::Utc::now().timestamp();
    set_timestamp(&server, A, now + 10 * 365 * 86_400);
    let (third, _) = ws.once();
    assert_eq!(count(&third, "pushed"), 1, "{third}");
    let stored = status_json(&ws)["checkpoint"]["last_event_timestamp"]
        .as_i64()
        .unwrap();
    assert!(
        stored <= chrono::Utc::now().timestamp(),
        "checkpoint {stored} is in the future"
    );
    let later = "6a000000-0000-4000-8000-000000000002";
    add_event(&server, A, later, checkpoint - 86_400);
    let (fourth, _) = ws.once();
    assert_eq!(count(&fourth, "pushed"), 1, "{fourth}");
    assert_eq!(ws.event_status(later).as_deref(), Some("pushed"));

    // Lowering the floor imports what it had left out, and only that.
    let out = ws.run(&["reset", "--since", "2016-03-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let reopened: u64 = said
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("reset did not say how many: {said}"));
    // The three 2016 events after March, and the seven pushed since then.
    assert_eq!(reopened, 10, "{said}");
    assert!(said.contains("from 2016-03-01"), "{said}");
    let (fifth, _) = ws.once();
    assert_eq!(count(&fifth, "pushed"), 10, "{fifth}");
    assert_eq!(ws.event_status(OLD[0]).as_deref(), Some("too_old"));
    for uuid in &OLD[1..] {
        assert_eq!(ws.event_status(uuid).as_deref(), Some("pushed"), "{uuid}");
    }
}

#[test]
fn an_earlier_import_date_widens_the_window_and_a_later_one_loses_nothing() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_FROM_DATE", "2017-01-01");
    let (first, _) = ws.once();
    assert_eq!(count(&first, "pushed"), 5);
    ws.set("MISP_FEED_IMPORT_FROM_DATE", "2016-01-01");
    let (second, _) = ws.once();
    assert_eq!(count(&second, "pushed"), 4, "{second}");
    ws.set("MISP_FEED_IMPORT_FROM_DATE", "2019-01-01");
    let (third, _) = ws.once();
    assert_eq!(count(&third, "pushed"), 0, "{third}");
    assert_eq!(count(&third, "unchanged"), 9, "{third}");
}

#[test]
fn a_file_holding_another_event_is_never_recorded_as_that_key() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    // A's file holds B.
    let b_file = server.read_file(&format!("{B}.json"));
    server.write_file(&format!("{A}.json"), &b_file);
    let (first, out) = ws.once();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(count(&first, "failed"), 1, "{first}");
    assert_eq!(ws.event_status(A).as_deref(), Some("failed"));
    let reason = ws.event_error(A).unwrap();
    assert!(
        reason.contains(&format!("holds event {B}, not event {A}")),
        "{reason}"
    );
    assert!(
        !history_actions(&ws, A)
            .iter()
            .any(|(action, _)| action == "pushed"),
        "A was recorded as pushed with B's content"
    );
    assert_eq!(ws.event_status(B).as_deref(), Some("pushed"));

    // A list holding B and A: A goes with its own content, B is named and not pushed again.
    let a_event: Value =
        serde_json::from_slice(&std::fs::read(fixture_feed().join(format!("{A}.json"))).unwrap())
            .unwrap();
    let b_event: Value = serde_json::from_slice(&b_file).unwrap();
    server.write_file(
        &format!("{A}.json"),
        &serde_json::to_vec(&json!([b_event, a_event])).unwrap(),
    );
    let (second, out) = ws.once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&second, "pushed"), 1, "{second}");
    assert_eq!(ws.event_status(A).as_deref(), Some("pushed"));
    let log = stderr(&out);
    assert!(
        log.lines()
            .any(|l| l.contains("holds other events") && l.contains(B)),
        "no warning naming B: {log}"
    );
    let a_info = a_event["Event"]["info"].as_str().unwrap();
    let newest = ws.bundle_files().into_iter().last().unwrap();
    let bundle: Value = serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    let report = bundle["bundle"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "report")
        .unwrap()
        .clone();
    assert_eq!(report["name"], a_info, "the bundle pushed for A is A's");
}

#[test]
fn keys_in_another_case_make_one_record_and_the_file_is_requested_as_listed() {
    let server = FeedServer::start(FIXTURE_FEED);
    let upper = A.to_uppercase();
    // The feed names the file in upper case only, as a case-sensitive server would.
    let bytes = server.read_file(&format!("{A}.json"));
    server.remove_file(&format!("{A}.json"));
    server.write_file(&format!("{upper}.json"), &bytes);
    let mut manifest = server.manifest();
    let entry = manifest.remove(A).unwrap();
    manifest.insert(upper.clone(), entry.clone());
    server.write_manifest(&manifest);
    let ws = Workspace::new(&server.url());

    let (first, out) = ws.once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&first, "pushed"), 9, "{first}");
    assert_eq!(server.requests_for(&format!("{upper}.json")), 1);
    assert_eq!(ws.event_status(A).as_deref(), Some("pushed"));
    assert!(
        ws.event_status(&upper).is_none(),
        "a second record for the upper-case key"
    );

    // Listed twice, in both cases: still one record, and nothing is sent again.
    let mut manifest = server.manifest();
    manifest.insert(A.to_string(), entry);
    server.write_manifest(&manifest);
    for _ in 0..2 {
        let (again, out) = ws.once();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(count(&again, "pushed"), 0, "{again}");
    }
    let pushes = history_actions(&ws, A)
        .iter()
        .filter(|(action, _)| action == "pushed")
        .count();
    assert_eq!(pushes, 1);
}

#[test]
fn a_second_writer_is_refused_however_the_ledger_is_reached() {
    let server = FeedServer::start(FIXTURE_FEED);
    server.delay_events(Duration::from_millis(400));
    let ws = Workspace::new(&server.url());
    let mut first = ws
        .command(&["once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run holds the ledger (its file exists).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ws.ledger_path().exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let link = ws.root.path().join("another-name.sqlite");
    std::os::unix::fs::symlink(ws.ledger_path(), &link).unwrap();
    let mut second = Workspace::new(&server.url());
    second.set("MISP_FEED_LEDGER_PATH", &link.display().to_string());
    let out = second.run(&["once"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another misp-feed process"),
        "{}",
        stderr(&out)
    );
    // There is no side file whose removal would let a second writer in.
    assert!(!Path::new(&format!("{}.lock", ws.ledger_path().display())).exists());
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_fifo_in_a_feed_folder_fails_its_event_and_the_run_goes_on() {
    let feed = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_feed()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), feed.path().join(entry.file_name())).unwrap();
    }
    let test = "a_fifo_in_a_feed_folder_fails_its_event_and_the_run_goes_on";
    if crate::support::services::tool(test, "mkfifo", &["--version"]).is_none() {
        return;
    }
    let fifo = feed.path().join(format!("{A}.json"));
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let ws = Workspace::new(&feed.path().display().to_string());
    let mut child = ws
        .command(&["once", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the run hung on a FIFO in the feed folder");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(ws.event_status(A).as_deref(), Some("failed"));
    let reason = ws.event_error(A).unwrap();
    assert!(reason.contains("is not a regular file"), "{reason}");
    let pushed = ws.events_json(&["--status", "pushed"]).len();
    assert_eq!(pushed, 8);
}
