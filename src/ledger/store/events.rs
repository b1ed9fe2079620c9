//! Events: their state transitions (each one transaction: the update and its history row)
//! and the views the reconciler and the audit commands read.

use std::collections::HashMap;

use chrono::Utc;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{
    EVENT_COLUMNS, HISTORY_COLUMNS, HistoryRow, Store, append_history, event_from_row,
    history_from_row, object_hashes,
};
use crate::ledger::types::*;
use crate::ledger::{Result, now_text, time_text};

impl Store {
    /// Every state change of one event: the caller's update and the history row it returns,
    /// in one transaction.
    fn transition<'a, R>(
        &mut self,
        uuid: &str,
        change: impl FnOnce(&Transaction<'_>, &str) -> Result<(R, HistoryAction, HistoryRow<'a>)>,
    ) -> Result<R> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        let (answer, action, row) = change(&tx, &now)?;
        append_history(&tx, uuid, &now, action, row)?;
        tx.commit()?;
        Ok(answer)
    }

    /// Records that events are due, in one transaction (one disk sync for a run's whole
    /// list): creates each row as `pending` or keeps an existing one's attempts, so a crash
    /// after this point still knows the events are owed.
    pub(crate) fn queue_events(&mut self, run: RunId, events: &[QueuedEvent]) -> Result<()> {
        let now = now_text();
        let tx = self.conn.transaction()?;
        for event in events {
            tx.prepare_cached(
                "INSERT INTO events (uuid, source_key, manifest_timestamp, info, status, attempts, last_run, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?7, 0, ?5, ?6)
                 ON CONFLICT(uuid) DO UPDATE SET source_key = ?2, manifest_timestamp = ?3,
                    info = COALESCE(?4, info),
                    status = CASE WHEN status IN (?8, ?9) THEN ?7 ELSE status END,
                    last_run = ?5, updated_at = ?6",
            )?
            .execute(params![
                event.uuid,
                event.source_key,
                event.manifest_timestamp,
                event.info,
                run,
                now,
                EventStatus::Pending,
                EventStatus::Pushed,
                EventStatus::GaveUp,
            ])?;
            let row = HistoryRow {
                run: Some(run),
                detail: Some(&event.reason),
                ..HistoryRow::default()
            };
            append_history(&tx, &event.uuid, &now, HistoryAction::Queued, row)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The event is about to be handed to the sink; the attempt is counted now.
    pub(crate) fn mark_in_flight(
        &mut self,
        run: RunId,
        uuid: &str,
        content: &PushedContent,
    ) -> Result<()> {
        self.transition(uuid, |tx, now| {
            tx.prepare_cached(
                "UPDATE events SET status = ?2, content_sha256 = ?3, bundle_sha256 = ?4,
                    attempts = attempts + 1, last_run = ?5, updated_at = ?6 WHERE uuid = ?1",
            )?
            .execute(params![
                uuid,
                EventStatus::InFlight,
                content.content_sha256,
                content.bundle_sha256,
                run,
                now
            ])?;
            let row = HistoryRow {
                run: Some(run),
                content_sha256: Some(&content.content_sha256),
                bundle_sha256: Some(&content.bundle_sha256),
                ..HistoryRow::default()
            };
            Ok(((), HistoryAction::InFlight, row))
        })
    }

    /// The sink confirmed the bundle. The hashes of what it sent are recorded in the same
    /// transaction: never hashes of objects the platform did not confirm.
    pub(crate) fn mark_pushed(
        &mut self,
        run: RunId,
        uuid: &str,
        receipt: &Receipt,
        objects: Option<&PushedObjects>,
    ) -> Result<()> {
        let mut detail = format!("{} message(s) confirmed", receipt.messages);
        match objects {
            Some(objects) if objects.full => {
                detail.push_str(&format!("; full: {} objects", objects.total))
            }
            Some(objects) => detail.push_str(&format!(
                "; delta: {} of {} objects",
                objects.sent.len(),
                objects.total
            )),
            None => {}
        }
        if let Some(objects) = objects.filter(|objects| !objects.warninglisted.is_empty()) {
            let attributes: usize = objects.warninglisted.values().sum();
            let lists: Vec<String> = (objects.warninglisted.iter())
                .map(|(list, count)| format!("{list} ({count})"))
                .collect();
            detail.push_str(&format!(
                "; {attributes} attribute(s) on warninglists made no indicator: {}",
                lists.join(", ")
            ));
        }
        self.transition(uuid, |tx, now| {
            if let Some(objects) = objects {
                object_hashes::record(tx, uuid, objects)?;
            }
            tx.prepare_cached(
                "UPDATE events SET status = ?2, destination = ?3, destination_kind = ?4,
                    messages = ?5, pushed_at = ?6, last_error = NULL, next_attempt_at = NULL,
                    attempts = 0, last_run = ?7, updated_at = ?6
                 WHERE uuid = ?1",
            )?
            .execute(params![
                uuid,
                EventStatus::Pushed,
                receipt.destination.text(),
                receipt.destination.kind(),
                receipt.messages as i64,
                now,
                run
            ])?;
            let row = HistoryRow {
                run: Some(run),
                detail: Some(&detail),
                destination: Some(&receipt.destination),
                ..HistoryRow::default()
            };
            Ok(((), HistoryAction::Pushed, row))
        })
    }

    /// A fetch, conversion or push failed. Counts an attempt (a fetch or conversion failure
    /// never reached `mark_in_flight`), schedules the retry with exponential backoff, and
    /// gives up once `max_attempts` is reached. Returns the new status.
    pub(crate) fn mark_failed(
        &mut self,
        run: RunId,
        uuid: &str,
        stage: FailureStage,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<EventStatus> {
        let message = format!("{stage}: {error}");
        self.transition(uuid, |tx, now| {
            let counted: i64 = tx
                .query_row(
                    "SELECT attempts, status FROM events WHERE uuid = ?1",
                    params![uuid],
                    |r| {
                        let attempts: i64 = r.get(0)?;
                        let status: EventStatus = r.get(1)?;
                        // mark_in_flight already counted the attempt of a push failure.
                        Ok(if status == EventStatus::InFlight {
                            attempts
                        } else {
                            attempts + 1
                        })
                    },
                )
                .optional()?
                .unwrap_or(1);
            let gave_up = counted >= i64::from(policy.max_attempts.max(1));
            let (status, next_attempt) = if gave_up {
                (EventStatus::GaveUp, None)
            } else {
                let at = Utc::now() + policy.backoff_after(counted as u32);
                (EventStatus::Failed, Some(time_text(at)))
            };
            tx.prepare_cached(
                "UPDATE events SET status = ?2, attempts = ?3, last_error = ?4,
                    next_attempt_at = ?5, last_run = ?6, updated_at = ?7 WHERE uuid = ?1",
            )?
            .execute(params![
                uuid,
                status,
                counted,
                message,
                next_attempt,
                run,
                now
            ])?;
            let row = HistoryRow {
                run: Some(run),
                detail: Some(&message),
                ..HistoryRow::default()
            };
            Ok((status, HistoryAction::from(status), row))
        })
    }

    /// A manifest entry the source refused (its key is not an event uuid, its timestamp is
    /// unreadable...): recorded as given up with the reason, once; a later run refusing it
    /// for the same reason adds nothing.
    pub(crate) fn record_refused_entry(
        &mut self,
        run: RunId,
        key: &str,
        reason: &str,
    ) -> Result<()> {
        let message = format!("{}: {reason}", FailureStage::Parse);
        let known: Option<(EventStatus, Option<String>)> = self
            .conn
            .query_row(
                "SELECT status, last_error FROM events WHERE uuid = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if known == Some((EventStatus::GaveUp, Some(message.clone()))) {
            return Ok(());
        }
        self.transition(key, |tx, now| {
            tx.prepare_cached(
                "INSERT INTO events (uuid, source_key, status, attempts, last_error, last_run, updated_at)
                 VALUES (?1, 'manifest.json', ?2, 1, ?3, ?4, ?5)
                 ON CONFLICT(uuid) DO UPDATE SET status = ?2, attempts = 1, last_error = ?3,
                    next_attempt_at = NULL, last_run = ?4, updated_at = ?5",
            )?
            .execute(params![key, EventStatus::GaveUp, message, run, now])?;
            let row = HistoryRow {
                run: Some(run),
                detail: Some(&message),
                ..HistoryRow::default()
            };
            Ok(((), HistoryAction::GaveUp, row))
        })
    }

    pub(crate) fn event(&self, uuid: &str) -> Result<Option<EventRecord>> {
        Ok(self
            .events_where("uuid = ?1", params![uuid])?
            .into_iter()
            .next())
    }

    /// Every event record, keyed by uuid (the reconciler's view of the ledger).
    pub(crate) fn event_map(&self) -> Result<HashMap<String, EventRecord>> {
        Ok(self
            .events_where("1 = 1", [])?
            .into_iter()
            .map(|record| (record.uuid.clone(), record))
            .collect())
    }

    pub(crate) fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let mut sql = format!("{EVENT_COLUMNS} WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            args.push(status.as_str().to_string().into());
        }
        if let Some(since) = filter.updated_since {
            sql.push_str(" AND updated_at >= ?");
            args.push(time_text(since).into());
        }
        sql.push_str(" ORDER BY updated_at DESC, uuid");
        if let Some(limit) = filter.limit {
            sql.push_str(" LIMIT ?");
            args.push((limit.min(i64::MAX as usize) as i64).into());
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub(crate) fn history(&self, uuid: &str) -> Result<Vec<HistoryRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "{HISTORY_COLUMNS} WHERE event_uuid = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map(params![uuid], history_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// How many events stand in each status (every status, zero included).
    pub(crate) fn status_counts(&self) -> Result<Vec<(EventStatus, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM events GROUP BY status")?;
        let mut counts: Vec<(EventStatus, u64)> =
            EventStatus::ALL.iter().map(|s| (*s, 0u64)).collect();
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, EventStatus>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (status, count) = row?;
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == status) {
                slot.1 = count.max(0) as u64;
            }
        }
        Ok(counts)
    }
}
