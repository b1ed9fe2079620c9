//! Property tests: arbitrary and mutated events never make the converter panic; bad input
//! is an error naming a JSON path.

use std::fs;
use std::path::Path;
use std::sync::LazyLock;

use misp_feed::convert::normalize::normalize_objects;
use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Strings built from the characters the connector's rules split and match on.
fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("|".to_string()),
            Just("=\"".to_string()),
            Just(":".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("\\".to_string()),
            Just(" - G".to_string()),
            Just(" - S".to_string()),
            Just("APT ".to_string()),
            Just("misp-galaxy:threat-actor".to_string()),
            Just("marking".to_string()),
            Just("creator".to_string()),
            Just("tlp:amber+strict".to_string()),
            Just("1.2.3.4".to_string()),
            Just("d41d8cd98f00b204e9800998ecf8427e".to_string()),
            Just("@[attribute](5c000000-0000-4000-8000-000000000001)".to_string()),
            Just("é条\u{1c}\n".to_string()),
            "[a-z0-9 ]{0,6}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

fn number_or_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        (-100_000_000_000i64..100_000_000_000).prop_map(|n| json!(n.to_string())),
        tricky_string().prop_map(Value::String),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

const TYPES: &[&str] = &[
    "ip-dst",
    "ip-src|port",
    "domain|ip",
    "filename|md5",
    "filename|sha256",
    "md5",
    "sha1",
    "sha256",
    "yara",
    "sigma",
    "url",
    "link",
    "hostname|port",
    "full-name",
    "github-username",
    "regkey",
    "email-subject",
    "attachment",
    "btc",
    "windows-scheduled-task",
    "user-agent",
    "text",
];

fn tags() -> impl Strategy<Value = Value> {
    prop::collection::vec(tricky_string().prop_map(|name| json!({"name": name})), 0..4)
        .prop_map(Value::Array)
}

fn attribute() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(TYPES),
        tricky_string(),
        prop::sample::select(&["External analysis", "Network activity", ""][..]),
        tricky_string(),
        prop_oneof![Just(json!(true)), Just(json!(false)), Just(json!("0")), Just(json!(1))],
        number_or_string(),
        prop::option::of(tags()),
        prop::option::of(number_or_string()),
    )
        .prop_map(|(kind, value, category, comment, to_ids, timestamp, tags, sighting_date)| {
            let mut a = json!({"type": kind, "value": value, "category": category, "comment": comment,
                "to_ids": to_ids, "timestamp": timestamp, "uuid": "5c000000-0000-4000-8000-000000000001"});
            if let Some(tags) = tags {
                a["Tag"] = tags;
            }
            if let Some(date) = sighting_date {
                a["Sighting"] = json!([{"Organisation": {"name": "Elsewhere"}, "date_sighting": date}]);
            }
            a
        })
}

fn galaxy() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["mitre-attack", "misp", "other"][..]),
        prop::sample::select(
            &["Intrusion Set", "Threat Actor", "Tool", "Malware", "Attack Pattern", "Sector", "Country", "Ransomware"][..],
        ),
        tricky_string(),
        prop::option::of(tricky_string()),
    )
        .prop_map(|(namespace, name, value, description)| {
            json!({"namespace": namespace, "name": name, "GalaxyCluster": [{"value": value,
                "description": description, "meta": {"synonyms": [value], "external_id": ["T1"], "ISO": "FR"}}]})
        })
}

fn event() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(attribute(), 0..8),
        prop::collection::vec(prop::collection::vec(attribute(), 0..4), 0..3),
        tags(),
        prop::collection::vec(galaxy(), 0..3),
        tricky_string(),
        number_or_string(),
        prop::option::of(tricky_string()),
    )
        .prop_map(|(attributes, objects, tags, galaxies, info, timestamp, note)| {
            let objects: Vec<Value> = objects
                .into_iter()
                .enumerate()
                .map(|(i, attributes)| {
                    json!({"name": "file", "meta-category": "file", "description": "d",
                        "uuid": format!("5c000000-0000-4000-8000-00000000010{i}"), "Attribute": attributes,
                        "ObjectReference": [{"referenced_uuid": "5c000000-0000-4000-8000-000000000001",
                            "source_uuid": "5c000000-0000-4000-8000-000000000100", "relationship_type": "r", "comment": ""}]})
                })
                .collect();
            let mut e = json!({"Event": {"info": info, "date": "2020-02-29", "timestamp": timestamp,
                "threat_level_id": "1", "Orgc": {"name": "Org"}, "Tag": tags, "Galaxy": galaxies,
                "Attribute": attributes, "Object": objects}});
            if let Some(note) = note {
                e["Event"]["EventReport"] = json!([{"name": "n", "content": note, "timestamp": "1600000000"}]);
            }
            e
        })
}

fn option_sets() -> Vec<ConvertOptions> {
    let full = misp_feed::testsuite::full_profile();
    let opaque = ConvertOptions {
        import_unsupported_observables_as_text: false,
        import_unsupported_observables_as_text_transparent: false,
        ..full.clone()
    };
    let mut sets = Vec::new();
    for base in [ConvertOptions::default(), full, opaque] {
        for compat in [true, false] {
            sets.push(ConvertOptions {
                reference_compat: compat,
                ..base.clone()
            });
        }
    }
    sets
}

/// Converts under every option set; errors are fine, panics are not. Returns whether any
/// conversion failed, and checks that errors name a path.
fn convert_everywhere(bytes: &[u8]) {
    let events = match parse_event_file(bytes, "fuzz.json") {
        Ok(events) => events,
        Err(error) => {
            assert_eq!(error.file, "fuzz.json");
            assert!(!error.path.is_empty());
            return;
        }
    };
    for event in &events {
        for options in option_sets() {
            match convert_event(event, &options, &ResolvedThreats::default()) {
                Ok(bundle) => {
                    if !options.reference_compat {
                        let mut ids = std::collections::HashSet::new();
                        for object in &bundle.objects() {
                            assert!(
                                ids.insert(object["id"].as_str().unwrap().to_string()),
                                "duplicate id"
                            );
                        }
                    }
                }
                Err(error) => assert!(error.path.contains("Event"), "{error}"),
            }
        }
    }
}

fn fixture_events() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/events");
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The smaller fixtures keep each case fast.
    files
        .into_iter()
        .filter(|p| fs::metadata(p).unwrap().len() < 200_000)
        .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Every JSON pointer into a value.
fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(
                    child,
                    format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{prefix}/{index}"), out);
            }
        }
        _ => {}
    }
}

fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number_or_string(),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{"name": "x"}])),
        tricky_string().prop_map(|s| json!({"name": s, "value": s})),
    ]
}

fn mutate(mut value: Value, mutations: &[(usize, u8, Value)]) -> Value {
    for (seed, kind, replacement) in mutations {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let pointer = &all[seed % all.len()];
        if pointer.is_empty() {
            continue;
        }
        let (parent_pointer, last) = pointer.rsplit_once('/').unwrap();
        let Some(parent) = value.pointer_mut(parent_pointer) else {
            continue;
        };
        match (parent, kind % 3) {
            (Value::Object(map), 0) => {
                let key = last.replace("~1", "/").replace("~0", "~");
                map.remove(&key);
            }
            (Value::Array(items), 0) => {
                let index: usize = last.parse().unwrap();
                if index < items.len() {
                    let copy = items[index].clone();
                    items.push(copy);
                }
            }
            _ => {
                if let Some(target) = value.pointer_mut(pointer) {
                    *target = replacement.clone();
                }
            }
        }
    }
    value
}

/// What kind of MISP element a JSON object of an event is, by where it sits.
#[derive(Clone, Copy, Debug)]
enum Element {
    Event,
    Attribute,
    Object,
    Reference,
    Tag,
    Galaxy,
    Cluster,
    Meta,
    Sighting,
    Organisation,
    Report,
}

impl Element {
    /// The keys the conversion reads (in some configuration); every other key is unused.
    fn read_keys(self) -> &'static [&'static str] {
        match self {
            Element::Event => &[
                "info",
                "date",
                "timestamp",
                "threat_level_id",
                "Orgc",
                "Org",
                "Tag",
                "Galaxy",
                "Attribute",
                "Object",
                "EventReport",
            ],
            Element::Attribute => &[
                "type",
                "value",
                "category",
                "comment",
                "uuid",
                "to_ids",
                "timestamp",
                "deleted",
                "Tag",
                "Galaxy",
                "Sighting",
                "data",
            ],
            Element::Object => &[
                "uuid",
                "name",
                "description",
                "deleted",
                "Attribute",
                "ObjectReference",
            ],
            Element::Reference => &[
                "source_uuid",
                "object_uuid",
                "referenced_uuid",
                "relationship_type",
                "comment",
                "deleted",
            ],
            Element::Tag | Element::Organisation => &["name"],
            Element::Galaxy => &["namespace", "name", "GalaxyCluster"],
            Element::Cluster => &["value", "description", "meta"],
            Element::Meta => &["synonyms", "external_id", "ISO"],
            Element::Sighting => &["Organisation", "date_sighting"],
            Element::Report => &["name", "content", "timestamp", "deleted"],
        }
    }

    /// The element kinds held under `key` (in a list, or as one object).
    fn child(self, key: &str) -> Option<Element> {
        Some(match (self, key) {
            (Element::Event | Element::Object, "Attribute") => Element::Attribute,
            (Element::Event, "Object") => Element::Object,
            (Element::Event, "EventReport") => Element::Report,
            (Element::Event, "Orgc" | "Org") | (Element::Sighting, "Organisation") => {
                Element::Organisation
            }
            (Element::Event | Element::Attribute, "Tag") => Element::Tag,
            (Element::Event | Element::Attribute, "Galaxy") => Element::Galaxy,
            (Element::Attribute, "Sighting") => Element::Sighting,
            (Element::Object, "ObjectReference") => Element::Reference,
            (Element::Galaxy, "GalaxyCluster") => Element::Cluster,
            (Element::Cluster, "meta") => Element::Meta,
            _ => return None,
        })
    }
}

/// Every MISP element of an event, with its JSON pointer.
fn elements(value: &Value, pointer: String, kind: Element, out: &mut Vec<(String, Element)>) {
    let Some(map) = value.as_object() else {
        return;
    };
    out.push((pointer.clone(), kind));
    for (key, child) in map {
        let Some(child_kind) = kind.child(key) else {
            continue;
        };
        match child {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    elements(item, format!("{pointer}/{key}/{index}"), child_kind, out);
                }
            }
            Value::Object(_) => elements(child, format!("{pointer}/{key}"), child_kind, out),
            _ => {}
        }
    }
}

/// The conversion of an event under each option set: its objects normalized, or the error.
type Outcomes = Vec<Result<Value, String>>;

/// The conversion of `event` under every option set.
fn outcomes(event: &Value) -> Outcomes {
    let events = parse_event_file(event.to_string().as_bytes(), "unused.json").unwrap();
    option_sets()
        .iter()
        .map(|options| {
            convert_event(&events[0], options, &ResolvedThreats::default())
                .map(|bundle| normalize_objects(&bundle.objects()))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The fixture events with their conversions, computed once for every case.
static CONVERTED_FIXTURES: LazyLock<Vec<(Value, Outcomes)>> = LazyLock::new(|| {
    fixture_events()
        .into_iter()
        .map(|event| {
            let converted = outcomes(&event);
            (event, converted)
        })
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A field the converter does not use, whatever it holds, changes nothing: neither the
    /// output nor whether the event converts.
    #[test]
    fn unused_fields_change_nothing(
        which in 0usize..16,
        seed in any::<usize>(),
        key_seed in any::<usize>(),
        junk in any_json(),
    ) {
        let (event, before) = &CONVERTED_FIXTURES[which % CONVERTED_FIXTURES.len()];
        let mut event = event.clone();
        let root = if event.get("Event").is_some() { "/Event" } else { "" };
        let mut found = Vec::new();
        elements(event.pointer(root).unwrap(), root.to_string(), Element::Event, &mut found);
        let (pointer, kind) = found[seed % found.len()].clone();
        let target = event.pointer_mut(&pointer).unwrap().as_object_mut().unwrap();
        let mut unused: Vec<String> = target
            .keys()
            .filter(|key| !kind.read_keys().contains(&key.as_str()))
            .cloned()
            .collect();
        unused.push("x_not_misp".to_string());
        let key = unused[key_seed % unused.len()].clone();
        target.insert(key.clone(), junk);
        prop_assert_eq!(&outcomes(&event), before, "{}/{} ({:?})", pointer, key, kind);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_never_panic(event in event()) {
        convert_everywhere(event.to_string().as_bytes());
    }

    #[test]
    fn mutated_fixture_events_never_panic(
        which in 0usize..16,
        mutations in prop::collection::vec((any::<usize>(), any::<u8>(), replacement()), 1..6),
    ) {
        let fixtures = fixture_events();
        let base = fixtures[which % fixtures.len()].clone();
        convert_everywhere(mutate(base, &mutations).to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        convert_everywhere(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        convert_everywhere(value.to_string().as_bytes());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(
                        &[
                            "Event",
                            "Attribute",
                            "Object",
                            "Tag",
                            "name",
                            "type",
                            "value",
                            "info",
                            "date",
                            "timestamp",
                            "Galaxy",
                            "GalaxyCluster",
                            "EventReport",
                            "content",
                            "Sighting",
                            "Orgc"
                        ][..]
                    ),
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<_, _>>()
            )),
        ]
    })
}
