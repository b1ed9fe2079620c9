//! The options pycti reads for every connector: `opencti`, `connector` and `mq`.

use super::Need::{Ledger, Logging, Sync};
use super::Origin::{Ours, Pycti};
use super::{Maybe, OptionSpec, Plain, field};
use crate::config::headers::Headers;
use crate::config::parsers::{
    Flag, HttpUrl, Int, IsoDuration, MetricName, Number, OneOf, PemFile, PemFileOrText, SecretText,
    Text, TextList, Variant,
};
use crate::config::settings::QueueProtocol;

const PORT: Int<u16> = Int::new(1, 65_535, "a TCP port from 1 to 65535");

pub(super) const OPENCTI: &[OptionSpec] = &[
    OptionSpec::new(
        "OPENCTI_URL",
        "opencti",
        "url",
        &Maybe(HttpUrl, field!(opencti.url)),
        Pycti,
        Sync,
        "Base URL of the OpenCTI platform; without it (or with CONNECTOR_SEND_TO_QUEUE=false) the connector runs offline into the bundle folder.",
    )
    .required()
    .example("http://localhost:8080"),
    OptionSpec::new(
        "OPENCTI_TOKEN",
        "opencti",
        "token",
        &Maybe(SecretText, field!(opencti.token)),
        Pycti,
        Sync,
        "API token of the connector's OpenCTI user; required with OPENCTI_URL.",
    )
    .secret()
    .required()
    .example("ChangeMe"),
    OptionSpec::new(
        "OPENCTI_SSL_VERIFY",
        "opencti",
        "ssl_verify",
        &Plain(Flag, field!(opencti.ssl_verify)),
        Pycti,
        Sync,
        "Verify the platform's TLS certificate (off by default, as pycti; turn it on in production).",
    )
    .or("false"),
    OptionSpec::new(
        "OPENCTI_CA_FILE",
        "opencti",
        "ca_file",
        &Maybe(PemFile, field!(opencti.ca_file)),
        Ours,
        Sync,
        "Extra CA bundle (PEM) trusted for the platform.",
    ),
    OptionSpec::new(
        "OPENCTI_JSON_LOGGING",
        "opencti",
        "json_logging",
        &Plain(Flag, field!(opencti.json_logging)),
        Pycti,
        Logging,
        "JSON log lines with pycti's keys; false gives human-readable lines.",
    )
    .or("true"),
    OptionSpec::new(
        "OPENCTI_CUSTOM_HEADERS",
        "opencti",
        "custom_headers",
        &Plain(Headers, field!(opencti.custom_headers)),
        Pycti,
        Sync,
        "Extra HTTP headers for the platform, as \"name1:value1;name2:value2\".",
    )
    .secret(),
];

pub(super) const CONNECTOR: &[OptionSpec] = &[
    OptionSpec::new(
        "CONNECTOR_ID",
        "connector",
        "id",
        &Maybe(Text, field!(connector.id)),
        Pycti,
        Sync,
        "Unique UUIDv4 of this connector instance; required to push to OpenCTI.",
    )
    .example("ChangeMe"),
    OptionSpec::new(
        "CONNECTOR_TYPE",
        "connector",
        "type",
        &Plain(
            OneOf(&["EXTERNAL_IMPORT"]),
            field!(connector.connector_type),
        ),
        Pycti,
        Sync,
        "Always EXTERNAL_IMPORT.",
    )
    .or("EXTERNAL_IMPORT"),
    OptionSpec::new(
        "CONNECTOR_NAME",
        "connector",
        "name",
        &Plain(Text, field!(connector.name)),
        Pycti,
        Logging,
        "Name shown in OpenCTI and in the logs.",
    )
    .or("Misp Feed"),
    OptionSpec::new(
        "CONNECTOR_SCOPE",
        "connector",
        "scope",
        &Plain(TextList, field!(connector.scope)),
        Pycti,
        Sync,
        "Comma-separated scope.",
    )
    .or("misp-feed"),
    OptionSpec::new(
        "CONNECTOR_LOG_LEVEL",
        "connector",
        "log_level",
        &Plain(
            OneOf(&["debug", "info", "warn", "warning", "error"]),
            field!(connector.log_level),
        ),
        Pycti,
        Logging,
        "debug, info, warn, warning or error (any case).",
    )
    .or("error"),
    OptionSpec::new(
        "CONNECTOR_DURATION_PERIOD",
        "connector",
        "duration_period",
        &Plain(IsoDuration, field!(connector.duration_period)),
        Pycti,
        Sync,
        "Time between two runs, ISO-8601 duration (PT0S runs once and stops).",
    )
    .or("PT5M"),
    OptionSpec::new(
        "CONNECTOR_AUTO",
        "connector",
        "auto",
        &Plain(Flag, field!(connector.auto)),
        Pycti,
        Sync,
        "pycti's auto flag, registered with the platform.",
    )
    .or("false"),
    OptionSpec::new(
        "CONNECTOR_ONLY_CONTEXTUAL",
        "connector",
        "only_contextual",
        &Plain(Flag, field!(connector.only_contextual)),
        Pycti,
        Sync,
        "pycti's only-contextual flag, registered with the platform.",
    )
    .or("false"),
    OptionSpec::new(
        "CONNECTOR_RUN_AND_TERMINATE",
        "connector",
        "run_and_terminate",
        &Plain(Flag, field!(connector.run_and_terminate)),
        Pycti,
        Sync,
        "Run once and exit.",
    )
    .or("false"),
    OptionSpec::new(
        "CONNECTOR_QUEUE_PROTOCOL",
        "connector",
        "queue_protocol",
        &Plain(
            Variant(&[("amqp", QueueProtocol::Amqp), ("api", QueueProtocol::Api)]),
            field!(connector.queue_protocol),
        ),
        Pycti,
        Sync,
        "How bundles reach OpenCTI: amqp (RabbitMQ) or api (stixBundlePush).",
    )
    .or("amqp")
    .old_alias(&["QUEUE_PROTOCOL"]),
    OptionSpec::new(
        "CONNECTOR_QUEUE_THRESHOLD",
        "connector",
        "queue_threshold",
        &Plain(
            Number {
                min: 0.0,
                min_open: true,
                below: f64::INFINITY,
                expected: "a number of megabytes greater than 0",
            },
            field!(connector.queue_threshold_mb),
        ),
        Pycti,
        Sync,
        "Runs wait while the platform's queue for this connector holds more than this many MB.",
    )
    .or("500"),
    OptionSpec::new(
        "CONNECTOR_SEND_TO_QUEUE",
        "connector",
        "send_to_queue",
        &Plain(Flag, field!(connector.send_to_queue)),
        Pycti,
        Sync,
        "Send bundles to OpenCTI.",
    )
    .or("true"),
    OptionSpec::new(
        "CONNECTOR_SEND_TO_DIRECTORY",
        "connector",
        "send_to_directory",
        &Plain(Flag, field!(connector.send_to_directory)),
        Pycti,
        Sync,
        "Also write each bundle to a folder, as pycti does.",
    )
    .or("false"),
    OptionSpec::new(
        "CONNECTOR_SEND_TO_DIRECTORY_PATH",
        "connector",
        "send_to_directory_path",
        &Maybe(
            crate::config::parsers::FilePath,
            field!(connector.send_to_directory_path),
        ),
        Pycti,
        Sync,
        "Folder for the bundle files; required with CONNECTOR_SEND_TO_DIRECTORY.",
    ),
    OptionSpec::new(
        "CONNECTOR_SEND_TO_DIRECTORY_RETENTION",
        "connector",
        "send_to_directory_retention",
        &Plain(
            Int::new(
                0,
                u32::MAX as i64,
                "a whole number of days, 0 or more (0 keeps files forever)",
            ),
            field!(connector.send_to_directory_retention_days),
        ),
        Pycti,
        Ledger,
        "Days bundle files are kept; older ones are removed (0 keeps them forever).",
    )
    .or("7"),
    OptionSpec::new(
        "CONNECTOR_EXPOSE_METRICS",
        "connector",
        "expose_metrics",
        &Plain(Flag, field!(connector.expose_metrics)),
        Pycti,
        Sync,
        "Serve Prometheus metrics.",
    )
    .or("false"),
    OptionSpec::new(
        "CONNECTOR_METRICS_PORT",
        "connector",
        "metrics_port",
        &Plain(PORT, field!(connector.metrics_port)),
        Pycti,
        Sync,
        "Port of the Prometheus endpoint.",
    )
    .or("9095"),
    OptionSpec::new(
        "CONNECTOR_METRICS_NAMESPACE",
        "connector",
        "metrics_namespace",
        &Plain(MetricName, field!(connector.metrics_namespace)),
        Pycti,
        Sync,
        "Prefix of every metric name (namespace_subsystem_name), as pycti.",
    )
    .or(""),
    OptionSpec::new(
        "CONNECTOR_METRICS_SUBSYSTEM",
        "connector",
        "metrics_subsystem",
        &Plain(MetricName, field!(connector.metrics_subsystem)),
        Pycti,
        Sync,
        "Second prefix of every metric name, as pycti.",
    )
    .or(""),
];

/// pycti's overrides of the broker connection `registerConnector` returns.
pub(super) const MQ: &[OptionSpec] = &[
    OptionSpec::new(
        "MQ_HOST",
        "mq",
        "host",
        &Maybe(Text, field!(mq.host)),
        Pycti,
        Sync,
        "RabbitMQ host to use instead of the one the platform advertises.",
    ),
    OptionSpec::new(
        "MQ_PORT",
        "mq",
        "port",
        &Maybe(PORT, field!(mq.port)),
        Pycti,
        Sync,
        "RabbitMQ port to use instead of the advertised one.",
    ),
    OptionSpec::new(
        "MQ_VHOST",
        "mq",
        "vhost",
        &Maybe(Text, field!(mq.vhost)),
        Pycti,
        Sync,
        "RabbitMQ virtual host to use instead of the advertised one.",
    ),
    OptionSpec::new(
        "MQ_USE_SSL",
        "mq",
        "use_ssl",
        &Maybe(Flag, field!(mq.use_ssl)),
        Pycti,
        Sync,
        "Connect to RabbitMQ over TLS (amqps) or not, instead of as advertised.",
    ),
    OptionSpec::new(
        "MQ_USER",
        "mq",
        "user",
        &Maybe(Text, field!(mq.user)),
        Pycti,
        Sync,
        "RabbitMQ user to use instead of the advertised one.",
    ),
    OptionSpec::new(
        "MQ_PASS",
        "mq",
        "pass",
        &Maybe(SecretText, field!(mq.pass)),
        Pycti,
        Sync,
        "RabbitMQ password to use instead of the advertised one.",
    )
    .secret(),
    OptionSpec::new(
        "MQ_USE_SSL_CA",
        "mq",
        "use_ssl_ca",
        &Maybe(PemFileOrText, field!(mq.use_ssl_ca)),
        Pycti,
        Sync,
        "CA trusted for RabbitMQ's certificate (the PEM text, or a PEM file path); unlike pycti, the certificate is always verified.",
    ),
];
