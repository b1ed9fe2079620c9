//! What an operator sees, through the binary: pycti-shaped JSON log lines with exactly one
//! decision line per event and a run summary, and Prometheus metrics that move after a run.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::FIXTURE_FEED;
use crate::support::feed_server::FeedServer;
use crate::support::workspace::{Workspace, stderr_lines};
use serde_json::Value;

fn decision_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["attributes"]["decision"].is_string())
        .collect()
}

#[test]
fn json_logs_have_pycti_keys_and_one_decision_line_per_event() {
    let server = FeedServer::start(FIXTURE_FEED);
    let ws = Workspace::new(&server.url());
    let events = server.event_uuids();
    for (run, expected) in [("first", "pushed"), ("second", "skipped")] {
        let (_, out) = ws.once();
        let lines = stderr_lines(&out);
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            lines.len(),
            text.lines().filter(|l| !l.trim().is_empty()).count(),
            "{run} run: a log line is not JSON:\n{text}"
        );
        for line in &lines {
            for key in ["timestamp", "level", "name", "message"] {
                assert!(line[key].is_string(), "{run} run: no {key} in {line}");
            }
        }
        let decisions = decision_lines(&lines);
        assert_eq!(decisions.len(), events.len(), "{run} run: {decisions:?}");
        for uuid in &events {
            let mine: Vec<_> = decisions
                .iter()
                .filter(|l| l["attributes"]["event"] == uuid.as_str())
                .collect();
            assert_eq!(
                mine.len(),
                1,
                "{run} run: {uuid} has {} decision lines",
                mine.len()
            );
            assert_eq!(mine[0]["attributes"]["decision"], expected);
        }
        assert!(
            lines.iter().any(|l| l["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("run finished")),
            "{run} run: no summary line"
        );
    }
}

fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

#[test]
fn run_mode_serves_metrics_that_move_after_a_run_and_stops_on_sigterm() {
    let server = FeedServer::start(FIXTURE_FEED);
    let mut ws = Workspace::new(&server.url());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ws.set("CONNECTOR_EXPOSE_METRICS", "true");
    ws.set("CONNECTOR_METRICS_PORT", &port.to_string());
    ws.set("CONNECTOR_DURATION_PERIOD", "PT1H");
    let mut child = ws.command(&["run"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        if let Some(t) = scrape(port)
            && metric(&t, "runs_total").unwrap_or(0.0) >= 1.0
        {
            text = t;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM, as `docker stop` sends it.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "run did not stop cleanly on SIGTERM: {status:?}"
    );
    assert!(
        !text.is_empty(),
        "no run was reported on the metrics endpoint"
    );
    assert_eq!(metric(&text, "runs_total"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "bundles_sent_total"), Some(9.0), "{text}");
    assert!(
        metric(&text, "records_sent_total").unwrap_or(0.0) > 9.0,
        "{text}"
    );
    for name in [
        "ping_api_total",
        "ping_api_errors_total",
        "errors_total",
        "state",
    ] {
        assert!(metric(&text, name).is_some(), "{name} missing:\n{text}");
    }
    // The run's decisions, one per event, and the ledger's counts after it.
    for series in [
        "misp_feed_event_outcomes_total{outcome=\"pushed\"} 9\n",
        "misp_feed_event_outcomes_total{outcome=\"failed\"} 0\n",
        "misp_feed_events{status=\"pushed\"} 9\n",
        "misp_feed_events{status=\"failed\"} 0\n",
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
}
