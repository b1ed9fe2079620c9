//! MISP tags and galaxies: markings, labels, and the threats, sectors and countries the
//! connector derives from them (its `_resolve_markings`, `_resolve_tags`, `_prepare_elements`).

use std::collections::HashSet;

use serde_json::Value;

use super::input::{Galaxy, Tag};
use super::stix::{
    Marking, Object, attack_pattern_id, identity_id, location_id, marking_refs, named_id, put_list,
    put_opt_str, sdo, statement_marking, tlp,
};
use super::threats::{ThreatLookup, tag_search_value};
use crate::pycompat::text::{drop_last_char, isdigit, strip};

/// Markings from tags; TLP:WHITE when none and `with_default`.
pub fn resolve_markings(
    tags: &[Tag<'_>],
    with_default: bool,
    markings_from_tags: bool,
    now: &str,
) -> Vec<Marking> {
    let mut markings = Vec::new();
    for tag in tags {
        let name = tag.name;
        let lower = name.to_lowercase();
        if markings_from_tags
            && name.contains(':')
            && name.contains('=')
            && lower.starts_with("marking")
        {
            let parts: Vec<&str> = name.split(':').collect();
            let definition = if parts.len() > 2 {
                format!("{}:{}", parts[1], parts[2])
            } else {
                parts.get(1).copied().unwrap_or("").to_string()
            };
            let pair: Vec<&str> = definition.split('=').collect();
            // The connector raises on `marking=x:y` (no `=` after the first colon); such a
            // tag gives no marking here.
            if let (Some(kind), Some(value)) = (pair.first(), pair.get(1)) {
                markings.push(statement_marking(kind, value, now));
            }
        }
        match lower.as_str() {
            "tlp:clear" | "tlp:white" => markings.push(tlp("white")),
            "tlp:green" => markings.push(tlp("green")),
            "tlp:amber" => markings.push(tlp("amber")),
            "tlp:amber+strict" => markings.push(statement_marking("TLP", "TLP:AMBER+STRICT", now)),
            "tlp:red" => markings.push(tlp("red")),
            _ => {}
        }
    }
    if markings.is_empty() && with_default {
        markings.push(tlp("white"));
    }
    markings
}

const LABEL_EXCLUDED_PREFIXES: &[&str] = &[
    "misp-galaxy:threat-actor",
    "misp-galaxy:mitre-threat-actor",
    "misp-galaxy:microsoft-activity-group",
    "misp-galaxy:mitre-enterprise-attack-threat-actor",
    "misp-galaxy:mitre-mobile-attack-intrusion-set",
    "misp-galaxy:mitre-intrusion-set",
    "misp-galaxy:mitre-enterprise-attack-intrusion-set",
    "misp-galaxy:mitre-malware",
    "misp-galaxy:mitre-enterprise-attack-malware",
    "misp-galaxy:mitre-attack-pattern",
    "misp-galaxy:mitre-enterprise-attack-attack-pattern",
    "misp-galaxy:mitre-tool",
    "misp-galaxy:tool",
    "misp-galaxy:ransomware",
    "misp-galaxy:malpedia",
    "misp-galaxy:sector",
    "misp-galaxy:country",
    "marking",
    "creator",
    "intrusion-set",
    "malware",
    "tool",
    "mitre",
];

/// Labels from tags (empty unless `create_tags_as_labels`).
pub fn resolve_labels(tags: &[Tag<'_>], create_tags_as_labels: bool) -> Vec<String> {
    let mut labels = Vec::new();
    if !create_tags_as_labels {
        return labels;
    }
    for tag in tags {
        let name = tag.name;
        if matches!(
            name,
            "tlp:white" | "tlp:green" | "tlp:amber" | "tlp:amber+strict" | "tlp:red"
        ) || LABEL_EXCLUDED_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            continue;
        }
        let mut value: String = name.to_string();
        if name.contains("=\"") {
            if let Some(second) = name.split("=\"").nth(1).filter(|s| !s.is_empty()) {
                value = strip(drop_last_char(second)).to_string();
            }
        } else if name.contains(':')
            && let Some(second) = name.split(':').nth(1).filter(|s| !s.is_empty())
        {
            value = strip(second).to_string();
        }
        if isdigit(&value) {
            if name.contains(':') {
                if let Some(second) = name.split(':').nth(1).filter(|s| !s.is_empty()) {
                    value = strip(second).to_string();
                }
            } else {
                value = name.to_string();
            }
        }
        if value.contains("=\"") {
            value = drop_last_char(&value.replace("=\"", "-")).to_string();
        }
        labels.push(value);
    }
    labels
}

/// A threat, sector or country derived from a galaxy cluster or a tag.
#[derive(Debug, Clone)]
pub struct Element {
    pub id: String,
    pub name: String,
    pub object: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Elements {
    pub intrusion_sets: Vec<Element>,
    pub malwares: Vec<Element>,
    pub tools: Vec<Element>,
    pub attack_patterns: Vec<Element>,
    pub sectors: Vec<Element>,
    pub countries: Vec<Element>,
}

impl Elements {
    /// Intrusion sets, malware, tools: the threats indicators point at.
    pub fn threats(&self) -> impl Iterator<Item = &Element> {
        self.intrusion_sets
            .iter()
            .chain(&self.malwares)
            .chain(&self.tools)
    }

    /// Every element in the connector's emission order.
    pub fn into_all(self) -> impl Iterator<Item = Element> {
        self.intrusion_sets
            .into_iter()
            .chain(self.malwares)
            .chain(self.tools)
            .chain(self.attack_patterns)
            .chain(self.sectors)
            .chain(self.countries)
    }
}

pub struct ElementContext<'c> {
    pub author_id: &'c str,
    pub now: &'c str,
    pub markings: &'c [Marking],
    pub guess_threats_from_tags: bool,
    pub threats: &'c dyn ThreatLookup,
}

impl ElementContext<'_> {
    fn base(&self, kind: &str, id: &str, name: &str) -> Object {
        let mut object = sdo(kind, id, self.now, self.now);
        object.insert("name".into(), name.into());
        object.insert("created_by_ref".into(), self.author_id.into());
        put_list(
            &mut object,
            "object_marking_refs",
            &marking_refs(self.markings),
        );
        object
    }
}

fn aliases_of(cluster_synonyms: Option<&Value>, name: &str) -> Value {
    match cluster_synonyms {
        Some(synonyms) => synonyms.clone(),
        None => Value::Array(vec![Value::String(name.to_string())]),
    }
}

fn put_value(object: &mut Object, key: &str, value: Value) {
    match &value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        _ => {
            object.insert(key.into(), value);
        }
    }
}

fn first_external_id(external_id: Option<&Value>) -> Option<String> {
    match external_id? {
        Value::Array(items) => match items.first()? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
        Value::String(s) => s.chars().next().map(String::from),
        _ => None,
    }
}

/// Python's `s.split(sep)[0]`.
fn before<'s>(s: &'s str, sep: &str) -> &'s str {
    s.split(sep).next().unwrap_or(s)
}

fn intrusion_set_name(value: &str) -> String {
    if value.contains(" - G") {
        before(value, " - G").to_string()
    } else if value.contains("APT ") {
        value.replace("APT ", "APT")
    } else {
        value.to_string()
    }
}

fn strip_suffix_code(value: &str, sep: &str) -> String {
    if value.contains(sep) {
        before(value, sep).to_string()
    } else {
        value.to_string()
    }
}

const INTRUSION_SET_TAGS: &[&str] = &[
    "misp-galaxy:threat-actor",
    "misp-galaxy:mitre-mobile-attack-intrusion-set",
    "misp-galaxy:microsoft-activity-group",
    "misp-galaxy:mitre-threat-actor",
    "misp-galaxy:mitre-enterprise-attack-threat-actor",
    "misp-galaxy:mitre-intrusion-set",
    "misp-galaxy:mitre-enterprise-attack-intrusion-set",
    "intrusion-set",
];
const TOOL_TAGS: &[&str] = &[
    "misp-galaxy:mitre-tool",
    "misp-galaxy:mitre-enterprise-attack-tool",
    "tool",
];
const MALWARE_TAGS: &[&str] = &[
    "misp-galaxy:mitre-malware",
    "misp-galaxy:mitre-enterprise-attack-malware",
    "misp-galaxy:misp-ransomware",
    "misp-galaxy:misp-tool",
    "misp-galaxy:misp-android",
    "misp-galaxy:misp-malpedia",
    "malware",
];
const ATTACK_PATTERN_TAGS: &[&str] = &[
    "misp-galaxy:mitre-attack-pattern",
    "misp-galaxy:attack-pattern",
    "mitre-attack:attack-pattern",
    "mitre:",
];

/// The threats, sectors and countries of a set of galaxies and tags.
pub fn prepare_elements(
    galaxies: &[Galaxy<'_>],
    tags: &[Tag<'_>],
    ctx: &ElementContext<'_>,
) -> Elements {
    let mut elements = Elements::default();
    if galaxies.is_empty() && tags.is_empty() {
        return elements;
    }
    let mut added_names: HashSet<String> = HashSet::new();
    for galaxy in galaxies {
        let Some(namespace) = galaxy.namespace else {
            continue;
        };
        let gname = galaxy.name;
        if (namespace == "mitre-attack" && gname == "Intrusion Set")
            || (namespace == "misp"
                && (gname == "Threat Actor" || gname == "Microsoft Activity Group actor"))
        {
            for cluster in &galaxy.clusters {
                let name = intrusion_set_name(cluster.value);
                let aliases = aliases_of(cluster.synonyms, &name);
                if added_names.insert(name.clone()) {
                    let id = named_id("intrusion-set", &name);
                    let mut object = ctx.base("intrusion-set", &id, &name);
                    object.insert("labels".into(), Value::Array(vec!["intrusion-set".into()]));
                    put_opt_str(&mut object, "description", cluster.description);
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.intrusion_sets.push(Element {
                        id,
                        name,
                        object: Value::Object(object),
                    });
                }
            }
        }
        if namespace == "mitre-attack" && gname == "Tool" {
            for cluster in &galaxy.clusters {
                let name = strip_suffix_code(cluster.value, " - S");
                let aliases = aliases_of(cluster.synonyms, &name);
                if added_names.insert(name.clone()) {
                    let id = named_id("tool", &name);
                    let mut object = ctx.base("tool", &id, &name);
                    object.insert("labels".into(), Value::Array(vec!["tool".into()]));
                    put_opt_str(&mut object, "description", cluster.description);
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.tools.push(Element {
                        id,
                        name,
                        object: Value::Object(object),
                    });
                }
            }
        }
        if (namespace == "mitre-attack" && gname == "Malware")
            || (namespace == "misp"
                && matches!(gname, "Tool" | "Ransomware" | "Android" | "Malpedia"))
        {
            for cluster in &galaxy.clusters {
                let name = strip_suffix_code(cluster.value, " - S");
                let aliases = aliases_of(cluster.synonyms, &name);
                if added_names.insert(name.clone()) {
                    let id = named_id("malware", &name);
                    let mut object = ctx.base("malware", &id, &name);
                    object.insert("is_family".into(), Value::Bool(true));
                    put_value(&mut object, "aliases", aliases);
                    object.insert("labels".into(), Value::Array(vec![gname.into()]));
                    put_opt_str(&mut object, "description", cluster.description);
                    elements.malwares.push(Element {
                        id,
                        name,
                        object: Value::Object(object),
                    });
                }
            }
        }
        if namespace == "mitre-attack" && gname == "Attack Pattern" {
            for cluster in &galaxy.clusters {
                let name = strip_suffix_code(cluster.value, " - T");
                let aliases = aliases_of(cluster.synonyms, &name);
                if added_names.insert(name.clone()) {
                    let x_mitre_id = first_external_id(cluster.external_id);
                    let id = attack_pattern_id(&name, x_mitre_id.as_deref());
                    let mut object = ctx.base("attack-pattern", &id, &name);
                    put_opt_str(&mut object, "description", cluster.description);
                    put_opt_str(&mut object, "x_mitre_id", x_mitre_id.as_deref());
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.attack_patterns.push(Element {
                        id,
                        name,
                        object: Value::Object(object),
                    });
                }
            }
        }
        if namespace == "misp" {
            if gname == "Sector" {
                for cluster in &galaxy.clusters {
                    let name = cluster.value.to_string();
                    if added_names.insert(name.clone()) {
                        let id = identity_id(&name, "class");
                        let mut object = ctx.base("identity", &id, &name);
                        object.insert("identity_class".into(), "class".into());
                        put_opt_str(&mut object, "description", cluster.description);
                        elements.sectors.push(Element {
                            id,
                            name,
                            object: Value::Object(object),
                        });
                    }
                }
            } else if gname == "Country" {
                for cluster in &galaxy.clusters {
                    // The country's name is the cluster's description; a cluster without
                    // one (or without an ISO code) cannot make a Location.
                    let (Some(name), Some(iso)) = (cluster.description, cluster.iso) else {
                        continue;
                    };
                    if added_names.insert(name.to_string()) {
                        let id = location_id(name, "Country");
                        let mut object = ctx.base("location", &id, name);
                        object.insert("country".into(), iso.into());
                        object.insert("description".into(), "Imported from MISP tag".into());
                        elements.countries.push(Element {
                            id,
                            name: name.to_string(),
                            object: Value::Object(object),
                        });
                    }
                }
            }
        }
    }

    for tag in tags {
        let tag_name = tag.name;
        if ctx.guess_threats_from_tags {
            guess_threat(tag_name, ctx, &mut elements, &mut added_names);
        }
        let equal_in_name = tag_name.contains('=');
        let parts: Vec<&str> = if equal_in_name {
            tag_name.split("=\"").collect()
        } else {
            tag_name.split(':').collect()
        };
        let tag_value = || -> Option<String> {
            let second = parts.get(1).filter(|s| !s.is_empty())?;
            Some(if equal_in_name {
                strip(drop_last_char(second)).to_string()
            } else {
                strip(second).to_string()
            })
        };
        if INTRUSION_SET_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = intrusion_set_name(&value);
            if added_names.insert(name.clone()) {
                let id = named_id("intrusion-set", &name);
                let object = ctx.base("intrusion-set", &id, &name);
                elements.intrusion_sets.push(Element {
                    id,
                    name,
                    object: Value::Object(object),
                });
            }
        }
        if TOOL_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - S");
            if added_names.insert(name.clone()) {
                let id = named_id("tool", &name);
                let object = ctx.base("tool", &id, &name);
                elements.tools.push(Element {
                    id,
                    name,
                    object: Value::Object(object),
                });
            }
        }
        if MALWARE_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - S");
            if added_names.insert(name.clone()) {
                let id = named_id("malware", &name);
                let mut object = ctx.base("malware", &id, &name);
                object.insert("is_family".into(), Value::Bool(true));
                elements.malwares.push(Element {
                    id,
                    name,
                    object: Value::Object(object),
                });
            }
        }
        if ATTACK_PATTERN_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - T");
            if added_names.insert(name.clone()) {
                let id = attack_pattern_id(&name, None);
                let object = ctx.base("attack-pattern", &id, &name);
                elements.attack_patterns.push(Element {
                    id,
                    name,
                    object: Value::Object(object),
                });
            }
        }
        if tag_name.starts_with("misp-galaxy:sector")
            && let Some(second) = tag_name.split("=\"").nth(1).filter(|s| !s.is_empty())
        {
            let name = strip(drop_last_char(second)).to_string();
            if added_names.insert(name.clone()) {
                let id = identity_id(&name, "class");
                let mut object = ctx.base("identity", &id, &name);
                object.insert("identity_class".into(), "class".into());
                elements.sectors.push(Element {
                    id,
                    name,
                    object: Value::Object(object),
                });
            }
        }
    }
    elements
}

/// `guess_threats_from_tags`: the first platform entity matching the tag's value.
fn guess_threat(
    tag_name: &str,
    ctx: &ElementContext<'_>,
    elements: &mut Elements,
    added_names: &mut HashSet<String>,
) {
    let Some(threat) = ctx.threats.threat(&tag_search_value(tag_name)) else {
        return;
    };
    let name = threat.name.as_str();
    if added_names.contains(name) {
        return;
    }
    let entity_type = threat.entity_type.as_str();
    let name_owned = name.to_string();
    match entity_type {
        "Intrusion-Set" => {
            let id = named_id("intrusion-set", name);
            let object = ctx.base("intrusion-set", &id, name);
            elements.intrusion_sets.push(Element {
                id,
                name: name_owned.clone(),
                object: Value::Object(object),
            });
        }
        "Malware" => {
            let id = named_id("malware", name);
            let mut object = ctx.base("malware", &id, name);
            object.insert("is_family".into(), Value::Bool(true));
            elements.malwares.push(Element {
                id,
                name: name_owned.clone(),
                object: Value::Object(object),
            });
        }
        "Tool" => {
            let id = named_id("tool", name);
            let object = ctx.base("tool", &id, name);
            elements.tools.push(Element {
                id,
                name: name_owned.clone(),
                object: Value::Object(object),
            });
        }
        "Attack-Pattern" => {
            let id = attack_pattern_id(name, None);
            let object = ctx.base("attack-pattern", &id, name);
            elements.attack_patterns.push(Element {
                id,
                name: name_owned.clone(),
                object: Value::Object(object),
            });
        }
        _ => {}
    }
    added_names.insert(name_owned);
}
