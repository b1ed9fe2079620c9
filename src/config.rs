//! Configuration: every option of the Python MISP Feed connector (same env names, same
//! `config.yml` keys, same defaults) plus ours, resolved as environment over file over default.
//!
//! The struct below is the contract the rest of the crate reads; `Settings::load` fills it.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

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

#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone)]
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
    /// Conversion options, `MISP_FEED_CREATE_REPORTS` ... and `MISP_FEED_REFERENCE_COMPAT`.
    pub convert: ConvertOptions,
}

#[derive(Debug, Clone, Default)]
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
                ssl_verify: true,
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
                convert: ConvertOptions::default(),
            },
            aws: AwsSettings::default(),
        }
    }
}
