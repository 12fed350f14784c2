//! Properties of the Retry-After parser: any value at any time, delay-seconds and HTTP dates
//! in all three forms read back exactly, large values saturate, and the retry step never plans
//! a wait past the cutoff whatever the server asks for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bucket_trigger::delivery::{RetryPolicy, Step};
use bucket_trigger::http::{Verdict, parse_retry_after};
use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use super::{cases, re};

/// The latest time an HTTP date can name: 9999-12-31T23:59:59Z.
const LATEST_HTTP_DATE: u64 = 253_402_300_799;

fn now() -> BoxedStrategy<SystemTime> {
    let today = (1_700_000_000u64..2_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| UNIX_EPOCH + Duration::new(secs, nanos));
    // Anywhere a SystemTime reaches, before the epoch too.
    let anywhen = (any::<bool>(), 0..=i64::MAX as u64).prop_map(|(before, secs)| {
        let offset = Duration::from_secs(secs);
        let time = if before {
            UNIX_EPOCH.checked_sub(offset)
        } else {
            UNIX_EPOCH.checked_add(offset)
        };
        time.unwrap_or(UNIX_EPOCH)
    });
    prop_oneof![4 => today, 1 => anywhen].boxed()
}

/// `at` as an HTTP date, in the preferred form (IMF-fixdate) or one of the two obsolete ones
/// a recipient must also read (RFC 9110 §5.6.7): RFC 850 (two-digit years, read as 1970-2069)
/// and asctime.
fn http_date(at: SystemTime, form: u8) -> String {
    let at: DateTime<Utc> = at.into();
    match form % 3 {
        0 => at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        1 => at.format("%A, %d-%b-%y %H:%M:%S GMT").to_string(),
        _ => at.format("%a %b %e %H:%M:%S %Y").to_string(),
    }
}

fn retry_after_value() -> BoxedStrategy<String> {
    const DATE_PARTS: &[&str] = &[
        "Mon", "Sun", "Sunday", ", ", " ", "06", "6", "31", "00", "99", "Nov", "Feb", "-Nov-",
        "1994", "9999", "0000", "10000", "08:49:37", "23:59:60", "24:00:00", "GMT", "UTC", "-94",
    ];
    prop_oneof![
        any::<String>(),
        re("[ \t]{0,2}[+-]?[0-9]{1,40}[ \t]{0,2}"),
        (0..=LATEST_HTTP_DATE, any::<u8>())
            .prop_map(|(secs, form)| http_date(UNIX_EPOCH + Duration::from_secs(secs), form)),
        vec(select(DATE_PARTS), 0..10).prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(cases(1024))]

    /// Any header value at any time: no panic, and a date never asks for a wait past the
    /// latest HTTP date.
    #[test]
    fn retry_after_reads_anything_and_stays_in_range(value in retry_after_value(), now in now()) {
        let wait = parse_retry_after(&value, now);
        let digits = value.trim().trim_start_matches('+');
        let delay_seconds = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if let Some(wait) = wait
            && !delay_seconds
        {
            let latest = UNIX_EPOCH + Duration::from_secs(LATEST_HTTP_DATE);
            prop_assert!(wait <= latest.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }

    /// Delay-seconds read back as themselves, whitespace around them or not.
    #[test]
    fn delay_seconds_round_trip(
        seconds in any::<u64>(),
        lead in "[ \t]{0,3}",
        trail in "[ \t]{0,3}",
        now in now(),
    ) {
        prop_assert_eq!(
            parse_retry_after(&format!("{lead}{seconds}{trail}"), now),
            Some(Duration::from_secs(seconds))
        );
    }

    /// Delay-seconds too large for a u64 mean the longest wait, not none (as RFC 9111 §1.2.2
    /// says of delta-seconds): the cutoff then ends the retries, where ignoring the header
    /// would retry at once.
    #[test]
    fn delay_seconds_beyond_u64_saturate(digits in "[1-9][0-9]{20,60}", now in now()) {
        prop_assert_eq!(
            parse_retry_after(&digits, now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    /// An HTTP date in any of its three forms reads as the time from now until it, and zero
    /// once it has passed.
    #[test]
    fn http_dates_read_as_the_wait_until_them(
        secs in 0..=LATEST_HTTP_DATE,
        form in any::<u8>(),
        now in now(),
    ) {
        // RFC 850 writes two-digit years, which read back as 1970-2069.
        let secs = if form % 3 == 1 { secs % 3_155_760_000 } else { secs };
        let at = UNIX_EPOCH + Duration::from_secs(secs);
        prop_assert_eq!(
            parse_retry_after(&http_date(at, form), now),
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        );
    }

    /// Whatever the server asks for, the retry step never plans a wait past the cutoff, and a
    /// wait it plans is at least what the server asked for.
    #[test]
    fn retry_after_never_pushes_a_wait_past_the_cutoff(
        value in retry_after_value(),
        now_wall in now(),
        attempt in 1u32..6,
        cutoff_ms in option::of(0u64..=900_000),
        jitter in 0.0f64..1.0,
    ) {
        let after = parse_retry_after(&value, now_wall);
        let verdict = Verdict::Retry { reason: "HTTP 503".into(), after };
        let now = tokio::time::Instant::now();
        let cutoff = cutoff_ms.map(|ms| now + Duration::from_millis(ms));
        let step = RetryPolicy::default().step(attempt, &verdict, false, now, cutoff, jitter);
        if let Step::Wait(wait) = step {
            if let Some(cutoff) = cutoff {
                prop_assert!(wait < cutoff - now, "{:?} past the cutoff", wait);
            }
            prop_assert!(after.is_none_or(|after| wait >= after));
        }
    }
}

/// Found by `delay_seconds_beyond_u64_saturate`: `Retry-After: 100000000000000000000` read as no
/// header at all, so the next attempt came after the ordinary backoff; now it is the longest
/// wait, which the retry step turns into no retry before the cutoff.
#[test]
fn delay_seconds_beyond_u64_mean_the_longest_wait() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let after = parse_retry_after("100000000000000000000", now);
    assert_eq!(after, Some(Duration::from_secs(u64::MAX)));
    let verdict = Verdict::Retry {
        reason: "HTTP 503".into(),
        after,
    };
    let start = tokio::time::Instant::now();
    let cutoff = Some(start + Duration::from_secs(60));
    let step = RetryPolicy::default().step(1, &verdict, false, start, cutoff, 0.5);
    assert_eq!(step, Step::OutOfTime);
}
