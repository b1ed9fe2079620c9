//! Development helper (not the product CLI): converts MISP event files with an option
//! profile and prints each bundle, raw or normalized; or normalizes a bundle file.
//!
//! ```text
//! cargo run --example convert -- [--profiles FILE] [--profile NAME] [--compat] [--normalize] [--out DIR] EVENT.json...
//! cargo run --example convert -- --normalize-bundle BUNDLE.json
//! ```
//! Profiles default to `tests/fixtures/reference/profiles.json`, profile `full`. With
//! `--out DIR` each bundle is written to `DIR/<file stem>.json` instead of stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use misp_feed::convert::normalize::{normalize_bundle, normalize_objects};
use misp_feed::convert::{ConvertOptions, ResolvedThreats, convert_event, parse_event_file};
use serde_json::Value;

fn options_from(profile: &Value, compat: bool) -> ConvertOptions {
    let flag =
        |key: &str, default: bool| profile.get(key).and_then(Value::as_bool).unwrap_or(default);
    let defaults = ConvertOptions::default();
    ConvertOptions {
        create_reports: flag("create_reports", defaults.create_reports),
        report_type: profile
            .get("report_type")
            .and_then(Value::as_str)
            .unwrap_or(&defaults.report_type)
            .to_string(),
        create_indicators: flag("create_indicators", defaults.create_indicators),
        create_observables: flag("create_observables", defaults.create_observables),
        create_object_observables: flag(
            "create_object_observables",
            defaults.create_object_observables,
        ),
        create_tags_as_labels: flag("create_tags_as_labels", defaults.create_tags_as_labels),
        guess_threats_from_tags: flag("guess_threats_from_tags", defaults.guess_threats_from_tags),
        author_from_tags: flag("author_from_tags", defaults.author_from_tags),
        markings_from_tags: flag("markings_from_tags", defaults.markings_from_tags),
        import_to_ids_no_score: profile
            .get("import_to_ids_no_score")
            .and_then(Value::as_i64),
        import_unsupported_observables_as_text: flag(
            "import_unsupported_observables_as_text",
            defaults.import_unsupported_observables_as_text,
        ),
        import_unsupported_observables_as_text_transparent: flag(
            "import_unsupported_observables_as_text_transparent",
            defaults.import_unsupported_observables_as_text_transparent,
        ),
        import_with_attachments: flag("import_with_attachments", defaults.import_with_attachments),
        reference_compat: compat,
        ..defaults
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut profiles_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference/profiles.json");
    let mut profile_name = "full".to_string();
    let mut compat = false;
    let mut normalize = false;
    let mut out_dir: Option<PathBuf> = None;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--profiles" => profiles_path = args.next().ok_or("--profiles needs a file")?.into(),
            "--profile" => profile_name = args.next().ok_or("--profile needs a name")?,
            "--compat" => compat = true,
            "--normalize" => normalize = true,
            "--out" => out_dir = Some(args.next().ok_or("--out needs a directory")?.into()),
            "--normalize-bundle" => {
                let file = args.next().ok_or("--normalize-bundle needs a file")?;
                let bundle: Value = serde_json::from_slice(
                    &std::fs::read(&file).map_err(|e| format!("{file}: {e}"))?,
                )
                .map_err(|e| format!("{file}: {e}"))?;
                println!("{}", normalize_bundle(&bundle));
                return Ok(());
            }
            _ => files.push(arg),
        }
    }
    let profiles: Value = serde_json::from_slice(
        &std::fs::read(&profiles_path).map_err(|e| format!("{}: {e}", profiles_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", profiles_path.display()))?;
    let profile = profiles
        .get(&profile_name)
        .ok_or(format!("no profile {profile_name}"))?;
    let options = options_from(profile, compat);
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| format!("{file}: {e}"))?;
        for event in parse_event_file(&bytes, &file).map_err(|e| e.to_string())? {
            let bundle = convert_event(&event, &options, &ResolvedThreats::default())
                .map_err(|e| e.to_string())?;
            let text = if normalize {
                normalize_objects(&bundle.objects()).to_string()
            } else {
                bundle.into_json()
            };
            match &out_dir {
                Some(dir) => {
                    let stem = Path::new(&file)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("event");
                    let target = dir.join(format!("{stem}.json"));
                    std::fs::write(&target, text)
                        .map_err(|e| format!("{}: {e}", target.display()))?;
                }
                None => println!("{text}"),
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
