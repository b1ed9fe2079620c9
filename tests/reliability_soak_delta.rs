//! Crash-consistency of the delta push: a synced feed is updated (every event gets one
//! attribute changed and one added), then `misp-feed once` is SIGKILLed at random moments
//! while it pushes the deltas into a real RabbitMQ, and restarted until a run completes. The
//! platform must end with each event's full updated bundle (the latest version of every object
//! sent, over all runs, ignoring the clock fields), each update must have gone as a delta, and
//! a further update after the crashes must still converge: had a killed run recorded hashes of
//! objects the broker never confirmed, that last delta would leave them out.
//!
//! Size: 30 events of 20 attributes and 6 kills by default; `MISP_FEED_SOAK=1` makes it 150
//! events and 12 kills.
//! `SOAK_SEED` replays a run's kill times.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::reliability_soak::{
    FETCH_CONCURRENCY, KILL_WINDOW_MS, kill_at_random_moments, run_until_clean, soak_event_delay_ms,
};
use crate::support::feed_server::FeedServer;
use crate::support::generated::write_feed;
use crate::support::opencti::{FakeOpenCti, platform_workspace, unique_connector_id};
use crate::support::rabbitmq::{Broker, message_objects};
use crate::support::soak_enabled;
use crate::support::workspace::{Lcg, Workspace, seed_from_env};
use misp_feed::reconciler::delta::VOLATILE;
use misp_feed::testsuite::generated_event;

/// A feed of `count` generated events of 20 attributes each: no object id is shared by two
/// events unless its content is the same in both (the author, markings, threats), so the
/// latest version of an object on the platform is its event's.
fn generated_feed(dir: &Path, count: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count)
        .map(|index| {
            let mut event: Value =
                serde_json::from_slice(&generated_event(20, 0xde17_0000 + index as u64)).unwrap();
            // The report's id derives from its name: each event its own.
            event["Event"]["info"] = json!(format!("generated event {index}"));
            event
        })
        .collect();
    write_feed(dir, &events)
}

/// An object as the platform keeps it: without the fields the conversion stamps from the
/// clock and without the dependency count the splitter adds to each message.
fn stable(mut object: Value) -> Value {
    let stix_type = object["type"].as_str().unwrap_or("").to_string();
    if let Some(map) = object.as_object_mut() {
        map.remove("nb_deps");
        if let Some((_, fields)) = VOLATILE.iter().find(|(t, _)| *t == stix_type) {
            for field in *fields {
                map.remove(*field);
            }
        }
    }
    object
}

/// Every event of the feed in `dir` gets its last attribute's comment changed and one
/// attribute added, and a later timestamp in its file and in the manifest, as MISP does; the
/// server serves the new files.
fn update_feed(dir: &Path, server: &FeedServer, uuids: &[String], round: u32) {
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for (index, uuid) in uuids.iter().enumerate() {
        let path = dir.join(format!("{uuid}.json"));
        let mut file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let event = &mut file["Event"];
        let timestamp = 1_700_000_000 + i64::from(round) * 1_000 + index as i64;
        let attributes = event["Attribute"].as_array_mut().unwrap();
        let last = attributes.last_mut().unwrap();
        last["comment"] = json!(format!("revised in update {round}"));
        last["timestamp"] = json!(timestamp.to_string());
        attributes.push(json!({
            "uuid": format!("5eed{round:04x}-0000-4000-8000-{index:012x}"),
            "type": "ip-dst", "category": "Network activity", "to_ids": true,
            "value": format!("198.51.{round}.{}", index % 250 + 1),
            "comment": "", "deleted": false, "timestamp": timestamp.to_string(),
            "distribution": "5", "object_relation": null,
        }));
        event["timestamp"] = json!(timestamp.to_string());
        let bytes = serde_json::to_vec(&file).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        server.write_file(&format!("{uuid}.json"), &bytes);
        manifest[uuid]["timestamp"] = json!(timestamp.to_string());
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    std::fs::write(&manifest_path, &bytes).unwrap();
    server.write_file("manifest.json", &bytes);
}

/// The latest version of each object the messages carried, in the order they were sent.
fn latest_by_id(bodies: &[Vec<u8>], into: &mut HashMap<String, Value>) {
    for body in bodies {
        for object in message_objects(body) {
            let id = object["id"].as_str().unwrap().to_string();
            into.insert(id, stable(object));
        }
    }
}

/// Asserts that the platform holds every object of each event's full bundle as converted now.
fn assert_platform_has_full_bundles(
    ws: &Workspace,
    feed: &Path,
    uuids: &[String],
    sent: &HashMap<String, Value>,
) {
    for uuid in uuids {
        let path = feed.join(format!("{uuid}.json"));
        let out = ws.run(&["convert", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle: Value = serde_json::from_slice(&out.stdout).unwrap();
        for object in bundle["objects"].as_array().unwrap() {
            let id = object["id"].as_str().unwrap();
            let expected = stable(object.clone());
            assert_eq!(
                sent.get(id),
                Some(&expected),
                "{uuid}: the platform's {id} is not the updated event's"
            );
        }
    }
}

/// For each event, the `detail` of its push records, oldest first.
fn push_details(ws: &Workspace, uuid: &str) -> Vec<String> {
    let shown: Value = serde_json::from_slice(&ws.run(&["show", uuid, "--json"]).stdout).unwrap();
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "pushed")
        .map(|h| h["detail"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn sigkill_during_delta_pushes_leaves_the_platform_with_every_updated_bundle() {
    let name = "sigkill_during_delta_pushes_leaves_the_platform_with_every_updated_bundle";
    let Some(broker) = Broker::shared(name) else {
        return;
    };
    let (events, kills_wanted) = if soak_enabled() { (150, 12) } else { (30, 6) };
    let event_delay_ms = soak_event_delay_ms(kills_wanted, events);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let connector_id = unique_connector_id();
    runtime.block_on(broker.declare_push_queue(&connector_id));
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = generated_feed(feed_root.path(), events);
    let server = FeedServer::start(feed_root.path());
    let mut ws = platform_workspace(&server.url(), &fake.url, &connector_id);
    ws.set("MISP_FEED_REFERENCE_COMPAT", "false");
    ws.set(
        "MISP_FEED_FETCH_CONCURRENCY",
        &FETCH_CONCURRENCY.to_string(),
    );

    // The first sync, whole bundles, undisturbed.
    let (first, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(first["pushed"], json!(events), "{first}");
    let mut sent: HashMap<String, Value> = HashMap::new();
    latest_by_id(
        &runtime.block_on(broker.drain_push_queue_fast(&connector_id)),
        &mut sent,
    );
    runtime.block_on(broker.declare_push_queue(&connector_id));

    // The update, pushed by runs killed at random moments, then one run to the end.
    update_feed(feed_root.path(), &server, &uuids, 1);
    server.delay_events(Duration::from_millis(event_delay_ms));
    let seed = seed_from_env("SOAK_SEED");
    println!("delta soak: {events} events, {kills_wanted} kills, seed {seed} (SOAK_SEED replays)");
    let mut rng = Lcg(seed);
    let (kills, _) = kill_at_random_moments(&ws, kills_wanted, &mut rng, KILL_WINDOW_MS);
    server.delay_events(Duration::ZERO);
    run_until_clean(&ws);
    let update_bodies = runtime.block_on(broker.drain_push_queue_fast(&connector_id));
    latest_by_id(&update_bodies, &mut sent);
    runtime.block_on(broker.declare_push_queue(&connector_id));
    assert_platform_has_full_bundles(&ws, feed_root.path(), &uuids, &sent);
    // Every update went as a delta, however many times a kill made it go again.
    for uuid in &uuids {
        let details = push_details(&ws, uuid);
        assert!(details.len() >= 2, "{uuid}: {details:?}");
        assert!(details[0].contains("full:"), "{uuid}: {details:?}");
        assert!(
            details[1..].iter().all(|d| d.contains("delta:")),
            "{uuid}: an update after the first push went whole: {details:?}"
        );
    }

    // One more update, undisturbed: its deltas rest on the hashes the killed runs recorded.
    update_feed(feed_root.path(), &server, &uuids, 2);
    let (last, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last["pushed"], json!(events), "{last}");
    let last_bodies = runtime.block_on(broker.drain_push_queue_fast(&connector_id));
    latest_by_id(&last_bodies, &mut sent);
    assert_platform_has_full_bundles(&ws, feed_root.path(), &uuids, &sent);

    let verify = ws.run(&["verify", "--json"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    println!(
        "delta soak result: {kills} SIGKILLs, {events} events, {} messages for the killed update, \
         {} for the undisturbed one",
        update_bodies.len(),
        last_bodies.len()
    );
    drop(fake);
}
