//! A value before typing: text from the environment, or a YAML scalar or list from
//! `config.yml`, with the name error lines give it.

use chrono::{DateTime, Utc};

use super::ConfigError;
use super::values::mask_url_credentials;

/// A value as the environment (always text) or YAML (typed scalars, lists) gave it.
#[derive(Debug, Clone)]
pub(crate) enum RawValue {
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) value: RawValue,
    /// How an error line names it: `MISP_FEED_URL`, or
    /// `MISP_FEED_URL (misp_feed.url in config.yml)`.
    pub(crate) origin: String,
    pub(crate) secret: bool,
}

impl Raw {
    /// The value for an error line; `None` for a secret.
    fn shown(&self) -> Option<String> {
        if self.secret {
            return None;
        }
        Some(match &self.value {
            RawValue::Text(text) => text.clone(),
            RawValue::Bool(flag) => flag.to_string(),
            RawValue::Int(number) => number.to_string(),
            RawValue::Float(number) => number.to_string(),
            RawValue::List(items) => items.join(","),
        })
    }

    pub(crate) fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            variable: self.origin.clone(),
            value: self.shown(),
            expected: expected.into(),
        }
    }

    /// A URL that may carry credentials: shown without them.
    pub(crate) fn invalid_url(&self, text: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            variable: self.origin.clone(),
            value: (!self.secret).then(|| mask_url_credentials(text)),
            expected: expected.to_string(),
        }
    }

    pub(crate) fn text(&self) -> Result<String, ConfigError> {
        match &self.value {
            RawValue::Text(text) => Ok(text.trim().to_string()),
            RawValue::Int(number) => Ok(number.to_string()),
            RawValue::Float(number) => Ok(number.to_string()),
            RawValue::Bool(flag) => Ok(flag.to_string()),
            RawValue::List(_) => Err(self.invalid("a single text value")),
        }
    }

    pub(crate) fn whole_number(&self, expected: &str) -> Result<i64, ConfigError> {
        let integral = |number: f64| number.fract() == 0.0 && number.abs() < 9.0e15;
        match &self.value {
            RawValue::Int(number) => Ok(*number),
            RawValue::Float(number) if integral(*number) => Ok(*number as i64),
            RawValue::Text(text) => {
                let text = text.trim();
                if let Ok(number) = text.parse::<i64>() {
                    return Ok(number);
                }
                match text.parse::<f64>() {
                    Ok(number) if integral(number) => Ok(number as i64),
                    _ => Err(self.invalid(expected)),
                }
            }
            _ => Err(self.invalid(expected)),
        }
    }

    pub(crate) fn number(&self, expected: &str) -> Result<f64, ConfigError> {
        let number = match &self.value {
            RawValue::Int(number) => *number as f64,
            RawValue::Float(number) => *number,
            RawValue::Text(text) => text
                .trim()
                .parse::<f64>()
                .map_err(|_| self.invalid(expected))?,
            _ => return Err(self.invalid(expected)),
        };
        if number.is_finite() {
            Ok(number)
        } else {
            Err(self.invalid(expected))
        }
    }
}

/// What loading needs besides the value: the moment a duration-valued date counts back from,
/// and where parsers report what they ignored.
pub(crate) struct Context {
    pub(crate) now: DateTime<Utc>,
    pub(crate) warnings: Vec<String>,
}
