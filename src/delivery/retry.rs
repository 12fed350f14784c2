//! Delivery: the retry decision, as a pure function. [`RetryPolicy::step`] takes what happened
//! (attempt number, verdict, whether a credential refresh is still possible), the time and the
//! deadline cutoff, and says what to do next: stop, refresh the credentials and try again, or
//! wait. Exponential backoff with full jitter, at least as long as the server's `Retry-After`,
//! never an attempt past the cutoff. All time arithmetic saturates.

use std::time::Duration;

use tokio::time::Instant;

use crate::http::Verdict;

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

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The verdict stands: a success, or a failure retrying cannot fix.
    Done,
    /// 401 on a token scheme: drop the token, sign again and retry, without counting an attempt.
    Refresh,
    /// Wait this long, then try again.
    Wait(Duration),
    /// Worth retrying, but the attempts are used up.
    Exhausted,
    /// Worth retrying, but the wait would end past the cutoff.
    OutOfTime,
}

impl RetryPolicy {
    /// The next step after attempt number `attempt` (1-based) ended in `verdict`, at `now`,
    /// with no attempt allowed to start after `cutoff`. `can_refresh`: the signer holds a
    /// token it can drop, and has not done so yet for this delivery. `jitter` in `[0, 1)`
    /// scales the backoff (full jitter); callers pass a random number, tests a fixed one.
    pub fn step(
        &self,
        attempt: u32,
        verdict: &Verdict,
        can_refresh: bool,
        now: Instant,
        cutoff: Option<Instant>,
        jitter: f64,
    ) -> Step {
        let after = match verdict {
            Verdict::Delivered { .. }
            | Verdict::AlreadyDelivered
            | Verdict::Check { .. }
            | Verdict::Permanent { .. } => {
                return Step::Done;
            }
            Verdict::Unauthorized { .. } if can_refresh => return Step::Refresh,
            Verdict::Unauthorized { .. } => return Step::Done,
            Verdict::Retry { after, .. } => *after,
        };
        if attempt >= self.max_attempts {
            return Step::Exhausted;
        }
        let wait = self.backoff(attempt, after, jitter);
        match cutoff {
            Some(cutoff) if wait >= cutoff.saturating_duration_since(now) => Step::OutOfTime,
            _ => Step::Wait(wait),
        }
    }

    /// How long to wait after failed attempt number `attempt` (1-based): `jitter` (in `[0, 1)`)
    /// of `min(max, base × 2^(attempt-1))`, raised to `retry_after`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let cap = self.base.saturating_mul(1 << exponent).min(self.max);
        // `mul_f64` panics when rounding lifts the product past `Duration::MAX`.
        let jittered = Duration::try_from_secs_f64(cap.as_secs_f64() * jitter.clamp(0.0, 1.0))
            .map_or(cap, |jittered| jittered.min(cap));
        match retry_after {
            Some(wait) => wait.max(jittered),
            None => jittered,
        }
    }

    /// The latest instant a new attempt may start: the deadline less the margin.
    pub fn cutoff(&self, deadline: Option<Instant>, now: Instant) -> Option<Instant> {
        deadline.map(|deadline| deadline.checked_sub(self.deadline_margin).unwrap_or(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(after: Option<u64>) -> Verdict {
        Verdict::Retry {
            reason: "HTTP 503".into(),
            after: after.map(Duration::from_secs),
        }
    }

    /// The whole decision table, at a fixed time and jitter.
    #[test]
    fn step_table() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        let far = Some(now + Duration::from_secs(60));
        let near = Some(now + Duration::from_millis(100));
        let delivered = Verdict::Delivered {
            detail: "ok".into(),
            remote_id: None,
        };
        let permanent = Verdict::Permanent {
            reason: "400".into(),
        };
        let unauthorized = Verdict::Unauthorized {
            reason: "401".into(),
        };
        let ms = Duration::from_millis;
        type Row<'a> = (&'a str, u32, &'a Verdict, bool, Option<Instant>, f64, Step);
        let table: &[Row] = &[
            ("delivered", 1, &delivered, true, far, 0.5, Step::Done),
            (
                "already",
                1,
                &Verdict::AlreadyDelivered,
                true,
                far,
                0.5,
                Step::Done,
            ),
            ("permanent", 1, &permanent, true, far, 0.5, Step::Done),
            (
                "401, token scheme",
                1,
                &unauthorized,
                true,
                far,
                0.5,
                Step::Refresh,
            ),
            (
                "401, refreshed already",
                1,
                &unauthorized,
                false,
                far,
                0.5,
                Step::Done,
            ),
            (
                "retry 1: half of 200 ms",
                1,
                &retry(None),
                false,
                far,
                0.5,
                Step::Wait(ms(100)),
            ),
            (
                "retry 2: half of 400 ms",
                2,
                &retry(None),
                false,
                far,
                0.5,
                Step::Wait(ms(200)),
            ),
            (
                "retry 3: all of 800 ms",
                3,
                &retry(None),
                false,
                far,
                1.0,
                Step::Wait(ms(800)),
            ),
            (
                "no deadline",
                3,
                &retry(None),
                false,
                None,
                0.0,
                Step::Wait(ms(0)),
            ),
            (
                "Retry-After is a floor",
                1,
                &retry(Some(3)),
                false,
                far,
                0.5,
                Step::Wait(ms(3000)),
            ),
            (
                "last attempt",
                4,
                &retry(None),
                false,
                far,
                0.5,
                Step::Exhausted,
            ),
            (
                "wait past the cutoff",
                1,
                &retry(Some(1)),
                false,
                near,
                0.5,
                Step::OutOfTime,
            ),
            (
                "cutoff already passed",
                1,
                &retry(None),
                false,
                Some(now),
                0.0,
                Step::OutOfTime,
            ),
        ];
        for (name, attempt, verdict, can_refresh, cutoff, jitter, want) in table {
            let got = policy.step(*attempt, verdict, *can_refresh, now, *cutoff, *jitter);
            assert_eq!(got, *want, "{name}");
        }
    }

    /// With the random jitter the loop passes: under the doubling cap, and spread out.
    #[test]
    fn full_jitter_stays_under_the_doubling_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..=8 {
            let cap = Duration::from_millis(200 * (1 << (attempt - 1))).min(Duration::from_secs(5));
            for _ in 0..200 {
                assert!(
                    policy.backoff(attempt, None, fastrand::f64()) <= cap,
                    "attempt {attempt}"
                );
            }
        }
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|_| policy.backoff(3, None, fastrand::f64()))
            .collect();
        assert!(spread.len() > 10, "jittered, not fixed");
    }

    #[test]
    fn backoff_is_capped_and_saturates() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(30, None, 1.0), Duration::from_secs(5));
        assert_eq!(
            policy.backoff(u32::MAX, Some(Duration::MAX), 1.0),
            Duration::MAX
        );
        let huge = RetryPolicy {
            base: Duration::MAX,
            max: Duration::MAX,
            ..RetryPolicy::default()
        };
        assert_eq!(huge.backoff(20, None, 1.0), Duration::MAX);
        // A wait that long is never taken: it ends past any deadline.
        let now = Instant::now();
        assert_eq!(
            policy.step(
                1,
                &retry(Some(u64::MAX)),
                false,
                now,
                Some(now + Duration::from_secs(900)),
                0.5
            ),
            Step::OutOfTime
        );
    }

    #[test]
    fn cutoff_keeps_the_margin() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        assert_eq!(
            policy.cutoff(Some(deadline), now),
            Some(deadline - Duration::from_secs(2))
        );
        assert_eq!(policy.cutoff(None, now), None);
    }
}
