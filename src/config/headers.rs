//! Header lists in pycti's `name1:value1;name2:value2` format: `OPENCTI_CUSTOM_HEADERS`, read
//! as pycti reads it, and `MISP_FEED_HTTP_HEADERS`, whose every header is checked at start.
//! Header names are shown (the summary, `check`); values never leave their [`Secret`]s.

use serde_json::Value as Json;

use super::ConfigError;
use super::parsers::{Parser, Shape};
use super::raw::{Context, Raw};
use crate::secret::Secret;

/// The pairs of pycti's `name1:value1;name2:value2`, each with its number (from 1, as
/// written); `None` for a pair with no name or no `:`. Names and values are trimmed; empty
/// pairs are skipped.
fn header_pairs(text: &str) -> Vec<(usize, Option<(String, Secret)>)> {
    text.split(';')
        .enumerate()
        .filter(|(_, pair)| !pair.trim().is_empty())
        .map(|(index, pair)| {
            let header = pair
                .split_once(':')
                .filter(|(name, _)| !name.trim().is_empty())
                .map(|(name, value)| (name.trim().to_string(), Secret::new(value.trim())));
            (index + 1, header)
        })
        .collect()
}

/// Header names (their values hidden), as the summary and `check` show a header list.
fn header_names(headers: &[(String, Secret)]) -> Option<String> {
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    (!names.is_empty()).then(|| format!("{} (values hidden)", names.join(";")))
}

/// pycti's `OPENCTI_CUSTOM_HEADERS`: `name1:value1;name2:value2`. A malformed pair is
/// skipped with a warning, as pycti does, without its text.
pub(crate) struct Headers;

impl Parser for Headers {
    type Value = Vec<(String, Secret)>;
    fn parse(&self, raw: &Raw, context: &mut Context) -> Result<Self::Value, ConfigError> {
        let mut headers = Vec::new();
        for (number, pair) in header_pairs(&raw.text()?) {
            match pair {
                Some(header) => headers.push(header),
                None => context.warnings.push(format!(
                    "{}: header pair #{number} is not \"name:value\" and is ignored",
                    raw.origin
                )),
            }
        }
        Ok(headers)
    }
    fn show(&self, value: &Self::Value) -> Option<String> {
        header_names(value)
    }
    /// The header names are not secret; their values never leave their [`Secret`]s.
    fn redacted(&self, value: &Self::Value) -> Option<String> {
        self.show(value)
    }
    fn json(&self, _: &Self::Value) -> Json {
        Json::Null
    }
    fn shape(&self) -> Shape {
        Shape::formatted("string", "password")
    }
}

/// pycti's header format, `name1:value1;name2:value2`, for an option of ours: every pair must
/// be a valid header that the client does not set itself, given once, or start-up stops.
/// An error names the pair or the header, never a value (nor a name that is not one: it may
/// be a value typed in the wrong place).
pub(crate) struct CheckedHeaders {
    /// Lower-case names the client sets itself.
    pub(crate) reserved: &'static [&'static str],
}

const HEADERS_ACCEPTED: &str = "\"name1:value1;name2:value2\"";

impl Parser for CheckedHeaders {
    type Value = Vec<(String, Secret)>;
    fn parse(&self, raw: &Raw, _: &mut Context) -> Result<Self::Value, ConfigError> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut headers: Vec<(String, Secret)> = Vec::new();
        for (number, pair) in header_pairs(&raw.text()?) {
            let Some((name, value)) = pair else {
                return Err(raw.invalid(format!(
                    "{HEADERS_ACCEPTED} (pair #{number} is not name:value)"
                )));
            };
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                return Err(raw.invalid(format!(
                    "{HEADERS_ACCEPTED} whose names are letters, digits and !#$%&'*+-.^_`|~ \
                     (the name of pair #{number} is not)"
                )));
            };
            if HeaderValue::from_str(value.expose()).is_err() {
                return Err(raw.invalid(format!(
                    "{HEADERS_ACCEPTED} whose values hold no control characters \
                     (the value of {name} does)"
                )));
            }
            if self.reserved.contains(&header.as_str()) {
                return Err(raw.invalid(format!(
                    "{HEADERS_ACCEPTED} without {} ({name} is set by the connector itself)",
                    self.reserved.join(", ")
                )));
            }
            if headers
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(&name))
            {
                return Err(raw.invalid(format!(
                    "{HEADERS_ACCEPTED} naming each header once ({name} is given twice)"
                )));
            }
            headers.push((name, value));
        }
        Ok(headers)
    }
    fn show(&self, value: &Self::Value) -> Option<String> {
        header_names(value)
    }
    /// The header names are not secret; their values never leave their [`Secret`]s.
    fn redacted(&self, value: &Self::Value) -> Option<String> {
        self.show(value)
    }
    fn json(&self, _: &Self::Value) -> Json {
        Json::Null
    }
    fn shape(&self) -> Shape {
        Shape::formatted("string", "password")
    }
}
