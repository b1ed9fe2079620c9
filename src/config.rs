//! Configuration: every option of the Python MISP Feed connector (same env names, same
//! `config.yml` keys, same defaults) plus ours, resolved as environment over file over default.
//!
//! The struct below is the contract the rest of the crate reads; `Settings::load` fills it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};

use crate::convert::ConvertOptions;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceType {
    Url,
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueProtocol {
    Amqp,
    Api,
}

#[derive(Clone)]
pub struct OpenCtiSettings {
    /// `OPENCTI_URL`; `None` means offline (directory sink only).
    pub url: Option<String>,
    /// `OPENCTI_TOKEN`
    pub token: Option<Secret>,
    /// `OPENCTI_SSL_VERIFY`
    pub ssl_verify: bool,
    /// `OPENCTI_CA_FILE` (ours): extra CA bundle (PEM) for the platform.
    pub ca_file: Option<PathBuf>,
    /// `OPENCTI_JSON_LOGGING`
    pub json_logging: bool,
    /// `OPENCTI_CUSTOM_HEADERS` ("h1:v1;h2:v2"), as pycti reads it.
    pub custom_headers: Vec<(String, Secret)>,
}

#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// `CONNECTOR_ID`
    pub id: Option<String>,
    /// `CONNECTOR_TYPE`
    pub connector_type: String,
    /// `CONNECTOR_NAME`
    pub name: String,
    /// `CONNECTOR_SCOPE` (comma separated)
    pub scope: Vec<String>,
    /// `CONNECTOR_LOG_LEVEL`
    pub log_level: String,
    /// `CONNECTOR_DURATION_PERIOD` (ISO-8601); `MISP_FEED_INTERVAL` minutes, deprecated.
    pub duration_period: Duration,
    /// `CONNECTOR_AUTO`
    pub auto: bool,
    /// `CONNECTOR_ONLY_CONTEXTUAL`
    pub only_contextual: bool,
    /// `CONNECTOR_RUN_AND_TERMINATE`
    pub run_and_terminate: bool,
    /// `CONNECTOR_QUEUE_PROTOCOL`
    pub queue_protocol: QueueProtocol,
    /// `CONNECTOR_QUEUE_THRESHOLD` in MB
    pub queue_threshold_mb: f64,
    /// `CONNECTOR_SEND_TO_QUEUE`
    pub send_to_queue: bool,
    /// `CONNECTOR_SEND_TO_DIRECTORY`
    pub send_to_directory: bool,
    /// `CONNECTOR_SEND_TO_DIRECTORY_PATH`
    pub send_to_directory_path: Option<PathBuf>,
    /// `CONNECTOR_SEND_TO_DIRECTORY_RETENTION` in days (0 keeps forever)
    pub send_to_directory_retention_days: u32,
    /// `CONNECTOR_EXPOSE_METRICS`
    pub expose_metrics: bool,
    /// `CONNECTOR_METRICS_PORT`
    pub metrics_port: u16,
    /// `CONNECTOR_METRICS_NAMESPACE` (added by config-ops): prefix of every metric name, as pycti.
    pub metrics_namespace: String,
    /// `CONNECTOR_METRICS_SUBSYSTEM` (added by config-ops): second prefix, as pycti.
    pub metrics_subsystem: String,
}

#[derive(Clone)]
pub struct MispFeedSettings {
    /// `MISP_FEED_SOURCE_TYPE`
    pub source_type: SourceType,
    /// `MISP_FEED_URL` (trailing `/` removed); `file://` URLs and plain paths are local folders.
    pub url: Option<String>,
    /// `MISP_FEED_SSL_VERIFY`
    pub ssl_verify: bool,
    /// `MISP_FEED_HTTP_AUTHORIZATION_HEADER`
    pub http_authorization_header: Option<Secret>,
    /// `MISP_FEED_CA_BUNDLE` (ours)
    pub ca_bundle: Option<PathBuf>,
    /// `MISP_FEED_BUCKET_NAME` / `MISP_BUCKET_NAME`
    pub bucket_name: Option<String>,
    /// `MISP_FEED_BUCKET_PREFIX` / `MISP_BUCKET_PREFIX`
    pub bucket_prefix: Option<String>,
    /// `MISP_FEED_S3_DELETE_AFTER_IMPORT` (ours, default false)
    pub s3_delete_after_import: bool,
    /// `MISP_FEED_IMPORT_FROM_DATE`, resolved at load time (a duration counts back from now).
    pub import_from_date: Option<DateTime<Utc>>,
    /// `MISP_FEED_LEDGER_PATH` (ours)
    pub ledger_path: PathBuf,
    /// `MISP_FEED_MAX_FILE_SIZE` in bytes (ours)
    pub max_file_size: u64,
    /// `MISP_FEED_CONNECT_TIMEOUT` / `MISP_FEED_READ_TIMEOUT` in seconds (ours)
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `MISP_FEED_HTTP_RETRIES` (ours): tries per request after the first.
    pub http_retries: u32,
    /// `MISP_FEED_FETCH_CONCURRENCY` (ours)
    pub fetch_concurrency: usize,
    /// `MISP_FEED_MAX_ATTEMPTS` (ours): failed events are retried by later runs up to this.
    pub max_attempts: u32,
    /// `MISP_FEED_RETRY_BACKOFF` in seconds (ours): delay before a failed event's first retry,
    /// doubling with each further failure (capped at 6 h).
    pub retry_backoff: Duration,
    /// `MISP_FEED_HEARTBEAT_PERIOD` in seconds (ours): how often `run` pings OpenCTI with the
    /// state (pycti's PingAlive: 40 s), which is also how soon a UI reset is noticed.
    pub heartbeat_period: Duration,
    /// Conversion options, `MISP_FEED_CREATE_REPORTS` ... and `MISP_FEED_REFERENCE_COMPAT`.
    pub convert: ConvertOptions,
}

#[derive(Clone, Default)]
pub struct AwsSettings {
    /// `AWS_ENDPOINT_URL`
    pub endpoint_url: Option<String>,
    /// `AWS_ACCESS_KEY_ID`
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`
    pub secret_access_key: Option<Secret>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`
    pub region: Option<String>,
    /// `AWS_S3_FORCE_PATH_STYLE` (ours; on by default when an endpoint is set, as MinIO needs)
    pub force_path_style: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub opencti: OpenCtiSettings,
    pub connector: ConnectorSettings,
    pub misp_feed: MispFeedSettings,
    pub aws: AwsSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            opencti: OpenCtiSettings {
                url: None,
                token: None,
                ssl_verify: false,
                ca_file: None,
                json_logging: true,
                custom_headers: Vec::new(),
            },
            connector: ConnectorSettings {
                id: None,
                connector_type: "EXTERNAL_IMPORT".into(),
                name: "Misp Feed".into(),
                scope: vec!["misp-feed".into()],
                log_level: "error".into(),
                duration_period: Duration::from_secs(300),
                auto: false,
                only_contextual: false,
                run_and_terminate: false,
                queue_protocol: QueueProtocol::Amqp,
                queue_threshold_mb: 500.0,
                send_to_queue: true,
                send_to_directory: false,
                send_to_directory_path: None,
                send_to_directory_retention_days: 7,
                expose_metrics: false,
                metrics_port: 9095,
                metrics_namespace: String::new(),
                metrics_subsystem: String::new(),
            },
            misp_feed: MispFeedSettings {
                source_type: SourceType::Url,
                url: None,
                ssl_verify: true,
                http_authorization_header: None,
                ca_bundle: None,
                bucket_name: None,
                bucket_prefix: None,
                s3_delete_after_import: false,
                import_from_date: None,
                ledger_path: PathBuf::from("misp-feed-ledger.sqlite"),
                max_file_size: 512 * 1024 * 1024,
                connect_timeout: Duration::from_secs(10),
                read_timeout: Duration::from_secs(120),
                http_retries: 4,
                fetch_concurrency: 4,
                max_attempts: 5,
                retry_backoff: Duration::from_secs(60),
                heartbeat_period: Duration::from_secs(40),
                convert: ConvertOptions::default(),
            },
            aws: AwsSettings::default(),
        }
    }
}

// URLs may carry a user and password (`https://user:pw@host/feed`): debug output masks them.

fn masked(url: &Option<String>) -> Option<String> {
    url.as_deref().map(mask_url_credentials)
}

impl std::fmt::Debug for OpenCtiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCtiSettings")
            .field("url", &masked(&self.url))
            .field("token", &self.token)
            .field("ssl_verify", &self.ssl_verify)
            .field("ca_file", &self.ca_file)
            .field("json_logging", &self.json_logging)
            .field("custom_headers", &self.custom_headers)
            .finish()
    }
}

impl std::fmt::Debug for MispFeedSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MispFeedSettings")
            .field("source_type", &self.source_type)
            .field("url", &masked(&self.url))
            .field("ssl_verify", &self.ssl_verify)
            .field("http_authorization_header", &self.http_authorization_header)
            .field("ca_bundle", &self.ca_bundle)
            .field("bucket_name", &self.bucket_name)
            .field("bucket_prefix", &self.bucket_prefix)
            .field("s3_delete_after_import", &self.s3_delete_after_import)
            .field("import_from_date", &self.import_from_date)
            .field("ledger_path", &self.ledger_path)
            .field("max_file_size", &self.max_file_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("http_retries", &self.http_retries)
            .field("fetch_concurrency", &self.fetch_concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("heartbeat_period", &self.heartbeat_period)
            .field("convert", &self.convert)
            .finish()
    }
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("endpoint_url", &masked(&self.endpoint_url))
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Option table
// ---------------------------------------------------------------------------------------------

/// One configuration option: its environment variable, its `config.yml` place, the older
/// names still accepted, and whether its value must never be shown.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The environment variable, e.g. `MISP_FEED_URL`.
    pub env: &'static str,
    /// `config.yml` section, e.g. `misp_feed`.
    pub section: &'static str,
    /// `config.yml` key inside the section, e.g. `url`.
    pub key: &'static str,
    /// Other environment variables meaning the same (read after `env`).
    pub env_aliases: &'static [&'static str],
    /// Other keys of the same section meaning the same (read after `key`).
    pub key_aliases: &'static [&'static str],
    /// A token, key or header value: never printed.
    pub secret: bool,
    /// Kept for old deployments; using it logs a deprecation warning.
    pub deprecated: bool,
    /// One line for operators.
    pub description: &'static str,
}

const fn opt(
    env: &'static str,
    section: &'static str,
    key: &'static str,
    description: &'static str,
) -> OptionSpec {
    OptionSpec {
        env,
        section,
        key,
        env_aliases: &[],
        key_aliases: &[],
        secret: false,
        deprecated: false,
        description,
    }
}

const fn secret(mut spec: OptionSpec) -> OptionSpec {
    spec.secret = true;
    spec
}

const fn env_alias(mut spec: OptionSpec, aliases: &'static [&'static str]) -> OptionSpec {
    spec.env_aliases = aliases;
    spec
}

const fn key_alias(mut spec: OptionSpec, aliases: &'static [&'static str]) -> OptionSpec {
    spec.key_aliases = aliases;
    spec
}

const fn deprecated(mut spec: OptionSpec) -> OptionSpec {
    spec.deprecated = true;
    spec
}

/// Every option the connector reads, in the order of `config.yml.sample`.
pub static OPTIONS: &[OptionSpec] = &[
    // opencti
    opt(
        "OPENCTI_URL",
        "opencti",
        "url",
        "Base URL of the OpenCTI platform; unset runs offline (directory sink only).",
    ),
    secret(opt(
        "OPENCTI_TOKEN",
        "opencti",
        "token",
        "API token of the connector's OpenCTI user.",
    )),
    opt(
        "OPENCTI_SSL_VERIFY",
        "opencti",
        "ssl_verify",
        "Verify the platform's TLS certificate (pycti's default: off; turn it on).",
    ),
    opt(
        "OPENCTI_CA_FILE",
        "opencti",
        "ca_file",
        "Extra CA bundle (PEM) trusted for the platform.",
    ),
    opt(
        "OPENCTI_JSON_LOGGING",
        "opencti",
        "json_logging",
        "JSON log lines (pycti's keys); false gives human-readable lines.",
    ),
    secret(opt(
        "OPENCTI_CUSTOM_HEADERS",
        "opencti",
        "custom_headers",
        "Extra HTTP headers for the platform, as \"name1:value1;name2:value2\".",
    )),
    // connector
    opt(
        "CONNECTOR_ID",
        "connector",
        "id",
        "Unique UUIDv4 of this connector instance.",
    ),
    opt(
        "CONNECTOR_TYPE",
        "connector",
        "type",
        "Always EXTERNAL_IMPORT.",
    ),
    opt(
        "CONNECTOR_NAME",
        "connector",
        "name",
        "Name shown in OpenCTI and in the logs.",
    ),
    opt(
        "CONNECTOR_SCOPE",
        "connector",
        "scope",
        "Comma-separated scope.",
    ),
    opt(
        "CONNECTOR_LOG_LEVEL",
        "connector",
        "log_level",
        "debug, info, warn, warning or error.",
    ),
    opt(
        "CONNECTOR_DURATION_PERIOD",
        "connector",
        "duration_period",
        "Time between two runs, ISO-8601 duration (PT0S runs once and stops).",
    ),
    opt(
        "CONNECTOR_AUTO",
        "connector",
        "auto",
        "pycti's auto flag, registered with the platform.",
    ),
    opt(
        "CONNECTOR_ONLY_CONTEXTUAL",
        "connector",
        "only_contextual",
        "pycti's only-contextual flag, registered with the platform.",
    ),
    opt(
        "CONNECTOR_RUN_AND_TERMINATE",
        "connector",
        "run_and_terminate",
        "Run once and exit.",
    ),
    env_alias(
        opt(
            "CONNECTOR_QUEUE_PROTOCOL",
            "connector",
            "queue_protocol",
            "How bundles reach OpenCTI: amqp (RabbitMQ) or api.",
        ),
        &["QUEUE_PROTOCOL"],
    ),
    opt(
        "CONNECTOR_QUEUE_THRESHOLD",
        "connector",
        "queue_threshold",
        "Pause pushing while the connector's queue holds more than this many MB.",
    ),
    opt(
        "CONNECTOR_SEND_TO_QUEUE",
        "connector",
        "send_to_queue",
        "Send bundles to OpenCTI.",
    ),
    opt(
        "CONNECTOR_SEND_TO_DIRECTORY",
        "connector",
        "send_to_directory",
        "Also write each bundle to a folder, as pycti does.",
    ),
    opt(
        "CONNECTOR_SEND_TO_DIRECTORY_PATH",
        "connector",
        "send_to_directory_path",
        "Folder for the bundle files.",
    ),
    opt(
        "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
        "connector",
        "send_to_directory_retention",
        "Days bundle files are kept (0 keeps them forever).",
    ),
    opt(
        "CONNECTOR_EXPOSE_METRICS",
        "connector",
        "expose_metrics",
        "Serve Prometheus metrics.",
    ),
    opt(
        "CONNECTOR_METRICS_PORT",
        "connector",
        "metrics_port",
        "Port of the Prometheus endpoint.",
    ),
    opt(
        "CONNECTOR_METRICS_NAMESPACE",
        "connector",
        "metrics_namespace",
        "Prefix of every metric name (namespace_subsystem_name), as pycti.",
    ),
    opt(
        "CONNECTOR_METRICS_SUBSYSTEM",
        "connector",
        "metrics_subsystem",
        "Second prefix of every metric name, as pycti.",
    ),
    // misp_feed
    opt(
        "MISP_FEED_SOURCE_TYPE",
        "misp_feed",
        "source_type",
        "Where the feed is: url or s3.",
    ),
    opt(
        "MISP_FEED_URL",
        "misp_feed",
        "url",
        "Feed URL (http, https, file:// or a local folder); required when source_type is url.",
    ),
    opt(
        "MISP_FEED_SSL_VERIFY",
        "misp_feed",
        "ssl_verify",
        "Verify the feed server's TLS certificate.",
    ),
    secret(opt(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
        "misp_feed",
        "http_authorization_header",
        "Authorization header value sent on every feed request.",
    )),
    opt(
        "MISP_FEED_CA_BUNDLE",
        "misp_feed",
        "ca_bundle",
        "Extra CA bundle (PEM) trusted for the feed server.",
    ),
    env_alias(
        opt(
            "MISP_FEED_BUCKET_NAME",
            "misp_feed",
            "bucket_name",
            "S3 bucket holding the MISP files; required when source_type is s3.",
        ),
        &["MISP_BUCKET_NAME"],
    ),
    env_alias(
        opt(
            "MISP_FEED_BUCKET_PREFIX",
            "misp_feed",
            "bucket_prefix",
            "Only objects under this key prefix are read.",
        ),
        &["MISP_BUCKET_PREFIX"],
    ),
    opt(
        "MISP_FEED_S3_DELETE_AFTER_IMPORT",
        "misp_feed",
        "s3_delete_after_import",
        "Delete an S3 object once every event in it is confirmed pushed.",
    ),
    opt(
        "MISP_FEED_IMPORT_FROM_DATE",
        "misp_feed",
        "import_from_date",
        "First run imports events after this date, datetime or ISO-8601 duration back from now (P30D).",
    ),
    deprecated(opt(
        "MISP_FEED_INTERVAL",
        "misp_feed",
        "interval",
        "Deprecated: minutes between runs; use CONNECTOR_DURATION_PERIOD.",
    )),
    opt(
        "MISP_FEED_LEDGER_PATH",
        "misp_feed",
        "ledger_path",
        "SQLite ledger file recording every feed file, event and push.",
    ),
    opt(
        "MISP_FEED_MAX_FILE_SIZE",
        "misp_feed",
        "max_file_size",
        "Largest feed file accepted, in bytes (K, M, G suffixes allowed).",
    ),
    opt(
        "MISP_FEED_CONNECT_TIMEOUT",
        "misp_feed",
        "connect_timeout",
        "Seconds to wait for a connection to the feed server.",
    ),
    opt(
        "MISP_FEED_READ_TIMEOUT",
        "misp_feed",
        "read_timeout",
        "Seconds to wait for a feed response.",
    ),
    opt(
        "MISP_FEED_HTTP_RETRIES",
        "misp_feed",
        "http_retries",
        "Retries of one feed request after the first try (timeouts, 429, 5xx).",
    ),
    opt(
        "MISP_FEED_FETCH_CONCURRENCY",
        "misp_feed",
        "fetch_concurrency",
        "Feed files fetched at the same time.",
    ),
    opt(
        "MISP_FEED_MAX_ATTEMPTS",
        "misp_feed",
        "max_attempts",
        "Runs that retry a failed event before it is given up (until `retry`).",
    ),
    opt(
        "MISP_FEED_RETRY_BACKOFF",
        "misp_feed",
        "retry_backoff",
        "Seconds before a failed event's first retry; doubles with each failure (capped at 6 h).",
    ),
    opt(
        "MISP_FEED_HEARTBEAT_PERIOD",
        "misp_feed",
        "heartbeat_period",
        "Seconds between the pings `run` sends OpenCTI with the state (pycti: 40).",
    ),
    opt(
        "MISP_FEED_CREATE_REPORTS",
        "misp_feed",
        "create_reports",
        "Create one report per MISP event.",
    ),
    opt(
        "MISP_FEED_REPORT_TYPE",
        "misp_feed",
        "report_type",
        "report_types value of the created reports.",
    ),
    opt(
        "MISP_FEED_CREATE_INDICATORS",
        "misp_feed",
        "create_indicators",
        "Create indicators from attributes.",
    ),
    opt(
        "MISP_FEED_CREATE_OBSERVABLES",
        "misp_feed",
        "create_observables",
        "Create observables from attributes.",
    ),
    opt(
        "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
        "misp_feed",
        "create_object_observables",
        "Create a text observable for each MISP object.",
    ),
    env_alias(
        opt(
            "MISP_FEED_CREATE_TAGS_AS_LABELS",
            "misp_feed",
            "create_tags_as_labels",
            "Turn tags into labels.",
        ),
        &["MISP_CREATE_TAGS_AS_LABELS"],
    ),
    key_alias(
        env_alias(
            opt(
                "MISP_FEED_GUESS_THREATS_FROM_TAGS",
                "misp_feed",
                "guess_threats_from_tags",
                "Link threats found in OpenCTI by tag value.",
            ),
            &["MISP_FEED_GUESS_THREAT_FROM_TAGS"],
        ),
        &["guess_threat_from_tags"],
    ),
    opt(
        "MISP_FEED_AUTHOR_FROM_TAGS",
        "misp_feed",
        "author_from_tags",
        "Take the author from creator tags.",
    ),
    opt(
        "MISP_FEED_MARKINGS_FROM_TAGS",
        "misp_feed",
        "markings_from_tags",
        "Take markings from marking tags.",
    ),
    opt(
        "MISP_FEED_IMPORT_TO_IDS_NO_SCORE",
        "misp_feed",
        "import_to_ids_no_score",
        "Score of what is made from attributes whose to_ids is false (unset: the event threat level decides).",
    ),
    opt(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
        "misp_feed",
        "import_unsupported_observables_as_text",
        "Import attributes of unsupported types as text observables.",
    ),
    opt(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
        "misp_feed",
        "import_unsupported_observables_as_text_transparent",
        "A text observable takes the plain attribute value instead of a composed key.",
    ),
    opt(
        "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
        "misp_feed",
        "import_with_attachments",
        "Import attachment and malware-sample files.",
    ),
    opt(
        "MISP_FEED_REFERENCE_COMPAT",
        "misp_feed",
        "reference_compat",
        "Reproduce the Python connector's output exactly, its defects included.",
    ),
    // aws
    opt(
        "AWS_ENDPOINT_URL",
        "aws",
        "endpoint_url",
        "S3-compatible endpoint (MinIO ...); unset uses AWS.",
    ),
    opt(
        "AWS_ACCESS_KEY_ID",
        "aws",
        "access_key_id",
        "Access key id; unset uses the usual AWS credential chain.",
    ),
    secret(opt(
        "AWS_SECRET_ACCESS_KEY",
        "aws",
        "secret_access_key",
        "Secret access key.",
    )),
    key_alias(
        env_alias(
            opt("AWS_REGION", "aws", "region", "Bucket region."),
            &["AWS_DEFAULT_REGION"],
        ),
        &["default_region"],
    ),
    opt(
        "AWS_S3_FORCE_PATH_STYLE",
        "aws",
        "s3_force_path_style",
        "Path-style bucket addressing (default: on when an endpoint is set).",
    ),
];

/// The option read from environment variable `env` (its canonical name).
pub fn option_spec(env: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.env == env)
}

// ---------------------------------------------------------------------------------------------
// Errors and warnings
// ---------------------------------------------------------------------------------------------

/// Why the configuration cannot be used. Its text is one line, names the variable and shows
/// the offending value unless the option is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {variable} = {shown}: expected {expected}", shown = shown_value(.value))]
    Invalid {
        /// Variable and, for file values, where in the file.
        variable: String,
        /// `None` for a secret: never shown.
        value: Option<String>,
        expected: String,
    },
    #[error("missing {variable}: {reason}")]
    Missing { variable: String, reason: String },
    #[error("cannot read configuration file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

fn shown_value(value: &Option<String>) -> String {
    match value {
        None => "<redacted>".to_string(),
        Some(text) => {
            const LIMIT: usize = 120;
            if text.chars().count() > LIMIT {
                let head: String = text.chars().take(LIMIT).collect();
                format!("{head:?}...")
            } else {
                format!("{text:?}")
            }
        }
    }
}

/// Settings with the warnings raised while reading them (deprecated names, ignored keys),
/// to be logged once logging is set up (logging itself depends on the settings).
#[derive(Debug, Clone)]
pub struct LoadedSettings {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Raw values: what the environment or the file gave, before typing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RawValue {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
struct Raw {
    value: RawValue,
    /// How the error line names it: `MISP_FEED_URL` or `MISP_FEED_URL (misp_feed.url in config.yml)`.
    origin: String,
    secret: bool,
}

impl Raw {
    fn shown(&self) -> Option<String> {
        if self.secret {
            return None;
        }
        Some(match &self.value {
            RawValue::Text(text) => text.clone(),
            RawValue::Bool(flag) => flag.to_string(),
            RawValue::Int(number) => number.to_string(),
            RawValue::Float(number) => number.to_string(),
            RawValue::List(items) => items.join(","),
        })
    }

    fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            variable: self.origin.clone(),
            value: self.shown(),
            expected: expected.into(),
        }
    }
}

struct Sources<'a> {
    env: &'a HashMap<String, String>,
    file: serde_yaml_ng::Mapping,
}

fn yaml_scalar(value: &serde_yaml_ng::Value) -> Option<RawValue> {
    use serde_yaml_ng::Value;
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(RawValue::Bool(*flag)),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                Some(RawValue::Int(int))
            } else {
                number.as_f64().map(RawValue::Float)
            }
        }
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(RawValue::Text(text.clone())),
        Value::Sequence(items) => Some(RawValue::List(
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .map(|text| text.trim().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
        )),
        Value::Tagged(tagged) => yaml_scalar(&tagged.value),
        Value::Mapping(_) => Some(RawValue::Text("<mapping>".to_string())),
    }
}

impl Sources<'_> {
    fn file_value(&self, section: &str, key: &str) -> Option<&serde_yaml_ng::Value> {
        self.file
            .get(section)
            .and_then(|section| section.as_mapping())
            .and_then(|mapping| mapping.get(key))
    }

    /// The value of an option: environment (canonical name, then aliases) over the file
    /// (canonical key, then aliases). Empty values count as unset, as pycti reads them.
    fn raw(&self, spec: &OptionSpec) -> Option<Raw> {
        for name in std::iter::once(&spec.env).chain(spec.env_aliases.iter()) {
            if let Some(text) = self.env.get(*name)
                && !text.trim().is_empty()
            {
                return Some(Raw {
                    value: RawValue::Text(text.clone()),
                    origin: (*name).to_string(),
                    secret: spec.secret,
                });
            }
        }
        for key in std::iter::once(&spec.key).chain(spec.key_aliases.iter()) {
            if let Some(value) = self.file_value(spec.section, key).and_then(yaml_scalar) {
                return Some(Raw {
                    value,
                    origin: format!("{} ({}.{} in config.yml)", spec.env, spec.section, key),
                    secret: spec.secret,
                });
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Typed readers
// ---------------------------------------------------------------------------------------------

const BOOL_ACCEPTED: &str = "a boolean: true/false, yes/no, on/off, t/f, y/n or 1/0 (any case)";

/// Booleans as pydantic reads them (which is what the Python connector's settings use), a
/// superset of pycti's `yes/true/True/no/false/False`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "t" | "y" | "1" => Some(true),
        "false" | "no" | "off" | "f" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn to_bool(raw: &Raw) -> Result<bool, ConfigError> {
    match &raw.value {
        RawValue::Bool(flag) => Ok(*flag),
        RawValue::Int(0) => Ok(false),
        RawValue::Int(1) => Ok(true),
        RawValue::Text(text) => parse_bool(text).ok_or_else(|| raw.invalid(BOOL_ACCEPTED)),
        _ => Err(raw.invalid(BOOL_ACCEPTED)),
    }
}

fn to_text(raw: &Raw) -> Result<String, ConfigError> {
    match &raw.value {
        RawValue::Text(text) => Ok(text.trim().to_string()),
        RawValue::Int(number) => Ok(number.to_string()),
        RawValue::Float(number) => Ok(number.to_string()),
        RawValue::Bool(flag) => Ok(flag.to_string()),
        RawValue::List(_) => Err(raw.invalid("a single text value")),
    }
}

fn to_int(raw: &Raw, expected: &str) -> Result<i64, ConfigError> {
    match &raw.value {
        RawValue::Int(number) => Ok(*number),
        RawValue::Float(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
            Ok(*number as i64)
        }
        RawValue::Text(text) => {
            let text = text.trim();
            if let Ok(number) = text.parse::<i64>() {
                return Ok(number);
            }
            match text.parse::<f64>() {
                Ok(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => Ok(number as i64),
                _ => Err(raw.invalid(expected)),
            }
        }
        _ => Err(raw.invalid(expected)),
    }
}

fn to_bounded(raw: &Raw, min: i64, max: i64, expected: &str) -> Result<i64, ConfigError> {
    let number = to_int(raw, expected)?;
    if (min..=max).contains(&number) {
        Ok(number)
    } else {
        Err(raw.invalid(expected))
    }
}

fn to_float(raw: &Raw, expected: &str) -> Result<f64, ConfigError> {
    let number = match &raw.value {
        RawValue::Int(number) => *number as f64,
        RawValue::Float(number) => *number,
        RawValue::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| raw.invalid(expected))?,
        _ => return Err(raw.invalid(expected)),
    };
    if number.is_finite() {
        Ok(number)
    } else {
        Err(raw.invalid(expected))
    }
}

fn to_seconds(raw: &Raw) -> Result<Duration, ConfigError> {
    const EXPECTED: &str = "a number of seconds greater than 0";
    let seconds = to_float(raw, EXPECTED)?;
    if seconds > 0.0 && seconds < 1.0e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(raw.invalid(EXPECTED))
    }
}

/// Bytes, with an optional K/M/G suffix (powers of 1024; `KB`, `KiB`, `MB`... also read as such).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

fn to_size(raw: &Raw) -> Result<u64, ConfigError> {
    const EXPECTED: &str =
        "a size in bytes greater than 0, optionally with a K, M or G suffix (512M)";
    let size = match &raw.value {
        RawValue::Int(number) => u64::try_from(*number).ok(),
        RawValue::Text(text) => parse_size(text),
        _ => None,
    };
    match size {
        Some(size) if size > 0 => Ok(size),
        _ => Err(raw.invalid(EXPECTED)),
    }
}

fn to_list(raw: &Raw) -> Vec<String> {
    let items: Vec<String> = match &raw.value {
        RawValue::List(items) => items.iter().map(|item| item.trim().to_string()).collect(),
        RawValue::Text(text) => text
            .split(',')
            .map(|item| item.trim().to_string())
            .collect(),
        other => vec![
            Raw {
                value: other.clone(),
                origin: String::new(),
                secret: false,
            }
            .shown()
            .unwrap_or_default(),
        ],
    };
    items.into_iter().filter(|item| !item.is_empty()).collect()
}

/// An ISO-8601 duration as pydantic reads it (`P30D`, `PT5M`, `P1W`, `P1Y2M3DT4H5M6.5S`, a
/// leading `-`; a year is 365 days and a month 30), or `[-]HH:MM[:SS[.f]]`. Signed seconds.
pub fn parse_duration_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let seconds = if let Some(iso) = body.strip_prefix(['P', 'p']) {
        parse_iso_duration_body(iso)?
    } else {
        parse_clock_duration(body)?
    };
    Some(if negative { -seconds } else { seconds })
}

fn parse_iso_duration_body(body: &str) -> Option<f64> {
    const DAY: f64 = 86_400.0;
    let mut total = 0.0;
    let mut in_time = false;
    let mut number = String::new();
    let mut components = 0;
    for ch in body.chars() {
        match ch.to_ascii_uppercase() {
            'T' if !in_time && number.is_empty() => in_time = true,
            digit if digit.is_ascii_digit() || digit == '.' || digit == ',' => {
                number.push(if digit == ',' { '.' } else { digit })
            }
            unit => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let factor = match (in_time, unit) {
                    (false, 'Y') => 365.0 * DAY,
                    (false, 'M') => 30.0 * DAY,
                    (false, 'W') => 7.0 * DAY,
                    (false, 'D') => DAY,
                    (true, 'H') => 3600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
                total += value * factor;
                components += 1;
            }
        }
    }
    if !number.is_empty() || components == 0 {
        return None;
    }
    Some(total)
}

fn parse_clock_duration(body: &str) -> Option<f64> {
    let parts: Vec<&str> = body.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let hours: u64 = parts.first()?.parse().ok()?;
    let minutes: u64 = parts.get(1)?.parse().ok()?;
    let seconds: f64 = match parts.get(2) {
        Some(text) => text.parse().ok()?,
        None => 0.0,
    };
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some((hours * 3600 + minutes * 60) as f64 + seconds)
}

const DURATION_ACCEPTED: &str = "an ISO-8601 duration such as PT5M, PT1H or P1D (or HH:MM:SS)";

fn to_duration(raw: &Raw) -> Result<Duration, ConfigError> {
    let seconds = match &raw.value {
        RawValue::Int(number) => *number as f64,
        RawValue::Float(number) => *number,
        RawValue::Text(text) => {
            parse_duration_seconds(text).ok_or_else(|| raw.invalid(DURATION_ACCEPTED))?
        }
        _ => return Err(raw.invalid(DURATION_ACCEPTED)),
    };
    if seconds.is_finite() && (0.0..1.0e11).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(raw.invalid(DURATION_ACCEPTED))
    }
}

/// A date or datetime as Python's `datetime.fromisoformat` reads it (`2023-10-01`,
/// `20231001`, `2023-10-01T12:00`, `2023-10-01 12:00:00.5+02:00`, `...Z`); no offset means UTC.
pub fn parse_iso_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let date_len = if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
        10
    } else {
        8
    };
    let date_text = text.get(..date_len)?;
    let date = if date_len == 10 {
        NaiveDate::parse_from_str(date_text, "%Y-%m-%d").ok()?
    } else {
        NaiveDate::parse_from_str(date_text, "%Y%m%d").ok()?
    };
    let rest = text.get(date_len..)?;
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    let mut time_text = rest.strip_prefix(['T', 't', ' '])?;
    let mut offset_seconds: i32 = 0;
    if let Some(stripped) = time_text.strip_suffix(['Z', 'z']) {
        time_text = stripped;
    } else if let Some(position) = time_text.rfind(['+', '-']) {
        let (clock, offset) = time_text.split_at(position);
        offset_seconds = parse_offset(offset)?;
        time_text = clock;
    }
    let time = ["%H:%M:%S%.f", "%H:%M", "%H%M%S%.f", "%H%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(time_text, format).ok())
        .or_else(|| {
            let hour: u32 = time_text.parse().ok().filter(|_| time_text.len() == 2)?;
            NaiveTime::from_hms_opt(hour, 0, 0)
        })?;
    let local = date.and_time(time);
    let offset = FixedOffset::east_opt(offset_seconds)?;
    local
        .and_local_timezone(offset)
        .single()
        .map(|moment| moment.with_timezone(&Utc))
}

fn parse_offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let digits: String = text.get(1..)?.chars().filter(|c| *c != ':').collect();
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 | 6 => (
            digits.get(..2)?.parse::<i32>().ok()?,
            digits.get(2..4)?.parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

const IMPORT_FROM_ACCEPTED: &str = "a date (2023-10-01), a datetime (2023-10-01T00:00:00Z) or an ISO-8601 duration counted back from now (P30D)";

/// `import_from_date` as the Python connector reads it: a date or datetime, else a duration
/// counted back from `now`.
pub fn parse_import_from_date(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(moment) = parse_iso_datetime(text) {
        return Some(moment);
    }
    let seconds = parse_duration_seconds(text)?;
    let back = chrono::Duration::try_milliseconds((seconds * 1000.0).round() as i64)?;
    now.checked_sub_signed(back)
}

/// `url` without its password (and user), for logs and error lines.
pub fn mask_url_credentials(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => text.to_string(),
    }
}

fn to_http_url(raw: &Raw) -> Result<String, ConfigError> {
    const EXPECTED: &str = "an http:// or https:// URL";
    let text = to_text(raw)?;
    match url::Url::parse(&text) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            Ok(text.trim_end_matches('/').to_string())
        }
        _ => Err(url_invalid(raw, &text, EXPECTED)),
    }
}

fn url_invalid(raw: &Raw, text: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        variable: raw.origin.clone(),
        value: if raw.secret {
            None
        } else {
            Some(mask_url_credentials(text))
        },
        expected: expected.to_string(),
    }
}

fn to_feed_url(raw: &Raw) -> Result<String, ConfigError> {
    const EXPECTED: &str = "an http://, https:// or file:// URL, or a local folder path";
    let text = to_text(raw)?;
    // Python strips every trailing '/'; a bare "/" (the root folder) stays usable.
    let stripped = text.trim_end_matches('/');
    let url = if stripped.is_empty() {
        text.as_str()
    } else {
        stripped
    };
    if url.contains("://") {
        match url::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
            Ok(parsed) if parsed.scheme() == "file" => {}
            _ => return Err(url_invalid(raw, &text, EXPECTED)),
        }
    }
    Ok(url.to_string())
}

fn to_existing_file(raw: &Raw) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(to_text(raw)?);
    if path.is_file() {
        Ok(path)
    } else {
        Err(raw.invalid("the path of an existing, readable PEM file"))
    }
}

fn parse_custom_headers(
    raw: &Raw,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let text = to_text(raw)?;
    let mut headers = Vec::new();
    for (index, pair) in text.trim().split(';').enumerate() {
        if pair.trim().is_empty() {
            continue;
        }
        match pair.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                headers.push((name.trim().to_string(), Secret::new(value.trim())));
            }
            // pycti ignores a malformed pair with a warning; so do we, without its content.
            _ => warnings.push(format!(
                "{}: header pair #{} is not \"name:value\" and is ignored",
                raw.origin,
                index + 1
            )),
        }
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

struct Loader<'a> {
    sources: Sources<'a>,
    warnings: Vec<String>,
}

impl Loader<'_> {
    fn get(&self, env: &'static str) -> Result<Option<Raw>, ConfigError> {
        let spec = option_spec(env).ok_or_else(|| ConfigError::Invalid {
            variable: env.to_string(),
            value: None,
            expected: "an option known to this build (internal error: option table incomplete)"
                .to_string(),
        })?;
        Ok(self.sources.raw(spec))
    }

    fn bool(&self, env: &'static str, target: &mut bool) -> Result<(), ConfigError> {
        if let Some(raw) = self.get(env)? {
            *target = to_bool(&raw)?;
        }
        Ok(())
    }

    fn text(&self, env: &'static str) -> Result<Option<String>, ConfigError> {
        self.get(env)?.map(|raw| to_text(&raw)).transpose()
    }

    fn secret(&self, env: &'static str) -> Result<Option<Secret>, ConfigError> {
        Ok(self.text(env)?.map(Secret::new))
    }

    fn bounded(
        &self,
        env: &'static str,
        min: i64,
        max: i64,
        expected: &str,
    ) -> Result<Option<i64>, ConfigError> {
        self.get(env)?
            .map(|raw| to_bounded(&raw, min, max, expected))
            .transpose()
    }
}

fn parse_yaml(text: &str) -> Result<serde_yaml_ng::Mapping, ConfigError> {
    if text.trim().is_empty() {
        return Ok(serde_yaml_ng::Mapping::new());
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|error| ConfigError::File {
            path: PathBuf::from("config.yml"),
            // The location and kind only: serde_yaml_ng's messages do not quote values.
            reason: format!("invalid YAML: {error}"),
        })?;
    match value {
        serde_yaml_ng::Value::Null => Ok(serde_yaml_ng::Mapping::new()),
        serde_yaml_ng::Value::Mapping(mapping) => Ok(mapping),
        _ => Err(ConfigError::File {
            path: PathBuf::from("config.yml"),
            reason:
                "the top level must be a mapping of sections (opencti, connector, misp_feed, aws)"
                    .to_string(),
        }),
    }
}

impl Settings {
    /// Reads the process environment and `config_file` (or `./config.yml` when it exists).
    /// Deprecation and ignored-key warnings go to `tracing`; use [`Settings::load_with_warnings`]
    /// when logging is set up only after loading.
    pub fn load(config_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let loaded = Settings::load_with_warnings(config_file)?;
        for warning in &loaded.warnings {
            tracing::warn!("{warning}");
        }
        Ok(loaded.settings)
    }

    /// As [`Settings::load`], returning the warnings instead of logging them.
    pub fn load_with_warnings(config_file: Option<&Path>) -> Result<LoadedSettings, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let default_file = Path::new("config.yml");
        let path = match config_file {
            Some(path) => Some(path),
            None if default_file.is_file() => Some(default_file),
            None => None,
        };
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                        path: path.to_path_buf(),
                        reason: error.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Settings::resolve(&env, text.as_deref(), Utc::now()).map_err(|error| match (error, path) {
            (ConfigError::File { reason, .. }, Some(path)) => ConfigError::File {
                path: path.to_path_buf(),
                reason,
            },
            (error, _) => error,
        })
    }

    /// Environment over `yaml_text` over defaults; `now` anchors a duration-valued
    /// `import_from_date`.
    pub fn load_from(
        env: &HashMap<String, String>,
        yaml_text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Settings, ConfigError> {
        Settings::resolve(env, yaml_text, now).map(|loaded| loaded.settings)
    }

    /// As [`Settings::load_from`], with the warnings.
    pub fn resolve(
        env: &HashMap<String, String>,
        yaml_text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<LoadedSettings, ConfigError> {
        let file = match yaml_text {
            Some(text) => parse_yaml(text)?,
            None => serde_yaml_ng::Mapping::new(),
        };
        // pydantic-settings reads variable names case-insensitively; an exact upper-case name wins.
        let mut env_upper: HashMap<String, String> = env
            .iter()
            .filter(|(name, _)| name.to_ascii_uppercase() != **name)
            .map(|(name, value)| (name.to_ascii_uppercase(), value.clone()))
            .collect();
        env_upper.extend(
            env.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        let mut loader = Loader {
            sources: Sources {
                env: &env_upper,
                file,
            },
            warnings: Vec::new(),
        };
        let mut settings = Settings::default();
        read_opencti(&mut loader, &mut settings.opencti)?;
        read_connector(&mut loader, &mut settings.connector)?;
        read_misp_feed(&mut loader, &mut settings.misp_feed, now)?;
        read_deprecated_interval(&mut loader, &mut settings.connector)?;
        if settings.connector.duration_period.is_zero() {
            // pycti runs once and stops when the period is zero.
            settings.connector.run_and_terminate = true;
        }
        read_aws(&mut loader, &mut settings.aws)?;
        warn_unknown_names(&mut loader);
        validate(&settings)?;
        Ok(LoadedSettings {
            settings,
            warnings: loader.warnings,
        })
    }
}

fn read_opencti(loader: &mut Loader<'_>, opencti: &mut OpenCtiSettings) -> Result<(), ConfigError> {
    if let Some(raw) = loader.get("OPENCTI_URL")? {
        opencti.url = Some(to_http_url(&raw)?);
    }
    opencti.token = loader.secret("OPENCTI_TOKEN")?;
    loader.bool("OPENCTI_SSL_VERIFY", &mut opencti.ssl_verify)?;
    if let Some(raw) = loader.get("OPENCTI_CA_FILE")? {
        opencti.ca_file = Some(to_existing_file(&raw)?);
    }
    loader.bool("OPENCTI_JSON_LOGGING", &mut opencti.json_logging)?;
    if let Some(raw) = loader.get("OPENCTI_CUSTOM_HEADERS")? {
        opencti.custom_headers = parse_custom_headers(&raw, &mut loader.warnings)?;
    }
    Ok(())
}

fn read_connector(
    loader: &mut Loader<'_>,
    connector: &mut ConnectorSettings,
) -> Result<(), ConfigError> {
    connector.id = loader.text("CONNECTOR_ID")?;
    if let Some(raw) = loader.get("CONNECTOR_TYPE")? {
        let value = to_text(&raw)?;
        if !value.eq_ignore_ascii_case("EXTERNAL_IMPORT") {
            return Err(raw.invalid("EXTERNAL_IMPORT (this connector is an external import)"));
        }
        connector.connector_type = "EXTERNAL_IMPORT".to_string();
    }
    if let Some(name) = loader.text("CONNECTOR_NAME")? {
        connector.name = name;
    }
    if let Some(raw) = loader.get("CONNECTOR_SCOPE")? {
        connector.scope = to_list(&raw);
    }
    if let Some(raw) = loader.get("CONNECTOR_LOG_LEVEL")? {
        let level = to_text(&raw)?.to_ascii_lowercase();
        if !matches!(
            level.as_str(),
            "debug" | "info" | "warn" | "warning" | "error"
        ) {
            return Err(raw.invalid("one of debug, info, warn, warning, error (any case)"));
        }
        connector.log_level = level;
    }
    if let Some(raw) = loader.get("CONNECTOR_DURATION_PERIOD")? {
        connector.duration_period = to_duration(&raw)?;
    }
    loader.bool("CONNECTOR_AUTO", &mut connector.auto)?;
    loader.bool("CONNECTOR_ONLY_CONTEXTUAL", &mut connector.only_contextual)?;
    loader.bool(
        "CONNECTOR_RUN_AND_TERMINATE",
        &mut connector.run_and_terminate,
    )?;
    let protocol = loader.get("CONNECTOR_QUEUE_PROTOCOL")?;
    if let Some(raw) = &protocol {
        if raw.origin == "QUEUE_PROTOCOL" {
            loader
                .warnings
                .push("QUEUE_PROTOCOL is deprecated, use CONNECTOR_QUEUE_PROTOCOL".to_string());
        }
        connector.queue_protocol = match to_text(raw)?.to_ascii_lowercase().as_str() {
            "amqp" => QueueProtocol::Amqp,
            "api" => QueueProtocol::Api,
            _ => return Err(raw.invalid("amqp or api")),
        };
    }
    if let Some(raw) = loader.get("CONNECTOR_QUEUE_THRESHOLD")? {
        const EXPECTED: &str = "a number of megabytes greater than 0";
        let threshold = to_float(&raw, EXPECTED)?;
        if threshold <= 0.0 {
            return Err(raw.invalid(EXPECTED));
        }
        connector.queue_threshold_mb = threshold;
    }
    loader.bool("CONNECTOR_SEND_TO_QUEUE", &mut connector.send_to_queue)?;
    loader.bool(
        "CONNECTOR_SEND_TO_DIRECTORY",
        &mut connector.send_to_directory,
    )?;
    if let Some(path) = loader.text("CONNECTOR_SEND_TO_DIRECTORY_PATH")? {
        connector.send_to_directory_path = Some(PathBuf::from(path));
    }
    if let Some(days) = loader.bounded(
        "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
        0,
        i64::from(u32::MAX),
        "a whole number of days, 0 or more (0 keeps files forever)",
    )? {
        connector.send_to_directory_retention_days = days as u32;
    }
    loader.bool("CONNECTOR_EXPOSE_METRICS", &mut connector.expose_metrics)?;
    if let Some(port) = loader.bounded(
        "CONNECTOR_METRICS_PORT",
        1,
        65_535,
        "a TCP port from 1 to 65535",
    )? {
        connector.metrics_port = port as u16;
    }
    for (env, target) in [
        (
            "CONNECTOR_METRICS_NAMESPACE",
            &mut connector.metrics_namespace,
        ),
        (
            "CONNECTOR_METRICS_SUBSYSTEM",
            &mut connector.metrics_subsystem,
        ),
    ] {
        if let Some(raw) = loader.get(env)? {
            let name = to_text(&raw)?;
            let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(raw.invalid(
                    "letters, digits and '_', not starting with a digit (a Prometheus name part)",
                ));
            }
            *target = name;
        }
    }
    Ok(())
}

fn read_misp_feed(
    loader: &mut Loader<'_>,
    feed: &mut MispFeedSettings,
    now: DateTime<Utc>,
) -> Result<(), ConfigError> {
    if let Some(raw) = loader.get("MISP_FEED_SOURCE_TYPE")? {
        feed.source_type = match to_text(&raw)?.to_ascii_lowercase().as_str() {
            "url" => SourceType::Url,
            "s3" => SourceType::S3,
            _ => return Err(raw.invalid("url or s3")),
        };
    }
    if let Some(raw) = loader.get("MISP_FEED_URL")? {
        feed.url = Some(to_feed_url(&raw)?);
    }
    loader.bool("MISP_FEED_SSL_VERIFY", &mut feed.ssl_verify)?;
    feed.http_authorization_header = loader.secret("MISP_FEED_HTTP_AUTHORIZATION_HEADER")?;
    if let Some(raw) = loader.get("MISP_FEED_CA_BUNDLE")? {
        feed.ca_bundle = Some(to_existing_file(&raw)?);
    }
    feed.bucket_name = loader.text("MISP_FEED_BUCKET_NAME")?;
    feed.bucket_prefix = loader.text("MISP_FEED_BUCKET_PREFIX")?;
    loader.bool(
        "MISP_FEED_S3_DELETE_AFTER_IMPORT",
        &mut feed.s3_delete_after_import,
    )?;
    if let Some(raw) = loader.get("MISP_FEED_IMPORT_FROM_DATE")? {
        let text = to_text(&raw)?;
        feed.import_from_date = Some(
            parse_import_from_date(&text, now).ok_or_else(|| raw.invalid(IMPORT_FROM_ACCEPTED))?,
        );
    }
    if let Some(path) = loader.text("MISP_FEED_LEDGER_PATH")? {
        feed.ledger_path = PathBuf::from(path);
    }
    if let Some(raw) = loader.get("MISP_FEED_MAX_FILE_SIZE")? {
        feed.max_file_size = to_size(&raw)?;
    }
    if let Some(raw) = loader.get("MISP_FEED_CONNECT_TIMEOUT")? {
        feed.connect_timeout = to_seconds(&raw)?;
    }
    if let Some(raw) = loader.get("MISP_FEED_READ_TIMEOUT")? {
        feed.read_timeout = to_seconds(&raw)?;
    }
    if let Some(retries) = loader.bounded(
        "MISP_FEED_HTTP_RETRIES",
        0,
        100,
        "a whole number from 0 to 100",
    )? {
        feed.http_retries = retries as u32;
    }
    if let Some(count) = loader.bounded(
        "MISP_FEED_FETCH_CONCURRENCY",
        1,
        256,
        "a whole number from 1 to 256",
    )? {
        feed.fetch_concurrency = count as usize;
    }
    if let Some(count) = loader.bounded(
        "MISP_FEED_MAX_ATTEMPTS",
        1,
        1_000_000,
        "a whole number of 1 or more",
    )? {
        feed.max_attempts = count as u32;
    }
    if let Some(raw) = loader.get("MISP_FEED_RETRY_BACKOFF")? {
        const EXPECTED: &str = "a number of seconds, 0 or more";
        let seconds = to_float(&raw, EXPECTED)?;
        if !(0.0..1.0e9).contains(&seconds) {
            return Err(raw.invalid(EXPECTED));
        }
        feed.retry_backoff = Duration::from_secs_f64(seconds);
    }
    if let Some(raw) = loader.get("MISP_FEED_HEARTBEAT_PERIOD")? {
        const EXPECTED: &str = "a number of seconds, more than 0";
        let seconds = to_float(&raw, EXPECTED)?;
        if !(0.001..1.0e7).contains(&seconds) {
            return Err(raw.invalid(EXPECTED));
        }
        feed.heartbeat_period = Duration::from_secs_f64(seconds);
    }
    let convert = &mut feed.convert;
    loader.bool("MISP_FEED_CREATE_REPORTS", &mut convert.create_reports)?;
    if let Some(report_type) = loader.text("MISP_FEED_REPORT_TYPE")? {
        convert.report_type = report_type;
    }
    loader.bool(
        "MISP_FEED_CREATE_INDICATORS",
        &mut convert.create_indicators,
    )?;
    loader.bool(
        "MISP_FEED_CREATE_OBSERVABLES",
        &mut convert.create_observables,
    )?;
    loader.bool(
        "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
        &mut convert.create_object_observables,
    )?;
    loader.bool(
        "MISP_FEED_CREATE_TAGS_AS_LABELS",
        &mut convert.create_tags_as_labels,
    )?;
    loader.bool(
        "MISP_FEED_GUESS_THREATS_FROM_TAGS",
        &mut convert.guess_threats_from_tags,
    )?;
    loader.bool("MISP_FEED_AUTHOR_FROM_TAGS", &mut convert.author_from_tags)?;
    loader.bool(
        "MISP_FEED_MARKINGS_FROM_TAGS",
        &mut convert.markings_from_tags,
    )?;
    if let Some(raw) = loader.get("MISP_FEED_IMPORT_TO_IDS_NO_SCORE")? {
        convert.import_to_ids_no_score =
            Some(to_int(&raw, "a whole number (a score, usually 0 to 100)")?);
    }
    loader.bool(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
        &mut convert.import_unsupported_observables_as_text,
    )?;
    loader.bool(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
        &mut convert.import_unsupported_observables_as_text_transparent,
    )?;
    loader.bool(
        "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
        &mut convert.import_with_attachments,
    )?;
    loader.bool("MISP_FEED_REFERENCE_COMPAT", &mut convert.reference_compat)?;
    Ok(())
}

/// `MISP_FEED_INTERVAL` (minutes) replaces the run period whenever it is set, as the Python
/// connector's settings migration does, even over `CONNECTOR_DURATION_PERIOD`.
fn read_deprecated_interval(
    loader: &mut Loader<'_>,
    connector: &mut ConnectorSettings,
) -> Result<(), ConfigError> {
    let Some(raw) = loader.get("MISP_FEED_INTERVAL")? else {
        return Ok(());
    };
    const EXPECTED: &str =
        "a whole number of minutes, 0 or more (deprecated: use CONNECTOR_DURATION_PERIOD)";
    let minutes = to_bounded(&raw, 0, 52_560_000, EXPECTED)?;
    connector.duration_period = Duration::from_secs(minutes as u64 * 60);
    loader.warnings.push(format!(
        "MISP_FEED_INTERVAL is deprecated, use CONNECTOR_DURATION_PERIOD (PT{minutes}M); \
         as in the Python connector, its {minutes} minute(s) replace CONNECTOR_DURATION_PERIOD"
    ));
    Ok(())
}

fn read_aws(loader: &mut Loader<'_>, aws: &mut AwsSettings) -> Result<(), ConfigError> {
    if let Some(raw) = loader.get("AWS_ENDPOINT_URL")? {
        aws.endpoint_url = Some(to_http_url(&raw)?);
    }
    aws.access_key_id = loader.text("AWS_ACCESS_KEY_ID")?;
    aws.secret_access_key = loader.secret("AWS_SECRET_ACCESS_KEY")?;
    aws.region = loader.text("AWS_REGION")?;
    if let Some(raw) = loader.get("AWS_S3_FORCE_PATH_STYLE")? {
        aws.force_path_style = Some(to_bool(&raw)?);
    }
    Ok(())
}

/// A misspelled option would otherwise be silently ignored: name the unknown ones of our own
/// namespace (other sections belong to pycti and hold many options we do not need).
fn warn_unknown_names(loader: &mut Loader<'_>) {
    let known_env = |name: &str| {
        OPTIONS
            .iter()
            .any(|spec| spec.env == name || spec.env_aliases.contains(&name))
    };
    let mut unknown: Vec<String> = loader
        .sources
        .env
        .keys()
        .filter(|name| name.starts_with("MISP_FEED_") && !known_env(name))
        .map(|name| format!("unknown environment variable {name} is ignored"))
        .collect();
    if let Some(section) = loader
        .sources
        .file
        .get("misp_feed")
        .and_then(|value| value.as_mapping())
    {
        for key in section.keys().filter_map(|key| key.as_str()) {
            let known = OPTIONS.iter().any(|spec| {
                spec.section == "misp_feed" && (spec.key == key || spec.key_aliases.contains(&key))
            });
            if !known {
                unknown.push(format!(
                    "unknown key misp_feed.{key} in config.yml is ignored"
                ));
            }
        }
    }
    unknown.sort();
    loader.warnings.extend(unknown);
}

fn validate(settings: &Settings) -> Result<(), ConfigError> {
    let missing = |variable: &str, reason: &str| ConfigError::Missing {
        variable: variable.to_string(),
        reason: reason.to_string(),
    };
    let feed = &settings.misp_feed;
    if feed.source_type == SourceType::Url && feed.url.is_none() {
        return Err(missing(
            "MISP_FEED_URL",
            "required when MISP_FEED_SOURCE_TYPE is url",
        ));
    }
    if feed.source_type == SourceType::S3 && feed.bucket_name.is_none() {
        return Err(missing(
            "MISP_FEED_BUCKET_NAME",
            "required when MISP_FEED_SOURCE_TYPE is s3 (MISP_BUCKET_NAME is accepted too)",
        ));
    }
    let connector = &settings.connector;
    if !connector.send_to_queue && !connector.send_to_directory {
        return Err(missing(
            "CONNECTOR_SEND_TO_QUEUE",
            "bundles would go nowhere: set CONNECTOR_SEND_TO_QUEUE=true or CONNECTOR_SEND_TO_DIRECTORY=true",
        ));
    }
    if connector.send_to_directory && connector.send_to_directory_path.is_none() {
        return Err(missing(
            "CONNECTOR_SEND_TO_DIRECTORY_PATH",
            "required when CONNECTOR_SEND_TO_DIRECTORY is true",
        ));
    }
    match &settings.opencti.url {
        None if !connector.send_to_directory => {
            return Err(missing(
                "OPENCTI_URL",
                "required unless CONNECTOR_SEND_TO_DIRECTORY is true (offline mode)",
            ));
        }
        Some(_) if settings.opencti.token.is_none() => {
            return Err(missing("OPENCTI_TOKEN", "required when OPENCTI_URL is set"));
        }
        Some(_) if connector.send_to_queue && connector.id.is_none() => {
            return Err(missing(
                "CONNECTOR_ID",
                "required to push to OpenCTI (a UUIDv4)",
            ));
        }
        _ => {}
    }
    let aws = &settings.aws;
    if aws.access_key_id.is_some() && aws.secret_access_key.is_none() {
        return Err(missing(
            "AWS_SECRET_ACCESS_KEY",
            "required when AWS_ACCESS_KEY_ID is set",
        ));
    }
    if aws.secret_access_key.is_some() && aws.access_key_id.is_none() {
        return Err(missing(
            "AWS_ACCESS_KEY_ID",
            "required when AWS_SECRET_ACCESS_KEY is set",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Summary for `check` and the start-up log
// ---------------------------------------------------------------------------------------------

fn shown_secret(secret: &Option<Secret>) -> String {
    match secret {
        Some(_) => "<set>".to_string(),
        None => "<unset>".to_string(),
    }
}

fn shown_option<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "<unset>".to_string(), |value| value.to_string())
}

/// Whole seconds as an ISO-8601 duration (`PT5M`, `PT1H30M`, `PT0S`).
pub fn format_iso_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::from("PT");
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || total == 0 {
        text.push_str(&format!("{seconds}S"));
    }
    text
}

impl Settings {
    /// Every option as `(environment variable, shown value)`, in the order of [`OPTIONS`]
    /// (deprecated ones excepted). Secrets show only whether they are set; URLs lose their
    /// credentials; the AWS access key id shows only whether it is set.
    pub fn redacted_entries(&self) -> Vec<(&'static str, String)> {
        let (opencti, connector, feed, aws) =
            (&self.opencti, &self.connector, &self.misp_feed, &self.aws);
        let convert = &feed.convert;
        let url = |value: &Option<String>| {
            value
                .as_deref()
                .map_or_else(|| "<unset>".to_string(), mask_url_credentials)
        };
        let path = |value: &Option<PathBuf>| {
            value
                .as_ref()
                .map_or_else(|| "<unset>".to_string(), |p| p.display().to_string())
        };
        let header_names = if opencti.custom_headers.is_empty() {
            "<unset>".to_string()
        } else {
            let names: Vec<&str> = opencti
                .custom_headers
                .iter()
                .map(|(name, _)| name.as_str())
                .collect();
            format!("{} (values hidden)", names.join(";"))
        };
        vec![
            ("OPENCTI_URL", url(&opencti.url)),
            ("OPENCTI_TOKEN", shown_secret(&opencti.token)),
            ("OPENCTI_SSL_VERIFY", opencti.ssl_verify.to_string()),
            ("OPENCTI_CA_FILE", path(&opencti.ca_file)),
            ("OPENCTI_JSON_LOGGING", opencti.json_logging.to_string()),
            ("OPENCTI_CUSTOM_HEADERS", header_names),
            ("CONNECTOR_ID", shown_option(&connector.id)),
            ("CONNECTOR_TYPE", connector.connector_type.clone()),
            ("CONNECTOR_NAME", connector.name.clone()),
            ("CONNECTOR_SCOPE", connector.scope.join(",")),
            ("CONNECTOR_LOG_LEVEL", connector.log_level.clone()),
            (
                "CONNECTOR_DURATION_PERIOD",
                format_iso_duration(connector.duration_period),
            ),
            ("CONNECTOR_AUTO", connector.auto.to_string()),
            (
                "CONNECTOR_ONLY_CONTEXTUAL",
                connector.only_contextual.to_string(),
            ),
            (
                "CONNECTOR_RUN_AND_TERMINATE",
                connector.run_and_terminate.to_string(),
            ),
            (
                "CONNECTOR_QUEUE_PROTOCOL",
                match connector.queue_protocol {
                    QueueProtocol::Amqp => "amqp".to_string(),
                    QueueProtocol::Api => "api".to_string(),
                },
            ),
            (
                "CONNECTOR_QUEUE_THRESHOLD",
                connector.queue_threshold_mb.to_string(),
            ),
            (
                "CONNECTOR_SEND_TO_QUEUE",
                connector.send_to_queue.to_string(),
            ),
            (
                "CONNECTOR_SEND_TO_DIRECTORY",
                connector.send_to_directory.to_string(),
            ),
            (
                "CONNECTOR_SEND_TO_DIRECTORY_PATH",
                path(&connector.send_to_directory_path),
            ),
            (
                "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
                connector.send_to_directory_retention_days.to_string(),
            ),
            (
                "CONNECTOR_EXPOSE_METRICS",
                connector.expose_metrics.to_string(),
            ),
            ("CONNECTOR_METRICS_PORT", connector.metrics_port.to_string()),
            (
                "CONNECTOR_METRICS_NAMESPACE",
                connector.metrics_namespace.clone(),
            ),
            (
                "CONNECTOR_METRICS_SUBSYSTEM",
                connector.metrics_subsystem.clone(),
            ),
            (
                "MISP_FEED_SOURCE_TYPE",
                match feed.source_type {
                    SourceType::Url => "url".to_string(),
                    SourceType::S3 => "s3".to_string(),
                },
            ),
            ("MISP_FEED_URL", url(&feed.url)),
            ("MISP_FEED_SSL_VERIFY", feed.ssl_verify.to_string()),
            (
                "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
                shown_secret(&feed.http_authorization_header),
            ),
            ("MISP_FEED_CA_BUNDLE", path(&feed.ca_bundle)),
            ("MISP_FEED_BUCKET_NAME", shown_option(&feed.bucket_name)),
            ("MISP_FEED_BUCKET_PREFIX", shown_option(&feed.bucket_prefix)),
            (
                "MISP_FEED_S3_DELETE_AFTER_IMPORT",
                feed.s3_delete_after_import.to_string(),
            ),
            (
                "MISP_FEED_IMPORT_FROM_DATE",
                feed.import_from_date
                    .map_or_else(|| "<unset>".to_string(), |date| date.to_rfc3339()),
            ),
            (
                "MISP_FEED_LEDGER_PATH",
                feed.ledger_path.display().to_string(),
            ),
            ("MISP_FEED_MAX_FILE_SIZE", feed.max_file_size.to_string()),
            (
                "MISP_FEED_CONNECT_TIMEOUT",
                feed.connect_timeout.as_secs_f64().to_string(),
            ),
            (
                "MISP_FEED_READ_TIMEOUT",
                feed.read_timeout.as_secs_f64().to_string(),
            ),
            ("MISP_FEED_HTTP_RETRIES", feed.http_retries.to_string()),
            (
                "MISP_FEED_FETCH_CONCURRENCY",
                feed.fetch_concurrency.to_string(),
            ),
            ("MISP_FEED_MAX_ATTEMPTS", feed.max_attempts.to_string()),
            (
                "MISP_FEED_RETRY_BACKOFF",
                feed.retry_backoff.as_secs_f64().to_string(),
            ),
            (
                "MISP_FEED_HEARTBEAT_PERIOD",
                feed.heartbeat_period.as_secs_f64().to_string(),
            ),
            (
                "MISP_FEED_CREATE_REPORTS",
                convert.create_reports.to_string(),
            ),
            ("MISP_FEED_REPORT_TYPE", convert.report_type.clone()),
            (
                "MISP_FEED_CREATE_INDICATORS",
                convert.create_indicators.to_string(),
            ),
            (
                "MISP_FEED_CREATE_OBSERVABLES",
                convert.create_observables.to_string(),
            ),
            (
                "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
                convert.create_object_observables.to_string(),
            ),
            (
                "MISP_FEED_CREATE_TAGS_AS_LABELS",
                convert.create_tags_as_labels.to_string(),
            ),
            (
                "MISP_FEED_GUESS_THREATS_FROM_TAGS",
                convert.guess_threats_from_tags.to_string(),
            ),
            (
                "MISP_FEED_AUTHOR_FROM_TAGS",
                convert.author_from_tags.to_string(),
            ),
            (
                "MISP_FEED_MARKINGS_FROM_TAGS",
                convert.markings_from_tags.to_string(),
            ),
            (
                "MISP_FEED_IMPORT_TO_IDS_NO_SCORE",
                shown_option(&convert.import_to_ids_no_score),
            ),
            (
                "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
                convert.import_unsupported_observables_as_text.to_string(),
            ),
            (
                "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
                convert
                    .import_unsupported_observables_as_text_transparent
                    .to_string(),
            ),
            (
                "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
                convert.import_with_attachments.to_string(),
            ),
            (
                "MISP_FEED_REFERENCE_COMPAT",
                convert.reference_compat.to_string(),
            ),
            ("AWS_ENDPOINT_URL", url(&aws.endpoint_url)),
            (
                "AWS_ACCESS_KEY_ID",
                if aws.access_key_id.is_some() {
                    "<set>".to_string()
                } else {
                    "<unset>".to_string()
                },
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                shown_secret(&aws.secret_access_key),
            ),
            ("AWS_REGION", shown_option(&aws.region)),
            (
                "AWS_S3_FORCE_PATH_STYLE",
                aws.force_path_style
                    .map_or_else(|| "<auto>".to_string(), |flag| flag.to_string()),
            ),
        ]
    }

    /// One `NAME = value` line per option, without any secret: for `check` and the start-up log.
    pub fn redacted_summary(&self) -> String {
        self.redacted_entries()
            .into_iter()
            .map(|(name, value)| format!("{name} = {value}\n"))
            .collect()
    }
}
