//! OpenCTI sink: delivers each bundle to the platform under the run's work, as pycti
//! 7.261026.0 does on the MISP Feed path (`tests/fixtures/opencti/PROTOCOL.md`). The
//! platform client ([`crate::opencti`]) registers the connector and owns the works; this
//! module only pushes.
//!
//! [`OpenCtiSink`] implements [`crate::sink::Sink`]: the first push of a run creates the
//! work (`workAdd`), each push plans the split of the bundle as pycti's splitter
//! ([`splitter`]), adds its expectations and publishes every split bundle in pycti's envelope
//! ([`envelope`]) with publisher confirms ([`amqp`]), the messages written a batch at a time
//! as the publisher needs them, or sends the whole bundle with `stixBundlePush` under
//! `CONNECTOR_QUEUE_PROTOCOL=api` ([`api`]). [`Sink::finish_run`] closes the work
//! (`workToProcessed`) and forgets it, so the next run gets a new one. A run that pushes
//! nothing creates no work.
//!
//! ```text
//! let sink = OpenCtiSink::new(opencti.clone());
//! sink.push(delivery).await?;                             // Ok only when all confirmed
//! sink.finish_run(&summary).await?;                       // workToProcessed if a work
//! sink.close().await;                                     // at exit: close the AMQP link
//! ```
//!
//! With `CONNECTOR_SEND_TO_QUEUE=false` pycti sends nothing and creates no work: the
//! connector then does not use [`OpenCtiSink`] at all (pings and state still apply).

pub mod amqp;
pub(crate) mod api;
pub mod envelope;
mod messages;
mod raw_json;
pub mod splitter;

use std::sync::Arc;

use async_trait::async_trait;
use tracing::{info, warn};

use self::amqp::{AmqpPublisher, MessageSource, RetryPolicy};
use self::messages::{BundleMessages, MessageBatches};
use crate::config::QueueProtocol;
use crate::opencti::{ConnectorState, OpenCti, OpenCtiError};
use crate::sink::{Delivery, Destination, Receipt, RunSummary, Sink, SinkError};

impl From<OpenCtiError> for SinkError {
    fn from(error: OpenCtiError) -> Self {
        match error {
            OpenCtiError::Broker(broker) => SinkError::Broker(broker.to_string()),
            OpenCtiError::Api(api) | OpenCtiError::Unreachable(api) => {
                SinkError::Api(api.to_string())
            }
            other => SinkError::Api(other.to_string()),
        }
    }
}

/// The per-run part of the sink: the work, created on the first push.
#[derive(Default)]
struct RunWork {
    work_id: Option<String>,
}

/// [`Sink`] that delivers bundles to OpenCTI under a work per run.
pub struct OpenCtiSink {
    opencti: Arc<OpenCti>,
    publisher: Option<AmqpPublisher>,
    work: tokio::sync::Mutex<RunWork>,
}

impl OpenCtiSink {
    /// A sink over a registered connector, with the default retry policy.
    pub fn new(opencti: Arc<OpenCti>) -> Self {
        Self::with_retry_policy(opencti, RetryPolicy::default())
    }

    pub fn with_retry_policy(opencti: Arc<OpenCti>, policy: RetryPolicy) -> Self {
        let publisher = match opencti.queue_protocol() {
            QueueProtocol::Amqp => Some(AmqpPublisher::new(
                opencti.registration().broker.clone(),
                opencti.registration().target.clone(),
                policy,
            )),
            QueueProtocol::Api => None,
        };
        OpenCtiSink {
            opencti,
            publisher,
            work: tokio::sync::Mutex::new(RunWork::default()),
        }
    }

    async fn work_id(&self) -> Result<String, OpenCtiError> {
        let mut work = self.work.lock().await;
        if let Some(existing) = &work.work_id {
            return Ok(existing.clone());
        }
        let created = self.opencti.add_run_work().await?;
        info!(work_id = %created, "work created in OpenCTI");
        work.work_id = Some(created.clone());
        Ok(created)
    }

    /// Plans the split off the async threads (with the first batch of AMQP messages when
    /// `first_batch`); pycti raises "Nothing to import" when no object is left, whatever the
    /// queue protocol.
    async fn split(
        &self,
        delivery: &Delivery<'_>,
        work_id: &str,
        first_batch: bool,
    ) -> Result<MessageBatches, SinkError> {
        let split_error = |reason: String| {
            let event = delivery.event_uuid;
            SinkError::Api(format!("splitting the bundle of event {event}: {reason}"))
        };
        let bundle = delivery.bundle_json.clone();
        let applicant_id = self.opencti.registration().applicant_id.clone();
        let work_id = work_id.to_string();
        let source = crate::cpu::run(move || {
            BundleMessages::plan(bundle, applicant_id, work_id)
                .map(|messages| MessageBatches::new(Arc::new(messages), first_batch))
        })
        .await
        .map_err(|e| split_error(format!("splitter task failed: {e}")))?
        .map_err(split_error)?;
        if source.total() == 0 {
            return Err(split_error(
                "Nothing to import (no object OpenCTI supports)".into(),
            ));
        }
        Ok(source)
    }

    async fn push_amqp(
        &self,
        publisher: &AmqpPublisher,
        mut messages: MessageBatches,
        work_id: &str,
    ) -> Result<u64, SinkError> {
        // pycti adds the expectations before publishing and only logs a failure.
        if let Err(error) = self
            .opencti
            .add_expectations(work_id, messages.total())
            .await
        {
            if error.graphql_name() == Some("WORK_NOT_ALIVE") {
                info!(work_id, "work no longer exists; publishing anyway");
            } else {
                warn!(work_id, error = %error, "cannot add expectations");
            }
        }
        let confirmed = publisher
            .publish(&mut messages)
            .await
            .map_err(|error| SinkError::Broker(error.to_string()))?;
        Ok(confirmed as u64)
    }
}

#[async_trait]
impl Sink for OpenCtiSink {
    fn name(&self) -> &'static str {
        "opencti"
    }

    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        let work_id = self.work_id().await?;
        let split = self
            .split(&delivery, &work_id, self.publisher.is_some())
            .await?;
        let messages = match &self.publisher {
            Some(publisher) => self.push_amqp(publisher, split, &work_id).await?,
            None => {
                drop(split);
                // The api protocol sends the original bundle; the platform splits it.
                api::stix_bundle_push(&self.opencti, &delivery.bundle_json, &work_id).await?;
                1
            }
        };
        Ok(Receipt {
            destination: Destination::Work(work_id),
            messages,
        })
    }

    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError> {
        let work_id = self.work.lock().await.work_id.take();
        let Some(work_id) = work_id else {
            return Ok(());
        };
        let in_error = summary.failed > 0;
        // The closing message quotes the state the run reached, as the Python connector's
        // (`storing state (last_run=..., ...)`).
        let state = summary.checkpoint.as_ref().and_then(|checkpoint| {
            ConnectorState::of_checkpoint(checkpoint, Some(summary.started))
        });
        let message = closing_message(summary, state.as_ref());
        self.opencti
            .work_to_processed(&work_id, &message, in_error)
            .await?;
        Ok(())
    }

    /// Closes the broker connection kept between pushes.
    async fn close(&self) {
        if let Some(publisher) = &self.publisher {
            publisher.close().await;
        }
    }
}

/// The work's closing message: the Python connector's sentence, with our counts.
pub(crate) fn closing_message(summary: &RunSummary, state: Option<&ConnectorState>) -> String {
    let head = if summary.failed > 0 {
        "Connector run finished with errors"
    } else {
        "Connector successfully run"
    };
    let mut message = format!(
        "{head} ({} events have been processed, {} skipped, {} failed)",
        summary.pushed, summary.skipped, summary.failed
    );
    if let Some(state) = state {
        message.push_str(&format!(", storing state ({})", state.describe()));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn closing_message_counts_and_state() {
        let summary = RunSummary {
            pushed: 3,
            skipped: 1,
            failed: 0,
            checkpoint: None,
            started: Utc::now(),
        };
        let state = ConnectorState {
            last_event_timestamp: Some(5),
            ..ConnectorState::default()
        };
        assert_eq!(
            closing_message(&summary, Some(&state)),
            "Connector successfully run (3 events have been processed, 1 skipped, 0 failed), storing state (last_event_timestamp=5)"
        );
        let failed = RunSummary {
            failed: 2,
            ..summary
        };
        assert!(
            closing_message(&failed, None).starts_with("Connector run finished with errors (3")
        );
    }
}
