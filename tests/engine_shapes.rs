//! The shapes MISP writes, through the binary on an HTTP feed: events whose galaxy `meta`
//! values are lists (MISP's exports) or texts (the galaxy's JSON), whose tag lists are objects
//! keyed by index, or that carry numbers where MISP writes texts, are all imported in both
//! modes, none fails; input left beside `Event` is named in a warning line.

use serde_json::{Value, json};

use crate::support::feed_server::FeedServer;
use crate::support::workspace::{Workspace, stderr_lines};

const SHAPES: [&str; 4] = [
    "galaxies-as-exported",
    "galaxies-as-galaxy-json",
    "other-writers",
    "php-arrays",
];

/// A feed of the shape fixtures, one with attributes moved beside its `Event` as some tools
/// write it; returns the feed folder and the uuid of that one.
fn shapes_feed() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let fixtures =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shapes/events");
    let mut manifest = serde_json::Map::new();
    let mut beside = String::new();
    for (index, name) in SHAPES.iter().enumerate() {
        let mut file: Value =
            serde_json::from_slice(&std::fs::read(fixtures.join(format!("{name}.json"))).unwrap())
                .unwrap();
        if index == 0 {
            let moved = file["Event"]["Attribute"].as_array().unwrap()[..1].to_vec();
            file["Attribute"] = Value::Array(moved);
            beside = file["Event"]["uuid"].as_str().unwrap().to_string();
        }
        let event = &file["Event"];
        let uuid = event["uuid"].as_str().unwrap().to_string();
        manifest.insert(
            uuid.clone(),
            json!({"timestamp": event["timestamp"], "info": event["info"]}),
        );
        std::fs::write(
            dir.path().join(format!("{uuid}.json")),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    (dir, beside)
}

#[test]
fn every_shape_misp_writes_is_imported_in_both_modes() {
    let (feed, beside) = shapes_feed();
    let server = FeedServer::start(feed.path());
    for compat in ["true", "false"] {
        let mut ws = Workspace::new(&server.url());
        ws.set("MISP_FEED_REFERENCE_COMPAT", compat);
        ws.set("MISP_FEED_CREATE_INDICATORS", "true");
        ws.set("MISP_FEED_CREATE_OBSERVABLES", "true");
        let (report, out) = ws.once();
        assert!(
            out.status.success(),
            "compat {compat}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            report["pushed"],
            json!(SHAPES.len()),
            "compat {compat}: {report}"
        );
        assert_eq!(report["failed"], 0, "compat {compat}: {report}");
        let warnings: Vec<String> = stderr_lines(&out)
            .into_iter()
            .filter(|line| line["level"] == "WARN" || line["level"] == "WARNING")
            .filter_map(|line| line["message"].as_str().map(str::to_string))
            .collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&beside) && w.contains("Attribute (1 item) is beside Event")),
            "compat {compat}: {warnings:?}"
        );
    }
}
