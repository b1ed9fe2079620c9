//! Logs and metrics.
//!
//! Logs: one JSON object per line on stderr with pycti's keys (`timestamp`, `level`, `name`,
//! `message`, and `attributes` when the line carries fields), so log pipelines built for the
//! Python connectors keep working; `OPENCTI_JSON_LOGGING=false` gives plain lines instead.
//!
//! Metrics: pycti's Prometheus metric names plus ours, kept in plain atomics and served as
//! Prometheus text by a small HTTP/1.1 responder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log level {0:?}: expected debug, info, warn, warning or error")]
    InvalidLevel(String),
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

/// The logger name of pycti's connector logger is the connector's name.
pub const DEFAULT_LOGGER_NAME: &str = "Misp Feed";

/// `CONNECTOR_LOG_LEVEL` (pycti's names, any case) as a tracing level.
pub fn parse_level(level: &str) -> Result<Level, TelemetryError> {
    match level.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(Level::DEBUG),
        "info" => Ok(Level::INFO),
        "warn" | "warning" => Ok(Level::WARN),
        "error" => Ok(Level::ERROR),
        "trace" => Ok(Level::TRACE),
        _ => Err(TelemetryError::InvalidLevel(level.to_string())),
    }
}

/// Libraries whose debug output would drown ours; pycti quiets urllib3 and pika the same way.
const CHATTY_LIBRARIES: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "reqwest",
    "tower",
    "mio",
    "aws_config",
    "aws_sdk_s3",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_credential_types",
    "lapin",
    "amq_protocol",
    "pinky_swear",
    "rusqlite",
];

/// Everything logs at the configured level, except the chatty libraries which log from `warn`
/// (or only errors when the level is `error`).
fn level_filter(level: Level) -> EnvFilter {
    let ours = level.as_str().to_ascii_lowercase();
    let libraries = if level == Level::ERROR {
        "error"
    } else {
        "warn"
    };
    let mut directives = ours;
    for library in CHATTY_LIBRARIES {
        directives.push_str(&format!(",{library}={libraries}"));
    }
    EnvFilter::new(directives)
}

/// Sets the process-wide logger writing to stderr (as pycti does): JSON lines when `json`,
/// plain lines otherwise. `RUST_LOG`, when set, replaces the level filter (for debugging).
pub fn init_logging(json: bool, level: &str) -> Result<(), TelemetryError> {
    init_logging_named(json, level, DEFAULT_LOGGER_NAME)
}

/// As [`init_logging`], with the connector's name in each line's `name` (pycti's logger name).
pub fn init_logging_named(json: bool, level: &str, name: &str) -> Result<(), TelemetryError> {
    let level = parse_level(level)?;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => level_filter(level),
    };
    // `try_init` also routes records of `log`-based libraries into the same lines.
    let installed = if json {
        tracing_subscriber::registry()
            .with(filter)
            .with(PyctiJsonLayer::new(name, io::stderr))
            .try_init()
    } else {
        use std::io::IsTerminal;
        tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(io::stderr)
                    .with_ansi(io::stderr().is_terminal()),
            )
            .try_init()
    };
    installed.map_err(|_| TelemetryError::AlreadyInitialised)
}

/// [`init_logging_named`] from the settings: `OPENCTI_JSON_LOGGING`, `CONNECTOR_LOG_LEVEL` and
/// the connector's name.
pub fn init_logging_for(settings: &crate::config::Settings) -> Result<(), TelemetryError> {
    init_logging_named(
        settings.opencti.json_logging,
        &settings.connector.log_level,
        &settings.connector.name,
    )
}

/// The same logger writing to `writer` and not installed globally: for tests
/// (`tracing::subscriber::with_default`) and for embedding.
pub fn logging_subscriber<W>(
    json: bool,
    level: &str,
    name: &str,
    writer: W,
) -> Result<tracing::Dispatch, TelemetryError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = level_filter(parse_level(level)?);
    Ok(if json {
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(PyctiJsonLayer::new(name, writer)),
        )
    } else {
        tracing::Dispatch::new(
            tracing_subscriber::registry().with(filter).with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false),
            ),
        )
    })
}

/// Fields of a span, kept so that every line inside the span carries them in `attributes`.
struct SpanFields(Map<String, Value>);

#[derive(Default)]
struct FieldCollector {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldCollector {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(text) => text,
                other => other.to_string(),
            });
        } else {
            // `log`-crate bridge fields are noise in a pycti-shaped line.
            if field.name().starts_with("log.") {
                return;
            }
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for FieldCollector {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// pycti's JSON line: `{"timestamp": "...Z", "level": "INFO", "name": ..., "message": ...,
/// "attributes": {...}}`, `attributes` only when the line has fields (span fields first).
pub struct PyctiJsonLayer<W> {
    name: String,
    writer: W,
}

impl<W> PyctiJsonLayer<W> {
    pub fn new(name: &str, writer: W) -> Self {
        PyctiJsonLayer {
            name: name.to_string(),
            writer,
        }
    }
}

/// Python's level names, which log pipelines built for pycti match on.
fn pycti_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

impl<S, W> Layer<S> for PyctiJsonLayer<W>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    W: for<'writer> MakeWriter<'writer> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut collector = FieldCollector::default();
        attrs.record(&mut collector);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(collector.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut collector = FieldCollector::default();
        values.record(&mut collector);
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(fields) = extensions.get_mut::<SpanFields>() {
                fields.0.extend(collector.fields);
            } else {
                extensions.insert(SpanFields(collector.fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut collector = FieldCollector::default();
        event.record(&mut collector);
        let mut attributes = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    attributes.extend(fields.0.clone());
                }
            }
        }
        attributes.extend(collector.fields);

        let mut line = Map::new();
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        line.insert("timestamp".into(), Value::from(now));
        line.insert(
            "level".into(),
            Value::from(pycti_level(event.metadata().level())),
        );
        line.insert("name".into(), Value::from(self.name.as_str()));
        line.insert(
            "message".into(),
            Value::from(collector.message.unwrap_or_default()),
        );
        if !attributes.is_empty() {
            line.insert("attributes".into(), Value::Object(attributes));
        }
        let Ok(mut text) = serde_json::to_vec(&Value::Object(line)) else {
            return;
        };
        text.push(b'\n');
        // One write per line, so concurrent lines do not interleave; a failed log write has
        // nowhere to be reported.
        let _ = self
            .writer
            .make_writer_for(event.metadata())
            .write_all(&text);
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// pycti's `state` metric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    Idle,
    Running,
    Stopped,
}

impl ConnectorState {
    const ALL: [ConnectorState; 3] = [
        ConnectorState::Idle,
        ConnectorState::Running,
        ConnectorState::Stopped,
    ];

    fn name(self) -> &'static str {
        match self {
            ConnectorState::Idle => "idle",
            ConnectorState::Running => "running",
            ConnectorState::Stopped => "stopped",
        }
    }
}

/// Upper bounds (seconds) of the push-latency histogram buckets.
pub const PUSH_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// An `f64` in an `AtomicU64`, for sums and gauges.
#[derive(Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
    fn add(&self, delta: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + delta).to_bits())
            });
    }
}

struct Histogram {
    bucket_counts: [AtomicU64; PUSH_LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum: AtomicF64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            bucket_counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicF64::default(),
        }
    }

    fn observe(&self, seconds: f64) {
        // Each bucket counts the observations at or under its bound (Prometheus buckets are cumulative).
        for (bound, counter) in PUSH_LATENCY_BUCKETS.iter().zip(&self.bucket_counts) {
            if seconds <= *bound {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.add(seconds);
    }
}

/// The connector's metrics. Every method is cheap and lock-free except the labelled ones
/// (a short mutex over a small map).
pub struct Metrics {
    prefix: String,
    bundles_sent: AtomicU64,
    records_sent: AtomicU64,
    runs: AtomicU64,
    ping_api: AtomicU64,
    ping_api_errors: AtomicU64,
    errors: AtomicU64,
    client_errors: AtomicU64,
    state: AtomicU8,
    events_by_status: Mutex<BTreeMap<String, u64>>,
    event_outcomes: Mutex<BTreeMap<String, u64>>,
    fetch_errors: Mutex<BTreeMap<String, u64>>,
    last_run_duration: AtomicF64,
    last_run_end: AtomicF64,
    push_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a plain map behind, still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::with_namespace("", "")
    }

    /// pycti's `CONNECTOR_METRICS_NAMESPACE` / `_SUBSYSTEM` prefix every name (`ns_sub_name`).
    pub fn with_namespace(namespace: &str, subsystem: &str) -> Self {
        let prefix: String = [namespace, subsystem]
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| format!("{part}_"))
            .collect();
        Metrics {
            prefix,
            bundles_sent: AtomicU64::new(0),
            records_sent: AtomicU64::new(0),
            runs: AtomicU64::new(0),
            ping_api: AtomicU64::new(0),
            ping_api_errors: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            state: AtomicU8::new(0),
            events_by_status: Mutex::new(BTreeMap::new()),
            event_outcomes: Mutex::new(BTreeMap::new()),
            fetch_errors: Mutex::new(BTreeMap::new()),
            last_run_duration: AtomicF64::default(),
            last_run_end: AtomicF64::default(),
            push_latency: Histogram::new(),
        }
    }

    /// One bundle handed to OpenCTI (or the directory) and confirmed.
    pub fn inc_bundles_sent(&self) {
        self.bundles_sent.fetch_add(1, Ordering::Relaxed);
    }
    /// STIX objects in the bundles sent.
    pub fn add_records_sent(&self, objects: u64) {
        self.records_sent.fetch_add(objects, Ordering::Relaxed);
    }
    pub fn inc_runs(&self) {
        self.runs.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_ping_api(&self) {
        self.ping_api.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_ping_api_errors(&self) {
        self.ping_api_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_errors(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_client_errors(&self) {
        self.client_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_state(&self, state: ConnectorState) {
        let index = ConnectorState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(0);
        self.state.store(index as u8, Ordering::Relaxed);
    }
    pub fn state(&self) -> ConnectorState {
        let index = usize::from(self.state.load(Ordering::Relaxed));
        ConnectorState::ALL
            .get(index)
            .copied()
            .unwrap_or(ConnectorState::Idle)
    }

    /// Replaces the ledger's event counts per status (`pushed`, `failed`, `given_up` ...).
    pub fn set_events_by_status<'a>(&self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut map = lock(&self.events_by_status);
        map.clear();
        map.extend(
            counts
                .into_iter()
                .map(|(status, count)| (status.to_string(), count)),
        );
    }

    /// One event decision of a run: `pushed`, `unchanged`, `failed` ...
    pub fn inc_event_outcome(&self, outcome: &str) {
        *lock(&self.event_outcomes)
            .entry(outcome.to_string())
            .or_insert(0) += 1;
    }

    /// A failed fetch from `source` (a short name such as `url` or `s3`, or a host; never a URL
    /// carrying credentials).
    pub fn inc_fetch_errors(&self, source: &str) {
        *lock(&self.fetch_errors)
            .entry(source.to_string())
            .or_insert(0) += 1;
    }

    /// A run ended after `duration`, at `ended_at` (seconds since the Unix epoch).
    pub fn record_run(&self, duration: Duration, ended_at: f64) {
        self.last_run_duration.set(duration.as_secs_f64());
        self.last_run_end.set(ended_at);
    }

    /// Time from handing a bundle to the sink to its confirmation.
    pub fn observe_push_latency(&self, latency: Duration) {
        self.push_latency.observe(latency.as_secs_f64());
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let p = &self.prefix;
        let counters = [
            (
                "bundles_sent_total",
                "Number of bundles sent",
                &self.bundles_sent,
            ),
            (
                "records_sent_total",
                "Number of records (objects per bundle) sent",
                &self.records_sent,
            ),
            ("runs_total", "Number of runs", &self.runs),
            (
                "ping_api_total",
                "Number of pings to the API",
                &self.ping_api,
            ),
            (
                "ping_api_errors_total",
                "Number of errors when pinging the API",
                &self.ping_api_errors,
            ),
            ("errors_total", "Number of errors", &self.errors),
            (
                "client_errors_total",
                "Number of client errors",
                &self.client_errors,
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, &format!("{p}{name}"), help, "counter");
            sample(
                &mut out,
                &format!("{p}{name}"),
                &[],
                value.load(Ordering::Relaxed) as f64,
            );
        }

        let state = self.state();
        header(
            &mut out,
            &format!("{p}state"),
            "State of connector",
            "gauge",
        );
        for candidate in ConnectorState::ALL {
            let value = if candidate == state { 1.0 } else { 0.0 };
            sample(
                &mut out,
                &format!("{p}state"),
                &[("state", candidate.name())],
                value,
            );
        }

        let labelled = [
            (
                "misp_feed_events",
                "Events in the ledger by status",
                "gauge",
                "status",
                &self.events_by_status,
            ),
            (
                "misp_feed_event_outcomes_total",
                "Event decisions taken by runs, by outcome",
                "counter",
                "outcome",
                &self.event_outcomes,
            ),
            (
                "misp_feed_fetch_errors_total",
                "Failed feed fetches by source",
                "counter",
                "source",
                &self.fetch_errors,
            ),
        ];
        for (name, help, kind, label, map) in labelled {
            let name = format!("{p}{name}");
            header(&mut out, &name, help, kind);
            for (value_label, count) in lock(map).iter() {
                sample(&mut out, &name, &[(label, value_label)], *count as f64);
            }
        }

        let gauges = [
            (
                "misp_feed_last_run_duration_seconds",
                "Duration of the last finished run",
                self.last_run_duration.get(),
            ),
            (
                "misp_feed_last_run_end_timestamp_seconds",
                "End of the last finished run, seconds since the Unix epoch",
                self.last_run_end.get(),
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, &format!("{p}{name}"), help, "gauge");
            sample(&mut out, &format!("{p}{name}"), &[], value);
        }

        let name = format!("{p}misp_feed_push_duration_seconds");
        header(
            &mut out,
            &name,
            "Time from handing a bundle to the sink to its confirmation",
            "histogram",
        );
        let histogram = &self.push_latency;
        for (bound, counter) in PUSH_LATENCY_BUCKETS.iter().zip(&histogram.bucket_counts) {
            let bound = format!("{bound:?}");
            sample(
                &mut out,
                &format!("{name}_bucket"),
                &[("le", &bound)],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
        let count = histogram.count.load(Ordering::Relaxed) as f64;
        sample(
            &mut out,
            &format!("{name}_bucket"),
            &[("le", "+Inf")],
            count,
        );
        sample(&mut out, &format!("{name}_count"), &[], count);
        sample(&mut out, &format!("{name}_sum"), &[], histogram.sum.get());
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, label_value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(label_value));
        }
        out.push('}');
    }
    // `{:?}` keeps a decimal point (`3.0`), as Python's prometheus_client prints values.
    let _ = writeln!(out, " {value:?}");
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

static GLOBAL_METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Creates the process-wide registry with pycti's name prefixes; the first call wins, so call
/// it at start-up before anything records a metric.
pub fn init_metrics(namespace: &str, subsystem: &str) -> Arc<Metrics> {
    Arc::clone(
        GLOBAL_METRICS.get_or_init(|| Arc::new(Metrics::with_namespace(namespace, subsystem))),
    )
}

/// The process-wide registry the pipeline and sinks update and the endpoint serves.
pub fn metrics() -> Arc<Metrics> {
    init_metrics("", "")
}

// ---------------------------------------------------------------------------------------------
// Metrics endpoint
// ---------------------------------------------------------------------------------------------

/// A running metrics endpoint.
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting scrapes.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// Serves `metrics` on `0.0.0.0:port` (`CONNECTOR_METRICS_PORT`), on every path, as pycti's
/// `start_http_server` does.
pub async fn serve_metrics(port: u16, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    serve_metrics_on(listener, metrics)
}

/// Start-up in one call: the global registry with the configured prefixes, served on
/// `CONNECTOR_METRICS_PORT` when `CONNECTOR_EXPOSE_METRICS` is true (`None` otherwise).
pub async fn start_metrics(
    settings: &crate::config::Settings,
) -> io::Result<Option<MetricsServer>> {
    let connector = &settings.connector;
    let registry = init_metrics(&connector.metrics_namespace, &connector.metrics_subsystem);
    if !connector.expose_metrics {
        return Ok(None);
    }
    let server = serve_metrics(connector.metrics_port, registry).await?;
    tracing::info!(
        port = server.local_addr().port(),
        "Exposing metrics on port"
    );
    Ok(Some(server))
}

/// Serves `metrics` on an already bound listener.
pub fn serve_metrics_on(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
    let local_addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let metrics = Arc::clone(&metrics);
                    tokio::spawn(async move {
                        if let Err(error) = answer_scrape(stream, &metrics).await {
                            tracing::debug!(error = %error, "metrics request failed");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(error = %error, "metrics endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(MetricsServer { local_addr, task })
}

const MAX_REQUEST_HEAD: usize = 16 * 1024;

async fn answer_scrape(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            if head.len() > MAX_REQUEST_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "request head too large",
                ));
            }
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the request end",
                ));
            }
            head.extend_from_slice(chunk.get(..read).unwrap_or_default());
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read_head)
        .await
        .map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
        })??;

    let request_line = head.split(|byte| *byte == b'\r').next().unwrap_or_default();
    let method = request_line
        .split(|byte| *byte == b' ')
        .next()
        .unwrap_or_default();
    let response = match method {
        b"GET" | b"HEAD" => {
            let body = metrics.render();
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if method == b"GET" {
                response.push_str(&body);
            }
            response
        }
        _ => "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_string(),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Capturing logs (tests, `check`)
// ---------------------------------------------------------------------------------------------

/// An in-memory log destination: pass [`LogCapture::writer`] to [`logging_subscriber`], then
/// read what was logged.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

/// The writer half of a [`LogCapture`].
pub struct LogCaptureWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for LogCaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn new() -> Self {
        LogCapture::default()
    }

    /// A `MakeWriter` appending to this capture.
    pub fn writer(&self) -> impl for<'writer> MakeWriter<'writer> + Send + Sync + 'static {
        let buffer = Arc::clone(&self.0);
        move || LogCaptureWriter(Arc::clone(&buffer))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }

    /// Each JSON line parsed (lines that are not JSON are skipped).
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}
