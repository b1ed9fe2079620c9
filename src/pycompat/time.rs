//! Python's dates: `datetime.isoformat()`, `datetime.strptime(s, "%Y-%m-%d")`, and the UTC
//! timestamps the connector and stix2 print with `strftime`.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

/// Python's `datetime.isoformat()` of an aware datetime: `YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`,
/// microseconds only when non-zero, offset seconds only when non-zero (UTC is `+00:00`).
pub(crate) fn python_isoformat<Tz: TimeZone>(moment: &DateTime<Tz>) -> String {
    let moment = moment.fixed_offset();
    let mut text = moment.format("%Y-%m-%dT%H:%M:%S").to_string();
    // Python keeps microseconds; a chrono leap second (nanos >= 1e9) has no Python equivalent.
    let micros = (moment.nanosecond() % 1_000_000_000) / 1_000;
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    let offset = moment.offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let magnitude = offset.unsigned_abs();
    text.push_str(&format!(
        "{sign}{:02}:{:02}",
        magnitude / 3600,
        (magnitude % 3600) / 60
    ));
    if !magnitude.is_multiple_of(60) {
        text.push_str(&format!(":{:02}", magnitude % 60));
    }
    text
}

/// `datetime.fromtimestamp(secs, tz=utc)`, limited to the years stix2 can print back.
pub(crate) fn utc_datetime(secs: i64) -> Option<DateTime<Utc>> {
    let datetime = DateTime::from_timestamp(secs, 0)?;
    (1000..=9999).contains(&datetime.year()).then_some(datetime)
}

/// `strftime("%Y-%m-%dT%H:%M:%SZ")` of a UTC timestamp.
pub(crate) fn utc_seconds(secs: i64) -> Option<String> {
    utc_text(secs, "Z")
}

/// The same instant as stix2 prints a `created`/`modified` value (millisecond precision).
pub(crate) fn utc_millis(secs: i64) -> Option<String> {
    utc_text(secs, ".000Z")
}

/// `YYYY-MM-DDTHH:MM:SS` of a UTC timestamp, then `tail`. Written digit by digit: several
/// times are printed per attribute, and chrono's `format` reads its pattern on every call.
fn utc_text(secs: i64, tail: &str) -> Option<String> {
    let moment = utc_datetime(secs)?;
    let mut text = String::with_capacity(19 + tail.len());
    // The year is 1000..=9999 (`utc_datetime`), so four digits.
    push_digits(&mut text, moment.year().unsigned_abs(), 4);
    for (separator, value) in [
        ('-', moment.month()),
        ('-', moment.day()),
        ('T', moment.hour()),
        (':', moment.minute()),
        (':', moment.second()),
    ] {
        text.push(separator);
        push_digits(&mut text, value, 2);
    }
    text.push_str(tail);
    Some(text)
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

/// `datetime.strptime(s, "%Y-%m-%d")`: four-digit year, one- or two-digit month and day
/// (a day may also be a space and a digit), nothing after.
pub(crate) fn parse_event_date(s: &str) -> Option<NaiveDate> {
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

/// The first digit of `s` and the second (10 when there is none): what the alternatives of
/// strptime's regexes look at.
fn two_digit(s: &str) -> Option<(u32, u32)> {
    let b = s.as_bytes();
    let first = b.first().filter(|c| c.is_ascii_digit())?;
    let second = b.get(1).filter(|c| c.is_ascii_digit());
    Some((
        u32::from(first - b'0'),
        second.map_or(10, |c| u32::from(c - b'0')),
    ))
}

/// The last two alternatives `%m` and `%d` share: `0[1-9]`, then a single `[1-9]`.
fn padded_or_single(first: u32, second: u32, s: &str) -> Option<(u32, &str)> {
    if first == 0 && (1..=9).contains(&second) {
        Some((second, &s[2..]))
    } else if first >= 1 {
        Some((first, &s[1..]))
    } else {
        None
    }
}

/// `%m` as Python's regex reads it: `1[0-2]|0[1-9]|[1-9]`, first alternative that matches.
fn take_month(s: &str) -> Option<(u32, &str)> {
    let (first, second) = two_digit(s)?;
    if first == 1 && second <= 2 {
        Some((10 + second, &s[2..]))
    } else {
        padded_or_single(first, second, s)
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
    } else {
        padded_or_single(first, second, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_texts_are_chronos_formats() {
        let first = utc_datetime(-30_610_224_000).map(|m| m.timestamp());
        let last = utc_datetime(253_402_300_799).map(|m| m.timestamp());
        assert_eq!(
            (first, last),
            (Some(-30_610_224_000), Some(253_402_300_799))
        );
        let mut secs = -30_610_224_000i64;
        while secs <= 253_402_300_799 {
            let moment = utc_datetime(secs).unwrap();
            assert_eq!(
                utc_seconds(secs).unwrap(),
                moment.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
            assert_eq!(
                utc_millis(secs).unwrap(),
                moment.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
            );
            secs += 7_777_777;
        }
        assert_eq!(utc_millis(-30_610_224_001), None);
        assert_eq!(utc_seconds(253_402_300_800), None);
    }

    #[test]
    fn isoformat_matches_python() {
        let moment = DateTime::parse_from_rfc3339("2023-04-05T06:07:08.250Z").unwrap();
        assert_eq!(
            python_isoformat(&moment),
            "2023-04-05T06:07:08.250000+00:00"
        );
        let whole = DateTime::parse_from_rfc3339("2023-04-05T06:07:08-05:30").unwrap();
        assert_eq!(python_isoformat(&whole), "2023-04-05T06:07:08-05:30");
        let utc = DateTime::parse_from_rfc3339("2026-11-28T04:06:08.010712Z")
            .unwrap()
            .to_utc();
        assert_eq!(python_isoformat(&utc), "2026-11-28T04:06:08.010712+00:00");
        let odd_offset = chrono::FixedOffset::east_opt(3600 + 30)
            .unwrap()
            .with_ymd_and_hms(2023, 1, 2, 3, 4, 5)
            .unwrap();
        assert_eq!(
            python_isoformat(&odd_offset),
            "2023-01-02T03:04:05+01:00:30"
        );
    }

    #[test]
    fn dates_follow_strptime() {
        let cases = [
            ("2015-12-18", Some((2015, 12, 18))),
            ("2015-1-5", Some((2015, 1, 5))),
            ("2015-10- 5", Some((2015, 10, 5))),
            ("2015-09-09", Some((2015, 9, 9))),
            ("2015-01-311", None),
            ("2015-02-30", None),
            ("2015-00-10", None),
            ("15-01-01", None),
        ];
        for (text, expected) in cases {
            let expected = expected.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d));
            assert_eq!(parse_event_date(text), expected, "{text}");
        }
    }

    #[test]
    fn timestamps_print_as_stix2() {
        assert_eq!(utc_seconds(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            utc_millis(1_700_000_000).as_deref(),
            Some("2023-11-14T22:13:20.000Z")
        );
        assert_eq!(utc_seconds(-62_000_000_000), None, "year before 1000");
    }
}
