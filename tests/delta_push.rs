//! The delta push through the binary: an updated event sends only what changed (and its
//! report); over its pushes the platform gets exactly the updated event's full bundle; a reset
//! brings back a full push; and through RabbitMQ the messages shrink with the bundle.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::generated::OneEventFeed;
use crate::support::opencti::{FakeOpenCti, platform_workspace, unique_connector_id};
use crate::support::rabbitmq::Broker;
use crate::support::workspace::Workspace;
use misp_feed::reconciler::delta::VOLATILE;

/// The full profile: indicators and observables make an event of N attributes several N
/// objects.
fn full_profile(ws: &mut Workspace) {
    for (key, value) in [
        ("MISP_FEED_CREATE_INDICATORS", "true"),
        ("MISP_FEED_CREATE_OBSERVABLES", "true"),
        ("MISP_FEED_CREATE_OBJECT_OBSERVABLES", "true"),
    ] {
        ws.set(key, value);
    }
}

fn bundle_objects(path: &Path) -> Vec<Value> {
    let file: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    file["bundle"]["objects"].as_array().unwrap().clone()
}

/// An object without the fields the conversion fills from the clock.
fn stable(object: &Value) -> Value {
    let mut object = object.clone();
    let stix_type = object["type"].as_str().unwrap_or("").to_string();
    if let Some((_, fields)) = VOLATILE.iter().find(|(t, _)| *t == stix_type)
        && let Some(map) = object.as_object_mut()
    {
        for field in *fields {
            map.remove(*field);
        }
    }
    object
}

fn by_id(objects: &[Value]) -> HashMap<String, Value> {
    objects
        .iter()
        .map(|o| (o["id"].as_str().unwrap().to_string(), stable(o)))
        .collect()
}

fn history_details(ws: &Workspace, uuid: &str) -> Vec<String> {
    let shown: Value = serde_json::from_slice(&ws.run(&["show", uuid, "--json"]).stdout).unwrap();
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "pushed")
        .map(|h| h["detail"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_update_pushes_only_what_changed_and_the_platform_ends_with_the_full_bundle() {
    let mut feed = OneEventFeed::new(2_000, 7);
    let mut ws = Workspace::new(&feed.url());
    full_profile(&mut ws);
    let (first, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(first["pushed"], 1);
    let full = ws.bundle_files();
    assert_eq!(full.len(), 1);
    let first_objects = bundle_objects(&full[0]);
    assert!(
        first_objects.len() > 4_000,
        "{} objects",
        first_objects.len()
    );

    feed.update();
    let (second, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(second["pushed"], 1);
    let files = ws.bundle_files();
    let delta_file = files.iter().find(|f| !full.contains(f)).unwrap();
    let delta_objects = bundle_objects(delta_file);
    assert!(
        delta_objects.len() <= 40,
        "the update sent {} objects",
        delta_objects.len()
    );
    assert!(delta_objects.iter().any(|o| o["type"] == "report"));

    // Latest version of each object over both pushes = the updated event's full bundle.
    let mut platform = by_id(&first_objects);
    platform.extend(by_id(&delta_objects));
    let updated = feed.dir.path().join(format!("{}.json", feed.uuid));
    let converted = ws.run(&["convert", &updated.display().to_string()]);
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let bundle: Value = serde_json::from_slice(&converted.stdout).unwrap();
    let expected = by_id(bundle["objects"].as_array().unwrap());
    for (id, object) in &expected {
        assert_eq!(
            platform.get(id),
            Some(object),
            "{id} differs on the platform"
        );
    }
    // What the platform holds beyond it is what the update removed (here: nothing).
    assert_eq!(platform.len(), expected.len());

    let details = history_details(&ws, &feed.uuid);
    assert!(
        details[0].ends_with(&format!("full: {} objects", first_objects.len())),
        "{details:?}"
    );
    assert!(
        details[1].ends_with(&format!(
            "delta: {} of {} objects",
            delta_objects.len(),
            expected.len()
        )),
        "{details:?}"
    );

    // An operator's reset brings back a full push.
    assert!(ws.run(&["reset", "--event", &feed.uuid]).status.success());
    let (third, _) = ws.once();
    assert_eq!(third["pushed"], 1);
    let newest = ws
        .bundle_files()
        .into_iter()
        .find(|f| !files.contains(f))
        .unwrap();
    assert_eq!(bundle_objects(&newest).len(), expected.len());
    assert!(history_details(&ws, &feed.uuid)[2].contains("full:"));
}

#[test]
fn with_the_delta_push_off_or_in_reference_compat_mode_every_push_is_full() {
    for (key, value) in [
        ("MISP_FEED_DELTA_PUSH", "false"),
        ("MISP_FEED_REFERENCE_COMPAT", "true"),
    ] {
        let mut feed = OneEventFeed::new(200, 7);
        let mut ws = Workspace::new(&feed.url());
        full_profile(&mut ws);
        ws.set(key, value);
        ws.once();
        let total = bundle_objects(&ws.bundle_files()[0]).len();
        feed.update();
        ws.once();
        let files = ws.bundle_files();
        assert_eq!(files.len(), 2);
        let sizes: Vec<usize> = files.iter().map(|f| bundle_objects(f).len()).collect();
        assert!(
            sizes.iter().all(|n| *n >= total),
            "{key}={value}: {sizes:?}"
        );
    }
}

#[test]
fn changed_conversion_options_bring_back_a_full_push() {
    let mut feed = OneEventFeed::new(300, 7);
    let mut ws = Workspace::new(&feed.url());
    full_profile(&mut ws);
    ws.once();
    ws.set("MISP_FEED_CREATE_TAGS_AS_LABELS", "false");
    feed.update();
    let (report, _) = ws.once();
    assert_eq!(report["pushed"], 1);
    assert!(history_details(&ws, &feed.uuid)[1].contains("full:"));
}

#[test]
fn through_rabbitmq_the_update_costs_only_its_messages() {
    let Some(broker) = Broker::shared("through_rabbitmq_the_update_costs_only_its_messages") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    runtime.block_on(broker.declare_push_queue(&connector_id));
    let mut feed = OneEventFeed::new(2_000, 7);
    let mut ws = platform_workspace(&feed.url(), &fake.url, &connector_id);
    ws.set("MISP_FEED_REFERENCE_COMPAT", "false");
    let (first, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(first["pushed"], 1);
    let full_messages = runtime
        .block_on(broker.drain_push_queue_fast(&connector_id))
        .len();
    assert!(full_messages > 4_000, "{full_messages} messages");
    runtime.block_on(broker.declare_push_queue(&connector_id));

    feed.update();
    let (second, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(second["pushed"], 1);
    let delta_messages = runtime
        .block_on(broker.drain_push_queue_fast(&connector_id))
        .len();
    assert!(
        (1..=40).contains(&delta_messages),
        "the update cost {delta_messages} messages (the full bundle {full_messages})"
    );
    // The ledger's count of confirmed messages is the broker's.
    let events = ws.events_json(&[]);
    assert_eq!(events[0]["messages"], json!(delta_messages));
}
