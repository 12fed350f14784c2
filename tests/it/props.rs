//! Property tests (issue 9, "Proof"): generated input for the S3 key decoder, the event
//! parser, the config loader and the Retry-After parser, one file each, and after each file's
//! properties a named test for every failure they found.
//!
//! Each property runs a few hundred cases by default (the whole module takes seconds);
//! `PROPTEST_CASES` overrides them all, which is what `scripts/fuzz.sh` does, batch after batch
//! for a bounded time. A failing case is shrunk and its seed saved under
//! `tests/proptest-regressions/props/` (committed: proptest replays saved seeds first).

mod config;
mod events;
mod keys;
mod retry_after;

use proptest::prelude::*;

/// A string strategy from a regular expression, compiled once (a `&str` strategy compiles its
/// expression again for every case, which costs more than the case for Unicode classes).
fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .expect("a valid expression")
        .boxed()
}

/// `cases` per property, unless `PROPTEST_CASES` says otherwise (scripts/fuzz.sh).
fn cases(cases: u32) -> ProptestConfig {
    let config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_some() {
        config
    } else {
        ProptestConfig { cases, ..config }
    }
}
