//! CPU-bound work (parsing, converting and splitting events) off the async runtime, at most
//! one job per core at a time.
//!
//! `tokio::task::spawn_blocking` alone starts a new thread whenever the existing ones are
//! busy: with several events in flight, the converter and the splitter ran on a dozen
//! threads fighting over two cores, each with its own allocator arena. The pipeline
//! benchmark measured a quarter more CPU per message and half again the peak memory than
//! with one job per core. The blocking pool itself stays unbounded, because other work on
//! it (ledger commits, DNS lookups for a request a conversion may wait on) must never queue
//! behind a conversion.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Semaphore::new(cores)
    })
}

/// Runs `job` on a blocking thread once a core's slot is free; `Err` if the job panicked.
pub(crate) async fn run<T, F>(job: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The semaphore is never closed, so acquiring only waits.
    let _slot = slots().acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_jobs_at_once_than_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = (0..cores * 4).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            super::run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for outcome in futures::future::join_all(jobs).await {
            assert!(outcome.is_ok());
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cores,
            "{most} jobs ran at once on {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error() {
        let outcome = super::run(|| -> u8 { panic!("boom") }).await;
        assert!(outcome.is_err());
    }
}
