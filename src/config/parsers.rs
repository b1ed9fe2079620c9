//! Typed parsers: what the environment or `config.yml` gave (a [`Raw`] value) becomes the
//! value a `Settings` field holds. Each parser also says how that value is shown (summary,
//! `Debug`, `check`) and documented (JSON type, accepted values), so an option's parser is
//! the one place that knows its type.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};

use super::ConfigError;
use super::raw::{Context, Raw, RawValue};
use super::values::{
    format_iso_duration, mask_url_credentials, parse_bool, parse_import_from_date, parse_size,
};
use crate::convert::ThreatLevelScores;
use crate::secret::Secret;

const BOOL_ACCEPTED: &str = "a boolean: true/false, yes/no, on/off, t/f, y/n or 1/0 (any case)";
const DURATION_ACCEPTED: &str = "an ISO-8601 duration such as PT5M, PT1H or P1D (or HH:MM:SS)";
const IMPORT_FROM_ACCEPTED: &str = "a date (2023-10-01), a datetime (2023-10-01T00:00:00Z) or an ISO-8601 duration counted back from now (P30D)";

/// What the documentation and the JSON schema say about a value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shape {
    pub(crate) json_type: &'static str,
    pub(crate) format: Option<&'static str>,
    pub(crate) choices: Vec<&'static str>,
    pub(crate) minimum: Option<f64>,
    pub(crate) exclusive_minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
}

impl Shape {
    fn of(json_type: &'static str) -> Shape {
        Shape {
            json_type,
            ..Shape::default()
        }
    }

    pub(crate) fn formatted(json_type: &'static str, format: &'static str) -> Shape {
        Shape {
            format: Some(format),
            ..Shape::of(json_type)
        }
    }
}

/// From a raw value to a typed one, and back to text for people and documents.
pub(crate) trait Parser: Sync + 'static {
    type Value: 'static;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<Self::Value, ConfigError>;
    /// The value as the summary shows it; `None` when it means "unset".
    fn show(&self, value: &Self::Value) -> Option<String>;
    /// The value of a secret option as it may be shown: by default only that it is set.
    fn redacted(&self, _: &Self::Value) -> Option<String> {
        Some("<set>".to_string())
    }
    /// The value in the JSON schema (defaults).
    fn json(&self, value: &Self::Value) -> Json;
    fn shape(&self) -> Shape;
}

/// A JSON number, whole when it is (the schema says `10`, not `10.0`).
pub(crate) fn json_number(number: f64) -> Json {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        json!(number as i64)
    } else {
        json!(number)
    }
}

/// "a, b or c".
fn alternatives(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_string(),
        None => String::new(),
    }
}

/// `true/false`, `yes/no`, `on/off`, `t/f`, `y/n`, `1/0`, any case; YAML booleans.
pub(crate) struct Flag;

impl Parser for Flag {
    type Value = bool;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<bool, ConfigError> {
        match &raw.value {
            RawValue::Bool(flag) => Ok(*flag),
            RawValue::Int(0) => Ok(false),
            RawValue::Int(1) => Ok(true),
            RawValue::Text(text) => parse_bool(text).ok_or_else(|| raw.invalid(BOOL_ACCEPTED)),
            _ => Err(raw.invalid(BOOL_ACCEPTED)),
        }
    }
    fn show(&self, value: &bool) -> Option<String> {
        Some(value.to_string())
    }
    fn json(&self, value: &bool) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("boolean")
    }
}

/// Any text, trimmed.
pub(crate) struct Text;

impl Parser for Text {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        raw.text()
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(value.clone())
    }
    fn json(&self, value: &String) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// One of these words, any case; the table's spelling is kept.
pub(crate) struct OneOf(pub(crate) &'static [&'static str]);

impl Parser for OneOf {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        let text = raw.text()?;
        match self.0.iter().find(|word| word.eq_ignore_ascii_case(&text)) {
            Some(word) => Ok((*word).to_string()),
            None if self.0.len() == 1 => Err(raw.invalid(format!("{} (any case)", self.0[0]))),
            None => Err(raw.invalid(format!("one of {} (any case)", self.0.join(", ")))),
        }
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(value.clone())
    }
    fn json(&self, value: &String) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape {
            choices: self.0.to_vec(),
            ..Shape::of("string")
        }
    }
}

/// One of these names (any case), each meaning a value of an enum.
pub(crate) struct Variant<E: 'static>(pub(crate) &'static [(&'static str, E)]);

impl<E: Copy + PartialEq + Sync + 'static> Parser for Variant<E> {
    type Value = E;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<E, ConfigError> {
        let text = raw.text()?;
        self.0
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&text))
            .map(|(_, value)| *value)
            .ok_or_else(|| raw.invalid(alternatives(&self.shape().choices)))
    }
    fn show(&self, value: &E) -> Option<String> {
        self.0
            .iter()
            .find(|(_, candidate)| candidate == value)
            .map(|(name, _)| (*name).to_string())
    }
    fn json(&self, value: &E) -> Json {
        self.show(value).map_or(Json::Null, Json::String)
    }
    fn shape(&self) -> Shape {
        Shape {
            choices: self.0.iter().map(|(name, _)| *name).collect(),
            ..Shape::of("string")
        }
    }
}

/// An `http://` or `https://` URL; a trailing `/` is dropped. Shown without credentials.
pub(crate) struct HttpUrl;

impl Parser for HttpUrl {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        const EXPECTED: &str = "an http:// or https:// URL";
        let text = raw.text()?;
        match url::Url::parse(&text) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                Ok(text.trim_end_matches('/').to_string())
            }
            _ => Err(raw.invalid_url(&text, EXPECTED)),
        }
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(mask_url_credentials(value))
    }
    fn json(&self, value: &String) -> Json {
        json!(mask_url_credentials(value))
    }
    fn shape(&self) -> Shape {
        Shape::formatted("string", "uri")
    }
}

/// The feed: an `http(s)://` or `file://` URL, or a folder path. Every trailing `/` is
/// dropped, as Python does, except from the root folder itself.
pub(crate) struct FeedUrl;

impl Parser for FeedUrl {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        const EXPECTED: &str = "an http://, https:// or file:// URL, or a local folder path";
        let text = raw.text()?;
        let stripped = text.trim_end_matches('/');
        let url = if stripped.is_empty() {
            text.as_str()
        } else {
            stripped
        };
        if url.contains("://") {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
                Ok(parsed) if parsed.scheme() == "file" => {}
                _ => return Err(raw.invalid_url(&text, EXPECTED)),
            }
        }
        Ok(url.to_string())
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(mask_url_credentials(value))
    }
    fn json(&self, value: &String) -> Json {
        json!(mask_url_credentials(value))
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// A path, as given.
pub(crate) struct FilePath;

impl Parser for FilePath {
    type Value = PathBuf;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<PathBuf, ConfigError> {
        Ok(PathBuf::from(raw.text()?))
    }
    fn show(&self, value: &PathBuf) -> Option<String> {
        Some(value.display().to_string())
    }
    fn json(&self, value: &PathBuf) -> Json {
        json!(value.display().to_string())
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// The path of a PEM file that exists now (checked at start, not at first use).
pub(crate) struct PemFile;

impl Parser for PemFile {
    type Value = PathBuf;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<PathBuf, ConfigError> {
        let path = FilePath.parse(raw, context)?;
        if path.is_file() {
            Ok(path)
        } else {
            Err(raw.invalid("the path of an existing, readable PEM file"))
        }
    }
    fn show(&self, value: &PathBuf) -> Option<String> {
        FilePath.show(value)
    }
    fn json(&self, value: &PathBuf) -> Json {
        FilePath.json(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// The path of a folder that exists now (checked at start, not at first use).
pub(crate) struct FolderPath;

impl Parser for FolderPath {
    type Value = PathBuf;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<PathBuf, ConfigError> {
        let path = FilePath.parse(raw, context)?;
        if path.is_dir() {
            Ok(path)
        } else {
            Err(raw.invalid("the path of an existing folder"))
        }
    }
    fn show(&self, value: &PathBuf) -> Option<String> {
        FilePath.show(value)
    }
    fn json(&self, value: &PathBuf) -> Json {
        FilePath.json(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// pycti's way of giving a CA: the PEM text itself, or the path of a PEM file.
pub(crate) struct PemFileOrText;

const PEM_MARKER: &str = "-----BEGIN";

impl Parser for PemFileOrText {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        let text = raw.text()?;
        if text.contains(PEM_MARKER) || std::path::Path::new(&text).is_file() {
            Ok(text)
        } else {
            Err(raw.invalid("the PEM text itself, or the path of an existing PEM file"))
        }
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(if value.contains(PEM_MARKER) {
            "<PEM text>".to_string()
        } else {
            value.clone()
        })
    }
    fn json(&self, value: &String) -> Json {
        self.show(value).map_or(Json::Null, Json::String)
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// Comma-separated text, or a YAML list; empty items are dropped.
pub(crate) struct TextList;

impl Parser for TextList {
    type Value = Vec<String>;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<Vec<String>, ConfigError> {
        let items: Vec<String> = match &raw.value {
            RawValue::List(items) => items.iter().map(|item| item.trim().to_string()).collect(),
            RawValue::Text(text) => text
                .split(',')
                .map(|item| item.trim().to_string())
                .collect(),
            _ => vec![raw.text()?],
        };
        Ok(items.into_iter().filter(|item| !item.is_empty()).collect())
    }
    /// An empty list is no value: shown as unset.
    fn show(&self, value: &Vec<String>) -> Option<String> {
        (!value.is_empty()).then(|| value.join(","))
    }
    fn json(&self, value: &Vec<String>) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("array")
    }
}

/// A [`TextList`] whose items must be among `.0` (MISP's distribution or threat levels).
pub(crate) struct ChoiceList(pub(crate) &'static [&'static str], pub(crate) &'static str);

impl Parser for ChoiceList {
    type Value = Vec<String>;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<Vec<String>, ConfigError> {
        let items = TextList.parse(raw, context)?;
        match items.iter().find(|item| !self.0.contains(&item.as_str())) {
            Some(_) => Err(raw.invalid(self.1)),
            None => Ok(items),
        }
    }
    fn show(&self, value: &Vec<String>) -> Option<String> {
        TextList.show(value)
    }
    fn json(&self, value: &Vec<String>) -> Json {
        TextList.json(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("array")
    }
}

/// An ISO-8601 duration (or `HH:MM:SS`), 0 or more; YAML numbers are seconds.
pub(crate) struct IsoDuration;

impl Parser for IsoDuration {
    type Value = Duration;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<Duration, ConfigError> {
        let seconds = match &raw.value {
            RawValue::Int(number) => *number as f64,
            RawValue::Float(number) => *number,
            RawValue::Text(text) => super::values::parse_duration_seconds(text)
                .ok_or_else(|| raw.invalid(DURATION_ACCEPTED))?,
            _ => return Err(raw.invalid(DURATION_ACCEPTED)),
        };
        if seconds.is_finite() && (0.0..1.0e11).contains(&seconds) {
            Ok(Duration::from_secs_f64(seconds))
        } else {
            Err(raw.invalid(DURATION_ACCEPTED))
        }
    }
    fn show(&self, value: &Duration) -> Option<String> {
        Some(format_iso_duration(*value))
    }
    fn json(&self, value: &Duration) -> Json {
        json!(format_iso_duration(*value))
    }
    fn shape(&self) -> Shape {
        Shape::formatted("string", "duration")
    }
}

/// A number from `min` (excluded when `min_open`) to below `below`.
pub(crate) struct Number {
    pub(crate) min: f64,
    pub(crate) min_open: bool,
    pub(crate) below: f64,
    pub(crate) expected: &'static str,
}

impl Parser for Number {
    type Value = f64;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<f64, ConfigError> {
        let number = raw.number(self.expected)?;
        let above_min = if self.min_open {
            number > self.min
        } else {
            number >= self.min
        };
        if above_min && number < self.below {
            Ok(number)
        } else {
            Err(raw.invalid(self.expected))
        }
    }
    fn show(&self, value: &f64) -> Option<String> {
        Some(value.to_string())
    }
    fn json(&self, value: &f64) -> Json {
        json_number(*value)
    }
    fn shape(&self) -> Shape {
        let (minimum, exclusive_minimum) = if self.min_open {
            (None, Some(self.min))
        } else {
            (Some(self.min), None)
        };
        Shape {
            minimum,
            exclusive_minimum,
            ..Shape::of("number")
        }
    }
}

/// A [`Number`] of seconds.
pub(crate) struct Seconds(pub(crate) Number);

impl Parser for Seconds {
    type Value = Duration;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs_f64(self.0.parse(raw, context)?))
    }
    fn show(&self, value: &Duration) -> Option<String> {
        Some(value.as_secs_f64().to_string())
    }
    fn json(&self, value: &Duration) -> Json {
        json_number(value.as_secs_f64())
    }
    fn shape(&self) -> Shape {
        self.0.shape()
    }
}

/// A whole number from `min` to `max`, stored as `T`.
pub(crate) struct Int<T> {
    min: i64,
    max: i64,
    expected: &'static str,
    stored_as: PhantomData<fn() -> T>,
}

impl<T> Int<T> {
    pub(crate) const fn new(min: i64, max: i64, expected: &'static str) -> Self {
        Int {
            min,
            max,
            expected,
            stored_as: PhantomData,
        }
    }
}

impl<T> Parser for Int<T>
where
    T: TryFrom<i64> + Copy + std::fmt::Display + Into<Json> + 'static,
{
    type Value = T;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<T, ConfigError> {
        let number = raw.whole_number(self.expected)?;
        if !(self.min..=self.max).contains(&number) {
            return Err(raw.invalid(self.expected));
        }
        T::try_from(number).map_err(|_| raw.invalid(self.expected))
    }
    fn show(&self, value: &T) -> Option<String> {
        Some(value.to_string())
    }
    fn json(&self, value: &T) -> Json {
        (*value).into()
    }
    fn shape(&self) -> Shape {
        Shape {
            minimum: (self.min != i64::MIN).then_some(self.min as f64),
            maximum: (self.max != i64::MAX).then_some(self.max as f64),
            ..Shape::of("integer")
        }
    }
}

/// Bytes, more than 0, with an optional K/M/G suffix.
pub(crate) struct Size;

impl Parser for Size {
    type Value = u64;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<u64, ConfigError> {
        const EXPECTED: &str =
            "a size in bytes greater than 0, optionally with a K, M or G suffix (512M)";
        let size = match &raw.value {
            RawValue::Int(number) => u64::try_from(*number).ok(),
            RawValue::Text(text) => parse_size(text),
            _ => None,
        };
        match size {
            Some(size) if size > 0 => Ok(size),
            _ => Err(raw.invalid(EXPECTED)),
        }
    }
    fn show(&self, value: &u64) -> Option<String> {
        Some(value.to_string())
    }
    fn json(&self, value: &u64) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape {
            minimum: Some(1.0),
            ..Shape::of("integer")
        }
    }
}

/// A token, key or header value: kept in a [`Secret`], shown only as set.
pub(crate) struct SecretText;

impl Parser for SecretText {
    type Value = Secret;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<Secret, ConfigError> {
        Ok(Secret::new(raw.text()?))
    }
    fn show(&self, _: &Secret) -> Option<String> {
        Some("<set>".to_string())
    }
    fn json(&self, _: &Secret) -> Json {
        Json::Null
    }
    fn shape(&self) -> Shape {
        Shape::formatted("string", "password")
    }
}

/// `import_from_date` as the Python connector reads it: a date or datetime, else a duration
/// counted back from now.
pub(crate) struct ImportFrom;

impl Parser for ImportFrom {
    type Value = DateTime<Utc>;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<DateTime<Utc>, ConfigError> {
        parse_import_from_date(&raw.text()?, context.now)
            .ok_or_else(|| raw.invalid(IMPORT_FROM_ACCEPTED))
    }
    fn show(&self, value: &DateTime<Utc>) -> Option<String> {
        Some(value.to_rfc3339())
    }
    fn json(&self, value: &DateTime<Utc>) -> Json {
        json!(value.to_rfc3339())
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// A part of a Prometheus metric name: letters, digits and `_`, not starting with a digit.
pub(crate) struct MetricName;

impl Parser for MetricName {
    type Value = String;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<String, ConfigError> {
        let name = raw.text()?;
        let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Ok(name)
        } else {
            Err(raw.invalid(
                "letters, digits and '_', not starting with a digit (a Prometheus name part)",
            ))
        }
    }
    fn show(&self, value: &String) -> Option<String> {
        Some(value.clone())
    }
    fn json(&self, value: &String) -> Json {
        json!(value)
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// The MISP connector's threat-level scores, `1:90;2:60;3:30;4:50`.
pub(crate) struct ScoreMapping;

impl Parser for ScoreMapping {
    type Value = ThreatLevelScores;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<ThreatLevelScores, ConfigError> {
        ThreatLevelScores::parse(&raw.text()?).map_err(|reason| {
            raw.invalid(format!(
                "<level>:<score> entries separated by ';', levels 1 to 4 with 4 required, \
                 scores whole numbers from 0 to 100, such as 1:90;2:60;3:30;4:50 ({reason})"
            ))
        })
    }
    fn show(&self, value: &ThreatLevelScores) -> Option<String> {
        Some(value.to_string())
    }
    fn json(&self, value: &ThreatLevelScores) -> Json {
        json!(value.to_string())
    }
    fn shape(&self) -> Shape {
        Shape::of("string")
    }
}

/// The Python connector's deprecated `MISP_FEED_INTERVAL`: whole minutes that replace the
/// run period whenever they are set (even over `CONNECTOR_DURATION_PERIOD`), with a warning.
pub(crate) struct IntervalMinutes;

impl Parser for IntervalMinutes {
    type Value = Duration;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<Duration, ConfigError> {
        const EXPECTED: &str =
            "a whole number of minutes, 0 or more (deprecated: use CONNECTOR_DURATION_PERIOD)";
        let minutes = Int::<u64>::new(0, 52_560_000, EXPECTED).parse(raw, context)?;
        context.warnings.push(format!(
            "MISP_FEED_INTERVAL is deprecated, use CONNECTOR_DURATION_PERIOD (PT{minutes}M); \
             as in the Python connector, its {minutes} minute(s) replace CONNECTOR_DURATION_PERIOD"
        ));
        Ok(Duration::from_secs(minutes * 60))
    }
    fn show(&self, value: &Duration) -> Option<String> {
        Some((value.as_secs() / 60).to_string())
    }
    fn json(&self, value: &Duration) -> Json {
        json!(value.as_secs() / 60)
    }
    fn shape(&self) -> Shape {
        Shape {
            minimum: Some(0.0),
            ..Shape::of("integer")
        }
    }
}
