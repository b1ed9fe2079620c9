//! Log lines: pycti's JSON shape, the level filter, plain lines, and no secret at debug level.

use std::collections::HashMap;

use chrono::Utc;
use misp_feed::config::Settings;
use misp_feed::telemetry::{LogCapture, logging_subscriber, parse_level};
use serde_json::{Value, json};

fn capture(json: bool, level: &str, body: impl FnOnce()) -> LogCapture {
    let logs = LogCapture::new();
    let dispatch = logging_subscriber(json, level, "MISP Feed (test)", logs.writer()).unwrap();
    tracing::dispatcher::with_default(&dispatch, body);
    logs
}

#[test]
fn json_lines_have_pyctis_keys_in_pyctis_order() {
    let logs = capture(true, "info", || {
        let span = tracing::info_span!("run", run_id = 7_u64);
        let _entered = span.enter();
        tracing::info!(
            event_uuid = "5f1e-aa",
            objects = 12_u64,
            pushed = true,
            "Event pushed"
        );
        tracing::warn!("Feed slow");
    });
    let lines = logs.json_lines();
    assert_eq!(lines.len(), 2, "{}", logs.text());

    let first = lines[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["timestamp", "level", "name", "message", "attributes"]
    );
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["name"], "MISP Feed (test)");
    assert_eq!(first["message"], "Event pushed");
    assert_eq!(
        first["attributes"],
        json!({"run_id": 7, "event_uuid": "5f1e-aa", "objects": 12, "pushed": true})
    );
    // pycti's timestamp: UTC, microseconds, a trailing Z.
    let timestamp = first["timestamp"].as_str().unwrap();
    let parsed =
        chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.6fZ").unwrap();
    assert!((Utc::now().naive_utc() - parsed).num_seconds().abs() < 60);
    assert_eq!(timestamp.len(), "2026-01-01T00:00:00.000000Z".len());

    // Python's level name, and the run's span fields still attached.
    assert_eq!(lines[1]["level"], "WARNING");
    assert_eq!(lines[1]["attributes"], json!({"run_id": 7}));
}

#[test]
fn a_line_without_fields_has_no_attributes_key() {
    let logs = capture(true, "info", || tracing::error!("Cannot reach the feed"));
    let lines = logs.json_lines();
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["timestamp", "level", "name", "message"]);
    assert_eq!(lines[0]["level"], "ERROR");
}

#[test]
fn level_filter_follows_connector_log_level() {
    let emit = || {
        tracing::debug!("d");
        tracing::info!("i");
        tracing::warn!("w");
        tracing::error!("e");
    };
    let levels = |level: &str| -> Vec<String> {
        capture(true, level, emit)
            .json_lines()
            .iter()
            .map(|line| line["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(levels("debug"), ["d", "i", "w", "e"]);
    assert_eq!(levels("INFO"), ["i", "w", "e"]);
    assert_eq!(levels("warning"), ["w", "e"]);
    assert_eq!(levels("warn"), ["w", "e"]);
    assert_eq!(levels("error"), ["e"]);
    assert!(parse_level("loud").is_err());
    assert!(logging_subscriber(true, "loud", "x", LogCapture::new().writer()).is_err());
}

#[test]
fn other_crates_are_quieter_than_ours() {
    let logs = capture(true, "debug", || {
        tracing::debug!(target: "hyper::proto", "library chatter");
        tracing::warn!(target: "hyper::proto", "library warning");
        tracing::debug!("our detail");
    });
    let messages: Vec<Value> = logs
        .json_lines()
        .iter()
        .map(|l| l["message"].clone())
        .collect();
    assert_eq!(messages, [json!("library warning"), json!("our detail")]);
}

#[test]
fn plain_lines_when_json_logging_is_off() {
    let logs = capture(false, "info", || {
        tracing::info!(event_uuid = "abc", "Event pushed")
    });
    let text = logs.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        serde_json::from_str::<Value>(text.trim()).is_err(),
        "not JSON: {text}"
    );
    assert!(
        text.contains("INFO")
            && text.contains("Event pushed")
            && text.contains("event_uuid=\"abc\""),
        "{text}"
    );
}

#[test]
fn no_secret_is_logged_even_at_debug() {
    let secrets = [
        "opencti-TOKEN-x1",
        "Basic c2VjcmV0OnB3",
        "aws-SECRET-x3",
        "hdr-SECRET-x4",
        "url-PASS-x5",
    ];
    let env: HashMap<String, String> = [
        ("OPENCTI_URL", "http://opencti:8080".to_string()),
        ("OPENCTI_TOKEN", secrets[0].to_string()),
        (
            "CONNECTOR_ID",
            "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11".to_string(),
        ),
        ("CONNECTOR_LOG_LEVEL", "debug".to_string()),
        (
            "MISP_FEED_URL",
            format!("https://reader:{}@feed.example/", secrets[4]),
        ),
        (
            "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
            secrets[1].to_string(),
        ),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE".to_string()),
        ("AWS_SECRET_ACCESS_KEY", secrets[2].to_string()),
        ("OPENCTI_CUSTOM_HEADERS", format!("X-Key:{}", secrets[3])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = Settings::load_from(&env, None, Utc::now()).unwrap();
    let logs = capture(true, &settings.connector.log_level, || {
        tracing::debug!(settings = ?settings, "Loaded settings");
        tracing::debug!(summary = %settings.redacted_summary(), "Configuration");
        tracing::debug!(token = ?settings.opencti.token, header = ?settings.misp_feed.http_authorization_header, "Auth");
        tracing::info!(feed = ?settings.misp_feed, aws = ?settings.aws, opencti = ?settings.opencti, "Sources");
    });
    let text = logs.text();
    assert_eq!(logs.json_lines().len(), 4, "{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("Secret(***)"), "{text}");
}
