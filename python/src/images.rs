//! The training-loop path: a benchmark's images, decoded and aligned in Rust threads (off the
//! GIL) a few batches ahead of the consumer, as `uint8` pixels in the network's input size.
//!
//! The geometry is the library's own (`image::decode`, `image::to_network_size`: five-point
//! alignment where the benchmark has landmarks, a bilinear resize where the size differs, as
//! is otherwise), so the pixels are those `aifr-eval embed` feeds its networks, rounded to
//! `uint8` (exact for images already at the input size, e.g. `.bin` packs).

use crate::{env, py_err};
use aifr_eval::embed::list::ImageList;
use aifr_eval::error::Result;
use aifr_eval::model::InputSpec;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyByteArray;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

/// One decoded batch: `n × h × w × 3` pixels and, when asked for, the mirrored images.
struct Batch {
    start: usize,
    n: usize,
    pixels: Vec<u8>,
    mirrored: Option<Vec<u8>>,
}

/// A benchmark opened for embedding: its image list, in the order `evaluate` expects the rows.
#[pyclass(module = "aifr_eval._native")]
struct Benchmark {
    list: Arc<ImageList>,
    keys: Vec<String>,
}

/// Image `i` at the network's size into `out` (`h × w × 3`, RGB or BGR `u8`).
fn pixels_into(list: &ImageList, i: usize, spec: &InputSpec, bgr: bool, out: &mut [u8]) -> Result<()> {
    let bytes = list.bytes(i).map_err(|b| b.into_error())?;
    let img = aifr_eval::image::decode(&bytes).map_err(|e| list.decode_error(i, e).into_error())?;
    let landmarks = list.items[i].landmarks.as_ref();
    if landmarks.is_none() && (img.width, img.height) == (spec.width, spec.height) {
        // What `to_network_size` gives such an image (its pixels as they are), without the
        // round trip through f32.
        out.copy_from_slice(&img.data);
    } else {
        let hwc = aifr_eval::image::to_network_size(&img, landmarks, spec)
            .map_err(|e| list.decode_error(i, e).into_error())?;
        for (o, v) in out.iter_mut().zip(hwc) {
            *o = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    if bgr {
        for p in out.chunks_exact_mut(3) {
            p.swap(0, 2);
        }
    }
    Ok(())
}

/// Mirrors interleaved `h × w × 3` images left-right.
fn mirror(pixels: &[u8], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len());
    for row in pixels.chunks_exact(width * 3) {
        for px in row.chunks_exact(3).rev() {
            out.extend_from_slice(px);
        }
    }
    out
}

fn decode_batch(list: &ImageList, start: usize, n: usize, spec: &InputSpec, bgr: bool, flip: bool) -> Result<Batch> {
    let size = spec.height * spec.width * 3;
    let mut pixels = vec![0u8; n * size];
    let done: Vec<Result<()>> =
        pixels.par_chunks_mut(size).enumerate().map(|(k, out)| pixels_into(list, start + k, spec, bgr, out)).collect();
    // The first bad image in list order, whichever thread met it first.
    done.into_iter().collect::<Result<()>>()?;
    let mirrored = flip.then(|| mirror(&pixels, spec.width));
    Ok(Batch { start, n, pixels, mirrored })
}

#[pymethods]
impl Benchmark {
    #[new]
    #[pyo3(signature = (benchmark, data_dir=None, datasets=None))]
    fn new(py: Python<'_>, benchmark: String, data_dir: Option<PathBuf>, datasets: Option<PathBuf>) -> PyResult<Self> {
        let env = env(data_dir, datasets)?;
        let list = crate::off_gil(py, move || aifr_eval::app::embed::image_list(&env, &benchmark))?;
        let keys = list.keys();
        Ok(Benchmark { list: Arc::new(list), keys })
    }

    /// The image key of each row, in iteration order.
    #[getter]
    fn keys(&self) -> Vec<String> {
        self.keys.clone()
    }

    fn __len__(&self) -> usize {
        self.keys.len()
    }

    /// Batches of decoded images; see the Python wrapper.
    #[pyo3(signature = (batch_size=256, height=112, width=112, channels="rgb", flip=true, prefetch=2))]
    fn batches(
        &self,
        batch_size: usize,
        height: usize,
        width: usize,
        channels: &str,
        flip: bool,
        prefetch: usize,
    ) -> PyResult<Batches> {
        if batch_size == 0 || height == 0 || width == 0 {
            return Err(PyValueError::new_err("batch_size, height and width must be positive"));
        }
        let bgr = match channels {
            "rgb" => false,
            "bgr" => true,
            o => return Err(PyValueError::new_err(format!("channels must be 'rgb' or 'bgr', not '{o}'"))),
        };
        let spec = InputSpec { height, width, ..InputSpec::arcface() };
        let list = self.list.clone();
        // Batches wait in a bounded channel: the producer stays `prefetch` batches ahead.
        let (tx, rx) = mpsc::sync_channel(prefetch.max(1));
        std::thread::Builder::new()
            .name("aifr-eval-images".into())
            .spawn(move || {
                let mut start = 0;
                while start < list.len() {
                    let n = batch_size.min(list.len() - start);
                    let batch = decode_batch(&list, start, n, &spec, bgr, flip);
                    let failed = batch.is_err();
                    // A dropped iterator closes the channel: stop decoding.
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                    start += n;
                }
            })
            .map_err(|e| PyOSError::new_err(format!("cannot start the decoding thread: {e}")))?;
        Ok(Batches { rx: Mutex::new(Some(rx)), shape: (height, width) })
    }
}

/// The iterator `Benchmark.batches` returns: `(start, n, pixels, mirrored)` per batch, the pixels
/// as `bytearray`s the Python side views as `n × h × w × 3` arrays without copying.
#[pyclass(module = "aifr_eval._native")]
struct Batches {
    rx: Mutex<Option<Receiver<Result<Batch>>>>,
    shape: (usize, usize),
}

type BatchOut = (usize, usize, Py<PyByteArray>, Option<Py<PyByteArray>>);

#[pymethods]
impl Batches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<BatchOut>> {
        let mut guard = self.rx.lock().map_err(|_| PyOSError::new_err("image iterator poisoned"))?;
        let got = loop {
            if guard.is_none() {
                return Ok(None);
            }
            // The next batch, waiting without the GIL; Ctrl-C is raised here.
            match crate::recv_without_gil(py, &mut *guard)? {
                Some(b) => break b,
                None if guard.is_none() => return Ok(None),
                None => {}
            }
        };
        match got {
            Err(e) => {
                *guard = None;
                Err(py_err(e))
            }
            Ok(b) => {
                let pixels = PyByteArray::new(py, &b.pixels).unbind();
                let mirrored = b.mirrored.as_deref().map(|m| PyByteArray::new(py, m).unbind());
                Ok(Some((b.start, b.n, pixels, mirrored)))
            }
        }
    }

    /// `(height, width)` of every image.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        self.shape
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Benchmark>()?;
    m.add_class::<Batches>()?;
    Ok(())
}
