//! The OpenCTI platform client, speaking exactly as pycti 7.261026.0 does on the MISP Feed
//! path (`tests/fixtures/opencti/PROTOCOL.md` and transcripts): GraphQL transport,
//! registration, pings carrying the connector state, works, queue back-pressure, the threat
//! search of `guess_threats_from_tags`, and the probes of `misp-feed check`.
//!
//! Delivering bundles is the sink's job (`crate::sink::opencti`): it asks this client for
//! the run's work and its expectations, and publishes through the broker the registration
//! names.
//!
//! # How the connector drives it
//!
//! ```text
//! let opencti = Arc::new(OpenCti::connect(&settings).await?);      // healthCheck x2 + register
//! // First start with an empty ledger: adopt the Python connector's checkpoint.
//! //   (ConnectorState::effective_checkpoint() is the timestamp the Python connector resumes
//! //   from; ConnectorState::checkpoint(run_start, ts) builds the state to send back)
//! if ledger_is_empty { if let Some(s) = opencti.registered_state() { ledger.adopt(s) } }
//! // `run` mode: every MISP_FEED_HEARTBEAT_PERIOD and once at start, as pycti's PingAlive
//! let remote = opencti.ping(ledger_state.as_ref()).await?;
//! if remote_state_changed(ledger_state.as_ref(), remote.as_ref()) {
//!     // operator pressed "reset state" (remote is None) or edited it: reset the ledger
//! }
//! // each run
//! opencti.wait_for_queue_capacity().await;                // CONNECTOR_QUEUE_THRESHOLD
//! let resolver = opencti.threat_resolver();               // fresh cache per run
//! let (event, threats) = resolver.resolve_event(event, &options).await?; // before converting
//! // `once` mode (run_and_terminate): at the end, as the Python connector
//! opencti.force_ping(Some(&new_state)).await?;
//! ```
//!
//! The state sent in pings is [`ConnectorState`], in the Python connector's keys and bytes,
//! so the two connectors can be swapped under one connector id.

pub mod broker;
pub mod graphql;
mod queue;
pub(crate) mod registration;
pub(crate) mod state;
pub(crate) mod threats;
mod works;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::info;

use self::broker::BrokerError;
use self::graphql::{
    ApiError, GraphqlClient, HEALTH_CHECK, PING_CONNECTOR, REGISTER_CONNECTOR, field, string_field,
    variables,
};
pub(crate) use self::registration::{BrokerOverrides, Registration};
use self::registration::{parse_registration, register_input};
use self::state::state_for_ping;
pub use self::state::{ConnectorInfo, ConnectorState, remote_state_changed};
pub(crate) use self::threats::ThreatResolver;
use crate::config::{QueueProtocol, Settings};

/// `version` and `slug` pycti reads from the Python connector's
/// `__metadata__/connector_manifest.json`; sent unchanged so the platform sees the same
/// connector whichever implementation runs.
pub(crate) const MANIFEST_VERSION: &str = "7.260914.0";
pub(crate) const MANIFEST_SLUG: &str = "misp-feed";

/// How often a run waiting for queue capacity reads the queue size again.
pub(crate) const DEFAULT_QUEUE_POLL_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum OpenCtiError {
    #[error("OpenCTI API: {0}")]
    Api(#[from] ApiError),
    /// The start-up health check failed (pycti: "OpenCTI API is not reachable").
    #[error("OpenCTI API is not reachable: {0}")]
    Unreachable(ApiError),
    #[error("RabbitMQ: {0}")]
    Broker(#[from] BrokerError),
    #[error("OpenCTI configuration: {0}")]
    Config(String),
}

/// The platform client of one registered connector: one per process.
pub struct OpenCti {
    client: GraphqlClient,
    connector_id: String,
    queue_protocol: QueueProtocol,
    queue_threshold_mb: f64,
    registration: Registration,
    info: Mutex<ConnectorInfo>,
    queue_poll_interval: Duration,
}

impl std::fmt::Debug for OpenCti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCti")
            .field("endpoint", &self.client.endpoint())
            .field("connector_id", &self.connector_id)
            .finish_non_exhaustive()
    }
}

impl OpenCti {
    /// `misp-feed check`, first line: the API answers the health check. Returns the
    /// platform version. Registers nothing.
    pub async fn check_api(settings: &Settings) -> Result<String, OpenCtiError> {
        let client = GraphqlClient::new(&settings.opencti)?;
        let data = client
            .execute("healthCheck", HEALTH_CHECK, json!({}))
            .await?;
        Ok(string_field(&data, "healthCheck", "/about/version")?)
    }

    /// Start-up as pycti's helper: two health checks (pycti builds two API clients), then
    /// `registerConnector`, then the `MQ_*` environment overrides of the broker connection.
    /// Fails when the API is unreachable or refuses the registration.
    pub async fn connect(settings: &Settings) -> Result<Self, OpenCtiError> {
        let overrides = BrokerOverrides::from_env()?;
        Self::connect_with_broker_overrides(settings, &overrides).await
    }

    /// [`OpenCti::connect`] with the broker overrides given instead of read from the
    /// environment (e.g. from a configuration file).
    pub(crate) async fn connect_with_broker_overrides(
        settings: &Settings,
        overrides: &BrokerOverrides,
    ) -> Result<Self, OpenCtiError> {
        let connector_id = settings
            .connector
            .id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| OpenCtiError::Config("CONNECTOR_ID is not set".into()))?;
        let client = GraphqlClient::new(&settings.opencti)?;
        for _ in 0..2 {
            client
                .execute("healthCheck", HEALTH_CHECK, json!({}))
                .await
                .map_err(OpenCtiError::Unreachable)?;
        }
        let connector = &settings.connector;
        let input = register_input(&connector_id, connector);
        let data = client
            .execute(
                "RegisterConnector",
                REGISTER_CONNECTOR,
                variables([("input", input)]),
            )
            .await?;
        let mut registration = parse_registration(&data)?;
        overrides.apply(&mut registration.broker)?;
        info!(
            connector_id = %registration.connector_id,
            push_queue = %registration.push_queue,
            broker = %registration.broker.display_address(),
            "connector registered in OpenCTI"
        );
        Ok(OpenCti {
            client,
            connector_id: registration.connector_id.clone(),
            queue_protocol: connector.queue_protocol,
            queue_threshold_mb: connector.queue_threshold_mb,
            registration,
            info: Mutex::new(ConnectorInfo::new(connector.queue_threshold_mb)),
            queue_poll_interval: DEFAULT_QUEUE_POLL_INTERVAL,
        })
    }

    /// Changes how often [`OpenCti::wait_for_queue_capacity`] polls while buffering.
    pub fn set_queue_poll_interval(&mut self, interval: Duration) {
        self.queue_poll_interval = interval;
    }

    pub(crate) fn connector_id(&self) -> &str {
        &self.connector_id
    }

    pub(crate) fn registration(&self) -> &Registration {
        &self.registration
    }

    pub(crate) fn queue_protocol(&self) -> QueueProtocol {
        self.queue_protocol
    }

    pub fn client(&self) -> &GraphqlClient {
        &self.client
    }

    /// The state stored on the platform at registration, as pycti's `get_state()`.
    pub fn registered_state(&self) -> Option<ConnectorState> {
        ConnectorState::from_platform(self.registration.connector_state.as_deref())
    }

    /// The `connectorInfo` sent with the next ping.
    pub fn connector_info(&self) -> ConnectorInfo {
        self.info
            .lock()
            .map(|info| info.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// One `pingConnector` carrying `local` (`"null"` when `None`) and the connector info.
    /// Returns the platform's state after the ping: normally `local` again; `None` after a
    /// "reset state" in the UI (see [`remote_state_changed`]).
    pub async fn ping(
        &self,
        local: Option<&ConnectorState>,
    ) -> Result<Option<ConnectorState>, OpenCtiError> {
        let info = serde_json::to_value(self.connector_info())
            .map_err(|e| OpenCtiError::Config(format!("connector info: {e}")))?;
        let vars = variables([
            ("id", json!(self.connector_id)),
            ("state", json!(state_for_ping(local))),
            ("connectorInfo", info),
        ]);
        let data = self
            .client
            .execute("PingConnector", PING_CONNECTOR, vars)
            .await?;
        let stored = field(&data, "PingConnector", "/pingConnector")?
            .get("connector_state")
            .and_then(Value::as_str);
        Ok(ConnectorState::from_platform(stored))
    }

    /// pycti's `force_ping()` at the end of a run_and_terminate run: ping with the local
    /// state, and if the platform answers another state, ping once more with the same local
    /// state (it does not adopt the remote one). Returns the last answer.
    pub async fn force_ping(
        &self,
        local: Option<&ConnectorState>,
    ) -> Result<Option<ConnectorState>, OpenCtiError> {
        let remote = self.ping(local).await?;
        if remote_state_changed(local, remote.as_ref()) {
            return self.ping(local).await;
        }
        Ok(remote)
    }

    /// A resolver for `guess_threats_from_tags` with an empty cache: take one per run, so
    /// threats created on the platform since the last run are found.
    pub fn threat_resolver(&self) -> Arc<ThreatResolver> {
        Arc::new(ThreatResolver::new(self.client.clone()))
    }

    /// `misp-feed check`, RabbitMQ line: opens and closes a connection with the
    /// registration's connection data. Returns the broker address (no credentials).
    pub async fn check_broker(&self) -> Result<String, OpenCtiError> {
        let connection = self.registration.broker.connect().await?;
        let _ = connection.close(200, "check").await;
        Ok(self.registration.broker.display_address())
    }
}
