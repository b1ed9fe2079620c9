//! The runner for the `misp-feed` binary: a workspace (ledger, bundle folder, environment)
//! per connector, its commands and logs, and the synthetic feeds the long tests sync.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use super::FIXTURE_FEED;

/// A workspace for one connector: its ledger and bundle folder, and the environment that
/// points the binary at them and at a feed URL.
pub struct Workspace {
    pub root: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Workspace {
    pub fn new(feed_url: &str) -> Workspace {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        let env = vec![
            ("MISP_FEED_URL", feed_url.to_string()),
            (
                "MISP_FEED_LEDGER_PATH",
                p.join("ledger.sqlite").display().to_string(),
            ),
            ("CONNECTOR_SEND_TO_QUEUE", "false".into()),
            ("CONNECTOR_SEND_TO_DIRECTORY", "true".into()),
            (
                "CONNECTOR_SEND_TO_DIRECTORY_PATH",
                p.join("bundles").display().to_string(),
            ),
            ("CONNECTOR_SEND_TO_DIRECTORY_RETENTION", "0".into()),
            ("CONNECTOR_LOG_LEVEL", "info".into()),
            ("OPENCTI_JSON_LOGGING", "true".into()),
            ("MISP_FEED_IMPORT_FROM_DATE", "2010-01-01".into()),
            ("MISP_FEED_RETRY_BACKOFF", "0".into()),
            ("MISP_FEED_HTTP_RETRIES", "1".into()),
            ("MISP_FEED_READ_TIMEOUT", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Workspace { root, env }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.root.path().join("ledger.sqlite")
    }

    pub fn bundle_dir(&self) -> PathBuf {
        self.root.path().join("bundles")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_misp-feed"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(self.root.path())
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `once --json`: the run's figures.
    pub fn once(&self) -> (Value, Output) {
        let out = self.run(&["once", "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or_else(|| {
                panic!(
                    "no JSON report; status {:?}\nstdout: {stdout}\nstderr: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        (report, out)
    }

    pub fn bundle_files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.bundle_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
    }

    pub fn events_json(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["events", "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "events failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    pub fn event_status(&self, uuid: &str) -> Option<String> {
        self.events_json(&[])
            .into_iter()
            .find(|e| e["uuid"] == uuid)
            .map(|e| e["status"].as_str().unwrap().to_string())
    }

    /// The events that run `run` pushed, from their histories.
    pub fn pushed_in_run(&self, run: u64) -> std::collections::BTreeSet<String> {
        let mut pushed = std::collections::BTreeSet::new();
        for event in self.events_json(&[]) {
            let uuid = event["uuid"].as_str().unwrap();
            let out = self.run(&["show", uuid, "--json"]);
            assert!(out.status.success(), "show {uuid} failed");
            let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
            let in_run = shown["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["action"] == "pushed" && h["run_id"] == run);
            if in_run {
                pushed.insert(uuid.to_string());
            }
        }
        pushed
    }

    pub fn event_error(&self, uuid: &str) -> Option<String> {
        self.events_json(&[])
            .into_iter()
            .find(|e| e["uuid"] == uuid)
            .and_then(|e| e["last_error"].as_str().map(str::to_string))
    }
}

/// A feed folder holding only `uuids` from the fixture feed.
pub fn feed_of(uuids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE_FEED).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let mut manifest = serde_json::Map::new();
    for uuid in uuids {
        manifest.insert(uuid.to_string(), fixture[*uuid].clone());
        std::fs::copy(
            Path::new(FIXTURE_FEED).join(format!("{uuid}.json")),
            dir.path().join(format!("{uuid}.json")),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    dir
}

pub fn stderr_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The three smallest fixture events: a synthetic feed cloned from them stays light on the
/// broker (a few AMQP messages per event), so the reliability tests can afford hundreds.
pub const SMALL_FIXTURE_EVENTS: [&str; 3] = [
    "56bf399d-c46c-4fdb-a9cf-d9bb02de0b81",
    "57c4445b-c548-4654-af0b-4be3950d210f",
    "5b646415-7b48-40d5-86b4-c0070acd0835",
];

/// The title (`info`) of a synthetic event; its report in OpenCTI carries it as its name.
pub fn synthetic_event_title(uuid: &str) -> String {
    format!("synthetic event {uuid}")
}

/// Writes a feed of `count` small events (cloned from [`SMALL_FIXTURE_EVENTS`] under fresh
/// uuids, one manifest timestamp 10 s apart each) into `dir`; returns the uuids in order.
pub fn small_synthetic_feed(dir: &Path, count: usize, seed_tag: u32) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let fixture: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE_FEED).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let mut manifest = serde_json::Map::new();
    let mut uuids = Vec::new();
    for i in 0..count {
        let original = SMALL_FIXTURE_EVENTS[i % SMALL_FIXTURE_EVENTS.len()];
        let uuid = format!("{seed_tag:08x}-0000-4000-8000-{i:012x}");
        let text =
            std::fs::read_to_string(Path::new(FIXTURE_FEED).join(format!("{original}.json")))
                .unwrap()
                .replace(original, &uuid);
        // A distinct title gives each clone its own report (the report id derives from it).
        let mut event: Value = serde_json::from_str(&text).unwrap();
        event["Event"]["info"] = Value::String(synthetic_event_title(&uuid));
        std::fs::write(
            dir.join(format!("{uuid}.json")),
            serde_json::to_vec(&event).unwrap(),
        )
        .unwrap();
        let mut entry = fixture[original].clone();
        entry["info"] = Value::String(synthetic_event_title(&uuid));
        entry["timestamp"] = Value::String((1_600_000_000 + i as i64 * 10).to_string());
        manifest.insert(uuid.clone(), entry);
        uuids.push(uuid);
    }
    super::generated::write_manifest(dir, &manifest);
    uuids
}

impl Workspace {
    /// Starts the binary with its standard output and error written to
    /// `<workspace>/<name>.stdout` and `.stderr`, so a test can read the logs while it runs.
    pub fn spawn_logged(&self, name: &str, args: &[&str]) -> std::process::Child {
        let stdout =
            std::fs::File::create(self.root.path().join(format!("{name}.stdout"))).unwrap();
        let stderr =
            std::fs::File::create(self.root.path().join(format!("{name}.stderr"))).unwrap();
        self.command(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    /// What a process started by [`Workspace::spawn_logged`] wrote so far.
    pub fn log(&self, name: &str, stream: &str) -> String {
        std::fs::read_to_string(self.root.path().join(format!("{name}.{stream}")))
            .unwrap_or_default()
    }

    /// Events per status, from `events --json` (a reader: works while a run holds the lock);
    /// empty before the ledger exists.
    pub fn status_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        let out = self.run(&["events", "--json"]);
        if !out.status.success() {
            // No ledger yet: the connector has not started its first run.
            return counts;
        }
        let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        for event in events {
            *counts
                .entry(event["status"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        counts
    }

    /// Polls until `every` events are pushed, or `limit` passes; true when they are.
    pub fn wait_all_pushed(&self, every: usize, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.status_counts().get("pushed").copied().unwrap_or(0) >= every {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }
}

/// Asks a child to stop as an orchestrator does (SIGTERM) and waits for it; returns its
/// exit status, or kills it (SIGKILL) when it does not stop within `grace`.
pub fn terminate(child: &mut std::process::Child, grace: Duration) -> std::process::ExitStatus {
    // SAFETY: kill(2) on the pid of a child this process started and has not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the connector did not stop within {grace:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A small deterministic generator, seeded per run and printed, so a failure can be replayed.
pub struct Lcg(pub u64);

/// The seed in the environment variable `replay_var` (to replay a failed run), else a fresh
/// one from the clock.
pub fn seed_from_env(replay_var: &str) -> u64 {
    std::env::var(replay_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64)
        })
}

impl Lcg {
    pub fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        low + (self.0 >> 33) % (high - low)
    }
}
