//! Each command needs only the configuration it uses, through the real binary: `convert` in an
//! empty folder with no environment at all, and the ledger commands (`status`, `events`,
//! `show`, `verify`) with nothing but the ledger's path, from the environment or from a
//! `config.yml` holding only `misp_feed.ledger_path`.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::FIXTURE_FEED;
use crate::support::workspace::Workspace;
use serde_json::Value;

const EVENT: &str = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";

/// The binary in `dir`, with exactly `env` as its environment.
fn run_bare(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_misp-feed"));
    command.env_clear().current_dir(dir).args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

fn count_of_type(bundle: &Value, kind: &str) -> usize {
    bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|object| object["type"] == kind)
        .count()
}

#[test]
fn convert_works_in_an_empty_folder_with_no_environment() {
    let empty = tempfile::tempdir().unwrap();
    let event = Path::new(FIXTURE_FEED).join(format!("{EVENT}.json"));
    let event = event.to_str().unwrap();

    let bundle = stdout_json(&run_bare(empty.path(), &[], &["convert", event]));
    assert_eq!(bundle["type"], "bundle");
    assert_eq!(count_of_type(&bundle, "report"), 1, "one report per event");
    assert_eq!(
        count_of_type(&bundle, "indicator"),
        0,
        "indicators are off by default"
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "convert writes nothing (no ledger)"
    );

    // The conversion options are read; what only a sync needs, broken or not, is not.
    let with_indicators = stdout_json(&run_bare(
        empty.path(),
        &[
            ("MISP_FEED_CREATE_INDICATORS", "true"),
            ("MISP_FEED_URL", "ftp://not-a-feed.example"),
            ("OPENCTI_URL", "not a url"),
        ],
        &["convert", event],
    ));
    assert!(count_of_type(&with_indicators, "indicator") > 0);

    // A bad conversion option still stops it, in one line naming the variable and the value.
    let out = run_bare(
        empty.path(),
        &[("MISP_FEED_CREATE_INDICATORS", "perhaps")],
        &["convert", event],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("MISP_FEED_CREATE_INDICATORS") && stderr.contains("perhaps"),
        "{stderr}"
    );
}

/// A ledger written by a real `once` run over the fixture feed, and its events.
fn synced_ledger() -> (Workspace, Vec<String>) {
    let ws = Workspace::new(FIXTURE_FEED);
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut uuids: Vec<String> = ws
        .events_json(&[])
        .iter()
        .map(|event| event["uuid"].as_str().unwrap().to_string())
        .collect();
    uuids.sort();
    assert_eq!(report["pushed"], uuids.len(), "{report}");
    assert!(uuids.contains(&EVENT.to_string()));
    (ws, uuids)
}

/// `status`, `events`, `show` and `verify` in `dir` with `env` only: each answers about the
/// ledger of the run.
fn ledger_commands_answer(dir: &Path, env: &[(&str, &str)], ledger: &Path, uuids: &[String]) {
    let status = stdout_json(&run_bare(dir, env, &["status", "--json"]));
    assert_eq!(status["ledger"], ledger.display().to_string());
    assert_eq!(status["events"]["pushed"], uuids.len(), "{status}");

    let events = stdout_json(&run_bare(dir, env, &["events", "--json"]));
    let mut listed: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["uuid"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, uuids);

    let shown = stdout_json(&run_bare(dir, env, &["show", EVENT, "--json"]));
    assert_eq!(shown["event"]["uuid"], EVENT);
    assert_eq!(shown["event"]["status"], "pushed");

    let verify = stdout_json(&run_bare(dir, env, &["verify", "--json"]));
    assert_eq!(verify["problems"], serde_json::json!([]), "{verify}");
}

#[test]
fn ledger_commands_work_with_only_the_ledger_path_in_the_environment() {
    let (ws, uuids) = synced_ledger();
    let ledger = ws.ledger_path();
    let elsewhere = tempfile::tempdir().unwrap();
    let env = [("MISP_FEED_LEDGER_PATH", ledger.to_str().unwrap())];
    ledger_commands_answer(elsewhere.path(), &env, &ledger, &uuids);

    // A sync needs more, and says what, in one line.
    let out = run_bare(elsewhere.path(), &env, &["once"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing MISP_FEED_URL") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}

#[test]
fn ledger_commands_work_with_a_config_file_holding_only_the_ledger_path() {
    let (ws, uuids) = synced_ledger();
    let ledger = ws.ledger_path();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(
        folder.path().join("config.yml"),
        format!("misp_feed:\n  ledger_path: '{}'\n", ledger.display()),
    )
    .unwrap();
    ledger_commands_answer(folder.path(), &[], &ledger, &uuids);

    // The same file given with --config, from another folder.
    let other = tempfile::tempdir().unwrap();
    let config = folder.path().join("config.yml");
    let status = stdout_json(&run_bare(
        other.path(),
        &[],
        &["status", "--json", "--config", config.to_str().unwrap()],
    ));
    assert_eq!(status["events"]["pushed"], uuids.len());
}

#[test]
fn check_shows_every_option_read_with_its_secrets_hidden() {
    let folder = tempfile::tempdir().unwrap();
    let out = run_bare(
        folder.path(),
        &[
            ("MISP_FEED_URL", FIXTURE_FEED),
            ("CONNECTOR_SEND_TO_QUEUE", "false"),
            ("CONNECTOR_SEND_TO_DIRECTORY", "true"),
            ("CONNECTOR_SEND_TO_DIRECTORY_PATH", "bundles"),
            ("MQ_PASS", "mq-password-7f3"),
            ("MQ_HOST", "broker.internal"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-7f3"),
            ("AWS_ACCESS_KEY_ID", "AKIA-7f3"),
        ],
        &["check"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "configuration: ok",
        "  MQ_HOST = broker.internal",
        "  MQ_PASS = <set>",
        "  AWS_SECRET_ACCESS_KEY = <set>",
        "  AWS_ACCESS_KEY_ID = <set>",
        "  MISP_FEED_LEDGER_PATH = misp-feed-ledger.sqlite",
        "feed: ok",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "no {line:?} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("7f3"), "{stdout}");
}
