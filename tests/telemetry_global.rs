//! The process-wide logger, checked in a child process (it can be installed once per process):
//! JSON lines on stderr, nothing on stdout, and a second installation refused.

use misp_feed::telemetry::{TelemetryError, init_logging_named};

use crate::support::child;

/// Runs only inside the child started by `installs_the_json_logger_on_stderr`.
#[test]
#[ignore = "run by installs_the_json_logger_on_stderr in a child process"]
fn child_installs_and_logs() {
    if !child::is_child("child_installs_and_logs") {
        return;
    }
    init_logging_named(true, "info", "Child connector").unwrap();
    tracing::debug!("hidden at info");
    tracing::info!(event = "5f1e", decision = "pushed", "event pushed");
    assert!(matches!(
        init_logging_named(false, "debug", "again"),
        Err(TelemetryError::AlreadyInitialised)
    ));
}

#[test]
fn installs_the_json_logger_on_stderr() {
    let output = child::run(module_path!(), "child_installs_and_logs", |command| {
        command.env_remove("RUST_LOG");
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["name"], "Child connector");
    assert_eq!(lines[0]["message"], "event pushed");
    assert_eq!(lines[0]["attributes"]["decision"], "pushed");
    assert!(
        !stdout.contains("event pushed"),
        "logs go to stderr only: {stdout}"
    );
}
