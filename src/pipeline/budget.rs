//! The memory budget (`MISP_FEED_MEMORY_BUDGET_MB`): events in flight are admitted against it,
//! each for an estimate of what converting and pushing it takes, so that a few large files
//! fetched at once cannot take several gigabytes between them. An event whose estimate is
//! larger than the whole budget is not refused: it waits until nothing else is in flight, and
//! nothing else starts while it runs.
//!
//! The budget is a semaphore of megabyte permits. It is fair (first come, first served): a
//! large event waiting for the whole budget collects the permits released before it and is
//! never overtaken by smaller ones, so it cannot starve. An event asks once, for all it needs,
//! and holds nothing else the budget gives while it waits: waiting cannot deadlock. The
//! permits go back when the [`Admission`] is dropped, whether the event was pushed, failed,
//! or its future was cancelled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::events::{InternalEvent, MemoryBudgetWait};

/// Peak memory of converting and pushing one event, per byte of its file.
///
/// Measured with the release binary (`cargo bench --bench huge`, whole-process peak RSS, full
/// profile), since the converter writes each object as text when it is made: `once` on one
/// generated 100,000-attribute event (39.8 MB of JSON) peaks at 566-578 MiB into the bundle
/// folder and at 572 MiB through RabbitMQ with confirms (15 times the file); `convert` of a
/// 9,999-attribute event (4.0 MB) at 140 MiB (37 times: below 10,000 attributes the
/// conversion also makes the relationships, and the process's own baseline weighs more on a
/// small file). 40 covers the events that make relationships; above that size it
/// overestimates, which only makes a large event wait for more of the budget.
pub(crate) const PEAK_BYTES_PER_INPUT_BYTE: u64 = 40;

const MB: u64 = 1024 * 1024;

/// The budget, in megabytes, that an event of `file_bytes` bytes is admitted for (at least
/// one).
pub(crate) fn estimate_mb(file_bytes: u64) -> u32 {
    let bytes = file_bytes.saturating_mul(PEAK_BYTES_PER_INPUT_BYTE);
    u32::try_from(bytes.div_ceil(MB).max(1)).unwrap_or(u32::MAX)
}

/// The budget shared by the events of a pipeline.
#[derive(Clone)]
pub(crate) struct MemoryBudget {
    /// `None`: no budget (a `Settings` built in code with the field left at 0; the option
    /// itself refuses 0).
    permits: Option<Arc<Semaphore>>,
    total_mb: u32,
}

/// An event's share of the budget, held while the event is in flight.
#[derive(Debug)]
pub(crate) struct Admission {
    _permits: Option<OwnedSemaphorePermit>,
    /// The event's estimate, in megabytes.
    pub(crate) needed_mb: u32,
    /// How long the event waited for its share; `None` when it was free at once.
    pub(crate) waited: Option<Duration>,
    /// The estimate exceeds the whole budget: the event holds all of it, alone.
    pub(crate) alone: bool,
}

impl MemoryBudget {
    pub(crate) fn new(total_mb: u32) -> MemoryBudget {
        let permits = (total_mb > 0).then(|| Arc::new(Semaphore::new(total_mb as usize)));
        MemoryBudget { permits, total_mb }
    }

    pub(crate) fn total_mb(&self) -> u32 {
        self.total_mb
    }

    /// Waits for `needed_mb` of the budget (all of it when `needed_mb` is more).
    pub(crate) async fn admit(&self, needed_mb: u32) -> Admission {
        let Some(permits) = &self.permits else {
            return Admission {
                _permits: None,
                needed_mb,
                waited: None,
                alone: false,
            };
        };
        let alone = needed_mb > self.total_mb;
        let share = needed_mb.clamp(1, self.total_mb);
        let (permit, waited) = match Arc::clone(permits).try_acquire_many_owned(share) {
            Ok(permit) => (Some(permit), None),
            Err(_) => {
                let started = Instant::now();
                // The semaphore is never closed: acquiring can only wait. Were it closed, the
                // event would go on without a share rather than fail.
                let permit = Arc::clone(permits).acquire_many_owned(share).await.ok();
                (permit, Some(started.elapsed()))
            }
        };
        Admission {
            _permits: permit,
            needed_mb,
            waited,
            alone,
        }
    }

    /// Megabytes of the budget no event holds.
    #[cfg(test)]
    fn free_mb(&self) -> usize {
        self.permits
            .as_ref()
            .map_or(usize::MAX, |permits| permits.available_permits())
    }
}

impl super::Pipeline {
    /// Waits for the share of the memory budget an event file of `file_bytes` bytes needs;
    /// says so when the event waited or runs alone. `what` names the event (or S3 object).
    pub(super) async fn admit(&self, what: &str, file_bytes: u64) -> Admission {
        let admission = self.budget.admit(estimate_mb(file_bytes)).await;
        if admission.waited.is_some() || admission.alone {
            MemoryBudgetWait {
                what,
                needed_mb: admission.needed_mb,
                budget_mb: self.budget.total_mb(),
                waited: admission.waited,
                alone: admission.alone,
            }
            .emit();
        }
        admission
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn estimates_round_up_and_never_reach_zero() {
        assert_eq!(estimate_mb(0), 1);
        assert_eq!(estimate_mb(1), 1);
        assert_eq!(estimate_mb(MB / PEAK_BYTES_PER_INPUT_BYTE + 1), 2);
        assert_eq!(estimate_mb(10 * MB), 10 * PEAK_BYTES_PER_INPUT_BYTE as u32);
        assert_eq!(estimate_mb(u64::MAX), u32::MAX);
    }

    /// Runs `events` (their estimates in MB) at once against `budget`, each holding its share
    /// for a while; returns the most megabytes held at once and the most events at once.
    async fn run_all(budget: &MemoryBudget, events: &[u32]) -> (u32, u32) {
        let held = Arc::new(AtomicU32::new(0));
        let most_held = Arc::new(AtomicU32::new(0));
        let running = Arc::new(AtomicU32::new(0));
        let most_running = Arc::new(AtomicU32::new(0));
        let tasks = events.iter().map(|&needed| {
            let budget = budget.clone();
            let (held, most_held) = (held.clone(), most_held.clone());
            let (running, most_running) = (running.clone(), most_running.clone());
            tokio::spawn(async move {
                let admission = budget.admit(needed).await;
                let share = needed.min(budget.total_mb());
                most_held.fetch_max(
                    held.fetch_add(share, Ordering::SeqCst) + share,
                    Ordering::SeqCst,
                );
                most_running
                    .fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                held.fetch_sub(share, Ordering::SeqCst);
                drop(admission);
            })
        });
        let done = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(tasks));
        for task in done
            .await
            .expect("every event is admitted in the end (no deadlock)")
        {
            task.unwrap();
        }
        (
            most_held.load(Ordering::SeqCst),
            most_running.load(Ordering::SeqCst),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_events_in_flight_never_hold_more_than_the_budget() {
        let budget = MemoryBudget::new(100);
        let (most_held, most_running) = run_all(&budget, &[40, 40, 40, 30, 30, 10, 60, 5]).await;
        assert!(most_held <= 100, "{most_held} MB held at once");
        assert!(most_running >= 2, "events that fit together run together");
        assert_eq!(budget.free_mb(), 100, "every share went back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_larger_than_the_budget_runs_alone_and_is_never_refused() {
        let budget = MemoryBudget::new(100);
        let alone = budget.admit(250).await;
        assert!(alone.alone);
        assert_eq!(budget.free_mb(), 0, "it holds the whole budget");
        let small = tokio::time::timeout(Duration::from_millis(50), budget.admit(1)).await;
        assert!(small.is_err(), "nothing else starts while it runs");
        drop(alone);
        let small = budget.admit(1).await;
        assert!(!small.alone);
        drop(small);

        // Mixed with small events: every one is admitted, and the large ones alone.
        let (most_held, _) = run_all(&budget, &[10, 500, 20, 30, 101, 5, 5]).await;
        assert!(most_held <= 100);
        assert_eq!(budget.free_mb(), 100);
    }

    #[tokio::test]
    async fn a_large_event_waiting_is_not_overtaken_by_smaller_ones() {
        let budget = MemoryBudget::new(100);
        let first = budget.admit(60).await;
        let large = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit(100).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // 40 MB are free, but the large event came first: the small one queues behind it.
        let small = tokio::time::timeout(Duration::from_millis(50), budget.admit(10)).await;
        assert!(
            small.is_err(),
            "a later small event overtook the waiting large one"
        );
        drop(first);
        let large = large.await.unwrap();
        assert!(large.waited.is_some());
        drop(large);
        assert_eq!(budget.free_mb(), 100);
    }

    #[tokio::test]
    async fn shares_go_back_when_an_event_fails_or_is_cancelled() {
        let budget = MemoryBudget::new(50);
        // An event that fails after its admission: the error path drops the admission.
        let failing = async {
            let _admission = budget.admit(30).await;
            Err::<(), &str>("conversion failed")
        };
        assert!(failing.await.is_err());
        assert_eq!(budget.free_mb(), 50);

        // An event cancelled while it runs, and one cancelled while it waits.
        let holder = budget.admit(40).await;
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.admit(30).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        let running = tokio::spawn({
            let budget = budget.clone();
            async move {
                let _admission = budget.admit(10).await;
                std::future::pending::<()>().await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        running.abort();
        let _ = running.await;
        drop(holder);
        assert_eq!(
            budget.free_mb(),
            50,
            "the cancelled events' shares went back"
        );
        let whole = tokio::time::timeout(Duration::from_secs(1), budget.admit(50)).await;
        assert!(whole.is_ok(), "the whole budget can be taken again");
    }

    #[tokio::test]
    async fn no_budget_admits_at_once() {
        let budget = MemoryBudget::new(0);
        let admission = budget.admit(u32::MAX).await;
        assert!(!admission.alone);
        assert!(admission.waited.is_none());
    }
}
