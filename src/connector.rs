//! The connector's life: start (offline, or registered with OpenCTI), the runs of `once` and
//! `run`, the heartbeat, and the two-way mirror between the ledger's checkpoint and the
//! platform's connector state.
//!
//! The mirror follows pycti: the state travels in pings (every 40 s in `run` mode, one
//! `force_ping` at the end of `once`). On start, an empty ledger adopts a state left on the
//! platform (by the Python connector, say), and a platform state that differs from the
//! ledger's (the operator pressed "reset state") resets the ledger to match. In `run` mode
//! the heartbeat notices such a change within 40 s and the next run starts at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::Settings;
use crate::convert::{OfflineResolver, ThreatResolver};
use crate::ledger::{Checkpoint, Ledger, LedgerError};
use crate::pipeline::{Pipeline, PipelineError, RunReport};
use crate::sink::directory::DirectorySink;
use crate::sink::fanout::FanOutSink;
use crate::sink::opencti::{
    ConnectorState, OpenCti, OpenCtiError, OpenCtiSink, remote_state_changed,
};
use crate::sink::{Sink, SinkError};
use crate::source::SourceError;
use crate::telemetry::events::{InternalEvent, Ping, PingFailed, PingSent};

/// Why the connector could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    OpenCti(#[from] OpenCtiError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(
        "no OpenCTI to push to and CONNECTOR_SEND_TO_DIRECTORY is off: set OPENCTI_URL and OPENCTI_TOKEN, \
         or CONNECTOR_SEND_TO_DIRECTORY=true with CONNECTOR_SEND_TO_DIRECTORY_PATH"
    )]
    NowhereToPush,
}

pub struct Connector {
    settings: Arc<Settings>,
    pipeline: Pipeline,
    ledger: Ledger,
    platform: Option<Platform>,
}

struct Platform {
    opencti: Arc<OpenCti>,
    /// The state as we last told the platform (pycti's local state).
    local_state: Arc<Mutex<Option<ConnectorState>>>,
    /// The platform changed our state; reset the ledger before the next run.
    reset_requested: Arc<AtomicBool>,
    remote_after_reset: Arc<Mutex<Option<ConnectorState>>>,
    wake: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which sink the settings select: the bundle folder when sending to the queue is off or no
/// OpenCTI URL is configured (the connector then runs offline).
pub fn runs_offline(settings: &Settings) -> bool {
    !settings.connector.send_to_queue || settings.opencti.url.is_none()
}

fn directory_sink(settings: &Settings) -> Result<Arc<dyn Sink>, ConnectorError> {
    if !settings.connector.send_to_directory {
        return Err(ConnectorError::NowhereToPush);
    }
    Ok(Arc::new(DirectorySink::new(settings)?))
}

/// Brings the ledger in line with the state the platform handed over at registration.
/// `raw` is the stored string: `None` for a connector the platform has never seen.
async fn reconcile_at_start(
    ledger: &Ledger,
    raw: Option<&str>,
    remote: Option<&ConnectorState>,
) -> Result<(), LedgerError> {
    let checkpoint = ledger.checkpoint().await?;
    let counts = ledger.status_counts().await?;
    let ledger_empty =
        checkpoint.last_event_timestamp.is_none() && counts.iter().all(|(_, n)| *n == 0);
    let remote_checkpoint = remote.and_then(ConnectorState::effective_checkpoint);
    if ledger_empty {
        if let Some(ts) = remote_checkpoint {
            ledger
                .store_checkpoint(Checkpoint {
                    last_event_timestamp: Some(ts),
                    last_run: remote.and_then(|r| r.last_run.clone()),
                    ..Checkpoint::default()
                })
                .await?;
            tracing::info!(
                last_event_timestamp = ts,
                "empty ledger: adopting the connector state found on the platform (left by the Python connector?)"
            );
        }
        return Ok(());
    }
    if raw.is_none() {
        tracing::info!(
            "the platform holds no state for this connector yet; keeping the ledger's checkpoint"
        );
        return Ok(());
    }
    match (remote_checkpoint, checkpoint.last_event_timestamp) {
        // "Reset state" in the UI empties the stored state.
        (None, _) => reset_to(ledger, None).await?,
        // Our last closing ping was lost (a crash after the checkpoint was stored): the
        // platform holds an older copy of our own state. The ledger is the newer truth.
        (Some(remote), Some(local)) if remote < local => {
            tracing::info!(
                platform = remote,
                ledger = local,
                "the platform's state is behind the ledger (a final ping was lost); keeping the ledger's checkpoint"
            );
        }
        // Another connector under this id moved the checkpoint on: follow it, keep the events.
        (Some(remote), local) if Some(remote) != local => {
            ledger
                .store_checkpoint(Checkpoint {
                    last_event_timestamp: Some(remote),
                    ..checkpoint
                })
                .await?;
            tracing::warn!(
                platform = remote,
                ledger = ?local,
                "the platform's state is ahead of the ledger: checkpoint moved to the platform's"
            );
        }
        _ => {}
    }
    Ok(())
}

async fn reset_to(ledger: &Ledger, remote_checkpoint: Option<i64>) -> Result<(), LedgerError> {
    let forgotten = ledger
        .reset_all("connector state reset on the OpenCTI platform".into())
        .await?;
    if let Some(ts) = remote_checkpoint {
        ledger
            .store_checkpoint(Checkpoint {
                last_event_timestamp: Some(ts),
                ..Checkpoint::default()
            })
            .await?;
    }
    tracing::warn!(
        forgotten,
        checkpoint = ?remote_checkpoint,
        "the connector state was changed on the platform (reset state): ledger reset to match, every event is eligible again"
    );
    Ok(())
}

impl Connector {
    /// Opens the ledger, builds the source and the sink, and registers with OpenCTI unless
    /// the connector runs offline. `progress` draws a progress bar during runs.
    pub async fn start(
        settings: Arc<Settings>,
        progress: bool,
    ) -> Result<Connector, ConnectorError> {
        let ledger = Ledger::open(&settings.misp_feed.ledger_path).await?;
        let source = crate::source::build_source(&settings).await?;
        let (sink, platform): (Arc<dyn Sink>, Option<Platform>) = if runs_offline(&settings) {
            tracing::info!("no OpenCTI push configured: bundles go to the bundle folder only");
            (directory_sink(&settings)?, None)
        } else {
            let opencti = Arc::new(OpenCti::connect(&settings).await?);
            let registration = opencti.registration();
            reconcile_at_start(
                &ledger,
                registration.connector_state.as_deref(),
                opencti.registered_state().as_ref(),
            )
            .await?;
            let checkpoint = ledger.checkpoint().await?;
            let local_state =
                Arc::new(Mutex::new(ConnectorState::of_checkpoint(&checkpoint, None)));
            let opencti_sink: Arc<dyn Sink> = Arc::new(OpenCtiSink::new(Arc::clone(&opencti)));
            let sink: Arc<dyn Sink> = if settings.connector.send_to_directory
                && settings.connector.send_to_directory_path.is_some()
            {
                Arc::new(FanOutSink::new(opencti_sink, directory_sink(&settings)?))
            } else {
                opencti_sink
            };
            let platform = Platform {
                opencti,
                local_state,
                reset_requested: Arc::default(),
                remote_after_reset: Arc::default(),
                wake: Arc::default(),
            };
            (sink, Some(platform))
        };
        // Threats named by tags are looked up on the platform when asked to.
        let resolver: Arc<dyn ThreatResolver> = match &platform {
            Some(platform) if settings.misp_feed.convert.guess_threats_from_tags => {
                platform.opencti.threat_resolver()
            }
            _ => Arc::new(OfflineResolver),
        };
        let pipeline = Pipeline::new(
            Arc::clone(&settings),
            Arc::from(source),
            sink,
            ledger.clone(),
            resolver,
            progress,
        );
        Ok(Connector {
            settings,
            pipeline,
            ledger,
            platform,
        })
    }

    /// Runs the pipeline once, and keeps the state it reached as the one to tell the
    /// platform at the next ping.
    async fn run_pipeline(&mut self) -> Result<RunReport, PipelineError> {
        let report = self.pipeline.run_once().await?;
        if let (Some(platform), Some(checkpoint)) = (&self.platform, &report.checkpoint) {
            *lock(&platform.local_state) =
                ConnectorState::of_checkpoint(checkpoint, Some(report.started));
        }
        Ok(report)
    }

    /// One run; with OpenCTI, force-pings the new state at the end, as the Python connector
    /// does in run-and-terminate mode.
    pub async fn once(&mut self) -> Result<RunReport, ConnectorError> {
        self.apply_requested_reset().await?;
        // No queue check here: like the Python connector's run-and-terminate path, `once`
        // sends exactly pycti's sequence; `run` waits for queue capacity before each run.
        let report = self.run_pipeline().await;
        if let Some(platform) = &self.platform {
            let state = lock(&platform.local_state).clone();
            PingSent.emit();
            if let Err(e) = platform.opencti.force_ping(state.as_ref()).await {
                PingFailed {
                    ping: Ping::FinalState,
                    error: &e,
                }
                .emit();
            }
        }
        Ok(report?)
    }

    async fn apply_requested_reset(&mut self) -> Result<(), LedgerError> {
        let Some(platform) = &self.platform else {
            return Ok(());
        };
        if !platform.reset_requested.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let remote = lock(&platform.remote_after_reset).take();
        let checkpoint = remote
            .as_ref()
            .and_then(ConnectorState::effective_checkpoint);
        reset_to(&self.ledger, checkpoint).await
    }

    /// Runs every `duration_period` until SIGTERM or Ctrl-C, with pycti's heartbeat.
    pub async fn run_forever(&mut self) -> Result<(), ConnectorError> {
        let beat = self.settings.misp_feed.heartbeat_period;
        let heartbeat = self.platform.as_ref().map(|platform| {
            let opencti = Arc::clone(&platform.opencti);
            let local_state = Arc::clone(&platform.local_state);
            let reset_requested = Arc::clone(&platform.reset_requested);
            let remote_after_reset = Arc::clone(&platform.remote_after_reset);
            let wake = Arc::clone(&platform.wake);
            tokio::spawn(async move {
                loop {
                    let local = lock(&local_state).clone();
                    PingSent.emit();
                    let answer = opencti.ping(local.as_ref()).await;
                    match answer {
                        Ok(remote) if remote_state_changed(local.as_ref(), remote.as_ref()) => {
                            tracing::warn!("connector state has been remotely updated");
                            *lock(&local_state) = remote.clone();
                            *lock(&remote_after_reset) = remote;
                            reset_requested.store(true, Ordering::SeqCst);
                            wake.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) => PingFailed {
                            ping: Ping::Heartbeat,
                            error: &e,
                        }
                        .emit(),
                    }
                    tokio::time::sleep(beat).await;
                }
            })
        });
        let period = self.settings.connector.duration_period;
        let wake = self
            .platform
            .as_ref()
            .map(|p| Arc::clone(&p.wake))
            .unwrap_or_default();
        let result = loop {
            let outcome = tokio::select! {
                report = self.run_one_for_loop() => report,
                _ = shutdown_signal() => break Ok(()),
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "run failed; the next run will try again");
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = wake.notified() => tracing::info!("state reset on the platform: running now"),
                _ = shutdown_signal() => break Ok(()),
            }
        };
        if let Some(handle) = heartbeat {
            handle.abort();
        }
        tracing::info!("connector stopped");
        result
    }

    async fn run_one_for_loop(&mut self) -> Result<RunReport, ConnectorError> {
        self.apply_requested_reset().await?;
        if let Some(platform) = &self.platform {
            platform.opencti.wait_for_queue_capacity().await;
        }
        Ok(self.run_pipeline().await?)
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Destination, EventStatus, PushedContent, QueuedEvent, Receipt, RunStatus};
    use chrono::Utc;

    fn state(ts: i64) -> ConnectorState {
        ConnectorState::checkpoint(Utc::now(), ts)
    }

    /// A ledger that pushed one event and stored checkpoint 100.
    async fn ledger_at_100() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.sqlite")).await.unwrap();
        let run = ledger.begin_run("t".into()).await.unwrap();
        let uuid = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81".to_string();
        let queued = QueuedEvent {
            uuid: uuid.clone(),
            source_key: uuid.clone(),
            manifest_timestamp: Some(100),
            info: None,
            reason: "new".into(),
        };
        ledger.queue_events(run, vec![queued]).await.unwrap();
        let content = PushedContent {
            content_sha256: "c".into(),
            bundle_sha256: "b".into(),
        };
        ledger
            .mark_in_flight(run, uuid.clone(), content)
            .await
            .unwrap();
        let receipt = Receipt {
            destination: Destination::Work("work".into()),
            messages: 1,
        };
        ledger.mark_pushed(run, uuid, receipt).await.unwrap();
        ledger
            .finish_run(
                run,
                crate::ledger::RunOutcome {
                    status: RunStatus::Completed,
                    pushed: 1,
                    skipped: 0,
                    failed: 0,
                    message: String::new(),
                },
            )
            .await
            .unwrap();
        ledger
            .store_checkpoint(Checkpoint {
                last_event_timestamp: Some(100),
                ..Checkpoint::default()
            })
            .await
            .unwrap();
        (dir, ledger)
    }

    async fn pushed(ledger: &Ledger) -> u64 {
        ledger
            .status_counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == EventStatus::Pushed)
            .map(|(_, n)| n)
            .unwrap_or(0)
    }

    async fn stored_timestamp(ledger: &Ledger) -> Option<i64> {
        ledger.checkpoint().await.unwrap().last_event_timestamp
    }

    #[tokio::test]
    async fn an_emptied_platform_state_resets_the_ledger() {
        let (_d, ledger) = ledger_at_100().await;
        reconcile_at_start(&ledger, Some(""), None).await.unwrap();
        assert_eq!(stored_timestamp(&ledger).await, None);
        assert_eq!(pushed(&ledger).await, 0);
    }

    #[tokio::test]
    async fn an_older_platform_state_is_a_lost_ping_not_a_reset() {
        let (_d, ledger) = ledger_at_100().await;
        let remote = state(50);
        reconcile_at_start(&ledger, Some("{..}"), Some(&remote))
            .await
            .unwrap();
        assert_eq!(stored_timestamp(&ledger).await, Some(100));
        assert_eq!(pushed(&ledger).await, 1);
    }

    #[tokio::test]
    async fn a_newer_platform_state_moves_the_checkpoint_and_keeps_the_events() {
        let (_d, ledger) = ledger_at_100().await;
        let remote = state(200);
        reconcile_at_start(&ledger, Some("{..}"), Some(&remote))
            .await
            .unwrap();
        assert_eq!(stored_timestamp(&ledger).await, Some(200));
        assert_eq!(pushed(&ledger).await, 1);
    }

    #[tokio::test]
    async fn an_unknown_connector_keeps_the_ledger_and_an_empty_ledger_adopts_the_platform() {
        let (_d, ledger) = ledger_at_100().await;
        reconcile_at_start(&ledger, None, None).await.unwrap();
        assert_eq!(stored_timestamp(&ledger).await, Some(100));
        let dir = tempfile::tempdir().unwrap();
        let empty = Ledger::open(&dir.path().join("e.sqlite")).await.unwrap();
        let remote = state(70);
        reconcile_at_start(&empty, Some("{..}"), Some(&remote))
            .await
            .unwrap();
        assert_eq!(stored_timestamp(&empty).await, Some(70));
    }
}
