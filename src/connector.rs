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

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::app::{self, AppResult};
use crate::config::Settings;
use crate::ledger::{Checkpoint, Ledger};
use crate::opencti::{ConnectorState, OpenCti, ThreatResolver, remote_state_changed};
use crate::pipeline::{Pipeline, PipelineError, RunReport};
use crate::sink::Sink;
use crate::sink::fanout::FanOutSink;
use crate::sink::opencti::OpenCtiSink;

/// The per-run threat search of `guess_threats_from_tags`; `None` offline or with it off.
type Threats = Option<Arc<ThreatResolver>>;

pub struct Connector {
    settings: Arc<Settings>,
    pipeline: Pipeline,
    ledger: Arc<Mutex<Ledger>>,
    platform: Option<Platform>,
}

struct Platform {
    opencti: Arc<OpenCti>,
    sink: Arc<OpenCtiSink>,
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

/// The Python connector's state for a ledger checkpoint.
pub fn state_of(
    checkpoint: &Checkpoint,
    run_started: Option<DateTime<Utc>>,
) -> Option<ConnectorState> {
    let started = run_started.or_else(|| {
        checkpoint
            .last_run
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    })?;
    let mut state = match checkpoint.last_event_timestamp {
        Some(ts) => ConnectorState::checkpoint(started, ts),
        None => ConnectorState::default(),
    };
    if let Some(file) = &checkpoint.last_file {
        state
            .other
            .insert("last_file".into(), serde_json::Value::String(file.clone()));
    }
    Some(state)
}

/// Brings the ledger in line with the state the platform handed over at registration.
/// `raw` is the stored string: `None` for a connector the platform has never seen.
fn reconcile_at_start(
    ledger: &mut Ledger,
    raw: Option<&str>,
    remote: Option<&ConnectorState>,
) -> AppResult<()> {
    let checkpoint = ledger.checkpoint().map_err(|e| e.to_string())?;
    let counts = ledger.status_counts().map_err(|e| e.to_string())?;
    let ledger_empty =
        checkpoint.last_event_timestamp.is_none() && counts.iter().all(|(_, n)| *n == 0);
    let remote_checkpoint = remote.and_then(ConnectorState::effective_checkpoint);
    if ledger_empty {
        if let Some(ts) = remote_checkpoint {
            ledger
                .set_checkpoint(&Checkpoint {
                    last_event_timestamp: Some(ts),
                    last_run: remote.and_then(|r| r.last_run.clone()),
                    ..Checkpoint::default()
                })
                .map_err(|e| e.to_string())?;
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
        (None, _) => reset_to(ledger, None)?,
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
                .set_checkpoint(&Checkpoint {
                    last_event_timestamp: Some(remote),
                    ..checkpoint
                })
                .map_err(|e| e.to_string())?;
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

fn reset_to(ledger: &mut Ledger, remote_checkpoint: Option<i64>) -> AppResult<()> {
    let forgotten = ledger
        .reset_all("connector state reset on the OpenCTI platform")
        .map_err(|e| e.to_string())?;
    if let Some(ts) = remote_checkpoint {
        ledger
            .set_checkpoint(&Checkpoint {
                last_event_timestamp: Some(ts),
                ..Checkpoint::default()
            })
            .map_err(|e| e.to_string())?;
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
    /// the connector runs offline.
    pub async fn start(settings: Arc<Settings>) -> AppResult<Connector> {
        let mut ledger = app::open_ledger(&settings)?;
        let source = crate::source::build_source(&settings)
            .await
            .map_err(|e| e.to_string())?;
        let (sink, resolver, platform): (Arc<dyn Sink>, Threats, Option<Platform>) =
            if app::runs_offline(&settings) {
                tracing::info!("no OpenCTI push configured: bundles go to the bundle folder only");
                (app::directory_sink(&settings)?, None, None)
            } else {
                let opencti = Arc::new(
                    OpenCti::connect(&settings)
                        .await
                        .map_err(|e| e.to_string())?,
                );
                let registration = opencti.registration();
                reconcile_at_start(
                    &mut ledger,
                    registration.connector_state.as_deref(),
                    opencti.registered_state().as_ref(),
                )?;
                let checkpoint = ledger.checkpoint().map_err(|e| e.to_string())?;
                let local_state = Arc::new(Mutex::new(state_of(&checkpoint, None)));
                let resolver: Threats = if settings.misp_feed.convert.guess_threats_from_tags {
                    Some(opencti.threat_resolver())
                } else {
                    None
                };
                let opencti_sink = Arc::new(OpenCtiSink::new(Arc::clone(&opencti)));
                let sink: Arc<dyn Sink> = if settings.connector.send_to_directory
                    && settings.connector.send_to_directory_path.is_some()
                {
                    Arc::new(FanOutSink::new(
                        opencti_sink.clone(),
                        app::directory_sink(&settings)?,
                    ))
                } else {
                    opencti_sink.clone()
                };
                let platform = Platform {
                    opencti,
                    sink: opencti_sink,
                    local_state,
                    reset_requested: Arc::default(),
                    remote_after_reset: Arc::default(),
                    wake: Arc::default(),
                };
                (sink, resolver, Some(platform))
            };
        let ledger = Arc::new(Mutex::new(ledger));
        let mut pipeline = Pipeline::new(
            Arc::clone(&settings),
            Arc::from(source),
            Arc::clone(&sink),
            Arc::clone(&ledger),
            resolver,
        );
        if let Some(platform) = &platform {
            let local_state = Arc::clone(&platform.local_state);
            let opencti_sink = Arc::clone(&platform.sink);
            pipeline.checkpoint_listener = Some(Arc::new(move |checkpoint, started| {
                let state = state_of(checkpoint, Some(started));
                if let Some(state) = &state {
                    // The work's closing message quotes the state, as the Python connector's.
                    opencti_sink.note_state(state);
                }
                *lock(&local_state) = state;
            }));
        }
        Ok(Connector {
            settings,
            pipeline,
            ledger,
            platform,
        })
    }

    pub fn set_progress(&mut self, on: bool) {
        self.pipeline.progress = on;
    }

    pub fn is_offline(&self) -> bool {
        self.platform.is_none()
    }

    /// One run; with OpenCTI, waits for queue capacity first and force-pings the new state
    /// at the end, as the Python connector does in run-and-terminate mode.
    pub async fn once(&mut self) -> Result<RunReport, PipelineError> {
        self.apply_requested_reset()?;
        // No queue check here: like the Python connector's run-and-terminate path, `once`
        // sends exactly pycti's sequence; `run` waits for queue capacity before each run.
        if let Some(platform) = &self.platform
            && self.settings.misp_feed.convert.guess_threats_from_tags
        {
            // A fresh cache per run: threats created on the platform since are found.
            self.pipeline.resolver = Some(platform.opencti.threat_resolver());
        }
        let report = self.pipeline.run_once().await;
        if let Some(platform) = &self.platform {
            let state = lock(&platform.local_state).clone();
            let metrics = crate::telemetry::metrics();
            metrics.inc_ping_api();
            if let Err(e) = platform.opencti.force_ping(state.as_ref()).await {
                metrics.inc_ping_api_errors();
                tracing::error!(error = %e, "could not send the connector state to OpenCTI");
            }
        }
        report
    }

    fn apply_requested_reset(&mut self) -> Result<(), PipelineError> {
        let Some(platform) = &self.platform else {
            return Ok(());
        };
        if !platform.reset_requested.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let remote = lock(&platform.remote_after_reset).take();
        let mut ledger = lock(&self.ledger);
        reset_to(
            &mut ledger,
            remote
                .as_ref()
                .and_then(ConnectorState::effective_checkpoint),
        )
        .map_err(PipelineError::Internal)
    }

    /// Runs every `duration_period` until SIGTERM or Ctrl-C, with pycti's heartbeat.
    pub async fn run_forever(&mut self) -> AppResult<()> {
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
                    let metrics = crate::telemetry::metrics();
                    metrics.inc_ping_api();
                    let answer = opencti.ping(local.as_ref()).await;
                    if answer.is_err() {
                        metrics.inc_ping_api_errors();
                    }
                    match answer {
                        Ok(remote) if remote_state_changed(local.as_ref(), remote.as_ref()) => {
                            tracing::warn!("connector state has been remotely updated");
                            *lock(&local_state) = remote.clone();
                            *lock(&remote_after_reset) = remote;
                            reset_requested.store(true, Ordering::SeqCst);
                            wake.notify_one();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "ping to OpenCTI failed; retrying at the next beat"),
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

    async fn run_one_for_loop(&mut self) -> Result<RunReport, PipelineError> {
        self.apply_requested_reset()?;
        if let Some(platform) = &self.platform {
            platform.opencti.wait_for_queue_capacity().await;
            if self.settings.misp_feed.convert.guess_threats_from_tags {
                self.pipeline.resolver = Some(platform.opencti.threat_resolver());
            }
        }
        self.pipeline.run_once().await
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
    use crate::ledger::QueuedEvent;

    fn state(ts: i64) -> ConnectorState {
        ConnectorState::checkpoint(Utc::now(), ts)
    }

    /// A ledger that pushed one event and stored checkpoint 100.
    fn ledger_at_100() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("l.sqlite")).unwrap();
        let run = ledger.begin_run("t").unwrap();
        let uuid = "5a3c2fcd-8328-42bb-a95e-4f4402de0b81";
        ledger
            .queue_event(
                run,
                &QueuedEvent {
                    uuid,
                    source_key: uuid,
                    manifest_timestamp: Some(100),
                    info: None,
                    reason: "new",
                },
            )
            .unwrap();
        ledger.mark_in_flight(run, uuid, "c", "b").unwrap();
        ledger.mark_pushed(run, uuid, "work", 1).unwrap();
        ledger
            .set_checkpoint(&Checkpoint {
                last_event_timestamp: Some(100),
                ..Checkpoint::default()
            })
            .unwrap();
        (dir, ledger)
    }

    fn pushed(ledger: &Ledger) -> u64 {
        ledger
            .status_counts()
            .unwrap()
            .into_iter()
            .find(|(s, _)| *s == crate::ledger::EventStatus::Pushed)
            .map(|(_, n)| n)
            .unwrap_or(0)
    }

    #[test]
    fn an_emptied_platform_state_resets_the_ledger() {
        let (_d, mut ledger) = ledger_at_100();
        reconcile_at_start(&mut ledger, Some(""), None).unwrap();
        assert_eq!(ledger.checkpoint().unwrap().last_event_timestamp, None);
        assert_eq!(pushed(&ledger), 0);
    }

    #[test]
    fn an_older_platform_state_is_a_lost_ping_not_a_reset() {
        let (_d, mut ledger) = ledger_at_100();
        let remote = state(50);
        reconcile_at_start(&mut ledger, Some("{..}"), Some(&remote)).unwrap();
        assert_eq!(ledger.checkpoint().unwrap().last_event_timestamp, Some(100));
        assert_eq!(pushed(&ledger), 1);
    }

    #[test]
    fn a_newer_platform_state_moves_the_checkpoint_and_keeps_the_events() {
        let (_d, mut ledger) = ledger_at_100();
        let remote = state(200);
        reconcile_at_start(&mut ledger, Some("{..}"), Some(&remote)).unwrap();
        assert_eq!(ledger.checkpoint().unwrap().last_event_timestamp, Some(200));
        assert_eq!(pushed(&ledger), 1);
    }

    #[test]
    fn an_unknown_connector_keeps_the_ledger_and_an_empty_ledger_adopts_the_platform() {
        let (_d, mut ledger) = ledger_at_100();
        reconcile_at_start(&mut ledger, None, None).unwrap();
        assert_eq!(ledger.checkpoint().unwrap().last_event_timestamp, Some(100));
        let dir = tempfile::tempdir().unwrap();
        let mut empty = Ledger::open(&dir.path().join("e.sqlite")).unwrap();
        let remote = state(70);
        reconcile_at_start(&mut empty, Some("{..}"), Some(&remote)).unwrap();
        assert_eq!(empty.checkpoint().unwrap().last_event_timestamp, Some(70));
    }
}
