//! `guess_threats_from_tags` backed by the platform: the search the Python connector makes
//! with pycti's `stix_domain_object.list` (Intrusion-Set, Malware, Tool, Attack-Pattern whose
//! `name`, `x_mitre_id`, `aliases` or `x_opencti_aliases` equals the tag value), with the
//! answers cached for the run.
//!
//! The pipeline resolves the values `convert::threat_tag_values` lists for an event before
//! converting it, and hands the answers to the conversion: no CPU slot waits on the network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tracing::warn;

use super::graphql::{ApiError, GraphqlClient, STIX_DOMAIN_OBJECTS, variables};
use crate::convert::{ConvertOptions, MispEvent, ResolvedThreats, Threat, threat_tag_values};

/// The entity types the Python connector searches, in its order.
pub(crate) const THREAT_TYPES: [&str; 4] = ["Intrusion-Set", "Malware", "Tool", "Attack-Pattern"];

/// Resolver with a per-run cache (emptied by [`ThreatResolver::start_run`]).
pub struct ThreatResolver {
    client: GraphqlClient,
    /// Tag value -> the first match, or `None` when the platform has none.
    cache: Mutex<HashMap<String, Option<Threat>>>,
    failures: AtomicU64,
}

impl ThreatResolver {
    pub(crate) fn new(client: GraphqlClient) -> Self {
        ThreatResolver {
            client,
            cache: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// A run begins: forget what earlier runs found, so that threats created on the platform
    /// since are found.
    pub(crate) fn start_run(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Searches failed so far (each found no threat). The Python connector would have
    /// aborted the event; the event is converted without the threat instead.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The threats of `tag_values`, searched one after the other in the given order, as the
    /// Python connector searches them while converting. A value searched earlier in the run
    /// is answered from the cache. A failed search is logged and counted, finds nothing, and
    /// is tried again the next time the value comes up.
    pub async fn resolve(&self, tag_values: &[String]) -> ResolvedThreats {
        let mut resolved = ResolvedThreats::default();
        for tag_value in tag_values {
            let found = match self.cached(tag_value) {
                Some(found) => found,
                None => match Self::search(&self.client, tag_value).await {
                    Ok(nodes) => {
                        let first = nodes.first().and_then(threat_of_node);
                        self.remember(tag_value, &first);
                        first
                    }
                    Err(error) => {
                        self.failures.fetch_add(1, Ordering::Relaxed);
                        warn!(tag = %tag_value, error = %error, "threat search in OpenCTI failed");
                        None
                    }
                },
            };
            if let Some(threat) = found {
                resolved.insert(tag_value.clone(), threat);
            }
        }
        resolved
    }

    /// The threats the conversion of `event` will read, looked up before it starts: listing
    /// the event's tag values is a CPU job, while the searches wait on the platform outside
    /// any CPU slot. Returns the event with them; `Err` only when the listing job failed.
    pub(crate) async fn resolve_event(
        &self,
        event: MispEvent,
        options: &ConvertOptions,
    ) -> Result<(MispEvent, ResolvedThreats), String> {
        if !options.guess_threats_from_tags {
            return Ok((event, ResolvedThreats::default()));
        }
        let listing_options = options.clone();
        let (event, tag_values) = crate::cpu::run(move || {
            let tag_values = threat_tag_values(&event, &listing_options);
            (event, tag_values)
        })
        .await?;
        Ok((event, self.resolve(&tag_values).await))
    }

    /// The search itself, async; answers are pycti-processed nodes (`id`, `standard_id`,
    /// `entity_type`, `parent_types`, `name`, and `x_mitre_id` for attack patterns).
    pub(crate) async fn search(
        client: &GraphqlClient,
        tag_value: &str,
    ) -> Result<Vec<Value>, ApiError> {
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

    fn cached(&self, tag_value: &str) -> Option<Option<Threat>> {
        self.cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(tag_value).cloned())
    }

    fn remember(&self, tag_value: &str, threat: &Option<Threat>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(tag_value.to_string(), threat.clone());
        }
    }
}

/// The threat a search answer names: its `name` and `entity_type` (empty when missing, which
/// adds no entity). A node without a name is no threat, as for the Python connector.
fn threat_of_node(node: &Value) -> Option<Threat> {
    let name = node.get("name").and_then(Value::as_str)?;
    let entity_type = node
        .get("entity_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(Threat {
        entity_type: entity_type.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_a_threat_by_its_name_and_entity_type() {
        let node = json!({"id": "i1", "entity_type": "Malware", "name": "Emotet"});
        assert_eq!(
            threat_of_node(&node),
            Some(Threat {
                entity_type: "Malware".into(),
                name: "Emotet".into()
            })
        );
        assert_eq!(threat_of_node(&json!({"entity_type": "Tool"})), None);
        let untyped = threat_of_node(&json!({"name": "X"})).unwrap();
        assert_eq!(untyped.entity_type, "");
    }
}
