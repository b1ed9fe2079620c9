//! Splitting cost on the recorded sample (1747 objects, one 1744-ref report), as paid on every
//! push to OpenCTI: `cargo bench --bench splitter`.

use std::time::Instant;

use misp_feed::sink::opencti::envelope::{EnvelopeFields, amqp_message_body};
use misp_feed::sink::opencti::splitter::{SplitOptions, split_bundle_with_expectations};

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/reference/feed-bundles/5a3c2fcd-8328-42bb-a95e-4f4402de0b81.full.json"
    );
    let bundle = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("cannot read {path}: {error}");
            std::process::exit(1);
        }
    };
    let no_types: Vec<String> = Vec::new();
    let fields = EnvelopeFields {
        applicant_id: Some("88ec0c6a-13ce-5e39-b486-354fe4a7084f"),
        entities_types: &no_types,
        work_id: Some("work_bench"),
        ..EnvelopeFields::default()
    };
    let iterations = 20;
    let started = Instant::now();
    let mut body_bytes = 0usize;
    for _ in 0..iterations {
        let (_, bundles) = match split_bundle_with_expectations(&bundle, &SplitOptions::default()) {
            Ok(split) => split,
            Err(error) => {
                eprintln!("split failed: {error}");
                std::process::exit(1);
            }
        };
        for (position, split) in bundles.iter().enumerate() {
            body_bytes += amqp_message_body(&fields, position + 1, &split.content).len();
        }
    }
    let per_split = started.elapsed() / iterations;
    println!(
        "split + envelopes of {} bytes (1747 objects): {per_split:?} per bundle, {} body bytes each",
        bundle.len(),
        body_bytes / iterations as usize
    );
}
