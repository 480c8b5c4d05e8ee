//! One error type for the library, with the process exit code each kind maps to.
//!
//! Every message names the file (and line or byte offset where there is one) and says what was
//! expected, so a user can fix the input without reading code.

use std::path::{Path, PathBuf};

/// Documented process exit codes (see README "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const INTERNAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INVALID_INPUT: i32 = 3;
    pub const MISSING_INPUT: i32 = 4;
    pub const OUTPUT: i32 = 5;
    /// `aifr-eval gate`: the run is worse than the baseline beyond tolerance.
    pub const REGRESSION: i32 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A text file has a malformed line.
    #[error("{}:{line}: {msg}", path.display())]
    Parse { path: PathBuf, line: usize, msg: String },
    /// A file is readable but its content is not what the format requires.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    /// Inputs are individually fine but do not fit together (missing keys, dimension mismatch …).
    #[error("{0}")]
    Invalid(String),
    /// A required input file or directory does not exist or cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A required input is absent (with an explanation of what to provide).
    #[error("{0}")]
    Missing(String),
    /// Configuration (datasets.toml, protocols/*.toml, command-line combination) is wrong.
    #[error("{0}")]
    Config(String),
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// Another aifr-eval process is writing the same output (a run directory).
    #[error("{0}")]
    Busy(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Parse { .. } | Error::Data { .. } | Error::Invalid(_) => exit::INVALID_INPUT,
            Error::Read { .. } | Error::Missing(_) => exit::MISSING_INPUT,
            Error::Config(_) => exit::USAGE,
            Error::Write { .. } | Error::Busy(_) => exit::OUTPUT,
        }
    }

    pub fn parse(path: &Path, line: usize, msg: impl Into<String>) -> Self {
        Error::Parse { path: path.to_path_buf(), line, msg: msg.into() }
    }

    pub fn data(path: &Path, msg: impl Into<String>) -> Self {
        Error::Data { path: path.to_path_buf(), msg: msg.into() }
    }

    pub fn read(path: &Path, source: std::io::Error) -> Self {
        Error::Read { path: path.to_path_buf(), source }
    }

    pub fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
