//! Clock (leaf): the one way code reads wall-clock time, so token expiry, OAuth 1.0a timestamps,
//! JWT claims and SigV4 dates are tested by setting the time instead of waiting for it.
//!
//! Monotonic waits (backoff, deadlines) use `tokio::time`, which tests pause and advance.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Now, in whole seconds since the Unix epoch (0 if the clock is before it).
    fn unix_seconds(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until told to move: for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock showing `unix_seconds` after the epoch.
    pub fn at(unix_seconds: u64) -> Self {
        ManualClock {
            now: Mutex::new(UNIX_EPOCH + Duration::from_secs(unix_seconds)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.checked_add(by).unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_700_000_000);
        assert_eq!(clock.unix_seconds(), 1_700_000_000);
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.unix_seconds(), 1_700_000_061);
        assert!(SystemClock.unix_seconds() > 1_700_000_000);
    }
}
