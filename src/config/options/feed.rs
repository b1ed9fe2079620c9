//! The options of the feed and of the conversion: `misp_feed` and `aws`.

use super::Need::{Conversion, Ledger, Sync};
use super::Origin::{Ours, PythonConnector};
use super::{Maybe, OptionSpec, Plain, field};
use crate::config::headers::CheckedHeaders;
use crate::config::parsers::{
    FeedUrl, FilePath, Flag, FolderPath, HttpUrl, ImportFrom, Int, IntervalMinutes, Number,
    PemFile, ScoreMapping, Seconds, SecretText, Size, Text, TextList, Variant,
};
use crate::config::settings::SourceType;

const TIMEOUT: Seconds = Seconds(Number {
    min: 0.0,
    min_open: true,
    below: 1.0e9,
    expected: "a number of seconds greater than 0",
});

/// A conversion option of ours (read by `convert` too); like the MISP connector's options of
/// the same name, it changes the default mode only.
const fn conversion(
    env: &'static str,
    key: &'static str,
    value: &'static dyn super::Slot,
    description: &'static str,
) -> OptionSpec {
    OptionSpec::new(env, "misp_feed", key, value, Ours, Conversion, description)
}

/// A conversion switch of the Python connector (read by `convert` too).
const fn switch(
    env: &'static str,
    key: &'static str,
    value: &'static Plain<Flag>,
    description: &'static str,
) -> OptionSpec {
    OptionSpec::new(
        env,
        "misp_feed",
        key,
        value,
        PythonConnector,
        Conversion,
        description,
    )
}

/// Headers the feed client sets itself, which `MISP_FEED_HTTP_HEADERS` may not replace: the
/// connection's framing and the manifest's conditional GET.
const FEED_CLIENT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "if-none-match",
    "if-modified-since",
];

pub(super) const MISP_FEED: &[OptionSpec] = &[
    OptionSpec::new(
        "MISP_FEED_SOURCE_TYPE",
        "misp_feed",
        "source_type",
        &Plain(
            Variant(&[("url", SourceType::Url), ("s3", SourceType::S3)]),
            field!(misp_feed.source_type),
        ),
        PythonConnector,
        Sync,
        "Where the feed is: url (HTTP(S), file:// or a folder path) or s3.",
    )
    .or("url"),
    OptionSpec::new(
        "MISP_FEED_URL",
        "misp_feed",
        "url",
        &Maybe(FeedUrl, field!(misp_feed.url)),
        PythonConnector,
        Sync,
        "Feed URL (http, https, file:// or a local folder); required when source_type is url.",
    )
    .example("https://changeme.example/misp-feed"),
    OptionSpec::new(
        "MISP_FEED_SSL_VERIFY",
        "misp_feed",
        "ssl_verify",
        &Plain(Flag, field!(misp_feed.ssl_verify)),
        PythonConnector,
        Sync,
        "Verify the feed server's TLS certificate.",
    )
    .or("true"),
    OptionSpec::new(
        "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
        "misp_feed",
        "http_authorization_header",
        &Maybe(SecretText, field!(misp_feed.http_authorization_header)),
        PythonConnector,
        Sync,
        "Authorization header value sent on every feed request.",
    )
    .secret(),
    OptionSpec::new(
        "MISP_FEED_CA_BUNDLE",
        "misp_feed",
        "ca_bundle",
        &Maybe(PemFile, field!(misp_feed.ca_bundle)),
        Ours,
        Sync,
        "Extra CA bundle (PEM) trusted for the feed server.",
    ),
    OptionSpec::new(
        "MISP_FEED_HTTP_HEADERS",
        "misp_feed",
        "http_headers",
        &Plain(
            CheckedHeaders {
                reserved: FEED_CLIENT_HEADERS,
            },
            field!(misp_feed.http_headers),
        ),
        Ours,
        Sync,
        "Extra headers sent on every HTTP(S) feed request, as \"name1:value1;name2:value2\" (the format of OPENCTI_CUSTOM_HEADERS).",
    )
    .secret(),
    OptionSpec::new(
        "MISP_FEED_CLIENT_CERT",
        "misp_feed",
        "client_cert",
        &Maybe(PemFile, field!(misp_feed.client_cert)),
        Ours,
        Sync,
        "Client certificate (PEM, intermediates after it) shown to an HTTPS feed server that requires one (mutual TLS); needs MISP_FEED_CLIENT_KEY.",
    ),
    OptionSpec::new(
        "MISP_FEED_CLIENT_KEY",
        "misp_feed",
        "client_key",
        &Maybe(PemFile, field!(misp_feed.client_key)),
        Ours,
        Sync,
        "Private key of MISP_FEED_CLIENT_CERT (unencrypted PEM: PKCS#8, RSA or EC); the path is shown, the key never.",
    ),
    OptionSpec::new(
        "MISP_FEED_BUCKET_NAME",
        "misp_feed",
        "bucket_name",
        &Maybe(Text, field!(misp_feed.bucket_name)),
        PythonConnector,
        Sync,
        "S3 bucket holding the MISP files; required when source_type is s3.",
    )
    .alias(&["MISP_BUCKET_NAME"]),
    OptionSpec::new(
        "MISP_FEED_BUCKET_PREFIX",
        "misp_feed",
        "bucket_prefix",
        &Maybe(Text, field!(misp_feed.bucket_prefix)),
        PythonConnector,
        Sync,
        "Only objects under this key prefix are read.",
    )
    .alias(&["MISP_BUCKET_PREFIX"]),
    OptionSpec::new(
        "MISP_FEED_S3_DELETE_AFTER_IMPORT",
        "misp_feed",
        "s3_delete_after_import",
        &Plain(Flag, field!(misp_feed.s3_delete_after_import)),
        Ours,
        Sync,
        "Delete an S3 object once every event in it is confirmed pushed (the Python connector deleted every object).",
    )
    .or("false"),
    OptionSpec::new(
        "MISP_FEED_IMPORT_FROM_DATE",
        "misp_feed",
        "import_from_date",
        &Maybe(ImportFrom, field!(misp_feed.import_from_date)),
        PythonConnector,
        Sync,
        "First checkpoint: a date, a datetime or an ISO-8601 duration back from now (P30D); unset, the first run imports nothing older than now.",
    ),
    OptionSpec::new(
        "MISP_FEED_INTERVAL",
        "misp_feed",
        "interval",
        &Plain(IntervalMinutes, field!(connector.duration_period)),
        PythonConnector,
        Sync,
        "Deprecated: minutes between runs; when set, replaces CONNECTOR_DURATION_PERIOD.",
    )
    .deprecated_for("CONNECTOR_DURATION_PERIOD"),
    OptionSpec::new(
        "MISP_FEED_LEDGER_PATH",
        "misp_feed",
        "ledger_path",
        &Plain(FilePath, field!(misp_feed.ledger_path)),
        Ours,
        Ledger,
        "SQLite ledger recording every feed file, event and push (put it on a volume).",
    )
    .or("misp-feed-ledger.sqlite"),
    OptionSpec::new(
        "MISP_FEED_MAX_FILE_SIZE",
        "misp_feed",
        "max_file_size",
        &Plain(Size, field!(misp_feed.max_file_size)),
        Ours,
        Sync,
        "Largest feed file accepted, in bytes (K, M, G suffixes allowed); larger files are refused and recorded.",
    )
    .or("512M"),
    OptionSpec::new(
        "MISP_FEED_CONNECT_TIMEOUT",
        "misp_feed",
        "connect_timeout",
        &Plain(TIMEOUT, field!(misp_feed.connect_timeout)),
        Ours,
        Sync,
        "Seconds to wait for a connection to the feed server.",
    )
    .or("10"),
    OptionSpec::new(
        "MISP_FEED_READ_TIMEOUT",
        "misp_feed",
        "read_timeout",
        &Plain(TIMEOUT, field!(misp_feed.read_timeout)),
        Ours,
        Sync,
        "Seconds to wait for a feed response.",
    )
    .or("120"),
    OptionSpec::new(
        "MISP_FEED_FETCH_DEADLINE",
        "misp_feed",
        "fetch_deadline",
        &Plain(TIMEOUT, field!(misp_feed.fetch_deadline)),
        Ours,
        Sync,
        "Seconds one feed request may take in all, body included: a server that sends a byte now and then cannot hold a run.",
    )
    .or("600"),
    OptionSpec::new(
        "MISP_FEED_HTTP_RETRIES",
        "misp_feed",
        "http_retries",
        &Plain(
            Int::new(0, 100, "a whole number from 0 to 100"),
            field!(misp_feed.http_retries),
        ),
        Ours,
        Sync,
        "Retries of one feed request after the first try (timeouts, connection errors, 429, 5xx), with exponential backoff and jitter.",
    )
    .or("4"),
    OptionSpec::new(
        "MISP_FEED_FETCH_CONCURRENCY",
        "misp_feed",
        "fetch_concurrency",
        &Plain(
            Int::new(1, 256, "a whole number from 1 to 256"),
            field!(misp_feed.fetch_concurrency),
        ),
        Ours,
        Sync,
        "Events fetched and converted at the same time.",
    )
    .or("4"),
    OptionSpec::new(
        "MISP_FEED_MEMORY_BUDGET_MB",
        "misp_feed",
        "memory_budget_mb",
        &Plain(
            Int::new(1, 1_048_576, "a whole number of megabytes from 1 to 1048576"),
            field!(misp_feed.memory_budget_mb),
        ),
        Ours,
        Sync,
        "Megabytes the events in flight may take together, each estimated from its file's size; an event estimated above it runs alone.",
    )
    .or("1024"),
    OptionSpec::new(
        "MISP_FEED_MAX_ATTEMPTS",
        "misp_feed",
        "max_attempts",
        &Plain(
            Int::new(1, 1_000_000, "a whole number of 1 or more"),
            field!(misp_feed.max_attempts),
        ),
        Ours,
        Sync,
        "Runs that may try a failing event before it is given up (until `retry`).",
    )
    .or("5"),
    OptionSpec::new(
        "MISP_FEED_RETRY_BACKOFF",
        "misp_feed",
        "retry_backoff",
        &Plain(
            Seconds(Number {
                min: 0.0,
                min_open: false,
                below: 1.0e9,
                expected: "a number of seconds, 0 or more",
            }),
            field!(misp_feed.retry_backoff),
        ),
        Ours,
        Sync,
        "Seconds before a failed event's first retry; doubles with each failure (capped at 6 h).",
    )
    .or("60"),
    OptionSpec::new(
        "MISP_FEED_HEARTBEAT_PERIOD",
        "misp_feed",
        "heartbeat_period",
        &Plain(
            Seconds(Number {
                min: 0.001,
                min_open: false,
                below: 1.0e7,
                expected: "a number of seconds, more than 0",
            }),
            field!(misp_feed.heartbeat_period),
        ),
        Ours,
        Sync,
        "Seconds between the pings `run` sends OpenCTI with the state (pycti: 40); a UI reset is noticed within it.",
    )
    .or("40"),
    switch(
        "MISP_FEED_CREATE_REPORTS",
        "create_reports",
        &Plain(Flag, field!(misp_feed.convert.create_reports)),
        "Create one report per MISP event.",
    )
    .or("true"),
    OptionSpec::new(
        "MISP_FEED_REPORT_TYPE",
        "misp_feed",
        "report_type",
        &Plain(Text, field!(misp_feed.convert.report_type)),
        PythonConnector,
        Conversion,
        "report_types value of the created reports.",
    )
    .or("misp-event"),
    switch(
        "MISP_FEED_CREATE_INDICATORS",
        "create_indicators",
        &Plain(Flag, field!(misp_feed.convert.create_indicators)),
        "Create indicators from attributes.",
    )
    .or("false"),
    switch(
        "MISP_FEED_CREATE_OBSERVABLES",
        "create_observables",
        &Plain(Flag, field!(misp_feed.convert.create_observables)),
        "Create observables from attributes.",
    )
    .or("false"),
    switch(
        "MISP_FEED_CREATE_OBJECT_OBSERVABLES",
        "create_object_observables",
        &Plain(Flag, field!(misp_feed.convert.create_object_observables)),
        "Create a text observable for each MISP object.",
    )
    .or("false"),
    switch(
        "MISP_FEED_CREATE_TAGS_AS_LABELS",
        "create_tags_as_labels",
        &Plain(Flag, field!(misp_feed.convert.create_tags_as_labels)),
        "Turn tags into labels.",
    )
    .or("true")
    .alias(&["MISP_CREATE_TAGS_AS_LABELS"]),
    switch(
        "MISP_FEED_GUESS_THREATS_FROM_TAGS",
        "guess_threats_from_tags",
        &Plain(Flag, field!(misp_feed.convert.guess_threats_from_tags)),
        "Link the intrusion sets, malware, tools and attack patterns the platform finds by tag value.",
    )
    .or("false")
    .alias(&["MISP_FEED_GUESS_THREAT_FROM_TAGS"])
    .key_alias(&["guess_threat_from_tags"]),
    switch(
        "MISP_FEED_AUTHOR_FROM_TAGS",
        "author_from_tags",
        &Plain(Flag, field!(misp_feed.convert.author_from_tags)),
        "Take the author from creator tags.",
    )
    .or("false"),
    switch(
        "MISP_FEED_MARKINGS_FROM_TAGS",
        "markings_from_tags",
        &Plain(Flag, field!(misp_feed.convert.markings_from_tags)),
        "Take markings from marking tags.",
    )
    .or("false"),
    OptionSpec::new(
        "MISP_FEED_IMPORT_TO_IDS_NO_SCORE",
        "misp_feed",
        "import_to_ids_no_score",
        &Maybe(
            Int::new(
                i64::MIN,
                i64::MAX,
                "a whole number (a score, usually 0 to 100)",
            ),
            field!(misp_feed.convert.import_to_ids_no_score),
        ),
        PythonConnector,
        Conversion,
        "Score of what is made from attributes whose to_ids is false (unset: the event threat level decides).",
    ),
    switch(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT",
        "import_unsupported_observables_as_text",
        &Plain(
            Flag,
            field!(misp_feed.convert.import_unsupported_observables_as_text),
        ),
        "Import attributes of unsupported types as text observables.",
    )
    .or("false"),
    switch(
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
        "import_unsupported_observables_as_text_transparent",
        &Plain(
            Flag,
            field!(misp_feed.convert.import_unsupported_observables_as_text_transparent),
        ),
        "A text observable takes the plain attribute value instead of a composed key.",
    )
    .or("true"),
    switch(
        "MISP_FEED_IMPORT_WITH_ATTACHMENTS",
        "import_with_attachments",
        &Plain(Flag, field!(misp_feed.convert.import_with_attachments)),
        "Import attachment and malware-sample files.",
    )
    .or("false"),
    OptionSpec::new(
        "MISP_FEED_WARNINGLISTS_PATH",
        "misp_feed",
        "warninglists_path",
        &Maybe(FolderPath, field!(misp_feed.warninglists_path)),
        Ours,
        Conversion,
        "MISP warninglists folder (a misp-warninglists checkout: lists/<name>/list.json); an attribute whose value is on a list makes no indicator, its observable is kept.",
    ),
    OptionSpec::new(
        "MISP_FEED_REFERENCE_COMPAT",
        "misp_feed",
        "reference_compat",
        &Plain(Flag, field!(misp_feed.convert.reference_compat)),
        Ours,
        Conversion,
        "Reproduce the Python connector's output exactly, its defects included.",
    )
    .or("false"),
    conversion(
        "MISP_FEED_IMPORT_DELETED",
        "import_deleted",
        &Plain(Flag, field!(misp_feed.convert.import_deleted)),
        "Also import the attributes, objects, object references and event reports MISP marks deleted (reference_compat always does, as the Python connector).",
    )
    .or("false"),
    conversion(
        "MISP_FEED_INDICATORS_ONLY_TO_IDS",
        "indicators_only_to_ids",
        &Plain(Flag, field!(misp_feed.convert.indicators_only_to_ids)),
        "Create indicators only from attributes whose to_ids is set (observables are still made from the others; not with reference_compat).",
    )
    .or("false"),
    conversion(
        "MISP_FEED_INDICATOR_VALID_DAYS",
        "indicator_valid_days",
        &Maybe(
            Int::new(1, 36_500, "a whole number of days from 1 to 36500"),
            field!(misp_feed.convert.indicator_valid_days),
        ),
        "Days an indicator stays valid: valid_until is this many days after valid_from (unset, or with reference_compat: no valid_until).",
    ),
    conversion(
        "MISP_FEED_THREAT_LEVEL_SCORE_MAPPING",
        "threat_level_score_mapping",
        &Plain(
            ScoreMapping,
            field!(misp_feed.convert.threat_level_score_mapping),
        ),
        "Score of each MISP threat level (1 high, 2 medium, 3 low, 4 undefined) as <level>:<score> entries separated by ';', scores 0 to 100; level 4 is required and scores any level left out (the MISP connector's format; reference_compat keeps the Python connector's fixed scores).",
    )
    .or("1:90;2:60;3:30;4:50"),
    conversion(
        "MISP_FEED_KEEP_ORIGINAL_TAGS_AS_LABEL",
        "keep_original_tags_as_label",
        &Plain(
            TextList,
            field!(misp_feed.convert.keep_original_tags_as_label),
        ),
        "Comma-separated tag prefixes: a tag starting with one becomes a label as it is written (as the MISP connector; not with reference_compat).",
    ),
    conversion(
        "MISP_FEED_PROPAGATE_LABELS",
        "propagate_labels",
        &Plain(Flag, field!(misp_feed.convert.propagate_labels)),
        "Attributes with tags of their own also carry the event's labels (as the MISP connector; not with reference_compat).",
    )
    .or("false"),
];

pub(super) const AWS: &[OptionSpec] = &[
    OptionSpec::new(
        "AWS_ENDPOINT_URL",
        "aws",
        "endpoint_url",
        &Maybe(HttpUrl, field!(aws.endpoint_url)),
        PythonConnector,
        Sync,
        "S3-compatible endpoint (MinIO ...); unset uses AWS.",
    ),
    OptionSpec::new(
        "AWS_ACCESS_KEY_ID",
        "aws",
        "access_key_id",
        &Maybe(Text, field!(aws.access_key_id)),
        PythonConnector,
        Sync,
        "Access key id; unset uses the usual AWS credential chain.",
    )
    .secret(),
    OptionSpec::new(
        "AWS_SECRET_ACCESS_KEY",
        "aws",
        "secret_access_key",
        &Maybe(SecretText, field!(aws.secret_access_key)),
        PythonConnector,
        Sync,
        "Secret access key; required with AWS_ACCESS_KEY_ID.",
    )
    .secret(),
    OptionSpec::new(
        "AWS_REGION",
        "aws",
        "region",
        &Maybe(Text, field!(aws.region)),
        PythonConnector,
        Sync,
        "Bucket region.",
    )
    .alias(&["AWS_DEFAULT_REGION"])
    .key_alias(&["default_region"]),
    OptionSpec::new(
        "AWS_S3_FORCE_PATH_STYLE",
        "aws",
        "s3_force_path_style",
        &Maybe(Flag, field!(aws.force_path_style)),
        Ours,
        Sync,
        "Path-style bucket addressing (unset: on when an endpoint is set, as MinIO needs).",
    ),
];
