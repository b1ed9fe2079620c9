//! Logs and metrics.
//!
//! - `logs`: pycti-shaped JSON lines (or plain lines) on stderr, and the level filter.
//! - `metrics`: pycti's Prometheus metrics and ours, in a `prometheus-client` registry.
//! - `server`: the scrape endpoint (`CONNECTOR_EXPOSE_METRICS`), served with hyper.
//! - `events`: one type per thing the connector reports (an event pushed, a run finished ...):
//!   each writes its log line and moves its metrics, so the two never drift apart.

#[cfg(any(test, feature = "testsuite"))]
mod capture;
pub(crate) mod events;
mod logs;
mod metrics;
mod server;

#[cfg(any(test, feature = "testsuite"))]
pub use capture::{LogCapture, LogCaptureWriter};
#[cfg(any(test, feature = "testsuite"))]
pub use logs::logging_subscriber;
pub use logs::{
    DEFAULT_LOGGER_NAME, PyctiJsonLayer, TelemetryError, init_logging, init_logging_for,
    init_logging_named, parse_level,
};
pub use metrics::{
    CONTENT_TYPE, ConnectorState, EVENT_OUTCOMES, Metrics, PUSH_LATENCY_BUCKETS, init_metrics,
    metrics,
};
pub use server::{MetricsServer, serve_metrics, serve_metrics_on, start_metrics};
