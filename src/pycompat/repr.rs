//! Python's `str()` and `repr()` of what `json.loads` returns: what stix2 stores when the
//! connector hands a list or a number to a string property (stix2's `StringProperty` calls
//! `str()` on anything that is not a `str`), so `["FR"]` becomes the text `['FR']`.
//!
//! Limit: Python escapes unassigned code points (category Cn) in `repr`; without Unicode
//! tables only the noncharacters among them are known here, other unassigned code points are
//! kept as they are.

use serde_json::Value;

use super::json::python_float_repr;

/// Python's `str(value)`: a string is itself, anything else its `repr`.
pub(crate) fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(value)`.
pub(crate) fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(integer), _) => out.push_str(&integer.to_string()),
            (None, Some(integer)) => out.push_str(&integer.to_string()),
            (None, None) => out.push_str(&python_float_repr(number.as_f64().unwrap_or(0.0))),
        },
        Value::String(text) => write_string_repr(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (index, (key, member)) in members.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string_repr(key, out);
                out.push_str(": ");
                write_repr(member, out);
            }
            out.push('}');
        }
    }
}

/// `repr(str)`: single quotes unless the text holds a `'` and no `"`.
fn write_string_repr(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code <= 0xffff {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character: not a control (Cc), format (Cf),
/// private-use (Co), separator other than the space (Zs, Zl, Zp) or noncharacter.
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() {
        return false;
    }
    let code = u32::from(c);
    let separator = matches!(
        code,
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    );
    let format = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let private_use = matches!(code, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let noncharacter = (0xFDD0..=0xFDEF).contains(&code) || code & 0xFFFE == 0xFFFE;
    !(separator || format || private_use || noncharacter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each expected text is what CPython 3.11 prints for `str(json.loads(...))`.
    #[test]
    fn str_of_json_values_is_pythons() {
        let cases = [
            (json!(["FR"]), "['FR']"),
            (json!("FR"), "FR"),
            (json!([]), "[]"),
            (json!(["X'Y", "Z\"W", "é\n"]), r#"["X'Y", 'Z"W', 'é\n']"#),
            (json!(["both ' and \""]), r#"['both \' and "']"#),
            (
                json!([1, 2.5, 1e16, true, null]),
                "[1, 2.5, 1e+16, True, None]",
            ),
            (
                json!({"a": [1], "b": {"c": "d"}}),
                "{'a': [1], 'b': {'c': 'd'}}",
            ),
            (
                json!(["tab\tback\\slash\u{7}"]),
                r"['tab\tback\\slash\x07']",
            ),
            (
                json!(["nbsp\u{a0}zw\u{200b}pua\u{e000}astral\u{1f600}"]),
                r"['nbsp\xa0zw\u200bpua\ue000astral😀']",
            ),
            (json!(["\u{10fffe}"]), r"['\U0010fffe']"),
            (json!(7), "7"),
        ];
        for (value, expected) in cases {
            assert_eq!(py_str(&value), expected, "{value}");
        }
    }
}
