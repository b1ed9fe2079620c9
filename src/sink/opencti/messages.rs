//! The AMQP messages of one bundle, written from its text a batch at a time: pycti's split
//! (`send_stix2_bundle` on the MISP path: no event version, no entity filter, no update, no
//! draft, split) is planned once, then each message (a split bundle in the worker envelope)
//! is written when the publisher asks for it and dropped once confirmed. The whole set of
//! messages of a huge event (their base64 alone is 4/3 of the bundle) is never held.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::info;

use super::amqp::MessageSource;
use super::envelope::{EnvelopeFields, amqp_message_body};
use super::splitter::{SplitOptions, SplitPlan};

/// At most this many messages a batch: the publisher's default window, so a batch refills
/// what the broker confirmed meanwhile.
const BATCH_MESSAGES: usize = 1024;
/// A batch ends once its bodies reach this many bytes (one message may be larger).
const BATCH_BYTES: usize = 4 << 20;

/// One bundle's split plan beside the text it reads, and the envelope's per-push members.
pub(super) struct BundleMessages {
    bundle: Arc<String>,
    plan: SplitPlan,
    applicant_id: String,
    work_id: String,
}

impl BundleMessages {
    /// Plans the split of `bundle` (CPU work: call it off the async threads).
    pub(super) fn plan(
        bundle: Arc<String>,
        applicant_id: String,
        work_id: String,
    ) -> Result<BundleMessages, String> {
        let plan =
            SplitPlan::new(&bundle, &SplitOptions::default()).map_err(|error| error.to_string())?;
        let dropped = plan.incompatible_len();
        if dropped > 0 {
            info!(
                dropped,
                "objects not supported by OpenCTI left out of the push, as pycti does"
            );
        }
        Ok(BundleMessages {
            bundle,
            plan,
            applicant_id,
            work_id,
        })
    }

    pub(super) fn total(&self) -> usize {
        self.plan.len()
    }

    /// The bodies of the messages from position `start` on (0-based), up to a batch's
    /// limits; empty past the last.
    fn batch(&self, start: usize) -> Vec<String> {
        let fields = EnvelopeFields {
            applicant_id: Some(&self.applicant_id),
            entities_types: &[],
            update: false,
            draft_id: None,
            no_split: false,
            work_id: Some(&self.work_id),
        };
        let mut bodies = Vec::new();
        let mut bytes = 0usize;
        // One buffer for every split bundle's text: only the bodies are kept.
        let mut content = String::new();
        for position in start..self.total() {
            if bodies.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                break;
            }
            content.clear();
            self.plan
                .write_content(&self.bundle, position, &mut content);
            let body = amqp_message_body(&fields, position + 1, &content);
            bytes += body.len();
            bodies.push(body);
        }
        bodies
    }
}

/// A [`MessageSource`] over a bundle's messages; the batches after the first are written on
/// the CPU pool (`crate::cpu`) when the publisher asks for them.
pub(super) struct MessageBatches {
    messages: Arc<BundleMessages>,
    /// Position of the next message to write.
    next: usize,
    /// The first batch, written with the plan so a small event needs one CPU job.
    first: Option<Vec<String>>,
}

impl MessageBatches {
    pub(super) fn new(messages: Arc<BundleMessages>, first_batch: bool) -> MessageBatches {
        let first = first_batch.then(|| messages.batch(0));
        MessageBatches {
            messages,
            next: 0,
            first,
        }
    }
}

#[async_trait]
impl MessageSource for MessageBatches {
    fn total(&self) -> usize {
        self.messages.total()
    }

    async fn next_batch(&mut self) -> Result<Vec<String>, String> {
        let batch = match self.first.take() {
            Some(first) => first,
            None if self.next >= self.total() => Vec::new(),
            None => {
                let messages = self.messages.clone();
                let start = self.next;
                crate::cpu::run(move || messages.batch(start))
                    .await
                    .map_err(|e| format!("message writer task failed: {e}"))?
            }
        };
        self.next += batch.len();
        Ok(batch)
    }
}
