//! `guess_threats_from_tags`, the pure half: which tag values the conversion of an event
//! looks up, and the answers it reads. The platform is asked before the conversion starts
//! (`opencti::ThreatResolver`), so converting never waits on the network.

use std::collections::{HashMap, HashSet};

use super::attribute::is_converted;
use super::input::{Tag, read_event};
use super::{ConvertOptions, MispEvent};

/// The first entity the platform's search returned for a tag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    /// OpenCTI's entity type. `Intrusion-Set`, `Malware`, `Tool` and `Attack-Pattern` add
    /// an entity to the bundle; any other type only claims the name, as in the Python
    /// connector.
    pub entity_type: String,
    pub name: String,
}

/// Tag value -> threat found: what the conversion reads instead of asking the platform.
/// A value without an entry found nothing; the empty map (offline, or
/// `guess_threats_from_tags` off) finds nothing at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedThreats {
    by_tag_value: HashMap<String, Threat>,
}

impl ResolvedThreats {
    pub(crate) fn insert(&mut self, tag_value: impl Into<String>, threat: Threat) {
        self.by_tag_value.insert(tag_value.into(), threat);
    }

    pub fn get(&self, tag_value: &str) -> Option<&Threat> {
        self.by_tag_value.get(tag_value)
    }

    pub fn len(&self) -> usize {
        self.by_tag_value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tag_value.is_empty()
    }
}

/// How the conversion reads the threat of a tag value. [`ResolvedThreats`] is the one
/// implementation outside tests; a test's can record the values the conversion asks for.
pub(crate) trait ThreatLookup {
    fn threat(&self, tag_value: &str) -> Option<&Threat>;
}

impl ThreatLookup for ResolvedThreats {
    fn threat(&self, tag_value: &str) -> Option<&Threat> {
        self.get(tag_value)
    }
}

/// The value the connector searches the platform for: what follows the tag's first `=`
/// (the whole name without one), then what follows its first `:`, quotes removed.
pub(crate) fn tag_search_value(tag_name: &str) -> String {
    let after = |s: &str, separator: char| -> String {
        let parts: Vec<&str> = s.split(separator).collect();
        if parts.len() == 1 {
            parts[0].to_string()
        } else {
            parts[1].replace('"', "")
        }
    };
    after(&after(tag_name, '='), ':')
}

/// Every tag value [`super::convert_event`] looks up for `event` with `options`, once each,
/// in the order it first looks them up: the event's tags, then the tags of each attribute
/// it converts (the event's attributes, then the objects'). Empty when
/// `guess_threats_from_tags` is off, or for an event the conversion rejects.
pub(crate) fn threat_tag_values(event: &MispEvent, options: &ConvertOptions) -> Vec<String> {
    if !options.guess_threats_from_tags {
        return Vec::new();
    }
    let Ok(view) = read_event(&event.event) else {
        return Vec::new();
    };
    let kept_objects = view
        .objects
        .iter()
        .filter(|object| options.keeps(object.deleted));
    let attributes = view
        .attributes
        .iter()
        .chain(kept_objects.flat_map(|object| &object.attributes))
        .filter(|attribute| is_converted(attribute, options))
        .filter_map(|attribute| attribute.tags.as_deref());
    let tag_lists = view.tags.as_deref().into_iter().chain(attributes);
    let mut seen = HashSet::new();
    tag_lists
        .flat_map(|tags: &[Tag<'_>]| tags.iter())
        .map(|tag| tag_search_value(tag.name))
        .filter(|value| seen.insert(value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;
    use crate::convert::{event, parse_event_file};

    /// Finds nothing and remembers what the conversion asked for.
    #[derive(Default)]
    struct Recorder {
        asked: RefCell<Vec<String>>,
    }

    impl ThreatLookup for Recorder {
        fn threat(&self, tag_value: &str) -> Option<&Threat> {
            self.asked.borrow_mut().push(tag_value.to_string());
            None
        }
    }

    /// The distinct values the conversion itself asks for, in order.
    fn asked_by_conversion(event: &MispEvent, options: &ConvertOptions) -> Vec<String> {
        let recorder = Recorder::default();
        let view = read_event(&event.event).unwrap();
        let mut written = crate::convert::written::ObjectText::default();
        let now = "2024-01-01T00:00:00.000Z";
        event::convert(&view, options, &recorder, None, now, &mut written).unwrap();
        let mut seen = HashSet::new();
        let asked = recorder.asked.into_inner();
        asked
            .into_iter()
            .filter(|value| seen.insert(value.clone()))
            .collect()
    }

    fn option_sets() -> Vec<ConvertOptions> {
        let guess = ConvertOptions {
            guess_threats_from_tags: true,
            ..ConvertOptions::default()
        };
        let everything = ConvertOptions {
            create_indicators: true,
            create_observables: true,
            create_object_observables: true,
            import_unsupported_observables_as_text: true,
            ..guess.clone()
        };
        let compat = ConvertOptions {
            reference_compat: true,
            ..everything.clone()
        };
        vec![guess, everything, compat]
    }

    #[test]
    fn lists_exactly_what_the_conversion_of_each_fixture_asks_for() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/events");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let mut asked_somewhere = false;
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let events = parse_event_file(&bytes, &file.display().to_string()).unwrap();
            for options in option_sets() {
                let listed = threat_tag_values(&events[0], &options);
                let asked = asked_by_conversion(&events[0], &options);
                assert_eq!(listed, asked, "{}", file.display());
                asked_somewhere |= !asked.is_empty();
            }
        }
        assert!(asked_somewhere, "the fixtures carry tags");
    }

    fn tagged(names: &[&str]) -> Value {
        Value::Array(names.iter().map(|name| json!({"name": name})).collect())
    }

    #[test]
    fn skips_the_tags_of_attributes_the_conversion_leaves_out() {
        let event_json = json!({"Event": {
            "uuid": "5b646415-7b48-40d5-86b4-c0070acd0835", "info": "t", "date": "2024-01-01",
            "timestamp": "1700000000",
            "Tag": tagged(&["misp-galaxy:threat-actor=\"Sofacy\"", "tlp:green"]),
            "Attribute": [
                {"type": "link", "category": "External analysis", "value": "https://x.example",
                 "uuid": "a1", "Tag": tagged(&["from-link"])},
                {"type": "unknown-type", "category": "Other", "value": "v", "uuid": "a2",
                 "Tag": tagged(&["from-unsupported"])},
                {"type": "domain", "category": "Network activity", "value": "evil.example",
                 "uuid": "a3", "Tag": tagged(&["tool:\"Mimikatz\"", "tlp:green"])}
            ],
            "Object": [{"name": "file", "uuid": "o1", "Attribute": [
                {"type": "md5", "category": "Payload delivery",
                 "value": "d41d8cd98f00b204e9800998ecf8427e", "uuid": "a4",
                 "Tag": tagged(&["malware=\"Emotet\""])}
            ]}]
        }});
        let bytes = serde_json::to_vec(&event_json).unwrap();
        let events = parse_event_file(&bytes, "inline.json").unwrap();
        let mut options = ConvertOptions {
            guess_threats_from_tags: true,
            ..ConvertOptions::default()
        };
        let listed = threat_tag_values(&events[0], &options);
        assert_eq!(listed, ["Sofacy", "green", "Mimikatz", "Emotet"]);
        assert_eq!(listed, asked_by_conversion(&events[0], &options));

        options.import_unsupported_observables_as_text = true;
        let listed = threat_tag_values(&events[0], &options);
        assert_eq!(
            listed,
            ["Sofacy", "green", "from-unsupported", "Mimikatz", "Emotet"]
        );
        assert_eq!(listed, asked_by_conversion(&events[0], &options));

        options.guess_threats_from_tags = false;
        assert!(threat_tag_values(&events[0], &options).is_empty());
        assert!(asked_by_conversion(&events[0], &options).is_empty());
    }

    #[test]
    fn search_value_is_the_connectors() {
        assert_eq!(
            tag_search_value("misp-galaxy:threat-actor=\"Sofacy\""),
            "Sofacy"
        );
        assert_eq!(tag_search_value("tool:\"Mimikatz\""), "Mimikatz");
        assert_eq!(tag_search_value("APT28"), "APT28");
        assert_eq!(tag_search_value("a:b:c"), "b");
    }
}
