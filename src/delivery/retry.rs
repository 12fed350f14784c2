//! Delivery: the retry policy. Exponential backoff with full jitter, at least as long as the
//! server's `Retry-After`, and never past the deadline.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// When and how often to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff cap for the first retry; doubles each retry.
    pub base: Duration,
    /// Largest backoff (before `Retry-After`, which may ask for more).
    pub max: Duration,
    /// Time kept free before the invocation's deadline, to answer Lambda.
    pub deadline_margin: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            deadline_margin: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after failed attempt number `attempt` (1-based): a uniformly random
    /// duration up to `min(max, base × 2^(attempt-1))` ("full jitter"), raised to `retry_after`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let cap = self.base.saturating_mul(1 << exponent).min(self.max);
        let jittered = cap.mul_f64(fastrand::f64());
        match retry_after {
            Some(wait) => wait.max(jittered),
            None => jittered,
        }
    }

    /// The latest instant a new attempt may start: the deadline less the margin.
    pub fn cutoff(&self, deadline: Option<Instant>) -> Option<Instant> {
        deadline.map(|deadline| {
            deadline
                .checked_sub(self.deadline_margin)
                .unwrap_or_else(Instant::now)
        })
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_doubling_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..=8 {
            let cap = Duration::from_millis(200 * (1 << (attempt - 1))).min(Duration::from_secs(5));
            for _ in 0..200 {
                assert!(policy.backoff(attempt, None) <= cap, "attempt {attempt}");
            }
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|_| policy.backoff(3, None)).collect();
        assert!(spread.len() > 10, "jittered, not fixed");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            assert!(policy.backoff(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        }
    }

    #[test]
    fn parses_both_retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let parsed = parse_retry_after(&future).unwrap();
        assert!(
            parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120),
            "{parsed:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn cutoff_keeps_the_margin() {
        let policy = RetryPolicy::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            policy.cutoff(Some(deadline)),
            Some(deadline - Duration::from_secs(2))
        );
        assert_eq!(policy.cutoff(None), None);
    }
}
