//! RabbitMQ goes away in the middle of a push (`rabbitmqctl stop_app` / `start_app`): the
//! push either completes with every message confirmed and in the queue, or fails; it never
//! reports success for messages the broker did not confirm.
//!
//! One test function on purpose: it stops the shared broker, so it holds the broker alone
//! (no other test uses it meanwhile) for its whole length.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::opencti::{FakeOpenCti, settings, unique_connector_id};
use crate::support::rabbitmq::{BrokerAlone, endpoint};
use misp_feed::config::QueueProtocol;
use misp_feed::opencti::OpenCti;
use misp_feed::opencti::broker::{BrokerError, PublishTarget};
use misp_feed::sink::opencti::OpenCtiSink;
use misp_feed::sink::opencti::amqp::{AmqpPublisher, RetryPolicy};
use misp_feed::sink::{Delivery, Sink, SinkError};
use serde_json::Value;

fn patient_policy() -> RetryPolicy {
    RetryPolicy {
        window: 512,
        max_failed_rounds: 30,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        confirm_timeout: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_push_never_reports_unconfirmed_messages_as_pushed() {
    let Some(broker) =
        BrokerAlone::claim("broker_restart_mid_push_never_reports_unconfirmed_messages_as_pushed")
    else {
        return;
    };

    // Phase 1: the app stops while messages are in flight and comes back 2 s later.
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let publisher = Arc::new(AmqpPublisher::new(
        endpoint(),
        PublishTarget {
            exchange: "amqp.worker.exchange".into(),
            routing_key: format!("push_routing_{connector_id}"),
        },
        patient_policy(),
    ));
    let total = 60_000usize;
    let padding = "x".repeat(400);
    let bodies: Vec<String> = (0..total)
        .map(|index| format!(r#"{{"index": {index}, "padding": "{padding}"}}"#))
        .collect();
    let pushing = {
        let publisher = publisher.clone();
        tokio::spawn(async move { publisher.publish_all(&bodies).await })
    };
    // Wait until the push is well under way, then pull the broker from under it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let depth = broker.queue_depth(&connector_id).await.unwrap_or(0);
        if depth as usize >= total / 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the push never started");
        assert!(
            !pushing.is_finished(),
            "push finished before the broker could be stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped_mid_push = !pushing.is_finished();
    assert!(
        tokio::task::block_in_place(|| broker.stop()),
        "cannot stop RabbitMQ"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        tokio::task::block_in_place(|| broker.start()),
        "cannot start RabbitMQ again"
    );
    let outcome = pushing.await.unwrap();
    let in_queue = broker.drain_push_queue(&connector_id).await;
    let indexes: BTreeSet<u64> = in_queue
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_slice(&m.body).unwrap();
            body["index"].as_u64().unwrap()
        })
        .collect();
    match outcome {
        Ok(confirmed) => {
            assert_eq!(confirmed, total);
            assert_eq!(
                indexes.len(),
                total,
                "Ok was returned but only {} distinct messages are in the queue",
                indexes.len()
            );
        }
        Err(error) => {
            eprintln!("push failed after the restart (allowed): {error}");
            assert!(matches!(error, BrokerError::Unconfirmed { .. }));
        }
    }
    assert!(
        stopped_mid_push,
        "the broker stopped only after the push finished"
    );
    assert!(
        publisher.broken_links() >= 1,
        "the publisher never saw the broker go away"
    );
    publisher.close().await;

    // Phase 2: the broker stays down for the whole push: the push fails (the ledger keeps
    // the event for the next run); once the broker is back the same push succeeds.
    let fake = FakeOpenCti::start(None).await;
    let connector_id = unique_connector_id();
    broker.declare_push_queue(&connector_id).await;
    let settings = settings(&fake.url, &connector_id, QueueProtocol::Amqp);
    let opencti = Arc::new(OpenCti::connect(&settings).await.unwrap());
    let sink = OpenCtiSink::with_retry_policy(
        opencti,
        RetryPolicy {
            max_failed_rounds: 3,
            initial_backoff: Duration::from_millis(100),
            ..patient_policy()
        },
    );
    let bundle = r#"{"type": "bundle", "id": "bundle--5d0e8d39-4b69-4d4c-9a0c-1f5b7c0e3d11", "objects": [{"type": "identity", "spec_version": "2.1", "id": "identity--4f347cc9-4658-59ee-9707-134f434f9d1c", "name": "CIRCL", "identity_class": "organization"}]}"#;
    let delivery = Delivery::new("5a3c2fcd-8328-42bb-a95e-4f4402de0b81", bundle);
    // A first push opens the connection the outage will break.
    sink.push(delivery.clone()).await.unwrap();
    assert!(
        tokio::task::block_in_place(|| broker.stop()),
        "cannot stop RabbitMQ"
    );
    let failed = sink.push(delivery.clone()).await;
    assert!(
        tokio::task::block_in_place(|| broker.start()),
        "cannot start RabbitMQ again"
    );
    match failed {
        Err(SinkError::Broker(message)) => {
            assert!(message.contains("0 of 1 messages confirmed"), "{message}");
            assert!(!message.contains("guest:guest"), "{message}");
        }
        other => panic!("push with the broker down must fail, got {other:?}"),
    }
    let receipt = sink.push(delivery).await.unwrap();
    assert_eq!(receipt.messages, 1);
    sink.close().await;
    let in_queue = broker.drain_push_queue(&connector_id).await;
    assert_eq!(
        in_queue.len(),
        2,
        "the first and the last push are in the queue"
    );
}
