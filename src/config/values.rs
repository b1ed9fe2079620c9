//! Text-level parsers shared by the option table: booleans as pycti and pydantic read them,
//! sizes, ISO-8601 durations, Python's ISO datetimes, and URL masking. Pure functions: no
//! option names, no errors; the typed parsers in `parsers.rs` turn a `None` into an error line.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};

/// Booleans as pydantic reads them (which is what the Python connector's settings use), a
/// superset of pycti's `yes/true/True/no/false/False`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "t" | "y" | "1" => Some(true),
        "false" | "no" | "off" | "f" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Bytes, with an optional K/M/G suffix (powers of 1024; `KB`, `KiB`, `MB`... also read as such).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// An ISO-8601 duration as pydantic reads it (`P30D`, `PT5M`, `P1W`, `P1Y2M3DT4H5M6.5S`, a
/// leading `-`; a year is 365 days and a month 30), or `[-]HH:MM[:SS[.f]]`. Signed seconds.
pub fn parse_duration_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let seconds = if let Some(iso) = body.strip_prefix(['P', 'p']) {
        parse_iso_duration_body(iso)?
    } else {
        parse_clock_duration(body)?
    };
    Some(if negative { -seconds } else { seconds })
}

fn parse_iso_duration_body(body: &str) -> Option<f64> {
    const DAY: f64 = 86_400.0;
    let mut total = 0.0;
    let mut in_time = false;
    let mut number = String::new();
    let mut components = 0;
    for ch in body.chars() {
        match ch.to_ascii_uppercase() {
            'T' if !in_time && number.is_empty() => in_time = true,
            digit if digit.is_ascii_digit() || digit == '.' || digit == ',' => {
                number.push(if digit == ',' { '.' } else { digit })
            }
            unit => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let factor = match (in_time, unit) {
                    (false, 'Y') => 365.0 * DAY,
                    (false, 'M') => 30.0 * DAY,
                    (false, 'W') => 7.0 * DAY,
                    (false, 'D') => DAY,
                    (true, 'H') => 3600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
                total += value * factor;
                components += 1;
            }
        }
    }
    if !number.is_empty() || components == 0 {
        return None;
    }
    Some(total)
}

fn parse_clock_duration(body: &str) -> Option<f64> {
    let parts: Vec<&str> = body.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let hours: u64 = parts.first()?.parse().ok()?;
    let minutes: u64 = parts.get(1)?.parse().ok()?;
    let seconds: f64 = match parts.get(2) {
        Some(text) => text.parse().ok()?,
        None => 0.0,
    };
    if minutes >= 60 || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some((hours * 3600 + minutes * 60) as f64 + seconds)
}

/// A date or datetime as Python's `datetime.fromisoformat` reads it (`2023-10-01`,
/// `20231001`, `2023-10-01T12:00`, `2023-10-01 12:00:00.5+02:00`, `...Z`); no offset means UTC.
pub fn parse_iso_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let date_len = if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
        10
    } else {
        8
    };
    let date_text = text.get(..date_len)?;
    let date = if date_len == 10 {
        NaiveDate::parse_from_str(date_text, "%Y-%m-%d").ok()?
    } else {
        NaiveDate::parse_from_str(date_text, "%Y%m%d").ok()?
    };
    let rest = text.get(date_len..)?;
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    let mut time_text = rest.strip_prefix(['T', 't', ' '])?;
    let mut offset_seconds: i32 = 0;
    if let Some(stripped) = time_text.strip_suffix(['Z', 'z']) {
        time_text = stripped;
    } else if let Some(position) = time_text.rfind(['+', '-']) {
        let (clock, offset) = time_text.split_at(position);
        offset_seconds = parse_offset(offset)?;
        time_text = clock;
    }
    let time = ["%H:%M:%S%.f", "%H:%M", "%H%M%S%.f", "%H%M"]
        .iter()
        .find_map(|format| NaiveTime::parse_from_str(time_text, format).ok())
        .or_else(|| {
            let hour: u32 = time_text.parse().ok().filter(|_| time_text.len() == 2)?;
            NaiveTime::from_hms_opt(hour, 0, 0)
        })?;
    let local = date.and_time(time);
    let offset = FixedOffset::east_opt(offset_seconds)?;
    local
        .and_local_timezone(offset)
        .single()
        .map(|moment| moment.with_timezone(&Utc))
}

fn parse_offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let digits: String = text.get(1..)?.chars().filter(|c| *c != ':').collect();
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 | 6 => (
            digits.get(..2)?.parse::<i32>().ok()?,
            digits.get(2..4)?.parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// `import_from_date` as the Python connector reads it: a date or datetime, else a duration
/// counted back from `now`.
pub fn parse_import_from_date(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(moment) = parse_iso_datetime(text) {
        return Some(moment);
    }
    let seconds = parse_duration_seconds(text)?;
    let back = chrono::Duration::try_milliseconds((seconds * 1000.0).round() as i64)?;
    now.checked_sub_signed(back)
}

/// `url` without its password (and user), for logs and error lines.
pub fn mask_url_credentials(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => text.to_string(),
    }
}

/// Whole seconds as an ISO-8601 duration (`PT5M`, `PT1H30M`, `PT0S`).
pub fn format_iso_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::from("PT");
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || total == 0 {
        text.push_str(&format!("{seconds}S"));
    }
    text
}
