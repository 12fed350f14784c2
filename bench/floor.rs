//! Baseline for warm numbers (placeholder; see bench/run.sh).
fn main() {}
