//! Which events an operator wants imported: the sibling MISP connector's `MISP_IMPORT_*`
//! rules (tags, creator and owner organisations, a keyword of the title, distribution and
//! threat levels, published only), decided from what is known of an event.
//!
//! A feed's manifest carries some of an event's facts (`Tag`, `Orgc`, `info`,
//! `threat_level_id`), so most rules are decided before anything is downloaded; a rule on a
//! fact the manifest does not carry (the owner organisation, the distribution, whether it is
//! published) waits for the event file. Pure: no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The filter settings. Every list is empty (no rule) by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportFilters {
    /// Import only events carrying one of these tags.
    pub tags: Vec<String>,
    /// Never import events carrying one of these tags.
    pub tags_not: Vec<String>,
    /// Import only events created by one of these organisations (name or uuid).
    pub creator_orgs: Vec<String>,
    pub creator_orgs_not: Vec<String>,
    /// Import only events owned by one of these organisations (name or uuid).
    pub owner_orgs: Vec<String>,
    pub owner_orgs_not: Vec<String>,
    /// Import only events whose title (`info`) holds this text (any case).
    pub keyword: Option<String>,
    /// Import only events with one of these distribution levels (`0` to `5`).
    pub distribution_levels: Vec<String>,
    /// Import only events with one of these threat levels (`1` to `4`).
    pub threat_levels: Vec<String>,
    pub only_published: bool,
}

/// An organisation as MISP names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Org {
    pub(crate) name: Option<String>,
    pub(crate) uuid: Option<String>,
}

/// What is known of an event: `None` for a fact the source does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFacts {
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) creator_org: Option<Org>,
    pub(crate) owner_org: Option<Org>,
    pub(crate) info: Option<String>,
    pub(crate) distribution: Option<String>,
    pub(crate) threat_level: Option<String>,
    pub(crate) published: Option<bool>,
}

/// The verdict of the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Import,
    /// Left out, with the rule that excluded it.
    Excluded(String),
    /// A rule needs a fact these facts lack: decide again with the event file's.
    NeedsEvent,
}

fn org_matches(org: &Org, wanted: &[String]) -> bool {
    wanted.iter().any(|w| {
        org.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(w))
            || org
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(w))
    })
}

fn org_text(org: &Org) -> String {
    match (&org.name, &org.uuid) {
        (Some(name), _) => name.clone(),
        (None, Some(uuid)) => uuid.clone(),
        (None, None) => "an organisation without name or uuid".into(),
    }
}

impl ImportFilters {
    /// A short hash of the settings: when it changes, events left out by the old settings
    /// are decided again.
    #[cfg(test)]
    pub(crate) fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(self).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..8])
    }

    /// Decides `facts`. An excluding rule decides at once; a rule on a fact these facts lack
    /// asks for the event file (`NeedsEvent`), unless the facts are `complete` (the event's
    /// own): then the event does not carry the fact, and a rule requiring it excludes it,
    /// saying so.
    pub(crate) fn decide(&self, facts: &EventFacts, complete: bool) -> Verdict {
        let rules = [
            self.tag_rule(facts),
            org_rule(
                facts.creator_org.as_ref(),
                &self.creator_orgs,
                &self.creator_orgs_not,
                "creator organisation (Orgc)",
                "MISP_FEED_IMPORT_CREATOR_ORGS",
            ),
            org_rule(
                facts.owner_org.as_ref(),
                &self.owner_orgs,
                &self.owner_orgs_not,
                "owner organisation (Org)",
                "MISP_FEED_IMPORT_OWNER_ORGS",
            ),
            self.keyword_rule(facts),
            level_rule(
                facts.distribution.as_deref(),
                &self.distribution_levels,
                "distribution",
                "MISP_FEED_IMPORT_DISTRIBUTION_LEVELS",
            ),
            level_rule(
                facts.threat_level.as_deref(),
                &self.threat_levels,
                "threat level",
                "MISP_FEED_IMPORT_THREAT_LEVELS",
            ),
            self.published_rule(facts),
        ];
        if let Some(reason) = rules.iter().find_map(|rule| match rule {
            Rule::Fails(reason) => Some(reason.clone()),
            _ => None,
        }) {
            return Verdict::Excluded(reason);
        }
        match rules.iter().find_map(|rule| match rule {
            Rule::Unknown(option) => Some(*option),
            _ => None,
        }) {
            Some(option) if complete => Verdict::Excluded(format!(
                "{option}: the event does not say (the field is missing)"
            )),
            Some(_) => Verdict::NeedsEvent,
            None => Verdict::Import,
        }
    }

    fn tag_rule(&self, facts: &EventFacts) -> Rule {
        if self.tags.is_empty() && self.tags_not.is_empty() {
            return Rule::Passes;
        }
        let Some(tags) = &facts.tags else {
            return Rule::Unknown("MISP_FEED_IMPORT_TAGS");
        };
        let has = |wanted: &String| tags.iter().any(|t| t.eq_ignore_ascii_case(wanted));
        if let Some(tag) = self.tags_not.iter().find(|t| has(t)) {
            return Rule::Fails(format!("MISP_FEED_IMPORT_TAGS_NOT: tagged {tag:?}"));
        }
        if !self.tags.is_empty() && !self.tags.iter().any(has) {
            return Rule::Fails(format!(
                "MISP_FEED_IMPORT_TAGS: none of the tags {:?}",
                self.tags
            ));
        }
        Rule::Passes
    }

    fn keyword_rule(&self, facts: &EventFacts) -> Rule {
        let Some(keyword) = &self.keyword else {
            return Rule::Passes;
        };
        let Some(info) = &facts.info else {
            return Rule::Unknown("MISP_FEED_IMPORT_KEYWORD");
        };
        if info.to_lowercase().contains(&keyword.to_lowercase()) {
            Rule::Passes
        } else {
            Rule::Fails(format!(
                "MISP_FEED_IMPORT_KEYWORD: the title does not hold {keyword:?}"
            ))
        }
    }

    fn published_rule(&self, facts: &EventFacts) -> Rule {
        match (self.only_published, facts.published) {
            (false, _) | (true, Some(true)) => Rule::Passes,
            (true, Some(false)) => {
                Rule::Fails("MISP_FEED_IMPORT_ONLY_PUBLISHED: not published".into())
            }
            (true, None) => Rule::Unknown("MISP_FEED_IMPORT_ONLY_PUBLISHED"),
        }
    }
}

/// One rule on one event.
enum Rule {
    Passes,
    Fails(String),
    /// The rule is set, and the fact it reads is not known (the option's name).
    Unknown(&'static str),
}

fn org_rule(
    org: Option<&Org>,
    wanted: &[String],
    unwanted: &[String],
    what: &str,
    option: &'static str,
) -> Rule {
    if wanted.is_empty() && unwanted.is_empty() {
        return Rule::Passes;
    }
    let Some(org) = org else {
        return Rule::Unknown(option);
    };
    if org_matches(org, unwanted) {
        return Rule::Fails(format!("{option}_NOT: {what} {}", org_text(org)));
    }
    if !wanted.is_empty() && !org_matches(org, wanted) {
        return Rule::Fails(format!(
            "{option}: {what} {} is not one of {wanted:?}",
            org_text(org)
        ));
    }
    Rule::Passes
}

fn level_rule(level: Option<&str>, wanted: &[String], what: &str, option: &'static str) -> Rule {
    if wanted.is_empty() {
        return Rule::Passes;
    }
    match level {
        None => Rule::Unknown(option),
        Some(level) if wanted.iter().any(|w| w == level) => Rule::Passes,
        Some(level) => Rule::Fails(format!("{option}: {what} {level} is not one of {wanted:?}")),
    }
}

/// A MISP number that may come as a string or a number (`"3"`, `3`), as text.
fn level_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn org_of(value: &Value) -> Option<Org> {
    let object = value.as_object()?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
    Some(Org {
        name: text("name"),
        uuid: text("uuid"),
    })
}

fn tags_of(value: &Value) -> Option<Vec<String>> {
    Some(
        value
            .as_array()?
            .iter()
            .filter_map(|tag| tag.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
    )
}

impl EventFacts {
    /// The facts a manifest entry carries (its JSON object).
    pub(crate) fn of_manifest_entry(entry: &Value) -> EventFacts {
        EventFacts {
            tags: entry.get("Tag").and_then(tags_of),
            creator_org: entry.get("Orgc").and_then(org_of),
            owner_org: entry.get("Org").and_then(org_of),
            info: entry
                .get("info")
                .and_then(Value::as_str)
                .map(str::to_string),
            distribution: entry.get("distribution").and_then(level_text),
            threat_level: entry.get("threat_level_id").and_then(level_text),
            published: entry.get("published").and_then(Value::as_bool),
        }
    }

    /// The facts of an event (the `Event` object of a feed file). An event without `Tag`
    /// has no tags; other missing fields stay unknown.
    pub(crate) fn of_event(event: &Value) -> EventFacts {
        let mut facts = EventFacts::of_manifest_entry(event);
        if facts.tags.is_none() {
            facts.tags = Some(Vec::new());
        }
        if facts.published.is_none() {
            facts.published = event.get("published").and_then(|p| match p {
                Value::String(text) => Some(text == "1" || text.eq_ignore_ascii_case("true")),
                Value::Number(number) => Some(number.as_i64() == Some(1)),
                _ => None,
            });
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest_entry() -> Value {
        json!({
            "Orgc": {"name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
            "Tag": [{"name": "tlp:white"}, {"name": "misp-galaxy:threat-actor=\"Sofacy\""}],
            "info": "OSINT - Sofacy phishing",
            "threat_level_id": "3",
            "timestamp": "1533306089"
        })
    }

    #[test]
    fn no_rule_imports_everything() {
        let facts = EventFacts::of_manifest_entry(&manifest_entry());
        assert_eq!(
            ImportFilters::default().decide(&facts, false),
            Verdict::Import
        );
    }

    #[test]
    fn manifest_facts_decide_tags_orgs_keyword_and_threat_level() {
        let facts = EventFacts::of_manifest_entry(&manifest_entry());
        let cases = [
            (
                ImportFilters {
                    tags: vec!["TLP:WHITE".into()],
                    ..Default::default()
                },
                None,
            ),
            (
                ImportFilters {
                    tags: vec!["tlp:red".into()],
                    ..Default::default()
                },
                Some("MISP_FEED_IMPORT_TAGS: none of the tags"),
            ),
            (
                ImportFilters {
                    tags_not: vec!["tlp:white".into()],
                    ..Default::default()
                },
                Some("MISP_FEED_IMPORT_TAGS_NOT: tagged \"tlp:white\""),
            ),
            (
                ImportFilters {
                    creator_orgs: vec!["55f6ea5e-2c60-40e5-964f-47a8950d210f".into()],
                    ..Default::default()
                },
                None,
            ),
            (
                ImportFilters {
                    creator_orgs_not: vec!["circl".into()],
                    ..Default::default()
                },
                Some("MISP_FEED_IMPORT_CREATOR_ORGS_NOT: creator organisation (Orgc) CIRCL"),
            ),
            (
                ImportFilters {
                    keyword: Some("sofacy".into()),
                    ..Default::default()
                },
                None,
            ),
            (
                ImportFilters {
                    keyword: Some("emotet".into()),
                    ..Default::default()
                },
                Some("MISP_FEED_IMPORT_KEYWORD"),
            ),
            (
                ImportFilters {
                    threat_levels: vec!["3".into()],
                    ..Default::default()
                },
                None,
            ),
            (
                ImportFilters {
                    threat_levels: vec!["1".into(), "2".into()],
                    ..Default::default()
                },
                Some("MISP_FEED_IMPORT_THREAT_LEVELS: threat level 3"),
            ),
        ];
        for (filters, excluded) in cases {
            match (filters.decide(&facts, false), excluded) {
                (Verdict::Import, None) => {}
                (Verdict::Excluded(reason), Some(needle)) => {
                    assert!(reason.contains(needle), "{reason} lacks {needle}")
                }
                (other, expected) => panic!("{filters:?}: {other:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn facts_the_manifest_lacks_wait_for_the_event_which_decides() {
        let entry = EventFacts::of_manifest_entry(&manifest_entry());
        let filters = ImportFilters {
            only_published: true,
            owner_orgs: vec!["CIRCL".into()],
            ..Default::default()
        };
        assert_eq!(filters.decide(&entry, false), Verdict::NeedsEvent);
        let event = EventFacts::of_event(&json!({
            "published": false, "Org": {"name": "CIRCL"}, "Tag": []
        }));
        assert!(matches!(
            filters.decide(&event, true),
            Verdict::Excluded(reason) if reason.contains("not published")
        ));
        let published = EventFacts::of_event(&json!({"published": true, "Org": {"name": "circl"}}));
        assert_eq!(filters.decide(&published, true), Verdict::Import);
        // A feed event without `Org`: the owner rule cannot be met, and says why.
        let ownerless = EventFacts::of_event(&json!({"published": true}));
        assert!(matches!(
            filters.decide(&ownerless, true),
            Verdict::Excluded(reason) if reason.contains("MISP_FEED_IMPORT_OWNER_ORGS") && reason.contains("missing")
        ));
    }

    #[test]
    fn an_excluding_rule_decides_before_a_missing_fact_is_fetched() {
        let entry = EventFacts::of_manifest_entry(&manifest_entry());
        let filters = ImportFilters {
            tags_not: vec!["tlp:white".into()],
            only_published: true,
            ..Default::default()
        };
        assert!(matches!(
            filters.decide(&entry, false),
            Verdict::Excluded(_)
        ));
    }

    #[test]
    fn the_fingerprint_follows_the_settings() {
        let a = ImportFilters::default();
        let b = ImportFilters {
            only_published: true,
            ..Default::default()
        };
        assert_eq!(a.fingerprint(), ImportFilters::default().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
