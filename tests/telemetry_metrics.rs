//! Metrics: pycti's names, labels and types and ours in Prometheus text, values that move, the
//! namespace prefix, and start-up from the settings. The HTTP side is in `telemetry_endpoint`.

use std::sync::Arc;
use std::time::Duration;

use crate::support::child;
use crate::telemetry_support::{bucket, parse};
use misp_feed::telemetry::{ConnectorState, EVENT_OUTCOMES, Metrics, PUSH_LATENCY_BUCKETS};

/// pycti's `OpenCTIMetricHandler` counters, as exposed (`_total` included).
const PYCTI_COUNTERS: [&str; 7] = [
    "bundles_sent_total",
    "records_sent_total",
    "runs_total",
    "ping_api_total",
    "ping_api_errors_total",
    "errors_total",
    "client_errors_total",
];

#[test]
fn fresh_registry_exposes_every_pycti_metric_at_zero() {
    let (samples, types) = parse(&Metrics::new().render());
    for name in PYCTI_COUNTERS {
        assert_eq!(samples[name], 0.0, "{name}");
        assert_eq!(types[name], "counter");
    }
    // pycti's `state` is a Python Enum: a gauge per state, 1 for the current one.
    assert_eq!(types["state"], "gauge");
    assert_eq!(samples["state{state=\"idle\"}"], 1.0);
    assert_eq!(samples["state{state=\"running\"}"], 0.0);
    assert_eq!(samples["state{state=\"stopped\"}"], 0.0);

    assert_eq!(types["misp_feed_events"], "gauge");
    for status in ["pending", "in_flight", "pushed", "failed", "gave_up"] {
        assert_eq!(
            samples[&format!("misp_feed_events{{status=\"{status}\"}}")],
            0.0
        );
    }
    assert_eq!(types["misp_feed_event_outcomes_total"], "counter");
    for outcome in EVENT_OUTCOMES {
        let series = format!("misp_feed_event_outcomes_total{{outcome=\"{outcome}\"}}");
        assert_eq!(samples[&series], 0.0);
    }
    assert_eq!(types["misp_feed_fetch_errors_total"], "counter");
    assert_eq!(samples["misp_feed_fetch_errors_total{source=\"url\"}"], 0.0);
    assert_eq!(samples["misp_feed_fetch_errors_total{source=\"s3\"}"], 0.0);
    assert_eq!(types["misp_feed_last_run_duration_seconds"], "gauge");
    assert_eq!(types["misp_feed_last_run_end_timestamp_seconds"], "gauge");
    assert_eq!(types["misp_feed_push_duration_seconds"], "histogram");
    assert_eq!(samples["misp_feed_push_duration_seconds_count"], 0.0);
    assert_eq!(samples["misp_feed_push_duration_seconds_sum"], 0.0);
    assert_eq!(types["misp_feed_warninglisted_attributes_total"], "counter");
    assert_eq!(samples["misp_feed_warninglisted_attributes_total"], 0.0);
    assert_eq!(types["misp_feed_memory_budget_waits_total"], "counter");
    assert_eq!(samples["misp_feed_memory_budget_waits_total"], 0.0);
    // Nothing else: a new family is a decision, not an accident.
    assert_eq!(types.len(), PYCTI_COUNTERS.len() + 1 + 8, "{types:?}");
}

#[test]
fn every_metric_moves() {
    let metrics = Metrics::new();
    metrics.set_state(ConnectorState::Running);
    metrics.inc_runs();
    for _ in 0..3 {
        metrics.inc_bundles_sent();
    }
    metrics.add_records_sent(42);
    metrics.inc_ping_api();
    metrics.inc_ping_api();
    metrics.inc_ping_api_errors();
    metrics.inc_errors();
    metrics.inc_client_errors();
    metrics.set_events_by_status([("pushed", 9), ("failed", 2)]);
    metrics.inc_event_outcome("pushed");
    metrics.inc_event_outcome("unchanged");
    metrics.inc_event_outcome("unchanged");
    metrics.inc_fetch_errors("url");
    metrics.inc_fetch_errors("s3");
    metrics.inc_fetch_errors("s3");
    metrics.record_run(Duration::from_millis(2500), 1_700_000_000.0);
    metrics.observe_push_latency(Duration::from_millis(20));
    metrics.observe_push_latency(Duration::from_millis(700));
    metrics.observe_push_latency(Duration::from_secs(60));
    metrics.add_warninglisted(3);
    metrics.inc_memory_budget_waits();

    let (s, _) = parse(&metrics.render());
    assert_eq!(s["bundles_sent_total"], 3.0);
    assert_eq!(s["records_sent_total"], 42.0);
    assert_eq!(s["runs_total"], 1.0);
    assert_eq!(s["ping_api_total"], 2.0);
    assert_eq!(s["ping_api_errors_total"], 1.0);
    assert_eq!(s["errors_total"], 1.0);
    assert_eq!(s["client_errors_total"], 1.0);
    assert_eq!(s["misp_feed_warninglisted_attributes_total"], 3.0);
    assert_eq!(s["misp_feed_memory_budget_waits_total"], 1.0);
    assert_eq!(s["state{state=\"running\"}"], 1.0);
    assert_eq!(s["state{state=\"idle\"}"], 0.0);
    assert_eq!(metrics.state(), ConnectorState::Running);
    assert_eq!(s["misp_feed_events{status=\"pushed\"}"], 9.0);
    assert_eq!(s["misp_feed_events{status=\"failed\"}"], 2.0);
    assert_eq!(
        s["misp_feed_event_outcomes_total{outcome=\"unchanged\"}"],
        2.0
    );
    assert_eq!(s["misp_feed_event_outcomes_total{outcome=\"pushed\"}"], 1.0);
    assert_eq!(s["misp_feed_event_outcomes_total{outcome=\"failed\"}"], 0.0);
    assert_eq!(s["misp_feed_fetch_errors_total{source=\"s3\"}"], 2.0);
    assert_eq!(s["misp_feed_fetch_errors_total{source=\"url\"}"], 1.0);
    assert_eq!(s["misp_feed_last_run_duration_seconds"], 2.5);
    assert_eq!(
        s["misp_feed_last_run_end_timestamp_seconds"],
        1_700_000_000.0
    );
    // Cumulative buckets: 20 ms falls in le=0.025 and above, 700 ms in le=1 and above, 60 s only in +Inf.
    let latency = "misp_feed_push_duration_seconds";
    assert_eq!(bucket(&s, latency, 0.01), 0.0);
    assert_eq!(bucket(&s, latency, 0.025), 1.0);
    assert_eq!(bucket(&s, latency, 0.5), 1.0);
    assert_eq!(bucket(&s, latency, 1.0), 2.0);
    assert_eq!(bucket(&s, latency, 30.0), 2.0);
    assert_eq!(bucket(&s, latency, f64::INFINITY), 3.0);
    assert_eq!(s["misp_feed_push_duration_seconds_count"], 3.0);
    assert!((s["misp_feed_push_duration_seconds_sum"] - 60.72).abs() < 1e-9);
    let buckets = s
        .keys()
        .filter(|k| k.starts_with("misp_feed_push_duration_seconds_bucket"))
        .count();
    assert_eq!(buckets, PUSH_LATENCY_BUCKETS.len() + 1);

    // A new status snapshot replaces the old one.
    metrics.set_events_by_status([("pushed", 11)]);
    let (s, _) = parse(&metrics.render());
    assert_eq!(s["misp_feed_events{status=\"pushed\"}"], 11.0);
    assert!(!s.contains_key("misp_feed_events{status=\"failed\"}"));
}

#[test]
fn labels_are_escaped_and_every_family_has_help_and_type() {
    let metrics = Metrics::new();
    metrics.inc_bundles_sent();
    metrics.inc_fetch_errors("a\"b\\c\nd");
    let text = metrics.render();
    let (samples, types) = parse(&text);
    assert_eq!(samples["bundles_sent_total"], 1.0);
    assert_eq!(
        samples["misp_feed_fetch_errors_total{source=\"a\\\"b\\\\c\\nd\"}"], 1.0,
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP bundles_sent_total Number of bundles sent.\n# TYPE bundles_sent_total counter\n"
        ),
        "{text}"
    );
    for family in types.keys() {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP"
        );
    }
}

#[test]
fn namespace_and_subsystem_prefix_every_name_and_the_state_label_as_pycti() {
    let (samples, types) = parse(&Metrics::with_namespace("opencti", "misp").render());
    assert_eq!(samples["opencti_misp_bundles_sent_total"], 0.0);
    assert_eq!(types["opencti_misp_bundles_sent_total"], "counter");
    // Python's Enum names its label after the full metric name.
    assert_eq!(
        samples["opencti_misp_state{opencti_misp_state=\"idle\"}"],
        1.0
    );
    assert!(samples.keys().all(|name| name.starts_with("opencti_misp_")));
    assert!(types.keys().all(|name| name.starts_with("opencti_misp_")));

    // One part alone is a prefix too, without a doubled `_`.
    let (samples, _) = parse(&Metrics::with_namespace("", "misp").render());
    assert!(samples.contains_key("misp_runs_total"));
    assert!(samples.contains_key("misp_state{misp_state=\"idle\"}"));
}

/// The global registry belongs to the process (its first user names it), so the test runs
/// in a child process of its own.
#[test]
fn start_metrics_follows_the_settings_and_serves_the_global_registry() {
    child::run(module_path!(), "global_registry_in_a_child", |_| {});
}

#[tokio::test]
#[ignore = "run in a child process by start_metrics_follows_the_settings_and_serves_the_global_registry"]
async fn global_registry_in_a_child() {
    if !child::is_child("global_registry_in_a_child") {
        return;
    }
    let mut settings = misp_feed::config::Settings::default();
    settings.connector.metrics_namespace = "opencti".into();
    settings.connector.metrics_subsystem = "misp".into();
    settings.connector.metrics_port = 0;
    settings.connector.expose_metrics = false;
    assert!(
        misp_feed::telemetry::start_metrics(&settings)
            .await
            .unwrap()
            .is_none()
    );

    settings.connector.expose_metrics = true;
    let server = misp_feed::telemetry::start_metrics(&settings)
        .await
        .unwrap()
        .unwrap();
    // What the pipeline records through the global handle is what the endpoint serves.
    misp_feed::telemetry::metrics().inc_bundles_sent();
    let body = reqwest::get(format!(
        "http://127.0.0.1:{}/metrics",
        server.local_addr().port()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["opencti_misp_bundles_sent_total"], 1.0);
    assert!(Arc::ptr_eq(
        &misp_feed::telemetry::metrics(),
        &misp_feed::telemetry::init_metrics("x", "y")
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn start_metrics_refuses_a_prefix_that_is_not_a_prometheus_name() {
    let mut settings = misp_feed::config::Settings::default();
    settings.connector.metrics_namespace = "open-cti".into();
    settings.connector.metrics_port = 0;
    settings.connector.expose_metrics = true;
    let error = misp_feed::telemetry::start_metrics(&settings)
        .await
        .err()
        .expect("an invalid prefix is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let message = error.to_string();
    assert!(
        message.contains("CONNECTOR_METRICS_NAMESPACE") && message.contains("open-cti"),
        "{message}"
    );
}
