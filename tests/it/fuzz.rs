//! Mutation fuzzing of every input parser, on stable Rust and inside the normal test run
//! (docs/fuzzing.md). Each target starts from valid seed inputs (real files from tests/data and
//! small generated ones), applies seeded mutations (bit flips, truncations, insertions, deleted,
//! duplicated or swapped lines, huge or special numbers) and requires the parser to return `Ok`
//! or `Err`, never to panic. Inputs under `tests/data/fuzz-regressions/<target>/` are replayed
//! first every run (and mutated like the seeds).
//!
//! `AIFR_FUZZ_ITERS=N` sets the mutations per target, `AIFR_FUZZ_SECS=S` runs each target for S
//! seconds instead; `AIFR_FUZZ_SEED` changes the random stream. A panicking input is written to
//! `target/fuzz-failures/<target>/` for adding to the regressions.

use crate::support::{data, repo};
use aifr_eval::dataset::{agedb, bin_pairs, calfw, ijb, lfw, manifest::Manifest, mat5, megaface, rfw};
use aifr_eval::store::import::{import, EmbeddingSource};
use aifr_eval::store::EmbeddingStore;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Mutations per target in a plain `cargo test`, and the time cap that keeps a slow machine's
/// run short whatever the count.
const DEFAULT_ITERS: u64 = 300;
const DEFAULT_CAP: Duration = Duration::from_millis(1500);

/// splitmix64: tiny, fast, and the same stream on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const BYTES: &[u8] = b"\x00\xff\x7f\x80\n\r \t,;\"'.-+0159eE[]{}:#/\\";
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1e30",
    "-5",
    "NaN",
    "inf",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999",
    "2147483647",
    "-2147483648",
    "1e-45",
    "..",
    "/abs",
];
const WORDS: &[u64] = &[0, 1, 0xff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX, 1 << 40];

/// Line boundaries `(start, end)` of `b`, each end including its '\n'.
fn lines(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < b.len() {
        out.push((start, b.len()));
    }
    out
}

/// One to four random edits of `seed`, all O(len) (the scan for numbers included).
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len();
        match rng.below(12) {
            0 if n > 0 => {
                let i = rng.below(n);
                b[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                b[i] = BYTES[rng.below(BYTES.len())];
            }
            2 => b.truncate(rng.below(n + 1)),
            3 => {
                let at = rng.below(n + 1);
                let k = 1 + rng.below(16);
                let ins: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                b.splice(at..at, ins);
            }
            4 if n > 0 => {
                let at = rng.below(n);
                let k = 1 + rng.below(64.min(n - at));
                b.drain(at..at + k);
            }
            5 => {
                let ls = lines(&b);
                if !ls.is_empty() {
                    let (s, e) = ls[rng.below(ls.len())];
                    let copy = b[s..e].to_vec();
                    let at = ls[rng.below(ls.len())].0;
                    b.splice(at..at, copy);
                }
            }
            6 => {
                let ls = lines(&b);
                if ls.len() > 1 {
                    let (x, y) = (ls[rng.below(ls.len())], ls[rng.below(ls.len())]);
                    let (x, y) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                    if x.1 <= y.0 {
                        let mut out = b[..x.0].to_vec();
                        out.extend_from_slice(&b[y.0..y.1]);
                        out.extend_from_slice(&b[x.1..y.0]);
                        out.extend_from_slice(&b[x.0..x.1]);
                        out.extend_from_slice(&b[y.1..]);
                        b = out;
                    }
                }
            }
            7 => {
                let at = rng.below(n + 1);
                let num = NUMBERS[rng.below(NUMBERS.len())].as_bytes().to_vec();
                // Replace a token's worth of bytes half of the time, insert otherwise.
                let end = if rng.below(2) == 0 { (at + num.len()).min(n) } else { at };
                b.splice(at..end, num);
            }
            8 if n >= 8 => {
                let at = rng.below(n - 7);
                let w = WORDS[rng.below(WORDS.len())];
                let k = if rng.below(2) == 0 { 4 } else { 8 };
                b[at..at + k].copy_from_slice(&w.to_le_bytes()[..k]);
            }
            9 if n > 1 => {
                let (s, at) = (rng.below(n), rng.below(n));
                let k = 1 + rng.below(256.min(n - s));
                let chunk = b[s..s + k].to_vec();
                b.splice(at..at, chunk);
            }
            10 => {
                // A huge line: the kind of input that once produced megabyte messages.
                let at = rng.below(n + 1);
                b.splice(at..at, std::iter::repeat_n(b'x', 4096));
            }
            11 => {
                // A number of the input (a shape, an offset, a count) replaced by another.
                let runs: Vec<(usize, usize)> = {
                    let mut v = Vec::new();
                    let mut i = 0;
                    while i < n {
                        if b[i].is_ascii_digit() {
                            let s = i;
                            while i < n && b[i].is_ascii_digit() {
                                i += 1;
                            }
                            v.push((s, i));
                        }
                        i += 1;
                    }
                    v
                };
                if !runs.is_empty() {
                    let (s, e) = runs[rng.below(runs.len())];
                    let num = NUMBERS[rng.below(NUMBERS.len())].as_bytes().to_vec();
                    b.splice(s..e, num);
                }
            }
            _ => {}
        }
    }
    b
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

type Runner = Box<dyn Fn(&Path, &[u8]) -> Result<(), String>>;

/// A parser under test: valid seeds, and what to do with one input (`dir` is a scratch folder
/// the target may use; the result only has to come back, `Ok` or `Err`).
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: Runner,
}

impl Target {
    fn new(
        name: &'static str,
        seeds: Vec<Vec<u8>>,
        run: impl Fn(&Path, &[u8]) -> Result<(), String> + 'static,
    ) -> Self {
        Target { name, seeds, run: Box::new(run) }
    }
}

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo().join("tests/data/fuzz-regressions").join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(r) => r.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Runs `input`; `Some(message)` when it panicked.
fn panics(t: &Target, dir: &Path, input: &[u8]) -> Option<String> {
    match catch_unwind(AssertUnwindSafe(|| (t.run)(dir, input))) {
        Ok(_) => None,
        Err(p) => Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        ),
    }
}

fn fuzz(t: Target) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut seeds = t.seeds.clone();
    for (i, seed) in t.seeds.iter().enumerate() {
        if let Err(e) = (t.run)(dir.path(), seed) {
            panic!("{}: seed {i} must be valid input, but: {e}", t.name);
        }
    }
    for (path, bytes) in regressions(t.name) {
        if let Some(msg) = panics(&t, dir.path(), &bytes) {
            failures.push(format!("regression {} panics: {msg}", path.display()));
        }
        seeds.push(bytes);
    }
    let iters = env_u64("AIFR_FUZZ_ITERS");
    let secs = env_u64("AIFR_FUZZ_SECS");
    let (iters, cap) = match (iters, secs) {
        (_, Some(s)) => (u64::MAX, Duration::from_secs(s)),
        (Some(n), None) => (n, Duration::MAX),
        (None, None) => (DEFAULT_ITERS, DEFAULT_CAP),
    };
    let base = env_u64("AIFR_FUZZ_SEED").unwrap_or(0x00A1_F0E7);
    let name_hash = t.name.bytes().fold(0u64, |h, c| h.wrapping_mul(131).wrapping_add(c as u64));
    let mut rng = Rng(base ^ name_hash);
    let start = Instant::now();
    let mut done = 0u64;
    while done < iters && start.elapsed() < cap {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        if let Some(msg) = panics(&t, dir.path(), &input) {
            let hash = blake3::hash(&input).to_hex();
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures").join(t.name);
            std::fs::create_dir_all(&out).unwrap();
            let file = out.join(&hash.as_str()[..16]);
            std::fs::write(&file, &input).unwrap();
            failures.push(format!("iteration {done} panics ({msg}); input kept in {}", file.display()));
            // A handful of kept inputs is enough to start fixing.
            if failures.len() >= 10 {
                break;
            }
        }
        done += 1;
    }
    eprintln!("fuzz {}: {done} inputs in {:.2} s, {} panics", t.name, start.elapsed().as_secs_f64(), failures.len());
    assert!(failures.is_empty(), "{}:\n{}", t.name, failures.join("\n"));
}

fn err(e: aifr_eval::Error) -> String {
    e.to_string()
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn npy(rows: usize, cols: usize, vals: &[f32]) -> Vec<u8> {
    aifr_eval::store::import::npy_f32_bytes(rows, cols, vals)
}

fn safetensors(rows: usize, cols: usize, vals: &[f32], flip: bool) -> Vec<u8> {
    let n = rows * cols * 4;
    let mut header = format!(r#"{{"embeddings":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[0,{n}]}}"#);
    if flip {
        header +=
            &format!(r#","embeddings_flip":{{"dtype":"F32","shape":[{rows},{cols}],"data_offsets":[{n},{}]}}"#, 2 * n);
    }
    header += "}";
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.extend(&data);
    if flip {
        out.extend(data.iter().rev());
    }
    out
}

const VALS: [f32; 12] = [0.5, -0.25, 1.0, 0.125, 0.75, 0.5, -1.0, 2.0, 0.3, 0.1, -0.6, 0.9];

fn agedb_mat(compressed: bool) -> Vec<u8> {
    use agedb::ProtocolImage;
    let img = |name: &str, age| ProtocolImage { name: name.into(), age };
    let split = |k: u32| {
        vec![
            (img(&format!("{k}_Anna_30_f"), 30), img(&format!("{}_Anna_52_f", k + 10), 52), true),
            (img(&format!("{}_Bob_41_m", k + 20), 41), img(&format!("{}_Carl_19_m", k + 30), 19), false),
        ]
    };
    let value = agedb::protocol_value(&[split(1), split(2)]);
    let plain = mat5::write(&[(agedb::VARIABLE, &value)]);
    if !compressed {
        return plain;
    }
    // The same variable as one miCOMPRESSED element (type 15), as MATLAB writes with -v7.
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&plain[128..]).unwrap();
    let packed = z.finish().unwrap();
    let mut out = plain[..128].to_vec();
    out.extend(15u32.to_le_bytes());
    out.extend((packed.len() as u32).to_le_bytes());
    out.extend(packed);
    out
}

/// A small IJB release in insightface's layout: (faces, landmarks, pairs, G1, G2, probes).
fn ijb_files() -> [Vec<u8>; 6] {
    let mut faces = String::new();
    let mut lmk = String::new();
    for i in 1..=8 {
        let t = (i + 1) / 2;
        faces += &format!("{i}.jpg {t} {}\n", 100 + i);
        lmk += &format!("{i}.jpg 38.2 51.6 73.5 51.5 56.0 71.7 41.5 92.3 70.7 92.2 0.{}\n", 90 + i);
    }
    let pairs = "1 2 0\n1 3 0\n2 4 0\n3 4 0\n1 4 1\n";
    let g1 = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,1,img/1.jpg\n1,1,img/2.jpg\n2,2,img/3.jpg\n";
    let g2 = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n3,3,img/5.jpg\n";
    let probes = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n4,1,img/7.jpg\n4,1,img/8.jpg\n";
    [faces, lmk, pairs.into(), g1.into(), g2.into(), probes.into()].map(String::into_bytes)
}

fn run_ijb(dir: &Path, which: usize, input: &[u8]) -> Result<(), String> {
    let names = ["faces.txt", "lmk.txt", "pairs.txt", "g1.csv", "g2.csv", "probes.csv"];
    let mut files = ijb_files();
    files[which] = input.to_vec();
    let p: Vec<PathBuf> = names.iter().zip(&files).map(|(n, b)| put(dir, n, b)).collect();
    let release = ijb::IjbFiles {
        faces: p[0].clone(),
        landmarks: p[1].clone(),
        pairs: p[2].clone(),
        one_n: Some([p[3].clone(), p[4].clone(), p[5].clone()]),
    };
    ijb::read_release(&release, ["G1", "G2"]).map(|_| ()).map_err(err)
}

const MANIFEST: &str = "path,identity,age,landmarks,detector_score,group\n\
a/1.jpg,anna,30,\"38 51 73 51 56 71 41 92 70 92\",0.9,x\n\
a/2.jpg,anna,52,,0.8,y\n\
b/1.jpg,bob,41,,,x\n\
b/2.jpg,bob,19,\"[1,2,3,4,5,6,7,8,9,10]\",1,\n";

fn store_seed(dir: &Path) -> Vec<u8> {
    let e = put(dir, "seed.npy", &npy(3, 4, &VALS));
    let k = put(dir, "seed.keys", b"a\nb\nc\n");
    let src = EmbeddingSource { embeddings: e, keys: k, flip: None };
    let s = import(&src, &dir.join("seed.aifrstore")).unwrap();
    std::fs::read(s.path()).unwrap()
}

fn run_import(dir: &Path, name: &str, input: &[u8]) -> Result<(), String> {
    let e = put(dir, name, input);
    let k = put(dir, "keys.txt", b"a\nb\nc\n");
    let src = EmbeddingSource { embeddings: e, keys: k, flip: None };
    let s = import(&src, &dir.join("out.aifrstore")).map_err(err)?;
    s.verify().map_err(err)
}

// ---------------------------------------------------------------------------------------------
// Targets

#[test]
fn fuzz_lfw_pairs() {
    let real = std::fs::read(data("lfw_pairs.txt")).unwrap();
    let small = b"2\t2\nA\t1\t2\nB\t1\t3\nA\t1\tB\t2\nC\t2\tD\t1\nE\t1\t2\nF\t3\t4\nE\t2\tF\t1\nG\t1\tH\t1\n".to_vec();
    fuzz(Target::new("lfw_pairs", vec![small, real], |dir, b| {
        lfw::read_pairs(&put(dir, "pairs.txt", b)).map(|_| ()).map_err(err)
    }));
}

/// One of RFW's four subset lists mutated, the other three valid.
#[test]
fn fuzz_rfw_pairs() {
    let list: String = (0..10).map(|f| format!("m.0a{f}\t1\t2\nm.0a{f}\t1\tm.0b{f}\t3\n")).collect();
    fuzz(Target::new("rfw_pairs", vec![list.clone().into_bytes()], move |dir, b| {
        for subset in rfw::SUBSETS {
            let p = rfw::pairs_path(dir, subset);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, if subset == "Asian" { b } else { list.as_bytes() }).unwrap();
        }
        rfw::read_release(dir, 10).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_calfw_pairs() {
    let mut text = String::new();
    for k in 0..20 {
        let label = if k < 10 { 1 } else { 0 };
        let (a, b) = if k < 10 { (format!("P{k}"), format!("P{k}")) } else { (format!("N{k}"), format!("M{k}")) };
        text += &format!("{a}_0001.jpg {label}\n{b}_0002.jpg {label}\n");
    }
    fuzz(Target::new("calfw_pairs", vec![text.into_bytes()], |dir, b| {
        calfw::read_pairs(&put(dir, "pairs_CALFW.txt", b)).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_insightface_bin() {
    let real = std::fs::read(data("small_lfw.bin")).unwrap();
    fuzz(Target::new("insightface_bin", vec![real], |dir, b| {
        bin_pairs::read_pairs(&put(dir, "pack.bin", b), 2).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_npy_import() {
    fuzz(Target::new("npy", vec![npy(3, 4, &VALS)], |dir, b| run_import(dir, "emb.npy", b)));
}

#[test]
fn fuzz_safetensors_import() {
    let seeds = vec![safetensors(3, 4, &VALS, false), safetensors(3, 4, &VALS, true)];
    fuzz(Target::new("safetensors", seeds, |dir, b| run_import(dir, "emb.safetensors", b)));
}

#[test]
fn fuzz_agedb_mat() {
    fuzz(Target::new("agedb_mat", vec![agedb_mat(false), agedb_mat(true)], |dir, b| {
        agedb::read_protocol(&put(dir, "agedb_30.mat", b), None).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_ijb_meta() {
    let files = ijb_files();
    // One target per file of the release, the other files staying valid.
    for (which, name) in ["ijb_faces", "ijb_landmarks", "ijb_pairs", "ijb_csv"].into_iter().enumerate() {
        let seeds = vec![files[which].clone()];
        fuzz(Target::new(name, seeds, move |dir, b| run_ijb(dir, which, b)));
    }
}

#[test]
fn fuzz_devkit_lists() {
    let probes = std::fs::read(data("megaface/facescrub_features_list.json")).unwrap();
    fuzz(Target::new("devkit_probes", vec![probes], |dir, b| {
        megaface::read_probe_list(&put(dir, "probes.json", b)).map(|_| ()).map_err(err)
    }));
    let ten = std::fs::read(data("megaface/megaface_features_list.json_10_1")).unwrap();
    fuzz(Target::new("devkit_distractors", vec![ten], |dir, b| {
        megaface::read_distractor_list(&put(dir, "list.json", b), 10).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_devkit_feature_file() {
    let seeds = vec![megaface::encode_feature_file(&VALS[..8])];
    fuzz(Target::new("devkit_feature", seeds, |dir, b| {
        megaface::read_feature_file(&put(dir, "x.jpg_r50.bin", b)).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_manifest() {
    let tsv = MANIFEST.replace(',', "\t").replace("\"38 51 73 51 56 71 41 92 70 92\"", "38 51 73 51 56 71 41 92 70 92");
    fuzz(Target::new("manifest", vec![MANIFEST.as_bytes().to_vec()], |dir, b| {
        Manifest::read(&put(dir, "m.csv", b)).map(|_| ()).map_err(err)
    }));
    fuzz(Target::new("manifest_tsv", vec![tsv.into_bytes()], |dir, b| {
        Manifest::read(&put(dir, "m.tsv", b)).map(|_| ()).map_err(err)
    }));
}

#[test]
fn fuzz_store() {
    let dir = tempfile::tempdir().unwrap();
    let seed = store_seed(dir.path());
    fuzz(Target::new("store", vec![seed], |dir, b| {
        let s = EmbeddingStore::open(&put(dir, "s.aifrstore", b)).map_err(err)?;
        s.verify().map_err(err)?;
        let mut row = vec![0f32; s.dim()];
        for r in 0..s.len() {
            s.read_row(r, aifr_eval::store::View::Original, &mut row);
            let _ = s.row_of(s.key(r));
        }
        Ok(())
    }));
}

#[test]
fn fuzz_dlib() {
    // The seed is tests/data/fuzz-regressions/dlib/seed-tiny-net.dat (replayed and mutated).
    fuzz(Target::new("dlib", vec![], |dir, b| {
        aifr_eval::model::dlib_serialize::read_metric_net(&dir.join("net.dat"), b).map(|_| ()).map_err(err)
    }));
}

#[test]
fn the_harness_reports_a_panicking_parser() {
    // A "parser" that panics on any input whose length differs from its seed's: the harness
    // must fail, or a real panic could go unnoticed.
    let t = Target::new("selftest", vec![b"a fixed seed\n".to_vec()], |_, b| {
        assert_eq!(b.len(), 13, "length changed");
        Ok(())
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| fuzz(t)));
    let msg = outcome.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    assert!(msg.contains("selftest:") && msg.contains("panics (") && msg.contains("length changed"), "{msg}");
}
