//! What the connector reports, one type per occurrence: `emit` writes the log line (the message
//! and structured keys operators and tests read) and moves the matching metrics, so a log line
//! and its counter cannot drift apart.
//!
//! Event decisions carry `decision` (`pushed`, `skipped`, `failed`) and count in
//! `misp_feed_event_outcomes_total` under the run report's categories (`pushed`, `unchanged`,
//! `skipped`, `failed`).

use std::fmt::Display;
use std::time::Duration;

use super::metrics::{ConnectorState, Metrics, metrics};
use crate::ledger::RunId;

pub(crate) trait InternalEvent: Sized {
    /// Logs, and updates the process-wide metrics.
    fn emit(self) {
        self.emit_to(&metrics());
    }

    /// Logs, and updates `metrics`.
    fn emit_to(self, metrics: &Metrics);
}

/// A run began.
pub(crate) struct RunStarted<'a> {
    pub(crate) run_id: RunId,
    pub(crate) source: &'a str,
}

impl InternalEvent for RunStarted<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.set_state(ConnectorState::Running);
        tracing::info!(run = self.run_id.0, source = %self.source, "run started");
    }
}

/// A run went through (some events may have failed: they are in `failed`).
pub(crate) struct RunFinished<'a> {
    pub(crate) run_id: RunId,
    pub(crate) pushed: u64,
    pub(crate) unchanged: u64,
    pub(crate) skipped: u64,
    pub(crate) failed: u64,
    /// The run report's duration (up to the last event).
    pub(crate) duration_ms: u64,
    /// Until the run was closed on the sink and in the ledger.
    pub(crate) elapsed: Duration,
    pub(crate) message: &'a str,
}

impl InternalEvent for RunFinished<'_> {
    fn emit_to(self, metrics: &Metrics) {
        run_ended(metrics, self.elapsed);
        tracing::info!(
            run = self.run_id.0,
            pushed = self.pushed,
            unchanged = self.unchanged,
            skipped = self.skipped,
            failed = self.failed,
            duration_ms = self.duration_ms,
            "run finished: {}",
            self.message
        );
    }
}

/// A run could not happen (the feed could not be listed, the ledger failed).
pub(crate) struct RunFailed<'a> {
    pub(crate) run_id: RunId,
    pub(crate) error: &'a dyn Display,
    /// The source kind when listing the feed failed: a fetch error of that source too.
    pub(crate) listing_source: Option<&'a str>,
    pub(crate) elapsed: Duration,
}

impl InternalEvent for RunFailed<'_> {
    fn emit_to(self, metrics: &Metrics) {
        tracing::error!(run = self.run_id.0, error = %self.error, "run failed");
        metrics.inc_errors();
        if let Some(source) = self.listing_source {
            metrics.inc_fetch_errors(source);
        }
        run_ended(metrics, self.elapsed);
    }
}

fn run_ended(metrics: &Metrics, elapsed: Duration) {
    metrics.inc_runs();
    let ended = chrono::Utc::now();
    metrics.record_run(
        elapsed,
        ended.timestamp() as f64 + f64::from(ended.timestamp_subsec_millis()) / 1000.0,
    );
    metrics.set_state(ConnectorState::Idle);
}

/// An event's bundle was confirmed by the sink and recorded.
pub(crate) struct EventPushed<'a> {
    pub(crate) uuid: &'a str,
    /// Why it was due (`new`, `timestamp changed` ...).
    pub(crate) reason: &'a str,
    /// Objects sent (all of them, or the delta's).
    pub(crate) objects: usize,
    /// Objects of the event's bundle.
    pub(crate) total: usize,
    pub(crate) destination: &'a str,
    /// From handing the bundle to the sink to its confirmation.
    pub(crate) latency: Duration,
}

impl InternalEvent for EventPushed<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.observe_push_latency(self.latency);
        metrics.inc_bundles_sent();
        metrics.add_records_sent(self.objects as u64);
        metrics.inc_event_outcome("pushed");
        let (uuid, objects, total) = (self.uuid, self.objects, self.total);
        if objects == total {
            tracing::info!(
                event = %uuid,
                decision = "pushed",
                reason = self.reason,
                objects,
                destination = %self.destination,
                "event {uuid} pushed ({objects} objects)"
            );
        } else {
            tracing::info!(
                event = %uuid,
                decision = "pushed",
                reason = self.reason,
                objects,
                total,
                destination = %self.destination,
                "event {uuid} pushed: delta of {objects} of its {total} objects"
            );
        }
    }
}

/// An event waited for its share of the memory budget (`MISP_FEED_MEMORY_BUDGET_MB`), or was
/// estimated to need more than all of it and so ran alone.
pub(crate) struct MemoryBudgetWait<'a> {
    /// The event's uuid (or the S3 object's key).
    pub what: &'a str,
    pub needed_mb: u32,
    pub budget_mb: u32,
    /// `None`: admitted at once.
    pub waited: Option<Duration>,
    pub alone: bool,
}

impl InternalEvent for MemoryBudgetWait<'_> {
    fn emit_to(self, metrics: &Metrics) {
        let (what, needed_mb, budget_mb) = (self.what, self.needed_mb, self.budget_mb);
        let waited = self.waited.is_some();
        let waited_ms = self.waited.map_or(0, |waited| waited.as_millis() as u64);
        if waited {
            metrics.inc_memory_budget_waits();
        }
        let message = if self.alone {
            format!(
                "event {what} needs about {needed_mb} MB, more than the memory budget of {budget_mb} MB (MISP_FEED_MEMORY_BUDGET_MB): it runs alone, after waiting {waited_ms} ms"
            )
        } else {
            format!(
                "event {what} waited {waited_ms} ms for about {needed_mb} MB of the memory budget of {budget_mb} MB (MISP_FEED_MEMORY_BUDGET_MB)"
            )
        };
        tracing::info!(
            event = %what,
            needed_mb,
            budget_mb,
            waited,
            waited_ms,
            "{message}"
        );
    }
}

/// Attributes of a pushed event made no indicator because their values are on warninglists.
pub(crate) struct WarninglistedAttributes<'a> {
    pub(crate) uuid: &'a str,
    /// Attributes by list name.
    pub(crate) tally: &'a std::collections::BTreeMap<String, usize>,
}

impl InternalEvent for WarninglistedAttributes<'_> {
    fn emit_to(self, metrics: &Metrics) {
        let attributes: usize = self.tally.values().sum();
        metrics.add_warninglisted(attributes as u64);
        let lists: Vec<String> = (self.tally.iter())
            .map(|(list, count)| format!("{list} ({count})"))
            .collect();
        let uuid = self.uuid;
        tracing::info!(
            event = %uuid,
            attributes,
            "event {uuid}: {attributes} attribute(s) on warninglists made no indicator: {}",
            lists.join(", ")
        );
    }
}

/// An event failed at `stage`; the ledger now holds it as `status` (`failed`, or `gave_up`
/// after its last attempt).
pub(crate) struct EventFailed<'a> {
    pub(crate) uuid: &'a str,
    pub(crate) stage: &'a str,
    pub(crate) status: &'a str,
    pub(crate) reason: &'a str,
    /// The source kind, counted as a fetch error when `stage` is `fetch`.
    pub(crate) source: &'a str,
}

impl InternalEvent for EventFailed<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.inc_event_outcome("failed");
        if self.stage == "fetch" {
            metrics.inc_fetch_errors(self.source);
        }
        let (uuid, stage, reason) = (self.uuid, self.stage, self.reason);
        tracing::error!(
            event = %uuid,
            decision = "failed",
            stage,
            status = self.status,
            reason = %reason,
            "event {uuid} failed at {stage}: {reason}"
        );
    }
}

/// Why an event was not processed this run.
pub(crate) enum Skip<'a> {
    /// Same manifest timestamp as the one pushed.
    Unchanged,
    /// Older than the import floor (recorded `too_old`): logged at debug level only, there
    /// are many.
    TooOld,
    /// An S3 object's event whose content hash matches the one pushed.
    SameContent { object: &'a str },
    /// Any other reason (backing off, given up ...), in the reconciler's words.
    Other(&'a str),
}

/// An event the run decided not to process.
pub(crate) struct EventSkipped<'a> {
    pub(crate) uuid: &'a str,
    pub(crate) why: Skip<'a>,
}

impl InternalEvent for EventSkipped<'_> {
    fn emit_to(self, metrics: &Metrics) {
        let uuid = self.uuid;
        match self.why {
            Skip::Unchanged => {
                metrics.inc_event_outcome("unchanged");
                tracing::info!(event = %uuid, decision = "skipped", reason = "unchanged", "event {uuid} unchanged");
            }
            Skip::TooOld => {
                metrics.inc_event_outcome("skipped");
                tracing::debug!(event = %uuid, decision = "skipped", reason = "older than the import floor");
            }
            Skip::SameContent { object } => {
                metrics.inc_event_outcome("unchanged");
                tracing::info!(event = %uuid, object = %object, decision = "skipped", reason = "content unchanged", "event {uuid} unchanged (same content)");
            }
            Skip::Other(reason) => {
                metrics.inc_event_outcome("skipped");
                tracing::info!(event = %uuid, decision = "skipped", reason, "event {uuid} skipped: {reason}");
            }
        }
    }
}

/// An S3 object unchanged (same ETag) since all its events were pushed: not downloaded.
pub(crate) struct ObjectSkipped<'a> {
    pub(crate) key: &'a str,
}

impl InternalEvent for ObjectSkipped<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.inc_event_outcome("unchanged");
        let key = self.key;
        tracing::info!(object = %key, decision = "skipped", reason = "unchanged ETag", "object {key} unchanged");
    }
}

/// An S3 object that could not be fetched or parsed: none of its events are known.
pub(crate) struct ObjectFailed<'a> {
    pub(crate) key: &'a str,
    /// `fetch` or `parse`.
    pub(crate) stage: &'a str,
    pub(crate) reason: &'a dyn Display,
    /// The source kind, counted as a fetch error when `stage` is `fetch`.
    pub(crate) source: &'a str,
}

impl InternalEvent for ObjectFailed<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.inc_event_outcome("failed");
        if self.stage == "fetch" {
            metrics.inc_fetch_errors(self.source);
        }
        let (key, reason) = (self.key, self.reason);
        tracing::error!(object = %key, decision = "failed", stage = self.stage, reason = %reason, "object {key} failed: {reason}");
    }
}

/// A ping to OpenCTI was sent (pycti counts each one).
pub(crate) struct PingSent;

impl InternalEvent for PingSent {
    fn emit_to(self, metrics: &Metrics) {
        metrics.inc_ping_api();
    }
}

/// Which ping failed.
pub(crate) enum Ping {
    /// The heartbeat; the next beat tries again.
    Heartbeat,
    /// The forced ping carrying the new state at the end of `once`.
    FinalState,
}

/// A ping to OpenCTI failed.
pub(crate) struct PingFailed<'a> {
    pub(crate) ping: Ping,
    pub(crate) error: &'a dyn Display,
}

impl InternalEvent for PingFailed<'_> {
    fn emit_to(self, metrics: &Metrics) {
        metrics.inc_ping_api_errors();
        let error = self.error;
        match self.ping {
            Ping::Heartbeat => {
                tracing::error!(error = %error, "ping to OpenCTI failed; retrying at the next beat");
            }
            Ping::FinalState => {
                tracing::error!(error = %error, "could not send the connector state to OpenCTI");
            }
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
