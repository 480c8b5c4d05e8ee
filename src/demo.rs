//! The embedded default: a deterministic synthetic benchmark in the real LFW layout.
//!
//! Identities have a random centre in embedding space and a private ageing direction; each image
//! has an age, and its embedding is centre + drift·(age − first age) + noise, scaled by a
//! random norm like real networks' raw outputs. The mirrored image gets a correlated embedding.
//! Genuine and impostor score distributions therefore overlap the way real ones do, and the
//! genuine scores fall with the age gap. Written as `pairs.txt` (LFW View 2: 10 identity-disjoint
//! folds × 300 matched + 300 mismatched) plus `.npy` embeddings and a key list.

use crate::dataset::lfw::image_key;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::store::import::write_npy_f32;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub seed: u64,
    pub folds: usize,
    pub pairs_per_fold: usize,
    pub identities_per_fold: usize,
    pub dim: usize,
    /// Per-image noise relative to the identity centre (both unit-scale).
    pub noise: f64,
    /// Drift per 10 years of age, along the identity's ageing direction.
    pub drift_per_decade: f64,
    /// Noise of the mirrored image's embedding relative to the image's, as a fraction of `noise`.
    pub mirror_noise: f64,
}

impl DemoSpec {
    /// The generator's ground truth: the expected cosine of two flip-fused embeddings of one
    /// identity at ages `a` and `b` (first age `a0`). Centre and ageing direction are unit
    /// vectors (nearly orthogonal in high dimension), the fused noise has squared norm
    /// noise²·(1 + mirror²/4), so E[cos] ≈ (1 + δa·δb) / √((1 + δa² + s²)(1 + δb² + s²)).
    pub fn expected_genuine_cosine(&self, a: u32, b: u32, a0: u32) -> f64 {
        let drift = |age: u32| self.drift_per_decade * (age - a0) as f64 / 10.0;
        let (da, db) = (drift(a), drift(b));
        let s2 = self.noise * self.noise * (1.0 + self.mirror_noise * self.mirror_noise / 4.0);
        (1.0 + da * db) / ((1.0 + da * da + s2) * (1.0 + db * db + s2)).sqrt()
    }
}

impl Default for DemoSpec {
    fn default() -> Self {
        DemoSpec {
            seed: 7,
            folds: 10,
            pairs_per_fold: 300,
            identities_per_fold: 120,
            dim: 128,
            noise: 1.4,
            drift_per_decade: 0.5,
            mirror_noise: 0.3,
        }
    }
}

/// Paths of a generated demo benchmark.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    pub data_dir: PathBuf,
    pub pairs: PathBuf,
    pub embeddings: PathBuf,
    pub flip_embeddings: PathBuf,
    pub keys: PathBuf,
    /// `key age` per image.
    pub ages: PathBuf,
    /// The cohort as a manifest (`aifr-eval run --manifest`): path (= key), identity, age, group.
    pub manifest: PathBuf,
}

struct Identity {
    name: String,
    ages: Vec<u32>,
}

fn gaussian(rng: &mut ChaCha8Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            sd * z
        })
        .collect()
}

fn unit(mut v: Vec<f64>) -> Vec<f64> {
    let n = crate::score::kernels::l2_norm(&v);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Appends the embeddings (and mirrored-image embeddings) of one identity's images, ages sorted
/// ascending: centre + drift·(age − first age)·ageing direction + noise, times a raw-norm scale.
pub fn embed_identity(spec: &DemoSpec, rng: &mut ChaCha8Rng, ages: &[u32], emb: &mut Vec<f32>, flip: &mut Vec<f32>) {
    let d = spec.dim;
    let centre = unit(gaussian(rng, d, 1.0));
    let ageing = unit(gaussian(rng, d, 1.0));
    let scale = rng.gen_range(18.0..30.0);
    for &age in ages {
        let drift = spec.drift_per_decade * (age - ages[0]) as f64 / 10.0;
        let noise = gaussian(rng, d, spec.noise / (d as f64).sqrt());
        let mirror = gaussian(rng, d, spec.mirror_noise * spec.noise / (d as f64).sqrt());
        for k in 0..d {
            let e = centre[k] + drift * ageing[k] + noise[k];
            emb.push((scale * e) as f32);
            flip.push((scale * (e + mirror[k])) as f32);
        }
    }
}

/// FG-NET-layout files of the synthetic cohort.
#[derive(Debug, Clone)]
pub struct FgnetFiles {
    pub data_dir: PathBuf,
    pub embeddings: PathBuf,
    pub flip_embeddings: PathBuf,
    pub keys: PathBuf,
}

/// An FG-NET-like cohort under `dir`: 82 subjects photographed from childhood on (ages 0–69),
/// file names `001A02.JPG` in `dir/FGNET/images/` and their embeddings in `dir/embeddings/`.
/// The image files are empty placeholders (the layout is what the adapter reads; the
/// embeddings stand in for the network), as the README in that folder says.
pub fn generate_fgnet(spec: &DemoSpec, dir: &Path) -> Result<FgnetFiles> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xF6_4E7);
    let images = dir.join("FGNET/images");
    std::fs::create_dir_all(&images).map_err(|e| Error::write(&images, e))?;
    write_atomic(
        &dir.join("FGNET/README.txt"),
        b"Synthetic FG-NET-layout cohort generated by `aifr-eval demo`. The image files are empty\nplaceholders: the embeddings in ../embeddings/fgnet*.npy stand in for a network's output.\n",
    )?;
    let (mut keys, mut emb, mut flip) = (Vec::new(), Vec::new(), Vec::new());
    for subject in 1..=82u32 {
        let n = rng.gen_range(6..=18);
        let first: u32 = rng.gen_range(0..20);
        let mut ages: Vec<u32> = (0..n).map(|_| (first + rng.gen_range(0..50)).min(69)).collect();
        ages.sort_unstable();
        embed_identity(spec, &mut rng, &ages, &mut emb, &mut flip);
        let mut seen: Vec<u32> = Vec::new();
        for &age in &ages {
            // A second image at the same age gets a letter suffix, as in FG-NET (001A02a.JPG).
            let dup = seen.iter().filter(|&&a| a == age).count();
            seen.push(age);
            let suffix = if dup == 0 { String::new() } else { ((b'a' + (dup as u8 - 1) % 26) as char).to_string() };
            let name = format!("{subject:03}A{age:02}{suffix}.JPG");
            write_atomic(&images.join(&name), b"")?;
            keys.push(name);
        }
    }
    let files = FgnetFiles {
        data_dir: dir.to_path_buf(),
        embeddings: dir.join("embeddings/fgnet.npy"),
        flip_embeddings: dir.join("embeddings/fgnet_flip.npy"),
        keys: dir.join("embeddings/fgnet_keys.txt"),
    };
    write_atomic(&files.keys, (keys.join("\n") + "\n").as_bytes())?;
    write_npy_f32(&files.embeddings, keys.len(), spec.dim, &emb)?;
    write_npy_f32(&files.flip_embeddings, keys.len(), spec.dim, &flip)?;
    Ok(files)
}

/// Paths of the cohort in insightface's `.bin` layout.
#[derive(Debug, Clone)]
pub struct BinFiles {
    pub pack: PathBuf,
    /// Rows in pack order (row i = image i), so no key file is needed.
    pub embeddings: PathBuf,
    pub flip_embeddings: PathBuf,
    /// `<image index> <age>`.
    pub ages: PathBuf,
}

impl BinFiles {
    pub fn under(dir: &Path) -> Self {
        BinFiles {
            pack: dir.join("faces_emore/agedb_30.bin"),
            embeddings: dir.join("embeddings/bin.npy"),
            flip_embeddings: dir.join("embeddings/bin_flip.npy"),
            ages: dir.join("embeddings/bin_ages.txt"),
        }
    }
}

/// A pickle (protocol 3) of `(bins, issame_list)` as insightface writes its packs, with bytes
/// elements. The "images" are placeholders naming the image: the embeddings stand in for a network.
fn pickle_pack(images: &[Vec<u8>], issame: &[bool]) -> Vec<u8> {
    let mut p = vec![0x80, 3, b']', b'('];
    for img in images {
        p.push(b'B'); // BINBYTES: 4-byte little-endian length
        p.extend_from_slice(&(img.len() as u32).to_le_bytes());
        p.extend_from_slice(img);
    }
    p.extend_from_slice(b"e]("); // APPENDS, then the issame list
    p.extend(issame.iter().map(|&s| if s { 0x88 } else { 0x89 })); // NEWTRUE / NEWFALSE
    p.extend_from_slice(b"e\x86."); // APPENDS, TUPLE2, STOP
    p
}

/// The cohort's LFW-layout pairs written again as an insightface `.bin` pack (pair i = images
/// 2i and 2i+1, duplicates included) with embeddings in pack order and ages by image index.
fn write_bin_layout(
    spec: &DemoSpec,
    dir: &Path,
    pairs_text: &str,
    keys: &[String],
    emb: &[f32],
    flip: &[f32],
    age_lines: &[String],
) -> Result<BinFiles> {
    let bench = crate::dataset::lfw::parse_pairs(pairs_text, &dir.join("lfw/pairs.txt"))?;
    let row: std::collections::HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect();
    let age: std::collections::HashMap<&str, &str> = age_lines.iter().filter_map(|l| l.split_once('\t')).collect();
    let d = spec.dim;
    let (mut images, mut issame, mut e, mut f, mut ages) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for p in &bench.pairs {
        for k in [p.a, p.b] {
            let key = bench.keys[k as usize].as_str();
            let r = row.get(key).copied().ok_or_else(|| Error::Invalid(format!("demo: no embedding for {key}")))?;
            ages.push(format!("{} {}", images.len(), age.get(key).copied().unwrap_or("0")));
            images.push(format!("synthetic image {key}").into_bytes());
            e.extend_from_slice(&emb[r * d..(r + 1) * d]);
            f.extend_from_slice(&flip[r * d..(r + 1) * d]);
        }
        issame.push(p.genuine);
    }
    let files = BinFiles::under(dir);
    write_atomic(&files.pack, &pickle_pack(&images, &issame))?;
    write_npy_f32(&files.embeddings, images.len(), d, &e)?;
    write_npy_f32(&files.flip_embeddings, images.len(), d, &f)?;
    write_atomic(&files.ages, (ages.join("\n") + "\n").as_bytes())?;
    Ok(files)
}

/// The cohort as a manifest: one row per image, the LFW-layout key as path, and a `group`
/// standing for one of three collection sites (identity number mod 3), for stratified results.
fn manifest_text(identities: &[Identity]) -> String {
    let mut s = String::from("path,identity,age,group\n");
    for (i, id) in identities.iter().enumerate() {
        for (j, age) in id.ages.iter().enumerate() {
            let key = image_key(&id.name, j as u32 + 1);
            s.push_str(&format!("{key},{},{age},site-{}\n", id.name, (i + 1) % 3 + 1));
        }
    }
    s
}

/// Generates the benchmark under `dir` (as a data directory: `dir/lfw/pairs.txt`, `dir/embeddings/…`).
pub fn generate(spec: &DemoSpec, dir: &Path) -> Result<DemoFiles> {
    if spec.identities_per_fold < 2 || spec.folds == 0 {
        return Err(Error::Config("the demo needs at least 2 identities per fold and 1 fold".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut identities = Vec::new();
    for i in 0..spec.folds * spec.identities_per_fold {
        let n_images = rng.gen_range(2..=8);
        // Ages span childhood to old age, with gaps up to 45 years within an identity.
        let first: u32 = rng.gen_range(5..45);
        let mut ages: Vec<u32> = (0..n_images).map(|_| first + rng.gen_range(0..46)).collect();
        ages.sort_unstable();
        identities.push(Identity { name: format!("Synthetic_Person_{:04}", i + 1), ages });
    }

    // Pairs: matched within an identity, mismatched across two identities of the same fold.
    let mut lines = vec![format!("{}\t{}", spec.folds, spec.pairs_per_fold)];
    for fold in 0..spec.folds {
        let ids: Vec<&Identity> =
            identities[fold * spec.identities_per_fold..(fold + 1) * spec.identities_per_fold].iter().collect();
        let mut matched: Vec<(usize, u32, u32)> = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            let n = id.ages.len() as u32;
            for a in 1..=n {
                for b in a + 1..=n {
                    matched.push((k, a, b));
                }
            }
        }
        if matched.len() < spec.pairs_per_fold {
            return Err(Error::Config(format!("fold {fold} has only {} possible matched pairs", matched.len())));
        }
        matched.shuffle(&mut rng);
        matched.truncate(spec.pairs_per_fold);
        matched.sort_unstable();
        for (k, a, b) in matched {
            lines.push(format!("{}\t{a}\t{b}", ids[k].name));
        }
        let mut mismatched = BTreeSet::new();
        while mismatched.len() < spec.pairs_per_fold {
            let (x, y) = (rng.gen_range(0..ids.len()), rng.gen_range(0..ids.len()));
            if x == y {
                continue;
            }
            let (x, y) = (x.min(y), x.max(y));
            let a = rng.gen_range(1..=ids[x].ages.len() as u32);
            let b = rng.gen_range(1..=ids[y].ages.len() as u32);
            mismatched.insert((x, a, y, b));
        }
        for (x, a, y, b) in mismatched {
            lines.push(format!("{}\t{a}\t{}\t{b}", ids[x].name, ids[y].name));
        }
    }

    // Embeddings for every image of every identity.
    let (mut keys, mut emb, mut flip, mut age_lines) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in &identities {
        embed_identity(spec, &mut rng, &id.ages, &mut emb, &mut flip);
        for (j, &age) in id.ages.iter().enumerate() {
            keys.push(image_key(&id.name, j as u32 + 1));
            age_lines.push(format!("{}\t{age}", keys[keys.len() - 1]));
        }
    }

    let files = DemoFiles {
        data_dir: dir.to_path_buf(),
        pairs: dir.join("lfw/pairs.txt"),
        embeddings: dir.join("embeddings/embeddings.npy"),
        flip_embeddings: dir.join("embeddings/embeddings_flip.npy"),
        keys: dir.join("embeddings/keys.txt"),
        ages: dir.join("embeddings/ages.txt"),
        manifest: dir.join("manifest.csv"),
    };
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomic(&files.pairs, text.as_bytes())?;
    let mut key_text = keys.join("\n");
    key_text.push('\n');
    write_atomic(&files.keys, key_text.as_bytes())?;
    write_atomic(&files.ages, (age_lines.join("\n") + "\n").as_bytes())?;
    write_atomic(&files.manifest, manifest_text(&identities).as_bytes())?;
    write_npy_f32(&files.embeddings, keys.len(), spec.dim, &emb)?;
    write_npy_f32(&files.flip_embeddings, keys.len(), spec.dim, &flip)?;
    write_bin_layout(spec, dir, &text, &keys, &emb, &flip, &age_lines)?;
    Ok(files)
}
