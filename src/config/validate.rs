//! Rules between options. Only the syncing commands (`once`, `run`, `check`) reach a feed and
//! a destination, so only they need one; `convert` and the ledger commands read no option
//! these rules are about.

use super::ConfigError;
use super::options::Scope;
use super::settings::{Settings, SourceType};

pub(super) fn across_options(scope: Scope, settings: &mut Settings) -> Result<(), ConfigError> {
    if scope != Scope::Sync {
        return Ok(());
    }
    if settings.connector.duration_period.is_zero() {
        // pycti runs once and stops when the period is zero.
        settings.connector.run_and_terminate = true;
    }
    feed_is_given(settings)?;
    feed_access_is_consistent(settings)?;
    bundles_have_a_destination(settings)?;
    aws_keys_come_in_pairs(settings)
}

fn missing(variable: &str, reason: &str) -> ConfigError {
    ConfigError::Missing {
        variable: variable.to_string(),
        reason: reason.to_string(),
    }
}

fn feed_is_given(settings: &Settings) -> Result<(), ConfigError> {
    let feed = &settings.misp_feed;
    match feed.source_type {
        SourceType::Url if feed.url.is_none() => Err(missing(
            "MISP_FEED_URL",
            "required when MISP_FEED_SOURCE_TYPE is url",
        )),
        SourceType::S3 if feed.bucket_name.is_none() => Err(missing(
            "MISP_FEED_BUCKET_NAME",
            "required when MISP_FEED_SOURCE_TYPE is s3 (MISP_BUCKET_NAME is accepted too)",
        )),
        _ => Ok(()),
    }
}

/// The client certificate needs its key and the reverse; the Authorization header is given
/// by one option only.
fn feed_access_is_consistent(settings: &Settings) -> Result<(), ConfigError> {
    let feed = &settings.misp_feed;
    match (&feed.client_cert, &feed.client_key) {
        (Some(_), None) => {
            return Err(missing(
                "MISP_FEED_CLIENT_KEY",
                "required when MISP_FEED_CLIENT_CERT is set (a file holding both may be named twice)",
            ));
        }
        (None, Some(_)) => {
            return Err(missing(
                "MISP_FEED_CLIENT_CERT",
                "required when MISP_FEED_CLIENT_KEY is set",
            ));
        }
        _ => {}
    }
    let authorization_twice = feed.http_authorization_header.is_some()
        && feed
            .http_headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    if authorization_twice {
        return Err(ConfigError::Invalid {
            variable: "MISP_FEED_HTTP_HEADERS".to_string(),
            value: None,
            expected: "no Authorization header while MISP_FEED_HTTP_AUTHORIZATION_HEADER is set (give it once)".to_string(),
        });
    }
    Ok(())
}

fn bundles_have_a_destination(settings: &Settings) -> Result<(), ConfigError> {
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
        None if !connector.send_to_directory => Err(missing(
            "OPENCTI_URL",
            "required unless CONNECTOR_SEND_TO_DIRECTORY is true (offline mode)",
        )),
        Some(_) if settings.opencti.token.is_none() => {
            Err(missing("OPENCTI_TOKEN", "required when OPENCTI_URL is set"))
        }
        Some(_) if connector.send_to_queue && connector.id.is_none() => Err(missing(
            "CONNECTOR_ID",
            "required to push to OpenCTI (a UUIDv4)",
        )),
        _ => Ok(()),
    }
}

fn aws_keys_come_in_pairs(settings: &Settings) -> Result<(), ConfigError> {
    let aws = &settings.aws;
    match (&aws.access_key_id, &aws.secret_access_key) {
        (Some(_), None) => Err(missing(
            "AWS_SECRET_ACCESS_KEY",
            "required when AWS_ACCESS_KEY_ID is set",
        )),
        (None, Some(_)) => Err(missing(
            "AWS_ACCESS_KEY_ID",
            "required when AWS_SECRET_ACCESS_KEY is set",
        )),
        _ => Ok(()),
    }
}
