//! MISP tags as markings and labels (the connector's `_resolve_markings` and
//! `_resolve_tags`); the threats, sectors and countries derived from tags and galaxies are
//! in `elements.rs`.

use super::ConvertOptions;
use super::input::Tag;
use super::stix::{Marking, statement_marking, tlp};
use crate::pycompat::text::{drop_last_char, isdigit, strip};

/// Markings from tags; TLP:WHITE when none and `with_default`.
pub(crate) fn resolve_markings(
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

/// Labels from tags (empty unless `create_tags_as_labels`). Outside compat mode a tag
/// starting with one of `keep_original_tags_as_label` is a label as it is written, as the
/// MISP connector keeps them.
pub(crate) fn resolve_labels(tags: &[Tag<'_>], options: &ConvertOptions) -> Vec<String> {
    let mut labels = Vec::new();
    if !options.create_tags_as_labels {
        return labels;
    }
    let kept_as_written: &[String] = if options.reference_compat {
        &[]
    } else {
        &options.keep_original_tags_as_label
    };
    for tag in tags {
        let name = tag.name;
        if kept_as_written
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
        {
            labels.push(name.to_string());
            continue;
        }
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
