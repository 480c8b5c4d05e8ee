//! Protocols wire an adapter's benchmark, the embedding store and the metrics into a results value.

pub mod curves;
pub mod fgnet;
pub mod ijb;
pub mod manifest;
pub mod megaface;
pub mod outcomes;
pub mod verification;
