//! `once`, `run` and `convert`: the connector's work.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{Answer, CommandError, Completion};
use crate::config::Settings;
use crate::connector::Connector;
use crate::pipeline::RunReport;

/// The run's figures as `once --json` prints them.
fn report_json(report: &RunReport) -> serde_json::Value {
    json!({
        "run": report.run_id,
        "pushed": report.pushed,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "failed": report.failed,
        "filtered": report.filtered,
        "refused": report.refused,
        "deferred": report.deferred,
        "checkpoint": report.checkpoint.as_ref().and_then(|c| c.last_event_timestamp),
        "duration_ms": report.duration_ms,
    })
}

async fn start_metrics(
    settings: &Settings,
) -> Result<Option<crate::telemetry::MetricsServer>, CommandError> {
    crate::telemetry::start_metrics(settings)
        .await
        .map_err(|source| CommandError::Metrics {
            port: settings.connector.metrics_port,
            source,
        })
}

/// `misp-feed once`: one sync, then exit. `progress` draws a progress bar on stderr.
pub async fn once(
    settings: Settings,
    as_json: bool,
    progress: bool,
) -> Result<Answer, CommandError> {
    let _metrics = start_metrics(&settings).await?;
    let mut connector = Connector::start(Arc::new(settings), progress).await?;
    let report = connector.once().await?;
    let output = if as_json {
        format!("{}\n", report_json(&report))
    } else {
        format!("{}\n", report.message())
    };
    Ok(Answer {
        output,
        completion: if report.failed > 0 {
            Completion::EventsFailed
        } else {
            Completion::Done
        },
    })
}

/// `misp-feed run`: sync every `duration_period` until SIGTERM.
pub async fn run_forever(settings: Settings) -> Result<Answer, CommandError> {
    if settings.connector.run_and_terminate {
        // pycti's run_and_terminate (or a zero duration period): one run, then exit.
        return once(settings, false, false).await;
    }
    let _metrics = start_metrics(&settings).await?;
    let mut connector = Connector::start(Arc::new(settings), false).await?;
    connector.run_forever().await?;
    Ok(Answer::done(String::new()))
}

/// `misp-feed convert EVENT.json`: the STIX bundle of one MISP event file.
pub fn convert(settings: &Settings, path: &Path) -> Result<Answer, CommandError> {
    let bytes = std::fs::read(path).map_err(|source| CommandError::Io {
        what: path.display().to_string(),
        source,
    })?;
    let name = path.display().to_string();
    let events = crate::convert::parse_event_file(&bytes, &name)?;
    // The parsed event is all the conversion reads: the file's bytes are not held beside it.
    drop(bytes);
    if events.len() > 1 {
        tracing::warn!(
            "{name}: holds {} events; only the first is converted",
            events.len()
        );
    }
    let event = events
        .into_iter()
        .next()
        .ok_or_else(|| CommandError::Usage(format!("{name}: no event in the file")))?;
    for warning in event.warnings() {
        tracing::warn!("{warning}");
    }
    let mut event = event;
    event.shed_unread_members();
    let warninglists = crate::warninglists::load_configured(settings)
        .map_err(|e| CommandError::Connector(e.into()))?;
    let bundle = crate::convert::convert_event_to_print(
        &event,
        &settings.misp_feed.convert,
        warninglists.as_deref(),
    )
    .map_err(CommandError::Input)?;
    for (list, attributes) in &bundle.warninglisted {
        tracing::info!("{attributes} attribute(s) on the warninglist {list:?} made no indicator");
    }
    let mut json = bundle.into_json();
    json.push('\n');
    Ok(Answer::done(json))
}
