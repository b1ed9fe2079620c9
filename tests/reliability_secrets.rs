//! Secrets never leave: the OpenCTI token, the AWS secret key, the feed's Authorization
//! header, a password in the feed URL and the AMQP password are set to unique markers, and
//! the binary runs at `CONNECTOR_LOG_LEVEL=debug` through runs that succeed and runs that
//! fail because of those very secrets. None of the markers may appear in standard output or
//! error, `status --json`, `events --json`, `show --json`, `verify --json`, the ledger's
//! bytes (with its WAL) or the bundle files. The ledger and the bundle files are owner-only.
//! The same holds for feed access over mutual TLS: the extra headers' values and the client
//! key file's contents, through runs and `check`s that succeed and that fail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::feed_server::{Fault, FeedServer};
use crate::support::opencti::{FakeOpenCti, TOKEN, unique_connector_id};
use crate::support::rabbitmq;
use crate::support::s3_server;
use crate::support::workspace::{Workspace, small_synthetic_feed};
use base64::Engine;

const FEED_AUTHORIZATION: &str = "Bearer feed-auth-MARKER-5d2e91";
const URL_PASSWORD: &str = "url-pass-MARKER-c41d07";
const AMQP_PASSWORD: &str = "amqp-pass-MARKER-0e77a3";
const AWS_SECRET_UNUSED: &str = "aws-secret-MARKER-91bc44";
const WRONG_TOKEN: &str = "opencti-token-MARKER-7f3a18";

/// Everything a run leaves behind that a person or a log collector could read.
struct Evidence {
    items: Vec<(String, Vec<u8>)>,
}

impl Evidence {
    fn new() -> Evidence {
        Evidence { items: Vec::new() }
    }

    fn output(&mut self, label: &str, out: &Output) {
        self.items
            .push((format!("{label} stdout"), out.stdout.clone()));
        self.items
            .push((format!("{label} stderr"), out.stderr.clone()));
    }

    /// The CLI's views of the ledger, and the ledger's own bytes.
    fn ledger_views(&mut self, ws: &Workspace, label: &str) {
        for args in [
            vec!["status", "--json"],
            vec!["status"],
            vec!["events", "--json"],
            vec!["events"],
            vec!["verify", "--json"],
        ] {
            let out = ws.run(&args);
            self.output(&format!("{label}: {}", args.join(" ")), &out);
        }
        let events = ws.run(&["events", "--json"]);
        if let Ok(list) = serde_json::from_slice::<Vec<serde_json::Value>>(&events.stdout) {
            for event in list {
                let uuid = event["uuid"].as_str().unwrap_or_default().to_string();
                let out = ws.run(&["show", &uuid, "--json"]);
                self.output(&format!("{label}: show {uuid}"), &out);
            }
        }
        for path in ledger_files(ws) {
            self.items.push((
                format!("{label}: {}", path.display()),
                std::fs::read(&path).unwrap(),
            ));
        }
        for path in ws.bundle_files() {
            self.items.push((
                format!("{label}: {}", path.display()),
                std::fs::read(&path).unwrap(),
            ));
        }
    }

    fn assert_free_of(&self, secrets: &[&str]) {
        assert!(!self.items.is_empty());
        for secret in secrets {
            for (label, bytes) in &self.items {
                let found = bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes());
                assert!(!found, "secret {secret:?} found in {label}");
            }
        }
    }
}

/// The ledger and the files SQLite keeps beside it.
fn ledger_files(ws: &Workspace) -> Vec<PathBuf> {
    let ledger = ws.ledger_path();
    let mut files = vec![ledger.clone()];
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", ledger.display()));
        if side.exists() {
            files.push(side);
        }
    }
    files
}

fn assert_owner_only(path: &Path) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "{} is readable by others: mode {:o}",
        path.display(),
        mode & 0o777
    );
}

/// The secret forms a leak could take: the text, and the Basic credentials of the URL.
fn url_secret_forms() -> Vec<String> {
    vec![
        URL_PASSWORD.to_string(),
        base64::engine::general_purpose::STANDARD.encode(format!("reader:{URL_PASSWORD}")),
    ]
}

fn opencti_workspace(feed_url: &str, fake_url: &str, connector_id: &str) -> Workspace {
    let mut ws = Workspace::new(feed_url);
    for (key, value) in [
        ("CONNECTOR_LOG_LEVEL", "debug"),
        ("OPENCTI_URL", fake_url),
        ("OPENCTI_TOKEN", TOKEN),
        ("CONNECTOR_ID", connector_id),
        ("CONNECTOR_SEND_TO_QUEUE", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "false"),
        ("CONNECTOR_QUEUE_PROTOCOL", "api"),
        ("MISP_FEED_HTTP_AUTHORIZATION_HEADER", FEED_AUTHORIZATION),
        ("AWS_ACCESS_KEY_ID", "unused-access-key"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET_UNUSED),
        ("MQ_PASS", AMQP_PASSWORD),
        ("MISP_FEED_MAX_ATTEMPTS", "1"),
    ] {
        ws.set(key, value);
    }
    ws
}

#[test]
fn secrets_stay_out_of_outputs_ledger_and_bundles_over_http_and_opencti() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = runtime.block_on(FakeOpenCti::start(None));
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), 6, 0x5ec4_e700);
    let server = FeedServer::start(feed_root.path());
    let feed_url = server
        .url()
        .replace("http://", &format!("http://reader:{URL_PASSWORD}@"));
    let mut evidence = Evidence::new();

    // 1. A run that succeeds: the feed with its header and URL password, OpenCTI's API.
    // `RUST_LOG=debug` on top: every library's debug lines too (HTTP clients, SQLite).
    let connector_id = unique_connector_id();
    let mut ws = opencti_workspace(&feed_url, &fake.url, &connector_id);
    ws.set("RUST_LOG", "debug");
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], uuids.len(), "{report}");
    let levels: std::collections::BTreeSet<String> = crate::support::workspace::stderr_lines(&out)
        .iter()
        .filter_map(|l| l["level"].as_str().map(str::to_string))
        .collect();
    assert!(
        levels.iter().any(|l| l.eq_ignore_ascii_case("debug")),
        "the run did not log at debug level: {levels:?}"
    );
    assert_eq!(
        fake.platform.lock().unwrap().pushed_bundles.len(),
        uuids.len()
    );
    evidence.output("successful OpenCTI run", &out);
    evidence.ledger_views(&ws, "after the OpenCTI run");
    for path in ledger_files(&ws) {
        assert_owner_only(&path);
    }

    // 2. Offline into the bundle folder with the same feed credentials: the bundle files
    // and the ledger are owner-only. Then the feed refuses the credentials (401) for two
    // events and fails (500) for another: failed events, errors recorded in the ledger.
    let mut offline = Workspace::new(&feed_url);
    for (key, value) in [
        ("CONNECTOR_LOG_LEVEL", "debug"),
        ("MISP_FEED_HTTP_AUTHORIZATION_HEADER", FEED_AUTHORIZATION),
        ("MISP_FEED_MAX_ATTEMPTS", "1"),
    ] {
        offline.set(key, value);
    }
    let (report, out) = offline.once();
    assert_eq!(report["pushed"], uuids.len(), "{report}");
    evidence.output("successful offline run", &out);
    assert_eq!(offline.bundle_files().len(), uuids.len());
    for path in ledger_files(&offline)
        .iter()
        .chain(offline.bundle_files().iter())
    {
        assert_owner_only(path);
    }
    server.bump_timestamp(&uuids[0], 5);
    server.bump_timestamp(&uuids[1], 5);
    server.bump_timestamp(&uuids[2], 5);
    server.fail_always(&format!("{}.json", uuids[0]), Fault::Status(401));
    server.fail_always(&format!("{}.json", uuids[1]), Fault::Status(401));
    server.fail_always(&format!("{}.json", uuids[2]), Fault::Status(500));
    let (report, out) = offline.once();
    assert_eq!(report["failed"], 3, "{report}");
    assert!(offline.event_error(&uuids[0]).is_some());
    evidence.output("feed refusing", &out);
    evidence.ledger_views(&offline, "after the feed failures");

    // 3. OpenCTI refusing the token: the start fails.
    let mut refused = opencti_workspace(&feed_url, &fake.url, &unique_connector_id());
    refused.set("OPENCTI_TOKEN", WRONG_TOKEN);
    let out = refused.run(&["once"]);
    assert!(!out.status.success(), "a wrong token must stop the run");
    evidence.output("wrong token", &out);
    let out = refused.run(&["check"]);
    evidence.output("check with the wrong token", &out);

    // 4. AMQP with the marker as the broker password (the broker refuses it, or is absent):
    // the publisher logs every refused attempt and retries for about two minutes before the
    // event is failed; 6 s of those attempts from the first one are collected, then the run is
    // stopped. (The first attempt comes once the run has registered and converted, later
    // when other tests load the machine.)
    server.clear_faults();
    let _broker_up = rabbitmq::keep_up();
    let mut amqp = opencti_workspace(&feed_url, &fake.url, &unique_connector_id());
    amqp.set("CONNECTOR_QUEUE_PROTOCOL", "amqp");
    let mut child = amqp.spawn_logged("amqp", &["once"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !amqp
        .log("amqp", "stderr")
        .contains("RabbitMQ did not confirm every message")
        && child.try_wait().unwrap().is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(6));
    let still_running = child.try_wait().unwrap().is_none();
    if still_running {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    let stderr = amqp.log("amqp", "stderr");
    assert!(
        stderr.contains("RabbitMQ did not confirm every message") || !still_running,
        "no refused broker attempt logged:\n{stderr}"
    );
    evidence
        .items
        .push(("wrong AMQP password stderr".into(), stderr.into_bytes()));
    evidence.items.push((
        "wrong AMQP password stdout".into(),
        amqp.log("amqp", "stdout").into_bytes(),
    ));
    evidence.ledger_views(&amqp, "after the AMQP failure");
    let out = amqp.run(&["check"]);
    assert!(
        !out.status.success(),
        "check must fail with a wrong broker password"
    );
    evidence.output("check with the wrong AMQP password", &out);

    let mut secrets: Vec<String> = vec![
        TOKEN.to_string(),
        WRONG_TOKEN.to_string(),
        FEED_AUTHORIZATION.to_string(),
        // The header's value without its scheme, in case only that is echoed.
        FEED_AUTHORIZATION.trim_start_matches("Bearer ").to_string(),
        AMQP_PASSWORD.to_string(),
        AWS_SECRET_UNUSED.to_string(),
    ];
    secrets.extend(url_secret_forms());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    evidence.assert_free_of(&secrets);
    println!(
        "secrets: {} outputs and files checked for {} markers",
        evidence.items.len(),
        secrets.len()
    );
}

#[test]
fn secrets_stay_out_of_outputs_and_ledger_over_s3() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(s3_server::S3Server::start());
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), 3, 0x5ec4_e753);
    runtime.block_on(async {
        let client = s3.client();
        client.create_bucket().bucket("misp").send().await.unwrap();
        for uuid in &uuids {
            let bytes = std::fs::read(feed_root.path().join(format!("{uuid}.json"))).unwrap();
            client
                .put_object()
                .bucket("misp")
                .key(format!("{uuid}.json"))
                .body(bytes.into())
                .send()
                .await
                .unwrap();
        }
    });
    let workspace = |secret: &str| {
        let mut ws = Workspace::new("unused");
        for (key, value) in [
            ("CONNECTOR_LOG_LEVEL", "debug"),
            ("MISP_FEED_SOURCE_TYPE", "s3"),
            ("MISP_FEED_BUCKET_NAME", "misp"),
            ("AWS_ENDPOINT_URL", s3.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", s3_server::REGION),
        ] {
            ws.set(key, value);
        }
        ws
    };
    let mut evidence = Evidence::new();

    // The right secret: the sync succeeds.
    let good = workspace(s3_server::SECRET_KEY);
    let (report, out) = good.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], uuids.len(), "{report}");
    evidence.output("S3 run", &out);
    evidence.ledger_views(&good, "S3 run");
    for path in ledger_files(&good).iter().chain(good.bundle_files().iter()) {
        assert_owner_only(path);
    }

    // A wrong secret: the server refuses the signature, the run fails.
    let bad = workspace(AWS_SECRET_UNUSED);
    let out = bad.run(&["once", "--json"]);
    assert!(
        !out.status.success(),
        "a wrong AWS secret must fail the run"
    );
    evidence.output("S3 wrong secret", &out);
    evidence.ledger_views(&bad, "S3 wrong secret");
    let out = bad.run(&["check"]);
    evidence.output("check with the wrong AWS secret", &out);

    evidence.assert_free_of(&[s3_server::SECRET_KEY, AWS_SECRET_UNUSED]);
    println!(
        "secrets (S3): {} outputs and files checked",
        evidence.items.len()
    );
}

const TENANT_HEADER: &str = "tenant-MARKER-a61f0c";
const API_KEY_HEADER: &str = "apikey-MARKER-3b8d27";

/// The forms a leaked PEM key could take: its whole text and each line of its body.
fn key_secret_forms(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(FeedServer::tls_file(name)).unwrap();
    let mut forms: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_string)
        .collect();
    assert!(!forms.is_empty(), "{name} has no body");
    forms.push(text);
    forms
}

#[test]
fn feed_access_secrets_stay_out_of_debug_logs_check_and_the_ledger() {
    let feed_root = tempfile::tempdir().unwrap();
    let uuids = small_synthetic_feed(feed_root.path(), 4, 0x5ec4_e7a0);
    let server = FeedServer::start_mutual_tls(feed_root.path());
    let cert = FeedServer::tls_file("client.pem");
    let tls_path = |name: &str| FeedServer::tls_file(name).display().to_string();
    let mut ws = Workspace::new(&server.url());
    for (key, value) in [
        ("CONNECTOR_LOG_LEVEL", "debug".to_string()),
        ("RUST_LOG", "debug".to_string()),
        ("MISP_FEED_MAX_ATTEMPTS", "1".to_string()),
        ("MISP_FEED_CA_BUNDLE", tls_path("ca.pem")),
        ("MISP_FEED_CLIENT_CERT", tls_path("client.pem")),
        ("MISP_FEED_CLIENT_KEY", tls_path("client.key")),
        (
            "MISP_FEED_HTTP_HEADERS",
            format!("X-Tenant:{TENANT_HEADER};X-Api-Key:{API_KEY_HEADER}"),
        ),
    ] {
        ws.set(key, &value);
    }
    let mut evidence = Evidence::new();

    // 1. A run through mutual TLS with the headers, every library logging at debug level.
    let (report, out) = ws.once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["pushed"], uuids.len(), "{report}");
    let debug_lines = crate::support::workspace::stderr_lines(&out)
        .iter()
        .filter(|l| {
            l["level"]
                .as_str()
                .is_some_and(|l| l.eq_ignore_ascii_case("debug"))
        })
        .count();
    assert!(debug_lines > 0, "the run did not log at debug level");
    // The secrets were in use: every request carried the header values.
    assert_eq!(server.requests().len(), uuids.len() + 1);
    for request in server.requests() {
        assert_eq!(request.header("x-tenant"), Some(TENANT_HEADER));
        assert_eq!(request.header("x-api-key"), Some(API_KEY_HEADER));
    }
    evidence.output("mutual TLS run", &out);

    // 2. `check` reports the feed with its access: the certificate's path, the header names.
    let out = ws.run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "feed: ok (HTTP feed {} (client certificate {}; headers X-Tenant, X-Api-Key))",
            server.url(),
            cert.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("MISP_FEED_HTTP_HEADERS = X-Tenant;X-Api-Key (values hidden)"),
        "{stdout}"
    );
    evidence.output("check", &out);

    // 3. The feed failing an event (retried, then recorded as failed).
    server.bump_timestamp(&uuids[0], 5);
    server.fail_always(&format!("{}.json", uuids[0]), Fault::Status(500));
    let (report, out) = ws.once();
    assert_eq!(report["failed"], 1, "{report}");
    evidence.output("feed failing an event", &out);
    evidence.ledger_views(&ws, "after the mutual TLS runs");
    server.clear_faults();

    // 4. No client certificate: the server refuses the handshake; `once` and `check` say so.
    let mut anonymous = Workspace::new(&server.url());
    anonymous.env = ws
        .env
        .iter()
        .filter(|(k, _)| !k.starts_with("MISP_FEED_CLIENT_") && k != "MISP_FEED_LEDGER_PATH")
        .cloned()
        .collect();
    anonymous.set(
        "MISP_FEED_LEDGER_PATH",
        &anonymous.ledger_path().display().to_string(),
    );
    let out = anonymous.run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("feed: FAILED") && stdout.contains("the server refused the TLS handshake"),
        "{stdout}"
    );
    evidence.output("check without a client certificate", &out);
    let out = anonymous.run(&["once", "--json"]);
    evidence.output("run without a client certificate", &out);

    // 5. The key of another certificate: start-up stops naming both files.
    let mut mismatched = Workspace::new(&server.url());
    mismatched.env = anonymous.env.clone();
    mismatched.set("MISP_FEED_CLIENT_CERT", &tls_path("client.pem"));
    mismatched.set("MISP_FEED_CLIENT_KEY", &tls_path("client-rsa.key"));
    let out = mismatched.run(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success()
            && stdout.contains("the private key does not belong to the certificate"),
        "{stdout}"
    );
    evidence.output("check with a mismatched key", &out);
    let out = mismatched.run(&["once"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("MISP_FEED_CLIENT_KEY"), "{stderr}");
    evidence.output("run with a mismatched key", &out);

    let mut secrets: Vec<String> = vec![TENANT_HEADER.to_string(), API_KEY_HEADER.to_string()];
    secrets.extend(key_secret_forms("client.key"));
    secrets.extend(key_secret_forms("client-rsa.key"));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    evidence.assert_free_of(&secrets);
    println!(
        "feed access secrets: {} outputs and files checked for {} markers",
        evidence.items.len(),
        secrets.len()
    );
}
