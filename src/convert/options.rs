//! The conversion options, and the threat-level scores of `MISP_FEED_THREAT_LEVEL_SCORE_MAPPING`.

use std::fmt;

use serde_json::Value;

use crate::pycompat::text::{py_int, strip};

/// The conversion options of the configuration table (`MISP_FEED_*`). `Default` holds the
/// table's defaults (`config::options` tests that the two agree).
///
/// The options from `import_deleted` on change the default mode only: with
/// `reference_compat` the output stays the Python connector's, which has none of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    pub create_reports: bool,
    pub report_type: String,
    pub create_indicators: bool,
    pub create_observables: bool,
    pub create_object_observables: bool,
    pub create_tags_as_labels: bool,
    pub guess_threats_from_tags: bool,
    pub author_from_tags: bool,
    pub markings_from_tags: bool,
    pub import_to_ids_no_score: Option<i64>,
    pub import_unsupported_observables_as_text: bool,
    pub import_unsupported_observables_as_text_transparent: bool,
    pub import_with_attachments: bool,
    /// `MISP_FEED_REFERENCE_COMPAT`: reproduce the Python connector exactly, defects included.
    pub reference_compat: bool,
    /// `MISP_FEED_IMPORT_DELETED`: keep what MISP marks `"deleted": true` (attributes,
    /// objects, object references, event reports).
    pub import_deleted: bool,
    /// `MISP_FEED_INDICATORS_ONLY_TO_IDS`: indicators only for attributes whose `to_ids` is set.
    pub indicators_only_to_ids: bool,
    /// `MISP_FEED_INDICATOR_VALID_DAYS`: indicators get a `valid_until` this many days after
    /// their `valid_from`.
    pub indicator_valid_days: Option<u32>,
    /// `MISP_FEED_THREAT_LEVEL_SCORE_MAPPING`.
    pub threat_level_score_mapping: ThreatLevelScores,
    /// `MISP_FEED_KEEP_ORIGINAL_TAGS_AS_LABEL`: tags starting with one of these become labels
    /// as they are written.
    pub keep_original_tags_as_label: Vec<String>,
    /// `MISP_FEED_PROPAGATE_LABELS`: attributes with tags of their own also carry the event's
    /// labels.
    pub propagate_labels: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            create_reports: true,
            report_type: "misp-event".into(),
            create_indicators: false,
            create_observables: false,
            create_object_observables: false,
            create_tags_as_labels: true,
            guess_threats_from_tags: false,
            author_from_tags: false,
            markings_from_tags: false,
            import_to_ids_no_score: None,
            import_unsupported_observables_as_text: false,
            import_unsupported_observables_as_text_transparent: true,
            import_with_attachments: false,
            reference_compat: false,
            import_deleted: false,
            indicators_only_to_ids: false,
            indicator_valid_days: None,
            threat_level_score_mapping: ThreatLevelScores::default(),
            keep_original_tags_as_label: Vec::new(),
            propagate_labels: false,
        }
    }
}

impl ConvertOptions {
    /// Whether something MISP marks deleted (or not) is converted.
    pub(crate) fn keeps(&self, deleted: bool) -> bool {
        !deleted || self.import_deleted || self.reference_compat
    }

    /// The score of an event's threat level: the Python connector's fixed scores in compat
    /// mode, else the configured mapping.
    pub(crate) fn threat_level_score(&self, threat_level: Option<&Value>) -> i64 {
        if self.reference_compat {
            python_threat_level_score(threat_level)
        } else {
            self.threat_level_score_mapping.score(threat_level)
        }
    }
}

/// The connector's `_threat_level_to_score`: it compares the value with the texts "1", "2"
/// and "3", so a number (or anything else) scores 50.
fn python_threat_level_score(threat_level: Option<&Value>) -> i64 {
    match threat_level.and_then(Value::as_str) {
        Some("1") => 90,
        Some("2") => 60,
        Some("3") => 30,
        _ => 50,
    }
}

/// MISP threat level (1 high, 2 medium, 3 low, 4 undefined) to score, in the MISP
/// connector's format `1:90;2:60;3:30;4:50`. A level the mapping leaves out, and an event
/// whose threat level is none of the four, takes level 4's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreatLevelScores {
    high_medium_low: [Option<i64>; 3],
    undefined: i64,
}

impl Default for ThreatLevelScores {
    fn default() -> Self {
        ThreatLevelScores {
            high_medium_low: [Some(90), Some(60), Some(30)],
            undefined: 50,
        }
    }
}

impl ThreatLevelScores {
    /// The MISP connector's rules: `<level>:<score>` entries separated by `;` (blank entries
    /// skipped, a later entry for a level wins), levels 1 to 4, scores whole numbers from 0 to
    /// 100, level 4 present. The error names the offending entry.
    pub fn parse(text: &str) -> Result<ThreatLevelScores, String> {
        let mut levels: [Option<i64>; 4] = [None; 4];
        for entry in text.split(';').map(strip).filter(|entry| !entry.is_empty()) {
            let Some((level, score)) = entry.split_once(':') else {
                return Err(format!("entry '{entry}' is not <level>:<score>"));
            };
            let (level, score) = (strip(level), strip(score));
            let slot = match level {
                "1" => 0,
                "2" => 1,
                "3" => 2,
                "4" => 3,
                _ => return Err(format!("entry '{entry}': the level is not 1, 2, 3 or 4")),
            };
            let score = py_int(&Value::String(score.to_string()))
                .ok_or_else(|| format!("entry '{entry}': the score is not a whole number"))?;
            if !(0..=100).contains(&score) {
                return Err(format!("entry '{entry}': the score is not from 0 to 100"));
            }
            levels[slot] = Some(score);
        }
        let undefined = levels[3].ok_or("level 4 (undefined) has no score")?;
        Ok(ThreatLevelScores {
            high_medium_low: [levels[0], levels[1], levels[2]],
            undefined,
        })
    }

    /// The score of a `threat_level_id` (`"2"` or `2`).
    pub(crate) fn score(&self, threat_level: Option<&Value>) -> i64 {
        let slot = match threat_level {
            Some(Value::String(text)) => match text.as_str() {
                "1" => Some(0),
                "2" => Some(1),
                "3" => Some(2),
                _ => None,
            },
            Some(Value::Number(number)) => match number.as_i64() {
                Some(level @ 1..=3) => usize::try_from(level - 1).ok(),
                _ => None,
            },
            _ => None,
        };
        slot.and_then(|slot| self.high_medium_low[slot])
            .unwrap_or(self.undefined)
    }
}

impl fmt::Display for ThreatLevelScores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (slot, score) in self.high_medium_low.iter().enumerate() {
            if let Some(score) = score {
                write!(f, "{}:{score};", slot + 1)?;
            }
        }
        write!(f, "4:{}", self.undefined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_mapping_reads_the_misp_connectors_format() {
        let default = ThreatLevelScores::parse("1:90;2:60;3:30;4:50").unwrap();
        assert_eq!(default, ThreatLevelScores::default());
        assert_eq!(default.to_string(), "1:90;2:60;3:30;4:50");
        let spaced = ThreatLevelScores::parse(" 1 : 100 ;; 4:0; 1:95 ;").unwrap();
        assert_eq!(spaced.to_string(), "1:95;4:0");
        for (text, reason) in [
            ("1:90;2:60", "level 4 (undefined) has no score"),
            ("", "level 4 (undefined) has no score"),
            ("1=90;4:50", "entry '1=90' is not <level>:<score>"),
            ("5:90;4:50", "entry '5:90': the level is not 1, 2, 3 or 4"),
            (
                "1:high;4:50",
                "entry '1:high': the score is not a whole number",
            ),
            (
                "1:9.5;4:50",
                "entry '1:9.5': the score is not a whole number",
            ),
            (
                "1:101;4:50",
                "entry '1:101': the score is not from 0 to 100",
            ),
            ("4:-1", "entry '4:-1': the score is not from 0 to 100"),
        ] {
            assert_eq!(
                ThreatLevelScores::parse(text).unwrap_err(),
                reason,
                "{text}"
            );
        }
    }

    #[test]
    fn a_level_without_a_score_takes_level_4s() {
        let mapping = ThreatLevelScores::parse("1:100;3:10;4:40").unwrap();
        assert_eq!(mapping.score(Some(&json!("1"))), 100);
        assert_eq!(mapping.score(Some(&json!(1))), 100);
        assert_eq!(mapping.score(Some(&json!("2"))), 40);
        assert_eq!(mapping.score(Some(&json!("3"))), 10);
        assert_eq!(mapping.score(Some(&json!("4"))), 40);
        assert_eq!(mapping.score(Some(&json!("0"))), 40);
        assert_eq!(mapping.score(Some(&json!("01"))), 40);
        assert_eq!(mapping.score(Some(&json!(["1"]))), 40);
        assert_eq!(mapping.score(None), 40);
    }

    #[test]
    fn compat_scores_as_the_python_connector_compares() {
        let compat = ConvertOptions {
            reference_compat: true,
            threat_level_score_mapping: ThreatLevelScores::parse("1:1;2:2;3:3;4:4").unwrap(),
            ..ConvertOptions::default()
        };
        assert_eq!(compat.threat_level_score(Some(&json!("1"))), 90);
        assert_eq!(compat.threat_level_score(Some(&json!(1))), 50);
        assert_eq!(compat.threat_level_score(None), 50);
        let default = ConvertOptions {
            reference_compat: false,
            ..compat
        };
        assert_eq!(default.threat_level_score(Some(&json!("1"))), 1);
        assert_eq!(default.threat_level_score(Some(&json!(2))), 2);
        assert_eq!(default.threat_level_score(Some(&json!("x"))), 4);
    }
}
