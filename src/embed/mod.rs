//! Computing embeddings: image lists of the benchmarks, the extraction pipeline into the
//! resumable store, and the record of how a store was made.

pub mod extract;
pub mod list;
pub mod meta;
pub mod shard;
pub mod skipped;

// Device and dtype parsing moved down to `model::device` (the scorer uses it too).
pub use crate::model::device::{device_kind, dtype_name, parse_device, parse_device_flag, parse_dtype};
