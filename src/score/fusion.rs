//! Flip fusion (docs/protocols.md §1.2): an image's raw embedding `e` and its mirror's `e'`
//! become one vector, `e + e'` (raw vectors added), `[e, e']` or `e`, before normalisation.
//!
//! One rule, computed in two precisions: f64 for the pair protocols, FG-NET and manifests
//! (`unit_row_f64`), f32 for MegaFace and IJB pooling (`unit_row_f32`, and [`Fusion::fuse`] on
//! f32 buffers), whose scores are f32 GEMMs. The precision decides the sum's rounding, so each
//! caller keeps the one its numbers were defined with.

use super::kernels::{l2_norm, normalize, unit_f64};
use crate::store::{EmbeddingStore, View};
use serde::{Deserialize, Serialize};
use std::ops::Add;

/// The flip fusion actually applied (never `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    Sum,
    Concat,
    None,
}

impl Fusion {
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Sum => "sum",
            Fusion::Concat => "concat",
            Fusion::None => "none",
        }
    }

    /// Length of the fused vector of `dim`-D embeddings.
    pub fn dim(self, dim: usize) -> usize {
        if self == Fusion::Concat {
            2 * dim
        } else {
            dim
        }
    }

    /// Writes the fused vector of `e` and its mirror `f` into `out` (length `self.dim(e.len())`),
    /// adding in `T`'s precision. `f` is not read by `None` and may be empty then.
    #[inline]
    pub fn fuse<T: Copy + From<f32> + Add<Output = T>>(self, e: &[f32], f: &[f32], out: &mut [T]) {
        match self {
            Fusion::None => out.iter_mut().zip(e).for_each(|(o, &a)| *o = T::from(a)),
            Fusion::Sum => out.iter_mut().zip(e.iter().zip(f)).for_each(|(o, (&a, &b))| *o = T::from(a) + T::from(b)),
            Fusion::Concat => out.iter_mut().zip(e.iter().chain(f)).for_each(|(o, &a)| *o = T::from(a)),
        }
    }
}

/// The L2-normalised fused embedding of store row `row` in f64 (fused in f64, divided by its
/// norm), or `None` when that norm is zero or not finite; plus the raw norms of both views (the
/// second is 0 without mirrors), for insightface's XNorm.
pub fn unit_row_f64(store: &EmbeddingStore, row: usize, fusion: Fusion) -> (Option<Vec<f64>>, [f64; 2]) {
    let dim = store.dim();
    let mut e = vec![0f32; dim];
    store.read_row(row, View::Original, &mut e);
    let mut f = vec![0f32; if store.has_flip() { dim } else { 0 }];
    if store.has_flip() {
        store.read_row(row, View::Flipped, &mut f);
    }
    let norms = [l2_norm(&e), l2_norm(&f)];
    let mut v = vec![0f64; fusion.dim(dim)];
    fusion.fuse(&e, &f, &mut v);
    (unit_f64(&mut v).then_some(v), norms)
}

/// Writes the L2-normalised fused embedding of store row `row` into `out` (length
/// `fusion.dim(store.dim())`), fused in f32 and normalised by [`normalize`]; false when it has
/// zero or non-finite norm. `scratch` holds at least `2 · store.dim()` values.
pub fn unit_row_f32(store: &EmbeddingStore, row: usize, fusion: Fusion, scratch: &mut [f32], out: &mut [f32]) -> bool {
    let (e, f) = scratch[..2 * store.dim()].split_at_mut(store.dim());
    store.read_row(row, View::Original, e);
    if fusion != Fusion::None {
        store.read_row(row, View::Flipped, f);
    }
    fusion.fuse(e, f, out);
    normalize(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DType, StoreWriter};

    #[test]
    fn fusion_rules_are_hand_checked() {
        let (e, f) = ([3f32, 4.0], [4f32, 3.0]);
        let mut out = [0f64; 4];
        Fusion::Concat.fuse(&e, &f, &mut out);
        assert_eq!(out, [3.0, 4.0, 4.0, 3.0]);
        let mut out = [0f64; 2];
        Fusion::Sum.fuse(&e, &f, &mut out);
        assert_eq!(out, [7.0, 7.0]);
        Fusion::None.fuse(&e, &[], &mut out);
        assert_eq!(out, [3.0, 4.0]);
        assert_eq!((Fusion::Concat.dim(5), Fusion::Sum.dim(5), Fusion::None.dim(5)), (10, 5, 5));
    }

    /// The sum is taken in the output's precision: 1 + 2⁻²⁴ vanishes in f32, not in f64.
    #[test]
    fn the_sum_rounds_in_the_output_precision() {
        let tiny = f32::EPSILON / 2.0;
        let (mut lo, mut hi) = ([0f32; 1], [0f64; 1]);
        Fusion::Sum.fuse(&[1.0], &[tiny], &mut lo);
        Fusion::Sum.fuse(&[1.0], &[tiny], &mut hi);
        assert_eq!(lo[0], 1.0);
        assert_eq!(hi[0], 1.0 + tiny as f64);
    }

    #[test]
    fn store_rows_fuse_in_both_precisions() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(&dir.path().join("s"), DType::F32, 2, 2, 2, [0; 32]).unwrap();
        w.write_rows(View::Original, 0, &DType::F32.encode(&[3., 4., 0., 0.])).unwrap();
        w.write_rows(View::Flipped, 0, &DType::F32.encode(&[4., 3., 0., 0.])).unwrap();
        let keys: Vec<String> = vec!["a".into(), "b".into()];
        let store = EmbeddingStore::open(&w.finish(&keys).unwrap()).unwrap();
        let (v, norms) = unit_row_f64(&store, 0, Fusion::Concat);
        assert_eq!(norms, [5.0, 5.0]);
        let s = 50f64.sqrt();
        assert_eq!(v.unwrap(), [3.0 / s, 4.0 / s, 4.0 / s, 3.0 / s]);
        assert!(unit_row_f64(&store, 1, Fusion::Sum).0.is_none());
        let (mut scratch, mut out) = (vec![0f32; 4], vec![0f32; 2]);
        assert!(unit_row_f32(&store, 0, Fusion::Sum, &mut scratch, &mut out));
        assert_eq!(out, [0.5f64.sqrt() as f32; 2]);
        assert!(!unit_row_f32(&store, 1, Fusion::None, &mut scratch, &mut out));
    }
}
