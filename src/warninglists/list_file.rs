//! One `list.json` of MISP's `misp-warninglists` format, read as MISP imports it
//! (`Warninglist::update` and `__updateList`):
//!
//! - `name` and `description`: required, non-empty strings (MISP's model refuses a list
//!   without them).
//! - `version`: a number (or numeric text); missing means 1.
//! - `type`: `string`, `substring`, `hostname`, `cidr` or `regex`; missing means `string`; an
//!   array means its first element. Another word is no error: the list is skipped with a
//!   warning, as a type this reader does not know.
//! - `matching_attributes`: the attribute types the list applies to; missing or empty means
//!   every type (MISP stores `ALL`).
//! - `list`: the entries, an array of strings, or an object whose keys are the entries and whose
//!   values are comments (MISP's import with comments). Integers are taken as their digits,
//!   as PHP would. Entries PHP's `empty()` holds empty (`""` and `"0"`) are dropped by MISP.
//!
//! Other fields are ignored, as MISP ignores them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::ListKind;
use super::error::WarninglistError;

/// A list file as read, before its entries are compiled.
pub(super) struct ListFile {
    pub(super) file: PathBuf,
    pub(super) name: String,
    pub(super) version: String,
    pub(super) description: String,
    /// `Err(word)`: a type this reader does not know.
    pub(super) kind: Result<ListKind, String>,
    /// Empty: every attribute type.
    pub(super) matching_attributes: Vec<String>,
    /// Every entry in file order, empty ones included, so positions name the JSON element.
    pub(super) entries: Vec<String>,
}

impl ListFile {
    /// The entries MISP keeps, with their position in the file.
    pub(super) fn kept_entries(&self) -> impl Iterator<Item = (usize, &str)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| !php_empty(entry))
            .map(|(position, entry)| (position, entry.as_str()))
    }
}

/// PHP's `empty()` of a string: MISP skips such entries when it imports a list.
fn php_empty(text: &str) -> bool {
    text.is_empty() || text == "0"
}

#[derive(Deserialize)]
struct RawList {
    name: Option<Value>,
    version: Option<Value>,
    description: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    matching_attributes: Option<Value>,
    list: Option<RawEntries>,
}

pub(super) fn read(file: &Path) -> Result<ListFile, WarninglistError> {
    let bytes = std::fs::read(file).map_err(|error| WarninglistError::Read {
        file: file.to_path_buf(),
        reason: error.to_string(),
    })?;
    let json = crate::convert::without_utf8_bom(&bytes);
    let raw: RawList = serde_json::from_slice(json).map_err(|error| WarninglistError::Json {
        file: file.to_path_buf(),
        reason: error.to_string(),
    })?;
    let field_error = |field: &str, problem: String| WarninglistError::field(file, field, problem);

    let name =
        required_text(raw.name).map_err(|problem| field_error("name", problem.to_string()))?;
    let description = required_text(raw.description)
        .map_err(|problem| field_error("description", problem.to_string()))?;
    let version =
        version(raw.version).map_err(|problem| field_error("version", problem.to_string()))?;
    let kind = kind(raw.kind).map_err(|problem| field_error("type", problem.to_string()))?;
    let matching_attributes = matching_attributes(raw.matching_attributes)
        .map_err(|(field, problem)| field_error(&field, problem))?;
    let entries = match raw.list {
        None => return Err(field_error("list", "missing".to_string())),
        Some(RawEntries {
            problem: Some((position, problem)),
            ..
        }) => return Err(field_error(&format!("list[{position}]"), problem)),
        Some(RawEntries { entries, .. }) => entries,
    };
    Ok(ListFile {
        file: file.to_path_buf(),
        name,
        version,
        description,
        kind,
        matching_attributes,
        entries,
    })
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the text {text:?}"),
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// What is wrong with a field of the list header (`name`, `description`, `version`, `type`);
/// the found value as [`describe`] words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HeaderProblem {
    #[error("missing")]
    Missing,
    #[error("expected a non-empty string, found {0}")]
    NotText(String),
    #[error("expected a number, found {0}")]
    NotNumber(String),
    #[error("expected the type's name first in the array, found {0}")]
    TypeNotFirst(String),
    #[error("an empty array names no type")]
    EmptyTypeArray,
    #[error("expected one of string, substring, hostname, cidr, regex; found {0}")]
    NotAType(String),
}

fn required_text(value: Option<Value>) -> Result<String, HeaderProblem> {
    match value {
        None | Some(Value::Null) => Err(HeaderProblem::Missing),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(other) => Err(HeaderProblem::NotText(describe(&other))),
    }
}

fn version(value: Option<Value>) -> Result<String, HeaderProblem> {
    match value {
        None | Some(Value::Null) => Ok("1".to_string()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(Value::String(text))
            if text.trim().parse::<f64>().is_ok_and(f64::is_finite)
                && !text
                    .trim()
                    .contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            Ok(text.trim().to_string())
        }
        Some(other) => Err(HeaderProblem::NotNumber(describe(&other))),
    }
}

/// `Ok(Err(word))`: a type this reader does not know, named by its word.
fn kind(value: Option<Value>) -> Result<Result<ListKind, String>, HeaderProblem> {
    let word = match value {
        None | Some(Value::Null) => return Ok(Ok(ListKind::String)),
        Some(Value::String(word)) => word,
        Some(Value::Array(items)) => match items.into_iter().next() {
            Some(Value::String(word)) => word,
            Some(other) => return Err(HeaderProblem::TypeNotFirst(describe(&other))),
            None => return Err(HeaderProblem::EmptyTypeArray),
        },
        Some(other) => return Err(HeaderProblem::NotAType(describe(&other))),
    };
    Ok(ListKind::from_word(&word).ok_or(word))
}

fn matching_attributes(value: Option<Value>) -> Result<Vec<String>, (String, String)> {
    const FIELD: &str = "matching_attributes";
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(position, item)| match item {
                Value::String(text) => Ok(text),
                other => Err((
                    format!("{FIELD}[{position}]"),
                    format!("expected an attribute type, found {}", describe(&other)),
                )),
            })
            .collect(),
        Some(other) => Err((
            FIELD.to_string(),
            format!(
                "expected an array of attribute types, found {}",
                describe(&other)
            ),
        )),
    }
}

/// `list`, read without building a JSON tree of a million values: the entries, and the first
/// element that is no entry (its position and why).
struct RawEntries {
    entries: Vec<String>,
    problem: Option<(usize, String)>,
}

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EntriesVisitor)
    }
}

struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = RawEntries;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of entries, or an object of entries and their comments")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntries, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut problem = None;
        while let Some(item) = seq.next_element::<Value>()? {
            match item {
                Value::String(text) => entries.push(text),
                Value::Number(number) if number.is_i64() || number.is_u64() => {
                    entries.push(number.to_string());
                }
                other => {
                    if problem.is_none() {
                        problem = Some((
                            entries.len(),
                            format!("expected a string, found {}", describe(&other)),
                        ));
                    }
                    entries.push(String::new());
                }
            }
        }
        Ok(RawEntries { entries, problem })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            entries.push(key);
        }
        Ok(RawEntries {
            entries,
            problem: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<ListFile, WarninglistError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("list.json");
        std::fs::write(&file, text).unwrap();
        read(&file)
    }

    fn field_of(error: WarninglistError) -> (String, String) {
        match error {
            WarninglistError::Field { field, problem, .. } => (field, problem),
            other => panic!("not a field error: {other}"),
        }
    }

    #[test]
    fn a_complete_list_reads_with_every_field() {
        let list = read_text(
            r#"{"name": "n", "version": 3, "description": "d", "type": "cidr",
                "matching_attributes": ["ip-src", "ip-dst"], "list": ["10.0.0.0/8", "", "0", 7],
                "category": "known"}"#,
        )
        .unwrap();
        assert_eq!((list.name.as_str(), list.version.as_str()), ("n", "3"));
        assert_eq!(list.kind, Ok(ListKind::Cidr));
        assert_eq!(list.matching_attributes, ["ip-src", "ip-dst"]);
        assert_eq!(list.entries, ["10.0.0.0/8", "", "0", "7"]);
        let kept: Vec<(usize, &str)> = list.kept_entries().collect();
        assert_eq!(kept, [(0, "10.0.0.0/8"), (3, "7")]);
    }

    #[test]
    fn misp_defaults_apply_to_missing_version_type_and_matching_attributes() {
        let list = read_text(r#"{"name": "n", "description": "d", "list": ["a"]}"#).unwrap();
        assert_eq!(list.version, "1");
        assert_eq!(list.kind, Ok(ListKind::String));
        assert!(list.matching_attributes.is_empty());
        let list = read_text(
            r#"{"name": "n", "description": "d", "type": ["hostname", "string"],
                "matching_attributes": [], "list": {"a.example": "a comment", "b.example": ""}}"#,
        )
        .unwrap();
        assert_eq!(list.kind, Ok(ListKind::Hostname));
        assert_eq!(list.entries, ["a.example", "b.example"]);
    }

    #[test]
    fn an_unknown_type_is_no_error_but_is_reported_by_its_word() {
        let list =
            read_text(r#"{"name": "n", "description": "d", "type": "asn", "list": []}"#).unwrap();
        assert_eq!(list.kind, Err("asn".to_string()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (r#"{"description": "d", "list": []}"#, "name", "missing"),
            (
                r#"{"name": "", "description": "d", "list": []}"#,
                "name",
                "non-empty",
            ),
            (r#"{"name": "n", "list": []}"#, "description", "missing"),
            (
                r#"{"name": "n", "description": "d", "version": "two", "list": []}"#,
                "version",
                "the text \"two\"",
            ),
            (
                r#"{"name": "n", "description": "d", "type": 4, "list": []}"#,
                "type",
                "the number 4",
            ),
            (
                r#"{"name": "n", "description": "d", "type": [], "list": []}"#,
                "type",
                "empty",
            ),
            (
                r#"{"name": "n", "description": "d", "matching_attributes": "ip-src", "list": []}"#,
                "matching_attributes",
                "array",
            ),
            (
                r#"{"name": "n", "description": "d", "matching_attributes": ["ip-src", 3], "list": []}"#,
                "matching_attributes[1]",
                "the number 3",
            ),
            (r#"{"name": "n", "description": "d"}"#, "list", "missing"),
            (
                r#"{"name": "n", "description": "d", "list": ["a", null, true]}"#,
                "list[1]",
                "null",
            ),
            (
                r#"{"name": "n", "description": "d", "list": [1.5]}"#,
                "list[0]",
                "1.5",
            ),
        ];
        for (text, field, problem) in cases {
            let (found_field, found_problem) = field_of(read_text(text).err().unwrap());
            assert_eq!(found_field, field, "{text}");
            assert!(found_problem.contains(problem), "{text}: {found_problem}");
        }
    }

    #[test]
    fn broken_json_and_a_non_object_are_named_as_such() {
        for text in [
            "{\"name\": ",
            "[]",
            r#"{"name": "n", "description": "d", "list": "a"}"#,
        ] {
            let error = read_text(text).err().unwrap();
            assert!(
                matches!(error, WarninglistError::Json { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains("list.json"), "{error}");
        }
    }
}
