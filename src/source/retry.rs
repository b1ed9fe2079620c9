//! How long to wait between tries of one request: exponential backoff with jitter, and a
//! server's `Retry-After` honoured up to a bound.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries after the first one.
    pub retries: u32,
    /// Wait before the first retry; doubled for each later one.
    pub base_delay: Duration,
    /// Longest computed wait.
    pub max_delay: Duration,
    /// Longest wait a server's `Retry-After` may ask for; longer requests are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry_index` (0 for the first retry): the doubled base
    /// capped at `max_delay`, then a random point in its upper half, so that many clients
    /// failing together do not come back together.
    pub(crate) fn backoff(&self, retry_index: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry_index.min(30));
        let ceiling = self
            .base_delay
            .saturating_mul(factor)
            .min(self.max_delay)
            .max(self.base_delay.min(self.max_delay));
        let floor = ceiling / 2;
        if ceiling <= floor {
            return ceiling;
        }
        rand::thread_rng().gen_range(floor..=ceiling)
    }

    /// The wait a `Retry-After` header value asks for (delay in seconds or an HTTP date),
    /// bounded by `max_retry_after`; `None` when the value is not understood.
    pub(crate) fn retry_after(&self, value: &str, now: DateTime<Utc>) -> Option<Duration> {
        let value = value.trim();
        let wanted = if let Ok(seconds) = value.parse::<u64>() {
            Duration::from_secs(seconds)
        } else {
            let when = DateTime::parse_from_rfc2822(value).ok()?;
            (when.with_timezone(&Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        };
        Some(wanted.min(self.max_retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let policy = policy();
        for _ in 0..50 {
            let first = policy.backoff(0);
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let third = policy.backoff(2);
            assert!((200..=400).contains(&third.as_millis()), "{third:?}");
            let late = policy.backoff(20);
            assert!((500..=1000).contains(&late.as_millis()), "{late:?}");
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates_within_bounds() {
        let policy = policy();
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(policy.retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            policy.retry_after("3600", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            policy.retry_after("Mon, 01 Jan 2024 00:00:04 GMT", now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            policy.retry_after("Sun, 31 Dec 2023 00:00:04 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(policy.retry_after("later", now), None);
    }
}
