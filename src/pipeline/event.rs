//! One parsed event: convert it, record it in flight, push it, record the receipt (or the
//! failure).

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Outcome, Pipeline, PipelineError, Run};
use crate::convert;
use crate::ledger::{EventStatus, FailureStage, LeftOut, PushedContent, PushedObjects};
use crate::reconciler::attribute_count;
use crate::reconciler::filters::{EventFacts, Verdict};
use crate::reconciler::{ProcessReason, delta};
use crate::sink::Delivery;
use crate::telemetry::events::{
    EventFailed, EventPushed, EventSkipped, InternalEvent, Skip, WarninglistedAttributes,
};

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the event's own file says against the import filters and the guards: why it is
/// left out, if it is.
pub(super) fn screen(
    settings: &crate::config::Settings,
    event: &serde_json::Value,
) -> Option<(EventStatus, String)> {
    let feed = &settings.misp_feed;
    let facts = EventFacts::of_event(event);
    if let Verdict::Excluded(rule) = feed.filters.decide(&facts, true) {
        return Some((EventStatus::Filtered, rule));
    }
    let reason = feed.guards.refusal(attribute_count(event))?;
    Some((EventStatus::Refused, reason))
}

impl Pipeline {
    /// Records an event left out on purpose (filtered or refused), with why.
    pub(super) async fn leave_out(
        &self,
        run: &Run,
        left: LeftOut,
    ) -> Result<Outcome, PipelineError> {
        let outcome = match left.status {
            EventStatus::Refused => Outcome::Refused,
            _ => Outcome::Filtered,
        };
        EventSkipped {
            uuid: &left.uuid,
            why: Skip::Other(&format!("{}: {}", left.status, left.reason)),
        }
        .emit();
        self.ledger.record_left_out(run.id, vec![left]).await?;
        Ok(outcome)
    }

    pub(super) async fn convert_and_push(
        &self,
        run: &Run,
        uuid: &str,
        event: convert::MispEvent,
        content_sha256: String,
        reason: ProcessReason,
    ) -> Result<Outcome, PipelineError> {
        let options = self.settings.misp_feed.convert.clone();
        // The threats the conversion reads are searched first, outside any CPU slot: the
        // conversion itself never waits on the network.
        let (event, threats) = match &self.resolver {
            Some(resolver) => resolver
                .resolve_event(event, &options)
                .await
                .map_err(|reason| PipelineError::Job {
                    job: "threat listing",
                    reason,
                })?,
            None => (event, convert::ResolvedThreats::default()),
        };
        // What the platform already holds of this event (the delta push): the hashes of the
        // objects its last confirmed push left there.
        let previous = if self.settings.misp_feed.delta_push_on() {
            self.ledger.object_hashes(uuid.to_string()).await?
        } else {
            None
        };
        let warninglists = self.warninglists.clone();
        let converted = crate::cpu::run(move || {
            let mut event = event;
            event.shed_unread_members();
            let now = chrono::Utc::now();
            convert::convert_event_at(&event, &options, &threats, warninglists.as_deref(), now)
                .map(|mut bundle| {
                    // The event's input is no longer needed: freed before the bundle text
                    // grows.
                    drop(event);
                    let delta = delta::select(&bundle, previous.as_ref());
                    let warninglisted = std::mem::take(&mut bundle.warninglisted);
                    let positions = (!delta.full).then_some(delta.send.as_slice());
                    // The delta's hashes are the bundle's content: no second pass over it.
                    let bundle_sha256 = convert::content_sha256(
                        delta.hashes.iter().map(|(id, hash)| (id.as_str(), hash)),
                    );
                    (
                        bundle.into_part_json(positions),
                        bundle_sha256,
                        delta,
                        warninglisted,
                    )
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|reason| PipelineError::Job {
            job: "conversion",
            reason,
        })?;
        let (bundle_json, bundle_sha256, delta, warninglisted) = match converted {
            Ok(converted) => converted,
            Err(e) => return self.fail(run, uuid, FailureStage::Convert, e).await,
        };
        let content = PushedContent {
            content_sha256,
            bundle_sha256,
        };
        self.ledger
            .mark_in_flight(run.id, uuid.to_string(), content)
            .await?;
        let delivery = Delivery {
            event_uuid: uuid,
            bundle_json: std::sync::Arc::new(bundle_json),
        };
        let push_started = Instant::now();
        match self.sink.push(delivery).await {
            Ok(receipt) => {
                let latency = push_started.elapsed();
                let destination = receipt.destination.text();
                let (sent, total) = (delta.sent(), delta.total());
                let objects = PushedObjects {
                    full: delta.full,
                    sent: delta
                        .send
                        .iter()
                        .filter_map(|position| delta.hashes.get(*position).cloned())
                        .collect(),
                    removed: delta.removed,
                    total,
                    warninglisted: warninglisted.clone(),
                };
                self.ledger
                    .mark_pushed(run.id, uuid.to_string(), receipt, Some(objects))
                    .await?;
                EventPushed {
                    uuid,
                    reason: reason.as_str(),
                    objects: sent,
                    total,
                    destination: &destination,
                    latency,
                }
                .emit();
                if !warninglisted.is_empty() {
                    WarninglistedAttributes {
                        uuid,
                        tally: &warninglisted,
                    }
                    .emit();
                }
                Ok(Outcome::Pushed)
            }
            Err(e) => {
                self.fail(run, uuid, FailureStage::Push, e.to_string())
                    .await
            }
        }
    }

    pub(super) async fn fail(
        &self,
        run: &Run,
        uuid: &str,
        stage: FailureStage,
        error: String,
    ) -> Result<Outcome, PipelineError> {
        let status = self
            .ledger
            .mark_failed(
                run.id,
                uuid.to_string(),
                stage,
                error.clone(),
                self.retry_policy.clone(),
            )
            .await?;
        EventFailed {
            uuid,
            stage: stage.as_str(),
            status: status.as_str(),
            reason: &error,
            source: self.source_kind(),
        }
        .emit();
        Ok(Outcome::Failed)
    }
}
