//! Metrics: pycti's names and ours in Prometheus text, values that move, and the HTTP endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use misp_feed::telemetry::{
    ConnectorState, Metrics, PUSH_LATENCY_BUCKETS, serve_metrics, serve_metrics_on,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::child;

/// `name{labels}` -> value, and the `# TYPE` of each family; fails on any malformed line.
fn parse(text: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
        } else if line.starts_with("# HELP ") {
            assert!(line.split(' ').count() >= 4, "HELP without text: {line}");
        } else {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let family = series.split('{').next().unwrap();
            assert!(
                family
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line}"
            );
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "duplicate {series}"
            );
        }
    }
    (samples, types)
}

#[test]
fn fresh_registry_exposes_every_pycti_metric_at_zero() {
    let (samples, types) = parse(&Metrics::new().render());
    for name in [
        "bundles_sent_total",
        "records_sent_total",
        "runs_total",
        "ping_api_total",
        "ping_api_errors_total",
        "errors_total",
    ] {
        assert_eq!(samples[name], 0.0, "{name}");
        assert_eq!(types[name], "counter");
    }
    assert_eq!(types["state"], "gauge");
    assert_eq!(samples["state{state=\"idle\"}"], 1.0);
    assert_eq!(samples["state{state=\"running\"}"], 0.0);
    assert_eq!(samples["state{state=\"stopped\"}"], 0.0);
    assert_eq!(types["misp_feed_events"], "gauge");
    assert_eq!(types["misp_feed_fetch_errors_total"], "counter");
    assert_eq!(types["misp_feed_last_run_duration_seconds"], "gauge");
    assert_eq!(types["misp_feed_push_duration_seconds"], "histogram");
    assert_eq!(samples["misp_feed_push_duration_seconds_count"], 0.0);
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

    let (s, _) = parse(&metrics.render());
    assert_eq!(s["bundles_sent_total"], 3.0);
    assert_eq!(s["records_sent_total"], 42.0);
    assert_eq!(s["runs_total"], 1.0);
    assert_eq!(s["ping_api_total"], 2.0);
    assert_eq!(s["ping_api_errors_total"], 1.0);
    assert_eq!(s["errors_total"], 1.0);
    assert_eq!(s["client_errors_total"], 1.0);
    assert_eq!(s["state{state=\"running\"}"], 1.0);
    assert_eq!(s["state{state=\"idle\"}"], 0.0);
    assert_eq!(s["misp_feed_events{status=\"pushed\"}"], 9.0);
    assert_eq!(s["misp_feed_events{status=\"failed\"}"], 2.0);
    assert_eq!(
        s["misp_feed_event_outcomes_total{outcome=\"unchanged\"}"],
        2.0
    );
    assert_eq!(s["misp_feed_fetch_errors_total{source=\"s3\"}"], 2.0);
    assert_eq!(s["misp_feed_fetch_errors_total{source=\"url\"}"], 1.0);
    assert_eq!(s["misp_feed_last_run_duration_seconds"], 2.5);
    assert_eq!(
        s["misp_feed_last_run_end_timestamp_seconds"],
        1_700_000_000.0
    );
    // Cumulative buckets: 20 ms falls in le=0.025 and above, 700 ms in le=1.0 and above, 60 s only in +Inf.
    assert_eq!(
        s["misp_feed_push_duration_seconds_bucket{le=\"0.01\"}"],
        0.0
    );
    assert_eq!(
        s["misp_feed_push_duration_seconds_bucket{le=\"0.025\"}"],
        1.0
    );
    assert_eq!(s["misp_feed_push_duration_seconds_bucket{le=\"0.5\"}"], 1.0);
    assert_eq!(s["misp_feed_push_duration_seconds_bucket{le=\"1.0\"}"], 2.0);
    assert_eq!(
        s["misp_feed_push_duration_seconds_bucket{le=\"30.0\"}"],
        2.0
    );
    assert_eq!(
        s["misp_feed_push_duration_seconds_bucket{le=\"+Inf\"}"],
        3.0
    );
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
fn values_print_like_prometheus_client_and_labels_are_escaped() {
    let metrics = Metrics::new();
    metrics.inc_bundles_sent();
    metrics.inc_fetch_errors("a\"b\\c\nd");
    let text = metrics.render();
    assert!(text.contains("\nbundles_sent_total 1.0\n"), "{text}");
    assert!(
        text.contains("misp_feed_fetch_errors_total{source=\"a\\\"b\\\\c\\nd\"} 1.0"),
        "{text}"
    );
    assert!(text.contains(
        "# HELP bundles_sent_total Number of bundles sent\n# TYPE bundles_sent_total counter\n"
    ));
}

#[test]
fn namespace_and_subsystem_prefix_every_name() {
    let (samples, _) = parse(&Metrics::with_namespace("opencti", "misp").render());
    assert!(samples.contains_key("opencti_misp_bundles_sent_total"));
    assert!(samples.contains_key("opencti_misp_state{state=\"idle\"}"));
    assert!(samples.keys().all(|name| name.starts_with("opencti_misp_")));
}

async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn endpoint_serves_current_values() {
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve_metrics_on(listener, Arc::clone(&metrics)).unwrap();
    let url = format!("http://{}/metrics", server.local_addr());

    let client = reqwest::Client::new();
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let (samples, _) = parse(&first.text().await.unwrap());
    assert_eq!(samples["runs_total"], 0.0);

    metrics.inc_runs();
    metrics.set_state(ConnectorState::Stopped);
    // Any path answers, as with pycti's prometheus_client server.
    let body = client
        .get(format!("http://{}/", server.local_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["runs_total"], 1.0);
    assert_eq!(samples["state{state=\"stopped\"}"], 1.0);

    let head = http(
        server.local_addr(),
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

    let post = client.post(&url).body("x").send().await.unwrap();
    assert_eq!(post.status(), 405);

    // A client that closes early does not stop the server.
    drop(
        tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap(),
    );
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    server.shutdown();
}

#[tokio::test]
async fn serve_metrics_binds_the_configured_port_on_every_interface() {
    // Port 0 lets the system choose; the server reports what it bound.
    let server = serve_metrics(0, Arc::new(Metrics::new())).await.unwrap();
    assert!(server.local_addr().ip().is_unspecified());
    let port = server.local_addr().port();
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("bundles_sent_total 0.0"), "{body}");
    // A second server on the same port fails with an error, not a panic.
    assert!(serve_metrics(port, Arc::new(Metrics::new())).await.is_err());
    server.shutdown();
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
    server.shutdown();
}
