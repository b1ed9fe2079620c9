//! The mirror between the ledger and the connector state OpenCTI keeps for this connector.
//!
//! The ledger is the truth; the platform holds a copy in the Python connector's keys, so that
//! the two connectors can take turns under one id. The ledger remembers the state text its
//! last successful ping delivered, which lets a start tell the platform's three stories
//! apart: the state is our own (nothing to do), it was emptied by "reset state" in the UI
//! (the ledger resets to match), or another connector moved it on (the ledger follows, and
//! does not import again what that connector imported). An operator's `misp-feed reset` wins
//! over all three until a ping has delivered the ledger's state.

use crate::ledger::{Ledger, LedgerError, ResetOrigin};
use crate::opencti::ConnectorState;

/// A change of our state made on the platform, seen by a heartbeat, applied before the next
/// run.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PlatformChange {
    /// "Reset state" in the UI: the state was emptied.
    Emptied,
    /// Another state was written there; its checkpoint, if it has one.
    Replaced(Option<i64>),
}

impl PlatformChange {
    pub(super) fn from_remote(remote: Option<ConnectorState>) -> PlatformChange {
        match remote {
            None => PlatformChange::Emptied,
            Some(state) => PlatformChange::Replaced(state.effective_checkpoint()),
        }
    }

    /// The ledger follows the platform, as pycti adopts a remotely updated state.
    pub(super) async fn apply(self, ledger: &Ledger) -> Result<(), LedgerError> {
        let checkpoint = match self {
            PlatformChange::Emptied => None,
            PlatformChange::Replaced(checkpoint) => checkpoint,
        };
        reset_to_platform(ledger, checkpoint).await
    }
}

async fn reset_to_platform(ledger: &Ledger, checkpoint: Option<i64>) -> Result<(), LedgerError> {
    let forgotten = ledger
        .reset_all(
            "connector state reset on the OpenCTI platform".into(),
            ResetOrigin::Platform,
        )
        .await?;
    if let Some(timestamp) = checkpoint {
        ledger.adopt_platform_checkpoint(timestamp, None).await?;
    }
    tracing::warn!(
        forgotten,
        checkpoint = ?checkpoint,
        "the connector state was changed on the platform (reset state): ledger reset to match, every event is eligible again"
    );
    Ok(())
}

/// A ping carried `sent` and the platform answered `stored`: when they agree, the ledger
/// records what the platform now holds (and an operator's reset is known there).
pub(super) async fn deliver_state(
    ledger: &Ledger,
    sent: Option<&ConnectorState>,
    stored: Option<&ConnectorState>,
) -> Result<(), LedgerError> {
    if sent != stored {
        return Ok(());
    }
    let text = sent.map_or_else(|| "null".to_string(), ConnectorState::to_platform);
    ledger.state_delivered(text).await
}

/// Brings the ledger in line with the state the platform handed over at registration.
/// `raw` is the stored string: `None` for a connector the platform has never seen.
pub(super) async fn reconcile_at_start(
    ledger: &Ledger,
    raw: Option<&str>,
    remote: Option<&ConnectorState>,
) -> Result<(), LedgerError> {
    let sync = ledger.platform_sync().await?;
    if sync.reset_pending {
        tracing::info!(
            "the ledger was reset by an operator since the platform last heard from it: the ledger's state wins and the next ping replaces the platform's"
        );
        return Ok(());
    }
    let checkpoint = ledger.checkpoint().await?;
    let counts = ledger.status_counts().await?;
    let ledger_empty = sync.sent_state.is_none()
        && checkpoint.last_event_timestamp.is_none()
        && checkpoint.last_run.is_none()
        && counts.iter().all(|(_, n)| *n == 0);
    let remote_checkpoint = remote.and_then(ConnectorState::effective_checkpoint);
    if ledger_empty {
        if let Some(timestamp) = remote_checkpoint {
            let last_run = remote.and_then(|r| r.last_run.clone());
            ledger
                .adopt_platform_checkpoint(timestamp, last_run)
                .await?;
            tracing::info!(
                last_event_timestamp = timestamp,
                "empty ledger: adopting the connector state found on the platform (left by the Python connector?); what it imported is not imported again"
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
    // The state our last ping delivered, read back as the platform would read it.
    let delivered = sync
        .sent_state
        .as_deref()
        .map(|text| ConnectorState::from_platform(Some(text)));
    if delivered.as_ref().is_some_and(|d| d.as_ref() == remote) {
        return Ok(());
    }
    let local = checkpoint.last_event_timestamp;
    match (remote, remote_checkpoint, local) {
        (None, _, _) => {
            // Emptied on the platform: a reset, if the platform had been told something (or,
            // for a ledger older than the delivered-state record, if it had a checkpoint).
            let told = match &delivered {
                Some(delivered) => delivered.is_some(),
                None => local.is_some(),
            };
            if told {
                reset_to_platform(ledger, None).await?;
            }
        }
        // Our last closing ping was lost (a crash after the checkpoint was stored): the
        // platform holds an older copy of our own state. The ledger is the newer truth.
        (Some(_), Some(remote), Some(local)) if remote < local => {
            tracing::info!(
                platform = remote,
                ledger = local,
                "the platform's state is behind the ledger (a final ping was lost); keeping the ledger's checkpoint"
            );
        }
        // Another connector under this id imported up to `remote`: follow it, keep the
        // events, and do not import again what it imported.
        (Some(_), Some(remote), Some(local)) if remote > local => {
            ledger.adopt_platform_checkpoint(remote, None).await?;
            tracing::warn!(
                platform = remote,
                ledger = local,
                "the platform's state is ahead of the ledger: checkpoint and import floor moved to the platform's"
            );
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{
        Checkpoint, Destination, EventStatus, PushedContent, QueuedEvent, Receipt, RunOutcome,
        RunStatus,
    };
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
        ledger.mark_pushed(run, uuid, receipt, None).await.unwrap();
        let outcome = RunOutcome {
            status: RunStatus::Completed,
            pushed: 1,
            skipped: 0,
            failed: 0,
            message: String::new(),
        };
        ledger.finish_run(run, outcome).await.unwrap();
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
    async fn a_newer_platform_state_moves_the_checkpoint_and_the_floor_and_keeps_the_events() {
        let (_d, ledger) = ledger_at_100().await;
        let remote = state(200);
        reconcile_at_start(&ledger, Some("{..}"), Some(&remote))
            .await
            .unwrap();
        assert_eq!(stored_timestamp(&ledger).await, Some(200));
        assert_eq!(
            ledger.import_floor().await.unwrap().map(|f| f.at),
            Some(200)
        );
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
        assert_eq!(empty.import_floor().await.unwrap().map(|f| f.at), Some(70));
    }

    #[tokio::test]
    async fn our_own_delivered_state_is_recognised_even_without_a_checkpoint() {
        // S3 mode: the state carries the run and the last file, no event timestamp.
        let (_d, ledger) = ledger_at_100().await;
        let mut s3_state = ConnectorState {
            last_run: Some("2026-11-28T04:06:08.010712+00:00".into()),
            ..ConnectorState::default()
        };
        s3_state
            .other
            .insert("last_file".into(), serde_json::json!("a.json"));
        deliver_state(&ledger, Some(&s3_state), Some(&s3_state))
            .await
            .unwrap();
        reconcile_at_start(&ledger, Some("{..}"), Some(&s3_state))
            .await
            .unwrap();
        assert_eq!(pushed(&ledger).await, 1, "our own state is not a reset");
    }

    #[tokio::test]
    async fn an_operator_reset_wins_over_the_platform_until_a_ping_delivers_it() {
        let (_d, ledger) = ledger_at_100().await;
        deliver_state(&ledger, Some(&state(100)), Some(&state(100)))
            .await
            .unwrap();
        ledger
            .reset_all("reset --all".into(), ResetOrigin::Operator)
            .await
            .unwrap();
        // The platform still holds the old state: adopting it would undo the reset.
        reconcile_at_start(&ledger, Some("{..}"), Some(&state(300)))
            .await
            .unwrap();
        assert_eq!(stored_timestamp(&ledger).await, None);
        assert!(ledger.platform_sync().await.unwrap().reset_pending);
        deliver_state(&ledger, None, None).await.unwrap();
        assert!(!ledger.platform_sync().await.unwrap().reset_pending);
    }
}
