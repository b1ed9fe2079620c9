//! One MISP Feed run over AMQP against the fake platform and a real RabbitMQ: the GraphQL
//! operations of `transcript.jsonl` and the 1747 messages of `amqp-messages.json`.

use std::sync::Arc;

use crate::support::fixture;
use crate::support::opencti::*;
use crate::support::pycti::*;
use crate::support::rabbitmq::Broker;
use chrono::{DateTime, Utc};
use misp_feed::config::QueueProtocol;
use misp_feed::ledger::Checkpoint;
use misp_feed::opencti::{ConnectorState, OpenCti};
use misp_feed::sink::opencti::OpenCtiSink;
use misp_feed::sink::{Delivery, Destination, RunSummary, Sink};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

fn recorded_messages() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("opencti/amqp-messages.json")).unwrap())
        .unwrap()
}

#[tokio::test]
async fn amqp_run_matches_transcript_and_recorded_messages() {
    let Some(broker) = Broker::shared("amqp_run_matches_transcript_and_recorded_messages") else {
        return;
    };
    let expected = transcript("transcript.jsonl");
    let recorded = recorded_messages();
    let recorded = recorded["messages"].as_array().unwrap();
    assert_eq!(recorded.len(), 1747);

    let fake = FakeOpenCti::start(None).await;
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let settings = settings(&fake.url, &connector_id, QueueProtocol::Amqp);

    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    assert_eq!(opencti.registered_state(), None);
    let sink = OpenCtiSink::new(opencti.clone());
    let bundle = reference_bundle();
    let receipt = sink.push(Delivery::new(EVENT, bundle)).await.unwrap();
    assert_eq!(receipt.messages, 1747);
    let work_id = fake.platform.lock().unwrap().works[0].clone();
    assert_eq!(receipt.destination, Destination::Work(work_id.clone()));
    let started: DateTime<Utc> = "2026-11-28T04:06:08.010712Z".parse().unwrap();
    let state = ConnectorState::checkpoint(started, 1795838768);
    sink.finish_run(&RunSummary {
        pushed: 1,
        skipped: 0,
        failed: 0,
        checkpoint: Some(Checkpoint {
            last_event_timestamp: Some(1795838768),
            ..Checkpoint::default()
        }),
        started,
    })
    .await
    .unwrap();
    opencti.force_ping(Some(&state)).await.unwrap();
    sink.close().await;

    // GraphQL: same operations, order, texts, variable keys and headers as pycti.
    let seen = fake.requests();
    assert_matches_transcript(&seen, &expected);
    assert_eq!(
        seen[4].variables,
        json!({"id": work_id, "expectations": 1747})
    );
    assert_eq!(
        seen[6].variables["state"],
        expected[6]["variables"]["state"]
    );

    // AMQP: read the push queue back.
    let messages = broker.drain_push_queue(&connector_id).await;
    assert_eq!(messages.len(), 1747);
    let recorded_work_id = recorded[0]["envelope"]["work_id"].as_str().unwrap();
    for (index, (ours, theirs)) in messages.iter().zip(recorded).enumerate() {
        let position = index + 1;
        let (body, content) =
            check_message_against_recording(position, ours, theirs, &connector_id, &work_id);
        // Same length as pycti's body (work ids have the same shape and length).
        assert_eq!(
            ours.body.len() as u64,
            theirs["body_length"].as_u64().unwrap(),
            "message {position}"
        );
        let summary = &theirs["envelope"]["content"];
        assert_eq!(
            hex::encode(Sha256::digest(&content)),
            summary["content_sha256"].as_str().unwrap(),
            "message {position}: split bundle differs from pycti's"
        );
        // Messages 1 and 1747 were recorded byte for byte.
        if let Some(raw) = theirs.get("raw_body_utf8").and_then(Value::as_str) {
            assert_eq!(
                body,
                raw.replace(recorded_work_id, &work_id),
                "message {position} bytes"
            );
        }
    }
}

#[tokio::test]
async fn lost_work_on_add_expectations_still_publishes_as_pycti() {
    let Some(broker) = Broker::shared("lost_work_on_add_expectations_still_publishes_as_pycti")
    else {
        return;
    };
    let fake = FakeOpenCti::start(None).await;
    fake.platform.lock().unwrap().expectations_error = Some("WORK_NOT_ALIVE".into());
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let settings = settings(&fake.url, &connector_id, QueueProtocol::Amqp);
    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    let sink = OpenCtiSink::new(opencti);
    let bundle = r#"{"type": "bundle", "id": "bundle--5d0e8d39-4b69-4d4c-9a0c-1f5b7c0e3d11", "objects": [
        {"type": "identity", "spec_version": "2.1", "id": "identity--4f347cc9-4658-59ee-9707-134f434f9d1c", "name": "CIRCL", "identity_class": "organization"},
        {"type": "malware", "spec_version": "2.1", "id": "malware--1a9b1f2e-2b7c-5d8e-9f0a-1b2c3d4e5f60", "name": "x", "is_family": true, "created_by_ref": "identity--4f347cc9-4658-59ee-9707-134f434f9d1c"}]}"#;
    let receipt = sink.push(Delivery::new("e1", bundle)).await.unwrap();
    assert_eq!(receipt.messages, 2);
    sink.close().await;
    let messages = broker.drain_push_queue(&connector_id).await;
    assert_eq!(messages.len(), 2);
    let second: Value = serde_json::from_slice(&messages[1].body).unwrap();
    assert_eq!(second["action_sequence"], json!(2));
    let names = fake.operation_names();
    assert_eq!(names[3..], ["workAdd", "addExpectations"]);
}

#[tokio::test]
async fn check_reaches_the_api_and_the_broker_of_the_registration() {
    let Some(_broker) = Broker::shared("check_reaches_the_api_and_the_broker_of_the_registration")
    else {
        return;
    };
    let fake = FakeOpenCti::start(None).await;
    let settings = settings(&fake.url, &unique_connector_id(), QueueProtocol::Amqp);
    assert_eq!(
        OpenCti::check_api(&settings).await.unwrap(),
        PLATFORM_VERSION
    );
    let opencti = OpenCti::connect(&settings).await.unwrap();
    assert_eq!(
        opencti.check_broker().await.unwrap(),
        "amqp://127.0.0.1:5672//"
    );

    // A registration pointing at a port where nothing listens: the check fails, naming the
    // address and never the password.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fake.platform.lock().unwrap().broker_port = closed_port;
    let opencti = OpenCti::connect(&settings).await.unwrap();
    let error = opencti.check_broker().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("127.0.0.1:{closed_port}")),
        "{error}"
    );
    assert!(!error.contains("guest:guest"), "{error}");
}
