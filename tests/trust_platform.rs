//! "The ledger is the truth", the platform's side: an operator's `reset` (`--all`, `--since`,
//! `--event`) takes effect in the next run of the `misp-feed` binary, with the fake OpenCTI
//! (which keeps the connector state across runs, as the platform does) or offline; with
//! OpenCTI the ledger's reset wins over the state stored on the platform, and the next ping
//! hands the platform the ledger's state; `reset` says what will happen; and "reset state"
//! in OpenCTI's UI still resets the ledger.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::FeedServer;
use crate::support::opencti::*;
use crate::support::workspace::{Workspace, feed_of};

/// Three small fixture events and their manifest timestamps (2016-02-13, 2016-08-30,
/// 2018-08-03).
const A: &str = "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81";
const B: &str = "57c4445b-c548-4654-af0b-4be3950d210f";
const C: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";
const TS_C: i64 = 1533306089;

/// An event added to the feed later, dated 2016-04-01: older than an import floor of
/// 2016-06-01, newer than 2016-01-01.
const D: &str = "d0d0d0d0-0000-4000-8000-000000000001";
const TS_D: i64 = 1459468800;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn set_of(uuids: &[&str]) -> BTreeSet<String> {
    uuids.iter().map(|u| u.to_string()).collect()
}

/// The fake platform, a feed of A, B and C, and a connector pushing to the platform (api
/// protocol) that imports from `import_from`.
struct Connected {
    _rt: tokio::runtime::Runtime,
    fake: FakeOpenCti,
    _feed: tempfile::TempDir,
    server: FeedServer,
    ws: Workspace,
}

fn connected(import_from: &str) -> Connected {
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    let feed = feed_of(&[A, B, C]);
    let server = FeedServer::start(feed.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &unique_connector_id());
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");
    ws.set("MISP_FEED_IMPORT_FROM_DATE", import_from);
    Connected {
        _rt: rt,
        fake,
        _feed: feed,
        server,
        ws,
    }
}

impl Connected {
    fn bundles(&self) -> usize {
        self.fake.platform.lock().unwrap().pushed_bundles.len()
    }

    /// The state the platform stores for the connector, as JSON.
    fn platform_state(&self) -> Value {
        let stored = self
            .fake
            .stored_state()
            .expect("the platform holds no state");
        serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{stored:?}: {e}"))
    }

    /// The platform holds the ledger's state: its checkpoint (`expected`) and its last run.
    fn assert_platform_holds_the_ledgers_state(&self, expected: i64) {
        let state = self.platform_state();
        let status = status_json(&self.ws);
        let ledger = &status["checkpoint"];
        assert_eq!(ledger["last_event_timestamp"], json!(expected), "{status}");
        assert_eq!(
            state["last_event_timestamp"],
            json!(expected),
            "the platform holds another state than the ledger's: {state}"
        );
        let second = |text: &Value| {
            chrono::DateTime::parse_from_rfc3339(text.as_str().unwrap())
                .unwrap()
                .timestamp()
        };
        assert_eq!(
            second(&state["last_run"]),
            second(&ledger["last_run"]),
            "platform {state} vs ledger {ledger}"
        );
    }
}

/// `once --json`, which must succeed; its report and its log.
fn once_ok(ws: &Workspace) -> (Value, String) {
    let (report, out) = ws.once();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "once failed: {report}\n{log}");
    (report, log)
}

fn run_id(report: &Value) -> u64 {
    report["run"].as_u64().unwrap()
}

/// `misp-feed reset <args>`, which must succeed; what it printed.
fn reset(ws: &Workspace, args: &[&str]) -> String {
    let mut command = vec!["reset"];
    command.extend_from_slice(args);
    let out = ws.run(&command);
    assert!(
        out.status.success(),
        "reset {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn status_json(ws: &Workspace) -> Value {
    let out = ws.run(&["status", "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Adds D to the feed: a copy of A under D's uuid and title, dated [`TS_D`].
fn add_event_d(server: &FeedServer) {
    let text = std::fs::read_to_string(format!("{FIXTURE_FEED}/{A}.json"))
        .unwrap()
        .replace(A, D);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["Event"]["info"] = json!("event D, added to the feed later");
    event["Event"]["timestamp"] = json!(TS_D.to_string());
    server.write_file(&format!("{D}.json"), &serde_json::to_vec(&event).unwrap());
    let mut manifest = server.manifest();
    let mut entry = manifest[A].clone();
    entry["info"] = json!("event D, added to the feed later");
    entry["timestamp"] = json!(TS_D.to_string());
    manifest.insert(D.into(), entry);
    server.write_manifest(&manifest);
}

#[test]
fn reset_all_goes_again_with_opencti_and_the_next_ping_gives_the_platform_the_ledgers_state() {
    let s = connected("2010-01-01");
    let (first, _) = once_ok(&s.ws);
    assert_eq!(first["pushed"], 3, "{first}");
    s.assert_platform_holds_the_ledgers_state(TS_C);

    let unconfirmed = s.ws.run(&["reset", "--all"]);
    assert!(!unconfirmed.status.success());
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("add --yes to confirm"));
    let said = reset(&s.ws, &["--all", "--yes"]);
    for promise in [
        "3 event record(s) forgotten (history kept)",
        "The next run imports again every event the feed lists from 2010-01-01T00:00:00+00:00 on",
        "this reset wins over the state stored on the platform, which the next ping replaces with the ledger's",
    ] {
        assert!(
            said.contains(promise),
            "reset --all did not say {promise:?}:\n{said}"
        );
    }

    let (second, log) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&second)), set_of(&[A, B, C]));
    assert_eq!(
        s.bundles(),
        6,
        "the platform did not receive the feed again"
    );
    assert!(
        !log.contains("adopting") && !log.contains("ledger reset to match"),
        "the platform's state was taken over the operator's reset:\n{log}"
    );
    s.assert_platform_holds_the_ledgers_state(TS_C);

    // The reset happened once: the next start finds its own state on the platform.
    let (third, log) = once_ok(&s.ws);
    assert_eq!(third["pushed"], 0, "{third}\n{log}");
    assert_eq!(s.bundles(), 6);

    // "Reset state" in the UI still resets the ledger once the operator's reset is delivered.
    s.fake.reset_state();
    let (fourth, log) = once_ok(&s.ws);
    assert!(log.contains("ledger reset to match"), "{log}");
    assert_eq!(s.ws.pushed_in_run(run_id(&fourth)), set_of(&[A, B, C]));
    assert_eq!(s.bundles(), 9);
    s.assert_platform_holds_the_ledgers_state(TS_C);
    let (fifth, _) = once_ok(&s.ws);
    assert_eq!(
        fifth["pushed"], 0,
        "the UI reset was applied twice: {fifth}"
    );
}

#[test]
fn reset_since_goes_again_from_that_date_with_opencti_including_events_never_imported() {
    // The import floor is 2016-06-01: A (2016-02-13) is too old for the first run.
    let s = connected("2016-06-01");
    let (first, _) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&first)), set_of(&[B, C]));
    assert_eq!(s.ws.event_status(A).as_deref(), Some("too_old"));

    // Since a date after the floor: only what the feed dates from then on goes again.
    let said = reset(&s.ws, &["--since", "2017-01-01"]);
    let promise = "1 event(s) since 2017-01-01T00:00:00+00:00 will be imported again by the next run, \
                   and every event the feed lists from 2016-06-01T00:00:00+00:00 on that was never imported.";
    assert!(said.contains(promise), "{said}");
    assert!(
        said.contains("wins over the state stored on the platform"),
        "{said}"
    );
    let (second, _) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&second)), set_of(&[C]));
    assert_eq!(s.bundles(), 3);
    s.assert_platform_holds_the_ledgers_state(TS_C);

    // D appears in the feed, dated before the floor: not imported...
    add_event_d(&s.server);
    let (third, _) = once_ok(&s.ws);
    assert_eq!(third["pushed"], 0, "{third}");
    assert_eq!(s.ws.event_status(D).as_deref(), Some("too_old"));

    // ...until a reset since a date before it lowers the floor: A and D, never imported, go
    // too, with B and C again.
    let said = reset(&s.ws, &["--since", "2016-01-01"]);
    let promise = "4 event(s) since 2016-01-01T00:00:00+00:00 will be imported again by the next run, \
                   and every event the feed lists from 2016-01-01T00:00:00+00:00 on that was never imported.";
    assert!(said.contains(promise), "{said}");
    let (fourth, _) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&fourth)), set_of(&[A, B, C, D]));
    assert_eq!(s.bundles(), 7);
    s.assert_platform_holds_the_ledgers_state(TS_C);
    let (fifth, _) = once_ok(&s.ws);
    assert_eq!(fifth["pushed"], 0, "{fifth}");
}

#[test]
fn an_operators_reset_wins_over_a_newer_state_stored_on_the_platform() {
    let s = connected("2016-06-01");
    let (first, _) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&first)), set_of(&[B, C]));
    s.assert_platform_holds_the_ledgers_state(TS_C);
    // Another connector under this id (the Python one) stored a state that reaches 2019: at
    // a start, the ledger would follow it and import nothing older again.
    let foreign = json!({
        "last_run": "2026-01-01T00:00:00+00:00",
        "last_event": "2019-01-01T00:00:00+00:00",
        "last_event_timestamp": 1546300800,
    });
    s.fake.platform.lock().unwrap().connector_state = Some(foreign.to_string());
    add_event_d(&s.server);

    reset(&s.ws, &["--since", "2016-01-01"]);
    let (second, log) = once_ok(&s.ws);
    assert_eq!(
        s.ws.pushed_in_run(run_id(&second)),
        set_of(&[A, B, C, D]),
        "{log}"
    );
    assert!(
        log.contains("reset by an operator since the platform last heard from it"),
        "{log}"
    );
    assert!(!log.contains("ahead of the ledger"), "{log}");
    // The ping replaced the platform's state with the ledger's.
    s.assert_platform_holds_the_ledgers_state(TS_C);
    let (third, log) = once_ok(&s.ws);
    assert_eq!(third["pushed"], 0, "{third}\n{log}");
}

#[test]
fn reset_event_goes_again_with_opencti_and_says_when_the_feed_no_longer_lists_it() {
    let s = connected("2010-01-01");
    once_ok(&s.ws);
    assert_eq!(s.bundles(), 3);

    // Named in capitals: the ledger keys events by their canonical (lower-case) uuid.
    let said = reset(&s.ws, &["--event", &B.to_uppercase()]);
    assert_eq!(
        said,
        format!("event {B} will be imported again by the next run\n")
    );
    let (second, _) = once_ok(&s.ws);
    assert_eq!(s.ws.pushed_in_run(run_id(&second)), set_of(&[B]));
    assert_eq!(s.bundles(), 4);
    s.assert_platform_holds_the_ledgers_state(TS_C);

    // The feed drops B: a reset of B says it cannot be imported while not listed.
    let mut manifest = s.server.manifest();
    manifest.remove(B);
    s.server.write_manifest(&manifest);
    once_ok(&s.ws);
    let said = reset(&s.ws, &["--event", B]);
    assert!(said.contains("the feed no longer lists it"), "{said}");
    let (fourth, _) = once_ok(&s.ws);
    assert_eq!(fourth["pushed"], 0, "{fourth}");
    assert_eq!(s.bundles(), 4);

    let unknown =
        s.ws.run(&["reset", "--event", "0badc0de-0000-4000-8000-000000000000"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("event 0badc0de-0000-4000-8000-000000000000 is not in the ledger")
    );
}

#[test]
fn offline_resets_take_effect_in_the_next_run() {
    let feed = feed_of(&[A, B, C]);
    let server = FeedServer::start(feed.path());
    let mut ws = Workspace::new(&server.url());
    ws.set("MISP_FEED_IMPORT_FROM_DATE", "2016-06-01");
    let files = |ws: &Workspace| ws.bundle_files().len();

    let (first, _) = once_ok(&ws);
    assert_eq!(ws.pushed_in_run(run_id(&first)), set_of(&[B, C]));
    assert_eq!(files(&ws), 2);

    let said = reset(&ws, &["--all", "--yes"]);
    assert!(
        said.contains(
            "every event the feed lists from 2016-06-01T00:00:00+00:00 on (the import floor; \
             older ones stay too_old, `reset --since DATE` goes further back)"
        ),
        "{said}"
    );
    let (second, _) = once_ok(&ws);
    assert_eq!(ws.pushed_in_run(run_id(&second)), set_of(&[B, C]));
    assert_eq!(ws.event_status(A).as_deref(), Some("too_old"));
    assert_eq!(files(&ws), 4);

    reset(&ws, &["--since", "2016-01-01"]);
    let (third, _) = once_ok(&ws);
    assert_eq!(ws.pushed_in_run(run_id(&third)), set_of(&[A, B, C]));
    assert_eq!(files(&ws), 7);

    let said = reset(&ws, &["--event", A]);
    assert!(
        said.contains("will be imported again by the next run"),
        "{said}"
    );
    let (fourth, _) = once_ok(&ws);
    assert_eq!(ws.pushed_in_run(run_id(&fourth)), set_of(&[A]));
    assert_eq!(files(&ws), 8);

    let (fifth, _) = once_ok(&ws);
    assert_eq!(fifth["pushed"], 0, "{fifth}");
}
