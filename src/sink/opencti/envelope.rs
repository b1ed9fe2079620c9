//! The AMQP envelope of pycti's `OpenCTIConnectorHelper._send_bundle`: the message body
//! that carries one split bundle to the platform's workers, byte for byte as pycti 7.261026.0
//! writes it.

use base64::Engine;

use crate::pycompat::json::write_python_string;

/// The per-call members of pycti's AMQP envelope (`_send_bundle`), as `send_stix2_bundle`
/// passes them. On the MISP path: `entities_types` empty, `update` false, `draft_id` none,
/// `no_split` false, `work_id` the run's work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvelopeFields<'a> {
    /// `applicant_id` (the connector user id from registration; `null` when unknown).
    pub applicant_id: Option<&'a str>,
    pub entities_types: &'a [String],
    pub update: bool,
    pub draft_id: Option<&'a str>,
    pub no_split: bool,
    /// Written only when set, as pycti does.
    pub work_id: Option<&'a str>,
}

/// The AMQP message body pycti publishes for one bundle: `json.dumps` of
/// `{bundle_type, applicant_id, action_sequence, entities_types, content, update, draft_id,
/// no_split[, work_id]}` with `content` the standard padded base64 of the bundle's UTF-8 text.
/// `action_sequence` is 1-based.
pub fn amqp_message_body(
    fields: &EnvelopeFields<'_>,
    action_sequence: usize,
    bundle_content: &str,
) -> String {
    let encoded_len = bundle_content.len().div_ceil(3) * 4;
    let mut message = String::with_capacity(encoded_len + 320);
    message.push_str("{\"bundle_type\": \"QUEUE_BUNDLE\", \"applicant_id\": ");
    write_optional_string(fields.applicant_id, &mut message);
    message.push_str(", \"action_sequence\": ");
    message.push_str(&action_sequence.to_string());
    message.push_str(", \"entities_types\": [");
    for (index, entity_type) in fields.entities_types.iter().enumerate() {
        if index > 0 {
            message.push_str(", ");
        }
        write_python_string(entity_type, &mut message);
    }
    // The base64 alphabet needs no JSON escaping: it is encoded straight into the message.
    message.push_str("], \"content\": \"");
    base64::engine::general_purpose::STANDARD
        .encode_string(bundle_content.as_bytes(), &mut message);
    message.push_str("\", \"update\": ");
    message.push_str(if fields.update { "true" } else { "false" });
    message.push_str(", \"draft_id\": ");
    write_optional_string(fields.draft_id, &mut message);
    message.push_str(", \"no_split\": ");
    message.push_str(if fields.no_split { "true" } else { "false" });
    if let Some(work_id) = fields.work_id {
        message.push_str(", \"work_id\": ");
        write_python_string(work_id, &mut message);
    }
    message.push('}');
    message
}

/// A Python `str` or `None` as `json.dumps` writes it.
fn write_optional_string(value: Option<&str>, out: &mut String) {
    match value {
        Some(text) => write_python_string(text, out),
        None => out.push_str("null"),
    }
}
