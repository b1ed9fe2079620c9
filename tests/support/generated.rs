//! Feeds made of events from the repo's generator (`misp_feed::testsuite::generated_event`),
//! written as a feed folder (event files and `manifest.json`), and MISP-like updates of them.

use std::path::Path;

use serde_json::{Value, json};

use misp_feed::testsuite::generated_event;

/// Writes `events` (each `{"Event": {...}}`) as a feed folder in `dir`: one file per event and
/// a manifest listing each with its timestamp and title. Returns the events' uuids.
pub fn write_feed(dir: &Path, events: &[Value]) -> Vec<String> {
    let mut manifest = serde_json::Map::new();
    let mut uuids = Vec::new();
    for event in events {
        let uuid = event["Event"]["uuid"].as_str().unwrap().to_string();
        std::fs::write(
            dir.join(format!("{uuid}.json")),
            serde_json::to_vec(event).unwrap(),
        )
        .unwrap();
        let entry =
            json!({"timestamp": event["Event"]["timestamp"], "info": event["Event"]["info"]});
        manifest.insert(uuid.clone(), entry);
        uuids.push(uuid);
    }
    write_manifest(dir, &manifest);
    uuids
}

/// Writes a feed folder's `manifest.json` (event uuid -> its entry).
pub fn write_manifest(dir: &Path, manifest: &serde_json::Map<String, Value>) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(manifest).unwrap(),
    )
    .unwrap();
}

/// A feed folder holding one generated event, which can be updated as MISP updates events.
pub struct OneEventFeed {
    pub dir: tempfile::TempDir,
    pub event: Value,
    pub uuid: String,
}

impl OneEventFeed {
    pub fn new(attributes: usize, seed: u64) -> OneEventFeed {
        let event: Value = serde_json::from_slice(&generated_event(attributes, seed)).unwrap();
        let uuid = event["Event"]["uuid"].as_str().unwrap().to_string();
        let feed = OneEventFeed {
            dir: tempfile::tempdir().unwrap(),
            event,
            uuid,
        };
        feed.write();
        feed
    }

    fn write(&self) {
        write_feed(self.dir.path(), std::slice::from_ref(&self.event));
    }

    /// One attribute changed (its comment, which its indicator and observable carry) and one
    /// attribute added, with a later timestamp on both and on the event, as a MISP update does.
    pub fn update(&mut self) {
        let event = &mut self.event["Event"];
        let attributes = event["Attribute"].as_array_mut().unwrap();
        let changed = attributes
            .iter_mut()
            .find(|a| a["type"] == "domain")
            .unwrap();
        changed["comment"] = json!("seen again in a later campaign");
        changed["timestamp"] = json!("1600000500");
        attributes.push(json!({
            "type": "ip-dst", "category": "Network activity", "to_ids": true,
            "uuid": "6b000000-0000-4000-8000-0000000000ee", "timestamp": "1600000500",
            "comment": "", "deleted": false, "value": "198.51.100.77",
            "object_relation": null, "first_seen": null, "last_seen": null,
            "distribution": "5", "sharing_group_id": "0", "disable_correlation": false,
            "object_id": "0", "event_id": "1234", "id": "9999999"
        }));
        event["timestamp"] = json!("1600000500");
        self.write();
    }

    /// The feed's location, as `MISP_FEED_URL` takes it.
    pub fn url(&self) -> String {
        self.dir.path().display().to_string()
    }
}
