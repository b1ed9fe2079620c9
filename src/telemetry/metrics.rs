//! The connector's metrics in a `prometheus-client` registry, rendered in the Prometheus text
//! format (0.0.4), which is what pycti's `prometheus_client` server answers a plain scrape with.
//!
//! pycti's `OpenCTIMetricHandler` names (`bundles_sent_total`, `records_sent_total`,
//! `runs_total`, `ping_api_total`, `ping_api_errors_total`, `errors_total`,
//! `client_errors_total`, and the `state` enum) come first, then ours (`misp_feed_*`). Every name
//! takes pycti's `CONNECTOR_METRICS_NAMESPACE` / `_SUBSYSTEM` prefix (`ns_sub_name`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ledger::EventStatus;

/// `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the push-latency histogram buckets.
pub const PUSH_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `outcome` label values of `misp_feed_event_outcomes_total`: one per kind of decision a
/// run takes about an event (the categories of the run report).
pub const EVENT_OUTCOMES: [&str; 4] = ["pushed", "unchanged", "skipped", "failed"];

/// The `source` label values of `misp_feed_fetch_errors_total` a fresh registry shows at zero,
/// so that a rate over them exists before the first failure.
const FETCH_SOURCES: [&str; 2] = ["url", "s3"];

/// pycti's `state` metric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    Idle,
    Running,
    Stopped,
}

impl ConnectorState {
    /// In pycti's order; the first is the state of a fresh registry.
    pub(crate) const ALL: [ConnectorState; 3] = [
        ConnectorState::Idle,
        ConnectorState::Running,
        ConnectorState::Stopped,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ConnectorState::Idle => "idle",
            ConnectorState::Running => "running",
            ConnectorState::Stopped => "stopped",
        }
    }
}

/// pycti's `state`, a Python `prometheus_client.Enum`: one gauge sample per state, 1 for the
/// current one. Python names the label after the metric's full name (`ns_sub_state`), so the
/// label key depends on the prefix, which a derived label set cannot express.
#[derive(Debug, Clone)]
struct StateSet {
    label: Arc<str>,
    current: Arc<AtomicU8>,
}

impl StateSet {
    fn get(&self) -> ConnectorState {
        let index = usize::from(self.current.load(Ordering::Relaxed));
        ConnectorState::ALL
            .get(index)
            .copied()
            .unwrap_or(ConnectorState::Idle)
    }

    fn set(&self, state: ConnectorState) {
        let index = ConnectorState::ALL
            .iter()
            .position(|candidate| *candidate == state)
            .unwrap_or(0);
        self.current.store(index as u8, Ordering::Relaxed);
    }
}

impl EncodeMetric for StateSet {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let current = self.get();
        for state in ConnectorState::ALL {
            let value = i64::from(state == current);
            encoder
                .encode_family(&[(&*self.label, state.name())])?
                .encode_gauge(&value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The connector's metrics. Every update is a lock-free atomic, except the labelled families
/// (a short read lock, a write lock the first time a label value is seen).
pub struct Metrics {
    registry: Registry,
    bundles_sent: Counter,
    records_sent: Counter,
    runs: Counter,
    ping_api: Counter,
    ping_api_errors: Counter,
    errors: Counter,
    client_errors: Counter,
    warninglisted: Counter,
    memory_budget_waits: Counter,
    state: StateSet,
    events_by_status: Family<StatusLabel, Gauge>,
    /// The statuses of the last snapshot, so that a status gone from the ledger leaves too.
    statuses_shown: Mutex<BTreeSet<String>>,
    event_outcomes: Family<OutcomeLabel, Counter>,
    fetch_errors: Family<SourceLabel, Counter>,
    last_run_duration: FloatGauge,
    last_run_end: FloatGauge,
    push_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Whether `prefix` can start a metric name and, as pycti's `state` label key, a label name
/// (letters, digits and `_`, not starting with a digit).
fn is_valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    chars
        .next()
        .is_none_or(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// pycti's prefix: the non-empty parts of namespace and subsystem joined by `_`.
fn prefix_of(namespace: &str, subsystem: &str) -> String {
    [namespace, subsystem]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// `CONNECTOR_METRICS_NAMESPACE` / `_SUBSYSTEM` that cannot make a Prometheus name (pycti fails
/// at start-up on them too): the error names both settings and the value.
pub(crate) fn check_prefix(namespace: &str, subsystem: &str) -> Result<(), BadMetricsPrefix> {
    let prefix = prefix_of(namespace, subsystem);
    if is_valid_prefix(&prefix) {
        Ok(())
    } else {
        Err(BadMetricsPrefix(prefix))
    }
}

/// A metrics prefix (namespace and subsystem joined) that is not a Prometheus name prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "CONNECTOR_METRICS_NAMESPACE / CONNECTOR_METRICS_SUBSYSTEM: {0:?} is not a Prometheus name \
     prefix (letters, digits and _, not starting with a digit)"
)]
pub(crate) struct BadMetricsPrefix(String);

impl Metrics {
    pub fn new() -> Self {
        Metrics::with_namespace("", "")
    }

    /// pycti's `CONNECTOR_METRICS_NAMESPACE` / `_SUBSYSTEM` prefix every name (`ns_sub_name`).
    pub fn with_namespace(namespace: &str, subsystem: &str) -> Self {
        let prefix = prefix_of(namespace, subsystem);
        let registry = if prefix.is_empty() {
            Registry::default()
        } else {
            Registry::with_prefix(prefix.as_str())
        };
        let state_label: Arc<str> = if prefix.is_empty() {
            Arc::from("state")
        } else {
            Arc::from(format!("{prefix}_state"))
        };
        let mut metrics = Metrics {
            registry,
            bundles_sent: Counter::default(),
            records_sent: Counter::default(),
            runs: Counter::default(),
            ping_api: Counter::default(),
            ping_api_errors: Counter::default(),
            errors: Counter::default(),
            client_errors: Counter::default(),
            warninglisted: Counter::default(),
            memory_budget_waits: Counter::default(),
            state: StateSet {
                label: state_label,
                current: Arc::default(),
            },
            events_by_status: Family::default(),
            statuses_shown: Mutex::default(),
            event_outcomes: Family::default(),
            fetch_errors: Family::default(),
            last_run_duration: FloatGauge::default(),
            last_run_end: FloatGauge::default(),
            push_latency: Histogram::new(PUSH_LATENCY_BUCKETS),
        };
        let registry = &mut metrics.registry;
        // Counters are registered without `_total`: the encoder adds it, as Python's does.
        let counters = [
            (
                "bundles_sent",
                "Number of bundles sent",
                &metrics.bundles_sent,
            ),
            (
                "records_sent",
                "Number of records (objects per bundle) sent",
                &metrics.records_sent,
            ),
            ("runs", "Number of runs", &metrics.runs),
            ("ping_api", "Number of pings to the API", &metrics.ping_api),
            (
                "ping_api_errors",
                "Number of errors when pinging the API",
                &metrics.ping_api_errors,
            ),
            ("errors", "Number of errors", &metrics.errors),
            (
                "client_errors",
                "Number of client errors",
                &metrics.client_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register("state", "State of connector", metrics.state.clone());
        registry.register(
            "misp_feed_events",
            "Events in the ledger by status",
            metrics.events_by_status.clone(),
        );
        registry.register(
            "misp_feed_event_outcomes",
            "Event decisions taken by runs, by outcome",
            metrics.event_outcomes.clone(),
        );
        registry.register(
            "misp_feed_warninglisted_attributes",
            "Attributes that made no indicator because their value is on a warninglist",
            metrics.warninglisted.clone(),
        );
        registry.register(
            "misp_feed_memory_budget_waits",
            "Events that waited for their share of the memory budget before being converted",
            metrics.memory_budget_waits.clone(),
        );
        registry.register(
            "misp_feed_fetch_errors",
            "Failed feed fetches by source",
            metrics.fetch_errors.clone(),
        );
        registry.register(
            "misp_feed_last_run_duration_seconds",
            "Duration of the last finished run",
            metrics.last_run_duration.clone(),
        );
        registry.register(
            "misp_feed_last_run_end_timestamp_seconds",
            "End of the last finished run, seconds since the Unix epoch",
            metrics.last_run_end.clone(),
        );
        registry.register(
            "misp_feed_push_duration_seconds",
            "Time from handing a bundle to the sink to its confirmation",
            metrics.push_latency.clone(),
        );

        // Known label values start at zero: a family without samples would not be exposed.
        metrics.set_events_by_status(EventStatus::ALL.iter().map(|status| (status.as_str(), 0)));
        for outcome in EVENT_OUTCOMES {
            let _ = metrics.event_outcomes.get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            });
        }
        for source in FETCH_SOURCES {
            let _ = metrics.fetch_errors.get_or_create(&SourceLabel {
                source: source.to_string(),
            });
        }
        metrics
    }

    /// One bundle handed to OpenCTI (or the directory) and confirmed.
    pub fn inc_bundles_sent(&self) {
        self.bundles_sent.inc();
    }
    /// STIX objects in the bundles sent.
    pub fn add_records_sent(&self, objects: u64) {
        self.records_sent.inc_by(objects);
    }
    pub fn inc_runs(&self) {
        self.runs.inc();
    }
    pub fn inc_ping_api(&self) {
        self.ping_api.inc();
    }
    pub fn inc_ping_api_errors(&self) {
        self.ping_api_errors.inc();
    }
    pub fn inc_errors(&self) {
        self.errors.inc();
    }
    pub fn add_warninglisted(&self, attributes: u64) {
        self.warninglisted.inc_by(attributes);
    }
    /// An event waited for its share of the memory budget.
    pub fn inc_memory_budget_waits(&self) {
        self.memory_budget_waits.inc();
    }
    pub fn inc_client_errors(&self) {
        self.client_errors.inc();
    }
    pub fn set_state(&self, state: ConnectorState) {
        self.state.set(state);
    }
    pub fn state(&self) -> ConnectorState {
        self.state.get()
    }

    /// Replaces the ledger's event counts per status (`pushed`, `failed`, `gave_up` ...):
    /// a status missing from `counts` is no longer shown.
    pub fn set_events_by_status<'a>(&self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut shown = self
            .statuses_shown
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut now_shown = BTreeSet::new();
        for (status, count) in counts {
            let label = StatusLabel {
                status: status.to_string(),
            };
            self.events_by_status
                .get_or_create(&label)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            now_shown.insert(label.status);
        }
        for gone in shown.difference(&now_shown) {
            self.events_by_status.remove(&StatusLabel {
                status: gone.clone(),
            });
        }
        *shown = now_shown;
    }

    /// One event decision of a run, one of [`EVENT_OUTCOMES`].
    pub fn inc_event_outcome(&self, outcome: &str) {
        self.event_outcomes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A failed fetch from `source` (a short name such as `url` or `s3`, or a host; never a URL
    /// carrying credentials).
    pub fn inc_fetch_errors(&self, source: &str) {
        self.fetch_errors
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc();
    }

    /// A run ended after `duration`, at `ended_at` (seconds since the Unix epoch).
    pub fn record_run(&self, duration: Duration, ended_at: f64) {
        self.last_run_duration.set(duration.as_secs_f64());
        self.last_run_end.set(ended_at);
    }

    /// Time from handing a bundle to the sink to its confirmation.
    pub fn observe_push_latency(&self, latency: Duration) {
        self.push_latency.observe(latency.as_secs_f64());
    }

    /// The Prometheus text exposition (version 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a `String` cannot fail, and no metric here fails to encode.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

static GLOBAL_METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Creates the process-wide registry with pycti's name prefixes; the first call wins, so call
/// it at start-up before anything records a metric.
pub fn init_metrics(namespace: &str, subsystem: &str) -> Arc<Metrics> {
    Arc::clone(
        GLOBAL_METRICS.get_or_init(|| Arc::new(Metrics::with_namespace(namespace, subsystem))),
    )
}

/// The process-wide registry the pipeline and sinks update and the endpoint serves.
pub fn metrics() -> Arc<Metrics> {
    init_metrics("", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_pycti_accepts_are_valid_and_others_are_named_in_the_error() {
        assert!(check_prefix("", "").is_ok());
        assert!(check_prefix("opencti", "").is_ok());
        assert!(check_prefix("", "misp_feed").is_ok());
        assert!(check_prefix("_x", "y2").is_ok());
        for (namespace, subsystem) in [("open-cti", ""), ("", "9misp"), ("a:b", ""), ("é", "")] {
            let error = check_prefix(namespace, subsystem).unwrap_err().to_string();
            assert!(
                error.contains("CONNECTOR_METRICS_NAMESPACE") && error.contains(namespace),
                "{error}"
            );
        }
    }

    #[test]
    fn state_label_is_the_full_metric_name_as_in_python_enum() {
        let text = Metrics::with_namespace("opencti", "misp").render();
        assert!(
            text.contains("\nopencti_misp_state{opencti_misp_state=\"idle\"} 1\n"),
            "{text}"
        );
        let text = Metrics::new().render();
        assert!(text.contains("\nstate{state=\"running\"} 0\n"), "{text}");
    }
}
