//! One MISP attribute to its indicator, observable, sightings and relationships (the
//! connector's `_process_attribute`).

use std::rc::Rc;

use serde_json::{Map, Value};

use super::ConvertOptions;
use super::elements::{ElementContext, Elements, prepare_elements};
use super::ids::sco_id;
use super::input::{Attribute, FieldError, JsonPath};
use super::resolve::{Resolver, resolve_type, valid_hash};
use super::stix::{
    Marking, Markings, Object, identity_id, indicator_id, marking_refs, organization, put_list,
    relationship_id, sco, sdo, sighting_id, single_property_sco_id,
};
use super::tags::{resolve_labels, resolve_markings};
use super::threats::ThreatLookup;
use crate::pycompat::text::{py_int, py_len};
use crate::pycompat::time::{utc_millis, utc_seconds};
use crate::warninglists::Warninglists;

/// `[<kind>:<path> = '<value>']`, the value as stix2 writes a string constant in a pattern
/// (backslashes and quotes escaped).
fn pattern(kind: &str, path: &str, value: &str) -> String {
    let mut out = String::with_capacity(kind.len() + path.len() + value.len() + 8);
    out.push('[');
    out.push_str(kind);
    out.push(':');
    out.push_str(path);
    out.push_str(" = '");
    let mut plain_from = 0;
    for (at, byte) in value.bytes().enumerate() {
        if byte == b'\\' || byte == b'\'' {
            out.push_str(&value[plain_from..at]);
            out.push('\\');
            plain_from = at;
        }
    }
    out.push_str(&value[plain_from..]);
    out.push_str("']");
    out
}

/// What converting one attribute (one part of it) yields.
#[derive(Debug)]
pub(crate) struct AttributeResult {
    pub(crate) indicator: Option<Object>,
    pub(crate) observable: Option<Object>,
    pub(crate) relationships: Vec<Object>,
    pub(crate) elements: Elements,
    pub(crate) markings: Markings,
    pub(crate) identities: Vec<Object>,
    pub(crate) sightings: Vec<Object>,
    /// The warninglist that kept the attribute from becoming an indicator (part 0 only, so
    /// that an attribute is counted once).
    pub(crate) warninglisted: Option<String>,
}

/// Everything an attribute's conversion reads besides the attribute itself.
pub(crate) struct AttributeContext<'c> {
    pub(crate) options: &'c ConvertOptions,
    pub(crate) threats: &'c dyn ThreatLookup,
    pub(crate) now: &'c str,
    pub(crate) author_id: &'c str,
    pub(crate) author_name: &'c str,
    pub(crate) event_elements: &'c Elements,
    pub(crate) event_markings: &'c Markings,
    pub(crate) event_labels: &'c Value,
    pub(crate) score: i64,
    /// Values on these lists make no indicator (never in compat mode: the Python connector
    /// has no warninglists).
    pub(crate) warninglists: Option<&'c Warninglists>,
}

fn relationship(
    ctx: &AttributeContext<'_>,
    kind: &str,
    source: &str,
    target: &str,
    description: Option<&str>,
    markings: Option<&[Marking]>,
) -> Object {
    let id = relationship_id(kind, source, target);
    let mut object = sdo("relationship", &id, ctx.now, ctx.now);
    object.insert("relationship_type", kind.into());
    if let Some(description) = description {
        object.insert("description", description.into());
    }
    object.insert("source_ref", source.into());
    object.insert("target_ref", target.into());
    object.insert("created_by_ref", ctx.author_id.into());
    if let Some(markings) = markings {
        put_list(&mut object, "object_marking_refs", &marking_refs(markings));
    }
    object
}

/// Whether [`process_attribute`] converts the attribute at all, and so reads its tags: the
/// connector leaves out `External analysis` links and the types it cannot resolve; the
/// default mode also leaves out deleted attributes unless asked for.
pub(crate) fn is_converted(attribute: &Attribute<'_>, options: &ConvertOptions) -> bool {
    options.keeps(attribute.deleted)
        && !is_external_analysis_link(attribute)
        && resolve_type(
            attribute.kind,
            attribute.value,
            options.import_unsupported_observables_as_text,
        )
        .is_some()
}

/// The parts beyond the first of a composite attribute (`filename|md5`, ...): what the
/// connector drops and correction (1) converts.
pub(crate) fn extra_parts(attribute: &Attribute<'_>, options: &ConvertOptions) -> usize {
    if options.reference_compat {
        return 0;
    }
    resolve_type(
        attribute.kind,
        attribute.value,
        options.import_unsupported_observables_as_text,
    )
    .map_or(0, |parts| parts.len().saturating_sub(1))
}

/// A link under `External analysis`: an external reference of the event or object, not an
/// observable.
pub(crate) fn is_external_analysis_link(attribute: &Attribute<'_>) -> bool {
    attribute.kind == "link" && attribute.category == "External analysis"
}

/// `MISP_FEED_INDICATOR_VALID_DAYS` after `valid_from` (seconds), outside compat mode; none
/// past the year 9999.
fn valid_until(valid_from: i64, options: &ConvertOptions) -> Option<String> {
    let days = options
        .indicator_valid_days
        .filter(|_| !options.reference_compat)?;
    valid_from
        .checked_add(i64::from(days).checked_mul(86_400)?)
        .and_then(utc_seconds)
}

/// `MISP_FEED_PROPAGATE_LABELS`: the event's labels, then the attribute's own, each once.
fn with_event_labels(event_labels: &Value, own: Vec<String>) -> Vec<String> {
    let mut labels: Vec<String> = event_labels
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|label| label.as_str().map(str::to_string))
        .collect();
    for label in own {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

/// The connector's `_process_attribute`, for part `part` of the attribute's value (the
/// connector only ever converts part 0). `None` when the attribute yields nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn process_attribute(
    ctx: &AttributeContext<'_>,
    attribute: &Attribute<'_>,
    path: &JsonPath<'_>,
    object_observable_id: Option<&str>,
    external_references: &Value,
    create_relationships: bool,
    part: usize,
) -> Result<Option<AttributeResult>, FieldError> {
    let options = ctx.options;
    let compat = options.reference_compat;
    if is_external_analysis_link(attribute) {
        return Ok(None);
    }
    let Some(resolved) = resolve_type(
        attribute.kind,
        attribute.value,
        options.import_unsupported_observables_as_text,
    ) else {
        return Ok(None);
    };
    let file_name: Option<&str> = resolved
        .iter()
        .filter(|r| r.resolver == Resolver::FileName)
        .map(|r| r.value.as_ref())
        .next_back();
    let Some(this) = resolved.get(part) else {
        return Ok(None);
    };

    let (markings, labels): (Markings, Value) = match &attribute.tags {
        Some(tags) => {
            let own = resolve_markings(tags, false, options.markings_from_tags, ctx.now);
            let markings = if own.is_empty() {
                ctx.event_markings.clone()
            } else {
                Rc::new(own)
            };
            let own = resolve_labels(tags, options);
            let labels = if options.propagate_labels && !compat {
                with_event_labels(ctx.event_labels, own)
            } else {
                own
            };
            (
                markings,
                Value::Array(labels.into_iter().map(Value::String).collect()),
            )
        }
        None => (ctx.event_markings.clone(), ctx.event_labels.clone()),
    };
    let elements = prepare_elements(
        &attribute.galaxies,
        attribute.tags.as_deref().unwrap_or(&[]),
        &ElementContext {
            compat,
            author_id: ctx.author_id,
            now: ctx.now,
            markings: &markings,
            guess_threats_from_tags: options.guess_threats_from_tags,
            threats: ctx.threats,
        },
    )?;

    let resolver = this.resolver;
    let observable_type = resolver.observable_type();
    let value: &str = &this.value;
    let comment = attribute.comment;
    let mut name: Option<&str> = if py_len(value) > 2 {
        Some(value)
    } else if py_len(comment) > 2 {
        Some(comment)
    } else {
        observable_type
    };
    let mut pattern_type = "stix";
    let pattern: Option<String> = match resolver {
        Resolver::Yara | Resolver::Sigma => {
            pattern_type = if resolver == Resolver::Yara {
                "yara"
            } else {
                "sigma"
            };
            name = if py_len(comment) > 2 {
                Some(comment)
            } else {
                observable_type
            };
            Some(value.to_string())
        }
        Resolver::WindowsScheduledTask => return Ok(None),
        _ => resolver
            .pattern_path()
            .map(|(kind, path)| pattern(kind, path, value)),
    };

    let to_ids = attribute.to_ids(compat);
    let mut score = ctx.score;
    if let Some(no_score) = options.import_to_ids_no_score
        && !to_ids
    {
        score = no_score;
    }

    let mut indicator: Option<Object> = None;
    let wants_indicator = !(options.indicators_only_to_ids && !compat && !to_ids);
    // A known-benign value (a public resolver, a top site) keeps its observable but makes no
    // indicator: detection rules built from it would only raise false positives.
    let warninglisted = match ctx.warninglists {
        Some(lists)
            if !compat && options.create_indicators && wants_indicator && pattern.is_some() =>
        {
            lists
                .check(attribute.kind, attribute.value)
                .map(|hit| hit.list.name.clone())
        }
        _ => None,
    };
    if options.create_indicators
        && wants_indicator
        && warninglisted.is_none()
        && let Some(pattern) = &pattern
    {
        // The connector builds the indicator in a try block: a bad timestamp or a
        // pattern stix2 rejects (an invalid hash) leaves the attribute without one.
        let timestamps = attribute
            .timestamp
            .and_then(py_int)
            .and_then(|secs| Some((secs, utc_seconds(secs)?, utc_millis(secs)?)));
        let pattern_ok = pattern_type != "stix" || valid_hash(resolver, value);
        if let (Some((secs, valid_from, created)), true) = (timestamps, pattern_ok) {
            let id = indicator_id(pattern);
            let mut object = sdo("indicator", &id, &created, &created);
            if let Some(name) = name {
                object.insert("name", name.into());
            }
            object.insert("description", comment.into());
            object.insert("pattern", pattern.as_str().into());
            object.insert("pattern_type", pattern_type.into());
            if pattern_type == "stix" {
                object.insert("pattern_version", "2.1".into());
            }
            object.insert("valid_from", valid_from.into());
            if let Some(valid_until) = valid_until(secs, options) {
                object.insert("valid_until", valid_until.into());
            }
            put_list(&mut object, "labels", &labels);
            object.insert("created_by_ref", ctx.author_id.into());
            put_list(&mut object, "object_marking_refs", &marking_refs(&markings));
            put_list(&mut object, "external_references", external_references);
            if let Some(observable_type) = observable_type {
                object.insert("x_opencti_main_observable_type", observable_type.into());
            }
            // The connector copies `to_ids` as it is; OpenCTI reads a boolean.
            match attribute.to_ids {
                Some(given) if compat => {
                    object.insert("x_opencti_detection", given.clone());
                }
                Some(_) => {
                    object.insert("x_opencti_detection", Value::Bool(to_ids));
                }
                None => {}
            }
            object.insert("x_opencti_score", score.into());
            indicator = Some(object);
        }
    }

    let mut observable: Option<Object> = None;
    if options.create_observables && observable_type.is_some() {
        observable = build_observable(
            ctx,
            resolver,
            value,
            file_name,
            comment,
            score,
            &labels,
            &markings,
            external_references,
        );
    }

    let mut sightings = Vec::new();
    let mut identities = Vec::new();
    for (index, sighting) in attribute.sightings.iter().enumerate() {
        let sighted_by = match sighting.organisation {
            Some(org) if org != ctx.author_name => {
                let identity = organization(org, ctx.now);
                identities.push(identity.clone());
                Some(identity)
            }
            _ => None,
        };
        if let (Some(indicator), Some(sighted_by)) = (&indicator, &sighted_by) {
            let bad_date = || {
                FieldError::new(
                    &path.key("Sighting").index(index).key("date_sighting"),
                    "expected a Unix timestamp (seconds) in the years 1000-9999",
                )
            };
            let secs = sighting
                .date_sighting
                .and_then(py_int)
                .ok_or_else(bad_date)?;
            let first_seen = utc_seconds(secs).ok_or_else(bad_date)?;
            let last_seen = secs
                .checked_add(3600)
                .and_then(utc_seconds)
                .ok_or_else(bad_date)?;
            let indicator_id = super::stix::id_of(indicator);
            let sighted_by_id = super::stix::id_of(sighted_by);
            let id = sighting_id(indicator_id, sighted_by_id, &first_seen, &last_seen);
            let mut object = sdo("sighting", &id, ctx.now, ctx.now);
            object.insert("first_seen", first_seen.into());
            object.insert("last_seen", last_seen.into());
            object.insert("sighting_of_ref", indicator_id.into());
            object.insert(
                "where_sighted_refs",
                Value::Array(vec![sighted_by_id.into()]),
            );
            sightings.push(object);
        }
    }

    let mut relationships = Vec::new();
    if create_relationships {
        let indicator_id = indicator.as_ref().map(super::stix::id_of);
        let observable_id = observable.as_ref().map(super::stix::id_of);
        let comment = Some(comment);
        let marks = Some(markings.as_slice());
        if let (Some(indicator_id), Some(observable_id)) = (indicator_id, observable_id) {
            relationships.push(relationship(
                ctx,
                "based-on",
                indicator_id,
                observable_id,
                None,
                None,
            ));
        }
        if let Some(source_id) = object_observable_id {
            let target = match observable_id {
                Some(observable_id) if observable_id != source_id => Some(observable_id),
                _ => indicator_id,
            };
            if let Some(target) = target {
                relationships.push(relationship(
                    ctx,
                    "related-to",
                    source_id,
                    target,
                    None,
                    None,
                ));
            }
        }
        // Later threats of the same name override earlier ones, as in a Python dict.
        let mut threat_names: hashbrown::HashMap<&str, &str> = hashbrown::HashMap::new();
        for threat in ctx.event_elements.threats() {
            threat_names.insert(&threat.name, &threat.id);
            if let Some(indicator_id) = indicator_id {
                relationships.push(relationship(
                    ctx,
                    "indicates",
                    indicator_id,
                    &threat.id,
                    comment,
                    marks,
                ));
            }
            if let Some(observable_id) = observable_id {
                relationships.push(relationship(
                    ctx,
                    "related-to",
                    observable_id,
                    &threat.id,
                    comment,
                    marks,
                ));
            }
        }
        let resolve = |name: &str, id: &'_ str| -> String {
            threat_names
                .get(name)
                .map_or_else(|| id.to_string(), |known| known.to_string())
        };
        for threat in elements.threats() {
            let threat_id = resolve(&threat.name, &threat.id);
            if let Some(indicator_id) = indicator_id {
                relationships.push(relationship(
                    ctx,
                    "indicates",
                    indicator_id,
                    &threat_id,
                    comment,
                    marks,
                ));
            }
            if let Some(observable_id) = observable_id {
                relationships.push(relationship(
                    ctx,
                    "related-to",
                    observable_id,
                    &threat_id,
                    comment,
                    marks,
                ));
            }
        }
        for source in [ctx.event_elements, &elements] {
            for attack_pattern in &source.attack_patterns {
                let threats = if !source.malwares.is_empty() {
                    &source.malwares
                } else {
                    &source.intrusion_sets
                };
                for threat in threats {
                    let threat_id = resolve(&threat.name, &threat.id);
                    relationships.push(relationship(
                        ctx,
                        "uses",
                        &threat_id,
                        &attack_pattern.id,
                        comment,
                        marks,
                    ));
                }
            }
        }
        for target in elements.sectors.iter().chain(&elements.countries) {
            if let Some(indicator_id) = indicator_id {
                relationships.push(relationship(
                    ctx,
                    "related-to",
                    indicator_id,
                    &target.id,
                    comment,
                    marks,
                ));
            }
            if let Some(observable_id) = observable_id {
                relationships.push(relationship(
                    ctx,
                    "related-to",
                    observable_id,
                    &target.id,
                    comment,
                    marks,
                ));
            }
        }
    }

    Ok(Some(AttributeResult {
        indicator,
        observable,
        relationships,
        elements,
        markings,
        identities,
        sightings,
        warninglisted: warninglisted.filter(|_| part == 0),
    }))
}

/// The observable the connector builds for a resolved value; `None` where stix2 rejects
/// it (an invalid hash) or the connector has no constructor for the type (User-Agent).
#[allow(clippy::too_many_arguments)]
fn build_observable(
    ctx: &AttributeContext<'_>,
    resolver: Resolver,
    value: &str,
    file_name: Option<&str>,
    comment: &str,
    score: i64,
    labels: &Value,
    markings: &[Marking],
    external_references: &Value,
) -> Option<Object> {
    let single = |kind: &str, key: &'static str| -> Object {
        let mut object = sco(kind, single_property_sco_id(kind, key, value));
        object.insert(key, value.into());
        object
    };
    let mut object = match resolver {
        Resolver::Hostname => single("hostname", "value"),
        Resolver::Domain => single("domain-name", "value"),
        Resolver::Ipv4 => single("ipv4-addr", "value"),
        Resolver::Ipv6 => single("ipv6-addr", "value"),
        Resolver::Url => single("url", "value"),
        Resolver::EmailAddress => single("email-addr", "value"),
        Resolver::EmailSubject => {
            let mut object = single("email-message", "subject");
            object.insert("is_multipart", Value::Bool(true));
            object
        }
        Resolver::UserAccountGithub => {
            let mut data = Map::new();
            data.insert("account_login".into(), value.into());
            data.insert("account_type".into(), "github".into());
            let mut object = sco("user-account", sco_id("user-account", &Value::Object(data)));
            object.insert("account_login", value.into());
            object.insert("account_type", "github".into());
            object
        }
        Resolver::FileName | Resolver::PdbPath => single("file", "name"),
        Resolver::FileMd5 | Resolver::FileSha1 | Resolver::FileSha256 => {
            if !valid_hash(resolver, value) {
                return None;
            }
            let hash_name = resolver.hash_name().unwrap_or("MD5");
            let mut hashes = Map::new();
            hashes.insert(hash_name.into(), value.into());
            let hashes = Value::Object(hashes);
            let mut data = Map::new();
            data.insert("hashes".into(), hashes.clone());
            if let Some(file_name) = file_name {
                data.insert("name".into(), file_name.into());
            }
            let mut object = sco("file", sco_id("file", &Value::Object(data)));
            object.insert("hashes", hashes);
            if let Some(file_name) = file_name {
                object.insert("name", file_name.into());
            }
            object
        }
        Resolver::RegistryKey => single("windows-registry-key", "key"),
        Resolver::PhoneNumber => single("phone-number", "value"),
        Resolver::Text | Resolver::WindowsScheduledTask => single("text", "value"),
        Resolver::IdentityIndividual => {
            let id = identity_id(value, "individual");
            let mut object = sdo("identity", &id, ctx.now, ctx.now);
            object.insert("name", value.into());
            object.insert("identity_class", "individual".into());
            object.insert("description", comment.into());
            put_list(&mut object, "labels", labels);
            object.insert("created_by_ref", ctx.author_id.into());
            put_list(&mut object, "external_references", external_references);
            return Some(object);
        }
        Resolver::UserAgent | Resolver::Yara | Resolver::Sigma => return None,
    };
    put_list(&mut object, "object_marking_refs", &marking_refs(markings));
    object.insert("x_opencti_description", comment.into());
    object.insert("x_opencti_score", score.into());
    put_list(&mut object, "labels", labels);
    object.insert("created_by_ref", ctx.author_id.into());
    put_list(&mut object, "external_references", external_references);
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::pattern;

    #[test]
    fn pattern_constants_escape_backslashes_and_quotes_only() {
        assert_eq!(pattern("url", "value", "plain"), "[url:value = 'plain']");
        assert_eq!(
            pattern("file", "name", r"C:\a'b\'"),
            r"[file:name = 'C:\\a\'b\\\'']"
        );
        assert_eq!(pattern("x", "y", "caf\u{e9} \""), "[x:y = 'caf\u{e9} \"']");
        assert_eq!(pattern("x", "y", ""), "[x:y = '']");
    }
}
