//! One sync run: list the source, let the reconciler decide, then for each due event fetch,
//! hash, convert and push it, recording every step in the ledger before taking the next.
//!
//! Events are handled with bounded concurrency and streamed one by one: memory follows the
//! largest event in flight, not the size of the feed, and the events in flight are admitted
//! against a memory budget estimated from their files' sizes (`budget`). The run's figures,
//! and the checkpoint it stored, go back to the caller in the [`RunReport`]; the pipeline
//! calls nobody back.

mod budget;
mod event;
mod manifest;
mod objects;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::ledger::{Checkpoint, Ledger, LedgerError, RetryPolicy, RunId, RunOutcome, RunStatus};
use crate::opencti::ThreatResolver;
use crate::sink::{RunSummary, Sink};
use crate::source::{FeedSource, Listing, SourceError};
use crate::telemetry::events::{self, InternalEvent};
use crate::warninglists::Warninglists;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot list the feed: {0}")]
    Listing(#[source] SourceError),
    #[error("a {job} job stopped: {reason}")]
    Job { job: &'static str, reason: String },
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub(crate) run_id: RunId,
    pub(crate) started: DateTime<Utc>,
    pub pushed: u64,
    pub unchanged: u64,
    /// Skipped for another reason (older than the import floor, backing off, given up).
    pub(crate) skipped: u64,
    pub failed: u64,
    /// Left out by the import filters.
    pub(crate) filtered: u64,
    /// Refused by a guard (too many attributes).
    pub(crate) refused: u64,
    /// Due, but owed to the next runs (`MISP_FEED_MAX_EVENTS_PER_RUN`).
    pub(crate) deferred: u64,
    /// The checkpoint the run stored.
    pub(crate) checkpoint: Option<Checkpoint>,
    pub(crate) duration_ms: u64,
}

impl RunReport {
    fn new(run_id: RunId, started: DateTime<Utc>) -> RunReport {
        RunReport {
            run_id,
            started,
            pushed: 0,
            unchanged: 0,
            skipped: 0,
            failed: 0,
            filtered: 0,
            refused: 0,
            deferred: 0,
            checkpoint: None,
            duration_ms: 0,
        }
    }

    pub fn message(&self) -> String {
        let mut message = format!(
            "{} event(s) pushed, {} unchanged, {} skipped, {} failed",
            self.pushed, self.unchanged, self.skipped, self.failed
        );
        for (count, what) in [
            (self.filtered, "filtered"),
            (self.refused, "refused"),
            (self.deferred, "owed to the next runs"),
        ] {
            if count > 0 {
                message.push_str(&format!(", {count} {what}"));
            }
        }
        message
    }

    /// Events the run did not push on purpose: unchanged, skipped, left out or owed.
    fn set_aside(&self) -> u64 {
        self.unchanged + self.skipped + self.filtered + self.refused + self.deferred
    }

    /// Counts an event's outcome (its metric moved when the outcome was emitted).
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pushed => self.pushed += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Filtered => self.filtered += 1,
            Outcome::Refused => self.refused += 1,
        }
    }
}

/// The outcome of handling one due event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Pushed,
    Unchanged,
    Failed,
    Filtered,
    Refused,
}

pub struct Pipeline {
    settings: Arc<Settings>,
    source: Arc<dyn FeedSource>,
    sink: Arc<dyn Sink>,
    ledger: Ledger,
    /// Finds the threats tags name (`guess_threats_from_tags` with OpenCTI); `None` when no
    /// search is made.
    resolver: Option<Arc<ThreatResolver>>,
    /// Values on these lists make no indicator.
    warninglists: Option<Arc<Warninglists>>,
    retry_policy: RetryPolicy,
    /// Draw a progress bar (interactive `once`).
    progress: bool,
    /// What the events in flight may take together.
    budget: budget::MemoryBudget,
}

/// One run's identity.
struct Run {
    id: RunId,
    started: DateTime<Utc>,
}

impl Pipeline {
    /// A pipeline from `source` into `sink`, recording in `ledger`; no threat search on the
    /// platform, no warninglists and no progress lines until the `with_*` methods add them.
    pub fn new(
        settings: Arc<Settings>,
        source: Arc<dyn FeedSource>,
        sink: Arc<dyn Sink>,
        ledger: Ledger,
    ) -> Pipeline {
        let retry_policy = RetryPolicy {
            max_attempts: settings.misp_feed.max_attempts,
            base_backoff: settings.misp_feed.retry_backoff,
            ..RetryPolicy::default()
        };
        let budget = budget::MemoryBudget::new(settings.misp_feed.memory_budget_mb);
        Pipeline {
            settings,
            source,
            sink,
            ledger,
            resolver: None,
            warninglists: None,
            retry_policy,
            progress: false,
            budget,
        }
    }

    /// `guess_threats_from_tags`: the event's tag values are searched on the platform.
    pub(crate) fn with_threat_resolver(mut self, resolver: Option<Arc<ThreatResolver>>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Listed values make no indicator.
    pub(crate) fn with_warninglists(mut self, warninglists: Option<Arc<Warninglists>>) -> Self {
        self.warninglists = warninglists;
        self
    }

    /// A progress line per event on stderr (an operator's terminal).
    pub(crate) fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Runs one sync. Errors are returned only when the run could not happen at all (the
    /// feed could not be listed, the ledger failed); per-event failures are recorded and the
    /// run goes on.
    pub async fn run_once(&self) -> Result<RunReport, PipelineError> {
        let clock = Instant::now();
        if let Some(resolver) = &self.resolver {
            resolver.start_run();
        }
        let run = Run {
            id: self.ledger.begin_run(self.source.describe()).await?,
            started: Utc::now(),
        };
        events::RunStarted {
            run_id: run.id,
            source: &self.source.describe(),
        }
        .emit();
        let mut report = match self.run_inner(&run).await {
            Ok(report) => report,
            Err(error) => {
                let outcome = RunOutcome {
                    status: RunStatus::Failed,
                    pushed: 0,
                    skipped: 0,
                    failed: 0,
                    message: error.to_string(),
                };
                if let Err(e) = self.ledger.finish_run(run.id, outcome).await {
                    tracing::error!(error = %e, "could not record the failed run");
                }
                self.record_ledger_counts().await;
                let listing_source =
                    matches!(error, PipelineError::Listing(_)).then(|| self.source_kind());
                events::RunFailed {
                    run_id: run.id,
                    error: &error,
                    listing_source,
                    elapsed: clock.elapsed(),
                }
                .emit();
                return Err(error);
            }
        };
        report.duration_ms = clock.elapsed().as_millis() as u64;
        let summary = RunSummary {
            pushed: report.pushed,
            skipped: report.set_aside(),
            failed: report.failed,
            checkpoint: report.checkpoint.clone(),
            started: report.started,
        };
        let mut work_error = None;
        if let Err(e) = self.sink.finish_run(&summary).await {
            tracing::error!(error = %e, "could not close the run on the sink");
            work_error = Some(e.to_string());
        }
        let status = if report.failed > 0 || work_error.is_some() {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Completed
        };
        let mut message = report.message();
        if let Some(e) = work_error {
            message.push_str(&format!("; closing the run failed: {e}"));
        }
        let outcome = RunOutcome {
            status,
            pushed: report.pushed,
            skipped: report.set_aside(),
            failed: report.failed,
            message: message.clone(),
        };
        self.ledger.finish_run(run.id, outcome).await?;
        self.record_ledger_counts().await;
        events::RunFinished {
            run_id: run.id,
            pushed: report.pushed,
            unchanged: report.unchanged,
            skipped: report.skipped,
            failed: report.failed,
            duration_ms: report.duration_ms,
            elapsed: clock.elapsed(),
            message: &message,
        }
        .emit();
        Ok(report)
    }

    async fn run_inner(&self, run: &Run) -> Result<RunReport, PipelineError> {
        self.forget_hashes_if_options_changed().await?;
        let checkpoint = self.ledger.checkpoint().await?;
        let listing = self
            .source
            .list(Some(&checkpoint.validators()))
            .await
            .map_err(PipelineError::Listing)?;
        match listing {
            Listing::Manifest {
                entries,
                rejected,
                validators,
            } => {
                for (key, reason) in rejected {
                    tracing::error!(entry = %key, reason = %reason, "manifest entry rejected");
                    let reason = format!("manifest.json: entry {key:?}: {reason}");
                    self.ledger
                        .record_refused_entry(run.id, key, reason)
                        .await?;
                }
                self.ledger.record_manifest(run.id, entries.clone()).await?;
                self.sync_manifest(run, checkpoint, entries, Some(validators))
                    .await
            }
            Listing::NotModified => {
                tracing::info!("manifest not modified since the last run");
                let entries = self.ledger.manifest_entries().await?;
                self.sync_manifest(run, checkpoint, entries, None).await
            }
            Listing::Objects(objects) => self.sync_objects(run, checkpoint, objects).await,
        }
    }

    /// Object hashes made under other conversion options describe other bundles: the next
    /// push of every event is then a full one.
    async fn forget_hashes_if_options_changed(&self) -> Result<(), PipelineError> {
        use sha2::Digest;
        let options = format!("{:?}", self.settings.misp_feed.convert);
        let fingerprint = hex::encode(&sha2::Sha256::digest(options.as_bytes())[..8]);
        if self
            .ledger
            .forget_hashes_if_options_changed(fingerprint)
            .await?
        {
            tracing::info!(
                "the conversion options changed: the next push of every event sends its whole bundle"
            );
        }
        Ok(())
    }

    /// Closes the sink's connections (the broker's): the connector is done with runs.
    pub(crate) async fn close(&self) {
        self.sink.close().await;
    }

    /// The source's kind for metric labels (never a URL: it may carry credentials).
    fn source_kind(&self) -> &'static str {
        match self.settings.misp_feed.source_type {
            crate::config::SourceType::S3 => "s3",
            crate::config::SourceType::Url => "url",
        }
    }

    async fn record_ledger_counts(&self) {
        if let Ok(counts) = self.ledger.status_counts().await {
            crate::telemetry::metrics()
                .set_events_by_status(counts.iter().map(|(s, n)| (s.as_str(), *n)));
        }
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
}
