//! `guess_threats_from_tags` backed by the platform: the search the Python connector makes
//! with pycti's `stix_domain_object.list` (Intrusion-Set, Malware, Tool, Attack-Pattern whose
//! `name`, `x_mitre_id`, `aliases` or `x_opencti_aliases` equals the tag value), with the
//! answers cached for the run.
//!
//! The converter is synchronous and runs on a blocking thread; the GraphQL client is async.
//! [`OpenCtiThreatResolver::find_threats`] bridges the two by spawning the request on the
//! runtime it was created on and waiting for the answer on a standard channel. It must
//! therefore be called from a thread that is *not* driving that runtime (a
//! `tokio::task::spawn_blocking` closure, or any plain thread); calling it from inside an
//! async task would block a runtime worker while it waits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::runtime::Handle;
use tracing::warn;

use super::graphql::{ApiError, GraphqlClient, STIX_DOMAIN_OBJECTS, variables};
use crate::convert::ThreatResolver;

/// The entity types the Python connector searches, in its order.
pub const THREAT_TYPES: [&str; 4] = ["Intrusion-Set", "Malware", "Tool", "Attack-Pattern"];

/// Resolver with a per-run cache; create one per run with `OpenCti::threat_resolver()`.
pub struct OpenCtiThreatResolver {
    client: GraphqlClient,
    runtime: Handle,
    cache: Mutex<HashMap<String, Vec<Value>>>,
    failures: AtomicU64,
}

impl OpenCtiThreatResolver {
    pub fn new(client: GraphqlClient, runtime: Handle) -> Self {
        OpenCtiThreatResolver {
            client,
            runtime,
            cache: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// Searches failed so far (each returned no threat). The Python connector would have
    /// aborted the event; a caller can compare this before and after converting an event
    /// and treat the event as failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The search itself, async; answers are pycti-processed nodes (`id`, `standard_id`,
    /// `entity_type`, `parent_types`, `name`, and `x_mitre_id` for attack patterns).
    pub async fn search(client: &GraphqlClient, tag_value: &str) -> Result<Vec<Value>, ApiError> {
        let filters = json!({
            "mode": "and",
            "filters": [{
                "key": ["name", "x_mitre_id", "aliases", "x_opencti_aliases"],
                "values": [tag_value],
            }],
            "filterGroups": [],
        });
        let vars = variables([
            ("types", json!(THREAT_TYPES)),
            ("filters", filters),
            ("search", Value::Null),
            ("first", json!(100)),
            ("after", Value::Null),
            ("orderBy", Value::Null),
            ("orderMode", Value::Null),
        ]);
        let data = client
            .execute("StixDomainObjects", STIX_DOMAIN_OBJECTS, vars)
            .await?;
        let edges = data
            .pointer("/stixDomainObjects/edges")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::Decode {
                operation: "StixDomainObjects",
                reason: "missing stixDomainObjects.edges".into(),
            })?;
        Ok(edges
            .iter()
            .filter_map(|edge| edge.get("node"))
            .filter(|node| node.is_object())
            .cloned()
            .collect())
    }

    fn cached(&self, tag_value: &str) -> Option<Vec<Value>> {
        self.cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(tag_value).cloned())
    }

    fn remember(&self, tag_value: &str, threats: &[Value]) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tag_value.to_string(), threats.to_vec());
        }
    }
}

impl ThreatResolver for OpenCtiThreatResolver {
    fn find_threats(&self, tag_value: &str) -> Vec<Value> {
        if let Some(threats) = self.cached(tag_value) {
            return threats;
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let client = self.client.clone();
        let value = tag_value.to_string();
        self.runtime.spawn(async move {
            let answer = OpenCtiThreatResolver::search(&client, &value).await;
            let _ = sender.send(answer);
        });
        match receiver.recv() {
            Ok(Ok(threats)) => {
                self.remember(tag_value, &threats);
                threats
            }
            Ok(Err(error)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                warn!(tag = tag_value, error = %error, "threat search in OpenCTI failed");
                Vec::new()
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                warn!(
                    tag = tag_value,
                    "threat search in OpenCTI did not run: the runtime is shutting down"
                );
                Vec::new()
            }
        }
    }
}
