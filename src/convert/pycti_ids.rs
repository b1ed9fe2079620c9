//! Deterministic ids for the converter: uuid5 in OpenCTI's namespace (which is also the
//! stix2 library's cyber-observable namespace) over the RFC 8785 canonical JSON of the
//! id-contributing data, as pycti's `generate_id` and stix2's SCO ids compute them.

use serde_json::Value;
use uuid::Uuid;

/// OpenCTI's namespace; stix2 uses the same one for cyber-observable ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x00abedb4_aa42_466c_9c01_fed23315a9b7);

/// RFC 8785 canonical JSON as stix2's `canonicalize(obj, utf8=False)` prints it: keys
/// sorted by UTF-16 code units, no whitespace, non-ASCII kept, control characters escaped.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut String) {
    if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(f) = n.as_f64() {
        // Integral floats print without a fraction in RFC 8785 (ECMAScript number form).
        if f.fract() == 0.0 && f.abs() < 1e21 {
            out.push_str(&format!("{}", f as i128));
        } else {
            out.push_str(&f.to_string());
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `<stix_type>--uuid5(namespace, canonical_json(data))`: pycti's `generate_id` for a type
/// once its id data is built.
pub fn pycti_id(stix_type: &str, data: &Value) -> String {
    let uuid = Uuid::new_v5(&NAMESPACE, canonical_json(data).as_bytes());
    format!("{stix_type}--{uuid}")
}

/// stix2's cyber-observable id; `contributing` holds exactly the id-contributing properties
/// (with a single hash already chosen).
pub fn sco_id(stix_type: &str, contributing: &Value) -> String {
    pycti_id(stix_type, contributing)
}
