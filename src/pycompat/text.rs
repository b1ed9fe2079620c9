//! Python's `str` and `int` behaviour: `str.strip()`, `str.isdigit()`, `len()`, `s[:-1]`
//! and `int()`. Rust's `trim`, `is_numeric` and `parse` each differ from them on inputs a
//! feed can contain.

use serde_json::Value;

/// Python's `str.isspace()` for one character: Unicode White_Space plus the four ASCII
/// information separators (U+001C..U+001F) that Rust's `trim` keeps.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

/// Python's `str.isdigit()`: non-empty and every character a digit.
pub(crate) fn isdigit(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_digit()
                || (!c.is_ascii() && c.is_numeric() && !is_fraction_or_letter_number(c))
        })
}

/// Numeric characters Python's `isdigit()` rejects (vulgar fractions, Roman numerals, ...):
/// an approximation of "Numeric_Type=Numeric" for the common blocks.
fn is_fraction_or_letter_number(c: char) -> bool {
    matches!(c as u32, 0xBC..=0xBE | 0x2150..=0x218B | 0x3007 | 0x3021..=0x3029 | 0x4E00..=0x9FFF)
}

/// Python's `s[:-1]`: drops the last character (nothing for an empty string).
pub(crate) fn drop_last_char(s: &str) -> &str {
    match s.char_indices().next_back() {
        Some((index, _)) => &s[..index],
        None => s,
    }
}

/// Python's `len(s)`: counts code points.
pub(crate) fn py_len(s: &str) -> usize {
    s.chars().count()
}

/// Python's `int(value)` for a JSON string or number; `None` where Python raises.
pub(crate) fn py_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else if n.as_u64().is_some() {
                None
            } else {
                let f = n.as_f64()?;
                if f.is_finite() && f.abs() < 9.2e18 {
                    Some(f.trunc() as i64)
                } else {
                    None
                }
            }
        }
        Value::String(s) => parse_int_str(s),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn parse_int_str(s: &str) -> Option<i64> {
    let s = strip(s);
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut magnitude: i64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let digit = c.to_digit(10)?;
        magnitude = magnitude.checked_mul(10)?.checked_add(i64::from(digit))?;
    }
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int_follows_python() {
        assert_eq!(py_int(&json!(" 42 ")), Some(42));
        assert_eq!(py_int(&json!("1_000")), Some(1000));
        assert_eq!(py_int(&json!("-7")), Some(-7));
        assert_eq!(py_int(&json!("1.5")), None);
        assert_eq!(py_int(&json!("")), None);
        assert_eq!(py_int(&json!(12.9)), Some(12));
    }

    #[test]
    fn strip_removes_what_python_counts_as_space() {
        assert_eq!(strip("\u{1c} a \u{a0}"), "a");
        assert_eq!(strip("\u{1c}\u{a0} x y\u{1f}\u{3000}"), "x y");
        assert_eq!(
            strip("\u{200b}x"),
            "\u{200b}x",
            "U+200B is not a space to Python"
        );
    }

    #[test]
    fn digits_and_slices() {
        assert!(isdigit("123"));
        assert!(isdigit("\u{0663}"), "Arabic-Indic digit three");
        assert!(!isdigit("\u{bd}"), "vulgar fraction one half");
        assert!(!isdigit(""));
        assert!(!isdigit("12a"));
        assert_eq!(drop_last_char("ab\""), "ab");
        assert_eq!(drop_last_char("a\u{e9}"), "a");
        assert_eq!(drop_last_char(""), "");
        assert_eq!(py_len("a\u{e9}\u{1f600}"), 3);
    }
}
