//! The command line an operator and a script can trust: distinct exit codes, a closed
//! output pipe that ends a command quietly, resets that say what they will do, and what an
//! interrupted run leaves behind cleaned up at the next start.

use std::io::Read;
use std::process::Stdio;

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::{Fault, FeedServer};
use crate::support::workspace::Workspace;

const EVENT: &str = "5b646415-7b48-40d5-86b4-c0070acd0835";

fn synced() -> (FeedServer, Workspace) {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    let (_, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (server, ws)
}

#[test]
fn usage_errors_failed_events_and_problems_have_distinct_exit_codes() {
    let (server, ws) = synced();
    for usage in [
        vec!["events", "--no-such-flag"],
        vec!["events", "--since", "yesterday-ish"],
        vec!["events", "--status", "sent"],
        vec!["reset", "--all"],
        vec!["no-such-command"],
    ] {
        let out = ws.run(&usage);
        assert_eq!(out.status.code(), Some(64), "{usage:?}: {out:?}");
    }
    assert_eq!(ws.run(&["verify"]).status.code(), Some(0));
    assert_eq!(ws.run(&["--help"]).status.code(), Some(0));

    server.fail_always(&format!("{EVENT}.json"), Fault::Status(500));
    server.bump_timestamp(EVENT, 60);
    let (_, out) = ws.once();
    assert_eq!(out.status.code(), Some(2), "a run with a failed event");

    let out = ws.run(&["show", "00000000-0000-4000-8000-000000000000"]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "an unknown event is a usage error"
    );
    let mut broken = Workspace::new(&server.url());
    broken.set(
        "MISP_FEED_LEDGER_PATH",
        "/proc/no-ledger-can-be-here/ledger.sqlite",
    );
    assert_eq!(
        broken.run(&["once"]).status.code(),
        Some(1),
        "a command that cannot work"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    let (_server, ws) = synced();
    for args in [
        vec!["events"],
        vec!["events", "--json"],
        vec!["status"],
        vec!["show", EVENT],
    ] {
        let mut child = ws
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes: `misp-feed events | head -0`.
        drop(child.stdout.take());
        let mut errors = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut errors)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {errors}");
        assert!(!errors.contains("panicked"), "{args:?}: {errors}");
    }
}

#[test]
fn reset_says_what_it_will_do_and_an_event_no_longer_listed_is_named() {
    let (server, ws) = synced();
    let out = ws.run(&["reset", "--all", "--yes"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("9 event record(s) forgotten"), "{said}");
    assert!(
        said.contains("imports again every event the feed lists from 2010-01-01"),
        "{said}"
    );
    assert!(
        said.contains("wins over the state stored on the platform"),
        "{said}"
    );
    let (again, _) = ws.once();
    assert_eq!(again["pushed"], 9, "{again}");

    let mut manifest = server.manifest();
    manifest.remove(EVENT);
    server.write_manifest(&manifest);
    let (_, out) = ws.once();
    assert!(out.status.success());
    let out = ws.run(&["reset", "--event", EVENT]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("the feed no longer lists it"), "{said}");
    let out = ws.run(&["reset", "--event", "5a3c2fcd-8328-42bb-a95e-4f4402de0b81"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("will be imported again by the next run"),
        "{said}"
    );
}

#[test]
fn half_written_bundle_files_of_an_interrupted_run_are_removed_at_start() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    std::fs::create_dir_all(ws.bundle_dir()).unwrap();
    let ours = ws
        .bundle_dir()
        .join("misp_feed-20261129-120000-1795000000.0000000001.json.tmp");
    let foreign = ws.bundle_dir().join("another_connector-1.json.tmp");
    std::fs::write(&ours, b"{\"half\":").unwrap();
    std::fs::write(&foreign, b"{").unwrap();
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], 9);
    assert!(!ours.exists(), "our half-written file is still there");
    assert!(foreign.exists(), "another connector's file was removed");
}
