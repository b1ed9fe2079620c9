//! A manifest feed (an HTTP(S) URL or a folder): decide every entry, queue the due ones in
//! one transaction, then fetch, convert and push them a few at a time.

use chrono::{SecondsFormat, TimeZone, Utc};
use futures::StreamExt;

use super::event::sha256_hex;
use super::{Outcome, Pipeline, PipelineError, Run, RunReport};
use crate::convert;
use crate::ledger::{Checkpoint, EventStatus, FailureStage, QueuedEvent, settled_watermark};
use crate::reconciler::{self, Decision, ProcessReason, SkipReason};
use crate::source::{ManifestEntry, ManifestValidators};
use crate::telemetry::events::{EventSkipped, InternalEvent, Skip};

fn epoch_text(timestamp: i64) -> String {
    Utc.timestamp_opt(timestamp, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| timestamp.to_string())
}

impl Pipeline {
    pub(super) async fn sync_manifest(
        &self,
        run: &Run,
        checkpoint: Checkpoint,
        mut entries: Vec<ManifestEntry>,
        new_validators: Option<ManifestValidators>,
    ) -> Result<RunReport, PipelineError> {
        entries.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.uuid.cmp(&b.uuid)));
        let import_from_date = self.settings.misp_feed.import_from_date;
        let start_ts = checkpoint.start_timestamp(import_from_date, run.started);
        if checkpoint.last_event_timestamp.is_none() {
            if import_from_date.is_none() {
                tracing::warn!(
                    "first run without MISP_FEED_IMPORT_FROM_DATE: nothing older than now ({}) will be imported",
                    epoch_text(start_ts)
                );
            } else {
                tracing::info!("first run: importing events from {}", epoch_text(start_ts));
            }
        }

        let records = self.ledger.event_map().await?;
        let mut report = RunReport::new(run.id, run.started);
        let mut due: Vec<(ManifestEntry, ProcessReason)> = Vec::new();
        for entry in &entries {
            let record = records.get(&entry.uuid);
            match reconciler::decide_entry(entry, record, start_ts, run.started) {
                Decision::Process(reason) => due.push((entry.clone(), reason)),
                Decision::Skip(SkipReason::Unchanged) => {
                    report.unchanged += 1;
                    EventSkipped {
                        uuid: &entry.uuid,
                        why: Skip::Unchanged,
                    }
                    .emit();
                }
                Decision::Skip(SkipReason::OlderThanCheckpoint) => {
                    report.skipped += 1;
                    EventSkipped {
                        uuid: &entry.uuid,
                        why: Skip::OlderThanCheckpoint,
                    }
                    .emit();
                }
                Decision::Skip(reason) => {
                    report.skipped += 1;
                    EventSkipped {
                        uuid: &entry.uuid,
                        why: Skip::Other(reason.as_str()),
                    }
                    .emit();
                }
            }
        }
        drop(records);

        let queued = due
            .iter()
            .map(|(entry, reason)| QueuedEvent {
                uuid: entry.uuid.clone(),
                source_key: entry.uuid.clone(),
                manifest_timestamp: Some(entry.timestamp),
                info: entry.info.clone(),
                reason: reason.as_str().to_string(),
            })
            .collect();
        self.ledger.queue_events(run.id, queued).await?;

        let bar = self.progress_bar(due.len() as u64);
        let concurrency = self.settings.misp_feed.fetch_concurrency.max(1);
        let mut outcomes = futures::stream::iter(due.into_iter().map(|(entry, reason)| {
            let bar = bar.clone();
            async move {
                let outcome = self.handle_manifest_event(run, &entry, reason).await;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                outcome
            }
        }))
        .buffer_unordered(concurrency);
        while let Some(outcome) = outcomes.next().await {
            report.add(outcome?);
        }
        drop(outcomes);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }

        // Advance the checkpoint over every settled entry, as the Python connector's state.
        let records = self.ledger.event_map().await?;
        let watermark = settled_watermark(&entries, start_ts, |entry| {
            records.get(&entry.uuid).is_some_and(|r| {
                matches!(r.status, EventStatus::Pushed | EventStatus::GaveUp)
                    && r.manifest_timestamp == Some(entry.timestamp)
            })
        });
        let validators = new_validators.unwrap_or_else(|| checkpoint.validators());
        let stored = Checkpoint {
            last_run: Some(run.started.to_rfc3339_opts(SecondsFormat::Secs, true)),
            last_event_timestamp: Some(watermark),
            manifest_etag: validators.etag,
            manifest_last_modified: validators.last_modified,
            last_file: checkpoint.last_file,
        };
        self.ledger.store_checkpoint(stored.clone()).await?;
        report.checkpoint = Some(stored);
        Ok(report)
    }

    /// Fetch, hash, convert and push one manifest event. Returns Err only on ledger failure.
    async fn handle_manifest_event(
        &self,
        run: &Run,
        entry: &ManifestEntry,
        reason: ProcessReason,
    ) -> Result<Outcome, PipelineError> {
        let uuid = entry.uuid.as_str();
        let file = match self.source.fetch(uuid).await {
            Ok(file) => file,
            Err(e) => {
                return self
                    .fail(run, uuid, FailureStage::Fetch, e.to_string())
                    .await;
            }
        };
        // Every reason to fetch a manifest event (new, timestamp moved, owed, operator reset)
        // is also a reason to push it: the content hash is recorded for audit, not to skip.
        // Hashing and parsing run on a blocking thread with the conversion: a large event
        // parsed inline would hold up the other events in flight.
        let parsed = crate::cpu::run(move || {
            let content_sha256 = sha256_hex(&file.bytes);
            let event = convert::parse_event_file(&file.bytes, &file.name)
                .map_err(|e| e.to_string())
                .and_then(|events| {
                    events
                        .into_iter()
                        .next()
                        .ok_or_else(|| format!("{}: no event in the file", file.name))
                });
            (content_sha256, event)
        })
        .await
        .map_err(|reason| PipelineError::Job {
            job: "parsing",
            reason,
        })?;
        match parsed {
            (content_sha256, Ok(event)) => {
                self.convert_and_push(run, uuid, event, content_sha256, reason)
                    .await
            }
            (_, Err(e)) => self.fail(run, uuid, FailureStage::Parse, e).await,
        }
    }
}
