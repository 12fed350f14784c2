//! Per-event CPU costs (placeholder; filled in by the benchmark work).
fn main() {}
