//! Synthetic benchmarks in the real on-disk layouts, for the demo, the tests and the benches:
//! nothing here is needed to evaluate real data. (The pair-benchmark and ageing-cohort
//! generators live in `demo` and `cohort`.)

pub mod ijb;
pub mod megaface;
pub mod rfw;
