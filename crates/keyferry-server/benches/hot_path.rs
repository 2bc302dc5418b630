//! Micro-benchmarks of the request hot path (filled in by the benchmark work).
fn main() {}
