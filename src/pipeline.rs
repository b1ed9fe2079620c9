//! One sync run: list the source, let the reconciler decide, then for each due event fetch,
//! hash, convert and push it, recording every step in the ledger before taking the next.
//!
//! Events are handled with bounded concurrency and streamed one by one: memory follows the
//! largest event in flight, not the size of the feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::convert;
use crate::ledger::{
    Checkpoint, EventStatus, FailureStage, Ledger, LedgerError, QueuedEvent, RetryPolicy,
    RunOutcome,
};
use crate::opencti::ThreatResolver;
use crate::reconciler::{self, Decision, ProcessReason, SkipReason};
use crate::sink::{Delivery, RunSummary, Sink};
use crate::source::{FeedSource, Listing, ManifestEntry, ManifestValidators, ObjectEntry};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot list the feed: {0}")]
    Listing(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub run_id: i64,
    pub pushed: u64,
    pub unchanged: u64,
    /// Skipped for another reason (older than the checkpoint, backing off, given up).
    pub skipped: u64,
    pub failed: u64,
    pub checkpoint: Option<i64>,
    pub duration_ms: u64,
}

impl RunReport {
    pub fn message(&self) -> String {
        format!(
            "{} event(s) pushed, {} unchanged, {} skipped, {} failed",
            self.pushed, self.unchanged, self.skipped, self.failed
        )
    }
}

/// The outcome of handling one due event (or S3 object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Pushed,
    Unchanged,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pushed => "pushed",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed => "failed",
        }
    }
}

/// Told the new checkpoint (and the run's start) right after it is stored, before the sink
/// closes the run: the OpenCTI side mirrors it into the platform's connector state.
pub type CheckpointListener = Arc<dyn Fn(&Checkpoint, DateTime<Utc>) + Send + Sync>;

pub struct Pipeline {
    pub settings: Arc<Settings>,
    pub source: Arc<dyn FeedSource>,
    pub sink: Arc<dyn Sink>,
    pub ledger: Arc<Mutex<Ledger>>,
    /// Answers `guess_threats_from_tags` before each conversion; `None` offline.
    pub resolver: Option<Arc<ThreatResolver>>,
    pub retry_policy: RetryPolicy,
    /// Draw a progress bar (interactive `once`).
    pub progress: bool,
    pub checkpoint_listener: Option<CheckpointListener>,
    /// The thread that commits the per-event ledger records (see [`Pipeline::ledger_call`]).
    ledger_writer: Option<LedgerWriter>,
}

type LedgerJob = Box<dyn FnOnce() + Send>;

/// One thread that runs ledger calls in order. SQLite has one writer anyway; a thread of
/// its own keeps each commit's fsync off the task that drives the events in flight, without
/// a blocking-pool thread (and allocator arena) per concurrent commit.
struct LedgerWriter {
    jobs: std::sync::mpsc::Sender<LedgerJob>,
}

impl LedgerWriter {
    /// `None` if the thread cannot be started; calls then run inline.
    fn start() -> Option<LedgerWriter> {
        let (jobs, queue) = std::sync::mpsc::channel::<LedgerJob>();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                // Ends when the pipeline (the only sender) is dropped. A job that panics
                // loses only its own answer (its caller gets an error); the next job runs.
                while let Ok(job) = queue.recv() {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .ok()?;
        Some(LedgerWriter { jobs })
    }
}

/// Locks the ledger; a poisoned lock only means another task panicked mid-call, and
/// SQLite's own transactions kept the file consistent, so the guard is still usable.
fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn epoch_text(timestamp: i64) -> String {
    Utc.timestamp_opt(timestamp, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| timestamp.to_string())
}

impl Pipeline {
    /// Runs a ledger call on the ledger's writer thread. One task drives all the events in
    /// flight; a commit's fsync done inline would stall every one of them, and the broker
    /// with them.
    async fn ledger_call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut Ledger) -> Result<T, crate::ledger::LedgerError> + Send + 'static,
    ) -> Result<T, PipelineError> {
        let ledger = Arc::clone(&self.ledger);
        let Some(writer) = &self.ledger_writer else {
            return call(&mut lock(&ledger)).map_err(PipelineError::from);
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: LedgerJob = Box::new(move || {
            let _ = answer.send(call(&mut lock(&ledger)));
        });
        writer
            .jobs
            .send(job)
            .map_err(|_| PipelineError::Internal("the ledger writer thread stopped".into()))?;
        answered
            .await
            .map_err(|_| PipelineError::Internal("the ledger writer thread stopped".into()))?
            .map_err(PipelineError::from)
    }

    pub fn new(
        settings: Arc<Settings>,
        source: Arc<dyn FeedSource>,
        sink: Arc<dyn Sink>,
        ledger: Arc<Mutex<Ledger>>,
        resolver: Option<Arc<ThreatResolver>>,
    ) -> Pipeline {
        let retry_policy = RetryPolicy {
            max_attempts: settings.misp_feed.max_attempts,
            base_backoff: settings.misp_feed.retry_backoff,
            ..RetryPolicy::default()
        };
        Pipeline {
            settings,
            source,
            sink,
            ledger,
            resolver,
            retry_policy,
            progress: false,
            checkpoint_listener: None,
            ledger_writer: LedgerWriter::start(),
        }
    }

    /// Runs one sync. Errors are returned only when the run could not happen at all (the
    /// feed could not be listed, the ledger failed); per-event failures are recorded and the
    /// run goes on.
    pub async fn run_once(&self) -> Result<RunReport, PipelineError> {
        let started = Instant::now();
        let now = Utc::now();
        let metrics = crate::telemetry::metrics();
        metrics.set_state(crate::telemetry::ConnectorState::Running);
        let run_id = lock(&self.ledger).begin_run(&self.source.describe())?;
        tracing::info!(run = run_id, source = %self.source.describe(), "run started");
        let result = self.run_inner(run_id, now).await;
        let mut report = match result {
            Ok(report) => report,
            Err(error) => {
                let outcome = RunOutcome {
                    status: "failed".into(),
                    message: error.to_string(),
                    ..RunOutcome::default()
                };
                if let Err(e) = lock(&self.ledger).finish_run(run_id, &outcome) {
                    tracing::error!(error = %e, "could not record the failed run");
                }
                tracing::error!(run = run_id, error = %error, "run failed");
                metrics.inc_errors();
                if let PipelineError::Listing(_) = error {
                    metrics.inc_fetch_errors(self.source_kind());
                }
                self.record_run_metrics(started);
                return Err(error);
            }
        };
        report.run_id = run_id;
        report.duration_ms = started.elapsed().as_millis() as u64;
        let summary = RunSummary {
            pushed: report.pushed,
            skipped: report.unchanged + report.skipped,
            failed: report.failed,
        };
        let mut work_error = None;
        if let Err(e) = self.sink.finish_run(&summary).await {
            tracing::error!(error = %e, "could not close the run on the sink");
            work_error = Some(e.to_string());
        }
        let status = if report.failed > 0 || work_error.is_some() {
            "completed_with_errors"
        } else {
            "completed"
        };
        let mut message = report.message();
        if let Some(e) = work_error {
            message.push_str(&format!("; closing the run failed: {e}"));
        }
        lock(&self.ledger).finish_run(
            run_id,
            &RunOutcome {
                status: status.into(),
                pushed: report.pushed,
                skipped: report.unchanged + report.skipped,
                failed: report.failed,
                work_id: None,
                message: message.clone(),
            },
        )?;
        self.record_run_metrics(started);
        tracing::info!(
            run = run_id,
            pushed = report.pushed,
            unchanged = report.unchanged,
            skipped = report.skipped,
            failed = report.failed,
            duration_ms = report.duration_ms,
            "run finished: {message}"
        );
        Ok(report)
    }

    async fn run_inner(&self, run_id: i64, now: DateTime<Utc>) -> Result<RunReport, PipelineError> {
        let checkpoint = lock(&self.ledger).checkpoint()?;
        let validators = ManifestValidators {
            etag: checkpoint.manifest_etag.clone(),
            last_modified: checkpoint.manifest_last_modified.clone(),
        };
        let listing = self
            .source
            .list(Some(&validators))
            .await
            .map_err(|e| PipelineError::Listing(e.to_string()))?;
        match listing {
            Listing::Manifest {
                entries,
                rejected,
                validators,
            } => {
                self.record_rejected(run_id, &rejected)?;
                lock(&self.ledger).record_manifest(run_id, &entries)?;
                self.sync_manifest(run_id, now, checkpoint, entries, Some(validators))
                    .await
            }
            Listing::NotModified => {
                tracing::info!("manifest not modified since the last run");
                let entries = lock(&self.ledger).manifest_entries()?;
                self.sync_manifest(run_id, now, checkpoint, entries, None)
                    .await
            }
            Listing::Objects(objects) => self.sync_objects(run_id, checkpoint, objects).await,
        }
    }

    /// Manifest entries the source refused (not a UUID, traversal, bad timestamp): recorded
    /// once as given up, with the reason, so that `misp-feed events` shows them.
    fn record_rejected(
        &self,
        run_id: i64,
        rejected: &[(String, String)],
    ) -> Result<(), PipelineError> {
        let mut ledger = lock(&self.ledger);
        for (key, reason) in rejected {
            tracing::error!(entry = %key, reason = %reason, "manifest entry rejected");
            let known = ledger.event(key)?;
            if known.as_ref().is_some_and(|r| {
                r.status == EventStatus::GaveUp
                    && r.last_error
                        .as_deref()
                        .is_some_and(|e| e.ends_with(reason.as_str()))
            }) {
                continue;
            }
            ledger.queue_event(
                run_id,
                &QueuedEvent {
                    uuid: key,
                    source_key: "manifest.json",
                    manifest_timestamp: None,
                    info: None,
                    reason: "manifest entry",
                },
            )?;
            ledger.mark_failed(
                run_id,
                key,
                FailureStage::Parse,
                &format!("manifest.json: entry {key:?}: {reason}"),
                &RetryPolicy {
                    max_attempts: 1,
                    ..self.retry_policy.clone()
                },
            )?;
        }
        Ok(())
    }

    async fn sync_manifest(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        checkpoint: Checkpoint,
        mut entries: Vec<ManifestEntry>,
        new_validators: Option<ManifestValidators>,
    ) -> Result<RunReport, PipelineError> {
        entries.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.uuid.cmp(&b.uuid)));
        let checkpoint_ts = match checkpoint.last_event_timestamp {
            Some(ts) => ts,
            None => {
                let ts =
                    reconciler::initial_checkpoint(self.settings.misp_feed.import_from_date, now);
                if self.settings.misp_feed.import_from_date.is_none() {
                    tracing::warn!(
                        "first run without MISP_FEED_IMPORT_FROM_DATE: nothing older than now ({}) will be imported",
                        epoch_text(ts)
                    );
                } else {
                    tracing::info!("first run: importing events from {}", epoch_text(ts));
                }
                ts
            }
        };

        let records = lock(&self.ledger).event_map()?;
        let mut report = RunReport::default();
        let mut due: Vec<(ManifestEntry, ProcessReason)> = Vec::new();
        for entry in &entries {
            match reconciler::decide_entry(entry, records.get(&entry.uuid), checkpoint_ts, now) {
                Decision::Process(reason) => due.push((entry.clone(), reason)),
                Decision::Skip(SkipReason::Unchanged) => {
                    report.unchanged += 1;
                    tracing::info!(event = %entry.uuid, decision = "skipped", reason = "unchanged", "event {} unchanged", entry.uuid);
                }
                Decision::Skip(SkipReason::OlderThanCheckpoint) => {
                    report.skipped += 1;
                    tracing::debug!(event = %entry.uuid, decision = "skipped", reason = "older than the checkpoint");
                }
                Decision::Skip(reason) => {
                    report.skipped += 1;
                    tracing::info!(event = %entry.uuid, decision = "skipped", reason = reason.as_str(), "event {} skipped: {}", entry.uuid, reason.as_str());
                }
            }
        }
        drop(records);

        let queued: Vec<QueuedEvent<'_>> = due
            .iter()
            .map(|(entry, reason)| QueuedEvent {
                uuid: &entry.uuid,
                source_key: &entry.uuid,
                manifest_timestamp: Some(entry.timestamp),
                info: entry.info.as_deref(),
                reason: reason.as_str(),
            })
            .collect();
        lock(&self.ledger).queue_events(run_id, &queued)?;
        drop(queued);

        let bar = self.progress_bar(due.len() as u64);
        let concurrency = self.settings.misp_feed.fetch_concurrency.max(1);
        let mut outcomes = futures::stream::iter(due.into_iter().map(|(entry, reason)| {
            let bar = bar.clone();
            async move {
                let outcome = self.handle_manifest_event(run_id, &entry, reason).await;
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                outcome
            }
        }))
        .buffer_unordered(concurrency);
        while let Some(outcome) = outcomes.next().await {
            let outcome = outcome?;
            crate::telemetry::metrics().inc_event_outcome(outcome.as_str());
            match outcome {
                Outcome::Pushed => report.pushed += 1,
                Outcome::Unchanged => report.unchanged += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
        drop(outcomes);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }

        // Advance the checkpoint over every settled entry, as the Python connector's state.
        let records = lock(&self.ledger).event_map()?;
        let watermark = reconciler::settled_watermark(&entries, checkpoint_ts, |entry| {
            records.get(&entry.uuid).is_some_and(|r| {
                matches!(r.status, EventStatus::Pushed | EventStatus::GaveUp)
                    && r.manifest_timestamp == Some(entry.timestamp)
            })
        });
        let validators = new_validators.unwrap_or(ManifestValidators {
            etag: checkpoint.manifest_etag.clone(),
            last_modified: checkpoint.manifest_last_modified.clone(),
        });
        let stored = Checkpoint {
            last_run: Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
            last_event_timestamp: Some(watermark),
            manifest_etag: validators.etag,
            manifest_last_modified: validators.last_modified,
            last_file: checkpoint.last_file,
        };
        lock(&self.ledger).set_checkpoint(&stored)?;
        if let Some(listener) = &self.checkpoint_listener {
            listener(&stored, now);
        }
        report.checkpoint = Some(watermark);
        Ok(report)
    }

    /// The source's kind for metric labels (never a URL: it may carry credentials).
    fn source_kind(&self) -> &'static str {
        match self.settings.misp_feed.source_type {
            crate::config::SourceType::S3 => "s3",
            crate::config::SourceType::Url => "url",
        }
    }

    fn record_run_metrics(&self, started: Instant) {
        let metrics = crate::telemetry::metrics();
        metrics.inc_runs();
        let ended = Utc::now();
        metrics.record_run(
            started.elapsed(),
            ended.timestamp() as f64 + f64::from(ended.timestamp_subsec_millis()) / 1000.0,
        );
        if let Ok(counts) = lock(&self.ledger).status_counts() {
            metrics.set_events_by_status(counts.iter().map(|(s, n)| (s.as_str(), *n)));
        }
        metrics.set_state(crate::telemetry::ConnectorState::Idle);
    }

    fn progress_bar(&self, total: u64) -> Option<indicatif::ProgressBar> {
        if !self.progress || total == 0 {
            return None;
        }
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {elapsed}")
        {
            bar.set_style(style);
        }
        Some(bar)
    }

    /// Fetch, hash, convert and push one manifest event. Returns Err only on ledger failure.
    async fn handle_manifest_event(
        &self,
        run_id: i64,
        entry: &ManifestEntry,
        reason: ProcessReason,
    ) -> Result<Outcome, PipelineError> {
        let uuid = entry.uuid.as_str();
        let file = match self.source.fetch(uuid).await {
            Ok(file) => file,
            Err(e) => {
                crate::telemetry::metrics().inc_fetch_errors(self.source_kind());
                return self
                    .fail(run_id, uuid, FailureStage::Fetch, &e.to_string())
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
        .map_err(|e| PipelineError::Internal(format!("parsing task: {e}")))?;
        let (content_sha256, event) = match parsed {
            (content_sha256, Ok(event)) => (content_sha256, event),
            (_, Err(e)) => return self.fail(run_id, uuid, FailureStage::Parse, &e).await,
        };
        self.convert_and_push(run_id, uuid, event, &content_sha256, reason)
            .await
    }

    async fn convert_and_push(
        &self,
        run_id: i64,
        uuid: &str,
        event: convert::MispEvent,
        content_sha256: &str,
        reason: ProcessReason,
    ) -> Result<Outcome, PipelineError> {
        let options = self.settings.misp_feed.convert.clone();
        let (event, threats) = match &self.resolver {
            Some(resolver) => resolver.resolve_event(event, &options).await,
            None => Ok((event, convert::ResolvedThreats::default())),
        }
        .map_err(|e| PipelineError::Internal(format!("threat listing task: {e}")))?;
        let converted = crate::cpu::run(move || {
            convert::convert_event(&event, &options, &threats)
                .map(|bundle| {
                    let (json, objects_sha256) = bundle.to_json_and_objects_sha256();
                    (json, objects_sha256, bundle.objects.len())
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| PipelineError::Internal(format!("conversion task: {e}")))?;
        let (bundle_json, bundle_sha256, object_count) = match converted {
            Ok(c) => c,
            Err(e) => return self.fail(run_id, uuid, FailureStage::Convert, &e).await,
        };
        {
            let (uuid, content_sha256) = (uuid.to_owned(), content_sha256.to_owned());
            self.ledger_call(move |ledger| {
                ledger.mark_in_flight(run_id, &uuid, &content_sha256, &bundle_sha256)
            })
            .await?;
        }
        let delivery = Delivery {
            event_uuid: uuid,
            bundle_json: &bundle_json,
        };
        let push_started = Instant::now();
        match self.sink.push(delivery).await {
            Ok(receipt) => {
                let metrics = crate::telemetry::metrics();
                metrics.observe_push_latency(push_started.elapsed());
                metrics.inc_bundles_sent();
                metrics.add_records_sent(object_count as u64);
                {
                    let uuid = uuid.to_owned();
                    let (destination, messages) = (receipt.destination.clone(), receipt.messages);
                    self.ledger_call(move |ledger| {
                        ledger.mark_pushed(run_id, &uuid, &destination, messages)
                    })
                    .await?;
                }
                tracing::info!(
                    event = %uuid,
                    decision = "pushed",
                    reason = reason.as_str(),
                    objects = object_count,
                    destination = %receipt.destination,
                    "event {uuid} pushed ({object_count} objects)"
                );
                Ok(Outcome::Pushed)
            }
            Err(e) => {
                self.fail(run_id, uuid, FailureStage::Push, &e.to_string())
                    .await
            }
        }
    }

    async fn fail(
        &self,
        run_id: i64,
        uuid: &str,
        stage: FailureStage,
        error: &str,
    ) -> Result<Outcome, PipelineError> {
        let status = {
            let (uuid, error, policy) =
                (uuid.to_owned(), error.to_owned(), self.retry_policy.clone());
            self.ledger_call(move |ledger| {
                ledger.mark_failed(run_id, &uuid, stage, &error, &policy)
            })
            .await?
        };
        tracing::error!(event = %uuid, decision = "failed", stage = stage.as_str(), status = status.as_str(), reason = %error, "event {uuid} failed at {}: {error}", stage.as_str());
        Ok(Outcome::Failed)
    }

    /// S3 mode: every event file under the prefix; an object unchanged (same ETag) since all
    /// its events were pushed is skipped without download. It is deleted (when configured)
    /// only once all its events are confirmed.
    async fn sync_objects(
        &self,
        run_id: i64,
        checkpoint: Checkpoint,
        objects: Vec<ObjectEntry>,
    ) -> Result<RunReport, PipelineError> {
        let mut report = RunReport::default();
        let mut due = Vec::new();
        {
            let ledger = lock(&self.ledger);
            for object in objects {
                let record = ledger.s3_object(&object.key)?;
                match reconciler::decide_object(&object, record.as_ref()) {
                    Decision::Process(_) => due.push(object),
                    Decision::Skip(_) => {
                        report.unchanged += 1;
                        tracing::info!(object = %object.key, decision = "skipped", reason = "unchanged ETag", "object {} unchanged", object.key);
                    }
                }
            }
        }
        let bar = self.progress_bar(due.len() as u64);
        let concurrency = self.settings.misp_feed.fetch_concurrency.max(1);
        let mut last_file = checkpoint.last_file.clone();
        let mut outcomes = futures::stream::iter(due.into_iter().map(|object| {
            let bar = bar.clone();
            async move {
                let outcome = self.handle_object(run_id, &object).await;
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
                    crate::telemetry::metrics().inc_event_outcome(outcome.as_str());
                }
            }
            report.pushed += counts.get(&Outcome::Pushed).copied().unwrap_or(0);
            report.unchanged += counts.get(&Outcome::Unchanged).copied().unwrap_or(0);
            report.failed += counts.get(&Outcome::Failed).copied().unwrap_or(0);
            if counts.get(&Outcome::Failed).copied().unwrap_or(0) == 0 {
                last_file = key.rsplit('/').next().map(str::to_string);
            }
        }
        drop(outcomes);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let now = Utc::now();
        let stored = Checkpoint {
            last_run: Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
            last_file,
            ..checkpoint
        };
        lock(&self.ledger).set_checkpoint(&stored)?;
        if let Some(listener) = &self.checkpoint_listener {
            listener(&stored, now);
        }
        Ok(report)
    }

    async fn handle_object(
        &self,
        run_id: i64,
        object: &ObjectEntry,
    ) -> Result<HashMap<Outcome, u64>, PipelineError> {
        let mut counts = HashMap::new();
        let file = match self.source.fetch(&object.key).await {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(object = %object.key, decision = "failed", stage = "fetch", reason = %e, "object {} failed: {e}", object.key);
                crate::telemetry::metrics().inc_fetch_errors(self.source_kind());
                lock(&self.ledger).record_s3_object(
                    run_id,
                    object,
                    "failed",
                    0,
                    Some(&e.to_string()),
                )?;
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
        .map_err(|e| PipelineError::Internal(format!("parsing task: {e}")))?;
        let events = match parsed {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(object = %object.key, decision = "failed", stage = "parse", reason = %e, "object {} failed: {e}", object.key);
                lock(&self.ledger).record_s3_object(
                    run_id,
                    object,
                    "failed",
                    0,
                    Some(&e.to_string()),
                )?;
                counts.insert(Outcome::Failed, 1);
                return Ok(counts);
            }
        };
        let event_count = events.len();
        for (uuid, content_sha256, event) in events {
            let record = lock(&self.ledger).event(&uuid)?;
            if reconciler::content_unchanged(record.as_ref(), &content_sha256) {
                *counts.entry(Outcome::Unchanged).or_insert(0) += 1;
                tracing::info!(event = %uuid, object = %object.key, decision = "skipped", reason = "content unchanged", "event {uuid} unchanged (same content)");
                continue;
            }
            {
                let (uuid, source_key) = (uuid.clone(), object.key.clone());
                let (manifest_timestamp, info) =
                    (event.timestamp(), event.info().map(str::to_owned));
                self.ledger_call(move |ledger| {
                    ledger.queue_event(
                        run_id,
                        &QueuedEvent {
                            uuid: &uuid,
                            source_key: &source_key,
                            manifest_timestamp,
                            info: info.as_deref(),
                            reason: ProcessReason::ObjectChanged.as_str(),
                        },
                    )
                })
                .await?;
            }
            let outcome = self
                .convert_and_push(
                    run_id,
                    &uuid,
                    event,
                    &content_sha256,
                    ProcessReason::ObjectChanged,
                )
                .await?;
            *counts.entry(outcome).or_insert(0) += 1;
        }
        let failed = counts.get(&Outcome::Failed).copied().unwrap_or(0);
        if failed > 0 {
            lock(&self.ledger).record_s3_object(
                run_id,
                object,
                "failed",
                event_count,
                Some(&format!("{failed} event(s) failed")),
            )?;
            return Ok(counts);
        }
        lock(&self.ledger).record_s3_object(run_id, object, "done", event_count, None)?;
        if self.settings.misp_feed.s3_delete_after_import {
            match self.source.delete(&object.key).await {
                Ok(()) => {
                    lock(&self.ledger).record_s3_object(
                        run_id,
                        object,
                        "deleted",
                        event_count,
                        None,
                    )?;
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
