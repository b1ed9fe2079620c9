//! Protection of the platform: events too large to import, and how many events one run may
//! push (a backfill is spread over several runs). Pure: no I/O.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::filters::ImportFilters;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Guards {
    /// Events with more attributes than this (those inside objects included) are refused.
    pub max_attributes: Option<u64>,
    /// At most this many events are pushed per run; the others stay owed to the next runs.
    pub max_events_per_run: Option<u64>,
}

impl Guards {
    /// Why an event of `attributes` attributes is refused, if it is.
    pub(crate) fn refusal(&self, attributes: u64) -> Option<String> {
        let limit = self.max_attributes?;
        (attributes > limit).then(|| {
            format!(
                "{attributes} attributes, over MISP_FEED_MAX_ATTRIBUTES={limit} (raise it, or `misp-feed retry --event` once it is raised)"
            )
        })
    }
}

/// A short hash of what decides whether an event is left out (the filters and the size
/// limit): when it changes, events left out under the old settings are decided again.
pub(crate) fn decision_fingerprint(filters: &ImportFilters, guards: &Guards) -> String {
    let text = serde_json::to_string(&(filters, guards.max_attributes)).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// The attributes of a MISP event: its own and those of its objects.
pub(crate) fn attribute_count(event: &Value) -> u64 {
    let list_len =
        |value: Option<&Value>| value.and_then(Value::as_array).map_or(0, Vec::len) as u64;
    let in_objects: u64 = event
        .get("Object")
        .and_then(Value::as_array)
        .map_or(0, |objects| {
            objects
                .iter()
                .map(|object| list_len(object.get("Attribute")))
                .sum()
        });
    list_len(event.get("Attribute")) + in_objects
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attributes_inside_objects_count_and_the_limit_is_inclusive() {
        let event = json!({
            "Attribute": [{}, {}],
            "Object": [{"Attribute": [{}, {}, {}]}, {"name": "empty"}]
        });
        assert_eq!(attribute_count(&event), 5);
        let guards = Guards {
            max_attributes: Some(5),
            ..Guards::default()
        };
        assert_eq!(guards.refusal(5), None);
        let reason = guards.refusal(6).unwrap();
        assert!(
            reason.starts_with("6 attributes, over MISP_FEED_MAX_ATTRIBUTES=5"),
            "{reason}"
        );
        assert_eq!(Guards::default().refusal(1_000_000), None);
    }

    #[test]
    fn the_fingerprint_moves_with_the_size_limit_not_with_the_pacing() {
        let filters = ImportFilters::default();
        let base = decision_fingerprint(&filters, &Guards::default());
        let paced = Guards {
            max_events_per_run: Some(10),
            ..Guards::default()
        };
        assert_eq!(decision_fingerprint(&filters, &paced), base);
        let limited = Guards {
            max_attributes: Some(10),
            ..Guards::default()
        };
        assert_ne!(decision_fingerprint(&filters, &limited), base);
    }
}
