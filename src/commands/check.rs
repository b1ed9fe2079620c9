//! `misp-feed check`: the configuration is valid (it was loaded), then one line per
//! dependency: the feed, OpenCTI, RabbitMQ.

use super::{Answer, CommandError, Completion};
use crate::config::{QueueProtocol, Settings};
use crate::connector::runs_offline;
use crate::opencti::OpenCti;

pub async fn check(settings: Settings) -> Result<Answer, CommandError> {
    let mut healthy = true;
    let mut out = String::from("configuration: ok\n");
    for line in settings.redacted_summary().lines() {
        out.push_str(&format!("  {line}\n"));
    }
    match crate::source::build_source(&settings).await {
        Ok(source) => match source.list(None).await {
            Ok(_) => out.push_str(&format!("feed: ok ({})\n", source.describe())),
            Err(e) => {
                healthy = false;
                out.push_str(&format!("feed: FAILED ({}): {e}\n", source.describe()));
            }
        },
        Err(e) => {
            healthy = false;
            out.push_str(&format!("feed: FAILED: {e}\n"));
        }
    }
    if settings.misp_feed.warninglists_path.is_some() {
        match crate::warninglists::load_configured(&settings) {
            Ok(Some(lists)) => out.push_str(&format!(
                "warninglists: ok ({} lists)\n",
                lists.lists().len()
            )),
            Ok(None) => out.push_str("warninglists: not used (MISP_FEED_REFERENCE_COMPAT)\n"),
            Err(e) => {
                healthy = false;
                out.push_str(&format!("warninglists: FAILED: {e}\n"));
            }
        }
    }
    if runs_offline(&settings) {
        out.push_str("opencti: not used (offline: bundles go to the bundle folder)\n");
    } else {
        match OpenCti::connect(&settings).await {
            Ok(opencti) => {
                out.push_str(&format!("opencti: ok ({})\n", opencti.client().endpoint()));
                if settings.connector.queue_protocol == QueueProtocol::Amqp {
                    match opencti.check_broker().await {
                        Ok(line) => out.push_str(&format!("rabbitmq: ok ({line})\n")),
                        Err(e) => {
                            healthy = false;
                            out.push_str(&format!("rabbitmq: FAILED: {e}\n"));
                        }
                    }
                } else {
                    out.push_str("rabbitmq: not used (CONNECTOR_QUEUE_PROTOCOL=api)\n");
                }
            }
            Err(e) => {
                healthy = false;
                out.push_str(&format!("opencti: FAILED: {e}\n"));
                out.push_str("rabbitmq: not checked (needs the OpenCTI registration)\n");
            }
        }
    }
    Ok(Answer {
        output: out,
        completion: if healthy {
            Completion::Done
        } else {
            Completion::ProblemsFound
        },
    })
}
