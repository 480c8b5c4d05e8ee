//! The integration tests, one binary: each module is one area of the product (a benchmark
//! family, a command, a network), `support` holds what they share. One binary links candle,
//! polars, faer and plotters once instead of once per area.

mod support;

mod age_cohort;
mod age_reference;
mod agedb_protocol;
mod ci_gate;
mod cli;
mod differentials_reference;
mod dlib_model;
mod embed;
mod fgnet_reference;
mod fuzz;
mod gate;
mod gate_kinds;
mod ijb;
mod manifest;
mod megaface;
mod metrics_reference;
mod model_reference;
#[cfg(feature = "onnx")]
mod onnx_model;
mod report;
mod rfw;
mod robustness;
mod run_model;
