//! The harness the integration tests share: the fakes and servers they run against, the
//! RabbitMQ access, the runner for the `misp-feed` binary, the gate for outside services
//! and tools, and the way to run a test body in a process of its own.

pub mod child;
pub mod feed_server;
pub mod generated;
pub mod opencti;
pub mod pycti;
pub mod rabbitmq;
pub mod s3_server;
pub mod services;
pub mod workspace;

use std::path::{Path, PathBuf};

/// The fixture feed: a manifest and nine MISP events.
pub const FIXTURE_FEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/misp/feed");

/// The fixture feed's folder.
pub fn fixture_feed() -> PathBuf {
    PathBuf::from(FIXTURE_FEED)
}

/// The fixture manifest's keys, read straight from the file, sorted.
pub fn fixture_uuids() -> Vec<String> {
    let text = std::fs::read_to_string(fixture_feed().join("manifest.json")).unwrap();
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<String> = manifest.keys().cloned().collect();
    keys.sort();
    keys
}

/// `MISP_FEED_SOAK=1` (set by `.ci/run`): the long versions of the reliability tests.
pub fn soak_enabled() -> bool {
    std::env::var("MISP_FEED_SOAK").is_ok_and(|v| v == "1")
}

/// A file or folder under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}
