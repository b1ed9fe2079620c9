//! The connector's life: start (offline, or registered with OpenCTI), the runs of `once` and
//! `run`, the heartbeat, and the two-way mirror between the ledger's checkpoint and the
//! platform's connector state.
//!
//! The mirror follows pycti: the state travels in pings (every 40 s in `run` mode, one
//! `force_ping` at the end of `once`). On start, an empty ledger adopts a state left on the
//! platform (by the Python connector, say), and a platform state that differs from the
//! ledger's (the operator pressed "reset state") resets the ledger to match. In `run` mode
//! the heartbeat notices such a change within 40 s and the next run starts at once.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::config::Settings;
use crate::ledger::{Ledger, LedgerError};
use crate::opencti::{ConnectorState, OpenCti, OpenCtiError, ThreatResolver};
use crate::pipeline::{Pipeline, PipelineError, RunReport};
use crate::sink::directory::DirectorySink;
use crate::sink::fanout::FanOutSink;
use crate::sink::opencti::OpenCtiSink;
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
    #[error("MISP_FEED_WARNINGLISTS_PATH: {0}")]
    Warninglists(#[from] crate::warninglists::WarninglistError),
    #[error(
        "no OpenCTI to push to and CONNECTOR_SEND_TO_DIRECTORY is off: set OPENCTI_URL and OPENCTI_TOKEN, \
         or CONNECTOR_SEND_TO_DIRECTORY=true with CONNECTOR_SEND_TO_DIRECTORY_PATH"
    )]
    NowhereToPush,
}

mod platform_state;

use platform_state::{PlatformChange, deliver_state, reconcile_at_start};

pub(crate) struct Connector {
    settings: Arc<Settings>,
    pipeline: Pipeline,
    ledger: Ledger,
    platform: Option<Platform>,
}

struct Platform {
    opencti: Arc<OpenCti>,
    /// The state to tell the platform at the next ping (pycti's local state).
    local_state: Arc<Mutex<Option<ConnectorState>>>,
    /// The platform changed our state (a heartbeat saw it); the ledger follows before the
    /// next run.
    change: Arc<Mutex<Option<PlatformChange>>>,
    wake: Arc<Notify>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which sink the settings select: the bundle folder when sending to the queue is off or no
/// OpenCTI URL is configured (the connector then runs offline).
pub(crate) fn runs_offline(settings: &Settings) -> bool {
    !settings.connector.send_to_queue || settings.opencti.url.is_none()
}

fn directory_sink(settings: &Settings) -> Result<Arc<dyn Sink>, ConnectorError> {
    if !settings.connector.send_to_directory {
        return Err(ConnectorError::NowhereToPush);
    }
    Ok(Arc::new(DirectorySink::new(settings)?))
}

impl Connector {
    /// Opens the ledger, builds the source and the sink, and registers with OpenCTI unless
    /// the connector runs offline. `progress` draws a progress bar during runs.
    pub(crate) async fn start(
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
                change: Arc::default(),
                wake: Arc::default(),
            };
            (sink, Some(platform))
        };
        // Threats named by tags are looked up on the platform when asked to.
        let resolver: Option<Arc<ThreatResolver>> = match &platform {
            Some(platform) if settings.misp_feed.convert.guess_threats_from_tags => {
                Some(platform.opencti.threat_resolver())
            }
            _ => None,
        };
        let warninglists = crate::warninglists::load_configured(&settings)?;
        let pipeline = Pipeline::new(
            Arc::clone(&settings),
            Arc::from(source),
            sink,
            ledger.clone(),
        )
        .with_threat_resolver(resolver)
        .with_warninglists(warninglists)
        .with_progress(progress);
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
    pub(crate) async fn once(&mut self) -> Result<RunReport, ConnectorError> {
        self.apply_requested_reset().await?;
        // No queue check here: like the Python connector's run-and-terminate path, `once`
        // sends exactly pycti's sequence; `run` waits for queue capacity before each run.
        let report = self.run_pipeline().await;
        if let Some(platform) = &self.platform {
            let state = lock(&platform.local_state).clone();
            PingSent.emit();
            match platform.opencti.force_ping(state.as_ref()).await {
                Ok(remote) => deliver_state(&self.ledger, state.as_ref(), remote.as_ref()).await?,
                Err(e) => PingFailed {
                    ping: Ping::FinalState,
                    error: &e,
                }
                .emit(),
            }
        }
        // The broker connection ends here, not with the runtime: a connection dropped by a
        // stopping runtime logs errors after a run that went well.
        self.pipeline.close().await;
        Ok(report?)
    }

    async fn apply_requested_reset(&mut self) -> Result<(), LedgerError> {
        let Some(platform) = &self.platform else {
            return Ok(());
        };
        let change = lock(&platform.change).take();
        match change {
            Some(change) => change.apply(&self.ledger).await,
            None => Ok(()),
        }
    }

    /// Runs every `duration_period` until SIGTERM or Ctrl-C, with pycti's heartbeat.
    pub(crate) async fn run_forever(&mut self) -> Result<(), ConnectorError> {
        let beat = self.settings.misp_feed.heartbeat_period;
        let heartbeat = self.platform.as_ref().map(|platform| {
            let opencti = Arc::clone(&platform.opencti);
            let local_state = Arc::clone(&platform.local_state);
            let change = Arc::clone(&platform.change);
            let wake = Arc::clone(&platform.wake);
            let ledger = self.ledger.clone();
            tokio::spawn(async move {
                loop {
                    let local = lock(&local_state).clone();
                    PingSent.emit();
                    let answer = opencti.ping(local.as_ref()).await;
                    match answer {
                        Ok(remote) if local.as_ref() != remote.as_ref() => {
                            tracing::warn!("connector state has been remotely updated");
                            *lock(&local_state) = remote.clone();
                            *lock(&change) = Some(PlatformChange::from_remote(remote));
                            wake.notify_one();
                        }
                        Ok(remote) => {
                            if let Err(e) =
                                deliver_state(&ledger, local.as_ref(), remote.as_ref()).await
                            {
                                tracing::error!(error = %e, "could not record the state delivered to OpenCTI");
                            }
                        }
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
        self.pipeline.close().await;
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
