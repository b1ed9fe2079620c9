//! `Settings`: what the rest of the crate reads. Its defaults, its `Debug` output and its
//! redacted summary all come from the option table, so none of them can miss an option or
//! show a secret the table marks as one.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::options::OPTIONS;
use super::raw::{Context, Raw, RawValue};
use crate::convert::ConvertOptions;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceType {
    #[default]
    Url,
    S3,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueProtocol {
    #[default]
    Amqp,
    Api,
}

/// The `opencti` section. `Default` is blank (every option unset); [`Settings::default`]
/// holds the table's defaults.
#[derive(Clone, Default)]
pub struct OpenCtiSettings {
    /// `OPENCTI_URL`; `None` means offline (directory sink only).
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub ssl_verify: bool,
    /// Extra CA bundle (PEM) for the platform (ours).
    pub ca_file: Option<PathBuf>,
    pub json_logging: bool,
    /// `OPENCTI_CUSTOM_HEADERS` ("h1:v1;h2:v2"), as pycti reads it.
    pub custom_headers: Vec<(String, Secret)>,
}

/// The `connector` section (blank by `Default`, see [`OpenCtiSettings`]).
#[derive(Clone, Default)]
pub struct ConnectorSettings {
    pub id: Option<String>,
    pub connector_type: String,
    pub name: String,
    pub scope: Vec<String>,
    pub log_level: String,
    /// `CONNECTOR_DURATION_PERIOD`, or the deprecated `MISP_FEED_INTERVAL` minutes.
    pub duration_period: Duration,
    pub auto: bool,
    pub only_contextual: bool,
    pub run_and_terminate: bool,
    pub queue_protocol: QueueProtocol,
    pub queue_threshold_mb: f64,
    pub send_to_queue: bool,
    pub send_to_directory: bool,
    pub send_to_directory_path: Option<PathBuf>,
    /// Days; 0 keeps files forever.
    pub send_to_directory_retention_days: u32,
    pub expose_metrics: bool,
    pub metrics_port: u16,
    pub metrics_namespace: String,
    pub metrics_subsystem: String,
}

/// The `misp_feed` section (blank by `Default`, see [`OpenCtiSettings`]).
#[derive(Clone, Default)]
pub struct MispFeedSettings {
    pub source_type: SourceType,
    /// Trailing `/` removed; `file://` URLs and plain paths are local folders.
    pub url: Option<String>,
    pub ssl_verify: bool,
    pub http_authorization_header: Option<Secret>,
    pub ca_bundle: Option<PathBuf>,
    /// `MISP_FEED_HTTP_HEADERS` ("h1:v1;h2:v2"), checked to be valid headers.
    pub http_headers: Vec<(String, Secret)>,
    /// Mutual TLS: the client certificate (PEM) and its key; set together or not at all.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub bucket_name: Option<String>,
    pub bucket_prefix: Option<String>,
    pub s3_delete_after_import: bool,
    /// Resolved at load time (a duration counts back from then).
    pub import_from_date: Option<DateTime<Utc>>,
    pub ledger_path: PathBuf,
    /// Bytes.
    pub max_file_size: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Longest a whole feed request may take, body included.
    pub fetch_deadline: Duration,
    /// Tries per request after the first.
    pub http_retries: u32,
    pub fetch_concurrency: usize,
    /// Megabytes the events in flight may take together (`crate::pipeline::budget`); 0 (only
    /// from `Default`) sets no budget.
    pub memory_budget_mb: u32,
    /// Failed events are retried by later runs up to this.
    pub max_attempts: u32,
    /// Delay before a failed event's first retry, doubling with each further failure
    /// (capped at 6 h).
    pub retry_backoff: Duration,
    /// How often `run` pings OpenCTI with the state (pycti's PingAlive: 40 s), which is also
    /// how soon a UI reset is noticed.
    pub heartbeat_period: Duration,
    /// A folder of MISP warninglists (`crate::warninglists`); `None`: no list applies.
    pub warninglists_path: Option<PathBuf>,
    /// `MISP_FEED_CREATE_REPORTS` ... `MISP_FEED_REFERENCE_COMPAT`.
    pub convert: ConvertOptions,
    /// `MISP_FEED_IMPORT_TAGS` ... `MISP_FEED_IMPORT_ONLY_PUBLISHED`.
    pub filters: crate::reconciler::filters::ImportFilters,
    /// `MISP_FEED_MAX_ATTRIBUTES`, `MISP_FEED_MAX_EVENTS_PER_RUN`.
    pub guards: crate::reconciler::Guards,
    /// `MISP_FEED_DELTA_PUSH`; see [`MispFeedSettings::delta_push_on`].
    pub delta_push: bool,
}

impl MispFeedSettings {
    /// The delta push applies unless reference compatibility asks for the Python connector's
    /// behaviour, which sends every bundle whole.
    pub(crate) fn delta_push_on(&self) -> bool {
        self.delta_push && !self.convert.reference_compat
    }
}

/// The `aws` section (blank by `Default`, see [`OpenCtiSettings`]).
#[derive(Clone, Default)]
pub struct AwsSettings {
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub region: Option<String>,
    /// `None`: on when an endpoint is set, as MinIO needs.
    pub force_path_style: Option<bool>,
}

/// pycti's local overrides of the broker connection the platform advertises at registration
/// (`MQ_*`, the `mq` section of config.yml); `None` keeps the platform's value.
#[derive(Clone, Default)]
pub struct MqSettings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub vhost: Option<String>,
    pub use_ssl: Option<bool>,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    /// The CA trusted for the broker's certificate: the PEM text itself, or a PEM file path.
    pub use_ssl_ca: Option<String>,
}

#[derive(Clone)]
pub struct Settings {
    pub opencti: OpenCtiSettings,
    pub connector: ConnectorSettings,
    pub misp_feed: MispFeedSettings,
    pub aws: AwsSettings,
    pub mq: MqSettings,
}

impl Settings {
    /// Every option unset; what the defaults and then the sources are applied to.
    fn blank() -> Settings {
        Settings {
            opencti: OpenCtiSettings::default(),
            connector: ConnectorSettings::default(),
            misp_feed: MispFeedSettings::default(),
            aws: AwsSettings::default(),
            mq: MqSettings::default(),
        }
    }
}

impl Default for Settings {
    /// Every option at its default from the table.
    fn default() -> Self {
        let mut settings = Settings::blank();
        let mut context = Context {
            now: Utc::now(),
            warnings: Vec::new(),
        };
        for spec in OPTIONS.iter() {
            let Some(text) = spec.default else { continue };
            let raw = Raw {
                value: RawValue::Text(text.to_string()),
                origin: format!("the default of {}", spec.env),
                secret: spec.secret,
            };
            // Cannot fail: `options::tests::every_default_parses` reads each one.
            let _ = spec.value.read(&mut settings, &raw, &mut context);
        }
        settings
    }
}

impl Settings {
    /// Every option but the deprecated ones as `(environment variable, shown value)`, in the
    /// table's order. Secrets show only whether they are set; URLs lose their credentials.
    pub fn redacted_entries(&self) -> Vec<(&'static str, String)> {
        OPTIONS
            .iter()
            .filter(|spec| !spec.deprecated)
            .map(|spec| (spec.env, spec.shown(self)))
            .collect()
    }

    /// One `NAME = value` line per option, without any secret: for `check` and the logs.
    pub fn redacted_summary(&self) -> String {
        self.redacted_entries()
            .into_iter()
            .map(|(name, value)| format!("{name} = {value}\n"))
            .collect()
    }
}

/// A section's options as the summary shows them, under their `config.yml` keys.
fn debug_section(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    section: &str,
    whole: &Settings,
) -> fmt::Result {
    let mut out = f.debug_struct(name);
    for spec in OPTIONS
        .iter()
        .filter(|spec| spec.section == section && !spec.deprecated)
    {
        out.field(spec.key, &format_args!("{}", spec.shown(whole)));
    }
    out.finish()
}

/// `Debug` through the table: the table reads a whole `Settings`, so the section is lent to
/// a blank one.
macro_rules! debug_through_table {
    ($type:ident, $field:ident) => {
        impl fmt::Debug for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let whole = Settings {
                    $field: self.clone(),
                    ..Settings::blank()
                };
                debug_section(f, stringify!($type), stringify!($field), &whole)
            }
        }
    };
}

debug_through_table!(OpenCtiSettings, opencti);
debug_through_table!(ConnectorSettings, connector);
debug_through_table!(MispFeedSettings, misp_feed);
debug_through_table!(AwsSettings, aws);
debug_through_table!(MqSettings, mq);

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("opencti", &self.opencti)
            .field("connector", &self.connector)
            .field("misp_feed", &self.misp_feed)
            .field("aws", &self.aws)
            .field("mq", &self.mq)
            .finish()
    }
}
