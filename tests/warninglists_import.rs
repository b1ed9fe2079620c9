//! Warninglists at import, through the binary on a real HTTP feed: a value on a list keeps its
//! observable but makes no indicator, the event's record says how many and on which list,
//! compat mode ignores the lists, and a broken list folder stops the run before anything is
//! recorded.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::feed_server::FeedServer;
use crate::support::workspace::{Workspace, stderr_lines};

const EVENT: &str = "7a1b2c3d-0000-4000-8000-00000000a11e";
const RFC1918: &str = "List of RFC 1918 CIDR blocks";

fn lists_folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warninglists")
}

fn attribute(uuid_tail: u32, kind: &str, value: &str, to_ids: bool) -> Value {
    json!({
        "uuid": format!("7a1b2c3d-0000-4000-8000-{uuid_tail:012x}"),
        "type": kind,
        "category": "Network activity",
        "value": value,
        "to_ids": to_ids,
        "comment": "",
        "timestamp": "1700000000",
        "deleted": false,
    })
}

/// A feed of one event: two private addresses (on the RFC 1918 list), one on the multicast
/// list, and a public address and a domain on no list.
fn write_feed(dir: &Path) {
    let event = json!({"Event": {
        "uuid": EVENT,
        "info": "warninglist test event",
        "date": "2023-11-14",
        "timestamp": "1700000000",
        "publish_timestamp": "1700000000",
        "published": true,
        "analysis": "2",
        "threat_level_id": "2",
        "distribution": "3",
        "Orgc": {"name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
        "Tag": [{"name": "tlp:white"}],
        "Attribute": [
            attribute(1, "ip-dst", "10.1.2.3", true),
            attribute(2, "ip-src", "192.168.7.9", false),
            attribute(3, "ip-dst", "224.0.0.251", true),
            attribute(4, "ip-dst", "45.77.12.34", true),
            attribute(5, "domain", "bad-actor-infra.net", true),
        ],
    }});
    let manifest = json!({EVENT: {
        "info": "warninglist test event",
        "Orgc": {"name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
        "Tag": [{"name": "tlp:white"}],
        "date": "2023-11-14",
        "analysis": 2,
        "threat_level_id": 2,
        "timestamp": 1700000000,
    }});
    std::fs::write(
        dir.join(format!("{EVENT}.json")),
        serde_json::to_vec(&event).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}

fn bundle_objects(ws: &Workspace) -> Vec<Value> {
    let files = ws.bundle_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    bundle["bundle"]["objects"].as_array().unwrap().clone()
}

fn indicator_patterns(objects: &[Value]) -> Vec<String> {
    let mut patterns: Vec<String> = objects
        .iter()
        .filter(|o| o["type"] == "indicator")
        .map(|o| o["pattern"].as_str().unwrap().to_string())
        .collect();
    patterns.sort();
    patterns
}

fn observable_values(objects: &[Value]) -> Vec<String> {
    let mut values: Vec<String> = objects
        .iter()
        .filter(|o| o["type"] == "ipv4-addr" || o["type"] == "domain-name")
        .map(|o| o["value"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    values
}

fn workspace(server: &FeedServer) -> Workspace {
    let mut ws = Workspace::new(&server.url());
    ws.set(
        "MISP_FEED_WARNINGLISTS_PATH",
        lists_folder().to_str().unwrap(),
    );
    ws.set("MISP_FEED_CREATE_INDICATORS", "true");
    ws.set("MISP_FEED_CREATE_OBSERVABLES", "true");
    ws
}

#[test]
fn listed_values_keep_their_observable_but_make_no_indicator_and_the_record_says_so() {
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    let server = FeedServer::start(feed.path());
    let ws = workspace(&server);
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 1, "{report}");

    let objects = bundle_objects(&ws);
    assert_eq!(
        indicator_patterns(&objects),
        vec![
            "[domain-name:value = 'bad-actor-infra.net']".to_string(),
            "[ipv4-addr:value = '45.77.12.34']".to_string(),
        ],
        "only values on no list become indicators"
    );
    assert_eq!(
        observable_values(&objects),
        vec![
            "10.1.2.3",
            "192.168.7.9",
            "224.0.0.251",
            "45.77.12.34",
            "bad-actor-infra.net"
        ],
        "every value keeps its observable"
    );

    // The record of the push says how many attributes each list held back.
    let shown: Value = serde_json::from_slice(&ws.run(&["show", EVENT, "--json"]).stdout).unwrap();
    let pushed = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "pushed")
        .and_then(|h| h["detail"].as_str())
        .unwrap()
        .to_string();
    assert!(
        pushed.contains("3 attribute(s) on warninglists made no indicator"),
        "{pushed}"
    );
    assert!(pushed.contains(&format!("{RFC1918} (2)")), "{pushed}");
    // The run's log carries the same, once, for the event.
    let lines = stderr_lines(&out);
    let logged: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("on warninglists made no indicator"))
        })
        .collect();
    assert_eq!(logged.len(), 1, "{lines:?}");
    assert_eq!(logged[0]["attributes"]["attributes"], 3, "{:?}", logged[0]);
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("warninglist(s) loaded"))),
        "the start-up line says the lists were loaded"
    );
}

#[test]
fn compat_mode_ignores_the_lists_and_says_so() {
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    let server = FeedServer::start(feed.path());
    let mut ws = workspace(&server);
    ws.set("MISP_FEED_REFERENCE_COMPAT", "true");
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 1, "{report}");
    assert_eq!(indicator_patterns(&bundle_objects(&ws)).len(), 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MISP_FEED_WARNINGLISTS_PATH is ignored with MISP_FEED_REFERENCE_COMPAT"),
        "{stderr}"
    );
}

#[test]
fn a_broken_list_stops_the_run_naming_the_file_before_anything_is_recorded() {
    let feed = tempfile::tempdir().unwrap();
    write_feed(feed.path());
    let lists = tempfile::tempdir().unwrap();
    let broken = lists.path().join("lists/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("list.json"),
        r#"{"name": "Broken", "type": "string", "list": "not a list"}"#,
    )
    .unwrap();
    let server = FeedServer::start(feed.path());
    let mut ws = workspace(&server);
    ws.set(
        "MISP_FEED_WARNINGLISTS_PATH",
        lists.path().to_str().unwrap(),
    );
    let out = ws.run(&["once"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MISP_FEED_WARNINGLISTS_PATH") && stderr.contains("broken"),
        "the error names the option and the list file: {stderr}"
    );
    assert!(ws.bundle_files().is_empty());
    assert_eq!(
        ws.event_status(EVENT),
        None,
        "nothing recorded for the event"
    );

    // `check` reports the same problem among the dependencies.
    let check = ws.run(&["check"]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("warninglists: FAILED")),
        "{stdout}"
    );
    assert!(!check.status.success());
}

/// Writes `lists/<name>/list.json` in MISP's format.
fn write_list(root: &Path, name: &str, kind: &str, entries: &[&str], types: &[&str]) {
    let folder = root.join("lists").join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let list = json!({
        "name": name, "type": kind, "version": 1, "description": "written by the test",
        "list": entries, "matching_attributes": types,
    });
    std::fs::write(folder.join("list.json"), serde_json::to_vec(&list).unwrap()).unwrap();
}

#[test]
fn lists_of_every_kind_written_by_hand_hold_back_their_values_only() {
    let feed = tempfile::tempdir().unwrap();
    let attributes = vec![
        attribute(1, "domain", "cdn.trusted-vendor.example", true),
        attribute(
            2,
            "url",
            "https://updates.trusted-vendor.example/x.bin",
            true,
        ),
        attribute(3, "md5", "D41D8CD98F00B204E9800998ECF8427E", true),
        attribute(4, "email-src", "abuse@provider.example", true),
        attribute(5, "domain", "internal-sinkhole.example", true),
        attribute(6, "domain", "evil-c2-node.example", true),
        attribute(7, "ip-dst", "203.0.113.9", true),
    ];
    let mut event: Value = serde_json::from_slice(&{
        write_feed(feed.path());
        std::fs::read(feed.path().join(format!("{EVENT}.json"))).unwrap()
    })
    .unwrap();
    event["Event"]["Attribute"] = Value::Array(attributes);
    std::fs::write(
        feed.path().join(format!("{EVENT}.json")),
        serde_json::to_vec(&event).unwrap(),
    )
    .unwrap();
    let lists = tempfile::tempdir().unwrap();
    write_list(
        lists.path(),
        "vendor hosts",
        "hostname",
        &["trusted-vendor.example"],
        &["domain", "url"],
    );
    write_list(
        lists.path(),
        "empty files",
        "string",
        &["d41d8cd98f00b204e9800998ecf8427e"],
        &["md5"],
    );
    write_list(
        lists.path(),
        "abuse mailboxes",
        "regex",
        &["/^abuse@/i"],
        &["email-src"],
    );
    write_list(lists.path(), "sinkholes", "substring", &["sinkhole"], &[]);
    // A list for another type only: the address is not held back.
    write_list(
        lists.path(),
        "documentation nets",
        "cidr",
        &["203.0.113.0/24"],
        &["ip-src"],
    );

    let server = FeedServer::start(feed.path());
    let mut ws = workspace(&server);
    ws.set(
        "MISP_FEED_WARNINGLISTS_PATH",
        lists.path().to_str().unwrap(),
    );
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 1, "{report}");
    let patterns = indicator_patterns(&bundle_objects(&ws));
    assert_eq!(
        patterns,
        vec![
            "[domain-name:value = 'evil-c2-node.example']".to_string(),
            "[ipv4-addr:value = '203.0.113.9']".to_string(),
        ]
    );
    let shown: Value = serde_json::from_slice(&ws.run(&["show", EVENT, "--json"]).stdout).unwrap();
    let history = shown["history"].to_string();
    for expected in [
        "5 attribute(s) on warninglists made no indicator",
        "abuse mailboxes (1)",
        "empty files (1)",
        "sinkholes (1)",
        "vendor hosts (2)",
    ] {
        assert!(history.contains(expected), "{expected}: {history}");
    }
}
