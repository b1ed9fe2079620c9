//! The threats, sectors and countries the connector derives from galaxies and tags (its
//! `_prepare_elements`). Galaxy clusters come as MISP exports them: `meta` values are lists
//! (`"ISO": ["FR"]`) in event exports and texts in the galaxy's own JSON. In compat mode each
//! becomes what the connector makes of it (stix2 stores `str()` of a list: country
//! `['FR']`); otherwise its value is used (country `FR`).

use hashbrown::HashSet;

use serde_json::Value;

use super::input::{FieldError, Galaxy, GalaxyCluster, Tag, Text};
use super::stix::{
    Marking, Object, attack_pattern_id, identity_id, location_id, marking_refs, named_id, put_list,
    put_opt_str, sdo,
};
use super::threats::{ThreatLookup, tag_search_value};
use crate::pycompat::text::{drop_last_char, strip};

/// A threat, sector or country derived from a galaxy cluster or a tag.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) object: Object,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Elements {
    pub(crate) intrusion_sets: Vec<Element>,
    pub(crate) malwares: Vec<Element>,
    pub(crate) tools: Vec<Element>,
    pub(crate) attack_patterns: Vec<Element>,
    pub(crate) sectors: Vec<Element>,
    pub(crate) countries: Vec<Element>,
}

impl Elements {
    /// Intrusion sets, malware, tools: the threats indicators point at.
    pub(crate) fn threats(&self) -> impl Iterator<Item = &Element> {
        self.intrusion_sets
            .iter()
            .chain(&self.malwares)
            .chain(&self.tools)
    }

    /// Every element in the connector's emission order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Element> {
        self.intrusion_sets
            .iter()
            .chain(&self.malwares)
            .chain(&self.tools)
            .chain(&self.attack_patterns)
            .chain(&self.sectors)
            .chain(&self.countries)
    }

    /// [`Elements::all`], taken.
    pub(crate) fn into_all(self) -> impl Iterator<Item = Element> {
        self.intrusion_sets
            .into_iter()
            .chain(self.malwares)
            .chain(self.tools)
            .chain(self.attack_patterns)
            .chain(self.sectors)
            .chain(self.countries)
    }
}

pub(crate) struct ElementContext<'c> {
    pub(crate) compat: bool,
    pub(crate) author_id: &'c str,
    pub(crate) now: &'c str,
    pub(crate) markings: &'c [Marking],
    pub(crate) guess_threats_from_tags: bool,
    pub(crate) threats: &'c dyn ThreatLookup,
}

impl ElementContext<'_> {
    fn base(&self, kind: &str, id: &str, name: &str) -> Object {
        let mut object = sdo(kind, id, self.now, self.now);
        object.insert("name", name.into());
        object.insert("created_by_ref", self.author_id.into());
        put_list(
            &mut object,
            "object_marking_refs",
            &marking_refs(self.markings),
        );
        object
    }
}

/// Where aliases go: stix2's list property (`Malware.aliases`, which wraps a text in a
/// list) or a custom property (`x_opencti_aliases`, kept as given).
#[derive(Clone, Copy, PartialEq)]
enum AliasProperty {
    Listed,
    Custom,
}

/// The cluster's synonyms as aliases, `[name]` without any.
fn aliases_of(
    synonyms: Option<&Value>,
    name: &str,
    property: AliasProperty,
    compat: bool,
) -> Value {
    let Some(synonyms) = synonyms else {
        return Value::Array(vec![Value::String(name.to_string())]);
    };
    match synonyms {
        Value::String(text) if !compat || property == AliasProperty::Listed => {
            Value::Array(vec![Value::String(text.clone())])
        }
        other if compat => other.clone(),
        other => Text::of(Some(other)).map_or(Value::Null, |text| {
            Value::Array(
                text.items()
                    .into_iter()
                    .map(|item| Value::String(item.into_owned()))
                    .collect(),
            )
        }),
    }
}

fn put_value(object: &mut Object, key: &'static str, value: Value) {
    match &value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        _ => {
            object.insert(key, value);
        }
    }
}

/// The attack pattern's MITRE id: the connector's `meta["external_id"][0]` in compat mode
/// (the first character of a text), else the id itself (a list's first one).
fn mitre_id(external_id: Option<&Value>, compat: bool) -> Option<String> {
    let external_id = external_id?;
    if !compat {
        return Text::of(Some(external_id))?
            .first()
            .map(|id| id.into_owned());
    }
    match external_id {
        Value::Array(items) => match items.first()? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        },
        Value::String(s) => s.chars().next().map(String::from),
        _ => None,
    }
}

/// The cluster's description as stix2 stores it (compat) or its text.
fn description_of(cluster: &GalaxyCluster<'_>, compat: bool) -> Option<String> {
    cluster
        .description
        .map(|text| text.render(compat, "\n").into_owned())
}

/// A country cluster's name (its description) and ISO code; none without both.
fn country_of(cluster: &GalaxyCluster<'_>, compat: bool) -> Option<(String, String)> {
    let name = cluster.description?.value().as_str()?;
    let iso = cluster.iso?;
    let code = if compat {
        iso.python().into_owned()
    } else {
        iso.first()?.into_owned()
    };
    Some((name.to_string(), code))
}

/// The clusters of a galaxy the conversion uses; an error in them counts only then.
fn clusters<'g, 'a>(galaxy: &'g Galaxy<'a>) -> Result<&'g [GalaxyCluster<'a>], FieldError> {
    galaxy.clusters.as_deref().map_err(Clone::clone)
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
pub(crate) fn prepare_elements(
    galaxies: &[Galaxy<'_>],
    tags: &[Tag<'_>],
    ctx: &ElementContext<'_>,
) -> Result<Elements, FieldError> {
    let compat = ctx.compat;
    let mut elements = Elements::default();
    if galaxies.is_empty() && tags.is_empty() {
        return Ok(elements);
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
            for cluster in clusters(galaxy)? {
                let name = intrusion_set_name(cluster.value);
                let aliases = aliases_of(cluster.synonyms, &name, AliasProperty::Custom, compat);
                if added_names.insert(name.clone()) {
                    let id = named_id("intrusion-set", &name);
                    let mut object = ctx.base("intrusion-set", &id, &name);
                    object.insert("labels", Value::Array(vec!["intrusion-set".into()]));
                    put_opt_str(
                        &mut object,
                        "description",
                        description_of(cluster, compat).as_deref(),
                    );
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.intrusion_sets.push(Element { id, name, object });
                }
            }
        }
        if namespace == "mitre-attack" && gname == "Tool" {
            for cluster in clusters(galaxy)? {
                let name = strip_suffix_code(cluster.value, " - S");
                let aliases = aliases_of(cluster.synonyms, &name, AliasProperty::Custom, compat);
                if added_names.insert(name.clone()) {
                    let id = named_id("tool", &name);
                    let mut object = ctx.base("tool", &id, &name);
                    object.insert("labels", Value::Array(vec!["tool".into()]));
                    put_opt_str(
                        &mut object,
                        "description",
                        description_of(cluster, compat).as_deref(),
                    );
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.tools.push(Element { id, name, object });
                }
            }
        }
        if (namespace == "mitre-attack" && gname == "Malware")
            || (namespace == "misp"
                && matches!(gname, "Tool" | "Ransomware" | "Android" | "Malpedia"))
        {
            for cluster in clusters(galaxy)? {
                let name = strip_suffix_code(cluster.value, " - S");
                let aliases = aliases_of(cluster.synonyms, &name, AliasProperty::Listed, compat);
                if added_names.insert(name.clone()) {
                    let id = named_id("malware", &name);
                    let mut object = ctx.base("malware", &id, &name);
                    object.insert("is_family", Value::Bool(true));
                    put_value(&mut object, "aliases", aliases);
                    object.insert("labels", Value::Array(vec![gname.into()]));
                    put_opt_str(
                        &mut object,
                        "description",
                        description_of(cluster, compat).as_deref(),
                    );
                    elements.malwares.push(Element { id, name, object });
                }
            }
        }
        if namespace == "mitre-attack" && gname == "Attack Pattern" {
            for cluster in clusters(galaxy)? {
                let name = strip_suffix_code(cluster.value, " - T");
                let aliases = aliases_of(cluster.synonyms, &name, AliasProperty::Custom, compat);
                if added_names.insert(name.clone()) {
                    let x_mitre_id = mitre_id(cluster.external_id, compat);
                    let id = attack_pattern_id(&name, x_mitre_id.as_deref());
                    let mut object = ctx.base("attack-pattern", &id, &name);
                    put_opt_str(
                        &mut object,
                        "description",
                        description_of(cluster, compat).as_deref(),
                    );
                    put_opt_str(&mut object, "x_mitre_id", x_mitre_id.as_deref());
                    put_value(&mut object, "x_opencti_aliases", aliases);
                    elements.attack_patterns.push(Element { id, name, object });
                }
            }
        }
        if namespace == "misp" {
            if gname == "Sector" {
                for cluster in clusters(galaxy)? {
                    let name = cluster.value.to_string();
                    if added_names.insert(name.clone()) {
                        let id = identity_id(&name, "class");
                        let mut object = ctx.base("identity", &id, &name);
                        object.insert("identity_class", "class".into());
                        put_opt_str(
                            &mut object,
                            "description",
                            description_of(cluster, compat).as_deref(),
                        );
                        elements.sectors.push(Element { id, name, object });
                    }
                }
            } else if gname == "Country" {
                for cluster in clusters(galaxy)? {
                    // The country's name is the cluster's description; a cluster without
                    // one (or without an ISO code) cannot make a Location.
                    let Some((name, iso)) = country_of(cluster, compat) else {
                        continue;
                    };
                    let name = name.as_str();
                    if added_names.insert(name.to_string()) {
                        let id = location_id(name, "Country");
                        let mut object = ctx.base("location", &id, name);
                        object.insert("country", iso.into());
                        object.insert("description", "Imported from MISP tag".into());
                        elements.countries.push(Element {
                            id,
                            name: name.to_string(),
                            object,
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
                elements.intrusion_sets.push(Element { id, name, object });
            }
        }
        if TOOL_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - S");
            if added_names.insert(name.clone()) {
                let id = named_id("tool", &name);
                let object = ctx.base("tool", &id, &name);
                elements.tools.push(Element { id, name, object });
            }
        }
        if MALWARE_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - S");
            if added_names.insert(name.clone()) {
                let id = named_id("malware", &name);
                let mut object = ctx.base("malware", &id, &name);
                object.insert("is_family", Value::Bool(true));
                elements.malwares.push(Element { id, name, object });
            }
        }
        if ATTACK_PATTERN_TAGS.iter().any(|p| tag_name.starts_with(p))
            && let Some(value) = tag_value()
        {
            let name = strip_suffix_code(&value, " - T");
            if added_names.insert(name.clone()) {
                let id = attack_pattern_id(&name, None);
                let object = ctx.base("attack-pattern", &id, &name);
                elements.attack_patterns.push(Element { id, name, object });
            }
        }
        if tag_name.starts_with("misp-galaxy:sector")
            && let Some(second) = tag_name.split("=\"").nth(1).filter(|s| !s.is_empty())
        {
            let name = strip(drop_last_char(second)).to_string();
            if added_names.insert(name.clone()) {
                let id = identity_id(&name, "class");
                let mut object = ctx.base("identity", &id, &name);
                object.insert("identity_class", "class".into());
                elements.sectors.push(Element { id, name, object });
            }
        }
    }
    Ok(elements)
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
                object,
            });
        }
        "Malware" => {
            let id = named_id("malware", name);
            let mut object = ctx.base("malware", &id, name);
            object.insert("is_family", Value::Bool(true));
            elements.malwares.push(Element {
                id,
                name: name_owned.clone(),
                object,
            });
        }
        "Tool" => {
            let id = named_id("tool", name);
            let object = ctx.base("tool", &id, name);
            elements.tools.push(Element {
                id,
                name: name_owned.clone(),
                object,
            });
        }
        "Attack-Pattern" => {
            let id = attack_pattern_id(name, None);
            let object = ctx.base("attack-pattern", &id, name);
            elements.attack_patterns.push(Element {
                id,
                name: name_owned.clone(),
                object,
            });
        }
        _ => {}
    }
    added_names.insert(name_owned);
}
