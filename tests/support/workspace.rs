//! Shared by the engine tests: a real HTTP server on 127.0.0.1 serving a feed folder, with
//! faults injected per path, and a runner for the `misp-feed` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FIXTURE_FEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/misp/feed");

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, every time.
    Status(u16),
    /// Answer with this status for the next `n` requests, then normally.
    StatusTimes(u16, usize),
    /// Wait this long before answering.
    Delay(Duration),
    /// Announce the full length, send half the body, close.
    Truncate,
    /// Serve these bytes instead of the file.
    Body(Vec<u8>),
    /// Write these bytes verbatim (status line, headers and body), then close.
    Raw(Vec<u8>),
    /// A body with no length that goes on for up to this many bytes, or until the client
    /// hangs up.
    Endless(u64),
}

pub struct FeedServer {
    pub url: String,
    pub dir: PathBuf,
    _root: tempfile::TempDir,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    /// Every request path, in order.
    pub hits: Arc<Mutex<Vec<String>>>,
    /// Delay applied to every event file (not the manifest), to make runs last.
    pub event_delay: Arc<Mutex<Option<Duration>>>,
}

impl FeedServer {
    /// Serves a copy of `feed` (so tests can change it).
    pub fn start(feed: &Path) -> FeedServer {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("feed");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(feed).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let event_delay: Arc<Mutex<Option<Duration>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (serve_dir, serve_faults, serve_hits, serve_delay) = (
            dir.clone(),
            faults.clone(),
            hits.clone(),
            event_delay.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let (d, f, h, e) = (
                        serve_dir.clone(),
                        serve_faults.clone(),
                        serve_hits.clone(),
                        serve_delay.clone(),
                    );
                    tokio::spawn(async move {
                        let _ = serve(socket, d, f, h, e).await;
                    });
                }
            });
        });
        FeedServer {
            url,
            dir,
            _root: root,
            faults,
            hits,
            event_delay,
        }
    }

    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(path.to_string(), fault);
    }

    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
    }

    pub fn manifest(&self) -> serde_json::Map<String, Value> {
        let text = std::fs::read_to_string(self.dir.join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn write_manifest(&self, manifest: &serde_json::Map<String, Value>) {
        std::fs::write(
            self.dir.join("manifest.json"),
            serde_json::to_vec(manifest).unwrap(),
        )
        .unwrap();
    }

    /// Moves one event's manifest timestamp forward.
    pub fn bump_timestamp(&self, uuid: &str, by: i64) {
        let mut manifest = self.manifest();
        let entry = manifest.get_mut(uuid).unwrap();
        let ts = match &entry["timestamp"] {
            Value::String(s) => s.parse::<i64>().unwrap(),
            Value::Number(n) => n.as_i64().unwrap(),
            other => panic!("timestamp {other}"),
        };
        entry["timestamp"] = Value::String((ts + by).to_string());
        self.write_manifest(&manifest);
    }

    pub fn event_uuids(&self) -> Vec<String> {
        let mut uuids: Vec<String> = self.manifest().keys().cloned().collect();
        uuids.sort();
        uuids
    }

    pub fn hits_for(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

async fn serve(
    mut socket: tokio::net::TcpStream,
    dir: PathBuf,
    faults: Arc<Mutex<HashMap<String, Fault>>>,
    hits: Arc<Mutex<Vec<String>>>,
    event_delay: Arc<Mutex<Option<Duration>>>,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    hits.lock().unwrap().push(path.clone());
    let fault = {
        let mut faults = faults.lock().unwrap();
        match faults.get_mut(&path) {
            Some(Fault::StatusTimes(status, n)) => {
                let status = *status;
                *n -= 1;
                if *n == 0 {
                    faults.remove(&path);
                }
                Some(Fault::Status(status))
            }
            Some(f) => Some(f.clone()),
            None => None,
        }
    };
    if path != "/manifest.json" {
        let delay = *event_delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
    let file = dir.join(path.trim_start_matches('/'));
    let body = match &fault {
        Some(Fault::Body(b)) => Some(b.clone()),
        _ => std::fs::read(&file).ok(),
    };
    match (fault, body) {
        (Some(Fault::Status(status)), _) => respond(&mut socket, status, b"injected failure").await,
        (Some(Fault::Delay(d)), body) => {
            tokio::time::sleep(d).await;
            match body {
                Some(b) => respond(&mut socket, 200, &b).await,
                None => respond(&mut socket, 404, b"not found").await,
            }
        }
        (Some(Fault::Raw(bytes)), _) => {
            socket.write_all(&bytes).await?;
            socket.flush().await
        }
        (Some(Fault::Endless(limit)), _) => {
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
                .await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0u64;
            while sent < limit {
                socket.write_all(&chunk).await?;
                sent += chunk.len() as u64;
            }
            Ok(())
        }
        (Some(Fault::Truncate), Some(body)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await?;
            socket.write_all(&body[..body.len() / 2]).await?;
            socket.flush().await?;
            Ok(())
        }
        (_, Some(body)) => respond(&mut socket, 200, &body).await,
        (_, None) => respond(&mut socket, 404, b"not found").await,
    }
}

async fn respond(
    socket: &mut tokio::net::TcpStream,
    status: u16,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}

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

    pub fn event_error(&self, uuid: &str) -> Option<String> {
        self.events_json(&[])
            .into_iter()
            .find(|e| e["uuid"] == uuid)
            .and_then(|e| e["last_error"].as_str().map(str::to_string))
    }
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
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
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

impl Lcg {
    pub fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        low + (self.0 >> 33) % (high - low)
    }
}
