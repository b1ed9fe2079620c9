//! Each event's log line (level, message, keys) and the metrics it moves.

use serde_json::{Value, json};

use super::*;
use crate::ledger::RunId;
use crate::telemetry::{LogCapture, logging_subscriber};

/// The JSON lines `event` logs at debug level, and the registry it updated, as text.
fn emitted(event: impl InternalEvent) -> (Vec<Value>, Metrics) {
    let metrics = Metrics::new();
    let logs = LogCapture::new();
    let dispatch = logging_subscriber(true, "debug", "test", logs.writer()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || event.emit_to(&metrics));
    (logs.json_lines(), metrics)
}

/// The value of one series (`name{labels}` exactly as exposed).
fn sample(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn outcome(metrics: &Metrics, outcome: &str) -> f64 {
    sample(
        metrics,
        &format!("misp_feed_event_outcomes_total{{outcome=\"{outcome}\"}}"),
    )
}

#[test]
fn event_pushed_logs_its_decision_and_counts_bundle_records_and_latency() {
    let (lines, metrics) = emitted(EventPushed {
        uuid: "5f1e0000-aaaa-4bbb-8ccc-000000000001",
        reason: "new",
        objects: 12,
        total: 12,
        destination: "work_1",
        latency: Duration::from_millis(20),
    });
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(
        lines[0]["message"],
        "event 5f1e0000-aaaa-4bbb-8ccc-000000000001 pushed (12 objects)"
    );
    assert_eq!(
        lines[0]["attributes"],
        json!({"event": "5f1e0000-aaaa-4bbb-8ccc-000000000001", "decision": "pushed",
               "reason": "new", "objects": 12, "destination": "work_1"})
    );
    assert_eq!(sample(&metrics, "bundles_sent_total"), 1.0);
    assert_eq!(sample(&metrics, "records_sent_total"), 12.0);
    assert_eq!(outcome(&metrics, "pushed"), 1.0);
    assert_eq!(outcome(&metrics, "failed"), 0.0);
    assert_eq!(
        sample(
            &metrics,
            "misp_feed_push_duration_seconds_bucket{le=\"0.025\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "misp_feed_push_duration_seconds_bucket{le=\"0.01\"}"
        ),
        0.0
    );
}

#[test]
fn event_failed_counts_a_fetch_error_only_at_the_fetch_stage() {
    for (stage, fetch_errors) in [("fetch", 1.0), ("convert", 0.0)] {
        let (lines, metrics) = emitted(EventFailed {
            uuid: "u1",
            stage,
            status: "gave_up",
            reason: "HTTP 404",
            source: "url",
        });
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(
            lines[0]["message"],
            format!("event u1 failed at {stage}: HTTP 404")
        );
        assert_eq!(
            lines[0]["attributes"],
            json!({"event": "u1", "decision": "failed", "stage": stage,
                   "status": "gave_up", "reason": "HTTP 404"})
        );
        assert_eq!(outcome(&metrics, "failed"), 1.0);
        assert_eq!(
            sample(&metrics, "misp_feed_fetch_errors_total{source=\"url\"}"),
            fetch_errors
        );
        assert_eq!(sample(&metrics, "bundles_sent_total"), 0.0);
    }
}

#[test]
fn skips_log_their_reason_and_count_as_the_run_report_does() {
    let cases = [
        (
            Skip::Unchanged,
            "unchanged",
            Some("event u2 unchanged"),
            json!({"event": "u2", "decision": "skipped", "reason": "unchanged"}),
        ),
        (
            Skip::TooOld,
            "skipped",
            None,
            json!({"event": "u2", "decision": "skipped", "reason": "older than the import floor"}),
        ),
        (
            Skip::SameContent {
                object: "feed/a.json",
            },
            "unchanged",
            Some("event u2 unchanged (same content)"),
            json!({"event": "u2", "object": "feed/a.json", "decision": "skipped",
                   "reason": "content unchanged"}),
        ),
        (
            Skip::Other("backing off"),
            "skipped",
            Some("event u2 skipped: backing off"),
            json!({"event": "u2", "decision": "skipped", "reason": "backing off"}),
        ),
    ];
    for (why, counted_as, message, attributes) in cases {
        let (lines, metrics) = emitted(EventSkipped { uuid: "u2", why });
        assert_eq!(lines.len(), 1);
        let expected_level = if message.is_some() { "INFO" } else { "DEBUG" };
        assert_eq!(lines[0]["level"], expected_level, "{attributes}");
        assert_eq!(lines[0]["message"], message.unwrap_or(""));
        assert_eq!(lines[0]["attributes"], attributes);
        assert_eq!(outcome(&metrics, counted_as), 1.0, "{attributes}");
        let others: f64 = other_outcomes(counted_as)
            .map(|other| outcome(&metrics, other))
            .sum();
        assert_eq!(others, 0.0, "{attributes}");
    }
}

fn other_outcomes(outcome: &str) -> impl Iterator<Item = &'static str> + '_ {
    crate::telemetry::EVENT_OUTCOMES
        .into_iter()
        .filter(move |candidate| *candidate != outcome)
}

#[test]
fn s3_objects_log_their_key() {
    let (lines, metrics) = emitted(ObjectSkipped { key: "feed/b.json" });
    assert_eq!(lines[0]["message"], "object feed/b.json unchanged");
    assert_eq!(lines[0]["attributes"]["reason"], "unchanged ETag");
    assert_eq!(outcome(&metrics, "unchanged"), 1.0);

    let (lines, metrics) = emitted(ObjectFailed {
        key: "feed/c.json",
        stage: "parse",
        reason: &"not JSON",
        source: "s3",
    });
    assert_eq!(lines[0]["level"], "ERROR");
    assert_eq!(lines[0]["message"], "object feed/c.json failed: not JSON");
    assert_eq!(
        lines[0]["attributes"],
        json!({"object": "feed/c.json", "decision": "failed", "stage": "parse",
               "reason": "not JSON"})
    );
    assert_eq!(outcome(&metrics, "failed"), 1.0);
    assert_eq!(
        sample(&metrics, "misp_feed_fetch_errors_total{source=\"s3\"}"),
        0.0
    );
}

#[test]
fn a_run_sets_the_state_and_its_end_counts_and_times_it() {
    let (lines, metrics) = emitted(RunStarted {
        run_id: RunId(4),
        source: "local:feed",
    });
    assert_eq!(lines[0]["message"], "run started");
    assert_eq!(
        lines[0]["attributes"],
        json!({"run": 4, "source": "local:feed"})
    );
    assert_eq!(sample(&metrics, "state{state=\"running\"}"), 1.0);
    assert_eq!(sample(&metrics, "runs_total"), 0.0);

    let (lines, metrics) = emitted(RunFinished {
        run_id: RunId(4),
        pushed: 3,
        unchanged: 2,
        skipped: 1,
        failed: 0,
        duration_ms: 2400,
        elapsed: Duration::from_millis(2500),
        message: "3 event(s) pushed",
    });
    assert_eq!(lines[0]["message"], "run finished: 3 event(s) pushed");
    assert_eq!(
        lines[0]["attributes"],
        json!({"run": 4, "pushed": 3, "unchanged": 2, "skipped": 1, "failed": 0,
               "duration_ms": 2400})
    );
    assert_eq!(sample(&metrics, "runs_total"), 1.0);
    assert_eq!(sample(&metrics, "state{state=\"idle\"}"), 1.0);
    assert_eq!(sample(&metrics, "misp_feed_last_run_duration_seconds"), 2.5);
    let ended = sample(&metrics, "misp_feed_last_run_end_timestamp_seconds");
    assert!((chrono::Utc::now().timestamp() as f64 - ended).abs() < 60.0);
    assert_eq!(sample(&metrics, "errors_total"), 0.0);
}

#[test]
fn a_failed_run_counts_an_error_and_a_listing_failure_as_a_fetch_error() {
    for (listing_source, fetch_errors) in [(Some("url"), 1.0), (None, 0.0)] {
        let (lines, metrics) = emitted(RunFailed {
            run_id: RunId(9),
            error: &"ledger is locked",
            listing_source,
            elapsed: Duration::from_secs(1),
        });
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0]["message"], "run failed");
        assert_eq!(
            lines[0]["attributes"],
            json!({"run": 9, "error": "ledger is locked"})
        );
        assert_eq!(sample(&metrics, "errors_total"), 1.0);
        assert_eq!(sample(&metrics, "runs_total"), 1.0);
        assert_eq!(sample(&metrics, "state{state=\"idle\"}"), 1.0);
        assert_eq!(
            sample(&metrics, "misp_feed_fetch_errors_total{source=\"url\"}"),
            fetch_errors
        );
    }
}

#[test]
fn pings_are_counted_and_failures_logged_with_what_failed() {
    let (lines, metrics) = emitted(PingSent);
    assert!(lines.is_empty());
    assert_eq!(sample(&metrics, "ping_api_total"), 1.0);
    assert_eq!(sample(&metrics, "ping_api_errors_total"), 0.0);

    for (ping, message) in [
        (
            Ping::Heartbeat,
            "ping to OpenCTI failed; retrying at the next beat",
        ),
        (
            Ping::FinalState,
            "could not send the connector state to OpenCTI",
        ),
    ] {
        let (lines, metrics) = emitted(PingFailed {
            ping,
            error: &"connection refused",
        });
        assert_eq!(lines[0]["level"], "ERROR");
        assert_eq!(lines[0]["message"], message);
        assert_eq!(lines[0]["attributes"]["error"], "connection refused");
        assert_eq!(sample(&metrics, "ping_api_errors_total"), 1.0);
    }
}

#[test]
fn emit_moves_the_process_wide_registry() {
    let before = sample(&metrics(), "client_errors_total");
    let failures = || sample(&metrics(), "ping_api_errors_total");
    let failures_before = failures();
    PingFailed {
        ping: Ping::Heartbeat,
        error: &"x",
    }
    .emit();
    assert!(failures() > failures_before);
    // Other counters are untouched.
    assert_eq!(sample(&metrics(), "client_errors_total"), before);
}

#[test]
fn a_wait_for_the_memory_budget_is_logged_and_counted_and_running_alone_is_said() {
    let (lines, metrics) = emitted(MemoryBudgetWait {
        what: "5f1e0000-aaaa-4bbb-8ccc-000000000003",
        needed_mb: 300,
        budget_mb: 1024,
        waited: Some(Duration::from_millis(1500)),
        alone: false,
    });
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(
        lines[0]["message"],
        "event 5f1e0000-aaaa-4bbb-8ccc-000000000003 waited 1500 ms for about 300 MB of the memory budget of 1024 MB (MISP_FEED_MEMORY_BUDGET_MB)"
    );
    assert_eq!(
        lines[0]["attributes"],
        json!({"event": "5f1e0000-aaaa-4bbb-8ccc-000000000003", "needed_mb": 300,
               "budget_mb": 1024, "waited": true, "waited_ms": 1500})
    );
    assert_eq!(sample(&metrics, "misp_feed_memory_budget_waits_total"), 1.0);

    // Too large for the budget, admitted at once (nothing else was in flight): said, not
    // counted as a wait.
    let (lines, metrics) = emitted(MemoryBudgetWait {
        what: "big-object.json",
        needed_mb: 4400,
        budget_mb: 1024,
        waited: None,
        alone: true,
    });
    assert_eq!(lines.len(), 1);
    let message = lines[0]["message"].as_str().unwrap();
    assert!(
        message.contains("needs about 4400 MB, more than the memory budget of 1024 MB")
            && message.contains("it runs alone"),
        "{message}"
    );
    assert_eq!(lines[0]["attributes"]["waited"], false);
    assert_eq!(sample(&metrics, "misp_feed_memory_budget_waits_total"), 0.0);
}
