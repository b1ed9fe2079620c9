//! The delta push: of an event's new bundle, only what the platform does not hold yet.
//!
//! Each object's stable content is hashed; the ledger keeps the hashes of what the platform
//! confirmed. An updated event then sends the objects that are new or whose stable content
//! changed, plus the containers (objects with `object_refs`: the report) that must carry the
//! event's new state in full. References to objects not sent are normal for OpenCTI: it holds
//! them, and pycti's splitter counts no dependency for a reference the bundle cannot resolve.
//!
//! Stable content leaves out the fields the conversion fills from the clock (stix2 stamps
//! `created`/`modified` on objects the event gives no time for). Which fields those are is
//! [`VOLATILE`]; `tests::the_clock_changes_exactly_the_volatile_fields` keeps it exact.

use std::collections::HashMap;

pub(crate) use crate::convert::ObjectHash;
use crate::convert::StixBundle;
pub use crate::convert::VOLATILE;

/// What a push of an event sends, and what the ledger records once it is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delta {
    /// The positions, in the bundle, of the objects to send, in bundle order.
    pub(crate) send: Vec<usize>,
    /// Every object of the bundle with its stable hash: what the platform holds once the push
    /// is confirmed.
    pub(crate) hashes: Vec<(String, ObjectHash)>,
    /// Objects the previous push had and this bundle has not.
    pub(crate) removed: Vec<String>,
    /// The whole bundle is sent (no previous hashes, or the delta push is off).
    pub(crate) full: bool,
}

impl Delta {
    pub(crate) fn sent(&self) -> usize {
        self.send.len()
    }

    pub(crate) fn total(&self) -> usize {
        self.hashes.len()
    }
}

/// Chooses what to send of `bundle`, given the hashes the platform confirmed for the
/// event's previous push (`None`: none known, or the delta push is off: everything). The
/// hashes were computed as the objects were written (`convert/written.rs`).
pub(crate) fn select(bundle: &StixBundle, previous: Option<&HashMap<String, ObjectHash>>) -> Delta {
    let mut hashes: Vec<(String, ObjectHash)> = Vec::with_capacity(bundle.len());
    let mut send = Vec::new();
    for (position, object) in bundle.summaries().enumerate() {
        let id = object.id.into_owned();
        // Whether an object must travel with every push of its event: it lists others.
        let changed = previous.is_none_or(|previous| {
            object.container || previous.get(id.as_str()) != Some(&object.hash)
        });
        if changed {
            send.push(position);
        }
        hashes.push((id, object.hash));
    }
    let Some(previous) = previous else {
        return Delta {
            send,
            hashes,
            removed: Vec::new(),
            full: true,
        };
    };
    let current: std::collections::HashSet<&str> =
        hashes.iter().map(|(id, _)| id.as_str()).collect();
    let removed = previous
        .keys()
        .filter(|id| !current.contains(id.as_str()))
        .cloned()
        .collect();
    Delta {
        send,
        hashes,
        removed,
        full: false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::convert::{ConvertOptions, ResolvedThreats, convert_event_at, parse_event_file};
    use serde_json::{Value, json};

    fn fixture_events() -> Vec<crate::convert::MispEvent> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp");
        let mut events = Vec::new();
        for dir in ["events", "feed"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let is_event = path.extension().is_some_and(|e| e == "json")
                    && path.file_name().is_some_and(|n| n != "manifest.json");
                if !is_event {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                events.extend(parse_event_file(&bytes, "fixture").unwrap());
            }
        }
        // Tags that make the objects the fixtures lack: a tool, a country, a statement marking.
        let synthetic = json!({"Event": {
            "uuid": "6a000000-0000-4000-8000-0000000000aa", "info": "clock", "date": "2024-01-02",
            "timestamp": "1704153600", "threat_level_id": "1", "analysis": "2",
            "Orgc": {"name": "CIRCL"},
            "Tag": [{"name": "marking:PAP=GREEN"}, {"name": "tlp:amber+strict"},
                    {"name": "misp-galaxy:mitre-tool=\"Mimikatz - S0002\""}],
            "Galaxy": [{"name": "Country", "type": "country", "namespace": "misp",
                        "GalaxyCluster": [{"value": "france", "description": "France",
                                           "meta": {"ISO": "FR"}}]}],
            "Attribute": [{"uuid": "6a000000-0000-4000-8000-0000000000ab", "type": "domain",
                           "category": "Network activity", "value": "example.org",
                           "to_ids": true, "timestamp": "1704153600"}]
        }});
        events.extend(
            parse_event_file(&serde_json::to_vec(&synthetic).unwrap(), "synthetic").unwrap(),
        );
        events
    }

    fn profiles() -> Vec<ConvertOptions> {
        let mut profiles = Vec::new();
        for compat in [false, true] {
            for full in [false, true] {
                let mut options = ConvertOptions {
                    reference_compat: compat,
                    ..ConvertOptions::default()
                };
                if full {
                    options.create_indicators = true;
                    options.create_observables = true;
                    options.create_object_observables = true;
                    options.markings_from_tags = true;
                    options.author_from_tags = true;
                    options.import_unsupported_observables_as_text = true;
                    options.import_with_attachments = true;
                }
                profiles.push(options);
            }
        }
        profiles
    }

    #[test]
    fn the_clock_changes_exactly_the_volatile_fields() {
        let early = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let late = chrono::DateTime::from_timestamp(1_800_000_123, 456_000_000).unwrap();
        let mut changed = BTreeSet::new();
        for event in fixture_events() {
            for options in profiles() {
                let threats = ResolvedThreats::default();
                let a = convert_event_at(&event, &options, &threats, None, early).unwrap();
                let b = convert_event_at(&event, &options, &threats, None, late).unwrap();
                assert_eq!(a.len(), b.len());
                let hashes_a: Vec<ObjectHash> = a.summaries().map(|o| o.hash).collect();
                let hashes_b: Vec<ObjectHash> = b.summaries().map(|o| o.hash).collect();
                let (a, b) = (a.objects(), b.objects());
                for (index, (x, y)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(x["id"], y["id"]);
                    let stix_type = x["type"].as_str().unwrap();
                    for (key, value) in x.as_object().unwrap() {
                        if y.get(key) != Some(value) {
                            changed.insert((stix_type.to_string(), key.clone()));
                        }
                    }
                    assert_eq!(hashes_a[index], hashes_b[index], "{stix_type} {}", x["id"]);
                }
            }
        }
        let declared: BTreeSet<(String, String)> = VOLATILE
            .iter()
            .flat_map(|(t, fields)| fields.iter().map(|f| (t.to_string(), f.to_string())))
            .collect();
        assert_eq!(
            changed, declared,
            "the clock-filled fields are not the declared ones"
        );
    }

    fn object(id: &str, name: &str) -> Value {
        json!({"type": "indicator", "id": id, "name": name, "created": "2024-01-01T00:00:00Z"})
    }

    #[test]
    fn an_update_sends_what_changed_and_the_containers() {
        let first = vec![
            object("indicator--a", "a"),
            object("indicator--b", "b"),
            json!({"type": "report", "id": "report--r", "object_refs": ["indicator--a", "indicator--b"]}),
        ];
        let pushed = select(&StixBundle::of_values(&first), None);
        assert!(pushed.full);
        assert_eq!(pushed.send, vec![0, 1, 2]);
        let previous: HashMap<String, ObjectHash> = pushed.hashes.into_iter().collect();
        let second = vec![
            object("indicator--a", "a"),
            object("indicator--b", "b changed"),
            object("indicator--c", "c"),
            json!({"type": "report", "id": "report--r",
                   "object_refs": ["indicator--a", "indicator--b", "indicator--c"]}),
        ];
        let delta = select(&StixBundle::of_values(&second), Some(&previous));
        assert!(!delta.full);
        assert_eq!(delta.send, vec![1, 2, 3]);
        assert_eq!((delta.sent(), delta.total()), (3, 4));
        let third = vec![object("indicator--a", "a")];
        let shrunk = select(&StixBundle::of_values(&third), Some(&previous));
        let mut removed = shrunk.removed.clone();
        removed.sort();
        assert_eq!(removed, vec!["indicator--b", "report--r"]);
    }

    /// The hash an earlier version recorded: the first 8 bytes of a SHA-256 over each stable
    /// member as `key \0 compact-json \0`.
    fn earlier_version_hash(object: &Value) -> ObjectHash {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        for (key, value) in object.as_object().unwrap() {
            if key != "created" {
                digest.update(key.as_bytes());
                digest.update([0]);
                digest.update(serde_json::to_string(value).unwrap().as_bytes());
                digest.update([0]);
            }
        }
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&digest.finalize()[..8]);
        hash
    }

    #[test]
    fn hashes_an_earlier_version_recorded_send_every_object_and_still_name_removals() {
        let pushed = [object("indicator--a", "a"), object("indicator--b", "b")];
        let previous: HashMap<String, ObjectHash> = pushed
            .iter()
            .map(|o| {
                (
                    o["id"].as_str().unwrap().to_owned(),
                    earlier_version_hash(o),
                )
            })
            .collect();
        // The same content as pushed, less one object: nothing matches the old hashes, so
        // the update travels whole, and the ids still say what it removed.
        let update = StixBundle::of_values(&[object("indicator--a", "a")]);
        let delta = select(&update, Some(&previous));
        assert_eq!(delta.send, vec![0]);
        assert_eq!(delta.removed, vec!["indicator--b"]);
        // Once recorded, the new hashes make the next identical update send nothing.
        let recorded: HashMap<String, ObjectHash> = delta.hashes.into_iter().collect();
        assert!(select(&update, Some(&recorded)).send.is_empty());
    }

    #[test]
    fn a_relationship_stamped_at_another_time_is_the_same_object() {
        let at = |time: &str| {
            json!({"type": "relationship", "id": "relationship--x", "created": time,
                   "modified": time, "relationship_type": "indicates"})
        };
        let other = json!({"type": "relationship", "id": "relationship--x",
                           "relationship_type": "based-on"});
        let bundle = StixBundle::of_values(&[
            at("2024-01-01T00:00:00.000Z"),
            at("2025-06-01T12:00:00.000Z"),
            at("x"),
            other,
        ]);
        let hashes: Vec<ObjectHash> = bundle.summaries().map(|o| o.hash).collect();
        assert_eq!(hashes[0], hashes[1]);
        assert_ne!(hashes[2], hashes[3]);
    }
}
