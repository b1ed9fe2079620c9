//! An S3 bucket: every event file under the prefix. An object unchanged (same ETag) since all
//! its events were pushed is skipped without download. Each event of an object succeeds or
//! fails on its own, with the backoff and give-up of manifest events; an object that cannot
//! be read at all is a failed record of its own (keyed by the object). An object is deleted
//! (when configured) only once all its events are confirmed, and only if it still holds the
//! version that was delivered.

use std::collections::HashMap;

use chrono::SecondsFormat;
use futures::StreamExt;

use super::event::{screen, sha256_hex};
use super::{Outcome, Pipeline, PipelineError, Run, RunReport};
use crate::convert;
use crate::ledger::{
    Checkpoint, EventRecord, EventStatus, FailureStage, LeftOut, ObjectStatus, QueuedEvent,
};
use crate::reconciler::{self, Decision, ProcessReason, SkipReason};
use crate::source::{Deletion, FetchedFile, ObjectEntry};
use crate::telemetry::events::{EventSkipped, InternalEvent, ObjectFailed, ObjectSkipped, Skip};

/// What handling one object did to its events.
#[derive(Default)]
struct ObjectCounts {
    outcomes: HashMap<Outcome, u64>,
    /// Events left alone this run (given up, waiting for their retry time).
    skipped: u64,
}

impl ObjectCounts {
    fn add(&mut self, outcome: Outcome) {
        *self.outcomes.entry(outcome).or_insert(0) += 1;
    }

    fn failed(&self) -> u64 {
        self.outcomes.get(&Outcome::Failed).copied().unwrap_or(0)
    }
}

impl Pipeline {
    pub(super) async fn sync_objects(
        &self,
        run: &Run,
        checkpoint: Checkpoint,
        objects: Vec<ObjectEntry>,
    ) -> Result<RunReport, PipelineError> {
        self.reopen_if_settings_changed().await?;
        let mut report = RunReport::new(run.id, run.started);
        let mut due = Vec::new();
        for object in objects {
            let record = self.ledger.s3_object(object.key.clone()).await?;
            let owed = self.ledger.object_events(object.key.clone()).await?;
            match reconciler::decide_object(&object, record.as_ref(), &owed, run.started) {
                Decision::Process(reason) => {
                    let changed = reason == ProcessReason::ObjectChanged;
                    due.push((object, changed));
                }
                Decision::Skip(SkipReason::Unchanged) => {
                    report.unchanged += 1;
                    ObjectSkipped { key: &object.key }.emit();
                }
                Decision::Skip(reason) => {
                    report.skipped += 1;
                    EventSkipped {
                        uuid: &object.key,
                        why: Skip::Other(reason.as_str()),
                    }
                    .emit();
                }
            }
        }
        // Backfill pacing, object by object: the others are downloaded by the next runs.
        if let Some(limit) = self.settings.misp_feed.guards.max_events_per_run {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if due.len() > limit {
                report.deferred = (due.len() - limit) as u64;
                due.truncate(limit);
            }
        }
        let bar = self.progress_bar(due.len() as u64);
        let concurrency = self.settings.misp_feed.fetch_concurrency.max(1);
        let mut last_file = checkpoint.last_file.clone();
        let mut outcomes = futures::stream::iter(due.into_iter().map(|(object, changed)| {
            let bar = bar.clone();
            async move {
                let counts = self.handle_object(run, &object, changed).await;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                counts.map(|counts| (object.key, counts))
            }
        }))
        .buffer_unordered(concurrency);
        while let Some(result) = outcomes.next().await {
            let (key, counts) = result?;
            for (outcome, n) in &counts.outcomes {
                for _ in 0..*n {
                    report.add(*outcome);
                }
            }
            report.skipped += counts.skipped;
            if counts.failed() == 0 {
                last_file = key.rsplit('/').next().map(str::to_string);
            }
        }
        drop(outcomes);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let stored = Checkpoint {
            last_run: Some(run.started.to_rfc3339_opts(SecondsFormat::Secs, true)),
            last_file,
            ..checkpoint
        };
        self.ledger.store_checkpoint(stored.clone()).await?;
        report.checkpoint = Some(stored);
        Ok(report)
    }

    /// The object could not be read at all (fetch failed, not JSON, empty, too large): a
    /// failed record of its own, keyed by the object, that `status`, `events` and `verify`
    /// show and that backs off and gives up as an event does.
    async fn object_failed(
        &self,
        run: &Run,
        object: &ObjectEntry,
        stage: FailureStage,
        error: String,
    ) -> Result<ObjectCounts, PipelineError> {
        ObjectFailed {
            key: &object.key,
            stage: stage.as_str(),
            reason: &error,
            source: self.source_kind(),
        }
        .emit();
        self.ledger
            .record_s3_object(
                run.id,
                object.clone(),
                ObjectStatus::Failed,
                0,
                Some(error.clone()),
            )
            .await?;
        let queued = QueuedEvent {
            uuid: object.key.clone(),
            source_key: object.key.clone(),
            manifest_timestamp: None,
            info: None,
            reason: "object new, changed or due for a retry".into(),
        };
        self.ledger.queue_events(run.id, vec![queued]).await?;
        self.ledger
            .mark_failed(
                run.id,
                object.key.clone(),
                stage,
                error,
                self.retry_policy.clone(),
            )
            .await?;
        let mut counts = ObjectCounts::default();
        counts.add(Outcome::Failed);
        Ok(counts)
    }

    async fn handle_object(
        &self,
        run: &Run,
        object: &ObjectEntry,
        changed: bool,
    ) -> Result<ObjectCounts, PipelineError> {
        // The listing gives the object's size: its events wait for their share of the
        // memory budget before it is downloaded, and hold it until the last one is pushed.
        let _admission = self.admit(&object.key, object.size).await;
        let file = match self.source.fetch(&object.key).await {
            Ok(file) => file,
            Err(e) => {
                return self
                    .object_failed(run, object, FailureStage::Fetch, e.to_string())
                    .await;
            }
        };
        let FetchedFile { bytes, etag, .. } = file;
        // Parsing and hashing each event's content run as CPU jobs, as on the manifest path.
        let key = object.key.clone();
        let parsed = crate::cpu::run(move || {
            convert::parse_event_list(&bytes, &key).map(|listed| {
                listed
                    .into_iter()
                    .enumerate()
                    .map(|(index, listed)| {
                        let uuid = listed.uuid.unwrap_or_else(|| format!("{key}#{index}"));
                        let event = listed.event.map(|event| {
                            let content = serde_json::to_vec(&event.event).unwrap_or_default();
                            (sha256_hex(&content), event)
                        });
                        (uuid, event)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await
        .map_err(|reason| PipelineError::Job {
            job: "parsing",
            reason,
        })?;
        let events = match parsed {
            Ok(events) => events,
            Err(e) => {
                return self
                    .object_failed(run, object, FailureStage::Parse, e.to_string())
                    .await;
            }
        };
        self.ledger
            .resolve_object_failure(run.id, object.key.clone())
            .await?;
        let event_count = events.len();
        let mut counts = ObjectCounts::default();
        for (uuid, event) in events {
            let record = self.ledger.event(uuid.clone()).await?;
            if !changed && record.as_ref().is_some_and(waits) {
                counts.skipped += 1;
                continue;
            }
            let (content_sha256, event) = match event {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.queue_object_event(run, object, &uuid, None, None)
                        .await?;
                    let outcome = self
                        .fail(run, &uuid, FailureStage::Parse, e.to_string())
                        .await?;
                    counts.add(outcome);
                    continue;
                }
            };
            if reconciler::content_unchanged(record.as_ref(), &content_sha256) {
                counts.add(Outcome::Unchanged);
                EventSkipped {
                    uuid: &uuid,
                    why: Skip::SameContent {
                        object: &object.key,
                    },
                }
                .emit();
                continue;
            }
            if let Some((status, reason)) = screen(&self.settings, &event.event) {
                let left = LeftOut {
                    uuid: uuid.clone(),
                    source_key: object.key.clone(),
                    manifest_timestamp: event.timestamp(),
                    info: event.info().map(str::to_owned),
                    status,
                    reason,
                };
                counts.add(self.leave_out(run, left).await?);
                continue;
            }
            for warning in event.warnings() {
                tracing::warn!(event = %uuid, "{warning}");
            }
            self.queue_object_event(run, object, &uuid, event.timestamp(), event.info())
                .await?;
            let outcome = self
                .convert_and_push(
                    run,
                    &uuid,
                    event,
                    content_sha256,
                    ProcessReason::ObjectChanged,
                )
                .await?;
            counts.add(outcome);
        }
        let (status, error) = if counts.failed() > 0 || counts.skipped > 0 {
            let pending = counts.failed() + counts.skipped;
            let error = format!("{pending} event(s) failed or wait for a retry");
            (ObjectStatus::Failed, Some(error))
        } else {
            (ObjectStatus::Done, None)
        };
        // What was delivered is the version downloaded, whatever the listing said.
        let delivered = ObjectEntry {
            etag: etag.clone().or_else(|| object.etag.clone()),
            ..object.clone()
        };
        self.ledger
            .record_s3_object(run.id, delivered.clone(), status, event_count, error)
            .await?;
        if status == ObjectStatus::Done && self.settings.misp_feed.s3_delete_after_import {
            self.delete_delivered(run, &delivered, event_count).await?;
        }
        Ok(counts)
    }

    async fn queue_object_event(
        &self,
        run: &Run,
        object: &ObjectEntry,
        uuid: &str,
        timestamp: Option<i64>,
        info: Option<&str>,
    ) -> Result<(), PipelineError> {
        let queued = QueuedEvent {
            uuid: uuid.to_string(),
            source_key: object.key.clone(),
            manifest_timestamp: timestamp,
            info: info.map(str::to_owned),
            reason: ProcessReason::ObjectChanged.as_str().to_string(),
        };
        self.ledger.queue_events(run.id, vec![queued]).await?;
        Ok(())
    }

    async fn delete_delivered(
        &self,
        run: &Run,
        delivered: &ObjectEntry,
        event_count: usize,
    ) -> Result<(), PipelineError> {
        let key = &delivered.key;
        match self.source.delete(key, delivered.etag.as_deref()).await {
            Ok(Deletion::Deleted) => {
                self.ledger
                    .record_s3_object(
                        run.id,
                        delivered.clone(),
                        ObjectStatus::Deleted,
                        event_count,
                        None,
                    )
                    .await?;
                tracing::info!(object = %key, "object deleted after import (all its events confirmed)");
            }
            Ok(Deletion::ChangedSince) => {
                tracing::warn!(object = %key, "object not deleted: it changed since it was downloaded, and its new version is imported by the next run");
            }
            Ok(Deletion::Kept) => {}
            Err(e) => {
                tracing::warn!(object = %key, error = %e, "could not delete the object after import; it stays and is skipped by its ETag");
            }
        }
        Ok(())
    }
}

/// An event of an unchanged object that this run leaves alone: given up (until `retry`), or
/// failed and still waiting for its retry time.
fn waits(record: &EventRecord) -> bool {
    match record.status {
        EventStatus::GaveUp => true,
        EventStatus::Failed => !record.retry_due(chrono::Utc::now()),
        _ => false,
    }
}
