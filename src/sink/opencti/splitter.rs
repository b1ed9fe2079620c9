//! pycti's `OpenCTIStix2Splitter.split_bundle_with_expectations`, reproduced byte for byte
//! (pycti 7.261026.0).
//!
//! The platform's workers import what they receive as is, so every split bundle must be the
//! text pycti would have sent: one object per bundle, that object edited the way pycti edits it
//! (refs cleaned, `nb_deps` appended), the bundles ordered by dependency count and serialised
//! with Python's `json.dumps` defaults. Cycles, duplicate refs and objects reachable through an
//! internal id are handled with pycti's exact (sometimes surprising) bookkeeping, because the
//! message order and each `x_opencti_seq` depend on it.
//!
//! The split is planned once ([`SplitPlan`]: which object goes in which message, its
//! `nb_deps` and edits, the order) and each message's text is written from the bundle text
//! when it is needed, so a sink can send the messages of a huge bundle without holding them
//! all.

mod enlist;

use std::ops::Range;

use serde_json::Value;

use self::enlist::{Splitter, parse_raw};
use super::raw_json::{Member, array_elements, object_members, write_raw_python};
use crate::pycompat::json::{PythonJson, python_json_dumps, write_json, write_python_string};

/// OpenCTI's STIX extension definition; its `id` member is an internal id, like `x_opencti_id`.
pub(crate) const OPENCTI_EXTENSION: &str =
    "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba";

/// pycti refuses to recurse deeper than Python's recursion limit (about 1000 frames); a chain
/// of references longer than this is reported as an error instead of exhausting the stack.
const MAX_REFERENCE_DEPTH: usize = 2000;

/// The STIX types pycti's splitter accepts (`supported_types` in `opencti_stix2_splitter.py`:
/// entities, internal objects, observables, relationships, `pir`).
const SUPPORTED_TYPES: &[&str] = &[
    "label",
    "vocabulary",
    "kill-chain-phase",
    "attack-pattern",
    "campaign",
    "case-incident",
    "x-opencti-case-incident",
    "case-rfi",
    "x-opencti-case-rfi",
    "case-rft",
    "x-opencti-case-rft",
    "channel",
    "course-of-action",
    "data-component",
    "x-mitre-data-component",
    "data-source",
    "x-mitre-data-source",
    "event",
    "external-reference",
    "feedback",
    "x-opencti-feedback",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "language",
    "location",
    "malware",
    "malware-analysis",
    "marking-definition",
    "narrative",
    "note",
    "observed-data",
    "opinion",
    "report",
    "task",
    "x-opencti-task",
    "threat-actor",
    "tool",
    "vulnerability",
    "security-coverage",
    "security-coverage-result",
    "user",
    "group",
    "capability",
    "role",
    "settings",
    "notification",
    "work",
    "trash",
    "draftworkspace",
    "playbook",
    "deleteoperation",
    "workspace",
    "publicdashboard",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "email-mime-part-type",
    "artifact",
    "file",
    "x509-certificate",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "windows-registry-value-type",
    "hostname",
    "cryptographic-key",
    "cryptocurrency-wallet",
    "text",
    "user-agent",
    "bank-account",
    "phone-number",
    "credential",
    "tracking-number",
    "payment-card",
    "media-content",
    "simple-observable",
    "persona",
    "ssh-key",
    "ai-prompt",
    "imei",
    "iccid",
    "imsi",
    "relationship",
    "sighting",
    "pir",
];

/// pycti's `is_id_supported`: a STIX id (`type--uuid`) must be of a supported type; anything
/// without `--` is not filtered.
pub(crate) fn is_id_supported(id: &str) -> bool {
    match id.split_once("--") {
        Some((id_type, _)) => SUPPORTED_TYPES.contains(&id_type),
        None => true,
    }
}

/// Why a bundle could not be split (pycti raises on the same inputs).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    #[error("bundle is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("bundle has no \"objects\" array")]
    NotABundle,
    #[error("bundle object #{index} has no string \"id\"")]
    ObjectWithoutId { index: usize },
    #[error("bundle object {id} has no string \"type\"")]
    ObjectWithoutType { id: String },
    #[error("bundle object {id}: reference chain deeper than {MAX_REFERENCE_DEPTH}")]
    ReferencesTooDeep { id: String },
}

/// Options of `split_bundle_with_expectations` as `send_stix2_bundle` passes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitOptions {
    /// `event_version`, written as `x_opencti_event_version` when set (the MISP path: unset).
    pub event_version: Option<String>,
    /// `cleanup_inconsistent_bundle`: drop refs to objects missing from the bundle
    /// (the MISP path: false).
    pub cleanup_inconsistent_bundle: bool,
}

/// One split bundle: what goes, base64-encoded, into one AMQP message's `content`.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitBundle {
    /// `id` of the single object the bundle carries.
    pub object_id: String,
    /// `type` of that object.
    pub object_type: String,
    /// Its dependency count (`nb_deps`, also the bundle's `x_opencti_seq`).
    pub nb_deps: u64,
    /// The bundle JSON exactly as pycti serialises it (ASCII only).
    pub content: String,
}

/// Everything the splitter produces, including what it drops.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOutcome {
    /// Number of expectations to announce to the work (= `bundles.len()`).
    pub expectations: usize,
    /// The bundles, in publishing order (`action_sequence` = index + 1).
    pub bundles: Vec<SplitBundle>,
    /// Ids of the objects pycti lists as incompatible (not sent, not counted).
    pub incompatible_ids: Vec<String>,
}

/// pycti `split_bundle_with_expectations(bundle, use_json=True, ...)`:
/// `(expectations, bundles)`; see [`split_bundle_detailed`] for the dropped objects too.
pub fn split_bundle_with_expectations(
    bundle_json: &str,
    options: &SplitOptions,
) -> Result<(usize, Vec<SplitBundle>), SplitError> {
    let outcome = split_bundle_detailed(bundle_json, options)?;
    Ok((outcome.expectations, outcome.bundles))
}

/// [`split_bundle_with_expectations`] with the incompatible objects reported as well.
pub fn split_bundle_detailed(
    bundle_json: &str,
    options: &SplitOptions,
) -> Result<SplitOutcome, SplitError> {
    let plan = SplitPlan::new(bundle_json, options)?;
    let bundles = (0..plan.len())
        .map(|position| plan.bundle(bundle_json, position))
        .collect();
    Ok(SplitOutcome {
        expectations: plan.len(),
        bundles,
        incompatible_ids: plan.incompatible_ids(bundle_json),
    })
}

/// The split of one bundle, decided once: the objects to send in publishing order, the
/// members pycti edits and each object's `nb_deps`. It holds no text of its own: every
/// message is written from the bundle text the plan was made from, which the caller keeps.
#[derive(Debug)]
pub struct SplitPlan {
    /// Where each object of the bundle lies in the bundle text.
    objects: Vec<Range<usize>>,
    /// The members pycti edited, per object (see `Splitter::edits`).
    edits: Vec<Vec<(String, Value)>>,
    nb_deps: Vec<u64>,
    /// The objects to send, in publishing order (`action_sequence` = position + 1).
    order: Vec<usize>,
    incompatible: Vec<usize>,
    /// The bundle's `id`, and the event version if any, in `json.dumps` form.
    bundle_id_json: String,
    event_version_json: Option<String>,
}

impl SplitPlan {
    /// Plans the split of `bundle_json` as pycti's splitter does.
    pub fn new(bundle_json: &str, options: &SplitOptions) -> Result<SplitPlan, SplitError> {
        // The whole text is checked once; after that the bundle is read as slices of it,
        // never as a tree: a bundle of hundreds of megabytes is not held twice.
        serde_json::from_str::<serde::de::IgnoredAny>(bundle_json)
            .map_err(|error| SplitError::InvalidJson(error.to_string()))?;
        let bundle = object_members(bundle_json).ok_or(SplitError::NotABundle)?;
        let bundle_id = match bundle.iter().find(|(key, _)| key == "id") {
            Some((_, raw)) => parse_raw(raw),
            None => Value::String(format!("bundle--{}", uuid::Uuid::new_v4())),
        };
        let objects = bundle
            .iter()
            .find(|(key, _)| key == "objects")
            .and_then(|(_, raw)| array_elements(raw))
            .ok_or(SplitError::NotABundle)?;
        drop(bundle);
        let ranges = objects
            .iter()
            .map(|object| {
                let start = object.as_ptr() as usize - bundle_json.as_ptr() as usize;
                start..start + object.len()
            })
            .collect();

        let (mut splitter, top_level_ids) =
            Splitter::new(objects, options.cleanup_inconsistent_bundle)?;
        for id in &top_level_ids {
            let mut parents = Vec::new();
            splitter.enlist(id, &mut parents)?;
        }
        drop(top_level_ids);

        // Stable sort, as Python's `list.sort(key=...)`.
        let mut order = std::mem::take(&mut splitter.elements);
        order.sort_by_key(|&index| splitter.nb_deps[index]);
        Ok(SplitPlan {
            objects: ranges,
            edits: splitter.edits,
            nb_deps: splitter.nb_deps,
            order,
            incompatible: splitter.incompatible,
            bundle_id_json: python_json_dumps(&bundle_id),
            event_version_json: options
                .event_version
                .as_ref()
                .map(|version| python_json_dumps(&Value::String(version.clone()))),
        })
    }

    /// The number of split bundles (pycti's expectations).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The members of object `index`, read from `bundle_json`.
    fn members<'t>(&self, bundle_json: &'t str, index: usize) -> Vec<Member<'t>> {
        self.objects
            .get(index)
            .and_then(|range| bundle_json.get(range.clone()))
            .and_then(object_members)
            .unwrap_or_default()
    }

    /// Appends split bundle `position` (0-based, publishing order) as pycti serialises it.
    /// `bundle_json` must be the text the plan was made from.
    pub fn write_content(&self, bundle_json: &str, position: usize, out: &mut String) {
        let Some(&index) = self.order.get(position) else {
            return;
        };
        let members = self.members(bundle_json, index);
        self.write_bundle(index, &members, out);
    }

    /// Split bundle `position` with its object's id and type.
    pub fn bundle(&self, bundle_json: &str, position: usize) -> SplitBundle {
        let index = self.order.get(position).copied().unwrap_or(usize::MAX);
        let members = self.members(bundle_json, index);
        let mut content = String::new();
        self.write_bundle(index, &members, &mut content);
        SplitBundle {
            object_id: string_member(&members, "id"),
            object_type: string_member(&members, "type"),
            nb_deps: self.nb_deps.get(index).copied().unwrap_or_default(),
            content,
        }
    }

    /// The number of objects pycti lists as incompatible.
    pub fn incompatible_len(&self) -> usize {
        self.incompatible.len()
    }

    /// Ids of the objects pycti lists as incompatible (not sent, not counted).
    pub fn incompatible_ids(&self, bundle_json: &str) -> Vec<String> {
        self.incompatible
            .iter()
            .map(|&index| string_member(&self.members(bundle_json, index), "id"))
            .collect()
    }

    /// `{"type": "bundle", "id": ..., "spec_version": "2.1", "x_opencti_seq": nb_deps,
    /// "objects": [object][, "x_opencti_event_version": ...]}`.
    fn write_bundle(&self, index: usize, members: &[Member<'_>], out: &mut String) {
        let nb_deps = self.nb_deps.get(index).copied().unwrap_or_default();
        out.push_str("{\"type\": \"bundle\", \"id\": ");
        out.push_str(&self.bundle_id_json);
        out.push_str(", \"spec_version\": \"2.1\", \"x_opencti_seq\": ");
        out.push_str(&nb_deps.to_string());
        out.push_str(", \"objects\": [");
        self.write_object(index, members, out);
        out.push(']');
        if let Some(version) = &self.event_version_json {
            out.push_str(", \"x_opencti_event_version\": ");
            out.push_str(version);
        }
        out.push('}');
    }

    /// The object as pycti sends it: its members in order, the edited ones replaced, and
    /// `nb_deps` (in its place if the object had one, else last), in `json.dumps` form.
    fn write_object(&self, index: usize, members: &[Member<'_>], out: &mut String) {
        let nb_deps = Value::from(self.nb_deps.get(index).copied().unwrap_or_default());
        let edits = self.edits.get(index).map_or(&[][..], Vec::as_slice);
        let mut nb_deps_written = false;
        out.push('{');
        for (position, (key, raw)) in members.iter().enumerate() {
            if position > 0 {
                out.push_str(", ");
            }
            write_python_string(key, out);
            out.push_str(": ");
            if key == "nb_deps" {
                nb_deps_written = true;
                write_json::<PythonJson>(&nb_deps, out);
            } else if let Some((_, value)) = edits.iter().find(|(edited, _)| edited == key) {
                write_json::<PythonJson>(value, out);
            } else {
                write_raw_python(raw, out);
            }
        }
        if !nb_deps_written {
            if !members.is_empty() {
                out.push_str(", ");
            }
            out.push_str("\"nb_deps\": ");
            write_json::<PythonJson>(&nb_deps, out);
        }
        out.push('}');
    }
}

/// Member `key` when it is a string, else empty.
fn string_member(members: &[Member<'_>], key: &str) -> String {
    match members.iter().find(|(member, _)| member == key) {
        Some((_, raw)) => match parse_raw(raw) {
            Value::String(text) => text,
            _ => String::new(),
        },
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_ids() {
        assert!(is_id_supported("report--1"));
        assert!(is_id_supported("no-dashes"));
        assert!(!is_id_supported("x-misp-object--1"));
    }
}
