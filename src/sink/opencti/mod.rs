//! OpenCTI sink: GraphQL control plane and bundle push over RabbitMQ or the API, speaking
//! to the platform exactly as pycti 7.261026.0 does on the MISP Feed path
//! (`tests/fixtures/opencti/PROTOCOL.md` and transcripts).
//!
//! # Two halves
//!
//! * [`OpenCti`] is the control plane, one per process: health check and registration at
//!   start ([`OpenCti::connect`]), the platform's state ([`OpenCti::registered_state`],
//!   [`OpenCti::ping`], [`OpenCti::force_ping`]), back-pressure
//!   ([`OpenCti::wait_for_queue_capacity`]), the threat search of `guess_threats_from_tags`
//!   ([`OpenCti::threat_resolver`]) and the probes of `misp-feed check`
//!   ([`OpenCti::check_api`], [`OpenCti::check_broker`]).
//! * [`OpenCtiSink`] implements [`crate::sink::Sink`]: the first push of a run creates the
//!   work (`workAdd`), each push adds its expectations and publishes every split bundle with
//!   publisher confirms (or sends `stixBundlePush` with `CONNECTOR_QUEUE_PROTOCOL=api`),
//!   and [`Sink::finish_run`] closes the work (`workToProcessed`) and forgets it, so the next
//!   run gets a new one. A run that pushes nothing creates no work.
//!
//! # How the pipeline drives it
//!
//! ```text
//! let opencti = Arc::new(OpenCti::connect(&settings).await?);      // healthCheck x2 + register
//! // First start with an empty ledger: adopt the Python connector's checkpoint.
//! //   (ConnectorState::effective_checkpoint() is the timestamp the Python connector resumes
//! //   from; ConnectorState::checkpoint(run_start, ts) builds the state to send back)
//! if ledger_is_empty { if let Some(s) = opencti.registered_state() { ledger.adopt(s) } }
//! let sink = OpenCtiSink::new(opencti.clone());
//! // `run` mode: every PING_INTERVAL (40 s) and once at start, as pycti's PingAlive
//! let remote = opencti.ping(ledger_state.as_ref()).await?;
//! if remote_state_changed(ledger_state.as_ref(), remote.as_ref()) {
//!     // operator pressed "reset state" (remote is None) or edited it: reset the ledger
//! }
//! // each run
//! opencti.wait_for_queue_capacity().await;                // CONNECTOR_QUEUE_THRESHOLD
//! let resolver = opencti.threat_resolver();               // fresh cache per run; use it
//!                                                         // from spawn_blocking only
//! sink.push(delivery).await?;                             // Ok only when all confirmed
//! sink.note_state(&new_state);                            // for the closing message
//! sink.finish_run(&summary).await?;                       // workToProcessed if a work
//! // `once` mode (run_and_terminate): at the end, as the Python connector
//! opencti.force_ping(Some(&new_state)).await?;
//! sink.close().await;                                     // at exit: close the AMQP link
//! ```
//!
//! The state sent in pings is [`ConnectorState`], in the Python connector's keys and bytes,
//! so the two connectors can be swapped under one connector id.
//!
//! With `CONNECTOR_SEND_TO_QUEUE=false` pycti sends nothing and creates no work: the
//! pipeline should then not use [`OpenCtiSink`] at all (pings and state still apply).

pub mod amqp;
pub mod graphql;
pub mod splitter;
pub mod state;
pub mod threats;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};
use tracing::{info, warn};

use self::amqp::{AmqpPublisher, BrokerEndpoint, BrokerError, PublishTarget, RetryPolicy};
use self::graphql::{
    ADD_EXPECTATIONS, ApiError, GET_CONNECTOR, GraphqlClient, HEALTH_CHECK, PING_CONNECTOR,
    REGISTER_CONNECTOR, STIX_BUNDLE_PUSH, WORK_ADD, WORK_TO_PROCESSED, field, string_field,
    variables,
};
use self::state::state_for_ping;
pub use self::state::{ConnectorInfo, ConnectorState};
pub use self::threats::OpenCtiThreatResolver;
use crate::config::{QueueProtocol, Settings};
use crate::pycompat::time::python_isoformat;
use crate::secret::Secret;
use crate::sink::{Delivery, Receipt, RunSummary, Sink, SinkError};

/// `version` and `slug` pycti reads from the Python connector's
/// `__metadata__/connector_manifest.json`; sent unchanged so the platform sees the same
/// connector whichever implementation runs.
pub const MANIFEST_VERSION: &str = "7.260914.0";
pub const MANIFEST_SLUG: &str = "misp-feed";

/// The Python connector's work name prefix (it does not use the configured name).
pub const WORK_NAME_PREFIX: &str = "MISP Feed run @ ";

/// pycti's PingAlive period: a daemon connector pings this often (and once at start).
pub const PING_INTERVAL: Duration = Duration::from_secs(40);

/// How often a run waiting for queue capacity reads the queue size again.
pub const DEFAULT_QUEUE_POLL_INTERVAL: Duration = Duration::from_secs(60);

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
    #[error("splitting the bundle of event {event}: {reason}")]
    Split { event: String, reason: String },
}

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

/// What `registerConnector` answered and pycti keeps.
#[derive(Debug, Clone)]
pub struct Registration {
    pub connector_id: String,
    /// The stored state string: `None` for a new connector, `""` after a UI reset.
    pub connector_state: Option<String>,
    /// `connector_user_id`: the user the workers impersonate (`applicant_id` of messages).
    pub applicant_id: String,
    pub broker: BrokerEndpoint,
    pub target: PublishTarget,
    /// `config.push`: the queue the workers read (for logs and checks).
    pub push_queue: String,
}

/// The connector's queue as the platform reports it (`connector_queue_details`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueReading {
    pub messages_number: f64,
    /// Decimal megabytes, as pycti computes them.
    pub size_mb: f64,
    pub threshold_mb: f64,
}

impl QueueReading {
    pub fn over_threshold(&self) -> bool {
        self.size_mb >= self.threshold_mb
    }
}

/// True when the platform's state differs from ours: pycti's PingAlive then adopts the
/// remote one. `remote == None` with a local state is the operator's "reset state".
pub fn remote_state_changed(
    local: Option<&ConnectorState>,
    remote: Option<&ConnectorState>,
) -> bool {
    local != remote
}

/// pycti's local overrides of the broker connection data the platform advertises
/// (`MQ_HOST`, `MQ_PORT`, `MQ_VHOST`, `MQ_USE_SSL`, `MQ_USER`, `MQ_PASS`; `mq.*` in pycti's
/// config file), plus the CA it trusts for the broker (`MQ_USE_SSL_CA`: a PEM file path or
/// the PEM text itself). Unlike pycti, whose default skips the broker's certificate check
/// (`MQ_USE_SSL_REJECT_UNAUTHORIZED=false`), the certificate is always verified.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerOverrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub vhost: Option<String>,
    pub use_ssl: Option<bool>,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    pub ca: Option<String>,
}

impl BrokerOverrides {
    /// Reads the `MQ_*` variables from the environment (empty values are ignored).
    pub fn from_env() -> Result<Self, OpenCtiError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`BrokerOverrides::from_env`] over any variable source.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenCtiError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let port = match get("MQ_PORT") {
            Some(text) => Some(text.trim().parse::<u16>().map_err(|_| {
                OpenCtiError::Config(format!("MQ_PORT: {text:?} is not a port number"))
            })?),
            None => None,
        };
        let use_ssl = match get("MQ_USE_SSL") {
            Some(text) => Some(parse_bool(&text).ok_or_else(|| {
                OpenCtiError::Config(format!("MQ_USE_SSL: {text:?} is not a boolean"))
            })?),
            None => None,
        };
        Ok(BrokerOverrides {
            host: get("MQ_HOST"),
            port,
            vhost: get("MQ_VHOST"),
            use_ssl,
            user: get("MQ_USER"),
            pass: get("MQ_PASS").map(Secret::new),
            ca: get("MQ_USE_SSL_CA"),
        })
    }

    fn apply(&self, broker: &mut BrokerEndpoint) -> Result<(), OpenCtiError> {
        if let Some(host) = &self.host {
            broker.host = host.clone();
        }
        if let Some(port) = self.port {
            broker.port = port;
        }
        if let Some(vhost) = &self.vhost {
            broker.vhost = vhost.clone();
        }
        if let Some(use_ssl) = self.use_ssl {
            broker.use_ssl = use_ssl;
        }
        if let Some(user) = &self.user {
            broker.user = user.clone();
        }
        if let Some(pass) = &self.pass {
            broker.pass = pass.clone();
        }
        if let Some(ca) = &self.ca {
            let pem = if ca.contains("-----BEGIN") {
                ca.clone()
            } else {
                std::fs::read_to_string(ca)
                    .map_err(|e| OpenCtiError::Config(format!("MQ_USE_SSL_CA {ca}: {e}")))?
            };
            broker.ca_pem = Some(pem);
        }
        Ok(())
    }
}

/// pycti's boolean spelling for config values.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// The control plane: one per process.
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
    pub async fn connect_with_broker_overrides(
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
        let input = variables([
            ("id", json!(connector_id)),
            ("name", json!(connector.name)),
            ("type", json!(connector.connector_type)),
            ("scope", json!(connector.scope)),
            ("auto", json!(connector.auto)),
            ("auto_update", json!(false)),
            ("enrichment_resolution", json!("none")),
            ("only_contextual", json!(connector.only_contextual)),
            ("playbook_compatible", json!(false)),
            ("listen_callback_uri", Value::Null),
            ("version", json!(MANIFEST_VERSION)),
            ("slug", json!(MANIFEST_SLUG)),
        ]);
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

    pub fn connector_id(&self) -> &str {
        &self.connector_id
    }

    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    pub fn queue_protocol(&self) -> QueueProtocol {
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

    /// Reads the connector's queue size (`GetConnector`, as pycti's buffering check) and
    /// records it in the connector info sent with pings.
    pub async fn queue_reading(&self) -> Result<QueueReading, OpenCtiError> {
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
    /// `CONNECTOR_QUEUE_THRESHOLD` MB, polling every [`DEFAULT_QUEUE_POLL_INTERVAL`]. As pycti,
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

    /// A resolver for `guess_threats_from_tags` with an empty cache: take one per run.
    /// Must be created inside the tokio runtime and used from blocking threads only
    /// (see [`threats`]).
    pub fn threat_resolver(&self) -> Arc<OpenCtiThreatResolver> {
        Arc::new(OpenCtiThreatResolver::new(
            self.client.clone(),
            tokio::runtime::Handle::current(),
        ))
    }

    /// `misp-feed check`, RabbitMQ line: opens and closes a connection with the
    /// registration's connection data. Returns the broker address (no credentials).
    pub async fn check_broker(&self) -> Result<String, OpenCtiError> {
        let connection = self.registration.broker.connect().await?;
        let _ = connection.close(200, "check").await;
        Ok(self.registration.broker.display_address())
    }

    async fn work_add(&self, friendly_name: &str) -> Result<String, OpenCtiError> {
        let vars = variables([
            ("connectorId", json!(self.connector_id)),
            ("friendlyName", json!(friendly_name)),
            ("isMultiPartWork", json!(false)),
        ]);
        let data = self.client.execute("workAdd", WORK_ADD, vars).await?;
        Ok(string_field(&data, "workAdd", "/workAdd/id")?)
    }

    async fn add_expectations(&self, work_id: &str, expectations: usize) -> Result<(), ApiError> {
        let vars = variables([
            ("id", json!(work_id)),
            ("expectations", json!(expectations)),
        ]);
        self.client
            .execute("addExpectations", ADD_EXPECTATIONS, vars)
            .await
            .map(|_| ())
    }

    async fn work_to_processed(
        &self,
        work_id: &str,
        message: &str,
        in_error: bool,
    ) -> Result<(), OpenCtiError> {
        let vars = variables([
            ("id", json!(work_id)),
            ("message", json!(message)),
            ("inError", json!(in_error)),
        ]);
        self.client
            .execute("workToProcessed", WORK_TO_PROCESSED, vars)
            .await?;
        Ok(())
    }

    async fn stix_bundle_push(&self, bundle: &str, work_id: &str) -> Result<(), OpenCtiError> {
        let vars = variables([
            ("connectorId", json!(self.connector_id)),
            ("bundle", json!(bundle)),
            ("work_id", json!(work_id)),
        ]);
        let data = self
            .client
            .execute("StixBundlePush", STIX_BUNDLE_PUSH, vars)
            .await?;
        match data.get("stixBundlePush") {
            Some(Value::Bool(true)) => Ok(()),
            other => Err(OpenCtiError::Api(ApiError::Decode {
                operation: "StixBundlePush",
                reason: format!("the platform did not accept the bundle (answered {other:?})"),
            })),
        }
    }
}

fn parse_registration(data: &Value) -> Result<Registration, OpenCtiError> {
    const OP: &str = "RegisterConnector";
    let text = |path: &str| string_field(data, OP, path);
    let connection = field(data, OP, "/registerConnector/config/connection")?;
    let port = connection
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| ApiError::Decode {
            operation: OP,
            reason: "config.connection.port is not a port number".into(),
        })?;
    let use_ssl = connection
        .get("use_ssl")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::Decode {
            operation: OP,
            reason: "config.connection.use_ssl is not a boolean".into(),
        })?;
    let connector_state = field(data, OP, "/registerConnector/connector_state")
        .ok()
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Registration {
        connector_id: text("/registerConnector/id")?,
        connector_state,
        applicant_id: text("/registerConnector/connector_user_id")?,
        broker: BrokerEndpoint {
            host: text("/registerConnector/config/connection/host")?,
            port,
            vhost: text("/registerConnector/config/connection/vhost")?,
            user: text("/registerConnector/config/connection/user")?,
            pass: Secret::new(text("/registerConnector/config/connection/pass")?),
            use_ssl,
            ca_pem: None,
        },
        target: PublishTarget {
            exchange: text("/registerConnector/config/push_exchange")?,
            routing_key: text("/registerConnector/config/push_routing")?,
        },
        push_queue: text("/registerConnector/config/push")?,
    })
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
    noted_state: Mutex<Option<ConnectorState>>,
}

impl OpenCtiSink {
    /// A sink over a registered connector, with the default retry policy.
    pub fn new(opencti: Arc<OpenCti>) -> Self {
        Self::with_retry_policy(opencti, RetryPolicy::default())
    }

    pub fn with_retry_policy(opencti: Arc<OpenCti>, policy: RetryPolicy) -> Self {
        let publisher = match opencti.queue_protocol {
            QueueProtocol::Amqp => Some(AmqpPublisher::new(
                opencti.registration.broker.clone(),
                opencti.registration.target.clone(),
                policy,
            )),
            QueueProtocol::Api => None,
        };
        OpenCtiSink {
            opencti,
            publisher,
            work: tokio::sync::Mutex::new(RunWork::default()),
            noted_state: Mutex::new(None),
        }
    }

    /// Records the state reached by the run, quoted in the work's closing message as the
    /// Python connector does (`storing state (last_run=..., ...)`).
    pub fn note_state(&self, state: &ConnectorState) {
        if let Ok(mut noted) = self.noted_state.lock() {
            *noted = Some(state.clone());
        }
    }

    /// The RabbitMQ publisher (`None` with `CONNECTOR_QUEUE_PROTOCOL=api`).
    pub fn publisher(&self) -> Option<&AmqpPublisher> {
        self.publisher.as_ref()
    }

    /// The work of the current run, if a push created one.
    pub async fn current_work(&self) -> Option<String> {
        self.work.lock().await.work_id.clone()
    }

    /// Closes the broker connection kept between pushes.
    pub async fn close(&self) {
        if let Some(publisher) = &self.publisher {
            publisher.close().await;
        }
    }

    async fn work_id(&self) -> Result<String, OpenCtiError> {
        let mut work = self.work.lock().await;
        if let Some(existing) = &work.work_id {
            return Ok(existing.clone());
        }
        let friendly_name = format!("{WORK_NAME_PREFIX}{}", python_isoformat(&Utc::now()));
        let created = self.opencti.work_add(&friendly_name).await?;
        info!(work_id = %created, "work created in OpenCTI");
        work.work_id = Some(created.clone());
        Ok(created)
    }

    /// Splits the bundle off the async threads; pycti raises "Nothing to import" when no
    /// object is left, whatever the queue protocol.
    async fn split(
        &self,
        delivery: Delivery<'_>,
        work_id: &str,
    ) -> Result<Vec<String>, OpenCtiError> {
        let bundle = delivery.bundle_json.to_string();
        let applicant_id = self.opencti.registration.applicant_id.clone();
        let work = work_id.to_string();
        let split_error = |reason: String| OpenCtiError::Split {
            event: delivery.event_uuid.to_string(),
            reason,
        };
        let messages = crate::cpu::run(move || queue_messages(&bundle, &applicant_id, &work))
            .await
            .map_err(|e| split_error(format!("splitter task failed: {e}")))?
            .map_err(split_error)?;
        if messages.is_empty() {
            return Err(split_error(
                "Nothing to import (no object OpenCTI supports)".into(),
            ));
        }
        Ok(messages)
    }

    async fn push_amqp(
        &self,
        publisher: &AmqpPublisher,
        messages: &[String],
        work_id: &str,
    ) -> Result<u64, OpenCtiError> {
        // pycti adds the expectations before publishing and only logs a failure.
        if let Err(error) = self.opencti.add_expectations(work_id, messages.len()).await {
            if error.graphql_name() == Some("WORK_NOT_ALIVE") {
                info!(work_id, "work no longer exists; publishing anyway");
            } else {
                warn!(work_id, error = %error, "cannot add expectations");
            }
        }
        let confirmed = publisher.publish_all(messages).await?;
        Ok(confirmed as u64)
    }
}

/// Splits a bundle as pycti's `OpenCTIStix2Splitter` and wraps each piece in the worker
/// envelope (`send_stix2_bundle` on the MISP path: no event version, no entity filter, no
/// update, no draft, split); one string per AMQP message, in publishing order.
fn queue_messages(
    bundle_json: &str,
    applicant_id: &str,
    work_id: &str,
) -> Result<Vec<String>, String> {
    let outcome = splitter::split_bundle_detailed(bundle_json, &splitter::SplitOptions::default())
        .map_err(|error| error.to_string())?;
    if !outcome.incompatible_ids.is_empty() {
        info!(
            dropped = outcome.incompatible_ids.len(),
            "objects not supported by OpenCTI left out of the push, as pycti does"
        );
    }
    let fields = splitter::EnvelopeFields {
        applicant_id: Some(applicant_id),
        entities_types: &[],
        update: false,
        draft_id: None,
        no_split: false,
        work_id: Some(work_id),
    };
    Ok(outcome
        .bundles
        .iter()
        .enumerate()
        .map(|(position, bundle)| {
            splitter::amqp_message_body(&fields, position + 1, &bundle.content)
        })
        .collect())
}

#[async_trait]
impl Sink for OpenCtiSink {
    fn name(&self) -> &'static str {
        "opencti"
    }

    async fn push(&self, delivery: Delivery<'_>) -> Result<Receipt, SinkError> {
        let work_id = self.work_id().await?;
        let split = self.split(delivery, &work_id).await?;
        let messages = match &self.publisher {
            Some(publisher) => self.push_amqp(publisher, &split, &work_id).await?,
            None => {
                // The api protocol sends the original bundle; the platform splits it.
                self.opencti
                    .stix_bundle_push(delivery.bundle_json, &work_id)
                    .await?;
                1
            }
        };
        Ok(Receipt {
            destination: work_id,
            messages,
        })
    }

    async fn finish_run(&self, summary: &RunSummary) -> Result<(), SinkError> {
        let work_id = self.work.lock().await.work_id.take();
        let noted = self
            .noted_state
            .lock()
            .ok()
            .and_then(|mut noted| noted.take());
        let Some(work_id) = work_id else {
            return Ok(());
        };
        let in_error = summary.failed > 0;
        let message = closing_message(summary, noted.as_ref());
        self.opencti
            .work_to_processed(&work_id, &message, in_error)
            .await?;
        Ok(())
    }
}

/// The work's closing message: the Python connector's sentence, with our counts.
pub fn closing_message(summary: &RunSummary, state: Option<&ConnectorState>) -> String {
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

    #[test]
    fn closing_message_counts_and_state() {
        let summary = RunSummary {
            pushed: 3,
            skipped: 1,
            failed: 0,
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

    #[test]
    fn broker_overrides_replace_the_advertised_connection() {
        let variables = [
            ("MQ_HOST", "mq.internal"),
            ("MQ_PORT", "5671"),
            ("MQ_USE_SSL", "true"),
            ("MQ_PASS", "pw"),
            ("MQ_VHOST", ""),
            (
                "MQ_USE_SSL_CA",
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ),
        ];
        let lookup = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        let overrides = BrokerOverrides::from_lookup(lookup).unwrap();
        let mut broker = BrokerEndpoint {
            host: "rabbitmq".into(),
            port: 5672,
            vhost: "/".into(),
            user: "guest".into(),
            pass: Secret::new("guest"),
            use_ssl: false,
            ca_pem: None,
        };
        overrides.apply(&mut broker).unwrap();
        assert_eq!(broker.host, "mq.internal");
        assert_eq!(broker.port, 5671);
        assert!(broker.use_ssl);
        assert_eq!(broker.vhost, "/", "empty values do not override");
        assert_eq!(broker.user, "guest");
        assert_eq!(broker.pass.expose(), "pw");
        assert!(
            broker
                .ca_pem
                .as_deref()
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );

        let bad_port =
            BrokerOverrides::from_lookup(|name| (name == "MQ_PORT").then(|| "99999".to_string()));
        assert!(bad_port.unwrap_err().to_string().contains("MQ_PORT"));
        let missing_ca = BrokerOverrides {
            ca: Some("/nonexistent/ca.pem".into()),
            ..BrokerOverrides::default()
        };
        let error = missing_ca.apply(&mut broker).unwrap_err().to_string();
        assert!(
            error.contains("MQ_USE_SSL_CA /nonexistent/ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn registration_is_read_from_the_transcript_answer() {
        let data = json!({"registerConnector": {
            "id": "c1", "connector_state": "", "jwks": "{}",
            "config": {"connection": {"host": "h", "vhost": "/", "use_ssl": true, "port": 5671,
                                      "user": "u", "pass": "p"},
                       "push": "push_c1", "push_routing": "push_routing_c1",
                       "push_exchange": "amqp.worker.exchange"},
            "connector_user_id": "user-1"}});
        let registration = parse_registration(&data).unwrap();
        assert_eq!(registration.connector_state.as_deref(), Some(""));
        assert_eq!(registration.applicant_id, "user-1");
        assert!(registration.broker.use_ssl);
        assert_eq!(registration.broker.port, 5671);
        assert_eq!(registration.target.routing_key, "push_routing_c1");
        assert!(!format!("{registration:?}").contains("\"p\""));
    }
}
