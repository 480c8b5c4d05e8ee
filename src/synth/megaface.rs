//! Synthetic MegaFace Challenge 1 data in the devkit layout: distractor lists for every size, a
//! distractor embedding store (up to 1,000,000 rows), optionally the devkit's per-image feature
//! files, and a probe list over an FG-NET-style ageing cohort. Used by `aifr-eval demo`, the
//! tests and `cargo bench --bench megaface`; nothing here is needed to evaluate real data.

use crate::dataset::megaface::{distractor_list_name, encode_feature_file, SIZES};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::store::{DType, StoreWriter, View};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The MegaFace root (datasets.toml `root = "megaface"`) under a data directory.
pub fn megaface_root(data_dir: &Path) -> PathBuf {
    data_dir.join("megaface")
}

/// Writes the devkit probe list `{"path": [...], "id": [...]}`.
pub fn write_probe_list(path: &Path, paths: &[String], ids: &[String]) -> Result<()> {
    let doc = serde_json::json!({ "path": paths, "id": ids });
    let text = serde_json::to_vec(&doc).map_err(|e| Error::Invalid(format!("cannot encode probe list: {e}")))?;
    write_atomic(path, &text)
}

fn write_list(path: &Path, keys: &[&str]) -> Result<()> {
    let text = serde_json::to_vec(&serde_json::json!({ "path": keys }))
        .map_err(|e| Error::Invalid(format!("cannot encode distractor list: {e}")))?;
    write_atomic(path, &text)
}

/// Flickr-like key of distractor `i`: `<3 digits>/<user>@N00/<photo>_<face>.jpg`.
fn distractor_key(i: usize) -> String {
    let user = 10_000_000 + (i as u64 * 7_919) % 89_000_000;
    format!("{:03}/{user}@N00/{}_{}.jpg", user % 1000, 1_000_000_000 + i as u64 * 31, i % 7)
}

#[derive(Debug, Clone)]
pub struct Distractors {
    /// The store holding every distractor (rows in key order).
    pub store: PathBuf,
    /// Directory with the devkit lists.
    pub lists: PathBuf,
    /// Where the feature files went, when written.
    pub features: Option<PathBuf>,
}

/// `max` random unit-norm `dim`-D distractors; devkit lists for every challenge size <= `max`
/// (independent random draws, the largest is everything), written under `root`. Rows are
/// generated in parallel from per-chunk seeded streams, so the output depends only on the seed.
pub fn generate_distractors(
    root: &Path,
    max: u32,
    dim: usize,
    seed: u64,
    feature_suffix: Option<&str>,
) -> Result<Distractors> {
    if !SIZES.contains(&max) {
        return Err(Error::Config(format!("distractor count {max} is not a MegaFace size {SIZES:?}")));
    }
    let n = max as usize;
    let keys: Vec<String> = (0..n).map(distractor_key).collect();
    let lists = root.join("devkit/templatelists");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for &size in SIZES.iter().filter(|&&s| s <= max) {
        let mut idx: Vec<usize> =
            if size == max { (0..n).collect() } else { sample(&mut rng, n, size as usize).into_vec() };
        idx.sort_unstable();
        let chosen: Vec<&str> = idx.iter().map(|&i| keys[i].as_str()).collect();
        write_list(&lists.join(distractor_list_name(size)), &chosen)?;
    }
    let store = root.join("embeddings/distractors.aifrstore");
    let mut w = StoreWriter::create(&store, DType::F32, dim, 1, n, *blake3::hash(&seed.to_le_bytes()).as_bytes())?;
    let features = feature_suffix.map(|_| root.join("features/megaface"));
    const CHUNK: usize = 8192;
    for (c, chunk) in keys.chunks(CHUNK).enumerate() {
        let rows: Vec<f32> = (0..chunk.len())
            .into_par_iter()
            .flat_map_iter(|i| {
                let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xD157_AC70);
                r.set_stream((c * CHUNK + i) as u64);
                let mut v: Vec<f32> = (0..dim).map(|_| r.sample::<f32, _>(StandardNormal)).collect();
                crate::score::normalize(&mut v);
                v
            })
            .collect();
        if let (Some(dir), Some(suffix)) = (&features, feature_suffix) {
            chunk.par_iter().zip(rows.par_chunks(dim)).try_for_each(|(k, v)| -> Result<()> {
                let p = dir.join(format!("{k}{suffix}"));
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
                }
                std::fs::write(&p, encode_feature_file(v)).map_err(|e| Error::write(&p, e))
            })?;
        }
        w.write_rows(View::Original, c * CHUNK, &DType::F32.encode(&rows))?;
    }
    w.finish(&keys)?;
    Ok(Distractors { store, lists, features })
}

/// Probe list of an FG-NET-style cohort: `keys` are the FG-NET file names (`001A02.JPG`), the
/// identity is the subject number.
pub fn write_fgnet_probe_list(root: &Path, keys: &[String]) -> Result<PathBuf> {
    let ids: Vec<String> = keys.iter().map(|k| k.get(..3).unwrap_or(k).to_string()).collect();
    let path = root.join("devkit/templatelists/fgnet_features_list.json");
    write_probe_list(&path, keys, &ids)?;
    Ok(path)
}

/// Devkit feature files for probe embeddings (one per key) under `dir`.
pub fn write_feature_files(dir: &Path, keys: &[String], rows: &[f32], dim: usize, suffix: &str) -> Result<()> {
    keys.par_iter().zip(rows.par_chunks(dim)).try_for_each(|(k, v)| {
        let p = dir.join(format!("{k}{suffix}"));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
        }
        std::fs::write(&p, encode_feature_file(v)).map_err(|e| Error::write(&p, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_store_agree() {
        let dir = tempfile::tempdir().unwrap();
        let d = generate_distractors(dir.path(), 1000, 8, 3, Some("_x.bin")).unwrap();
        let store = crate::store::EmbeddingStore::open(&d.store).unwrap();
        assert_eq!(store.len(), 1000);
        for n in [10u32, 100, 1000] {
            let keys =
                crate::dataset::megaface::read_distractor_list(&d.lists.join(distractor_list_name(n)), n).unwrap();
            assert!(keys.iter().all(|k| store.row_of(k).is_some()));
        }
        let mut row = vec![0f32; 8];
        store.read_row(5, View::Original, &mut row);
        let f =
            crate::dataset::megaface::read_feature_file(&d.features.unwrap().join(format!("{}_x.bin", store.key(5))))
                .unwrap();
        assert_eq!(f, row);
        // Same seed, same bytes.
        let again = tempfile::tempdir().unwrap();
        let d2 = generate_distractors(again.path(), 1000, 8, 3, None).unwrap();
        assert_eq!(std::fs::read(&d.store).unwrap(), std::fs::read(&d2.store).unwrap());
    }
}
