//! A MISP feed in a local folder (`file://` URLs and plain paths): `manifest.json` and one
//! `<uuid>.json` per event. Reads never leave the folder: names are checked before use and
//! every path is resolved (symlinks included) and must stay under the folder's real path.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use super::manifest::{MANIFEST_FILE, event_file_for_key, parse_manifest};
use super::{FeedSource, FetchedFile, Listing, ManifestValidators, SourceError};

#[derive(Debug, Clone)]
pub struct LocalSource {
    /// The folder's canonical path (symlinks resolved).
    root: PathBuf,
    max_file_size: u64,
}

impl LocalSource {
    /// Opens the feed folder at `folder`; it must exist and be a directory.
    pub fn new(folder: &Path, max_file_size: u64) -> Result<LocalSource, SourceError> {
        let what = || format!("feed folder {}", folder.display());
        let root = std::fs::canonicalize(folder).map_err(|err| match err.kind() {
            ErrorKind::NotFound => SourceError::NotFound { what: what() },
            _ => SourceError::Invalid {
                what: what(),
                message: err.to_string(),
            },
        })?;
        if !root.is_dir() {
            return Err(SourceError::Invalid {
                what: what(),
                message: "is not a directory".into(),
            });
        }
        Ok(LocalSource {
            root,
            max_file_size,
        })
    }

    /// Reads `name` (a plain file name) from the folder, refusing anything that resolves
    /// outside it and anything over the size limit.
    async fn read(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let path = self.root.join(name);
        let what = path.display().to_string();
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." || name == "." {
            return Err(SourceError::Invalid {
                what,
                message: "is not a plain file name inside the feed folder".into(),
            });
        }
        let resolved = tokio::fs::canonicalize(&path)
            .await
            .map_err(|err| io_error(&what, err))?;
        if !resolved.starts_with(&self.root) {
            return Err(SourceError::Invalid {
                what,
                message: format!(
                    "resolves to {}, outside the feed folder; refused",
                    resolved.display()
                ),
            });
        }
        // Opened without blocking: opening a FIFO (or a device) for reading would wait for a
        // writer forever, and this run and every later one with it. What is opened is checked
        // to be a regular file before a byte is read.
        let mut options = tokio::fs::OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        options.custom_flags(libc::O_NONBLOCK);
        let mut file = options
            .open(&resolved)
            .await
            .map_err(|err| io_error(&what, err))?;
        let metadata = file.metadata().await.map_err(|err| io_error(&what, err))?;
        if !metadata.is_file() {
            return Err(SourceError::Invalid {
                what,
                message: "is not a regular file".into(),
            });
        }
        if metadata.len() > self.max_file_size {
            return Err(SourceError::TooLarge {
                what,
                size: metadata.len(),
                limit: self.max_file_size,
            });
        }
        // The file may grow between the size check and the read: read at most one byte over
        // the limit so that growth is caught without reading it all.
        let capacity = usize::try_from(metadata.len()).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        (&mut file)
            .take(self.max_file_size.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| io_error(&what, err))?;
        let read = bytes.len() as u64;
        if read > self.max_file_size {
            return Err(SourceError::TooLarge {
                what,
                size: read,
                limit: self.max_file_size,
            });
        }
        Ok(bytes)
    }
}

fn io_error(what: &str, err: std::io::Error) -> SourceError {
    match err.kind() {
        ErrorKind::NotFound => SourceError::NotFound { what: what.into() },
        _ => SourceError::Transport {
            what: what.into(),
            message: err.to_string(),
        },
    }
}

#[async_trait]
impl FeedSource for LocalSource {
    fn describe(&self) -> String {
        format!("feed folder {}", self.root.display())
    }

    async fn list(&self, _previous: Option<&ManifestValidators>) -> Result<Listing, SourceError> {
        let bytes = self.read(MANIFEST_FILE).await?;
        parse_manifest(&bytes, ManifestValidators::default()).map_err(|err| match err {
            SourceError::Invalid { message, .. } => SourceError::Invalid {
                what: self.root.join(MANIFEST_FILE).display().to_string(),
                message,
            },
            other => other,
        })
    }

    async fn fetch(&self, key: &str) -> Result<FetchedFile, SourceError> {
        let name = event_file_for_key(key)?;
        let bytes = self.read(&name).await?;
        Ok(FetchedFile {
            name,
            bytes,
            etag: None,
        })
    }
}
