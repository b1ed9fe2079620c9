//! Log lines: pycti's JSON shape on stderr (`timestamp`, `level`, `name`, `message`, and
//! `attributes` when the line carries fields), so log pipelines built for the Python connectors
//! keep working; `OPENCTI_JSON_LOGGING=false` gives plain lines instead.

use std::io::{self, Write as _};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

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

/// The same logger writing to `writer` and not installed globally, for tests
/// (`tracing::subscriber::with_default`).
#[cfg(any(test, feature = "testsuite"))]
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
    pub(crate) fn new(name: &str, writer: W) -> Self {
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
