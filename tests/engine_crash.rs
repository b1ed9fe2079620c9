//! Crash consistency: the binary is killed with SIGKILL in the middle of syncs, then
//! restarted until a run completes. In the end every qualifying event is delivered, the
//! ledger passes `PRAGMA integrity_check`, and no event is marked pushed without its file.

use std::path::Path;
use std::time::Duration;

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::FeedServer;
use crate::support::workspace::{Lcg, Workspace, seed_from_env};
use serde_json::{Map, Value, json};

/// Builds a feed of `count` events cloned from the fixtures under fresh uuids.
pub fn synthetic_feed(dir: &Path, count: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let fixture: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE_FEED).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let originals: Vec<(String, Value)> = fixture.into_iter().collect();
    let mut manifest = Map::new();
    let mut uuids = Vec::new();
    for i in 0..count {
        let (original, entry) = &originals[i % originals.len()];
        let uuid = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            0x5eed_0000u32 + i as u32,
            i
        );
        let text =
            std::fs::read_to_string(Path::new(FIXTURE_FEED).join(format!("{original}.json")))
                .unwrap()
                .replace(original.as_str(), &uuid);
        std::fs::write(dir.join(format!("{uuid}.json")), text).unwrap();
        let mut entry = entry.clone();
        entry["timestamp"] = json!((1_600_000_000 + i as i64 * 10).to_string());
        manifest.insert(uuid.clone(), entry);
        uuids.push(uuid);
    }
    crate::support::generated::write_manifest(dir, &manifest);
    uuids
}

#[test]
fn sigkill_mid_run_then_restart_delivers_everything_and_keeps_the_ledger_sound() {
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = synthetic_feed(feed_root.path(), 60);
    let server = FeedServer::start(feed_root.path());
    server.delay_events(Duration::from_millis(25));
    let ws = Workspace::new(&server.url());

    let seed = seed_from_env("CRASH_SEED");
    println!("crash test seed: {seed} (set CRASH_SEED to replay)");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = ws.command(&["once"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.next_in(30, 500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed mid-way; the test proved nothing"
    );

    let mut finished = false;
    for _ in 0..5 {
        let (report, out) = ws.once();
        if out.status.success() && report["failed"] == 0 {
            finished = true;
            break;
        }
    }
    assert!(finished, "no clean run after the crashes");

    let conn = rusqlite::Connection::open(ws.ledger_path()).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let events = ws.events_json(&[]);
    for uuid in &uuids {
        let record = events
            .iter()
            .find(|e| e["uuid"] == uuid.as_str())
            .unwrap_or_else(|| panic!("{uuid} missing from the ledger"));
        assert_eq!(record["status"], "pushed", "{uuid}: {record}");
    }
    // No event is pushed without its file, and each file is complete JSON.
    let mut destinations = std::collections::HashSet::new();
    for record in &events {
        if record["status"] == "pushed" {
            let dest = record["destination"].as_str().unwrap();
            let bytes = std::fs::read(dest).unwrap_or_else(|e| panic!("{dest}: {e}"));
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{dest}: {e}"));
            assert_eq!(v["bundle"]["type"], "bundle");
            assert!(
                destinations.insert(dest.to_string()),
                "{dest} recorded twice"
            );
        }
    }
    // The ledger's own consistency check agrees.
    let verify = ws.run(&["verify", "--json"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let verify: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(verify["integrity"], "ok");
    assert_eq!(verify["pushed_events"], uuids.len());
    assert_eq!(verify["problems"], json!([]));

    // Re-pushes are bounded by what was in flight at each kill (fetch concurrency 4).
    let files = ws.bundle_files().len();
    assert!(files >= uuids.len());
    assert!(
        files <= uuids.len() + kills * 4,
        "{files} files for {} events after {kills} kills",
        uuids.len()
    );
    println!(
        "{kills} kills, {} events, {files} bundle files",
        uuids.len()
    );
}
