//! Computing embeddings: image lists of the benchmarks, the extraction pipeline into the
//! resumable store, and the record of how a store was made.

pub mod command;
pub mod extract;
pub mod list;
pub mod meta;
pub mod skipped;

use crate::error::{Error, Result};
use candle_core::{DType, Device};

/// `cpu`, `cuda` or `cuda:N` → a candle device; `cuda` without the feature says how to get it.
pub fn parse_device(spec: &str) -> Result<Device> {
    parse_device_flag("--device", spec)
}

/// [`parse_device`] for the command-line option `flag` (named in the errors).
pub fn parse_device_flag(flag: &str, spec: &str) -> Result<Device> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(Error::Config(format!("{flag} must be 'cpu', 'cuda' or 'cuda:N', found '{spec}'"))),
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(Error::Config(format!(
            "{flag} {spec}: this aifr-eval binary was built without CUDA support; rebuild it with `cargo build --release --features cuda` (see docs) or use {flag} cpu"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        // candle appends a backtrace when RUST_BACKTRACE is set: the first line says what failed.
        let e = e.to_string();
        Error::Config(format!("{flag} {spec}: cannot open the GPU: {}", e.lines().next().unwrap_or_default()))
    })
}

/// The device kind recorded in results (`cpu` or `cuda`).
pub fn device_kind(device: &Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(spec: &str) -> Result<DType> {
    match spec {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        _ => Err(Error::Config(format!("--dtype must be f32, f16 or bf16, found '{spec}'"))),
    }
}

pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        _ => "f32",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        for bad in ["gpu", "cuda:x", "cuda:"] {
            assert_eq!(parse_device(bad).unwrap_err().exit_code(), 2);
        }
        if !cfg!(feature = "cuda") {
            let e = parse_device("cuda:1").unwrap_err().to_string();
            assert!(e.contains("built without CUDA") && e.contains("--features cuda"), "{e}");
        }
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("f64").is_err());
    }
}
