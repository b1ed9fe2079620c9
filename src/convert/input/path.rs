//! JSON paths of the fields read (`Event.Attribute[12].value`), and the error that names one.

use serde_json::Value;

/// One step of a JSON path, kept as a borrowed chain so that a path string is only built
/// when an error is reported.
#[derive(Clone, Copy)]
pub(crate) struct JsonPath<'p> {
    parent: Option<&'p JsonPath<'p>>,
    step: Step<'p>,
}

#[derive(Clone, Copy)]
enum Step<'p> {
    Root(&'p str),
    Key(&'p str),
    Index(usize),
}

impl<'p> JsonPath<'p> {
    pub(crate) fn root(name: &'p str) -> Self {
        JsonPath {
            parent: None,
            step: Step::Root(name),
        }
    }

    pub(crate) fn key(&'p self, key: &'p str) -> JsonPath<'p> {
        JsonPath {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    pub(crate) fn index(&'p self, index: usize) -> JsonPath<'p> {
        JsonPath {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            steps.push(path.step);
            current = path.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root(name) => out.push_str(name),
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// A field error before the file name is attached: JSON path and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(path: &JsonPath<'_>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.render(),
            message: message.into(),
        }
    }
}

/// A field read ahead, whose error counts only if the conversion uses the field: the
/// connector never looks at a report's date when it makes no report, so neither does this.
pub(crate) type Deferred<T> = Result<T, FieldError>;

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(super) fn expected(path: &JsonPath<'_>, what: &str, got: &Value) -> FieldError {
    FieldError::new(path, format!("expected {what}, got {}", json_kind(got)))
}
