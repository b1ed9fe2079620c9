//! An S3 bucket: every event file under the prefix. An object unchanged (same ETag) since all
//! its events were pushed is skipped without download; it is deleted (when configured) only
//! once all its events are confirmed.

use std::collections::HashMap;

use chrono::SecondsFormat;
use futures::StreamExt;

use super::event::sha256_hex;
use super::{Outcome, Pipeline, PipelineError, Run, RunReport};
use crate::convert;
use crate::ledger::{Checkpoint, ObjectStatus, QueuedEvent};
use crate::reconciler::{self, Decision, ProcessReason};
use crate::source::ObjectEntry;
use crate::telemetry::events::{EventSkipped, InternalEvent, ObjectFailed, ObjectSkipped, Skip};

impl Pipeline {
    pub(super) async fn sync_objects(
        &self,
        run: &Run,
        checkpoint: Checkpoint,
        objects: Vec<ObjectEntry>,
    ) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::new(run.id, run.started);
        let mut due = Vec::new();
        for object in objects {
            let record = self.ledger.s3_object(object.key.clone()).await?;
            match reconciler::decide_object(&object, record.as_ref()) {
                Decision::Process(_) => due.push(object),
                Decision::Skip(_) => {
                    report.unchanged += 1;
                    ObjectSkipped { key: &object.key }.emit();
                }
            }
        }
        let bar = self.progress_bar(due.len() as u64);
        let concurrency = self.settings.misp_feed.fetch_concurrency.max(1);
        let mut last_file = checkpoint.last_file.clone();
        let mut outcomes = futures::stream::iter(due.into_iter().map(|object| {
            let bar = bar.clone();
            async move {
                let outcome = self.handle_object(run, &object).await;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                outcome.map(|counts| (object.key, counts))
            }
        }))
        .buffer_unordered(concurrency);
        while let Some(result) = outcomes.next().await {
            let (key, counts) = result?;
            for (outcome, n) in &counts {
                for _ in 0..*n {
                    report.add(*outcome);
                }
            }
            if counts.get(&Outcome::Failed).copied().unwrap_or(0) == 0 {
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

    async fn record_object(
        &self,
        run: &Run,
        object: &ObjectEntry,
        status: ObjectStatus,
        events: usize,
        error: Option<String>,
    ) -> Result<(), PipelineError> {
        self.ledger
            .record_s3_object(run.id, object.clone(), status, events, error)
            .await?;
        Ok(())
    }

    async fn handle_object(
        &self,
        run: &Run,
        object: &ObjectEntry,
    ) -> Result<HashMap<Outcome, u64>, PipelineError> {
        let mut counts = HashMap::new();
        let file = match self.source.fetch(&object.key).await {
            Ok(file) => file,
            Err(e) => {
                ObjectFailed {
                    key: &object.key,
                    stage: "fetch",
                    reason: &e,
                    source: self.source_kind(),
                }
                .emit();
                self.record_object(run, object, ObjectStatus::Failed, 0, Some(e.to_string()))
                    .await?;
                counts.insert(Outcome::Failed, 1);
                return Ok(counts);
            }
        };
        // Parsing and hashing each event's content run as CPU jobs, as on the manifest path.
        let key = object.key.clone();
        let parsed = crate::cpu::run(move || {
            convert::parse_event_file(&file.bytes, &key).map(|events| {
                events
                    .into_iter()
                    .enumerate()
                    .map(|(index, event)| {
                        let uuid = event
                            .uuid()
                            .map(str::to_lowercase)
                            .unwrap_or_else(|| format!("{key}#{index}"));
                        let content = serde_json::to_vec(&event.event).unwrap_or_default();
                        (uuid, sha256_hex(&content), event)
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
                ObjectFailed {
                    key: &object.key,
                    stage: "parse",
                    reason: &e,
                    source: self.source_kind(),
                }
                .emit();
                self.record_object(run, object, ObjectStatus::Failed, 0, Some(e.to_string()))
                    .await?;
                counts.insert(Outcome::Failed, 1);
                return Ok(counts);
            }
        };
        let event_count = events.len();
        for (uuid, content_sha256, event) in events {
            let record = self.ledger.event(uuid.clone()).await?;
            if reconciler::content_unchanged(record.as_ref(), &content_sha256) {
                *counts.entry(Outcome::Unchanged).or_insert(0) += 1;
                EventSkipped {
                    uuid: &uuid,
                    why: Skip::SameContent {
                        object: &object.key,
                    },
                }
                .emit();
                continue;
            }
            let queued = QueuedEvent {
                uuid: uuid.clone(),
                source_key: object.key.clone(),
                manifest_timestamp: event.timestamp(),
                info: event.info().map(str::to_owned),
                reason: ProcessReason::ObjectChanged.as_str().to_string(),
            };
            self.ledger.queue_events(run.id, vec![queued]).await?;
            let outcome = self
                .convert_and_push(
                    run,
                    &uuid,
                    event,
                    content_sha256,
                    ProcessReason::ObjectChanged,
                )
                .await?;
            *counts.entry(outcome).or_insert(0) += 1;
        }
        let failed = counts.get(&Outcome::Failed).copied().unwrap_or(0);
        if failed > 0 {
            let error = format!("{failed} event(s) failed");
            self.record_object(run, object, ObjectStatus::Failed, event_count, Some(error))
                .await?;
            return Ok(counts);
        }
        self.record_object(run, object, ObjectStatus::Done, event_count, None)
            .await?;
        if self.settings.misp_feed.s3_delete_after_import {
            match self.source.delete(&object.key).await {
                Ok(()) => {
                    self.record_object(run, object, ObjectStatus::Deleted, event_count, None)
                        .await?;
                    tracing::info!(object = %object.key, "object deleted after import (all its events confirmed)");
                }
                Err(e) => {
                    tracing::warn!(object = %object.key, error = %e, "could not delete the object after import; it stays and is skipped by its ETag");
                }
            }
        }
        Ok(counts)
    }
}
