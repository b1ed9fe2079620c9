//! A manifest feed (an HTTP(S) URL or a folder): decide every entry, queue the due ones in
//! one transaction, then fetch, convert and push them a few at a time.

use chrono::{SecondsFormat, TimeZone, Utc};
use futures::StreamExt;

use std::sync::Arc;

use super::event::{screen, sha256_hex};
use super::{Outcome, Pipeline, PipelineError, Run, RunReport};
use crate::convert;
use crate::ledger::{
    Checkpoint, EventStatus, FailureStage, FloorOrigin, ImportFloor, LeftOut, OldEntry,
    QueuedEvent, settled_watermark,
};
use crate::reconciler::filters::Verdict;
use crate::reconciler::{self, Decision, ProcessReason, SkipReason, decision_fingerprint};
use crate::source::{ManifestEntry, ManifestValidators};
use crate::telemetry::events::{EventSkipped, InternalEvent, Skip};

fn epoch_text(timestamp: i64) -> String {
    Utc.timestamp_opt(timestamp, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| timestamp.to_string())
}

/// Says where imports start from, when the floor is set or moved.
fn announce_floor(floor: ImportFloor) {
    let at = epoch_text(floor.at);
    match floor.origin {
        FloorOrigin::FirstRun => tracing::warn!(
            import_floor = %at,
            "first run without MISP_FEED_IMPORT_FROM_DATE: events older than now ({at}) are not imported; they are recorded as too_old (`misp-feed reset --since DATE` imports them)"
        ),
        FloorOrigin::ImportFromDate => {
            tracing::info!(import_floor = %at, "importing events from {at} (MISP_FEED_IMPORT_FROM_DATE)")
        }
        FloorOrigin::Platform | FloorOrigin::Reset => {
            tracing::info!(import_floor = %at, origin = %floor.origin, "importing events from {at}")
        }
    }
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
        let (floor, floor_changed) = self
            .ledger
            .floor_for_run(import_from_date, run.started)
            .await?;
        if floor_changed {
            announce_floor(floor);
        }

        self.reopen_if_settings_changed().await?;
        let records = self.ledger.event_map().await?;
        let mut report = RunReport::new(run.id, run.started);
        let mut due: Vec<(ManifestEntry, ProcessReason)> = Vec::new();
        let mut too_old = Vec::new();
        let mut left_out = Vec::new();
        let filters = &self.settings.misp_feed.filters;
        for entry in &entries {
            let record = records.get(&entry.uuid);
            match reconciler::decide_entry(entry, record, floor.at, run.started) {
                // What the manifest says decides the filters when it can: an event left out
                // is never downloaded.
                Decision::Process(reason) => match filters.decide(&entry.facts, false) {
                    Verdict::Excluded(rule) => {
                        report.filtered += 1;
                        EventSkipped {
                            uuid: &entry.uuid,
                            why: Skip::Other(&format!("filtered: {rule}")),
                        }
                        .emit();
                        left_out.push(LeftOut {
                            uuid: entry.uuid.clone(),
                            source_key: entry.uuid.clone(),
                            manifest_timestamp: Some(entry.timestamp),
                            info: entry.info.clone(),
                            status: EventStatus::Filtered,
                            reason: rule,
                        });
                    }
                    Verdict::Import | Verdict::NeedsEvent => due.push((entry.clone(), reason)),
                },
                Decision::Skip(SkipReason::Filtered) => report.filtered += 1,
                Decision::Skip(SkipReason::Refused) => report.refused += 1,
                Decision::Skip(SkipReason::Unchanged) => {
                    report.unchanged += 1;
                    EventSkipped {
                        uuid: &entry.uuid,
                        why: Skip::Unchanged,
                    }
                    .emit();
                }
                Decision::Skip(SkipReason::TooOld) => {
                    report.skipped += 1;
                    if record.is_none_or(|r| r.manifest_timestamp != Some(entry.timestamp)) {
                        too_old.push(OldEntry {
                            uuid: entry.uuid.clone(),
                            manifest_timestamp: entry.timestamp,
                            info: entry.info.clone(),
                        });
                    }
                    EventSkipped {
                        uuid: &entry.uuid,
                        why: Skip::TooOld,
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
        if !too_old.is_empty() {
            self.ledger.record_too_old(run.id, too_old, floor).await?;
        }
        if !left_out.is_empty() {
            self.ledger.record_left_out(run.id, left_out).await?;
        }

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
        // Backfill pacing: the oldest due events go now, the others stay owed (pending) to
        // the next runs, and the checkpoint cannot pass them.
        if let Some(limit) = self.settings.misp_feed.guards.max_events_per_run {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if due.len() > limit {
                report.deferred = (due.len() - limit) as u64;
                due.truncate(limit);
                tracing::info!(
                    owed = report.deferred,
                    limit,
                    "more events are due than MISP_FEED_MAX_EVENTS_PER_RUN: the rest stays owed to the next runs"
                );
            }
        }

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

        // The checkpoint (the Python connector's state) moves over every settled entry, never
        // past the run's start: a future-dated entry is imported but does not carry it ahead.
        let cap = run.started.timestamp();
        let previous = checkpoint.last_event_timestamp.unwrap_or(floor.at).min(cap);
        let records = self.ledger.event_map().await?;
        let watermark = settled_watermark(&entries, previous, cap, |entry| {
            records.get(&entry.uuid).is_some_and(|r| match r.status {
                EventStatus::Pushed
                | EventStatus::GaveUp
                | EventStatus::Filtered
                | EventStatus::Refused => r.manifest_timestamp == Some(entry.timestamp),
                EventStatus::TooOld => true,
                _ => false,
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
        // The file by the name the feed lists; its record by the canonical uuid.
        let file = match self.source.fetch(&entry.key).await {
            Ok(file) => file,
            Err(e) => {
                return self
                    .fail(run, uuid, FailureStage::Fetch, e.to_string())
                    .await;
            }
        };
        // The file's size is known once it is fetched: the body alone waits for the budget,
        // the conversion (many times its size) does not start before its share is free.
        let _admission = self.admit(uuid, file.bytes.len() as u64).await;
        // Every reason to fetch a manifest event (new, timestamp moved, owed, operator reset)
        // is also a reason to push it: the content hash is recorded for audit, not to skip.
        // Hashing and parsing run on a blocking thread with the conversion: a large event
        // parsed inline would hold up the other events in flight.
        let wanted = entry.uuid.clone();
        let settings = Arc::clone(&self.settings);
        let parsed = crate::cpu::run(move || {
            let content_sha256 = sha256_hex(&file.bytes);
            let event = convert::parse_event_file(&file.bytes, &file.name)
                .map_err(|e| e.to_string())
                .and_then(|events| event_named(events, &wanted, &file.name))
                .map(|event| {
                    let left_out = screen(&settings, &event.event);
                    (event, left_out)
                });
            (content_sha256, event)
        })
        .await
        .map_err(|reason| PipelineError::Job {
            job: "parsing",
            reason,
        })?;
        let (content_sha256, event, left_out) = match parsed {
            (content_sha256, Ok((event, left_out))) => (content_sha256, event, left_out),
            (_, Err(e)) => return self.fail(run, uuid, FailureStage::Parse, e).await,
        };
        if let Some((status, reason)) = left_out {
            let left = LeftOut {
                uuid: uuid.to_string(),
                source_key: uuid.to_string(),
                manifest_timestamp: Some(entry.timestamp),
                info: entry.info.clone(),
                status,
                reason,
            };
            return self.leave_out(run, left).await;
        }
        for warning in event.warnings() {
            tracing::warn!(event = %uuid, "{warning}");
        }
        self.convert_and_push(run, uuid, event, content_sha256, reason)
            .await
    }

    /// Filtered and refused events are decided again when the settings that left them out
    /// change.
    pub(super) async fn reopen_if_settings_changed(&self) -> Result<(), PipelineError> {
        let feed = &self.settings.misp_feed;
        let fingerprint = decision_fingerprint(&feed.filters, &feed.guards);
        let reopened = self.ledger.reopen_left_out(fingerprint).await?;
        if reopened > 0 {
            tracing::info!(
                reopened,
                "the import filters or MISP_FEED_MAX_ATTRIBUTES changed: events they left out are decided again"
            );
        }
        Ok(())
    }
}

/// The event of `file` whose uuid is `wanted`: a manifest entry is pushed only with its own
/// content, never with another event's. A file holding other events besides it is accepted
/// (they are named in a warning and not pushed: the manifest does not list them there); a
/// file without it is an error that says what the file holds.
fn event_named(
    events: Vec<convert::MispEvent>,
    wanted: &str,
    file: &str,
) -> Result<convert::MispEvent, String> {
    let uuid_of = |event: &convert::MispEvent| event.uuid().map(str::to_lowercase);
    let held: Vec<String> = events
        .iter()
        .map(|event| uuid_of(event).unwrap_or_else(|| "an event without a uuid".into()))
        .collect();
    let Some(found) = events
        .into_iter()
        .find(|event| uuid_of(event).as_deref() == Some(wanted))
    else {
        return Err(match held.as_slice() {
            [] => format!("{file}: no event in the file"),
            [one] => {
                format!("{file}: holds event {one}, not event {wanted} that the manifest lists")
            }
            many => format!(
                "{file}: holds {} events ({}), none of them event {wanted} that the manifest lists",
                many.len(),
                many.join(", ")
            ),
        });
    };
    if held.len() > 1 {
        let others: Vec<&str> = held
            .iter()
            .map(String::as_str)
            .filter(|uuid| *uuid != wanted)
            .collect();
        tracing::warn!(
            event = wanted,
            file,
            others = %others.join(", "),
            "the file holds other events besides the one the manifest lists; only that one is pushed"
        );
    }
    Ok(found)
}
