//! The members of a JSON object and the elements of a JSON array, as slices of the text they
//! are written in, so the splitter reads a bundle of hundreds of megabytes without building
//! a tree of it. The text must be valid JSON (the splitter checks the whole bundle first);
//! on anything else these functions give `None` rather than a wrong answer.

use std::borrow::Cow;

use serde_json::Value;

use crate::pycompat::json::{
    PythonJson, first_matching, python_escapes, write_json, write_python_string,
};

/// One member of an object: its key (unescaped) and the text of its value.
pub(super) type Member<'a> = (Cow<'a, str>, &'a str);

fn skip_whitespace(bytes: &[u8], mut position: usize) -> usize {
    while position < bytes.len() && matches!(bytes[position], b' ' | b'\t' | b'\n' | b'\r') {
        position += 1;
    }
    position
}

/// The end (exclusive) of the string starting at `position` (its opening quote).
fn skip_string(bytes: &[u8], mut position: usize) -> Option<usize> {
    position += 1;
    // Most of a bundle's bytes are inside strings, most strings are short: jump to the next
    // quote or backslash, 16 bytes at a time.
    while let Some(offset) =
        first_matching(bytes.get(position..)?, |byte| byte == b'"' || byte == b'\\')
    {
        position += offset;
        if bytes[position] == b'"' {
            return Some(position + 1);
        }
        position += 2;
    }
    None
}

/// The end (exclusive) of the value starting at `position`.
fn skip_value(bytes: &[u8], position: usize) -> Option<usize> {
    match bytes.get(position)? {
        b'"' => skip_string(bytes, position),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = position;
            while at < bytes.len() {
                match bytes[at] {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
            None
        }
        _ => {
            // A number, `true`, `false` or `null`: up to the next delimiter.
            let mut at = position;
            while at < bytes.len()
                && !matches!(bytes[at], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                at += 1;
            }
            Some(at)
        }
    }
}

/// The items of the object or array starting at `open` (`{` or `[`), calling `item` with the
/// start of each; `item` returns where the item ends.
fn walk_items(
    bytes: &[u8],
    open: usize,
    mut item: impl FnMut(usize) -> Option<usize>,
) -> Option<()> {
    let mut at = skip_whitespace(bytes, open + 1);
    if matches!(bytes.get(at), Some(b'}' | b']')) {
        return Some(());
    }
    loop {
        at = skip_whitespace(bytes, item(at)?);
        match bytes.get(at)? {
            b',' => at = skip_whitespace(bytes, at + 1),
            b'}' | b']' => return Some(()),
            _ => return None,
        }
    }
}

/// The members of the object `text`, in order; a key given twice keeps its first place and
/// its last value, as Python's `json.loads` (and serde_json's ordered map) read it. `None`
/// when `text` is not an object.
pub(super) fn object_members(text: &str) -> Option<Vec<Member<'_>>> {
    let bytes = text.as_bytes();
    let open = skip_whitespace(bytes, 0);
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let mut members: Vec<Member<'_>> = Vec::new();
    walk_items(bytes, open, |key_start| {
        let key_end = skip_string(bytes, key_start)?;
        let key_text = text.get(key_start..key_end)?;
        let key: Cow<'_, str> = if key_text.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(key_text).ok()?)
        } else {
            Cow::Borrowed(key_text.get(1..key_text.len() - 1)?)
        };
        let colon = skip_whitespace(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(bytes, colon + 1);
        let value_end = skip_value(bytes, value_start)?;
        let value = text.get(value_start..value_end)?;
        match members.iter_mut().find(|(existing, _)| *existing == key) {
            Some(member) => member.1 = value,
            None => members.push((key, value)),
        }
        Some(value_end)
    })?;
    Some(members)
}

/// The elements of the array `text`, in order. `None` when `text` is not an array.
pub(super) fn array_elements(text: &str) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    let open = skip_whitespace(bytes, 0);
    if bytes.get(open) != Some(&b'[') {
        return None;
    }
    let mut elements = Vec::new();
    walk_items(bytes, open, |start| {
        let end = skip_value(bytes, start)?;
        elements.push(text.get(start..end)?);
        Some(end)
    })?;
    Some(elements)
}

/// Writes a JSON value, given as its text, as Python's `json.dumps` writes what `json.loads`
/// reads from it, without building a tree: arrays and objects item by item, strings of
/// printable ASCII without escapes, small non-negative integers and the literals copied
/// (they are the same text in both). Anything else (floats, negative numbers, strings with
/// escapes or beyond ASCII) goes through a parsed value.
pub(super) fn write_raw_python(raw: &str, out: &mut String) {
    match raw.as_bytes().first() {
        Some(b'"') => {
            if is_plain_string(raw) {
                out.push_str(raw);
                return;
            }
            if let Ok(text) = serde_json::from_str::<Cow<'_, str>>(raw) {
                write_python_string(&text, out);
                return;
            }
        }
        Some(b'[') => {
            if let Some(elements) = array_elements(raw) {
                out.push('[');
                for (position, element) in elements.iter().enumerate() {
                    if position > 0 {
                        out.push_str(", ");
                    }
                    write_raw_python(element, out);
                }
                out.push(']');
                return;
            }
        }
        Some(b'{') => {
            // Members as `json.loads` reads them: a repeated key keeps its first place and
            // its last value.
            if let Some(members) = object_members(raw) {
                out.push('{');
                for (position, (key, value)) in members.iter().enumerate() {
                    if position > 0 {
                        out.push_str(", ");
                    }
                    write_python_string(key, out);
                    out.push_str(": ");
                    write_raw_python(value, out);
                }
                out.push('}');
                return;
            }
        }
        _ => {
            // u64 holds every 19-digit number: such an integer is written back as it came.
            let small_integer = raw.len() <= 19 && raw.bytes().all(|byte| byte.is_ascii_digit());
            if small_integer || matches!(raw, "true" | "false" | "null") {
                out.push_str(raw);
                return;
            }
        }
    }
    let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    write_json::<PythonJson>(&value, out);
}

/// A JSON string of printable ASCII without escapes: the same text in Python's output.
fn is_plain_string(raw: &str) -> bool {
    raw.len() >= 2
        && raw.ends_with('"')
        && first_matching(&raw.as_bytes()[1..raw.len() - 1], python_escapes).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_slices_of_the_text() {
        let text = r#" {"a": [1, {"x": "]}"}], "b\"c": "q\"\\", "a": null, "d":-1.5e3 , "e":{}} "#;
        let members = object_members(text).unwrap();
        let keys: Vec<&str> = members.iter().map(|(key, _)| key.as_ref()).collect();
        assert_eq!(keys, ["a", "b\"c", "d", "e"]);
        let values: Vec<&str> = members.iter().map(|(_, value)| *value).collect();
        assert_eq!(values, ["null", r#""q\"\\""#, "-1.5e3", "{}"]);
        assert!(object_members("[1]").is_none());
        assert_eq!(object_members("{ }").unwrap().len(), 0);
    }

    #[test]
    fn elements_are_slices_of_the_text() {
        let text = r#"[ {"a": "[,]"}, 3 ,"x",[[]],true ]"#;
        assert_eq!(
            array_elements(text).unwrap(),
            [r#"{"a": "[,]"}"#, "3", r#""x""#, "[[]]", "true"]
        );
        assert_eq!(array_elements("[]").unwrap().len(), 0);
        assert!(array_elements("{}").is_none());
    }

    #[test]
    fn values_are_written_as_from_a_parsed_tree() {
        let texts = [
            r#""plain ascii""#,
            r#""caf\u00e9 \"quoted\" \\ \n""#,
            "\"d\u{e9}j\u{e0} vu \u{1f600}\"",
            r#"["a","b" , "c\/d",1,-2,3.0,1e3,12345678901234567890,true,null,[],{}]"#,
            r#"{"k":"v","n":{"x":[1,2,{"y":false}]},"k":"last","é":0.1}"#,
            r#"{"hashes":{"MD5":"0123","SHA-256":"abcd"},"refs":["identity--1","marking-definition--2"]}"#,
            "0",
            "-0",
            "9007199254740993",
            "  [ 1 ,\t2 ]",
        ];
        for text in texts {
            let mut fast = String::new();
            write_raw_python(text.trim_start(), &mut fast);
            let value: Value = serde_json::from_str(text).unwrap();
            let mut parsed = String::new();
            write_json::<PythonJson>(&value, &mut parsed);
            assert_eq!(fast, parsed, "{text}");
        }
    }

    #[test]
    fn strings_end_at_their_unescaped_quote() {
        let text = r#""a\"b\\" , "next""#;
        assert_eq!(skip_string(text.as_bytes(), 0), Some(8));
        assert_eq!(skip_string(br#""unterminated\""#, 0), None);
        assert_eq!(skip_string(br#""""#, 0), Some(2));
    }
}
