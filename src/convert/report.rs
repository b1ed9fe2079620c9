//! The event's report and the notes of its event reports (the end of the connector's
//! `_process_event`): made only with `create_reports`, so only then are the event's `info`,
//! `date`, `timestamp` and `EventReport` read.

use serde_json::Value;

use super::ConvertOptions;
use super::assembly::Assembly;
use super::input::{Event, FieldError, JsonPath, required_text};
use super::links::{UuidIndex, process_note};
use super::stix::{Markings, Object, id_of, marking_refs, note_id, put_list, report_id, sdo};
use crate::pycompat::text::py_int;
use crate::pycompat::time::{parse_event_date, utc_millis, utc_seconds};

/// The report's reference when nothing else is in the bundle (the connector's placeholder).
const PLACEHOLDER_REF: &str = "intrusion-set--fc5ee88d-7987-4c00-991e-a863e9aa8a0e";

const BAD_TIMESTAMP: &str = "expected a Unix timestamp (seconds) in the years 1000-9999";

/// What the report carries besides the event's own fields.
pub(super) struct ReportParts<'p> {
    pub(super) author_id: &'p str,
    pub(super) markings: &'p Markings,
    pub(super) labels: &'p Value,
    pub(super) external_references: Vec<Value>,
    pub(super) files: Vec<Value>,
}

/// Emits the report (referencing everything emitted so far), then one note per event report.
pub(super) fn emit_report_and_notes(
    event: &Event<'_>,
    options: &ConvertOptions,
    mut parts: ReportParts<'_>,
    bundle: &mut Assembly,
    uuid_index: &mut UuidIndex,
) -> Result<(), FieldError> {
    let root = JsonPath::root("Event");
    let compat = options.reference_compat;
    let report = build_report(event, options, &root, &mut parts, bundle)?;
    let report_id = id_of(&report).to_string();
    bundle.emit_unchecked(&report);
    drop(report);

    let reports_path = root.key("EventReport");
    let notes = event.event_reports.as_ref().map_err(Clone::clone)?;
    for (index, note) in notes.iter().enumerate() {
        if !options.keeps(note.deleted) {
            continue;
        }
        let bad_timestamp =
            || FieldError::new(&reports_path.index(index).key("timestamp"), BAD_TIMESTAMP);
        let secs = note.timestamp.and_then(py_int).ok_or_else(bad_timestamp)?;
        let created = utc_seconds(secs).ok_or_else(bad_timestamp)?;
        let created_ms = utc_millis(secs).ok_or_else(bad_timestamp)?;
        uuid_index.catch_up(&bundle.written);
        let content = process_note(note.content, uuid_index, &bundle.written);
        let id = note_id(&created, &content);
        let mut object = sdo("note", &id, &created_ms, &created_ms);
        object.insert("created_by_ref", parts.author_id.into());
        put_list(
            &mut object,
            "object_marking_refs",
            &marking_refs(parts.markings),
        );
        if let Some(name) = note.name {
            object.insert("abstract", name.render(compat, ", ").into());
        }
        object.insert("content", content.into());
        object.insert("object_refs", Value::Array(vec![report_id.as_str().into()]));
        // Notes never collapse in the connector; in the corrected mode a repeated note
        // (same time, same content) is emitted once.
        if compat || !bundle.was_emitted(&id) {
            bundle.emit_unchecked(&object);
        }
    }
    Ok(())
}

fn build_report(
    event: &Event<'_>,
    options: &ConvertOptions,
    root: &JsonPath<'_>,
    parts: &mut ReportParts<'_>,
    bundle: &mut Assembly,
) -> Result<Object, FieldError> {
    let info = required_text(event.info, &root.key("info"))
        .map_err(|e| with_reason(e, "a report needs a name"))?;
    let date_path = root.key("date");
    let date_text = required_text(event.date, &date_path)
        .map_err(|e| with_reason(e, "a report needs a date"))?;
    let date = parse_event_date(date_text)
        .filter(|d| (1000..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| FieldError::new(&date_path, "expected a date YYYY-MM-DD"))?;
    let modified = event
        .timestamp
        .and_then(py_int)
        .and_then(utc_millis)
        .ok_or_else(|| FieldError::new(&root.key("timestamp"), BAD_TIMESTAMP))?;
    let day = date.format("%Y-%m-%d");
    let published_iso = format!("{day}T00:00:00+00:00");
    let id = report_id(info, &published_iso);
    let mut object = sdo("report", &id, &format!("{day}T00:00:00.000Z"), &modified);
    object.insert("name", info.into());
    object.insert("description", info.into());
    object.insert(
        "report_types",
        Value::Array(vec![options.report_type.as_str().into()]),
    );
    object.insert("published", format!("{day}T00:00:00Z").into());
    let refs = if bundle.object_refs.is_empty() {
        vec![Value::String(PLACEHOLDER_REF.into())]
    } else {
        std::mem::take(&mut bundle.object_refs)
            .into_iter()
            .map(|id| Value::String(id.to_string()))
            .collect()
    };
    object.insert("object_refs", Value::Array(refs));
    put_list(&mut object, "labels", parts.labels);
    object.insert("created_by_ref", parts.author_id.into());
    put_list(
        &mut object,
        "object_marking_refs",
        &marking_refs(parts.markings),
    );
    put_list(
        &mut object,
        "external_references",
        &Value::Array(std::mem::take(&mut parts.external_references)),
    );
    put_list(
        &mut object,
        "x_opencti_files",
        &Value::Array(std::mem::take(&mut parts.files)),
    );
    Ok(object)
}

/// `missing` becomes `missing (a report needs a name)`.
fn with_reason(mut error: FieldError, reason: &str) -> FieldError {
    if error.message == "missing" {
        error.message = format!("missing ({reason})");
    }
    error
}
