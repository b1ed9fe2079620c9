//! Bundle folder sink: the files pycti's `send_to_directory` writes
//! (`CONNECTOR_SEND_TO_DIRECTORY_PATH`), so tools that read that folder keep working.
//!
//! Each bundle is wrapped in pycti's message envelope (`bundle_type: DIRECTORY_BUNDLE`),
//! written under a temporary name, synced, then renamed: a reader never sees half a file,
//! and a receipt is only given for a file that is complete on disk. The bundle text goes
//! into the file as the pipeline serialised it, between the envelope's two halves: a bundle
//! of hundreds of megabytes is neither parsed again nor copied.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::json;

use super::{Delivery, Destination, Receipt, RunSummary, Sink, SinkError};

pub struct DirectorySink {
    folder: PathBuf,
    connector_id: Option<String>,
    connector_name: String,
    connector_type: String,
    scope: Vec<String>,
    auto: bool,
    retention: Option<Duration>,
    /// Makes names unique when two bundles are written within the same clock tick.
    sequence: AtomicU64,
}

impl DirectorySink {
    pub fn new(settings: &crate::config::Settings) -> Result<DirectorySink, SinkError> {
        let folder = settings
            .connector
            .send_to_directory_path
            .clone()
            .ok_or_else(|| {
                SinkError::Io(
                    "CONNECTOR_SEND_TO_DIRECTORY is on but CONNECTOR_SEND_TO_DIRECTORY_PATH is not set"
                        .into(),
                )
            })?;
        std::fs::create_dir_all(&folder).map_err(|e| {
            SinkError::Io(format!(
                "cannot create bundle folder {}: {e}",
                folder.display()
            ))
        })?;
        let days = settings.connector.send_to_directory_retention_days;
        let sink = DirectorySink {
            folder,
            connector_id: settings.connector.id.clone(),
            connector_name: settings.connector.name.clone(),
            connector_type: settings.connector.connector_type.clone(),
            scope: settings.connector.scope.clone(),
            auto: settings.connector.auto,
            retention: (days > 0).then(|| Duration::from_secs(86_400 * u64::from(days))),
            sequence: AtomicU64::new(0),
        };
        sink.remove_interrupted_writes();
        Ok(sink)
    }

    /// The start of this connector's file names (see [`DirectorySink::file_name`]).
    fn name_prefix(&self) -> String {
        format!("{}-", self.connector_name.to_lowercase().replace(' ', "_"))
    }

    /// Removes this connector's `.json.tmp` files: writes a crash interrupted before their
    /// rename. Their events were never recorded as pushed, so the next run writes them again.
    fn remove_interrupted_writes(&self) {
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        let prefix = self.name_prefix();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(&prefix) && name.ends_with(".json.tmp")) {
                continue;
            }
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed a bundle file left half-written by an interrupted run")
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "could not remove a bundle file left half-written by an interrupted run")
                }
            }
        }
    }

    /// pycti's name: `<connector name, lower case, spaces as _>-<YYYYmmdd-HHMMSS>-<epoch seconds>.json`,
    /// with a sequence number so that names never collide.
    fn file_name(&self) -> String {
        let now = chrono::Utc::now();
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}{}-{}.{:06}{:04}.json",
            self.name_prefix(),
            now.format("%Y%m%d-%H%M%S"),
            now.timestamp(),
            now.timestamp_subsec_micros(),
            seq % 10_000
        )
    }

    /// pycti's envelope around a bundle, as the text before and the text after it: the
    /// bundle text itself is written between the two as it is, never parsed or copied.
    fn envelope_around(&self) -> (String, &'static str) {
        let connector = json!({
            "id": self.connector_id,
            "name": self.connector_name,
            "type": self.connector_type,
            "scope": self.scope.join(","),
            "auto": self.auto,
            "validate_before_import": false,
        });
        let before = format!(
            "{{\"bundle_type\":\"DIRECTORY_BUNDLE\",\"applicant_id\":null,\"connector\":{connector},\"entities_types\":null,\"bundle\":"
        );
        (before, ",\"update\":false}")
    }

    /// Removes `.json` files older than the retention, as pycti does before each write.
    fn prune_expired(&self) {
        let Some(retention) = self.retention else {
            return;
        };
        let Some(cutoff) = SystemTime::now().checked_sub(retention) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff)
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(file = %path.display(), error = %e, "could not remove an expired bundle file");
            }
        }
    }

    /// Writes `parts` one after the other into a new file of the folder.
    fn write_file(&self, event_uuid: &str, parts: &[&[u8]]) -> Result<PathBuf, SinkError> {
        let name = self.file_name();
        let final_path = self.folder.join(&name);
        let temp_path = self.folder.join(format!("{name}.tmp"));
        let io_error = |what: &str, e: std::io::Error| {
            SinkError::Io(format!(
                "event {event_uuid}: {what} {}: {e}",
                temp_path.display()
            ))
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&temp_path)
            .map_err(|e| io_error("cannot create", e))?;
        for part in parts {
            file.write_all(part)
                .map_err(|e| io_error("cannot write", e))?;
        }
        file.sync_all().map_err(|e| io_error("cannot sync", e))?;
        drop(file);
        std::fs::rename(&temp_path, &final_path).map_err(|e| io_error("cannot rename", e))?;
        // The rename is durable only once the folder itself is synced.
        if let Ok(dir) = std::fs::File::open(&self.folder) {
            let _ = dir.sync_all();
        }
        Ok(final_path)
    }
}

#[async_trait]
impl Sink for DirectorySink {
    fn name(&self) -> &'static str {
        "directory"
    }

    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        let (before, after) = self.envelope_around();
        self.prune_expired();
        let parts = [
            before.as_bytes(),
            delivery.bundle_json.as_bytes(),
            after.as_bytes(),
        ];
        let path = self.write_file(delivery.event_uuid, &parts)?;
        Ok(Receipt {
            destination: Destination::File(path),
            messages: 1,
        })
    }

    async fn finish_run(&self, _summary: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}
