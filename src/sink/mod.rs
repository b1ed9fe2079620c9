//! Sinks: where converted bundles go. The directory sink writes files as pycti's
//! send_to_directory does; the OpenCTI sink publishes to the platform.

pub mod directory;
pub(crate) mod dry_run;
pub(crate) mod fanout;
pub mod opencti;

use std::sync::Arc;

use async_trait::async_trait;

/// One event's bundle, ready to go.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub event_uuid: &'a str,
    /// The bundle text, shared: a sink that works on it off the async threads (the OpenCTI
    /// splitter) takes a handle instead of copying text that can be hundreds of megabytes.
    pub bundle_json: Arc<String>,
}

impl<'a> Delivery<'a> {
    /// A delivery of `bundle_json` (moved when it is a `String`, copied when borrowed).
    pub fn new(event_uuid: &'a str, bundle_json: impl Into<String>) -> Delivery<'a> {
        Delivery {
            event_uuid,
            bundle_json: Arc::new(bundle_json.into()),
        }
    }
}

/// Proof that a sink holds the bundle (a file written, every AMQP message confirmed).
pub use crate::ledger::{Destination, Receipt};

/// What a run did, for the sink's closing of it (the OpenCTI work's closing message quotes
/// the counts and the state the run reached, as the Python connector's does).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub pushed: u64,
    pub skipped: u64,
    pub failed: u64,
    /// The checkpoint the run stored.
    pub checkpoint: Option<crate::ledger::Checkpoint>,
    pub started: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Io(String),
    #[error("OpenCTI API: {0}")]
    Api(String),
    #[error("RabbitMQ: {0}")]
    Broker(String),
}

#[async_trait]
pub trait Sink: Send + Sync {
    fn name(&self) -> &'static str;
    /// Delivers one bundle; returns only once the destination has confirmed it.
    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError>;
    /// Closes the run (e.g. marks the OpenCTI work processed). Called once per run.
    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError>;
    /// Closes connections kept between pushes, before the process ends.
    async fn close(&self) {}
}
