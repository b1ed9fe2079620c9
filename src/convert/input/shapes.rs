//! The shapes MISP writes besides the plain ones: lists where a text is expected, and PHP
//! arrays that `json_encode` wrote as objects.
//!
//! * MISP exports every galaxy cluster `meta` value as a list (`"ISO": ["FR"]`), where the
//!   galaxy's own JSON has a text (`"ISO": "FR"`); both reach feeds.
//! * A PHP array that lost entries (MISP drops galaxy tags from `Tag` without renumbering)
//!   is written as an object keyed by index (`{"0": {...}, "2": {...}}`); an empty one is
//!   written as `[]` even where an object is expected (`"meta": []`).

use std::borrow::Cow;

use serde_json::Value;

use crate::pycompat::repr::py_str;

/// The items of a list, or of a PHP array written as an object keyed by index (in index
/// order); `None` for anything else.
pub(crate) fn list_items(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Object(members) => {
            let mut indexed = Vec::with_capacity(members.len());
            for (key, item) in members {
                let index: u64 = key.parse().ok().filter(|_| is_index(key))?;
                indexed.push((index, item));
            }
            indexed.sort_by_key(|(index, _)| *index);
            Some(indexed.into_iter().map(|(_, item)| item).collect())
        }
        _ => None,
    }
}

/// `0`, `12`, but not `012`, `+1` or `1.0`: the keys PHP writes for a numbered array.
fn is_index(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'))
}

/// A value where the connector expects a text: a string, or a list of them as MISP writes
/// galaxy cluster values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a>(&'a Value);

impl<'a> Text<'a> {
    /// `None` for an absent or `null` value (stix2 leaves such a property out).
    pub(crate) fn of(value: Option<&'a Value>) -> Option<Text<'a>> {
        value.filter(|v| !v.is_null()).map(Text)
    }

    pub(crate) fn value(&self) -> &'a Value {
        self.0
    }

    /// What stix2 stores for it in a string property: Python's `str()` of it (`['FR']`).
    pub(crate) fn python(&self) -> Cow<'a, str> {
        match self.0 {
            Value::String(text) => Cow::Borrowed(text),
            other => Cow::Owned(py_str(other)),
        }
    }

    /// The texts it holds: itself, or each item of a list (non-text items as Python prints
    /// them).
    pub(crate) fn items(&self) -> Vec<Cow<'a, str>> {
        let text = |value: &'a Value| match value {
            Value::String(text) => Cow::Borrowed(text.as_str()),
            other => Cow::Owned(py_str(other)),
        };
        match self.0 {
            Value::Array(items) => items.iter().filter(|v| !v.is_null()).map(text).collect(),
            other => vec![text(other)],
        }
    }

    /// The first of [`Text::items`].
    pub(crate) fn first(&self) -> Option<Cow<'a, str>> {
        self.items().into_iter().next()
    }

    /// [`Text::items`] joined by `separator`.
    pub(crate) fn joined(&self, separator: &str) -> Cow<'a, str> {
        match self.0 {
            Value::String(text) => Cow::Borrowed(text),
            _ => Cow::Owned(self.items().join(separator)),
        }
    }

    /// The connector's text in compat mode, else the items joined by `separator`.
    pub(crate) fn render(&self, compat: bool, separator: &str) -> Cow<'a, str> {
        if compat {
            self.python()
        } else {
            self.joined(separator)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn php_arrays_written_as_objects_are_lists_in_index_order() {
        let value = json!({"10": "c", "2": "b", "0": "a"});
        let items: Vec<&Value> = list_items(&value).unwrap();
        assert_eq!(items, [&json!("a"), &json!("b"), &json!("c")]);
        assert_eq!(list_items(&json!({})).unwrap().len(), 0);
        assert!(list_items(&json!({"name": "x"})).is_none());
        assert!(list_items(&json!({"01": "x"})).is_none());
        assert!(list_items(&json!("x")).is_none());
    }

    #[test]
    fn texts_read_as_python_prints_them_or_as_their_items() {
        let listed = json!(["FR", "BE"]);
        let text = Text::of(Some(&listed)).unwrap();
        assert_eq!(text.python(), "['FR', 'BE']");
        assert_eq!(text.first().unwrap(), "FR");
        assert_eq!(text.joined(", "), "FR, BE");
        assert_eq!(text.render(true, ", "), "['FR', 'BE']");
        let plain = json!("FR");
        assert_eq!(Text::of(Some(&plain)).unwrap().render(true, ", "), "FR");
        assert_eq!(Text::of(Some(&plain)).unwrap().first().unwrap(), "FR");
        assert!(Text::of(Some(&Value::Null)).is_none());
        assert!(Text::of(Some(&json!([]))).unwrap().first().is_none());
    }
}
