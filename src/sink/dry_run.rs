//! The sink of `once --dry-run`: takes every bundle, sends it nowhere, and remembers how many
//! objects each event's bundle held, so the operator sees what a real run would push.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Delivery, Destination, Receipt, RunSummary, Sink, SinkError};

#[derive(Default)]
pub(crate) struct DryRunSink {
    objects: Mutex<HashMap<String, usize>>,
}

impl DryRunSink {
    /// Event uuid -> the number of STIX objects its bundle held.
    pub(crate) fn objects_by_event(&self) -> HashMap<String, usize> {
        self.objects
            .lock()
            .map(|objects| objects.clone())
            .unwrap_or_default()
    }
}

/// The number of objects of a bundle.
fn object_count(bundle_json: &str) -> usize {
    let value: serde_json::Value = serde_json::from_str(bundle_json).unwrap_or_default();
    value
        .get("objects")
        .and_then(serde_json::Value::as_array)
        .map_or(0, Vec::len)
}

#[async_trait]
impl Sink for DryRunSink {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        let count = object_count(&delivery.bundle_json);
        if let Ok(mut objects) = self.objects.lock() {
            objects.insert(delivery.event_uuid.to_string(), count);
        }
        Ok(Receipt {
            destination: Destination::File("(dry run: not written)".into()),
            messages: 1,
        })
    }

    async fn finish_run(&self, _summary: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}
