//! The run model: what one evaluation produces and how it lives on disk. `results` is the typed
//! results.json (every run kind, written and read back), `dir` a run directory with its
//! companion files. Protocols produce the data; reports and the gate only read it from here.

pub mod dir;
pub mod results;
