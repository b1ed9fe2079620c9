//! One MISP event to the list of STIX objects of its bundle (the connector's
//! `_process_event`), in the connector's emission order.
//!
//! In the default (corrected) mode the objects the corrections add are emitted after every
//! object the connector itself would emit, so they can never displace one of them; what
//! MISP marks deleted is left out unless `import_deleted`.

use std::rc::Rc;

use serde_json::{Map, Value};

use super::ConvertOptions;
use super::WarninglistTally;
use super::assembly::{Assembly, Ledger};
use super::attribute::{
    AttributeContext, extra_parts, is_external_analysis_link, process_attribute,
};
use super::elements::{ElementContext, prepare_elements};
use super::input::{Attribute, Event, FieldError, JsonPath, MispObject, Tag};
use super::links::{MadeFrom, UuidIndex, reference_relationships};
use super::report::{ReportParts, emit_report_and_notes};
use super::stix::{
    Markings, Object, id_of, marking_refs, organization, put_list, sco, single_property_sco_id, tlp,
};
use super::tags::{resolve_labels, resolve_markings};
use super::threats::ThreatLookup;
use super::written::ObjectText;
use crate::warninglists::Warninglists;

fn external_reference(attribute: &Attribute<'_>) -> Value {
    let mut reference = Map::new();
    reference.insert("source_name".into(), attribute.category.into());
    reference.insert("url".into(), attribute.value.into());
    reference.insert("external_id".into(), attribute.uuid.into());
    Value::Object(reference)
}

fn pdf_file(attribute: &Attribute<'_>, options: &ConvertOptions) -> Option<Value> {
    if !options.import_with_attachments
        || attribute.kind != "attachment"
        || attribute.category != "External analysis"
        || !(attribute.value.ends_with(".pdf") || attribute.value.ends_with(".PDF"))
    {
        return None;
    }
    let data = attribute.data?;
    let mut file = Map::new();
    file.insert("name".into(), attribute.value.into());
    file.insert("data".into(), data.clone());
    file.insert("mime_type".into(), "application/pdf".into());
    file.insert("no_trigger_import".into(), Value::Bool(true));
    Some(Value::Object(file))
}

/// The author's name: the last `creator=` tag when asked, else the creator organisation
/// (`Orgc`, which is read only then).
fn author_name(
    event: &Event<'_>,
    tags: &[Tag<'_>],
    options: &ConvertOptions,
) -> Result<String, FieldError> {
    let mut from_tags: Option<String> = None;
    if options.author_from_tags {
        for tag in tags {
            let lower = tag.name.to_lowercase();
            if lower.starts_with("creator") && lower.contains('=') {
                from_tags = lower.split('=').nth(1).map(str::to_string);
            }
        }
    }
    if let Some(name) = from_tags {
        return Ok(name);
    }
    let orgc = event.orgc_name.clone()?;
    Ok(orgc.or(event.org_name).unwrap_or("MISP").to_string())
}

/// The Text observable standing for a MISP object (`create_object_observables`): its first
/// (kept) attribute's value, or (opaque) its name with its first attribute.
fn object_observable(
    object: &MispObject<'_>,
    first: Option<&Attribute<'_>>,
    path: &JsonPath<'_>,
    ctx: &AttributeContext<'_>,
    references: &Value,
) -> Result<Option<Object>, FieldError> {
    let options = ctx.options;
    let value = if options.import_unsupported_observables_as_text_transparent {
        first.map(|first| first.value.to_string())
    } else {
        let name = match object.name {
            None => "",
            Some(Value::String(name)) => name.as_str(),
            Some(_) => super::input::required_text(object.name, &path.key("name"))?,
        };
        Some(match first {
            Some(first) => format!("{name} ({}={})", first.kind, first.value),
            None => name.to_string(),
        })
    };
    let Some(value) = value else {
        return Ok(None);
    };
    let id = single_property_sco_id("text", "value", &value);
    let mut text = sco("text", id);
    text.insert("value", value.into());
    put_list(
        &mut text,
        "object_marking_refs",
        &marking_refs(ctx.event_markings),
    );
    // The connector copies the description as it is into a custom property.
    if let Some(description) = object.description {
        let description = if options.reference_compat {
            description.value().clone()
        } else {
            Value::String(description.joined("\n").into_owned())
        };
        text.insert("description", description);
    }
    text.insert("x_opencti_score", ctx.score.into());
    put_list(&mut text, "labels", ctx.event_labels);
    text.insert("created_by_ref", ctx.author_id.into());
    put_list(&mut text, "external_references", references);
    Ok(Some(text))
}

/// The bundle being assembled while the attributes convert, with what the steps after them
/// need: the STIX objects made from each MISP uuid and the warninglists' tally.
struct Converted {
    bundle: Assembly,
    made_from: MadeFrom,
    warninglisted: WarninglistTally,
}

impl Converted {
    /// One attribute: every part the mode converts, each emitted (or deferred) as soon as it
    /// is made.
    fn attribute(
        &mut self,
        ctx: &AttributeContext<'_>,
        attribute: &Attribute<'_>,
        path: &JsonPath<'_>,
        holder: Option<&str>,
        references: &Value,
        create_relationships: bool,
    ) -> Result<(), FieldError> {
        let convert = |part| {
            process_attribute(
                ctx,
                attribute,
                path,
                holder,
                references,
                create_relationships,
                part,
            )
        };
        if let Some(mut result) = convert(0)? {
            self.made_from.record_result(attribute, &result);
            if let Some(list) = result.warninglisted.take() {
                *self.warninglisted.entry(list).or_default() += 1;
            }
            self.bundle.emit_result(result);
        }
        for part in 1..=extra_parts(attribute, ctx.options) {
            if let Some(result) = convert(part)? {
                self.bundle.defer_extra_result(result);
            }
        }
        Ok(())
    }
}

/// Converts one event to its bundle's objects, and counts per warninglist the attributes
/// that made no indicator because their value is on it.
pub(crate) fn convert(
    event: &Event<'_>,
    options: &ConvertOptions,
    threats: &dyn ThreatLookup,
    warninglists: Option<&Warninglists>,
    now: &str,
    written: &mut ObjectText,
) -> Result<WarninglistTally, FieldError> {
    let root = JsonPath::root("Event");
    let compat = options.reference_compat;
    let event_tags = event.tags.as_deref().unwrap_or(&[]);

    let author_name = author_name(event, event_tags, options)?;
    let author = organization(&author_name, now);
    let author_id = id_of(&author).to_string();

    let event_markings: Markings = match &event.tags {
        Some(tags) => Rc::new(resolve_markings(
            tags,
            true,
            options.markings_from_tags,
            now,
        )),
        None => Rc::new(vec![tlp("white")]),
    };
    let event_elements = prepare_elements(
        &event.galaxies,
        event_tags,
        &ElementContext {
            compat,
            author_id: &author_id,
            now,
            markings: &event_markings,
            guess_threats_from_tags: options.guess_threats_from_tags,
            threats,
        },
    )?;
    let event_labels = Value::Array(
        resolve_labels(event_tags, options)
            .into_iter()
            .map(Value::String)
            .collect(),
    );
    let ctx = AttributeContext {
        options,
        threats,
        now,
        author_id: &author_id,
        author_name: &author_name,
        event_elements: &event_elements,
        event_markings: &event_markings,
        event_labels: &event_labels,
        score: options.threat_level_score(event.threat_level_id),
        warninglists,
    };

    // Assembly, in the connector's order: each object is written as soon as it is made.
    let mut bundle = Assembly::new(compat, std::mem::take(written));
    bundle.emit_unchecked(&author);
    drop(author);
    for marking in event_markings.iter() {
        bundle.emit(Ledger::Markings, &marking.object);
    }
    for element in event_elements.all() {
        bundle.referenced_entity(Ledger::Entities, &element.object);
    }

    let no_refs = Value::Array(Vec::new());
    let mut event_external_references = Vec::new();
    let mut files = Vec::new();
    let mut converted = Converted {
        bundle,
        made_from: MadeFrom::default(),
        warninglisted: WarninglistTally::new(),
    };

    let attributes_path = root.key("Attribute");
    let create_relationships = event.attributes.len() < 10000;
    for (index, attribute) in event.attributes.iter().enumerate() {
        if !options.keeps(attribute.deleted) {
            continue;
        }
        let path = attributes_path.index(index);
        converted.attribute(&ctx, attribute, &path, None, &no_refs, create_relationships)?;
        if is_external_analysis_link(attribute) {
            event_external_references.push(external_reference(attribute));
        }
        files.extend(pdf_file(attribute, options));
    }

    let objects_path = root.key("Object");
    for (object_index, object) in event.objects.iter().enumerate() {
        if !options.keeps(object.deleted) {
            continue;
        }
        let object_path = objects_path.index(object_index);
        let attributes: Vec<(usize, &Attribute<'_>)> = object
            .attributes
            .iter()
            .enumerate()
            .filter(|(_, attribute)| options.keeps(attribute.deleted))
            .collect();
        let mut references = Vec::new();
        for (_, attribute) in &attributes {
            if is_external_analysis_link(attribute) {
                references.push(external_reference(attribute));
            }
            files.extend(pdf_file(attribute, options));
        }
        let references = Value::Array(references);
        let observable = if options.create_object_observables {
            let first = attributes.first().map(|(_, attribute)| *attribute);
            object_observable(object, first, &object_path, &ctx, &references)?
        } else {
            None
        };
        let observable_id = observable.as_ref().map(|o| id_of(o).to_string());
        converted
            .made_from
            .record(object.uuid, observable_id.as_deref());
        if let Some(observable) = &observable {
            converted.bundle.defer_object_observable(observable);
        }
        drop(observable);

        let create_relationships = attributes.len() < 10000;
        let attributes_path = object_path.key("Attribute");
        for (index, attribute) in attributes {
            converted.attribute(
                &ctx,
                attribute,
                &attributes_path.index(index),
                observable_id.as_deref(),
                &references,
                create_relationships,
            )?;
        }
    }

    // The objects' Text observables, then correction (1): the other parts of composite
    // attributes, after everything the connector emits.
    let mut bundle = converted.bundle;
    bundle.emit_deferred_objects();

    let mut uuid_index = UuidIndex::new();
    let reference_relationships = reference_relationships(
        event,
        options,
        &converted.made_from,
        &bundle.written,
        &mut uuid_index,
        &author_id,
        now,
    );
    bundle.emit_relationships(&reference_relationships);
    drop(reference_relationships);

    if options.create_reports {
        let parts = ReportParts {
            author_id: &author_id,
            markings: &event_markings,
            labels: &event_labels,
            external_references: event_external_references,
            files,
        };
        emit_report_and_notes(event, options, parts, &mut bundle, &mut uuid_index)?;
    }
    *written = bundle.written;
    Ok(converted.warninglisted)
}
