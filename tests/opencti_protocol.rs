//! The OpenCTI sink against a fake platform that validates every request with the real
//! schema subset, compared with the transcripts of a real pycti run.

use std::sync::Arc;
use std::time::Duration;

use crate::support::opencti::*;
use crate::support::pycti::*;
use chrono::{DateTime, Utc};
use misp_feed::config::QueueProtocol;
use misp_feed::convert::Threat;
use misp_feed::ledger::Checkpoint;
use misp_feed::opencti::graphql::ApiError;
use misp_feed::opencti::{ConnectorState, OpenCti, remote_state_changed};
use misp_feed::sink::opencti::OpenCtiSink;
use misp_feed::sink::{Delivery, Destination, RunSummary, Sink};
use serde_json::json;

const EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

const IDENTITY_BUNDLE: &str = r#"{"type": "bundle", "id": "bundle--5d0e8d39-4b69-4d4c-9a0c-1f5b7c0e3d11", "objects": [{"type": "identity", "spec_version": "2.1", "id": "identity--4f347cc9-4658-59ee-9707-134f434f9d1c", "name": "CIRCL", "identity_class": "organization"}]}"#;

fn run_started() -> DateTime<Utc> {
    "2026-11-28T04:06:10.831138Z".parse().unwrap()
}

fn run_state() -> ConnectorState {
    ConnectorState::checkpoint(run_started(), 1795838770)
}

/// What a run tells the sink when it closes: its counts and the checkpoint it stored.
fn summary(pushed: u64, skipped: u64, failed: u64) -> RunSummary {
    RunSummary {
        pushed,
        skipped,
        failed,
        checkpoint: Some(Checkpoint {
            last_event_timestamp: Some(1795838770),
            ..Checkpoint::default()
        }),
        started: run_started(),
    }
}

#[tokio::test]
async fn api_protocol_run_matches_transcript_api() {
    let expected = transcript("transcript-api.jsonl");
    // The api run of the transcript started with the state left by the AMQP run.
    let stored = expected[2]["response"]["data"]["registerConnector"]["connector_state"]
        .as_str()
        .unwrap()
        .to_string();
    let fake = FakeOpenCti::start(Some(&stored)).await;
    let connector_id = unique_connector_id();
    let settings = settings(&fake.url, &connector_id, QueueProtocol::Api);

    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    let registered = opencti.registered_state().unwrap();
    assert_eq!(registered.last_event_timestamp, Some(1795838768));
    assert_eq!(
        registered.to_platform(),
        stored,
        "state read back byte for byte"
    );

    let sink = OpenCtiSink::new(opencti.clone());
    let bundle = reference_bundle();
    let receipt = sink
        .push(Delivery::new(EVENT, bundle.as_str()))
        .await
        .unwrap();
    let work_id = fake.platform.lock().unwrap().works[0].clone();
    assert_eq!(receipt.destination, Destination::Work(work_id.clone()));
    assert_eq!(receipt.messages, 1);
    let state = run_state();
    sink.finish_run(&summary(1, 0, 0)).await.unwrap();
    let remote = opencti.force_ping(Some(&state)).await.unwrap();
    assert_eq!(remote.as_ref(), Some(&state));

    let seen = fake.requests();
    assert_matches_transcript(&seen, &expected);
    // The bundle travels unchanged, as pycti sends the input file's text.
    assert_eq!(fake.platform.lock().unwrap().pushed_bundles, vec![bundle]);
    assert_eq!(seen[4].variables["work_id"], json!(work_id));
    assert_eq!(seen[4].variables["connectorId"], json!(connector_id));
    // workAdd named as the Python connector names it.
    let name = seen[3].variables["friendlyName"].as_str().unwrap();
    assert!(
        name.starts_with("MISP Feed run @ ") && name.ends_with("+00:00"),
        "{name}"
    );
    assert_eq!(seen[3].variables["isMultiPartWork"], json!(false));
    // Closing message quotes the counts and the state, not in error.
    assert_eq!(seen[5].variables["inError"], json!(false));
    assert_eq!(
        seen[5].variables["message"],
        json!(format!(
            "Connector successfully run (1 events have been processed, 0 skipped, 0 failed), storing state ({})",
            state.describe()
        ))
    );
    // The state reaches the platform in Python's bytes.
    assert_eq!(
        seen[6].variables["state"],
        json!(
            r#"{"last_run": "2026-11-28T04:06:10.831138+00:00", "last_event": "2026-11-28T04:06:10+00:00", "last_event_timestamp": 1795838770}"#
        )
    );
    assert_eq!(
        seen[6].variables["connectorInfo"],
        expected[6]["variables"]["connectorInfo"]
    );
    assert_eq!(seen[2].variables["input"], {
        let mut input = expected[2]["variables"]["input"].clone();
        input["id"] = json!(connector_id);
        input
    });
}

#[tokio::test]
async fn a_run_that_pushes_nothing_creates_no_work_and_a_failed_run_is_in_error() {
    let fake = FakeOpenCti::start(None).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Api);
    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    let sink = OpenCtiSink::new(opencti.clone());
    sink.finish_run(&summary(0, 0, 0)).await.unwrap();
    assert_eq!(
        fake.operation_names(),
        ["healthCheck", "healthCheck", "RegisterConnector"]
    );

    // Second run: two pushes share one work; the run had a failure.
    for _ in 0..2 {
        sink.push(Delivery::new(EVENT, IDENTITY_BUNDLE))
            .await
            .unwrap();
    }
    // A run that stored no checkpoint quotes no state.
    let without_state = RunSummary {
        checkpoint: None,
        ..summary(2, 3, 1)
    };
    sink.finish_run(&without_state).await.unwrap();
    // Third run gets a new work.
    sink.push(Delivery::new(EVENT, IDENTITY_BUNDLE))
        .await
        .unwrap();
    let seen = fake.requests();
    let names: Vec<&str> = seen.iter().map(|r| r.operation_name.as_str()).collect();
    assert_eq!(
        names[3..],
        [
            "workAdd",
            "StixBundlePush",
            "StixBundlePush",
            "workToProcessed",
            "workAdd",
            "StixBundlePush"
        ]
    );
    let closing = &seen[6].variables;
    assert_eq!(closing["inError"], json!(true));
    assert_eq!(
        closing["message"],
        json!(
            "Connector run finished with errors (2 events have been processed, 3 skipped, 1 failed)"
        )
    );
    assert_eq!(fake.platform.lock().unwrap().works.len(), 2);
}

#[tokio::test]
async fn ping_reports_a_reset_done_on_the_platform() {
    // Same sequence as transcript-reset.jsonl: ping with no state, ping with a state, reset in
    // the UI, ping (answer ""), ping with no state.
    let expected = transcript("transcript-reset.jsonl");
    let fake = FakeOpenCti::start(None).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    let opencti = OpenCti::connect(&settings).await.unwrap();
    assert_eq!(opencti.registered_state(), None);

    let first = opencti.ping(None).await.unwrap();
    assert!(!remote_state_changed(None, first.as_ref()));

    let state = ConnectorState::from_platform(expected[4]["variables"]["state"].as_str()).unwrap();
    let second = opencti.ping(Some(&state)).await.unwrap();
    assert_eq!(second.as_ref(), Some(&state));
    assert!(!remote_state_changed(Some(&state), second.as_ref()));
    assert_eq!(
        fake.stored_state().as_deref(),
        expected[4]["variables"]["state"].as_str()
    );

    fake.reset_state();
    let third = opencti.ping(Some(&state)).await.unwrap();
    assert_eq!(third, None, "the platform answers the reset (empty) state");
    assert!(
        remote_state_changed(Some(&state), third.as_ref()),
        "caller must reset its ledger"
    );
    assert_eq!(
        fake.stored_state().as_deref(),
        Some(""),
        "the old state was not stored again"
    );

    // The caller adopted the reset: the next ping sends "null".
    let fourth = opencti.ping(third.as_ref()).await.unwrap();
    assert_eq!(fourth, None);
    assert_eq!(fake.stored_state().as_deref(), Some("null"));

    let seen = fake.requests();
    assert_matches_transcript(&seen, &expected);
    for (ours, theirs) in seen.iter().zip(&expected).skip(3) {
        assert_eq!(ours.variables["state"], theirs["variables"]["state"]);
        assert_eq!(
            ours.variables["connectorInfo"],
            theirs["variables"]["connectorInfo"]
        );
    }
}

#[tokio::test]
async fn force_ping_pings_again_with_the_local_state_when_the_platform_differs() {
    let fake = FakeOpenCti::start(Some(r#"{"last_run": "2020-01-01T00:00:00+00:00"}"#)).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    let opencti = OpenCti::connect(&settings).await.unwrap();
    let local = run_state();
    fake.reset_state();
    let remote = opencti.force_ping(Some(&local)).await.unwrap();
    assert_eq!(
        remote.as_ref(),
        Some(&local),
        "second ping stores the local state"
    );
    assert_eq!(
        fake.operation_names()[3..],
        ["PingConnector", "PingConnector"]
    );
    assert_eq!(fake.stored_state(), Some(local.to_platform()));
}

#[tokio::test]
async fn the_fake_rejects_what_the_platform_would_reject() {
    let fake = FakeOpenCti::start(None).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    let opencti = OpenCti::connect(&settings).await.unwrap();
    let client = opencti.client();
    let unknown_field = client
        .execute("x", "query x { about { version uptime } }", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown_field, ApiError::Http { status: 400, body, .. } if body.contains("does not have a field `uptime`")),
        "{unknown_field}"
    );
    let unknown_input_member = client
        .execute(
            "RegisterConnector",
            misp_feed::opencti::graphql::REGISTER_CONNECTOR,
            json!({"input": {"id": "x", "name": "MISP Feed", "type": "EXTERNAL_IMPORT", "colour": "red"}}),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        unknown_input_member,
        ApiError::Http { status: 400, .. }
    ));
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests[3].rejected.as_deref().unwrap().contains("uptime"));
    assert!(requests[4].rejected.is_some());
}

#[tokio::test]
async fn errors_are_named_as_pycti_names_them_and_never_show_the_token() {
    let fake = FakeOpenCti::start(None).await;
    let mut settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Api);
    settings.opencti.token = Some(misp_feed::secret::Secret::new("wrong-token-123"));
    let error = OpenCti::connect(&settings).await.unwrap_err();
    // Health check is answered (the fake checks auth after validation) with AUTH_REQUIRED.
    let text = error.to_string();
    assert!(text.contains("AUTH_REQUIRED"), "{text}");
    assert!(!text.contains("wrong-token-123"));

    // Unreachable platform: pycti's "not reachable" error, naming the URL.
    let mut offline = settings.clone();
    offline.opencti.url = Some("http://127.0.0.1:9".into());
    let error = OpenCti::connect(&offline).await.unwrap_err();
    assert!(error.to_string().contains("not reachable"), "{error}");
    assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threat_search_is_pycti_list_and_cached_per_run() {
    let fake = FakeOpenCti::start(None).await;
    let apt = json!({"id": "i1", "standard_id": "intrusion-set--1", "entity_type": "Intrusion-Set",
                     "parent_types": ["Stix-Domain-Object"], "name": "APT28"});
    fake.platform
        .lock()
        .unwrap()
        .threats
        .insert("Sofacy".into(), vec![apt]);
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    let opencti = OpenCti::connect(&settings).await.unwrap();
    let resolver = opencti.threat_resolver();
    let values = |names: &[&str]| {
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    let found = resolver.resolve(&values(&["Sofacy", "nothing"])).await;
    let again = resolver.resolve(&values(&["nothing", "Sofacy"])).await;
    let apt28 = Threat {
        entity_type: "Intrusion-Set".into(),
        name: "APT28".into(),
    };
    assert_eq!(found.get("Sofacy"), Some(&apt28));
    assert_eq!(found.get("nothing"), None);
    assert_eq!(found.len(), 1);
    assert_eq!(again, found);
    assert_eq!(resolver.failures(), 0);
    let searches: Vec<Recorded> = fake
        .requests()
        .into_iter()
        .filter(|r| r.operation_name == "StixDomainObjects")
        .collect();
    assert_eq!(
        searches.len(),
        2,
        "the second lookups of Sofacy and nothing came from the cache"
    );
    assert_eq!(searches[0].rejected, None);
    assert_eq!(
        searches[0].variables,
        json!({"types": ["Intrusion-Set", "Malware", "Tool", "Attack-Pattern"],
               "filters": {"mode": "and", "filters": [{"key": ["name", "x_mitre_id", "aliases", "x_opencti_aliases"],
                                                        "values": ["Sofacy"]}], "filterGroups": []},
               "search": null, "first": 100, "after": null, "orderBy": null, "orderMode": null})
    );

    // A new resolver (next run) starts with an empty cache.
    let next_run = opencti.threat_resolver();
    next_run.resolve(&values(&["Sofacy"])).await;
    let count = fake
        .requests()
        .iter()
        .filter(|r| r.operation_name == "StixDomainObjects")
        .count();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn runs_wait_while_the_queue_is_over_the_threshold() {
    let fake = FakeOpenCti::start(None).await;
    // 600 MB, 550 MB, then 100 MB; threshold 500 MB.
    fake.platform.lock().unwrap().queue_sizes = vec![600e6, 550e6, 100e6];
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    let mut opencti = OpenCti::connect(&settings).await.unwrap();
    opencti.set_queue_poll_interval(Duration::from_millis(20));
    let reading = opencti.wait_for_queue_capacity().await.unwrap();
    assert_eq!(reading.size_mb, 100.0);
    assert_eq!(reading.threshold_mb, 500.0);
    let reads = fake
        .requests()
        .iter()
        .filter(|r| r.operation_name == "GetConnector" && r.rejected.is_none())
        .count();
    assert_eq!(reads, 3);
    let info = opencti.connector_info();
    assert!(!info.buffering);
    assert_eq!(info.queue_messages_size, 100.0);
    // The figures travel with the next ping, as pycti's connector info.
    opencti.ping(None).await.unwrap();
    let ping = fake.requests().pop().unwrap();
    assert_eq!(
        ping.variables["connectorInfo"]["queue_messages_size"],
        json!(100.0)
    );
    assert_eq!(ping.variables["connectorInfo"]["buffering"], json!(false));
}

#[tokio::test]
async fn a_bad_ca_file_is_a_clear_configuration_error() {
    let directory = tempfile::tempdir().unwrap();
    let ca_file = directory.path().join("ca.pem");
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let mut settings = settings(
        "https://opencti.example",
        &unique_connector_id(),
        QueueProtocol::Amqp,
    );
    settings.opencti.ca_file = Some(ca_file.clone());
    let error = OpenCti::connect(&settings).await.unwrap_err().to_string();
    assert!(error.contains("OPENCTI_CA_FILE"), "{error}");
    assert!(error.contains(&ca_file.display().to_string()), "{error}");

    settings.opencti.ca_file = Some(directory.path().join("missing.pem"));
    let error = OpenCti::connect(&settings).await.unwrap_err().to_string();
    assert!(error.contains("missing.pem"), "{error}");
}

#[tokio::test]
async fn custom_headers_are_sent_with_every_request() {
    let fake = FakeOpenCti::start(None).await;
    let mut settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Api);
    settings.opencti.custom_headers = vec![
        ("X-Tenant".into(), misp_feed::secret::Secret::new("blue")),
        ("X-Proxy-Key".into(), misp_feed::secret::Secret::new("k1")),
    ];
    let opencti = OpenCti::connect(&settings).await.unwrap();
    opencti.ping(None).await.unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 4);
    for request in seen {
        assert_eq!(
            request.headers.get("x-tenant").map(String::as_str),
            Some("blue")
        );
        assert_eq!(
            request.headers.get("x-proxy-key").map(String::as_str),
            Some("k1")
        );
        assert_eq!(
            request.headers.get("user-agent").map(String::as_str),
            Some("pycti/7.261026.0")
        );
    }
}

#[tokio::test]
async fn an_empty_bundle_is_nothing_to_import_and_is_not_sent() {
    let fake = FakeOpenCti::start(None).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Api);
    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    let sink = OpenCtiSink::new(opencti);
    let error = sink
        .push(Delivery::new(
            "5b646415-7b48-40d5-86b4-c0070acd0835",
            r#"{"type": "bundle", "id": "bundle--1", "objects": []}"#,
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Nothing to import"), "{error}");
    assert!(
        error.contains("5b646415-7b48-40d5-86b4-c0070acd0835"),
        "{error}"
    );
    let error = sink
        .push(Delivery::new("e2", "{not json"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("splitting the bundle of event e2: bundle is not valid JSON"),
        "{error}"
    );
    assert!(
        !fake
            .operation_names()
            .contains(&"StixBundlePush".to_string()),
        "nothing was pushed"
    );
}
