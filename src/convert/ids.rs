//! Deterministic STIX ids: pycti's `generate_id` (uuid5 over RFC 8785 canonical JSON in
//! OpenCTI's namespace) and the stix2 library's cyber-observable ids.
//!
//! Every function here must give the byte-identical id the Python connector gets, because
//! OpenCTI deduplicates on those ids: a different id for the same report or observable would
//! create a duplicate. `tests/fixtures/id_vectors.json` (made by `scripts/gen_id_vectors.py`
//! with the real pycti and stix2) pins that down.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::pycompat::json::{JsonDialect, shortest_digits, write_json, write_minimal_string};
use crate::pycompat::text::strip;
use crate::pycompat::time::python_isoformat;

/// The uuid5 namespace of both pycti's `generate_id` and stix2's SCO ids (they share it).
pub(crate) const OPENCTI_NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// `stix2.TLP_WHITE` (also what the connector uses for `tlp:clear`).
pub const TLP_WHITE_ID: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
/// `stix2.TLP_GREEN`.
pub const TLP_GREEN_ID: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
/// `stix2.TLP_AMBER`.
pub const TLP_AMBER_ID: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
/// `stix2.TLP_RED`.
pub const TLP_RED_ID: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
/// OpenCTI's fixed id for `TLP:AMBER+STRICT` (pycti `MarkingDefinition.generate_id`).
pub(crate) const TLP_AMBER_STRICT_ID: &str =
    "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37";

/// A date-time argument of a pycti `generate_id`: the Python connector passes either a
/// ready string (used verbatim) or a `datetime` (pycti turns it into `isoformat()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTime<'a> {
    /// A string, used as is.
    Text(&'a str),
    /// A timezone-aware `datetime`; rendered as Python's `isoformat()`.
    DateTime(DateTime<FixedOffset>),
}

impl<'a> From<&'a str> for IdTime<'a> {
    fn from(text: &'a str) -> Self {
        IdTime::Text(text)
    }
}

impl<'a> From<&'a String> for IdTime<'a> {
    fn from(text: &'a String) -> Self {
        IdTime::Text(text.as_str())
    }
}

impl From<DateTime<Utc>> for IdTime<'_> {
    fn from(moment: DateTime<Utc>) -> Self {
        IdTime::DateTime(moment.fixed_offset())
    }
}

impl From<DateTime<FixedOffset>> for IdTime<'_> {
    fn from(moment: DateTime<FixedOffset>) -> Self {
        IdTime::DateTime(moment)
    }
}

impl IdTime<'_> {
    /// The text pycti hashes: the string as given, or the `datetime`'s `isoformat()`.
    fn to_text(self) -> String {
        match self {
            IdTime::Text(text) => text.to_owned(),
            IdTime::DateTime(moment) => python_isoformat(&moment),
        }
    }
}

/// Python's `str.lower()` (full Unicode mapping, final sigma included, like Rust's).
fn python_lower(text: &str) -> String {
    text.to_lowercase()
}

/// pycti's `value.lower().strip()` (lowering first, as pycti does).
fn lower_strip(text: &str) -> String {
    strip(&python_lower(text)).to_owned()
}

/// RFC 8785 canonical JSON exactly as stix2's `canonicalize(obj, utf8=False)` renders it
/// (which pycti uses): keys sorted by UTF-16 code units, no whitespace, only `"`, `\` and
/// control characters escaped (non-ASCII kept raw), every number printed the ECMAScript way
/// after conversion to a double (so big integers lose precision, as in Python).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_json::<CanonicalJson>(value, &mut out);
    out
}

/// stix2's canonical JSON as a dialect of the shared JSON walker.
struct CanonicalJson;

impl JsonDialect for CanonicalJson {
    const ITEM_SEPARATOR: &'static str = ",";
    const KEY_SEPARATOR: &'static str = ":";
    const SORT_KEYS_BY_UTF16: bool = true;

    fn write_string(text: &str, out: &mut String) {
        write_minimal_string(text, out);
    }

    fn write_number(number: &Number, out: &mut String) {
        // serde_json numbers are i64, u64 or finite f64; Python also goes through float().
        let double = if let Some(signed) = number.as_i64() {
            signed as f64
        } else if let Some(unsigned) = number.as_u64() {
            unsigned as f64
        } else {
            number.as_f64().unwrap_or(0.0)
        };
        out.push_str(&es6_number(double));
    }
}

/// ECMAScript `Number.prototype.toString` of a finite double, from its shortest round-trip
/// digits (Python's `repr` and Rust's `{:e}` both produce those).
fn es6_number(double: f64) -> String {
    if double == 0.0 || !double.is_finite() {
        return "0".to_owned();
    }
    let (digits, exponent) = shortest_digits(double);
    let digit_count = digits.len() as i32;
    // `point` is where the decimal point falls relative to the start of `digits`.
    let point = exponent + 1;
    let mut text = String::new();
    if double < 0.0 {
        text.push('-');
    }
    if digit_count <= point && point <= 21 {
        text.push_str(&digits);
        text.push_str(&"0".repeat((point - digit_count) as usize));
    } else if 0 < point && point <= 21 {
        text.push_str(&digits[..point as usize]);
        text.push('.');
        text.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        text.push_str("0.");
        text.push_str(&"0".repeat((-point) as usize));
        text.push_str(&digits);
    } else {
        text.push_str(&digits[..1]);
        if digit_count > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        text.push('e');
        text.push(if point - 1 < 0 { '-' } else { '+' });
        text.push_str(&(point - 1).abs().to_string());
    }
    text
}

/// `"<stix_type>--<uuid5(OpenCTI namespace, canonical_json(data))>"`, the common tail of every
/// pycti `generate_id`.
pub fn pycti_id(stix_type: &str, data: &Value) -> String {
    stix_id(stix_type, uuid5(canonical_json(data).as_bytes()))
}

/// [`pycti_id`] of an object whose members are all strings, given with their keys in
/// canonical order (ASCII keys sorted bytewise): the canonical text is written directly,
/// with no map built to be sorted. Nearly every id of a conversion is of this kind.
pub(crate) fn pycti_id_of_strings(stix_type: &str, members: &[(&str, &str)]) -> String {
    debug_assert!(
        members.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "keys in canonical order"
    );
    let mut text = String::with_capacity(
        2 + members
            .iter()
            .map(|(key, value)| key.len() + value.len() + 6)
            .sum::<usize>(),
    );
    text.push('{');
    for (position, (key, value)) in members.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        CanonicalJson::write_string(key, &mut text);
        text.push(':');
        CanonicalJson::write_string(value, &mut text);
    }
    text.push('}');
    stix_id(stix_type, uuid5(text.as_bytes()))
}

/// `<stix_type>--<uuid>`, written without the formatting machinery (an id per object).
fn stix_id(stix_type: &str, uuid: Uuid) -> String {
    let mut buffer = Uuid::encode_buffer();
    let uuid = uuid.hyphenated().encode_lower(&mut buffer);
    let mut id = String::with_capacity(stix_type.len() + 2 + uuid.len());
    id.push_str(stix_type);
    id.push_str("--");
    id.push_str(uuid);
    id
}

/// RFC 4122 uuid5 of `name` in OpenCTI's namespace. The `uuid` crate's own v5 hashes with a
/// portable SHA-1; this one uses the processor's SHA instructions where it has them, and an
/// id is computed for nearly every object a conversion makes.
fn uuid5(name: &[u8]) -> Uuid {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(OPENCTI_NAMESPACE.as_bytes());
    hasher.update(name);
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

fn object(members: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    for (key, member) in members {
        map.insert(key.to_owned(), member);
    }
    Value::Object(map)
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

/// pycti `Report.generate_id(name, published)`; the connector passes a UTC `datetime`.
pub fn report_id<'a>(name: &str, published: impl Into<IdTime<'a>>) -> String {
    let published = published.into().to_text();
    pycti_id_of_strings(
        "report",
        &[("name", &lower_strip(name)), ("published", &published)],
    )
}

/// pycti `Indicator.generate_id(pattern)`.
pub fn indicator_id(pattern: &str) -> String {
    pycti_id_of_strings("indicator", &[("pattern", strip(pattern))])
}

/// pycti `Identity.generate_id(name, identity_class)`.
pub fn identity_id(name: &str, identity_class: &str) -> String {
    pycti_id_of_strings(
        "identity",
        &[
            ("identity_class", &python_lower(identity_class)),
            ("name", &lower_strip(name)),
        ],
    )
}

/// pycti's `generate_id` of the types named by their name alone (`Malware`,
/// `IntrusionSet`, `Tool`).
pub(crate) fn name_only_id(stix_type: &str, name: &str) -> String {
    pycti_id_of_strings(stix_type, &[("name", &lower_strip(name))])
}

/// pycti `Malware.generate_id(name)`.
pub fn malware_id(name: &str) -> String {
    name_only_id("malware", name)
}

/// pycti `IntrusionSet.generate_id(name)`.
pub fn intrusion_set_id(name: &str) -> String {
    name_only_id("intrusion-set", name)
}

/// pycti `Tool.generate_id(name)`.
pub fn tool_id(name: &str) -> String {
    name_only_id("tool", name)
}

/// pycti `AttackPattern.generate_id(name, x_mitre_id)`: the MITRE id wins when it is
/// non-empty after lowercasing and stripping.
pub fn attack_pattern_id(name: &str, x_mitre_id: Option<&str>) -> String {
    let mitre = x_mitre_id.map(lower_strip).unwrap_or_default();
    if mitre.is_empty() {
        name_only_id("attack-pattern", name)
    } else {
        pycti_id_of_strings("attack-pattern", &[("x_mitre_id", &mitre)])
    }
}

/// pycti `Location.generate_id(name, x_opencti_location_type)` (no latitude/longitude, as
/// the connector calls it; a `Position` then falls back to the name alone).
pub fn location_id(name: &str, location_type: &str) -> String {
    let lowered = lower_strip(name);
    if location_type == "Position" {
        pycti_id_of_strings("location", &[("name", &lowered)])
    } else {
        pycti_id_of_strings(
            "location",
            &[
                ("name", &lowered),
                ("x_opencti_location_type", location_type),
            ],
        )
    }
}

/// pycti `Note.generate_id(created, content)` (no abstract, as the connector calls it).
/// The content is stripped but keeps its case.
pub fn note_id(content: &str, created: Option<IdTime<'_>>) -> String {
    let content = strip(content);
    match created.map(IdTime::to_text) {
        Some(created) => {
            pycti_id_of_strings("note", &[("content", content), ("created", &created)])
        }
        None => pycti_id_of_strings("note", &[("content", content)]),
    }
}

/// pycti `MarkingDefinition.generate_id(definition_type, definition)`, including OpenCTI's
/// fixed ids for the TLP levels.
pub fn marking_definition_id(definition_type: &str, definition: &str) -> String {
    if definition_type == "TLP" {
        let fixed = match definition {
            "TLP:CLEAR" | "TLP:WHITE" => Some(TLP_WHITE_ID),
            "TLP:GREEN" => Some(TLP_GREEN_ID),
            "TLP:AMBER" => Some(TLP_AMBER_ID),
            "TLP:AMBER+STRICT" => Some(TLP_AMBER_STRICT_ID),
            "TLP:RED" => Some(TLP_RED_ID),
            _ => None,
        };
        if let Some(fixed) = fixed {
            return fixed.to_owned();
        }
    }
    pycti_id_of_strings(
        "marking-definition",
        &[
            ("definition", definition),
            ("definition_type", definition_type),
        ],
    )
}

/// pycti `StixCoreRelationship.generate_id(...)`. As in pycti, `stop_time` only counts when
/// `start_time` is given too.
pub fn relationship_id(
    relationship_type: &str,
    source_ref: &str,
    target_ref: &str,
    start_time: Option<IdTime<'_>>,
    stop_time: Option<IdTime<'_>>,
) -> String {
    let start = start_time.map(IdTime::to_text);
    let stop = start.as_ref().and(stop_time).map(IdTime::to_text);
    let mut members = Vec::with_capacity(5);
    members.push(("relationship_type", relationship_type));
    members.push(("source_ref", source_ref));
    if let Some(start) = &start {
        members.push(("start_time", start.as_str()));
    }
    if let Some(stop) = &stop {
        members.push(("stop_time", stop.as_str()));
    }
    members.push(("target_ref", target_ref));
    pycti_id_of_strings("relationship", &members)
}

/// pycti `StixSightingRelationship.generate_id(...)`. The connector passes one identity id
/// (a string, not a list) as `where_sighted_refs`; pass `Value::String` for that, or an
/// array for the list form. `last_seen` only counts when `first_seen` is given too.
pub fn sighting_id(
    sighting_of_ref: &str,
    where_sighted_refs: &Value,
    first_seen: Option<IdTime<'_>>,
    last_seen: Option<IdTime<'_>>,
) -> String {
    let first = first_seen.map(IdTime::to_text);
    let last = first.as_ref().and(last_seen).map(IdTime::to_text);
    if let Value::String(where_sighted) = where_sighted_refs {
        let mut members = Vec::with_capacity(5);
        if let Some(first) = &first {
            members.push(("first_seen", first.as_str()));
        }
        if let Some(last) = &last {
            members.push(("last_seen", last.as_str()));
        }
        members.push(("sighting_of_ref", sighting_of_ref));
        members.push(("type", "sighting"));
        members.push(("where_sighted_refs", where_sighted.as_str()));
        return pycti_id_of_strings("sighting", &members);
    }
    let mut members = vec![
        ("type", text("sighting")),
        ("sighting_of_ref", text(sighting_of_ref)),
        ("where_sighted_refs", where_sighted_refs.clone()),
    ];
    if let Some(first) = first {
        members.push(("first_seen", Value::String(first)));
        if let Some(last) = last {
            members.push(("last_seen", Value::String(last)));
        }
    }
    pycti_id("sighting", &object(members))
}

/// stix2's id of an observable whose one given property is the string `value` under `key`
/// (`{"value": ...}` for most types), written without building the property map.
pub(crate) fn single_property_sco_id(stix_type: &str, key: &str, value: &str) -> String {
    let contributes = key != "hashes"
        && sco_contributing_properties(stix_type).is_some_and(|keys| keys.contains(&key));
    if contributes {
        return pycti_id_of_strings(stix_type, &[(key, value)]);
    }
    let mut data = Map::new();
    data.insert(key.to_owned(), text(value));
    sco_id(stix_type, &Value::Object(data))
}

/// The id-contributing properties of each SCO type stix2 3.0.2 knows once pycti has
/// registered its custom observables, in stix2's order.
pub(crate) fn sco_contributing_properties(stix_type: &str) -> Option<&'static [&'static str]> {
    let properties: &'static [&'static str] = match stix_type {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "parent_directory_ref", "extensions"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "process" => &[],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        "bank-account" => &["iban"],
        "media-content" => &["url"],
        "payment-card" => &["card_number"],
        "persona" => &["persona_name", "persona_type"],
        "ai-prompt"
        | "credential"
        | "cryptocurrency-wallet"
        | "cryptographic-key"
        | "domain-name"
        | "email-addr"
        | "hostname"
        | "iccid"
        | "imei"
        | "imsi"
        | "ipv4-addr"
        | "ipv6-addr"
        | "mac-addr"
        | "phone-number"
        | "ssh-key"
        | "text"
        | "tracking-number"
        | "url"
        | "user-agent" => &["value"],
        _ => return None,
    };
    Some(properties)
}

/// The name stix2's `HashesProperty` stores a hash under: a recognised algorithm gets the
/// STIX 2.1 vocabulary spelling (`md5` -> `MD5`, `sha256` -> `SHA-256`); others stay as given.
fn stix_hash_name(key: &str) -> String {
    let algorithm: String = key.chars().filter(|c| *c != '-').collect();
    let spec = match algorithm.to_uppercase().as_str() {
        "MD5" => "MD5",
        "SHA1" => "SHA-1",
        "SHA256" => "SHA-256",
        "SHA512" => "SHA-512",
        "SHA3256" => "SHA3-256",
        "SHA3512" => "SHA3-512",
        "SSDEEP" => "SSDEEP",
        "TLSH" => "TLSH",
        _ => return key.to_owned(),
    };
    spec.to_owned()
}

/// stix2's `_choose_one_hash`: MD5, else SHA-1, else SHA-256, else SHA-512, else the first.
fn choose_one_hash(hashes: &Map<String, Value>) -> Option<Value> {
    let mut normalised = Map::new();
    for (key, hash) in hashes {
        normalised.insert(stix_hash_name(key), hash.clone());
    }
    let chosen = ["MD5", "SHA-1", "SHA-256", "SHA-512"]
        .into_iter()
        .find_map(|name| normalised.get_key_value(name))
        .or_else(|| normalised.iter().next())?;
    let mut single = Map::new();
    single.insert(chosen.0.clone(), chosen.1.clone());
    Some(Value::Object(single))
}

/// The deterministic id stix2 gives an SCO of `stix_type` built from `properties` (the
/// object's properties as passed to the stix2 constructor; extra ones are ignored), or `None`
/// where stix2 would fall back to a random uuid4: unknown type, or no contributing property
/// set. Like stix2, null and empty-list properties count as absent.
pub(crate) fn try_sco_id(stix_type: &str, properties: &Value) -> Option<String> {
    let contributing = sco_contributing_properties(stix_type)?;
    let mut data = Map::new();
    for &name in contributing {
        let Some(value) = properties.get(name) else {
            continue;
        };
        if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let value = if name == "hashes" {
            match value.as_object().and_then(choose_one_hash) {
                Some(chosen) => chosen,
                None => continue,
            }
        } else {
            value.clone()
        };
        data.insert(name.to_owned(), value);
    }
    if data.is_empty() {
        return None;
    }
    let uuid = uuid5(canonical_json(&Value::Object(data)).as_bytes());
    Some(stix_id(stix_type, uuid))
}

/// [`try_sco_id`], falling back to a random uuid4 id exactly where stix2 does.
pub fn sco_id(stix_type: &str, contributing: &Value) -> String {
    try_sco_id(stix_type, contributing)
        .unwrap_or_else(|| format!("{stix_type}--{}", Uuid::new_v4()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid5_is_rfc_4122_version_5() {
        for name in ["", "a", "{\"name\":\"caf\u{e9}\"}", &"x".repeat(200)] {
            assert_eq!(
                uuid5(name.as_bytes()),
                Uuid::new_v5(&OPENCTI_NAMESPACE, name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn ids_of_string_members_are_the_ids_of_their_maps() {
        let members = [
            ("definition", "x \"q\" \u{1} caf\u{e9}"),
            ("definition_type", "statement"),
        ];
        let map = object(
            members
                .iter()
                .map(|(key, value)| (*key, Value::from(*value)))
                .collect(),
        );
        assert_eq!(
            pycti_id_of_strings("marking-definition", &members),
            pycti_id("marking-definition", &map)
        );
        assert_eq!(pycti_id_of_strings("x", &[]), pycti_id("x", &json!({})));
    }

    #[test]
    fn es6_numbers_follow_ecmascript_rules() {
        let cases = [
            (1.0, "1"),
            (-0.0, "0"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (-2.5e300, "-2.5e+300"),
        ];
        for (double, expected) in cases {
            assert_eq!(es6_number(double), expected, "{double}");
        }
    }

    #[test]
    fn sco_without_contributing_properties_is_random() {
        assert_eq!(try_sco_id("process", &json!({"pid": 4})), None);
        assert_eq!(try_sco_id("domain-name", &json!({"value": null})), None);
        assert_ne!(sco_id("process", &json!({})), sco_id("process", &json!({})));
    }
}
