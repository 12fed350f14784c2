//! Targets: rate limits. A target's `rate_limit:` (requests per second with a burst, requests
//! in flight) compiled into a [`Limiter`] that lives on its endpoint: built once at cold start,
//! so it spans every invocation of one warm container (concurrent ones too), and no more.
//! Rates are a token bucket kept as the time the bucket is full again (GCRA): a turn is
//! reserved, then slept until, on tokio's clock; in-flight requests are a [`Semaphore`] whose
//! permit is a drop guard.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::TargetError;

/// `rate_limit:` on a target, as written: at least one of `per_second` and `in_flight`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests started per second, at most (`0.5`: one every two seconds).
    pub per_second: Option<f64>,
    /// Requests that may start at once after a quiet spell (default 1: evenly spaced).
    pub burst: Option<u32>,
    /// Requests waiting for an answer at once, at most.
    pub in_flight: Option<u32>,
}

/// The slowest rate accepted: one request per 15 minutes, the longest a Lambda runs.
const LONGEST_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// A target's compiled rate limit; the default limits nothing.
#[derive(Debug, Default)]
pub struct Limiter {
    bucket: Option<Bucket>,
    slots: Option<(Semaphore, u32)>,
}

/// Turns at a steady rate with a burst: GCRA, one instant of state.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    /// Time between turns: `1 / per_second`.
    interval: Duration,
    /// How far ahead of the steady pace a turn may start: `(burst - 1) × interval`.
    tolerance: Duration,
    /// When the bucket is full again (the theoretical arrival time); `None` until first use.
    full_at: Mutex<Option<Instant>>,
}

/// Why a request was not sent: waiting for its turn would pass the cutoff.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Throttled {
    /// Every in-flight slot stayed taken until the cutoff.
    #[error(
        "not sent: this target's {in_flight} in-flight slot(s) stayed busy until the cutoff \
         (rate_limit.in_flight)"
    )]
    Busy {
        /// The configured `in_flight`.
        in_flight: u32,
    },
    /// The next turn at the configured rate comes at or after the cutoff.
    #[error(
        "not sent: this target's next turn at {per_second} per second is {} ms away, past the \
         cutoff (rate_limit.per_second)",
        wait.as_millis()
    )]
    Later {
        /// The configured `per_second`.
        per_second: f64,
        /// How long the wait would have been.
        wait: Duration,
    },
}

/// The right to send one request (and its follow-ups) to a target: its in-flight slot is given
/// back when this is dropped, however the attempt ends (an answer, an error, cancellation).
#[derive(Debug)]
pub struct Slot<'a> {
    _permit: Option<SemaphorePermit<'a>>,
}

impl Limiter {
    /// Compiles `config`; `name` (`routes[0] (sales).target`) prefixes fields in errors.
    pub fn new(name: &str, config: Option<&RateLimitConfig>) -> Result<Limiter, TargetError> {
        let Some(config) = config else {
            return Ok(Limiter::default());
        };
        let invalid = |field: &str, reason: &str| TargetError::Invalid {
            field: format!("{name}.rate_limit.{field}"),
            reason: reason.to_owned(),
        };
        if config.per_second.is_none() && config.in_flight.is_none() {
            return Err(TargetError::Invalid {
                field: format!("{name}.rate_limit"),
                reason: "give per_second, in_flight, or both".to_owned(),
            });
        }
        let bucket = match config.per_second {
            None if config.burst.is_some() => {
                return Err(invalid("burst", "needs per_second"));
            }
            None => None,
            Some(per_second) => {
                if !per_second.is_finite() || per_second <= 0.0 {
                    return Err(invalid(
                        "per_second",
                        &format!("{per_second} is not a positive number"),
                    ));
                }
                let interval = Duration::try_from_secs_f64(1.0 / per_second)
                    .ok()
                    .filter(|interval| *interval <= LONGEST_INTERVAL)
                    .ok_or_else(|| {
                        invalid(
                            "per_second",
                            &format!(
                                "{per_second} is below one request per 15 minutes (the longest a \
                                 Lambda runs): at least {}",
                                1.0 / LONGEST_INTERVAL.as_secs_f64()
                            ),
                        )
                    })?;
                let burst = config.burst.unwrap_or(1);
                if burst == 0 {
                    return Err(invalid("burst", "must be at least 1"));
                }
                Some(Bucket {
                    per_second,
                    interval,
                    tolerance: interval.saturating_mul(burst - 1),
                    full_at: Mutex::new(None),
                })
            }
        };
        let slots = match config.in_flight {
            Some(0) => return Err(invalid("in_flight", "must be at least 1")),
            Some(n) => Some((Semaphore::new((n as usize).min(Semaphore::MAX_PERMITS)), n)),
            None => None,
        };
        Ok(Limiter { bucket, slots })
    }

    /// Whether this limits anything.
    pub fn is_set(&self) -> bool {
        self.bucket.is_some() || self.slots.is_some()
    }

    /// Free in-flight slots, when `in_flight` is set.
    pub fn free_slots(&self) -> Option<usize> {
        self.slots
            .as_ref()
            .map(|(slots, _)| slots.available_permits())
    }

    /// Waits for an in-flight slot, then for a turn at the rate, and returns the slot. The
    /// slot comes first, so a turn is taken only when the request can go at once: turns taken
    /// by requests then queued for a slot would start together when slots free up, above the
    /// rate. Neither wait may end at or past `cutoff`: the slot is given up at the cutoff, and a
    /// turn that would come then is not reserved at all, so it goes to a later request.
    pub async fn acquire(&self, cutoff: Option<Instant>) -> Result<Slot<'_>, Throttled> {
        let permit = match &self.slots {
            None => None,
            Some((slots, in_flight)) => {
                let busy = Throttled::Busy {
                    in_flight: *in_flight,
                };
                let permit = match cutoff {
                    // An open slot is taken even at the cutoff: `timeout_at` polls it first.
                    Some(cutoff) => tokio::time::timeout_at(cutoff, slots.acquire())
                        .await
                        .map_err(|_| busy.clone())?,
                    None => slots.acquire().await,
                };
                // The semaphore is never closed; were it, that would be no turn either.
                Some(permit.map_err(|_| busy)?)
            }
        };
        if let Some(bucket) = &self.bucket {
            let now = Instant::now();
            let start = bucket.reserve(now, cutoff)?;
            if start > now {
                tokio::time::sleep_until(start).await;
            }
        }
        Ok(Slot { _permit: permit })
    }
}

impl Bucket {
    /// Reserves the next turn at `now` and says when it starts; a turn that would start later
    /// than `now` and at or after `cutoff` is refused and not reserved.
    fn reserve(&self, now: Instant, cutoff: Option<Instant>) -> Result<Instant, Throttled> {
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let due = full_at.map_or(now, |at| at.max(now));
        let start = due
            .checked_sub(self.tolerance)
            .map_or(now, |start| start.max(now));
        if start > now && cutoff.is_some_and(|cutoff| start >= cutoff) {
            return Err(Throttled::Later {
                per_second: self.per_second,
                wait: start - now,
            });
        }
        *full_at = Some(due.checked_add(self.interval).unwrap_or(due));
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(yaml: &str) -> Result<Limiter, String> {
        let config: RateLimitConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        Limiter::new("t", Some(&config)).map_err(|e| e.to_string())
    }

    #[test]
    fn config_errors_name_the_field() {
        for (yaml, want) in [
            ("{}", "t.rate_limit: give per_second, in_flight, or both"),
            (
                "{ per_second: 0 }",
                "t.rate_limit.per_second: 0 is not a positive number",
            ),
            (
                "{ per_second: -2.5 }",
                "t.rate_limit.per_second: -2.5 is not a positive number",
            ),
            (
                "{ per_second: .nan }",
                "t.rate_limit.per_second: NaN is not a positive number",
            ),
            (
                "{ per_second: .inf }",
                "t.rate_limit.per_second: inf is not a positive number",
            ),
            (
                "{ per_second: 0.0001 }",
                "t.rate_limit.per_second: 0.0001 is below one request per 15 minutes",
            ),
            (
                "{ per_second: 5, burst: 0 }",
                "t.rate_limit.burst: must be at least 1",
            ),
            (
                "{ burst: 3, in_flight: 1 }",
                "t.rate_limit.burst: needs per_second",
            ),
            (
                "{ in_flight: 0 }",
                "t.rate_limit.in_flight: must be at least 1",
            ),
        ] {
            let error = limiter(yaml).unwrap_err();
            assert!(error.starts_with(want), "{yaml}: {error}");
        }
        for (yaml, want) in [
            ("{ in_flight: -1 }", "in_flight"),
            ("{ per_second: 5, rate: 2 }", "unknown field `rate`"),
        ] {
            let error = limiter(yaml).unwrap_err();
            assert!(error.contains(want), "{yaml}: {error}");
        }
        assert!(limiter("{ per_second: 0.002 }").unwrap().is_set());
        assert!(!Limiter::new("t", None).unwrap().is_set());
    }

    /// When `n` turns reserved at once start, relative to now.
    fn starts(limiter: &Limiter, n: usize, now: Instant) -> Vec<Duration> {
        let bucket = limiter.bucket.as_ref().unwrap();
        (0..n)
            .map(|_| bucket.reserve(now, None).unwrap() - now)
            .collect()
    }

    #[test]
    fn a_burst_goes_at_once_then_turns_come_at_the_rate_and_refill_while_idle() {
        let limiter = limiter("{ per_second: 5, burst: 3 }").unwrap();
        let now = Instant::now();
        let ms = |ms: &[u64]| -> Vec<Duration> {
            ms.iter().copied().map(Duration::from_millis).collect()
        };
        assert_eq!(starts(&limiter, 5, now), ms(&[0, 0, 0, 200, 400]));
        // Reserved up to 1 s ahead; 2 s later the bucket is full again: three at once.
        let later = now + Duration::from_secs(2);
        assert_eq!(starts(&limiter, 4, later), ms(&[0, 0, 0, 200]));
        // 500 ms on, a turn and a half came back: one goes at once, the next 100 ms later.
        let then = later + Duration::from_millis(500);
        assert_eq!(starts(&limiter, 2, then), ms(&[0, 100]));
    }

    #[test]
    fn a_turn_past_the_cutoff_is_refused_and_not_reserved() {
        let limiter = limiter("{ per_second: 2 }").unwrap();
        let bucket = limiter.bucket.as_ref().unwrap();
        let now = Instant::now();
        let cutoff = Some(now + Duration::from_millis(500));
        assert_eq!(bucket.reserve(now, cutoff), Ok(now));
        assert_eq!(
            bucket.reserve(now, cutoff),
            Err(Throttled::Later {
                per_second: 2.0,
                wait: Duration::from_millis(500)
            })
        );
        // The refused turn was not taken: with a later cutoff, it is the next one.
        let cutoff = Some(now + Duration::from_secs(1));
        assert_eq!(
            bucket.reserve(now, cutoff),
            Ok(now + Duration::from_millis(500))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_held_until_dropped_and_given_up_at_the_cutoff() {
        let limiter = limiter("{ in_flight: 1 }").unwrap();
        let first = limiter.acquire(None).await.unwrap();
        assert_eq!(limiter.free_slots(), Some(0));
        let started = Instant::now();
        let cutoff = started + Duration::from_secs(3);
        let refused = limiter.acquire(Some(cutoff)).await.unwrap_err();
        assert_eq!(refused, Throttled::Busy { in_flight: 1 });
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(first);
        assert_eq!(limiter.free_slots(), Some(1));
        // Free at the cutoff: taken.
        let _again = limiter.acquire(Some(Instant::now())).await.unwrap();
    }
}
