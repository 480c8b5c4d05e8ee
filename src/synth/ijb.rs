//! A synthetic IJB release written in insightface's real layout (meta files, 1:N CSVs, an empty
//! `loose_crop/`), with per-image embeddings and their mirrors: subjects are random unit
//! directions, each media adds its own offset (pose, lighting), each image its own noise, and
//! template quality varies, so the ROC and the open-set curves have realistic shapes.
//! [`SynthSpec::ijbc_size`] matches IJB-C's scale (benchmarks only); tests use small specs.

use crate::error::{Error, Result};
use crate::store::{DType, StoreWriter, View};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SynthSpec {
    pub seed: u64,
    /// File prefix: "ijbc" (galleries G1/G2) or "ijbb" (S1/S2).
    pub prefix: String,
    /// Gallery subjects, one gallery template each; the first half forms gallery 1.
    pub subjects: usize,
    /// Probe templates; each belongs to a random gallery subject.
    pub probe_templates: usize,
    /// Total face crops (at least one per template).
    pub images: usize,
    /// 1:1 impostor pairs per probe template (plus its one genuine pair).
    pub impostors_per_probe: usize,
    pub dim: usize,
    /// Every 10th probe template copies the images of an earlier probe template of another
    /// subject with as many images, so genuine and impostor pairs tie exactly.
    pub ties: bool,
}

impl SynthSpec {
    /// IJB-C's scale: 469,375 crops, 23,124 templates (3,531 gallery, 19,593 probes),
    /// 15,654,807 pairs (19,593 genuine), 512-D.
    pub fn ijbc_size(seed: u64) -> Self {
        SynthSpec {
            seed,
            prefix: "ijbc".into(),
            subjects: 3531,
            probe_templates: 19593,
            images: 469_375,
            impostors_per_probe: 798,
            dim: 512,
            ties: false,
        }
    }

    /// A small release for tests.
    pub fn small(seed: u64) -> Self {
        SynthSpec {
            seed,
            prefix: "ijbc".into(),
            subjects: 24,
            probe_templates: 90,
            images: 900,
            impostors_per_probe: 12,
            dim: 16,
            ties: true,
        }
    }

    /// The demo's IJB-C-layout release: 4,000 crops, 600 templates, 100 impostors per probe.
    pub fn demo(seed: u64) -> Self {
        SynthSpec {
            seed,
            prefix: "ijbc".into(),
            subjects: 100,
            probe_templates: 500,
            images: 4000,
            impostors_per_probe: 99,
            dim: 128,
            ties: true,
        }
    }

    fn galleries(&self) -> [&'static str; 2] {
        if self.prefix == "ijbb" {
            ["S1", "S2"]
        } else {
            ["G1", "G2"]
        }
    }
}

/// What [`generate`] wrote and the embeddings it made (rows in face-list order).
pub struct SynthRelease {
    pub root: PathBuf,
    pub names: Vec<String>,
    pub dim: usize,
    pub embeddings: Vec<f32>,
    pub flip: Vec<f32>,
}

struct Template {
    id: u32,
    subject: usize,
    quality: f64,
    /// (media ID, frames).
    medias: Vec<(u32, usize)>,
    /// Probe template whose images this one copies (ties).
    copy_of: Option<usize>,
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

fn unit(r: &mut ChaCha8Rng, dim: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..dim).map(|_| r.sample(StandardNormal)).collect();
    let n = crate::score::kernels::l2_norm(&v);
    v.into_iter().map(|x| x / n).collect()
}

/// Splits `total` into `parts` sizes ≥ 1 with random weights in [0.2, 1.8] × `mean_weight[i]`.
fn split_sizes(r: &mut ChaCha8Rng, total: usize, weights: &[f64]) -> Vec<usize> {
    let w: Vec<f64> = weights.iter().map(|m| m * r.gen_range(0.2..1.8)).collect();
    let sum: f64 = w.iter().sum();
    let spare = total - weights.len();
    let mut sizes: Vec<usize> = w.iter().map(|x| 1 + (x / sum * spare as f64).floor() as usize).collect();
    let mut left = total - sizes.iter().sum::<usize>();
    let mut i = 0;
    let n = sizes.len();
    while left > 0 {
        sizes[i % n] += 1;
        left -= 1;
        i += 1;
    }
    sizes
}

fn write(path: &Path, text: &str) -> Result<()> {
    crate::io::write_atomic(path, text.as_bytes())
}

/// Writes the release under `root` and returns its embeddings.
pub fn generate(spec: &SynthSpec, root: &Path) -> Result<SynthRelease> {
    if spec.subjects < 2
        || spec.impostors_per_probe >= spec.subjects
        || spec.images < spec.subjects + spec.probe_templates
    {
        return Err(Error::Config("synthetic IJB spec: need ≥ 2 subjects, fewer impostors per probe than subjects, and at least one image per template".into()));
    }
    let mut r = rng(spec.seed, 0);
    let n_t = spec.subjects + spec.probe_templates;
    // Gallery templates get ~2.5× the images of a probe template (IJB enrolment templates are large).
    let weights: Vec<f64> = (0..n_t).map(|t| if t < spec.subjects { 2.5 } else { 1.0 }).collect();
    let sizes = split_sizes(&mut r, spec.images, &weights);
    let mut media_id = 10_000u32;
    let mut templates: Vec<Template> = (0..n_t)
        .map(|t| {
            let subject = if t < spec.subjects { t } else { r.gen_range(0..spec.subjects) };
            let mut medias = Vec::new();
            let mut left = sizes[t];
            while left > 0 {
                let frames = if r.gen_bool(0.6) { 1 } else { r.gen_range(1..=8usize).min(left) };
                media_id += r.gen_range(1..5);
                medias.push((media_id, frames));
                left -= frames;
            }
            Template { id: 1 + 3 * t as u32, subject, quality: r.gen_range(0.35..1.0), medias, copy_of: None }
        })
        .collect();
    if spec.ties {
        // The source is the nearest earlier probe template of another subject with as many images,
        // so that the release keeps exactly `spec.images` crops.
        for t in (spec.subjects + 1..n_t).filter(|t| (t - spec.subjects) % 10 == 9) {
            let source = (spec.subjects..t).rev().find(|&u| {
                templates[u].copy_of.is_none() && templates[u].subject != templates[t].subject && sizes[u] == sizes[t]
            });
            if let Some(u) = source {
                templates[t].medias = templates[u].medias.clone();
                templates[t].copy_of = Some(u);
            }
        }
    }
    // File order: templates shuffled (IDs are not in file order), images of a template together.
    let mut file_order: Vec<usize> = (0..n_t).collect();
    for i in (1..n_t).rev() {
        file_order.swap(i, r.gen_range(0..=i));
    }
    let centers: Vec<Vec<f64>> =
        (0..spec.subjects).map(|s| unit(&mut rng(spec.seed, 1 + s as u64), spec.dim)).collect();
    let subject_id = |s: usize| 100 + 7 * s as u32;

    // Images in file order; a copying template reuses its source's rows, so it needs them first.
    let mut starts = vec![0usize; n_t];
    let mut names = Vec::with_capacity(spec.images);
    let mut faces = String::new();
    let mut lmk = String::new();
    for &t in &file_order {
        starts[t] = names.len();
        for (mi, &(media, frames)) in templates[t].medias.iter().enumerate() {
            for f in 0..frames {
                let name = format!("{}.jpg", names.len() + 1);
                let (seed_t, k) = (templates[t].copy_of.unwrap_or(t), mi * 64 + f);
                let mut ir = rng(spec.seed ^ 0x5EED, ((seed_t as u64) << 16) + k as u64);
                let score: f32 = if ir.gen_bool(0.9) { ir.gen_range(0.9..1.0) } else { ir.gen_range(0.1..0.9) };
                let score = (score * 1000.0).round() / 1000.0;
                let _ = writeln!(faces, "{name} {} {media}", templates[t].id);
                let base = [[46.0, 62.0], [87.8, 60.3], [68.9, 77.7], [52.2, 99.9], [86.5, 98.6]];
                let _ = write!(lmk, "{name}");
                for p in base {
                    let _ = write!(lmk, " {:.3} {:.3}", p[0] + ir.gen_range(-3.0..3.0), p[1] + ir.gen_range(-3.0..3.0));
                }
                let _ = writeln!(lmk, " {score:.3}");
                names.push(name);
            }
        }
    }

    // Embeddings, in parallel per template (each template's rows are contiguous).
    let dim = spec.dim;
    let mut emb = vec![0f32; spec.images * dim];
    let mut flip = vec![0f32; spec.images * dim];
    let mut jobs = Vec::with_capacity(n_t);
    {
        let (mut e_rest, mut f_rest) = (emb.as_mut_slice(), flip.as_mut_slice());
        for &t in &file_order {
            let len = templates[t].medias.iter().map(|m| m.1).sum::<usize>() * dim;
            let (e, er) = std::mem::take(&mut e_rest).split_at_mut(len);
            let (f, fr) = std::mem::take(&mut f_rest).split_at_mut(len);
            jobs.push((t, e, f));
            (e_rest, f_rest) = (er, fr);
        }
    }
    jobs.into_par_iter().for_each(|(t, e, f)| {
        let tpl = &templates[t];
        let src = tpl.copy_of.unwrap_or(t);
        let quality = templates[src].quality;
        let center = &centers[templates[src].subject];
        let mut tr = rng(spec.seed ^ 0xE3B, src as u64);
        let scale = 1.0 / (dim as f64).sqrt();
        let mut row = 0;
        for &(_, frames) in &tpl.medias {
            let offset: Vec<f64> =
                (0..dim).map(|_| tr.sample::<f64, _>(StandardNormal) * 1.1 * scale / quality).collect();
            for _ in 0..frames {
                let norm: f64 = tr.gen_range(8.0..30.0);
                for j in 0..dim {
                    let x = center[j] + offset[j] + tr.sample::<f64, _>(StandardNormal) * 0.9 * scale / quality;
                    let fx = x + tr.sample::<f64, _>(StandardNormal) * 0.15 * scale;
                    e[row * dim + j] = (x * norm) as f32;
                    f[row * dim + j] = (fx * norm) as f32;
                }
                row += 1;
            }
        }
    });

    // 1:1 pairs: each probe with its subject's gallery template and distinct random impostors,
    // written grouped by the gallery template as in the real file.
    let mut pairs: Vec<(u32, u32, u8)> = Vec::with_capacity(spec.probe_templates * (spec.impostors_per_probe + 1));
    let mut pool: Vec<usize> = (0..spec.subjects).collect();
    for p in spec.subjects..n_t {
        let s = templates[p].subject;
        pairs.push((templates[s].id, templates[p].id, 1));
        // Partial Fisher-Yates over the other subjects.
        let mut taken = 0;
        let mut i = 0;
        while taken < spec.impostors_per_probe {
            let j = r.gen_range(i..spec.subjects);
            pool.swap(i, j);
            if pool[i] != s {
                pairs.push((templates[pool[i]].id, templates[p].id, 0));
                taken += 1;
            }
            i += 1;
        }
    }
    pairs.par_sort_unstable();
    let mut pair_text = String::with_capacity(pairs.len() * 16);
    for (a, b, l) in &pairs {
        let _ = writeln!(pair_text, "{a} {b} {l}");
    }
    drop(pairs);

    let meta = root.join("meta");
    std::fs::create_dir_all(root.join("loose_crop")).map_err(|e| Error::write(root, e))?;
    let p = &spec.prefix;
    write(&meta.join(format!("{p}_face_tid_mid.txt")), &faces)?;
    write(&meta.join(format!("{p}_name_5pts_score.txt")), &lmk)?;
    write(&meta.join(format!("{p}_template_pair_label.txt")), &pair_text)?;
    let csv = |ts: &mut dyn Iterator<Item = usize>| {
        let mut s = String::from("TEMPLATE_ID,SUBJECT_ID,FILENAME\n");
        for t in ts {
            for k in 0..templates[t].medias.iter().map(|m| m.1).sum::<usize>() {
                let _ = writeln!(
                    s,
                    "{},{},img/{}",
                    templates[t].id,
                    subject_id(templates[t].subject),
                    names[starts[t] + k]
                );
            }
        }
        s
    };
    let half = spec.subjects / 2;
    let [g1, g2] = spec.galleries();
    write(&meta.join(format!("{p}_1N_gallery_{g1}.csv")), &csv(&mut (0..half)))?;
    write(&meta.join(format!("{p}_1N_gallery_{g2}.csv")), &csv(&mut (half..spec.subjects)))?;
    write(&meta.join(format!("{p}_1N_probe_mixed.csv")), &csv(&mut (spec.subjects..n_t)))?;
    Ok(SynthRelease { root: root.to_path_buf(), names, dim, embeddings: emb, flip })
}

impl SynthRelease {
    /// `embeddings.npy`, `embeddings_flip.npy` and `keys.txt` in `dir`.
    pub fn write_npy(&self, dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let (e, f, k) = (dir.join("embeddings.npy"), dir.join("embeddings_flip.npy"), dir.join("keys.txt"));
        let rows = self.names.len();
        crate::store::import::write_npy_f32(&e, rows, self.dim, &self.embeddings)?;
        crate::store::import::write_npy_f32(&f, rows, self.dim, &self.flip)?;
        write(&k, &(self.names.join("\n") + "\n"))?;
        Ok((e, f, k))
    }

    /// An embedding store with both views (keys = image names).
    pub fn write_store(&self, path: &Path) -> Result<PathBuf> {
        // The source fingerprint identifies the generated rows (the store cache keys on it).
        let mut h = blake3::Hasher::new();
        for data in [&self.embeddings, &self.flip] {
            for chunk in data.chunks(1 << 16) {
                h.update(&DType::F32.encode(chunk));
            }
        }
        let mut w = StoreWriter::create(path, DType::F32, self.dim, 2, self.names.len(), *h.finalize().as_bytes())?;
        // In blocks, so a 2 GB release is not copied whole.
        let block = 8192 * self.dim;
        for (view, data) in [(View::Original, &self.embeddings), (View::Flipped, &self.flip)] {
            for (i, chunk) in data.chunks(block).enumerate() {
                w.write_rows(view, i * 8192, &DType::F32.encode(chunk))?;
            }
        }
        w.finish(&self.names)
    }
}
