//! Feed files: the envelopes events come in, and the warnings naming what a file holds that
//! no conversion uses.
//!
//! A file holds `{"Event": {...}}`, a bare event, a list of either, or MISP's REST search
//! result `{"response": [{"Event": {...}}, ...]}`. Next to `"Event"` MISP's own exports hold
//! nothing; keys there (`{"Event": {...}, "Attribute": [...]}`, written by tools that export
//! before nesting) are not part of the event, for the Python connector as here, so each
//! one with content is named in a warning. So is a galaxy without a namespace, which the
//! connector skips.

use serde_json::{Map, Value};

use super::input::{self, list_items};
use super::{InputError, MispEvent};

/// Parses a feed file. Every field the conversion reads is checked here, so a malformed
/// event is reported with its path.
pub fn parse_event_file(bytes: &[u8], file: &str) -> Result<Vec<MispEvent>, InputError> {
    parse_event_list(bytes, file)?
        .into_iter()
        .map(|listed| listed.event)
        .collect()
}

/// A JSON document's bytes after its UTF-8 byte order mark, if it starts with one. RFC 8259
/// forbids writers to add the mark but lets readers ignore it; files saved by some Windows
/// tools carry one, and it says nothing of the content.
pub(crate) fn without_utf8_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// One event of a feed file, read on its own.
#[derive(Debug)]
pub(crate) struct ListedEvent {
    /// Its uuid (lower case) when the event carries one, even if the rest is malformed.
    pub(crate) uuid: Option<String>,
    pub(crate) event: Result<MispEvent, InputError>,
}

/// [`parse_event_file`], each event on its own: a file that is not JSON (or holds nothing) is
/// an error, but in a list one malformed event is an error for that event only, so that its
/// neighbours still go through.
pub(crate) fn parse_event_list(bytes: &[u8], file: &str) -> Result<Vec<ListedEvent>, InputError> {
    let bytes = without_utf8_bom(bytes);
    // UTF-8 checked once over the whole file: parsing a `str` skips the check per string.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let value: Value = parsed.map_err(|e| InputError {
        file: file.to_string(),
        path: "$".into(),
        message: format!("invalid JSON: {e}"),
    })?;
    let mut file_warnings = Vec::new();
    let (items, list_name) = match value {
        Value::Array(items) => (items, Some(String::new())),
        Value::Object(mut map) if is_search_result(&map) => {
            let items = match map.remove("response") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            file_warnings = left_out(&map, "", "the search result's response", file);
            (items, Some("response".to_string()))
        }
        other => (vec![other], None),
    };
    if items.is_empty() {
        return Err(InputError {
            file: file.to_string(),
            path: "$".into(),
            message: "expected an event, got an empty list".into(),
        });
    }
    // What each event's text weighs, to size its bundle's text before it is written.
    let input_bytes = bytes.len() / items.len();
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let prefix = match &list_name {
                Some(name) => format!("{name}[{index}]."),
                None => String::new(),
            };
            let path = format!("{prefix}Event");
            let (event, mut warnings) = match item {
                Value::Object(mut map) if map.contains_key("Event") => {
                    let event = map.remove("Event").unwrap_or(Value::Null);
                    (event, left_out(&map, &prefix, "Event", file))
                }
                other => (other, Vec::new()),
            };
            if index == 0 {
                warnings.append(&mut file_warnings);
            }
            warnings.extend(
                galaxies_without_namespace(&event)
                    .into_iter()
                    .map(|galaxy| format!("{file}: {prefix}{galaxy} has no namespace: left out")),
            );
            let event = MispEvent {
                event,
                source: file.to_string(),
                path,
                warnings,
                input_bytes,
            };
            let uuid = event.uuid().map(str::to_lowercase);
            let event = match input::read_event(&event.event) {
                Ok(_) => Ok(event),
                Err(e) => Err(event.error(e)),
            };
            ListedEvent { uuid, event }
        })
        .collect())
}

/// MISP's `restSearch` answer for events: `{"response": [...]}` and no `Event`.
fn is_search_result(map: &Map<String, Value>) -> bool {
    !map.contains_key("Event") && map.get("response").is_some_and(Value::is_array)
}

/// A warning for each key of `map` (what surrounds `kept`) that holds something.
fn left_out(map: &Map<String, Value>, prefix: &str, kept: &str, file: &str) -> Vec<String> {
    map.iter()
        .filter_map(|(key, value)| {
            let what = match value {
                Value::Null => return None,
                Value::Array(items) if items.is_empty() => return None,
                Value::Object(members) if members.is_empty() => return None,
                Value::String(text) if text.is_empty() => return None,
                Value::Array(items) if items.len() == 1 => "1 item".to_string(),
                Value::Array(items) => format!("{} items", items.len()),
                Value::Object(_) => "an object".to_string(),
                _ => "a value".to_string(),
            };
            Some(format!(
                "{file}: {prefix}{key} ({what}) is beside {kept}, not in it: left out"
            ))
        })
        .collect()
}

fn listed<'v>(holder: &'v Value, key: &str) -> Option<Vec<&'v Value>> {
    holder.get(key).and_then(list_items)
}

/// The paths of the galaxies (the event's and its attributes') that have no namespace.
fn galaxies_without_namespace(event: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |holder: &Value, path: String| {
        let Some(galaxies) = holder.get("Galaxy").and_then(list_items) else {
            return;
        };
        for (index, galaxy) in galaxies.into_iter().enumerate() {
            if galaxy.is_object() && galaxy.get("namespace").is_none() {
                found.push(format!("{path}Galaxy[{index}]"));
            }
        }
    };
    check(event, "Event.".into());
    for (index, attribute) in listed(event, "Attribute").into_iter().flatten().enumerate() {
        check(attribute, format!("Event.Attribute[{index}]."));
    }
    for (index, object) in listed(event, "Object").into_iter().flatten().enumerate() {
        let attributes = listed(object, "Attribute").into_iter().flatten();
        for (inner, attribute) in attributes.enumerate() {
            check(
                attribute,
                format!("Event.Object[{index}].Attribute[{inner}]."),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_before_the_json_is_ignored_and_nowhere_else() {
        let event = r#"{"Event": {"uuid": "56BF399D-C46C-4FDB-A9CF-D9BB02DE0B81", "info": "x",
            "date": "2024-01-02", "timestamp": "1704153600", "Attribute": []}}"#;
        let with_mark = [b"\xEF\xBB\xBF".as_slice(), event.as_bytes()].concat();
        let read = |bytes: &[u8]| -> Vec<Option<String>> {
            let listed = parse_event_list(bytes, "e.json").unwrap();
            assert!(listed.iter().all(|l| l.event.is_ok()));
            listed.into_iter().map(|l| l.uuid).collect()
        };
        assert_eq!(read(&with_mark), read(event.as_bytes()));
        assert_eq!(
            read(&with_mark),
            [Some("56bf399d-c46c-4fdb-a9cf-d9bb02de0b81".to_owned())]
        );

        let mark_inside = [b" ".as_slice(), &with_mark].concat();
        let error = parse_event_list(&mark_inside, "e.json").unwrap_err();
        assert!(error.to_string().contains("invalid JSON"), "{error}");
    }
}
