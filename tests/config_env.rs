//! The configuration table: every option, in the environment and in `config.yml`, its default,
//! environment-over-file precedence and a rejected value; then aliases, deprecations and the
//! cross-option rules.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use misp_feed::config::{ConfigError, OPTIONS, Scope, Settings, option_spec};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

/// The smallest environment that loads: a platform, its token, an id, and a feed URL.
fn base_env() -> HashMap<String, String> {
    [
        ("OPENCTI_URL", "http://opencti:8080"),
        ("OPENCTI_TOKEN", "base-token-value"),
        ("CONNECTOR_ID", "8f1a7bd0-3a5b-4e9c-9d8e-2f4b6a1c0e11"),
        ("MISP_FEED_URL", "https://feed.example/base"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) type Read = fn(&Settings) -> String;

pub(crate) struct Row {
    pub(crate) env: &'static str,
    /// `section.key` in config.yml.
    pub(crate) yaml: &'static str,
    pub(crate) read: Read,
    /// What `read` gives when the option is unset (`None`: unset is not loadable alone).
    pub(crate) default: Option<&'static str>,
    pub(crate) env_value: &'static str,
    pub(crate) env_expected: &'static str,
    /// A YAML scalar, as written in the file.
    pub(crate) yaml_value: &'static str,
    pub(crate) yaml_expected: &'static str,
    /// A value that must stop start-up (`None`: any text is valid).
    pub(crate) bad: Option<&'static str>,
}

pub(crate) fn opt<T: ToString>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "None".to_string(), |v| v.to_string())
}

fn rows() -> Vec<Row> {
    let mut rows = vec![
        Row {
            env: "OPENCTI_URL",
            yaml: "opencti.url",
            read: |s| opt(&s.opencti.url),
            default: None,
            env_value: "https://cti.example.org/",
            env_expected: "https://cti.example.org",
            yaml_value: "'http://localhost:8080'",
            yaml_expected: "http://localhost:8080",
            bad: Some("not a url"),
        },
        Row {
            env: "OPENCTI_TOKEN",
            yaml: "opencti.token",
            read: |s| {
                s.opencti
                    .token
                    .as_ref()
                    .map_or("None".into(), |t| t.expose().to_string())
            },
            default: None,
            env_value: "env-token-1",
            env_expected: "env-token-1",
            yaml_value: "'yaml-token-2'",
            yaml_expected: "yaml-token-2",
            bad: None,
        },
        Row {
            env: "OPENCTI_SSL_VERIFY",
            yaml: "opencti.ssl_verify",
            read: |s| s.opencti.ssl_verify.to_string(),
            default: Some("false"),
            env_value: "True",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("maybe"),
        },
        Row {
            env: "OPENCTI_CA_FILE",
            yaml: "opencti.ca_file",
            read: |s| opt(&s.opencti.ca_file.as_ref().map(|p| p.display().to_string())),
            default: Some("None"),
            env_value: "{PEM}",
            env_expected: "{PEM}",
            yaml_value: "'{PEM}'",
            yaml_expected: "{PEM}",
            bad: Some("/nonexistent/ca.pem"),
        },
        Row {
            env: "OPENCTI_JSON_LOGGING",
            yaml: "opencti.json_logging",
            read: |s| s.opencti.json_logging.to_string(),
            default: Some("true"),
            env_value: "no",
            env_expected: "false",
            yaml_value: "no",
            yaml_expected: "false",
            bad: Some("jsonl"),
        },
        Row {
            env: "OPENCTI_CUSTOM_HEADERS",
            yaml: "opencti.custom_headers",
            read: |s| {
                s.opencti
                    .custom_headers
                    .iter()
                    .map(|(n, v)| format!("{n}={}", v.expose()))
                    .collect::<Vec<_>>()
                    .join("|")
            },
            default: Some(""),
            env_value: "X-A: 1;X-B:two",
            env_expected: "X-A=1|X-B=two",
            yaml_value: "'X-Tenant:blue'",
            yaml_expected: "X-Tenant=blue",
            bad: None,
        },
        Row {
            env: "CONNECTOR_ID",
            yaml: "connector.id",
            read: |s| opt(&s.connector.id),
            default: None,
            env_value: "11111111-2222-4333-8444-555555555555",
            env_expected: "11111111-2222-4333-8444-555555555555",
            yaml_value: "'66666666-2222-4333-8444-555555555555'",
            yaml_expected: "66666666-2222-4333-8444-555555555555",
            bad: None,
        },
        Row {
            env: "CONNECTOR_TYPE",
            yaml: "connector.type",
            read: |s| s.connector.connector_type.clone(),
            default: Some("EXTERNAL_IMPORT"),
            env_value: "external_import",
            env_expected: "EXTERNAL_IMPORT",
            yaml_value: "'EXTERNAL_IMPORT'",
            yaml_expected: "EXTERNAL_IMPORT",
            bad: Some("STREAM"),
        },
        Row {
            env: "CONNECTOR_NAME",
            yaml: "connector.name",
            read: |s| s.connector.name.clone(),
            default: Some("Misp Feed"),
            env_value: "MISP Feed (CIRCL)",
            env_expected: "MISP Feed (CIRCL)",
            yaml_value: "'Botvrij'",
            yaml_expected: "Botvrij",
            bad: None,
        },
        Row {
            env: "CONNECTOR_SCOPE",
            yaml: "connector.scope",
            read: |s| s.connector.scope.join("|"),
            default: Some("misp-feed"),
            env_value: "misp-feed, report ,",
            env_expected: "misp-feed|report",
            yaml_value: "[a, b]",
            yaml_expected: "a|b",
            bad: None,
        },
        Row {
            env: "CONNECTOR_LOG_LEVEL",
            yaml: "connector.log_level",
            read: |s| s.connector.log_level.clone(),
            default: Some("error"),
            env_value: "INFO",
            env_expected: "info",
            yaml_value: "warning",
            yaml_expected: "warning",
            bad: Some("verbose"),
        },
        Row {
            env: "CONNECTOR_DURATION_PERIOD",
            yaml: "connector.duration_period",
            read: |s| s.connector.duration_period.as_secs_f64().to_string(),
            default: Some("300"),
            env_value: "PT1H30M",
            env_expected: "5400",
            yaml_value: "P1D",
            yaml_expected: "86400",
            bad: Some("5 minutes"),
        },
        Row {
            env: "CONNECTOR_AUTO",
            yaml: "connector.auto",
            read: |s| s.connector.auto.to_string(),
            default: Some("false"),
            env_value: "TRUE",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("2"),
        },
        Row {
            env: "CONNECTOR_ONLY_CONTEXTUAL",
            yaml: "connector.only_contextual",
            read: |s| s.connector.only_contextual.to_string(),
            default: Some("false"),
            env_value: "yes",
            env_expected: "true",
            yaml_value: "1",
            yaml_expected: "true",
            bad: Some("sometimes"),
        },
        Row {
            env: "CONNECTOR_RUN_AND_TERMINATE",
            yaml: "connector.run_and_terminate",
            read: |s| s.connector.run_and_terminate.to_string(),
            default: Some("false"),
            env_value: "on",
            env_expected: "true",
            yaml_value: "yes",
            yaml_expected: "true",
            bad: Some("once"),
        },
        Row {
            env: "CONNECTOR_QUEUE_PROTOCOL",
            yaml: "connector.queue_protocol",
            read: |s| format!("{:?}", s.connector.queue_protocol),
            default: Some("Amqp"),
            env_value: "API",
            env_expected: "Api",
            yaml_value: "api",
            yaml_expected: "Api",
            bad: Some("kafka"),
        },
        Row {
            env: "CONNECTOR_QUEUE_THRESHOLD",
            yaml: "connector.queue_threshold",
            read: |s| s.connector.queue_threshold_mb.to_string(),
            default: Some("500"),
            env_value: "250.5",
            env_expected: "250.5",
            yaml_value: "100",
            yaml_expected: "100",
            bad: Some("-3"),
        },
        Row {
            env: "CONNECTOR_SEND_TO_QUEUE",
            yaml: "connector.send_to_queue",
            read: |s| s.connector.send_to_queue.to_string(),
            default: Some("true"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "True",
            yaml_expected: "true",
            bad: Some("queue"),
        },
        Row {
            env: "CONNECTOR_SEND_TO_DIRECTORY",
            yaml: "connector.send_to_directory",
            read: |s| s.connector.send_to_directory.to_string(),
            default: Some("false"),
            env_value: "false",
            env_expected: "false",
            yaml_value: "off",
            yaml_expected: "false",
            bad: Some("dir"),
        },
        Row {
            env: "CONNECTOR_SEND_TO_DIRECTORY_PATH",
            yaml: "connector.send_to_directory_path",
            read: |s| {
                opt(&s
                    .connector
                    .send_to_directory_path
                    .as_ref()
                    .map(|p| p.display().to_string()))
            },
            default: Some("None"),
            env_value: "/srv/bundles",
            env_expected: "/srv/bundles",
            yaml_value: "out/bundles",
            yaml_expected: "out/bundles",
            bad: None,
        },
        Row {
            env: "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
            yaml: "connector.send_to_directory_retention",
            read: |s| s.connector.send_to_directory_retention_days.to_string(),
            default: Some("7"),
            env_value: "0",
            env_expected: "0",
            yaml_value: "30",
            yaml_expected: "30",
            bad: Some("-1"),
        },
        Row {
            env: "CONNECTOR_EXPOSE_METRICS",
            yaml: "connector.expose_metrics",
            read: |s| s.connector.expose_metrics.to_string(),
            default: Some("false"),
            env_value: "Yes",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("prometheus"),
        },
        Row {
            env: "CONNECTOR_METRICS_PORT",
            yaml: "connector.metrics_port",
            read: |s| s.connector.metrics_port.to_string(),
            default: Some("9095"),
            env_value: "9100",
            env_expected: "9100",
            yaml_value: "9200",
            yaml_expected: "9200",
            bad: Some("70000"),
        },
        Row {
            env: "CONNECTOR_METRICS_NAMESPACE",
            yaml: "connector.metrics_namespace",
            read: |s| s.connector.metrics_namespace.clone(),
            default: Some(""),
            env_value: "opencti",
            env_expected: "opencti",
            yaml_value: "cti",
            yaml_expected: "cti",
            bad: Some("open-cti"),
        },
        Row {
            env: "CONNECTOR_METRICS_SUBSYSTEM",
            yaml: "connector.metrics_subsystem",
            read: |s| s.connector.metrics_subsystem.clone(),
            default: Some(""),
            env_value: "misp_feed",
            env_expected: "misp_feed",
            yaml_value: "feeds",
            yaml_expected: "feeds",
            bad: Some("9lives"),
        },
        Row {
            env: "MISP_FEED_SOURCE_TYPE",
            yaml: "misp_feed.source_type",
            read: |s| format!("{:?}", s.misp_feed.source_type),
            default: Some("Url"),
            env_value: "URL",
            env_expected: "Url",
            yaml_value: "url",
            yaml_expected: "Url",
            bad: Some("ftp"),
        },
        Row {
            env: "MISP_FEED_URL",
            yaml: "misp_feed.url",
            read: |s| opt(&s.misp_feed.url),
            default: None,
            env_value: "https://www.circl.lu/doc/misp/feed-osint/",
            env_expected: "https://www.circl.lu/doc/misp/feed-osint",
            yaml_value: "'file:///srv/feed//'",
            yaml_expected: "file:///srv/feed",
            bad: Some("ftp://mirror.example/feed"),
        },
        Row {
            env: "MISP_FEED_SSL_VERIFY",
            yaml: "misp_feed.ssl_verify",
            read: |s| s.misp_feed.ssl_verify.to_string(),
            default: Some("true"),
            env_value: "0",
            env_expected: "false",
            yaml_value: "false",
            yaml_expected: "false",
            bad: Some("insecure"),
        },
        Row {
            env: "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
            yaml: "misp_feed.http_authorization_header",
            read: |s| {
                s.misp_feed
                    .http_authorization_header
                    .as_ref()
                    .map_or("None".into(), |h| h.expose().to_string())
            },
            default: Some("None"),
            env_value: "Bearer abc123",
            env_expected: "Bearer abc123",
            yaml_value: "'Basic dXNlcjpwdw=='",
            yaml_expected: "Basic dXNlcjpwdw==",
            bad: None,
        },
        Row {
            env: "MISP_FEED_CA_BUNDLE",
            yaml: "misp_feed.ca_bundle",
            read: |s| {
                opt(&s
                    .misp_feed
                    .ca_bundle
                    .as_ref()
                    .map(|p| p.display().to_string()))
            },
            default: Some("None"),
            env_value: "{PEM}",
            env_expected: "{PEM}",
            yaml_value: "'{PEM}'",
            yaml_expected: "{PEM}",
            bad: Some("/nonexistent/feed-ca.pem"),
        },
        Row {
            env: "MISP_FEED_HTTP_HEADERS",
            yaml: "misp_feed.http_headers",
            read: |s| {
                s.misp_feed
                    .http_headers
                    .iter()
                    .map(|(n, v)| format!("{n}={}", v.expose()))
                    .collect::<Vec<_>>()
                    .join("|")
            },
            default: Some(""),
            env_value: "X-Tenant: blue;X-Api-Key:k1;",
            env_expected: "X-Tenant=blue|X-Api-Key=k1",
            yaml_value: "'X-Tenant:green'",
            yaml_expected: "X-Tenant=green",
            // A secret: its bad values are checked without being shown, below.
            bad: None,
        },
        Row {
            env: "MISP_FEED_CLIENT_CERT",
            yaml: "misp_feed.client_cert",
            read: |s| {
                opt(&s
                    .misp_feed
                    .client_cert
                    .as_ref()
                    .map(|p| p.display().to_string()))
            },
            default: Some("None"),
            env_value: "{PEM}",
            env_expected: "{PEM}",
            yaml_value: "'{PEM}'",
            yaml_expected: "{PEM}",
            bad: Some("/nonexistent/client.pem"),
        },
        Row {
            env: "MISP_FEED_CLIENT_KEY",
            yaml: "misp_feed.client_key",
            read: |s| {
                opt(&s
                    .misp_feed
                    .client_key
                    .as_ref()
                    .map(|p| p.display().to_string()))
            },
            default: Some("None"),
            env_value: "{PEM}",
            env_expected: "{PEM}",
            yaml_value: "'{PEM}'",
            yaml_expected: "{PEM}",
            bad: Some("/nonexistent/client.key"),
        },
        Row {
            env: "MISP_FEED_BUCKET_NAME",
            yaml: "misp_feed.bucket_name",
            read: |s| opt(&s.misp_feed.bucket_name),
            default: Some("None"),
            env_value: "misp-exports",
            env_expected: "misp-exports",
            yaml_value: "'other-bucket'",
            yaml_expected: "other-bucket",
            bad: None,
        },
        Row {
            env: "MISP_FEED_BUCKET_PREFIX",
            yaml: "misp_feed.bucket_prefix",
            read: |s| opt(&s.misp_feed.bucket_prefix),
            default: Some("None"),
            env_value: "feeds/circl/",
            env_expected: "feeds/circl/",
            yaml_value: "'exports/'",
            yaml_expected: "exports/",
            bad: None,
        },
        Row {
            env: "MISP_FEED_S3_DELETE_AFTER_IMPORT",
            yaml: "misp_feed.s3_delete_after_import",
            read: |s| s.misp_feed.s3_delete_after_import.to_string(),
            default: Some("false"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("later"),
        },
        Row {
            env: "MISP_FEED_IMPORT_FROM_DATE",
            yaml: "misp_feed.import_from_date",
            read: |s| opt(&s.misp_feed.import_from_date.map(|d| d.to_rfc3339())),
            default: Some("None"),
            env_value: "P30D",
            env_expected: "2026-02-13T12:00:00+00:00",
            yaml_value: "2010-01-01",
            yaml_expected: "2010-01-01T00:00:00+00:00",
            bad: Some("last tuesday"),
        },
        Row {
            env: "MISP_FEED_INTERVAL",
            yaml: "misp_feed.interval",
            read: |s| s.connector.duration_period.as_secs().to_string(),
            default: Some("300"),
            env_value: "60",
            env_expected: "3600",
            yaml_value: "15",
            yaml_expected: "900",
            bad: Some("hourly"),
        },
        Row {
            env: "MISP_FEED_LEDGER_PATH",
            yaml: "misp_feed.ledger_path",
            read: |s| s.misp_feed.ledger_path.display().to_string(),
            default: Some("misp-feed-ledger.sqlite"),
            env_value: "/data/ledger.sqlite",
            env_expected: "/data/ledger.sqlite",
            yaml_value: "state/l.sqlite",
            yaml_expected: "state/l.sqlite",
            bad: None,
        },
        Row {
            env: "MISP_FEED_MAX_FILE_SIZE",
            yaml: "misp_feed.max_file_size",
            read: |s| s.misp_feed.max_file_size.to_string(),
            default: Some("536870912"),
            env_value: "64M",
            env_expected: "67108864",
            yaml_value: "1048576",
            yaml_expected: "1048576",
            bad: Some("big"),
        },
        Row {
            env: "MISP_FEED_CONNECT_TIMEOUT",
            yaml: "misp_feed.connect_timeout",
            read: |s| s.misp_feed.connect_timeout.as_secs_f64().to_string(),
            default: Some("10"),
            env_value: "2.5",
            env_expected: "2.5",
            yaml_value: "30",
            yaml_expected: "30",
            bad: Some("0"),
        },
        Row {
            env: "MISP_FEED_READ_TIMEOUT",
            yaml: "misp_feed.read_timeout",
            read: |s| s.misp_feed.read_timeout.as_secs_f64().to_string(),
            default: Some("120"),
            env_value: "300",
            env_expected: "300",
            yaml_value: "45.5",
            yaml_expected: "45.5",
            bad: Some("-5"),
        },
        Row {
            env: "MISP_FEED_FETCH_DEADLINE",
            yaml: "misp_feed.fetch_deadline",
            read: |s| s.misp_feed.fetch_deadline.as_secs_f64().to_string(),
            default: Some("600"),
            env_value: "900",
            env_expected: "900",
            yaml_value: "60",
            yaml_expected: "60",
            bad: Some("soon"),
        },
        Row {
            env: "MISP_FEED_HTTP_RETRIES",
            yaml: "misp_feed.http_retries",
            read: |s| s.misp_feed.http_retries.to_string(),
            default: Some("4"),
            env_value: "0",
            env_expected: "0",
            yaml_value: "7",
            yaml_expected: "7",
            bad: Some("many"),
        },
        Row {
            env: "MISP_FEED_FETCH_CONCURRENCY",
            yaml: "misp_feed.fetch_concurrency",
            read: |s| s.misp_feed.fetch_concurrency.to_string(),
            default: Some("4"),
            env_value: "16",
            env_expected: "16",
            yaml_value: "1",
            yaml_expected: "1",
            bad: Some("0"),
        },
        Row {
            env: "MISP_FEED_MAX_ATTEMPTS",
            yaml: "misp_feed.max_attempts",
            read: |s| s.misp_feed.max_attempts.to_string(),
            default: Some("5"),
            env_value: "10",
            env_expected: "10",
            yaml_value: "3",
            yaml_expected: "3",
            bad: Some("0"),
        },
        Row {
            env: "MISP_FEED_RETRY_BACKOFF",
            yaml: "misp_feed.retry_backoff",
            read: |s| s.misp_feed.retry_backoff.as_secs_f64().to_string(),
            default: Some("60"),
            env_value: "0",
            env_expected: "0",
            yaml_value: "300",
            yaml_expected: "300",
            bad: Some("soon"),
        },
        Row {
            env: "MISP_FEED_HEARTBEAT_PERIOD",
            yaml: "misp_feed.heartbeat_period",
            read: |s| s.misp_feed.heartbeat_period.as_secs_f64().to_string(),
            default: Some("40"),
            env_value: "5",
            env_expected: "5",
            yaml_value: "0.5",
            yaml_expected: "0.5",
            bad: Some("0"),
        },
        Row {
            env: "MISP_FEED_CREATE_REPORTS",
            yaml: "misp_feed.create_reports",
            read: |s| s.misp_feed.convert.create_reports.to_string(),
            default: Some("true"),
            env_value: "false",
            env_expected: "false",
            yaml_value: "false",
            yaml_expected: "false",
            bad: Some("reports"),
        },
        Row {
            env: "MISP_FEED_REPORT_TYPE",
            yaml: "misp_feed.report_type",
            read: |s| s.misp_feed.convert.report_type.clone(),
            default: Some("misp-event"),
            env_value: "threat-report",
            env_expected: "threat-report",
            yaml_value: "'internal-report'",
            yaml_expected: "internal-report",
            bad: None,
        },
        Row {
            env: "MISP_FEED_CREATE_INDICATORS",
            yaml: "misp_feed.create_indicators",
            read: |s| s.misp_feed.convert.create_indicators.to_string(),
            default: Some("false"),
            env_value: "True",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("x"),
        },
        Row {
            env: "MISP_FEED_CREATE_OBSERVABLES",
            yaml: "misp_feed.create_observables",
            read: |s| s.misp_feed.convert.create_observables.to_string(),
            default: Some("false"),
            env_value: "y",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("yess"),
        },
        Row {
            env: "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
            yaml: "misp_feed.create_object_observables",
            read: |s| s.misp_feed.convert.create_object_observables.to_string(),
            default: Some("false"),
            env_value: "t",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("-1"),
        },
        Row {
            env: "MISP_FEED_CREATE_TAGS_AS_LABELS",
            yaml: "misp_feed.create_tags_as_labels",
            read: |s| s.misp_feed.convert.create_tags_as_labels.to_string(),
            default: Some("true"),
            env_value: "n",
            env_expected: "false",
            yaml_value: "false",
            yaml_expected: "false",
            bad: Some("labels"),
        },
        Row {
            env: "MISP_FEED_GUESS_THREATS_FROM_TAGS",
            yaml: "misp_feed.guess_threats_from_tags",
            read: |s| s.misp_feed.convert.guess_threats_from_tags.to_string(),
            default: Some("false"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("guess"),
        },
        Row {
            env: "MISP_FEED_AUTHOR_FROM_TAGS",
            yaml: "misp_feed.author_from_tags",
            read: |s| s.misp_feed.convert.author_from_tags.to_string(),
            default: Some("false"),
            env_value: "1",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("author"),
        },
        Row {
            env: "MISP_FEED_MARKINGS_FROM_TAGS",
            yaml: "misp_feed.markings_from_tags",
            read: |s| s.misp_feed.convert.markings_from_tags.to_string(),
            default: Some("false"),
            env_value: "YES",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("tlp"),
        },
        Row {
            env: "MISP_FEED_IMPORT_TO_IDS_NO_SCORE",
            yaml: "misp_feed.import_to_ids_no_score",
            read: |s| opt(&s.misp_feed.convert.import_to_ids_no_score),
            default: Some("None"),
            env_value: "40",
            env_expected: "40",
            yaml_value: "80",
            yaml_expected: "80",
            bad: Some("high"),
        },
        Row {
            env: "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
            yaml: "misp_feed.import_unsupported_observables_as_text",
            read: |s| {
                s.misp_feed
                    .convert
                    .import_unsupported_observables_as_text
                    .to_string()
            },
            default: Some("false"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("text"),
        },
        Row {
            env: "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
            yaml: "misp_feed.import_unsupported_observables_as_text_transparent",
            read: |s| {
                s.misp_feed
                    .convert
                    .import_unsupported_observables_as_text_transparent
                    .to_string()
            },
            default: Some("true"),
            env_value: "false",
            env_expected: "false",
            yaml_value: "false",
            yaml_expected: "false",
            bad: Some("clear"),
        },
        Row {
            env: "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
            yaml: "misp_feed.import_with_attachments",
            read: |s| s.misp_feed.convert.import_with_attachments.to_string(),
            default: Some("false"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("files"),
        },
        Row {
            env: "MISP_FEED_WARNINGLISTS_PATH",
            yaml: "misp_feed.warninglists_path",
            read: |s| {
                opt(&s
                    .misp_feed
                    .warninglists_path
                    .as_ref()
                    .map(|p| p.display().to_string()))
            },
            default: Some("None"),
            env_value: "{DIR}",
            env_expected: "{DIR}",
            yaml_value: "'{DIR}/lists'",
            yaml_expected: "{DIR}/lists",
            bad: Some("/nonexistent/warninglists"),
        },
        Row {
            env: "MISP_FEED_REFERENCE_COMPAT",
            yaml: "misp_feed.reference_compat",
            read: |s| s.misp_feed.convert.reference_compat.to_string(),
            default: Some("false"),
            env_value: "true",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("python"),
        },
        Row {
            env: "MISP_FEED_IMPORT_DELETED",
            yaml: "misp_feed.import_deleted",
            read: |s| s.misp_feed.convert.import_deleted.to_string(),
            default: Some("false"),
            env_value: "on",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("deleted"),
        },
        Row {
            env: "MISP_FEED_INDICATORS_ONLY_TO_IDS",
            yaml: "misp_feed.indicators_only_to_ids",
            read: |s| s.misp_feed.convert.indicators_only_to_ids.to_string(),
            default: Some("false"),
            env_value: "1",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("ids"),
        },
        Row {
            env: "MISP_FEED_INDICATOR_VALID_DAYS",
            yaml: "misp_feed.indicator_valid_days",
            read: |s| opt(&s.misp_feed.convert.indicator_valid_days),
            default: Some("None"),
            env_value: "90",
            env_expected: "90",
            yaml_value: "30",
            yaml_expected: "30",
            bad: Some("0"),
        },
        Row {
            env: "MISP_FEED_THREAT_LEVEL_SCORE_MAPPING",
            yaml: "misp_feed.threat_level_score_mapping",
            read: |s| s.misp_feed.convert.threat_level_score_mapping.to_string(),
            default: Some("1:90;2:60;3:30;4:50"),
            env_value: "1:100; 2:70; 3:40; 4:50",
            env_expected: "1:100;2:70;3:40;4:50",
            yaml_value: "'1:80;4:20'",
            yaml_expected: "1:80;4:20",
            bad: Some("1:90;2:60;3:30"),
        },
        Row {
            env: "MISP_FEED_KEEP_ORIGINAL_TAGS_AS_LABEL",
            yaml: "misp_feed.keep_original_tags_as_label",
            read: |s| s.misp_feed.convert.keep_original_tags_as_label.join("|"),
            default: Some(""),
            env_value: "admiralty-scale:, estimative-language:",
            env_expected: "admiralty-scale:|estimative-language:",
            yaml_value: "['type:', 'circl:']",
            yaml_expected: "type:|circl:",
            bad: None,
        },
        Row {
            env: "MISP_FEED_PROPAGATE_LABELS",
            yaml: "misp_feed.propagate_labels",
            read: |s| s.misp_feed.convert.propagate_labels.to_string(),
            default: Some("false"),
            env_value: "yes",
            env_expected: "true",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("labels"),
        },
        Row {
            env: "AWS_ENDPOINT_URL",
            yaml: "aws.endpoint_url",
            read: |s| opt(&s.aws.endpoint_url),
            default: Some("None"),
            env_value: "http://minio:9000/",
            env_expected: "http://minio:9000",
            yaml_value: "'https://s3.eu-west-3.amazonaws.com'",
            yaml_expected: "https://s3.eu-west-3.amazonaws.com",
            bad: Some("minio:9000"),
        },
        Row {
            env: "AWS_ACCESS_KEY_ID",
            yaml: "aws.access_key_id",
            read: |s| opt(&s.aws.access_key_id),
            default: Some("None"),
            env_value: "AKIAENVEXAMPLE",
            env_expected: "AKIAENVEXAMPLE",
            yaml_value: "'AKIAFILEEXAMPLE'",
            yaml_expected: "AKIAFILEEXAMPLE",
            bad: None,
        },
        Row {
            env: "AWS_SECRET_ACCESS_KEY",
            yaml: "aws.secret_access_key",
            read: |s| {
                s.aws
                    .secret_access_key
                    .as_ref()
                    .map_or("None".into(), |k| k.expose().to_string())
            },
            default: Some("None"),
            env_value: "env/secret+key",
            env_expected: "env/secret+key",
            yaml_value: "'file/secret+key'",
            yaml_expected: "file/secret+key",
            bad: None,
        },
        Row {
            env: "AWS_REGION",
            yaml: "aws.region",
            read: |s| opt(&s.aws.region),
            default: Some("None"),
            env_value: "eu-west-3",
            env_expected: "eu-west-3",
            yaml_value: "us-east-1",
            yaml_expected: "us-east-1",
            bad: None,
        },
        Row {
            env: "AWS_S3_FORCE_PATH_STYLE",
            yaml: "aws.s3_force_path_style",
            read: |s| opt(&s.aws.force_path_style),
            default: Some("None"),
            env_value: "false",
            env_expected: "false",
            yaml_value: "true",
            yaml_expected: "true",
            bad: Some("path"),
        },
        Row {
            env: "MQ_HOST",
            yaml: "mq.host",
            read: |s| opt(&s.mq.host),
            default: Some("None"),
            env_value: "mq.internal",
            env_expected: "mq.internal",
            yaml_value: "'mq.file.example'",
            yaml_expected: "mq.file.example",
            bad: None,
        },
        Row {
            env: "MQ_PORT",
            yaml: "mq.port",
            read: |s| opt(&s.mq.port),
            default: Some("None"),
            env_value: "5671",
            env_expected: "5671",
            yaml_value: "5673",
            yaml_expected: "5673",
            bad: Some("99999"),
        },
        Row {
            env: "MQ_VHOST",
            yaml: "mq.vhost",
            read: |s| opt(&s.mq.vhost),
            default: Some("None"),
            env_value: "/cti",
            env_expected: "/cti",
            yaml_value: "'/from-file'",
            yaml_expected: "/from-file",
            bad: None,
        },
        Row {
            env: "MQ_USE_SSL",
            yaml: "mq.use_ssl",
            read: |s| opt(&s.mq.use_ssl),
            default: Some("None"),
            env_value: "yes",
            env_expected: "true",
            yaml_value: "false",
            yaml_expected: "false",
            bad: Some("sometimes"),
        },
        Row {
            env: "MQ_USER",
            yaml: "mq.user",
            read: |s| opt(&s.mq.user),
            default: Some("None"),
            env_value: "cti-env",
            env_expected: "cti-env",
            yaml_value: "'cti-file'",
            yaml_expected: "cti-file",
            bad: None,
        },
        Row {
            env: "MQ_PASS",
            yaml: "mq.pass",
            read: |s| {
                s.mq.pass
                    .as_ref()
                    .map_or("None".into(), |p| p.expose().to_string())
            },
            default: Some("None"),
            env_value: "env-pass-1",
            env_expected: "env-pass-1",
            yaml_value: "'file-pass-2'",
            yaml_expected: "file-pass-2",
            bad: None,
        },
        Row {
            env: "MQ_USE_SSL_CA",
            yaml: "mq.use_ssl_ca",
            read: |s| opt(&s.mq.use_ssl_ca),
            default: Some("None"),
            env_value: "{PEM}",
            env_expected: "{PEM}",
            yaml_value: "'-----BEGIN CERTIFICATE----- AA== -----END CERTIFICATE-----'",
            yaml_expected: "-----BEGIN CERTIFICATE----- AA== -----END CERTIFICATE-----",
            bad: Some("/nonexistent/mq-ca.pem"),
        },
    ];
    rows.extend(crate::config_env_import::rows());
    rows.extend(crate::pipeline_budget::option_rows());
    rows
}

const CLIENT_CERT_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tls/client.pem");
const CLIENT_KEY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tls/client.key");

/// Options that only load together with another (an AWS key, a client certificate and its
/// key need their pair).
fn companions(env: &str) -> Vec<(&'static str, &'static str)> {
    match env {
        "AWS_ACCESS_KEY_ID" => vec![("AWS_SECRET_ACCESS_KEY", "companion-secret")],
        "AWS_SECRET_ACCESS_KEY" => vec![("AWS_ACCESS_KEY_ID", "AKIACOMPANION")],
        "MISP_FEED_CLIENT_CERT" => vec![("MISP_FEED_CLIENT_KEY", CLIENT_KEY_FILE)],
        "MISP_FEED_CLIENT_KEY" => vec![("MISP_FEED_CLIENT_CERT", CLIENT_CERT_FILE)],
        _ => vec![],
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    pem: String,
    /// A folder holding a `lists` folder.
    folder: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let pem = pem.display().to_string();
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("lists")).unwrap();
    let folder = folder.display().to_string();
    Fixture {
        _dir: dir,
        pem,
        folder,
    }
}

fn env_for(row: &Row) -> HashMap<String, String> {
    let mut env = base_env();
    env.remove(row.env);
    for (name, value) in companions(row.env) {
        env.insert(name.to_string(), value.to_string());
    }
    env
}

fn yaml_for(row: &Row, value: &str) -> String {
    let (section, key) = row.yaml.split_once('.').unwrap();
    format!("{section}:\n  {key}: {value}\n")
}

fn fill(text: &str, fx: &Fixture) -> String {
    text.replace("{PEM}", &fx.pem).replace("{DIR}", &fx.folder)
}

#[test]
fn table_covers_every_option() {
    let table: BTreeSet<&str> = rows().iter().map(|row| row.env).collect();
    let known: BTreeSet<&str> = OPTIONS.iter().map(|spec| spec.env).collect();
    assert_eq!(
        table, known,
        "every option needs a row, every row an option"
    );
    for row in rows() {
        let spec = OPTIONS.iter().find(|spec| spec.env == row.env).unwrap();
        assert_eq!(
            row.yaml,
            format!("{}.{}", spec.section, spec.key),
            "{}",
            row.env
        );
    }
}

#[test]
fn each_option_is_read_from_the_environment() {
    let fx = fixture();
    for row in rows() {
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), fill(row.env_value, &fx));
        let settings = Settings::load_from(&env, None, now())
            .unwrap_or_else(|e| panic!("{}={}: {e}", row.env, row.env_value));
        assert_eq!(
            (row.read)(&settings),
            fill(row.env_expected, &fx),
            "env {}",
            row.env
        );
    }
}

#[test]
fn each_option_is_read_from_config_yml() {
    let fx = fixture();
    for row in rows() {
        let env = env_for(&row);
        let yaml = fill(&yaml_for(&row, row.yaml_value), &fx);
        let settings = Settings::load_from(&env, Some(&yaml), now())
            .unwrap_or_else(|e| panic!("{}: {e}", row.yaml));
        assert_eq!(
            (row.read)(&settings),
            fill(row.yaml_expected, &fx),
            "yaml {}",
            row.yaml
        );
    }
}

#[test]
fn environment_wins_over_config_yml() {
    let fx = fixture();
    for row in rows() {
        if row.env_expected == row.yaml_expected {
            continue;
        }
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), fill(row.env_value, &fx));
        let yaml = fill(&yaml_for(&row, row.yaml_value), &fx);
        let settings = Settings::load_from(&env, Some(&yaml), now()).unwrap();
        assert_eq!(
            (row.read)(&settings),
            fill(row.env_expected, &fx),
            "precedence {}",
            row.env
        );
    }
    let distinct = rows()
        .iter()
        .filter(|row| row.env_expected != row.yaml_expected)
        .count();
    assert!(
        distinct >= 30,
        "too few rows exercise precedence: {distinct}"
    );
}

#[test]
fn each_option_has_its_default_when_unset_or_empty() {
    for row in rows() {
        let Some(default) = row.default else { continue };
        let mut env = env_for(&row);
        env.retain(|name, _| !companions(row.env).iter().any(|(c, _)| c == name));
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!((row.read)(&settings), default, "default of {}", row.env);
        // An empty variable (`- MISP_FEED_BUCKET_NAME=` in a compose file) means unset, as in pycti.
        env.insert(row.env.to_string(), String::new());
        let settings = Settings::load_from(&env, Some(&yaml_for(&row, "''")), now()).unwrap();
        assert_eq!((row.read)(&settings), default, "empty {}", row.env);
    }
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_variable_value_and_accepted_values() {
    for row in rows() {
        let Some(bad) = row.bad else { continue };
        let mut env = env_for(&row);
        env.insert(row.env.to_string(), bad.to_string());
        let error = Settings::load_from(&env, None, now()).expect_err(row.env);
        let line = error.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(row.env), "{line}");
        assert!(line.contains(bad), "{line}");
        assert!(line.contains("expected"), "{line}");

        // The same bad value in the file names the file key.
        let env = env_for(&row);
        let yaml = yaml_for(&row, &format!("'{bad}'"));
        let error = Settings::load_from(&env, Some(&yaml), now()).expect_err(row.yaml);
        let line = error.to_string();
        assert!(line.contains(row.env) && line.contains(row.yaml), "{line}");
    }
}

#[test]
fn every_boolean_spelling_pydantic_accepts() {
    for (text, expected) in [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("yes", true),
        ("Y", true),
        ("on", true),
        ("t", true),
        ("1", true),
        ("false", false),
        ("False", false),
        ("no", false),
        ("N", false),
        ("off", false),
        ("f", false),
        ("0", false),
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_CREATE_INDICATORS".into(), text.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(
            settings.misp_feed.convert.create_indicators, expected,
            "{text}"
        );
    }
    let mut env = base_env();
    env.insert("MISP_FEED_SSL_VERIFY".into(), "2".into());
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(line.contains("true/false, yes/no"), "{line}");
}

#[test]
fn import_from_date_accepts_dates_datetimes_and_durations() {
    for (text, expected) in [
        ("2023-10-01", "2023-10-01T00:00:00+00:00"),
        ("20231001", "2023-10-01T00:00:00+00:00"),
        ("2023-10-01T08:30:00Z", "2023-10-01T08:30:00+00:00"),
        ("2023-10-01 08:30", "2023-10-01T08:30:00+00:00"),
        ("2023-10-01T08:30:00+02:00", "2023-10-01T06:30:00+00:00"),
        (
            "2023-10-01T08:30:00.250-01:30",
            "2023-10-01T10:00:00.250+00:00",
        ),
        ("P30D", "2026-02-13T12:00:00+00:00"),
        ("P1W", "2026-03-08T12:00:00+00:00"),
        ("PT36H", "2026-03-14T00:00:00+00:00"),
        ("P1Y", "2025-03-15T12:00:00+00:00"),
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), text.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(
            settings.misp_feed.import_from_date.unwrap().to_rfc3339(),
            expected,
            "{text}"
        );
    }
    for bad in [
        "2023-13-01",
        "P",
        "PT",
        "P3X",
        "yesterday",
        "2023-10-01T25:00",
    ] {
        let mut env = base_env();
        env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), bad.into());
        assert!(
            Settings::load_from(&env, None, now()).is_err(),
            "{bad} must be rejected"
        );
    }
}

#[test]
fn older_names_mean_the_same() {
    for (alias, value, read) in [
        (
            "MISP_BUCKET_NAME",
            "legacy-bucket",
            (|s: &Settings| opt(&s.misp_feed.bucket_name)) as Read,
        ),
        ("MISP_BUCKET_PREFIX", "legacy/", |s| {
            opt(&s.misp_feed.bucket_prefix)
        }),
        ("MISP_CREATE_TAGS_AS_LABELS", "false", |s| {
            s.misp_feed.convert.create_tags_as_labels.to_string()
        }),
        ("MISP_FEED_GUESS_THREAT_FROM_TAGS", "true", |s| {
            s.misp_feed.convert.guess_threats_from_tags.to_string()
        }),
        ("AWS_DEFAULT_REGION", "ap-south-1", |s| opt(&s.aws.region)),
    ] {
        let mut env = base_env();
        env.insert(alias.into(), value.into());
        let settings = Settings::load_from(&env, None, now()).unwrap();
        assert_eq!(read(&settings), value, "{alias}");
    }
    // The canonical name wins over the older one.
    let mut env = base_env();
    env.insert("MISP_BUCKET_NAME".into(), "old".into());
    env.insert("MISP_FEED_BUCKET_NAME".into(), "new".into());
    assert_eq!(
        Settings::load_from(&env, None, now())
            .unwrap()
            .misp_feed
            .bucket_name
            .as_deref(),
        Some("new")
    );
    // The misspelled key and the older region key also work in config.yml.
    let yaml = "misp_feed:\n  guess_threat_from_tags: true\naws:\n  default_region: eu-north-1\n";
    let settings = Settings::load_from(&base_env(), Some(yaml), now()).unwrap();
    assert!(settings.misp_feed.convert.guess_threats_from_tags);
    assert_eq!(settings.aws.region.as_deref(), Some("eu-north-1"));
    // An S3 source can be configured with the seed's names only.
    let mut env = base_env();
    env.remove("MISP_FEED_URL");
    env.insert("MISP_FEED_SOURCE_TYPE".into(), "s3".into());
    env.insert("MISP_BUCKET_NAME".into(), "misp".into());
    assert_eq!(
        Settings::load_from(&env, None, now())
            .unwrap()
            .misp_feed
            .source_type,
        misp_feed::config::SourceType::S3
    );
}

#[test]
fn deprecated_interval_replaces_the_period_with_a_warning() {
    let mut env = base_env();
    env.insert("CONNECTOR_DURATION_PERIOD".into(), "PT5M".into());
    env.insert("MISP_FEED_INTERVAL".into(), "60".into());
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    assert_eq!(loaded.settings.connector.duration_period.as_secs(), 3600);
    assert!(!loaded.settings.connector.run_and_terminate);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("MISP_FEED_INTERVAL is deprecated")),
        "{:?}",
        loaded.warnings
    );
    // Zero means "run once", as pycti reads a zero period.
    env.insert("MISP_FEED_INTERVAL".into(), "0".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.connector.duration_period.is_zero() && settings.connector.run_and_terminate);
    // Without it, no warning at all.
    assert!(
        Settings::resolve(&base_env(), None, now())
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn deprecated_queue_protocol_name_warns() {
    let mut env = base_env();
    env.insert("QUEUE_PROTOCOL".into(), "api".into());
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    assert_eq!(
        loaded.settings.connector.queue_protocol,
        misp_feed::config::QueueProtocol::Api
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("CONNECTOR_QUEUE_PROTOCOL"))
    );
}

#[test]
fn unknown_names_of_our_namespace_are_reported() {
    let mut env = base_env();
    env.insert("MISP_FEED_CREATE_INDICATOR".into(), "true".into());
    let yaml = "misp_feed:\n  improt_from_date: P1D\nconnector:\n  listen_protocol: API\n";
    let loaded = Settings::resolve(&env, Some(yaml), now()).unwrap();
    assert_eq!(
        loaded.warnings,
        vec![
            "unknown environment variable MISP_FEED_CREATE_INDICATOR is ignored".to_string(),
            "unknown key misp_feed.improt_from_date in config.yml is ignored".to_string(),
        ]
    );
}

fn missing_variable(env: &HashMap<String, String>, yaml: Option<&str>) -> String {
    match Settings::load_from(env, yaml, now()) {
        Err(ConfigError::Missing { variable, .. }) => variable,
        other => panic!("expected a missing-variable error, got {other:?}"),
    }
}

#[test]
fn cross_option_rules() {
    let mut env = base_env();
    env.remove("MISP_FEED_URL");
    assert_eq!(missing_variable(&env, None), "MISP_FEED_URL");

    let mut env = base_env();
    env.insert("MISP_FEED_SOURCE_TYPE".into(), "s3".into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_BUCKET_NAME");

    let mut env = base_env();
    env.remove("OPENCTI_TOKEN");
    assert_eq!(missing_variable(&env, None), "OPENCTI_TOKEN");

    let mut env = base_env();
    env.remove("CONNECTOR_ID");
    assert_eq!(missing_variable(&env, None), "CONNECTOR_ID");

    let mut env = base_env();
    env.remove("OPENCTI_URL");
    assert_eq!(missing_variable(&env, None), "OPENCTI_URL");

    let mut env = base_env();
    env.insert("CONNECTOR_SEND_TO_QUEUE".into(), "false".into());
    assert_eq!(missing_variable(&env, None), "CONNECTOR_SEND_TO_QUEUE");

    let mut env = base_env();
    env.insert("CONNECTOR_SEND_TO_DIRECTORY".into(), "true".into());
    assert_eq!(
        missing_variable(&env, None),
        "CONNECTOR_SEND_TO_DIRECTORY_PATH"
    );

    let mut env = base_env();
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIA".into());
    assert_eq!(missing_variable(&env, None), "AWS_SECRET_ACCESS_KEY");

    // Offline: no platform at all, bundles to a folder only.
    let env: HashMap<String, String> = [
        ("MISP_FEED_URL", "tests/fixtures/misp/feed"),
        ("CONNECTOR_SEND_TO_QUEUE", "false"),
        ("CONNECTOR_SEND_TO_DIRECTORY", "true"),
        ("CONNECTOR_SEND_TO_DIRECTORY_PATH", "out"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.opencti.url.is_none());
    assert_eq!(
        settings.misp_feed.url.as_deref(),
        Some("tests/fixtures/misp/feed")
    );
}

#[test]
fn feed_access_rules_name_the_option_and_never_a_header_value() {
    // A client certificate needs its key and the reverse.
    let mut env = base_env();
    env.insert("MISP_FEED_CLIENT_CERT".into(), CLIENT_CERT_FILE.into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_CLIENT_KEY");
    let mut env = base_env();
    env.insert("MISP_FEED_CLIENT_KEY".into(), CLIENT_KEY_FILE.into());
    assert_eq!(missing_variable(&env, None), "MISP_FEED_CLIENT_CERT");

    // Each bad header list stops start-up with one line naming the option, never the value.
    for (value, says) in [
        ("X-Tenant:blue;SECRET-no-colon", "pair #2 is not name:value"),
        ("X-Tenant:blue;:SECRET-no-name", "pair #2 is not name:value"),
        ("X Token SECRET:x", "the name of pair #1 is not"),
        ("X-Api-Key:SECRET\u{7}bell", "the value of X-Api-Key does"),
        (
            "X-Api-Key:SECRET\r\nX-Injected: yes",
            "the value of X-Api-Key does",
        ),
        ("Host:SECRET.example", "Host is set by the connector itself"),
        (
            "If-None-Match:SECRET",
            "If-None-Match is set by the connector itself",
        ),
        (
            "X-Api-Key:SECRET-1;x-api-key:SECRET-2",
            "x-api-key is given twice",
        ),
    ] {
        for in_file in [false, true] {
            let mut env = base_env();
            let yaml = if in_file {
                let escaped = value
                    .replace('\u{7}', "\\a")
                    .replace('\r', "\\r")
                    .replace('\n', "\\n");
                Some(format!("misp_feed:\n  http_headers: \"{escaped}\"\n"))
            } else {
                env.insert("MISP_FEED_HTTP_HEADERS".into(), value.into());
                None
            };
            let line = Settings::load_from(&env, yaml.as_deref(), now())
                .expect_err(value)
                .to_string();
            assert!(
                line.starts_with("invalid MISP_FEED_HTTP_HEADERS")
                    && line.contains("<redacted>")
                    && line.contains("expected \"name1:value1;name2:value2\"")
                    && line.contains(says)
                    && !line.contains('\n'),
                "{value}: {line}"
            );
            assert!(!line.contains("SECRET"), "{value}: {line}");
            if in_file {
                assert!(line.contains("misp_feed.http_headers"), "{line}");
            }
        }
    }

    // The Authorization header has its own option: given both ways, start-up stops.
    let mut env = base_env();
    env.insert(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER".into(),
        "Bearer SECRET-A".into(),
    );
    env.insert(
        "MISP_FEED_HTTP_HEADERS".into(),
        "authorization:Bearer SECRET-B".into(),
    );
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("MISP_FEED_HTTP_HEADERS")
            && line.contains("MISP_FEED_HTTP_AUTHORIZATION_HEADER")
            && !line.contains("SECRET"),
        "{line}"
    );

    // The summary (`check`) shows the header names and the paths, never a value.
    let mut env = base_env();
    env.insert(
        "MISP_FEED_HTTP_HEADERS".into(),
        "X-Tenant:tenant-4e1b;X-Api-Key:key-9a0c".into(),
    );
    env.insert("MISP_FEED_CLIENT_CERT".into(), CLIENT_CERT_FILE.into());
    env.insert("MISP_FEED_CLIENT_KEY".into(), CLIENT_KEY_FILE.into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    let shown = format!("{}\n{settings:?}", settings.redacted_summary());
    assert!(
        !shown.contains("tenant-4e1b") && !shown.contains("key-9a0c"),
        "{shown}"
    );
    assert!(
        shown.contains("MISP_FEED_HTTP_HEADERS = X-Tenant;X-Api-Key (values hidden)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("MISP_FEED_CLIENT_KEY = {CLIENT_KEY_FILE}")),
        "{shown}"
    );
}

#[test]
fn broken_yaml_is_one_line_naming_the_file() {
    let error = Settings::load_from(&base_env(), Some("opencti: [unclosed"), now()).unwrap_err();
    let line = error.to_string();
    assert!(
        line.contains("config.yml: invalid YAML") && !line.contains('\n'),
        "{line}"
    );
    let error = Settings::load_from(&base_env(), Some("- a\n- b\n"), now()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("config.yml: the top level must be a mapping"),
        "{error}"
    );
}

#[test]
fn load_reads_the_given_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yml");
    let error = Settings::load(Some(&missing)).unwrap_err();
    assert!(
        matches!(error, ConfigError::File { ref path, .. } if path == &missing),
        "{error}"
    );
    assert!(error.to_string().contains("absent.yml"));
}

#[test]
fn secrets_never_reach_errors_debug_output_or_the_summary() {
    let secrets = [
        "tok-SECRET-1",
        "Bearer SECRET-2",
        "aws-SECRET-3",
        "SECRET-4",
        "pw-SECRET-5",
        "mq-SECRET-6",
    ];
    let mut env = base_env();
    env.insert("MQ_PASS".into(), secrets[5].into());
    env.insert("OPENCTI_TOKEN".into(), secrets[0].into());
    env.insert(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER".into(),
        secrets[1].into(),
    );
    env.insert("AWS_ACCESS_KEY_ID".into(), "AKIAVISIBLE".into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), secrets[2].into());
    env.insert(
        "OPENCTI_CUSTOM_HEADERS".into(),
        format!("X-Api-Key:{};broken-{}", secrets[3], secrets[3]),
    );
    env.insert(
        "MISP_FEED_URL".into(),
        format!("https://user:{}@feed.example/misp/", secrets[4]),
    );
    let loaded = Settings::resolve(&env, None, now()).unwrap();
    let settings = &loaded.settings;
    let shown = format!(
        "{settings:?}\n{}\n{:?}",
        settings.redacted_summary(),
        loaded.warnings
    );
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert!(shown.contains("OPENCTI_TOKEN = <set>"), "{shown}");
    assert!(shown.contains("MQ_PASS = <set>"), "{shown}");
    assert!(
        shown.contains("MISP_FEED_URL = https://***:***@feed.example/misp"),
        "{shown}"
    );
    assert!(
        shown.contains("OPENCTI_CUSTOM_HEADERS = X-Api-Key (values hidden)"),
        "{shown}"
    );
    assert_eq!(
        loaded.warnings.len(),
        1,
        "the malformed header pair is reported, without its text"
    );
    // The real values are still there for the code that must send them.
    assert_eq!(
        settings.opencti.token.as_ref().unwrap().expose(),
        secrets[0]
    );

    // A rejected URL carrying a password does not show it either.
    let mut env = base_env();
    env.insert(
        "AWS_ENDPOINT_URL".into(),
        format!("ftp://minio:{}@store", secrets[4]),
    );
    let line = Settings::load_from(&env, None, now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("AWS_ENDPOINT_URL") && !line.contains(secrets[4]),
        "{line}"
    );
    // A secret given where a list was expected is named, never shown.
    let yaml = "opencti:\n  token: [a, SECRET-LIST]\n";
    let mut env = base_env();
    env.remove("OPENCTI_TOKEN");
    let line = Settings::load_from(&env, Some(yaml), now())
        .unwrap_err()
        .to_string();
    assert!(
        line.contains("OPENCTI_TOKEN")
            && line.contains("<redacted>")
            && !line.contains("SECRET-LIST"),
        "{line}"
    );
}

#[test]
fn summary_lists_every_option_once() {
    let settings = Settings::load_from(&base_env(), None, now()).unwrap();
    let names: Vec<&str> = settings
        .redacted_entries()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let expected: Vec<&str> = OPTIONS
        .iter()
        .filter(|spec| !spec.deprecated)
        .map(|spec| spec.env)
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn durations_sizes_and_dates_parse_as_pydantic_and_python_read_them() {
    use misp_feed::config::{
        format_iso_duration, parse_duration_seconds, parse_iso_datetime, parse_size,
    };
    for (text, seconds) in [
        ("PT5M", 300.0),
        ("P1DT2H", 93_600.0),
        ("PT1.5S", 1.5),
        ("P1M", 2_592_000.0),
        ("P2W", 1_209_600.0),
        ("p1d", 86_400.0),
        ("-P1D", -86_400.0),
        ("01:00:00", 3600.0),
        ("00:30", 1800.0),
    ] {
        assert_eq!(parse_duration_seconds(text), Some(seconds), "{text}");
    }
    for bad in [
        "", "P", "PT", "P1H", "PT1D", "1 hour", "5", "P1.2.3D", "00:61",
    ] {
        assert_eq!(parse_duration_seconds(bad), None, "{bad}");
    }
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("2GiB"), Some(2 << 30));
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("1.5M"), None);
    assert_eq!(parse_size("99999999999999999999G"), None);
    assert_eq!(
        format_iso_duration(std::time::Duration::from_secs(5400)),
        "PT1H30M"
    );
    assert_eq!(format_iso_duration(std::time::Duration::ZERO), "PT0S");
    assert_eq!(parse_iso_datetime("2024-02-30"), None);
    assert_eq!(
        parse_iso_datetime("2024-02-29T23:59:59.999999+00:00").map(|d| d.to_rfc3339()),
        Some("2024-02-29T23:59:59.999999+00:00".to_string())
    );
    // A negative duration counts forward, as Python's datetime arithmetic does.
    let mut env = base_env();
    env.insert("MISP_FEED_IMPORT_FROM_DATE".into(), "-P1D".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert_eq!(
        settings.misp_feed.import_from_date.unwrap().to_rfc3339(),
        "2026-03-16T12:00:00+00:00"
    );
}

#[test]
fn variable_names_are_case_insensitive_like_pydantic_settings() {
    let mut env = base_env();
    env.insert("misp_feed_create_indicators".into(), "true".into());
    env.insert("Connector_Name".into(), "lower".into());
    env.insert("CONNECTOR_NAME".into(), "UPPER".into());
    let settings = Settings::load_from(&env, None, now()).unwrap();
    assert!(settings.misp_feed.convert.create_indicators);
    assert_eq!(
        settings.connector.name, "UPPER",
        "the exact upper-case name wins"
    );
}

/// Each command reads only what it uses: a bad value stops a command exactly when the
/// command's scope reads that option.
#[test]
fn a_bad_value_stops_only_the_commands_that_read_it() {
    let scopes = [Scope::Convert, Scope::Ledger, Scope::Sync];
    let mut stopped = BTreeSet::new();
    for row in rows() {
        let Some(bad) = row.bad else { continue };
        let spec = option_spec(row.env).unwrap();
        for scope in scopes {
            let mut env = env_for(&row);
            env.insert(row.env.to_string(), bad.to_string());
            let result = Settings::resolve_for(scope, &env, None, now());
            assert_eq!(
                result.is_err(),
                scope.reads(spec.need),
                "{}={bad} under {scope:?}",
                row.env
            );
            if result.is_err() {
                stopped.insert(format!("{scope:?}"));
            }
        }
    }
    assert_eq!(stopped.len(), scopes.len(), "{stopped:?}");
}

#[test]
fn convert_needs_no_configuration_and_reads_the_conversion_options() {
    let empty = HashMap::new();
    let loaded = Settings::resolve_for(Scope::Convert, &empty, None, now()).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.settings.misp_feed.convert,
        Settings::default().misp_feed.convert
    );

    let env: HashMap<String, String> = [
        ("MISP_FEED_CREATE_INDICATORS", "true"),
        ("MISP_FEED_REFERENCE_COMPAT", "yes"),
        ("OPENCTI_URL", "not a url"),
        ("MISP_FEED_URL", "ftp://unused.example"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let yaml = "misp_feed:\n  create_observables: true\n  max_file_size: huge\n";
    let settings = Settings::resolve_for(Scope::Convert, &env, Some(yaml), now())
        .unwrap()
        .settings;
    let convert = &settings.misp_feed.convert;
    assert!(convert.create_indicators && convert.reference_compat && convert.create_observables);
    assert_eq!(settings.opencti.url, None, "the platform is not read");
}

#[test]
fn ledger_commands_need_only_the_ledger_path() {
    let env: HashMap<String, String> = [(
        "MISP_FEED_LEDGER_PATH".to_string(),
        "/data/a.sqlite".to_string(),
    )]
    .into();
    let settings = Settings::resolve_for(Scope::Ledger, &env, None, now())
        .unwrap()
        .settings;
    assert_eq!(
        settings.misp_feed.ledger_path.display().to_string(),
        "/data/a.sqlite"
    );

    let yaml = "misp_feed:\n  ledger_path: from-file.sqlite\n";
    let settings = Settings::resolve_for(Scope::Ledger, &HashMap::new(), Some(yaml), now())
        .unwrap()
        .settings;
    assert_eq!(
        settings.misp_feed.ledger_path.display().to_string(),
        "from-file.sqlite"
    );
    // The same file is not enough to sync: the rules between options apply there.
    assert_eq!(
        missing_variable(&HashMap::new(), Some(yaml)),
        "MISP_FEED_URL"
    );
}
