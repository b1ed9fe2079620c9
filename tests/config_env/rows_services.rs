//! The S3 and RabbitMQ rows of the option table (`aws.*`, `mq.*`).

use super::{Row, opt};

pub(super) fn rows() -> Vec<Row> {
    vec![
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
    ]
}
