//! The connector state kept on the platform, in the Python MISP Feed connector's shape, and
//! the `connectorInfo` pycti sends with every ping.
//!
//! The platform stores the state as an opaque string. The Python connector writes
//! `json.dumps({"last_run": ..., "last_event": ..., "last_event_timestamp": ...})` (Python's
//! default separators); this module writes the same bytes, so the two connectors can take
//! turns under one connector id.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::pycompat::json::python_json_dumps;
use crate::pycompat::time::python_isoformat;

/// The state as the Python connector keeps it. Keys it does not know (e.g. `last_file` of
/// its S3 mode) are kept in `other`, in their order, and written back after the known ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectorState {
    /// `last_run`: start of the last run, Python `isoformat()` in UTC
    /// (`2026-11-28T04:06:08.010712+00:00`).
    pub(crate) last_run: Option<String>,
    /// `last_event`: the checkpoint as a date, `isoformat()` of `last_event_timestamp`.
    pub(crate) last_event: Option<String>,
    /// `last_event_timestamp`: the checkpoint, manifest timestamp (seconds) of the newest
    /// event imported.
    pub last_event_timestamp: Option<i64>,
    pub(crate) other: Map<String, Value>,
}

impl ConnectorState {
    /// The state the Python connector writes after a run that started at `run_started` and
    /// whose newest event has manifest timestamp `last_event_timestamp`.
    pub fn checkpoint(run_started: DateTime<Utc>, last_event_timestamp: i64) -> Self {
        let last_event = Utc
            .timestamp_opt(last_event_timestamp, 0)
            .single()
            .map(|moment| python_isoformat(&moment));
        ConnectorState {
            last_run: Some(python_isoformat(&run_started)),
            last_event,
            last_event_timestamp: Some(last_event_timestamp),
            other: Map::new(),
        }
    }

    /// The state for a ledger checkpoint: its timestamp with the start of the run that
    /// stored it (or the checkpoint's own `last_run`), and its `last_file` in S3 mode. `None`
    /// before any run.
    pub(crate) fn of_checkpoint(
        checkpoint: &crate::ledger::Checkpoint,
        run_started: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        let started = run_started.or_else(|| {
            checkpoint
                .last_run
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        })?;
        // Without an event timestamp (S3 mode) the run's start still marks the state as ours:
        // an empty state would read on the platform as no state at all, i.e. a reset.
        let mut state = match checkpoint.last_event_timestamp {
            Some(ts) => ConnectorState::checkpoint(started, ts),
            None => ConnectorState {
                last_run: Some(python_isoformat(&started)),
                ..ConnectorState::default()
            },
        };
        if let Some(file) = &checkpoint.last_file {
            state
                .other
                .insert("last_file".into(), Value::String(file.clone()));
        }
        Some(state)
    }

    /// Reads the platform's `connector_state` string as pycti's `get_state()` does: `None`
    /// for null, `""`, `"null"`, invalid JSON or anything that is not a non-empty object.
    pub fn from_platform(raw: Option<&str>) -> Option<Self> {
        let text = raw?.trim();
        if text.is_empty() {
            return None;
        }
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
            return None;
        };
        if map.is_empty() {
            return None;
        }
        Some(Self::from_map(map))
    }

    fn from_map(map: Map<String, Value>) -> Self {
        let mut state = ConnectorState::default();
        for (key, value) in map {
            match (key.as_str(), &value) {
                ("last_run", Value::String(text)) => state.last_run = Some(text.clone()),
                ("last_event", Value::String(text)) => state.last_event = Some(text.clone()),
                ("last_event_timestamp", number) if timestamp_of(number).is_some() => {
                    state.last_event_timestamp = timestamp_of(number);
                }
                _ => {
                    state.other.insert(key, value);
                }
            }
        }
        state
    }

    /// The checkpoint to resume from, as the Python connector derives it: the
    /// `last_event_timestamp` when both it and `last_event` are present, else `last_run`.
    pub(crate) fn effective_checkpoint(&self) -> Option<i64> {
        if self.last_event.is_some()
            && let Some(timestamp) = self.last_event_timestamp
        {
            return Some(timestamp);
        }
        let last_run = self.last_run.as_deref()?;
        DateTime::parse_from_rfc3339(last_run)
            .ok()
            .map(|moment| moment.timestamp())
    }

    /// The state as a JSON object, known keys first.
    pub(crate) fn to_value(&self) -> Value {
        let mut map = Map::new();
        if let Some(last_run) = &self.last_run {
            map.insert("last_run".into(), Value::String(last_run.clone()));
        }
        if let Some(last_event) = &self.last_event {
            map.insert("last_event".into(), Value::String(last_event.clone()));
        }
        if let Some(timestamp) = self.last_event_timestamp {
            map.insert(
                "last_event_timestamp".into(),
                Value::Number(timestamp.into()),
            );
        }
        for (key, value) in &self.other {
            map.insert(key.clone(), value.clone());
        }
        Value::Object(map)
    }

    /// What pycti sends as the ping's `state` variable: `json.dumps(state)`.
    pub fn to_platform(&self) -> String {
        python_json_dumps(&self.to_value())
    }

    /// The `storing state (...)` part of the Python connector's closing message.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(last_run) = &self.last_run {
            parts.push(format!("last_run={last_run}"));
        }
        if let Some(last_event) = &self.last_event {
            parts.push(format!("last_event={last_event}"));
        }
        if let Some(timestamp) = self.last_event_timestamp {
            parts.push(format!("last_event_timestamp={timestamp}"));
        }
        for (key, value) in &self.other {
            match value {
                Value::String(text) => parts.push(format!("{key}={text}")),
                other => parts.push(format!("{key}={other}")),
            }
        }
        parts.join(", ")
    }
}

/// True when the platform's state differs from ours: pycti's PingAlive then adopts the
/// remote one. `remote == None` with a local state is the operator's "reset state".
pub fn remote_state_changed(
    local: Option<&ConnectorState>,
    remote: Option<&ConnectorState>,
) -> bool {
    local != remote
}

/// `state` as pycti sends it when there is none: `json.dumps(None)`.
pub(crate) const NO_STATE: &str = "null";

/// The ping's `state` variable for an optional state.
pub(crate) fn state_for_ping(state: Option<&ConnectorState>) -> String {
    state.map_or_else(|| NO_STATE.to_string(), ConnectorState::to_platform)
}

fn timestamp_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        _ => None,
    }
}

/// pycti's `ConnectorInfo`, sent as `connectorInfo` with every ping. On the MISP Feed path
/// pycti always sends the defaults except the queue figures its buffering check fills.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorInfo {
    pub(crate) run_and_terminate: bool,
    pub buffering: bool,
    /// MB, as configured (`CONNECTOR_QUEUE_THRESHOLD`).
    pub(crate) queue_threshold: f64,
    /// MB (decimal), as last read from the platform.
    pub queue_messages_size: f64,
    pub(crate) next_run_datetime: Option<String>,
    pub(crate) last_run_datetime: Option<String>,
}

impl ConnectorInfo {
    pub(crate) fn new(queue_threshold_mb: f64) -> Self {
        ConnectorInfo {
            run_and_terminate: false,
            buffering: false,
            queue_threshold: queue_threshold_mb,
            queue_messages_size: 0.0,
            next_run_datetime: None,
            last_run_datetime: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_python_connector_bytes() {
        let started = DateTime::parse_from_rfc3339("2026-11-28T04:06:08.010712Z")
            .unwrap()
            .with_timezone(&Utc);
        let state = ConnectorState::checkpoint(started, 1795838768);
        assert_eq!(
            state.to_platform(),
            r#"{"last_run": "2026-11-28T04:06:08.010712+00:00", "last_event": "2026-11-28T04:06:08+00:00", "last_event_timestamp": 1795838768}"#
        );
        assert_eq!(
            state.describe(),
            "last_run=2026-11-28T04:06:08.010712+00:00, last_event=2026-11-28T04:06:08+00:00, last_event_timestamp=1795838768"
        );
    }

    #[test]
    fn reads_states_as_pycti_get_state() {
        assert_eq!(ConnectorState::from_platform(None), None);
        assert_eq!(ConnectorState::from_platform(Some("")), None);
        assert_eq!(ConnectorState::from_platform(Some("null")), None);
        assert_eq!(ConnectorState::from_platform(Some("{}")), None);
        assert_eq!(ConnectorState::from_platform(Some("[1]")), None);
        let raw = r#"{"last_run": "2026-11-28T04:03:42.697086+00:00", "last_event_timestamp": 1700000000, "last_file": "x.json"}"#;
        let state = ConnectorState::from_platform(Some(raw)).unwrap();
        assert_eq!(state.last_event_timestamp, Some(1700000000));
        assert_eq!(state.other["last_file"], "x.json");
        assert_eq!(state.to_platform(), raw);
        // Without last_event the Python connector resumes from last_run.
        assert_eq!(state.effective_checkpoint(), Some(1795838622));
    }
}
