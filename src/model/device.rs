//! Where networks and scorers run: the `--device`/`--score-device` and `--dtype` values, and a
//! GPU that cannot be opened explained in one line.

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
    Device::new_cuda(ordinal).map_err(|e| cuda_open_error(flag, spec, &e.to_string()))
}

/// Why `Device::new_cuda` failed, in words: `e` is candle's message (cudarc's `DriverError(CODE, …)`).
fn cuda_open_error(flag: &str, spec: &str, e: &str) -> Error {
    // candle appends a backtrace when RUST_BACKTRACE is set: the first line says what failed.
    let first = e.lines().next().unwrap_or_default();
    let code = first.find("CUDA_ERROR_").map(|i| {
        let rest = &first[i..];
        &rest[..rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(rest.len())]
    });
    let hint = match code {
        // No driver behind libcuda.so.1 (a stub), no device, or a driver that cannot start.
        Some(
            c @ ("CUDA_ERROR_STUB_LIBRARY" | "CUDA_ERROR_NO_DEVICE" | "CUDA_ERROR_NOT_INITIALIZED" | "CUDA_ERROR_UNKNOWN"
            | "CUDA_ERROR_SYSTEM_NOT_READY" | "CUDA_ERROR_DEVICE_UNAVAILABLE"),
        ) => format!(
            "no usable NVIDIA GPU: the CUDA driver could not be initialised ({c}); is this a machine with an NVIDIA GPU and driver? Use {flag} cpu otherwise; see docs/cuda.md"
        ),
        Some(c @ ("CUDA_ERROR_INSUFFICIENT_DRIVER" | "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH")) => format!(
            "the NVIDIA driver is too old for this CUDA 13 binary ({c}): it needs driver 580 or newer; see docs/cuda.md"
        ),
        Some(c @ "CUDA_ERROR_INVALID_DEVICE") => format!("this machine has no GPU {spec} ({c}); nvidia-smi -L lists them"),
        _ => format!("cannot open the GPU: {first}"),
    };
    Error::Config(format!("{flag} {spec}: {hint}"))
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
        // What cudarc says on a machine without a driver (stub libcuda.so.1) or GPU, in words.
        let stub = "DriverError(CUDA_ERROR_STUB_LIBRARY, \"<Failure when calling cuGetErrorString()>\")\nbacktrace";
        let e = cuda_open_error("--device", "cuda", stub);
        assert_eq!(e.exit_code(), 2);
        let e = e.to_string();
        assert!(e.starts_with("--device cuda: no usable NVIDIA GPU") && e.contains("(CUDA_ERROR_STUB_LIBRARY)"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        assert!(cuda_open_error("--device", "cuda", "odd").to_string().ends_with("cannot open the GPU: odd"));
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert!(parse_dtype("f64").is_err());
    }
}
