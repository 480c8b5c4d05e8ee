//! aifr-eval: exact, fast, reproducible evaluation of face-recognition models, with age-invariant
//! analysis. Data flows one way: dataset adapters → embedding store → scores → metrics →
//! protocols → reports. See `README.md` and `docs/` for the user-facing description.

pub mod app;
pub mod cohort;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod embed;
pub mod error;
pub mod gate;
pub mod image;
pub mod io;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod report;
pub mod run;
pub mod score;
pub mod store;
pub mod synth;

pub use error::{Error, Result};
