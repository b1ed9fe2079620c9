//! Python's `json.dumps` with default arguments, and the value walker it shares with the
//! other JSON dialects the connector's output depends on: stix2's canonical JSON (in
//! `convert::ids`) and serde_json's compact text of the bundle (in `convert::written`), both
//! of which escape strings minimally ([`write_minimal_string`]).
//!
//! `json.dumps(value)` writes `", "` and `": "` separators, members in their order,
//! everything outside printable ASCII as `\uXXXX` (surrogate pairs beyond the BMP), floats
//! as `repr`. Limits that come from parsing with serde_json rather than Python's
//! `json.loads` (none occurs in what this crate writes): the integer literal `-0` prints as
//! `-0.0` (Python: `0`), integers beyond the u64/i64 range print as floats (Python keeps
//! them exact), and numbers overflowing a double are rejected at parse time (Python writes
//! `Infinity`).

use serde_json::{Map, Number, Value};

/// What differs between two JSON writers over the same walk of a value.
pub(crate) trait JsonDialect {
    const ITEM_SEPARATOR: &'static str;
    const KEY_SEPARATOR: &'static str;
    /// Members sorted by their keys' UTF-16 code units (RFC 8785) instead of kept in order.
    const SORT_KEYS_BY_UTF16: bool;
    fn write_string(text: &str, out: &mut String);
    fn write_number(number: &Number, out: &mut String);
}

/// Writes `value` in dialect `D`.
pub(crate) fn write_json<D: JsonDialect>(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => D::write_number(number, out),
        Value::String(text) => D::write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(D::ITEM_SEPARATOR);
                }
                write_json::<D>(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => write_json_object::<D>(members, out),
    }
}

/// Writes an object in dialect `D`.
pub(crate) fn write_json_object<D: JsonDialect>(members: &Map<String, Value>, out: &mut String) {
    out.push('{');
    if D::SORT_KEYS_BY_UTF16 {
        let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
        sorted.sort_by(|left, right| left.0.encode_utf16().cmp(right.0.encode_utf16()));
        write_members::<D>(sorted.into_iter(), out);
    } else {
        write_members::<D>(members.iter(), out);
    }
    out.push('}');
}

fn write_members<'v, D: JsonDialect>(
    members: impl Iterator<Item = (&'v String, &'v Value)>,
    out: &mut String,
) {
    for (index, (key, member)) in members.enumerate() {
        if index > 0 {
            out.push_str(D::ITEM_SEPARATOR);
        }
        D::write_string(key, out);
        out.push_str(D::KEY_SEPARATOR);
        write_json::<D>(member, out);
    }
}

/// The two-character escapes both Python's `json` and RFC 8785 use.
pub(crate) fn short_escape(character: char) -> Option<&'static str> {
    Some(match character {
        '\\' => "\\\\",
        '"' => "\\\"",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\u{08}' => "\\b",
        '\u{0c}' => "\\f",
        _ => return None,
    })
}

/// A string with only what JSON requires escaped (`"`, `\\`, control characters; the
/// short forms where there are some, `\u00xx` otherwise), everything else kept raw: as
/// both RFC 8785 and serde_json's compact writer print strings.
pub(crate) fn write_minimal_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    while let Some(found) = first_matching(&bytes[plain_from..], must_escape) {
        let at = plain_from + found;
        // The byte found is ASCII, so both ends of the run are character boundaries.
        out.push_str(&text[plain_from..at]);
        let character = char::from(bytes[at]);
        match short_escape(character) {
            Some(escape) => out.push_str(escape),
            None => push_unicode_escape(u16::from(bytes[at]), out),
        }
        plain_from = at + 1;
    }
    out.push_str(&text[plain_from..]);
    out.push('"');
}

/// What JSON itself requires escaped.
fn must_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// What Python's `json.dumps` escapes with `ensure_ascii`: all but printable ASCII, and
/// `"` and `\\` (the pattern `([\\\\"]|[^\\ -~])` of its `json.encoder`).
pub(crate) fn python_escapes(byte: u8) -> bool {
    !(b' '..=b'~').contains(&byte) || byte == b'"' || byte == b'\\'
}

/// The position of the first byte `hit` selects. Blocks of 16 bytes are tested whole (a
/// test the compiler turns into vector instructions), since nearly every string written has
/// nothing to escape; the bytes after the last whole block are tested as the last 16 bytes,
/// overlapping that block, so that only a string shorter than a block is tested a byte at a
/// time.
pub(crate) fn first_matching(bytes: &[u8], hit: impl Fn(u8) -> bool + Copy) -> Option<usize> {
    const BLOCK: usize = 16;
    let mut blocks = bytes.chunks_exact(BLOCK);
    for (index, block) in (&mut blocks).enumerate() {
        if let Some(found) = first_in_block(block, hit) {
            return Some(index * BLOCK + found);
        }
    }
    let tail = blocks.remainder();
    match bytes.len().checked_sub(BLOCK) {
        // The bytes before the tail were tested clean, so a hit here is in the tail.
        Some(last_start) if !tail.is_empty() => {
            first_in_block(&bytes[last_start..], hit).map(|found| last_start + found)
        }
        _ => first_in_block(tail, hit).map(|found| bytes.len() - tail.len() + found),
    }
}

/// [`first_matching`] within one block: tested whole, searched only when hit.
fn first_in_block(block: &[u8], hit: impl Fn(u8) -> bool + Copy) -> Option<usize> {
    if !block.iter().fold(false, |any, &byte| any | hit(byte)) {
        return None;
    }
    block.iter().position(|&byte| hit(byte))
}

/// Python's `json.dumps` with default arguments.
pub(crate) struct PythonJson;

impl JsonDialect for PythonJson {
    const ITEM_SEPARATOR: &'static str = ", ";
    const KEY_SEPARATOR: &'static str = ": ";
    const SORT_KEYS_BY_UTF16: bool = false;

    fn write_string(text: &str, out: &mut String) {
        write_python_string(text, out);
    }

    fn write_number(number: &Number, out: &mut String) {
        if number.is_f64() {
            out.push_str(&python_float_repr(number.as_f64().unwrap_or(0.0)));
        } else {
            out.push_str(&number.to_string());
        }
    }
}

/// Python's `json.dumps(value)`.
pub(crate) fn python_json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_json::<PythonJson>(value, &mut out);
    out
}

/// A Python `str` as `json.dumps` writes it (`ensure_ascii=True`).
pub(crate) fn write_python_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('"');
    // Printable ASCII other than `"` and `\\` is copied as is, run by run; everything else is
    // escaped one character at a time.
    let mut rest = text;
    while let Some(plain) = first_matching(rest.as_bytes(), python_escapes) {
        // The byte found starts a character: a run of printable ASCII ends before it.
        out.push_str(&rest[..plain]);
        let mut characters = rest[plain..].chars();
        let Some(character) = characters.next() else {
            break;
        };
        rest = characters.as_str();
        match short_escape(character) {
            Some(escape) => out.push_str(escape),
            None => {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    push_unicode_escape(*unit, out);
                }
            }
        }
    }
    out.push_str(rest);
    out.push('"');
}

/// `\uXXXX` with lowercase hex digits, as both Python and RFC 8785 write it.
pub(crate) fn push_unicode_escape(unit: u16, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12u16, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

/// The shortest decimal digits that read back as `magnitude` (finite, non-zero), and the
/// exponent of the first one: `magnitude = 0.d1d2d3... x 10^(exponent + 1)`. Python's
/// `repr` and ECMAScript's `Number.prototype.toString` both lay these digits out; Rust's
/// `{:e}` produces them.
pub(crate) fn shortest_digits(magnitude: f64) -> (String, i32) {
    let scientific = format!("{:e}", magnitude.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let digits = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exponent.parse().unwrap_or(0))
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents -4..15
/// (always with a fractional part), scientific otherwise (`1e+16`, `1.5e-05`).
pub(crate) fn python_float_repr(double: f64) -> String {
    if double.is_nan() {
        return "NaN".to_owned();
    }
    if double.is_infinite() {
        return if double > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned();
    }
    let sign = if double.is_sign_negative() { "-" } else { "" };
    if double == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exponent) = shortest_digits(double);
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let integer_len = exponent as usize + 1;
            if digits.len() <= integer_len {
                let zeros = "0".repeat(integer_len - digits.len());
                format!("{sign}{digits}{zeros}.0")
            } else {
                format!(
                    "{sign}{}.{}",
                    &digits[..integer_len],
                    &digits[integer_len..]
                )
            }
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let fraction = if digits.len() > 1 {
            format!(".{}", &digits[1..])
        } else {
            String::new()
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{}{fraction}e{exponent_sign}{:02}",
            &digits[..1],
            exponent.abs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_block_search_finds_the_first_hit_wherever_it_is() {
        let hit = |byte: u8| byte == b'"' || byte == b'\\';
        for len in 0..=48 {
            let plain = vec![b'a'; len];
            assert_eq!(first_matching(&plain, hit), None, "length {len}");
            for first in 0..len {
                for second in first..len {
                    let mut bytes = plain.clone();
                    bytes[first] = b'"';
                    bytes[second] = b'\\';
                    assert_eq!(
                        first_matching(&bytes, hit),
                        Some(first),
                        "length {len}, hits at {first} and {second}"
                    );
                }
            }
        }
    }

    /// Runs of 0 to 39 plain characters with each of `specials` at the start, the middle or
    /// the end, and once more after them: escapes on both sides of every block boundary.
    fn with_escapes_everywhere(specials: &[&str]) -> Vec<String> {
        let mut texts = Vec::new();
        for length in 0..40 {
            for special in specials {
                for at in [0, length / 2, length] {
                    let mut text = "a".repeat(length);
                    text.insert_str(at, special);
                    text.push_str(special);
                    texts.push(text);
                }
            }
        }
        texts
    }

    #[test]
    fn minimal_strings_are_serde_json_strings_wherever_the_escapes_fall() {
        let specials = [
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "\u{e9}",
            "\u{1f600}",
        ];
        for text in with_escapes_everywhere(&specials) {
            let mut out = String::new();
            write_minimal_string(&text, &mut out);
            assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    /// Python's `ensure_ascii` string, one character at a time: what the block search must
    /// reproduce.
    fn python_string_by_character(text: &str) -> String {
        let mut out = String::from("\"");
        for character in text.chars() {
            if (' '..='~').contains(&character) && character != '"' && character != '\\' {
                out.push(character);
            } else if let Some(escape) = short_escape(character) {
                out.push_str(escape);
            } else {
                let mut units = [0u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn python_strings_are_escaped_wherever_the_escapes_fall() {
        let specials = [
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "\u{7f}",
            "\u{80}",
            "\u{e9}",
            "\u{2028}",
            "\u{1f600}",
        ];
        for text in with_escapes_everywhere(&specials) {
            let mut out = String::new();
            write_python_string(&text, &mut out);
            assert_eq!(out, python_string_by_character(&text), "{text:?}");
        }
    }

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (2.5e300, "2.5e+300"),
            (123.456, "123.456"),
        ];
        for (double, expected) in cases {
            assert_eq!(python_float_repr(double), expected, "{double}");
        }
    }

    #[test]
    fn dumps_escapes_like_python() {
        let value = json!({"k\u{e9}": ["a\"b\\c\n\u{1}\u{7f}", "\u{1f600}", 5, -3, 2.5, null, true, {}, []]});
        assert_eq!(
            python_json_dumps(&value),
            r#"{"k\u00e9": ["a\"b\\c\n\u0001\u007f", "\ud83d\ude00", 5, -3, 2.5, null, true, {}, []]}"#
        );
    }

    #[test]
    fn dumps_keeps_member_order() {
        let value = json!({"b": 1, "a": {"d": 2.0, "c": [1e16]}});
        assert_eq!(
            python_json_dumps(&value),
            r#"{"b": 1, "a": {"d": 2.0, "c": [1e+16]}}"#
        );
    }
}
