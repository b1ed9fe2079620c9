//! The SQLite ledger: the connector's memory.
//!
//! It records every manifest entry, S3 object and event with its push status, and an
//! append-only history of every attempt. Each state change is committed before the caller
//! takes the next step, so a crash at any point leaves a ledger the next run can resolve: an
//! event is `in_flight` before it is handed to a sink and `pushed` only once the sink
//! confirmed it.
//!
//! [`Ledger`] is a handle: the connection lives on a thread of its own and every operation is
//! a typed async method that runs there, one at a time. Nobody else holds the connection or
//! a lock around it, and a commit's disk sync never stalls the tasks of the async runtime.
//! One writer per ledger file (see `lock`); readers (`status`, `events`, `show`) need none.

mod checkpoint;
mod lock;
mod schema;
mod store;
mod types;

pub use checkpoint::{Checkpoint, ImportFloor, PlatformSync, settled_watermark};
pub use types::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::source::{ManifestEntry, ObjectEntry};
use store::Store;
pub(crate) use store::{LeftOut, OldEntry};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {message}")]
    Open { path: String, message: String },
    #[error("ledger {path} is in use by another misp-feed process; stop it first")]
    Locked { path: String },
    #[error(
        "ledger {path} has schema version {found}, newer than this binary knows ({known}); upgrade misp-feed"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("ledger: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger: its thread stopped (a ledger call panicked or the ledger was closed)")]
    Stopped,
}

pub(crate) type Result<T> = std::result::Result<T, LedgerError>;

/// The schema version this binary writes (older ledgers are upgraded to it when opened).
pub fn schema_version() -> i64 {
    schema::latest_version()
}

pub(crate) fn now_text() -> String {
    time_text(Utc::now())
}

pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// A handle on an open ledger; clones share the same connection and thread.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Worker>,
}

/// The thread that owns the connection. Dropping the last handle closes the connection
/// (and releases the writer lock) before the drop returns.
struct Worker {
    path: PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger for writing: takes the writer lock, creates or
    /// upgrades the schema, and marks runs left `running` by a crash as `interrupted`.
    pub async fn open(path: &Path) -> Result<Ledger> {
        Ledger::start(path, Store::open_writer).await
    }

    /// Opens an existing ledger for reading; its schema must be the one this binary writes.
    pub async fn open_read_only(path: &Path) -> Result<Ledger> {
        Ledger::start(path, Store::open_reader).await
    }

    async fn start(path: &Path, open: fn(&Path) -> Result<Store>) -> Result<Ledger> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, is_open) = tokio::sync::oneshot::channel();
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                let mut store = match open(&owned) {
                    Ok(store) => {
                        let _ = opened.send(Ok(()));
                        store
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                // A job that panics loses only its own answer (its caller gets `Stopped`);
                // SQLite's transactions keep the file consistent and the next job runs.
                while let Ok(job) = queue.recv() {
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut store)));
                }
            })
            .map_err(|e| LedgerError::Open {
                path: path.display().to_string(),
                message: format!("cannot start the ledger thread: {e}"),
            })?;
        let worker = Worker {
            path: path.to_path_buf(),
            jobs: Some(jobs),
            thread: Some(thread),
        };
        is_open.await.map_err(|_| LedgerError::Stopped)??;
        Ok(Ledger {
            inner: Arc::new(worker),
        })
    }

    /// Runs `job` on the ledger's thread and waits for its answer.
    async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = answer.send(job(store));
        });
        self.inner
            .jobs
            .as_ref()
            .ok_or(LedgerError::Stopped)?
            .send(job)
            .map_err(|_| LedgerError::Stopped)?;
        answered.await.map_err(|_| LedgerError::Stopped)?
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A consistent copy of the ledger at `path` into `target` (a new file), taken while a
    /// writer may be running, whatever the schema version of the ledger (the copy is brought
    /// up to date when it is opened). The ledger itself is not written.
    pub(crate) async fn copy_file(path: &Path, target: &Path) -> Result<()> {
        let (path, target) = (path.to_path_buf(), target.to_path_buf());
        tokio::task::spawn_blocking(move || Store::copy_file(&path, &target))
            .await
            .map_err(|_| LedgerError::Stopped)?
    }

    // ---- checks -------------------------------------------------------------------------

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub async fn integrity_check(&self) -> Result<String> {
        self.call(|store| store.integrity_check()).await
    }

    /// SQLite's integrity check, and every pushed event carries its confirmation.
    pub async fn verify(&self, files_may_expire: bool) -> Result<VerifyReport> {
        self.call(move |store| store.verify(files_may_expire)).await
    }

    // ---- runs and checkpoint ------------------------------------------------------------

    pub async fn begin_run(&self, source: String) -> Result<RunId> {
        self.call(move |store| store.begin_run(&source)).await
    }

    pub(crate) async fn finish_run(&self, run: RunId, outcome: RunOutcome) -> Result<()> {
        self.call(move |store| store.finish_run(run, &outcome))
            .await
    }

    pub async fn last_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.call(move |store| store.last_runs(limit)).await
    }

    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        self.call(|store| store.checkpoint()).await
    }

    pub async fn store_checkpoint(&self, checkpoint: Checkpoint) -> Result<()> {
        self.call(move |store| store.store_checkpoint(&checkpoint))
            .await
    }

    // ---- the import floor and the platform's copy of the state --------------------------

    /// The floor this run imports from (set by the first run, lowered by an earlier
    /// `MISP_FEED_IMPORT_FROM_DATE`; see [`ImportFloor::for_run`]), stored when it changed.
    pub(crate) async fn floor_for_run(
        &self,
        import_from_date: Option<DateTime<Utc>>,
        run_started: DateTime<Utc>,
    ) -> Result<(ImportFloor, bool)> {
        self.call(move |store| {
            let (floor, changed) =
                ImportFloor::for_run(store.import_floor()?, import_from_date, run_started);
            if changed {
                store.store_import_floor(floor)?;
            }
            Ok((floor, changed))
        })
        .await
    }

    pub(crate) async fn import_floor(&self) -> Result<Option<ImportFloor>> {
        self.call(|store| store.import_floor()).await
    }

    /// `too_old`: entries older than the floor, recorded (once, or when their timestamp
    /// moves) with the floor that excluded them. Returns how many records changed.
    pub(crate) async fn record_too_old(
        &self,
        run: RunId,
        entries: Vec<OldEntry>,
        floor: ImportFloor,
    ) -> Result<usize> {
        self.call(move |store| store.record_too_old(run, &entries, floor))
            .await
    }

    /// Another connector under this id (the Python one, before a migration) imported up to
    /// `timestamp`: the checkpoint follows it and the floor rises to it.
    pub(crate) async fn adopt_platform_checkpoint(
        &self,
        timestamp: i64,
        last_run: Option<String>,
    ) -> Result<()> {
        self.call(move |store| store.adopt_platform_checkpoint(timestamp, last_run.as_deref()))
            .await
    }

    pub(crate) async fn platform_sync(&self) -> Result<PlatformSync> {
        self.call(|store| store.platform_sync()).await
    }

    /// A ping delivered `state`: remembered, and a pending operator reset is now known to
    /// the platform.
    pub(crate) async fn state_delivered(&self, state: String) -> Result<()> {
        self.call(move |store| store.state_delivered(&state)).await
    }

    // ---- the manifest -------------------------------------------------------------------

    /// Records the manifest as listed now (and only it), in one transaction.
    pub async fn record_manifest(&self, run: RunId, entries: Vec<ManifestEntry>) -> Result<()> {
        self.call(move |store| store.record_manifest(run, &entries))
            .await
    }

    /// The manifest as last recorded (used when the feed answers "not modified").
    pub async fn manifest_entries(&self) -> Result<Vec<ManifestEntry>> {
        self.call(|store| store.manifest_entries()).await
    }

    // ---- events: transitions ------------------------------------------------------------

    /// `pending`: the events are due. One transaction for the whole list.
    pub async fn queue_events(&self, run: RunId, events: Vec<QueuedEvent>) -> Result<()> {
        self.call(move |store| store.queue_events(run, &events))
            .await
    }

    /// `in_flight`: about to be handed to the sink, with the hashes of what is sent.
    pub async fn mark_in_flight(
        &self,
        run: RunId,
        uuid: String,
        content: PushedContent,
    ) -> Result<()> {
        self.call(move |store| store.mark_in_flight(run, &uuid, &content))
            .await
    }

    /// `pushed`: the sink's receipt, and the hashes of the objects it confirmed (in the same
    /// transaction).
    pub async fn mark_pushed(
        &self,
        run: RunId,
        uuid: String,
        receipt: Receipt,
        objects: Option<PushedObjects>,
    ) -> Result<()> {
        self.call(move |store| store.mark_pushed(run, &uuid, &receipt, objects.as_ref()))
            .await
    }

    /// The stable-content hashes of `uuid`'s objects on the platform; `None` when unknown.
    pub(crate) async fn object_hashes(
        &self,
        uuid: String,
    ) -> Result<Option<HashMap<String, [u8; 8]>>> {
        self.call(move |store| store.object_hashes(&uuid)).await
    }

    /// Forgets every recorded object hash when the conversion options changed (`fingerprint`
    /// differs from the stored one). Returns whether hashes made under other options went.
    pub(crate) async fn forget_hashes_if_options_changed(
        &self,
        fingerprint: String,
    ) -> Result<bool> {
        self.call(move |store| store.forget_hashes_if_options_changed(&fingerprint))
            .await
    }

    /// `failed` with a retry time, or `gave_up` after the policy's attempts.
    pub async fn mark_failed(
        &self,
        run: RunId,
        uuid: String,
        stage: FailureStage,
        error: String,
        policy: RetryPolicy,
    ) -> Result<EventStatus> {
        self.call(move |store| store.mark_failed(run, &uuid, stage, &error, &policy))
            .await
    }

    /// `gave_up` at once: a manifest entry the source refused, with the reason.
    pub async fn record_refused_entry(
        &self,
        run: RunId,
        key: String,
        reason: String,
    ) -> Result<()> {
        self.call(move |store| store.record_refused_entry(run, &key, &reason))
            .await
    }

    /// `filtered` or `refused`: events left out on purpose, with the rule.
    pub(crate) async fn record_left_out(&self, run: RunId, events: Vec<LeftOut>) -> Result<()> {
        self.call(move |store| store.record_left_out(run, &events))
            .await
    }

    /// Reopens the filtered and refused events when the settings that decided them changed
    /// (`fingerprint` differs from the stored one). Returns how many.
    pub(crate) async fn reopen_left_out(&self, fingerprint: String) -> Result<u64> {
        self.call(move |store| store.reopen_left_out(&fingerprint))
            .await
    }

    // ---- events: views ------------------------------------------------------------------

    pub async fn event(&self, uuid: String) -> Result<Option<EventRecord>> {
        self.call(move |store| store.event(&uuid)).await
    }

    /// Every event record, keyed by uuid (the reconciler's view of the ledger).
    pub(crate) async fn event_map(&self) -> Result<HashMap<String, EventRecord>> {
        self.call(|store| store.event_map()).await
    }

    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<EventRecord>> {
        self.call(move |store| store.list_events(&filter)).await
    }

    pub async fn history(&self, uuid: String) -> Result<Vec<HistoryRecord>> {
        self.call(move |store| store.history(&uuid)).await
    }

    pub(crate) async fn status_counts(&self) -> Result<Vec<(EventStatus, u64)>> {
        self.call(|store| store.status_counts()).await
    }

    // ---- S3 objects ---------------------------------------------------------------------

    pub async fn s3_object(&self, key: String) -> Result<Option<S3ObjectRecord>> {
        self.call(move |store| store.s3_object(&key)).await
    }

    pub(crate) async fn record_s3_object(
        &self,
        run: RunId,
        object: ObjectEntry,
        status: ObjectStatus,
        events: usize,
        error: Option<String>,
    ) -> Result<()> {
        self.call(move |store| {
            store.record_s3_object(run, &object, status, events, error.as_deref())
        })
        .await
    }

    /// The records of an object's events (and of the object, when it failed as a whole).
    pub(crate) async fn object_events(&self, key: String) -> Result<Vec<EventRecord>> {
        self.call(move |store| store.object_events(&key)).await
    }

    /// Clears the record of an object's failure as a whole, once the object was read.
    pub(crate) async fn resolve_object_failure(&self, run: RunId, key: String) -> Result<()> {
        self.call(move |store| store.resolve_object_failure(run, &key))
            .await
    }

    // ---- operator actions ---------------------------------------------------------------

    /// Forgets every event, the manifest, S3 objects and the checkpoint; history is kept.
    /// An operator's reset keeps the import floor; the platform's forgets it too.
    pub async fn reset_all(&self, why: String, origin: ResetOrigin) -> Result<u64> {
        self.call(move |store| store.reset_all(&why, origin)).await
    }

    /// Makes one event due again.
    pub async fn reset_event(&self, uuid: String) -> Result<EventReset> {
        self.call(move |store| store.reset_event(&uuid)).await
    }

    /// Makes every event since `since` due again and moves the checkpoint back to it.
    pub async fn reset_since(&self, since: DateTime<Utc>) -> Result<u64> {
        self.call(move |store| store.reset_since(since)).await
    }

    /// Gives failed and given-up events (or one of them) a fresh set of attempts.
    pub async fn retry(&self, uuid: Option<String>) -> Result<u64> {
        self.call(move |store| store.retry(uuid.as_deref())).await
    }
}
