//! Python string, number and date behaviour the connector relies on, reproduced in Rust:
//! `str.strip()`, `str.isdigit()`, `int()`, `strptime("%Y-%m-%d")` and
//! `strftime("%Y-%m-%dT%H:%M:%SZ")` of a UTC timestamp.

use chrono::{DateTime, Datelike, NaiveDate};
use serde_json::Value;

/// Python's `str.isspace()` for one character: Unicode White_Space plus the four ASCII
/// information separators Python also counts.
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(py_is_space)
}

/// Python's `str.isdigit()`: non-empty and every character a digit.
pub fn isdigit(s: &str) -> bool {
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
pub fn drop_last_char(s: &str) -> &str {
    match s.char_indices().next_back() {
        Some((index, _)) => &s[..index],
        None => s,
    }
}

/// Python's `len(s)`: counts code points.
pub fn py_len(s: &str) -> usize {
    s.chars().count()
}

/// Python's `int(value)` for a JSON string or number; `None` where Python raises.
pub fn py_int(value: &Value) -> Option<i64> {
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

/// `datetime.fromtimestamp(secs, tz=utc)`, limited to the years stix2 can print back.
pub fn utc_datetime(secs: i64) -> Option<DateTime<chrono::Utc>> {
    let datetime = DateTime::from_timestamp(secs, 0)?;
    (1000..=9999).contains(&datetime.year()).then_some(datetime)
}

/// `strftime("%Y-%m-%dT%H:%M:%SZ")` of a UTC timestamp.
pub fn utc_seconds(secs: i64) -> Option<String> {
    Some(utc_datetime(secs)?.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The same instant as stix2 prints a `created`/`modified` value (millisecond precision).
pub fn utc_millis(secs: i64) -> Option<String> {
    Some(
        utc_datetime(secs)?
            .format("%Y-%m-%dT%H:%M:%S.000Z")
            .to_string(),
    )
}

/// `datetime.strptime(s, "%Y-%m-%d")`: four-digit year, one- or two-digit month and day
/// (a day may also be a space and a digit), nothing after.
pub fn parse_event_date(s: &str) -> Option<NaiveDate> {
    let bytes = s.as_bytes();
    if bytes.len() < 8 || !bytes[..4].iter().all(u8::is_ascii_digit) || bytes[4] != b'-' {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let rest = &s[5..];
    let (month, rest) = take_month(rest)?;
    let rest = rest.strip_prefix('-')?;
    let (day, rest) = take_day(rest)?;
    if !rest.is_empty() {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, day)
}

fn two_digit(s: &str) -> Option<(u32, u32)> {
    let b = s.as_bytes();
    let first = b.first().filter(|c| c.is_ascii_digit())?;
    let second = b.get(1).filter(|c| c.is_ascii_digit());
    Some((
        u32::from(first - b'0'),
        second.map_or(10, |c| u32::from(c - b'0')),
    ))
}

/// `%m` as Python's regex reads it: `1[0-2]|0[1-9]|[1-9]`, first alternative that matches.
fn take_month(s: &str) -> Option<(u32, &str)> {
    let (first, second) = two_digit(s)?;
    if first == 1 && second <= 2 {
        Some((10 + second, &s[2..]))
    } else if first == 0 && (1..=9).contains(&second) {
        Some((second, &s[2..]))
    } else if first >= 1 {
        Some((first, &s[1..]))
    } else {
        None
    }
}

/// `%d`: `3[01]|[12]\d|0[1-9]|[1-9]| [1-9]`.
fn take_day(s: &str) -> Option<(u32, &str)> {
    if let Some(rest) = s.strip_prefix(' ') {
        let digit = rest
            .as_bytes()
            .first()
            .filter(|c| (b'1'..=b'9').contains(c))?;
        return Some((u32::from(digit - b'0'), &rest[1..]));
    }
    let (first, second) = two_digit(s)?;
    if first == 3 && second <= 1 {
        Some((30 + second, &s[2..]))
    } else if (first == 1 || first == 2) && second <= 9 {
        Some((first * 10 + second, &s[2..]))
    } else if first == 0 && (1..=9).contains(&second) {
        Some((second, &s[2..]))
    } else if first >= 1 {
        Some((first, &s[1..]))
    } else {
        None
    }
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
    fn dates_follow_strptime() {
        assert_eq!(
            parse_event_date("2015-12-18"),
            NaiveDate::from_ymd_opt(2015, 12, 18)
        );
        assert_eq!(
            parse_event_date("2015-1-5"),
            NaiveDate::from_ymd_opt(2015, 1, 5)
        );
        assert_eq!(parse_event_date("2015-01-311"), None);
        assert_eq!(parse_event_date("2015-02-30"), None);
        assert_eq!(parse_event_date("15-01-01"), None);
    }

    #[test]
    fn strip_and_digits() {
        assert_eq!(strip("\u{1c} a \u{a0}"), "a");
        assert!(isdigit("123"));
        assert!(!isdigit(""));
        assert!(!isdigit("12a"));
        assert_eq!(drop_last_char("ab\""), "ab");
        assert_eq!(drop_last_char(""), "");
    }
}
