//! Back-pressure, as pycti's buffering check: the connector's queue size read from the
//! platform (`GetConnector`), reported in pings, and waited on before a run while it is at or
//! above `CONNECTOR_QUEUE_THRESHOLD`.

use serde_json::{Value, json};
use tracing::{info, warn};

use super::graphql::{ApiError, GET_CONNECTOR, field, variables};
use super::{OpenCti, OpenCtiError};

/// The connector's queue as the platform reports it (`connector_queue_details`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueReading {
    pub(crate) messages_number: f64,
    /// Decimal megabytes, as pycti computes them.
    pub size_mb: f64,
    pub threshold_mb: f64,
}

impl QueueReading {
    pub(crate) fn over_threshold(&self) -> bool {
        self.size_mb >= self.threshold_mb
    }
}

impl OpenCti {
    /// Reads the connector's queue size (`GetConnector`, as pycti's buffering check) and
    /// records it in the connector info sent with pings.
    pub(crate) async fn queue_reading(&self) -> Result<QueueReading, OpenCtiError> {
        let data = self
            .client
            .execute(
                "GetConnector",
                GET_CONNECTOR,
                variables([("id", json!(self.connector_id))]),
            )
            .await?;
        let details = field(&data, "GetConnector", "/connector/connector_queue_details")?;
        let number = |name: &str| -> Result<f64, OpenCtiError> {
            details.get(name).and_then(Value::as_f64).ok_or_else(|| {
                OpenCtiError::Api(ApiError::Decode {
                    operation: "GetConnector",
                    reason: format!("connector_queue_details.{name} is not a number"),
                })
            })
        };
        let reading = QueueReading {
            messages_number: number("messages_number")?,
            size_mb: number("messages_size")? / 1_000_000.0,
            threshold_mb: self.queue_threshold_mb,
        };
        if let Ok(mut info) = self.info.lock() {
            info.queue_messages_size = reading.size_mb;
            info.queue_threshold = reading.threshold_mb;
            info.buffering = reading.over_threshold();
        }
        Ok(reading)
    }

    /// Waits while the platform reports the connector's queue at or above
    /// `CONNECTOR_QUEUE_THRESHOLD` MB, polling every [`super::DEFAULT_QUEUE_POLL_INTERVAL`]. As pycti,
    /// a failed reading is logged and does not hold the run back. Returns the last reading.
    /// Waits without bound; wrap it in `tokio::select!` with the shutdown signal.
    pub async fn wait_for_queue_capacity(&self) -> Option<QueueReading> {
        loop {
            match self.queue_reading().await {
                Ok(reading) if reading.over_threshold() => {
                    info!(
                        queue_mb = reading.size_mb,
                        threshold_mb = reading.threshold_mb,
                        messages = reading.messages_number,
                        "connector will not run until the queue messages size is reduced under queue threshold"
                    );
                    tokio::time::sleep(self.queue_poll_interval).await;
                }
                Ok(reading) => return Some(reading),
                Err(error) => {
                    warn!(error = %error, "cannot read the connector queue size; running anyway");
                    return None;
                }
            }
        }
    }
}
