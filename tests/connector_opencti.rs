//! The `misp-feed` binary against the fake OpenCTI (validated against the real schema) and
//! a real RabbitMQ: `once` over a feed speaks pycti's sequence and publishes pycti's
//! messages; the api protocol likewise; the platform's state is adopted and a reset from the
//! UI resets the ledger.

use crate::support::feed_server::FeedServer;
use crate::support::fixture;
use crate::support::opencti::*;
use crate::support::pycti::*;
use crate::support::rabbitmq::Broker;
use crate::support::workspace::{Workspace, feed_of, stderr_lines};
use serde_json::{Map, Value, json};

const EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";
const SMALL: [&str; 3] = [
    "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81",
    "57c4445b-c548-4654-af0b-4be3950d210f",
    "5b646415-7b48-40d5-86b4-c0070acd0835",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn once_over_a_feed_speaks_pycti_sequence_and_publishes_pycti_messages() {
    let Some(broker) =
        Broker::shared("once_over_a_feed_speaks_pycti_sequence_and_publishes_pycti_messages")
    else {
        return;
    };
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    rt.block_on(broker.declare_push_queue(&connector_id));
    let feed = feed_of(&[EVENT]);
    let server = FeedServer::start(feed.path());
    let ws = platform_workspace(&server.url(), &fake.url, &connector_id);

    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 1);
    // A run that went well logs no error, not even while the process shuts the broker
    // connection down.
    let errors: Vec<Value> = stderr_lines(&out)
        .into_iter()
        .filter(|line| line["level"] == "ERROR")
        .collect();
    assert!(
        errors.is_empty(),
        "error lines after a good run: {errors:?}"
    );

    let seen = fake.requests();
    assert!(
        seen.iter().all(|r| r.rejected.is_none()),
        "the fake rejected a request"
    );
    assert_matches_transcript(&seen, &transcript("transcript.jsonl"));
    assert_eq!(seen[4].variables["expectations"], json!(1747));
    // The state the platform keeps now is the ledger's checkpoint, in the Python keys.
    let stored = fake.stored_state().unwrap();
    let state: Value = serde_json::from_str(&stored).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(feed.path().join("manifest.json")).unwrap()).unwrap();
    let event_ts = timestamp_of(&manifest[EVENT]);
    assert_eq!(state["last_event_timestamp"], json!(event_ts));
    assert!(state["last_run"].is_string() && state["last_event"].is_string());

    let messages = rt.block_on(broker.drain_push_queue(&connector_id));
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("opencti/amqp-messages.json")).unwrap(),
    )
    .unwrap();
    let recorded = recorded["messages"].as_array().unwrap();
    assert_eq!(messages.len(), recorded.len());
    let work_id = fake.platform.lock().unwrap().works[0].clone();
    for (index, (ours, theirs)) in messages.iter().zip(recorded).enumerate() {
        check_message_against_recording(index + 1, ours, theirs, &connector_id, &work_id);
    }
    // The ledger says where the event went: the work.
    let events = ws.events_json(&[]);
    assert_eq!(events[0]["destination"], json!(work_id));
    assert_eq!(events[0]["messages"], json!(1747));
}

/// `once` over the fixture event with the api protocol and `settings`, which must push it.
fn api_once_over_the_event(fake: &FakeOpenCti, settings: &[(&str, &str)]) -> Workspace {
    let feed = feed_of(&[EVENT]);
    let server = FeedServer::start(feed.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &unique_connector_id());
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");
    for (key, value) in settings {
        ws.set(key, value);
    }
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 1);
    ws
}

#[test]
fn api_protocol_once_matches_the_api_transcript() {
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    // Both destinations on, as pycti allows: the platform and the bundle folder.
    let ws = api_once_over_the_event(&fake, &[("CONNECTOR_SEND_TO_DIRECTORY", "true")]);
    assert_matches_transcript(&fake.requests(), &transcript("transcript-api.jsonl"));
    let files = ws.bundle_files();
    assert_eq!(files.len(), 1, "the bundle folder was not written");
    let copy: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(copy["bundle"]["objects"].as_array().unwrap().len(), 1747);
    let pushed = fake.platform.lock().unwrap().pushed_bundles.clone();
    assert_eq!(pushed.len(), 1);
    let bundle: Value = serde_json::from_str(&pushed[0]).unwrap();
    assert_eq!(bundle["objects"].as_array().unwrap().len(), 1747);
}

#[test]
fn guessed_threats_are_searched_before_the_conversion_and_reach_the_bundle() {
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    fake.platform.lock().unwrap().threats.insert(
        "Sofacy".into(),
        vec![json!({"id": "i1", "standard_id": "intrusion-set--1",
                    "entity_type": "Intrusion-Set", "parent_types": ["Stix-Domain-Object"],
                    "name": "APT28"})],
    );
    api_once_over_the_event(&fake, &[("MISP_FEED_GUESS_THREATS_FROM_TAGS", "true")]);

    let seen = fake.requests();
    let (searches, others): (Vec<Recorded>, Vec<Recorded>) = seen
        .iter()
        .cloned()
        .partition(|r| r.operation_name == "StixDomainObjects");
    let searched: Vec<&str> = searches
        .iter()
        .map(|r| {
            r.variables["filters"]["filters"][0]["values"][0]
                .as_str()
                .unwrap()
        })
        .collect();
    // The event's tags, then those of its one converted tagged attribute (the tagged
    // `link` under External analysis is not converted), each value once, in the Python
    // connector's order.
    assert_eq!(
        searched,
        [
            "white",
            "incomplete",
            "create-missing-misp-galaxy-cluster-values",
            "create-missing-misp-galaxy-cluster",
            "Sofacy",
            "Sednit EK",
            "GAMEFISH",
            "JHUHUGIT",
            "X-Tunnel",
            "XTunnel",
            "ADVSTORESHELL",
            "EVILTOSS",
            "USBStealer",
            "X-Agent",
            "XAgentOSX",
            "CHOPSTICK",
            "DealersChoice",
            "Downdelph",
            "blog-post",
            "93",
        ]
    );
    assert!(searches.iter().all(|r| r.rejected.is_none()));
    let first_push = seen
        .iter()
        .position(|r| r.operation_name == "StixBundlePush")
        .unwrap();
    let last_search = seen
        .iter()
        .rposition(|r| r.operation_name == "StixDomainObjects")
        .unwrap();
    assert!(last_search < first_push, "a search came after the push");
    // Apart from the searches, the wire is the api transcript's.
    assert_matches_transcript(&others, &transcript("transcript-api.jsonl"));

    let pushed = fake.platform.lock().unwrap().pushed_bundles.clone();
    let bundle: Value = serde_json::from_str(&pushed[0]).unwrap();
    let guessed: Vec<&Value> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "intrusion-set" && o["name"] == "APT28")
        .collect();
    assert_eq!(
        guessed.len(),
        1,
        "the platform's threat is not in the bundle"
    );
}

/// A manifest timestamp, given as a string or a number.
fn timestamp_of(entry: &Value) -> i64 {
    match &entry["timestamp"] {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_i64().unwrap(),
    }
}

fn pushed_count(report: &Value) -> u64 {
    report["pushed"].as_u64().unwrap()
}

#[test]
fn a_reset_on_the_platform_resets_the_ledger_and_everything_goes_again() {
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    let feed = feed_of(&SMALL);
    let server = FeedServer::start(feed.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &connector_id);
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");

    let (first, _) = ws.once();
    assert_eq!(pushed_count(&first), 3);
    let (second, _) = ws.once();
    assert_eq!(pushed_count(&second), 0, "nothing new without a reset");

    fake.reset_state();
    let (third, out) = ws.once();
    assert_eq!(
        pushed_count(&third),
        3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("ledger reset to match"),
        "the reset is not logged"
    );
    assert_eq!(fake.platform.lock().unwrap().pushed_bundles.len(), 6);
    // The history shows the reset between the two pushes.
    let show: Value =
        serde_json::from_slice(&ws.run(&["show", SMALL[0], "--json"]).stdout).unwrap();
    let actions: Vec<&str> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    let reset_at = actions.iter().position(|a| *a == "reset").unwrap();
    assert!(actions[..reset_at].contains(&"pushed") && actions[reset_at..].contains(&"pushed"));
}

#[test]
fn an_empty_ledger_adopts_the_python_connectors_state() {
    let rt = runtime();
    let feed = feed_of(&SMALL);
    let manifest: Map<String, Value> =
        serde_json::from_slice(&std::fs::read(feed.path().join("manifest.json")).unwrap()).unwrap();
    let mut timestamps: Vec<(i64, String)> = manifest
        .iter()
        .map(|(k, v)| (timestamp_of(v), k.clone()))
        .collect();
    timestamps.sort();
    // The Python connector got as far as the second event.
    let (checkpoint, _) = timestamps[1].clone();
    let python_state = json!({
        "last_run": "2026-01-01T00:00:00+00:00",
        "last_event": "2020-01-01T00:00:00+00:00",
        "last_event_timestamp": checkpoint,
    })
    .to_string();
    let fake = rt.block_on(FakeOpenCti::start(Some(&python_state)));
    let connector_id = unique_connector_id();
    let server = FeedServer::start(feed.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &connector_id);
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");
    let (report, _) = ws.once();
    // Entries after the Python checkpoint, and the one at its exact second (the ledger
    // cannot know whether Python sent it; a repeat is harmless, a skip is not).
    assert_eq!(pushed_count(&report), 2, "{report}");
    // The older one is recorded as not imported (the Python connector's), not pushed.
    assert_eq!(
        ws.event_status(&timestamps[0].1).as_deref(),
        Some("too_old"),
        "an event older than the state was imported"
    );
}

#[test]
fn run_mode_notices_a_ui_reset_at_the_next_heartbeat_and_pushes_again_at_once() {
    let rt = runtime();
    let fake = rt.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    let feed = feed_of(&SMALL);
    let server = FeedServer::start(feed.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &connector_id);
    ws.set("CONNECTOR_QUEUE_PROTOCOL", "api");
    ws.set("CONNECTOR_DURATION_PERIOD", "PT1H");
    ws.set("MISP_FEED_HEARTBEAT_PERIOD", "0.3");
    let child = ws
        .command(&["run"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pushed = || fake.platform.lock().unwrap().pushed_bundles.len();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while pushed() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        pushed()
    };
    assert_eq!(wait_for(3), 3, "first run did not push the feed");
    // Let a heartbeat carry the new state, then press "reset state".
    let carried = || {
        fake.stored_state()
            .is_some_and(|s| s.contains("last_event_timestamp"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !carried() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(carried(), "no heartbeat carried the state of the first run");
    fake.reset_state();
    assert_eq!(wait_for(6), 6, "the reset did not make the feed go again");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("remotely updated"), "{log}");
    assert!(log.contains("ledger reset to match"), "{log}");
    // Nothing but the reset made it push again: one run before, one after, an hour apart.
    assert_eq!(pushed(), 6);
}
