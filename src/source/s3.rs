//! Event files in an S3 bucket (AWS, MinIO or any S3-compatible store).
//!
//! Every `.json` object under the prefix is an event file, except a `manifest.json`. Listing
//! reports each object's ETag, size and last-modified time so unchanged objects can be skipped
//! without a download. Credentials come from the usual AWS chain (environment, profile, web
//! identity, instance role) unless static keys are configured.

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::manifest::MANIFEST_FILE;
use super::retry::RetryPolicy;
use super::{
    Deletion, FeedSource, FetchedFile, Listing, ManifestValidators, ObjectEntry, SourceError,
};
use crate::config::{AwsSettings, MispFeedSettings};

/// The region used when neither the settings nor the AWS chain name one; S3-compatible
/// servers such as MinIO accept it.
const FALLBACK_REGION: &str = "us-east-1";

#[derive(Debug, Clone)]
pub(crate) struct S3Source {
    client: Client,
    bucket: String,
    prefix: Option<String>,
    max_file_size: u64,
    shown: String,
}

impl S3Source {
    /// A source over `client` (already configured: endpoint, credentials, addressing).
    pub(crate) fn new(
        client: Client,
        bucket: impl Into<String>,
        prefix: Option<String>,
        max_file_size: u64,
    ) -> S3Source {
        let bucket = bucket.into();
        let prefix = prefix.filter(|prefix| !prefix.is_empty());
        let shown = match &prefix {
            Some(prefix) => format!("S3 bucket {bucket} (prefix {prefix:?})"),
            None => format!("S3 bucket {bucket}"),
        };
        S3Source {
            client,
            bucket,
            prefix,
            max_file_size,
            shown,
        }
    }

    /// Builds the client from the settings and the AWS environment: `AWS_ENDPOINT_URL` (from
    /// the settings or the environment) with path-style addressing unless turned off, static
    /// keys when both are set, else the default credential chain.
    pub(crate) async fn from_settings(
        feed: &MispFeedSettings,
        aws: &AwsSettings,
        retry: &RetryPolicy,
    ) -> Result<S3Source, SourceError> {
        let bucket = feed
            .bucket_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| SourceError::Invalid {
                what: "MISP_FEED_BUCKET_NAME".into(),
                message: "is not set (required when MISP_FEED_SOURCE_TYPE is s3)".into(),
            })?
            .to_owned();

        let region = RegionProviderChain::first_try(aws.region.clone().map(Region::new))
            .or_default_provider()
            .or_else(Region::new(FALLBACK_REGION));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(feed.connect_timeout)
                    .read_timeout(feed.read_timeout)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(retry.retries.saturating_add(1))
                    .with_initial_backoff(retry.base_delay)
                    .with_max_backoff(retry.max_delay),
            );
        if let Some(endpoint) = aws.endpoint_url.as_deref().filter(|e| !e.is_empty()) {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key_id), Some(secret)) = (&aws.access_key_id, &aws.secret_access_key)
            && !key_id.is_empty()
            && !secret.is_empty()
        {
            loader = loader.credentials_provider(Credentials::new(
                key_id.clone(),
                secret.expose().to_owned(),
                None,
                None,
                "misp-feed-settings",
            ));
        }
        let shared = loader.load().await;

        let custom_endpoint = aws.endpoint_url.as_deref().is_some_and(|e| !e.is_empty())
            || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
        let path_style = aws.force_path_style.unwrap_or(custom_endpoint);
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(path_style)
            .build();
        Ok(S3Source::new(
            Client::from_conf(config),
            bucket,
            feed.bucket_prefix.clone(),
            feed.max_file_size,
        ))
    }

    fn object_what(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// Whether an object key names an event file.
fn is_event_file(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.len() > ".json".len()
        && name.to_ascii_lowercase().ends_with(".json")
        && !name.eq_ignore_ascii_case(MANIFEST_FILE)
}

/// Turns an SDK error into ours: a missing key or bucket is `NotFound`, another refusal by
/// the server (access denied, bad signature) `Invalid`, the rest (network, throttling, 5xx)
/// `Transport`. The SDK retried transient faults already.
fn sdk_error<E>(what: String, err: SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    let code = err.code().map(str::to_owned);
    if matches!(
        code.as_deref(),
        Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
    ) || status == Some(404)
    {
        return SourceError::NotFound { what };
    }
    let message = match (&err, status) {
        (SdkError::ServiceError(_), Some(status)) => {
            let mut message = format!("server answered HTTP {status}");
            if let Some(code) = &code {
                message.push_str(&format!(" {code}"));
            }
            if let Some(text) = err.message() {
                message.push_str(&format!(": {text}"));
            }
            message
        }
        _ => error_chain(&err),
    };
    match status {
        Some(status) if (400..500).contains(&status) && status != 408 && status != 429 => {
            SourceError::Invalid { what, message }
        }
        _ => SourceError::Transport { what, message },
    }
}

/// An error and its causes on one line (the SDK's own context printer appends a debug dump).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn to_chrono(time: &aws_sdk_s3::primitives::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

#[async_trait]
impl FeedSource for S3Source {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn list(&self, _previous: Option<&ManifestValidators>) -> Result<Listing, SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .set_prefix(self.prefix.clone())
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| sdk_error(self.shown.clone(), err))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                if !is_event_file(key) {
                    continue;
                }
                objects.push(ObjectEntry {
                    key: key.to_owned(),
                    etag: object.e_tag().map(normalize_etag),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                    last_modified: object.last_modified().and_then(to_chrono),
                });
            }
        }
        Ok(Listing::Objects(objects))
    }

    async fn fetch(&self, key: &str) -> Result<FetchedFile, SourceError> {
        let what = self.object_what(key);
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| sdk_error(what.clone(), err))?;
        let limit = self.max_file_size;
        let announced = output.content_length().and_then(|s| u64::try_from(s).ok());
        if let Some(size) = announced
            && size > limit
        {
            return Err(SourceError::TooLarge { what, size, limit });
        }
        let etag = output.e_tag().map(normalize_etag);
        let mut body = output.body;
        let initial = announced.unwrap_or(0).min(8 * 1024 * 1024);
        let mut bytes = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| SourceError::Transport {
                what: what.clone(),
                message: format!(
                    "body cut short after {} bytes: {}",
                    bytes.len(),
                    error_chain(&err)
                ),
            })?;
            let size = (bytes.len() + chunk.len()) as u64;
            if size > limit {
                return Err(SourceError::TooLarge { what, size, limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(size) = announced
            && size != bytes.len() as u64
        {
            return Err(SourceError::Transport {
                what,
                message: format!(
                    "body truncated: {} of the {size} announced bytes arrived",
                    bytes.len()
                ),
            });
        }
        Ok(FetchedFile {
            name: key.to_owned(),
            bytes,
            etag,
        })
    }

    async fn delete(
        &self,
        key: &str,
        delivered_etag: Option<&str>,
    ) -> Result<Deletion, SourceError> {
        let what = self.object_what(key);
        // Compared right before deleting, and the delete itself is conditional where the
        // store supports it (If-Match): an object overwritten after its download holds a
        // version nobody delivered, and must stay.
        let current = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => head.e_tag().map(normalize_etag),
            Err(err) => match sdk_error(what.clone(), err) {
                SourceError::NotFound { .. } => return Ok(Deletion::ChangedSince),
                other => return Err(other),
            },
        };
        let Some(delivered) = delivered_etag else {
            // Without an ETag nothing proves which version was delivered.
            return Ok(Deletion::ChangedSince);
        };
        if current.as_deref() != Some(delivered) {
            return Ok(Deletion::ChangedSince);
        }
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(format!("\"{delivered}\""))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(Deletion::Deleted),
            Err(err) if err.raw_response().map(|r| r.status().as_u16()) == Some(412) => {
                Ok(Deletion::ChangedSince)
            }
            Err(err) => Err(sdk_error(what, err)),
        }
    }
}

/// S3 sends ETags in quotes (`"d41d8..."`); the ledger keeps the bare value so listing and
/// download compare equal whatever quoting a server uses.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_files_are_json_objects_other_than_the_manifest() {
        assert!(is_event_file(
            "feed/5b646415-7b48-40d5-86b4-c0070acd0835.json"
        ));
        assert!(is_event_file("batch.JSON"));
        assert!(!is_event_file("feed/manifest.json"));
        assert!(!is_event_file("manifest.json"));
        assert!(!is_event_file("feed/hashes.csv"));
        assert!(!is_event_file("feed/"));
        assert!(!is_event_file("feed/.json"));
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }
}
