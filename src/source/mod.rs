//! Feed sources: where the feed's files come from (a local folder, an HTTP(S) URL, an S3
//! bucket). A source lists what the feed holds and fetches one file; it decides nothing.

pub mod http;
mod identity;
pub mod local;
pub(crate) mod manifest;
pub mod retry;
pub(crate) mod s3;
mod tls_refusal;

use async_trait::async_trait;

use crate::config::{Settings, SourceType};

/// One entry of a feed's `manifest.json`: an event uuid and its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    /// The event's canonical (lower-case) uuid: the ledger keeps one record per uuid.
    pub uuid: String,
    /// The key as the manifest lists it (a uuid in any case): the event file is requested
    /// by this name, `<key>.json`.
    pub key: String,
    /// What the entry says of its event (tags, creator organisation, threat level...), for
    /// the import filters.
    pub facts: crate::reconciler::filters::EventFacts,
    /// Seconds since the epoch, as the manifest gives it (string or number).
    pub timestamp: i64,
    pub info: Option<String>,
    pub date: Option<String>,
}

/// One object of an S3 bucket that holds event files.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEntry {
    pub key: String,
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// Validators remembered from the last manifest download, for a conditional GET.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestValidators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a source holds now.
#[derive(Debug, Clone)]
pub enum Listing {
    /// A manifest feed (URL or folder). Entries the source rejected (key not a uuid, bad
    /// timestamp) are in `rejected`, with their reason, so they can be recorded.
    Manifest {
        entries: Vec<ManifestEntry>,
        rejected: Vec<(String, String)>,
        validators: ManifestValidators,
    },
    /// The manifest has not changed since `validators` were taken.
    NotModified,
    /// A bucket of event files.
    Objects(Vec<ObjectEntry>),
}

/// A fetched file.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// The object changed since it was downloaded (its new version was never delivered), or
    /// is gone: nothing was deleted.
    ChangedSince,
    /// This source does not delete.
    Kept,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: {size} bytes is over the limit of {limit} bytes")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{what}: {message}")]
    Transport { what: String, message: String },
}

#[async_trait]
pub trait FeedSource: Send + Sync {
    /// A description for logs and `check` (never carries a secret).
    fn describe(&self) -> String;
    /// Lists the feed. `previous` holds the manifest validators from the ledger, if any.
    async fn list(&self, previous: Option<&ManifestValidators>) -> Result<Listing, SourceError>;
    /// Fetches one event file: a manifest uuid (`<uuid>.json`) or an object key.
    async fn fetch(&self, key: &str) -> Result<FetchedFile, SourceError>;
    /// Removes an object once all its events are pushed (S3 with delete-after-import only),
    /// but only while it still holds what was delivered: `delivered_etag` is the ETag of the
    /// version that was downloaded and pushed.
    async fn delete(
        &self,
        key: &str,
        delivered_etag: Option<&str>,
    ) -> Result<Deletion, SourceError> {
        let _ = (key, delivered_etag);
        Ok(Deletion::Kept)
    }
}

impl SourceError {
    /// Whether trying the same request again later may succeed (a network fault or a
    /// server-side error), as opposed to a verdict about the file itself.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transport { .. })
    }
}

/// Builds the source that `settings.misp_feed` describes: an S3 bucket for `source_type: s3`,
/// otherwise an HTTP(S) feed for `http://` / `https://` URLs and a local folder for
/// `file://` URLs and plain paths.
pub async fn build_source(settings: &Settings) -> Result<Box<dyn FeedSource>, SourceError> {
    let retry = retry::RetryPolicy {
        retries: settings.misp_feed.http_retries,
        ..retry::RetryPolicy::default()
    };
    build_source_with_retry(settings, retry).await
}

/// [`build_source`] with explicit retry timing (tests use millisecond delays); `retry.retries`
/// replaces `http_retries` from the settings.
pub(crate) async fn build_source_with_retry(
    settings: &Settings,
    retry: retry::RetryPolicy,
) -> Result<Box<dyn FeedSource>, SourceError> {
    let feed = &settings.misp_feed;
    match feed.source_type {
        SourceType::S3 => {
            let source = s3::S3Source::from_settings(feed, &settings.aws, &retry).await?;
            Ok(Box::new(source))
        }
        SourceType::Url => {
            let url = feed
                .url
                .as_deref()
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .ok_or_else(|| SourceError::Invalid {
                    what: "MISP_FEED_URL".into(),
                    message: "is not set (required when MISP_FEED_SOURCE_TYPE is url)".into(),
                })?;
            match FeedLocation::parse(url)? {
                FeedLocation::Http(url) => {
                    let options = http::HttpOptions {
                        retry,
                        ..http::HttpOptions::from_settings(feed)?
                    };
                    Ok(Box::new(http::HttpSource::new(&url, options)?))
                }
                FeedLocation::Folder(path) => Ok(Box::new(local::LocalSource::new(
                    &path,
                    feed.max_file_size,
                )?)),
            }
        }
    }
}

/// Where a `MISP_FEED_URL` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedLocation {
    /// An `http://` or `https://` URL.
    Http(String),
    /// A local folder, from a `file://` URL or a plain path.
    Folder(std::path::PathBuf),
}

impl FeedLocation {
    pub fn parse(url: &str) -> Result<FeedLocation, SourceError> {
        let invalid = |message: String| SourceError::Invalid {
            what: "MISP_FEED_URL".into(),
            message,
        };
        let Some((scheme, _)) = url.split_once("://") else {
            return Ok(FeedLocation::Folder(url.into()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Ok(FeedLocation::Http(url.to_string())),
            "file" => {
                let parsed = url::Url::parse(url)
                    .map_err(|err| invalid(format!("not a valid file:// URL: {err}")))?;
                let path = parsed.to_file_path().map_err(|()| {
                    invalid("a file:// URL must name a local absolute path".into())
                })?;
                Ok(FeedLocation::Folder(path))
            }
            other => Err(invalid(format!(
                "unsupported scheme {other:?} (use http, https, file or a plain path)"
            ))),
        }
    }
}
