//! Feed sources: where the feed's files come from (a local folder, an HTTP(S) URL, an S3
//! bucket). A source lists what the feed holds and fetches one file; it decides nothing.

pub mod http;
pub mod local;
pub mod s3;

use async_trait::async_trait;

/// One entry of a feed's `manifest.json`: an event uuid and its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestEntry {
    pub uuid: String,
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
    /// Removes an object once all its events are pushed (S3 with delete-after-import only).
    async fn delete(&self, key: &str) -> Result<(), SourceError> {
        let _ = key;
        Ok(())
    }
}

/// Picks the source the settings describe. (Placeholder until the sources land.)
pub async fn build_source(
    settings: &crate::config::Settings,
) -> Result<Box<dyn FeedSource>, SourceError> {
    let _ = settings;
    Err(SourceError::Invalid {
        what: "source".into(),
        message: "not built yet".into(),
    })
}
