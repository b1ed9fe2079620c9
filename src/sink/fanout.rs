//! Both destinations at once, as pycti does when `CONNECTOR_SEND_TO_QUEUE` and
//! `CONNECTOR_SEND_TO_DIRECTORY` are both on: the platform first, then the bundle folder.
//! An event counts as pushed only when both hold it; a retry after a partial failure may
//! repeat the platform push, which OpenCTI's upsert makes harmless.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Delivery, Receipt, RunSummary, Sink, SinkError};

pub(crate) struct FanOutSink {
    primary: Arc<dyn Sink>,
    copy: Arc<dyn Sink>,
}

impl FanOutSink {
    pub(crate) fn new(primary: Arc<dyn Sink>, copy: Arc<dyn Sink>) -> FanOutSink {
        FanOutSink { primary, copy }
    }
}

#[async_trait]
impl Sink for FanOutSink {
    fn name(&self) -> &'static str {
        "fan-out"
    }

    /// The receipt is the primary's (the work id), with the copy's messages added.
    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        let mut receipt = self.primary.push(delivery.clone()).await?;
        let copy = self.copy.push(delivery).await?;
        receipt.messages += copy.messages;
        Ok(receipt)
    }

    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError> {
        let primary = self.primary.finish_run(summary).await;
        let copy = self.copy.finish_run(summary).await;
        primary.and(copy)
    }

    async fn close(&self) {
        self.primary.close().await;
        self.copy.close().await;
    }
}
