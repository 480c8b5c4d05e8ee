//! Bring-your-own collection: manifest validation, protocol builders (checked here by
//! independent code against the constraints they promise), determinism, and manifest runs
//! (identification and strata recomputed from the embeddings; the demo cohort reproducing the
//! built-in LFW-layout numbers).

use aifr_eval::app::manifest::{build, run_manifest, ManifestRunRequest};
use aifr_eval::app::{run_pairs, Env, RunRequest};
use aifr_eval::config::Registry;
use aifr_eval::dataset::manifest::Manifest;
use aifr_eval::protocol::manifest::build::BuildSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Row {
    path: String,
    identity: String,
    age: u32,
    group: String,
}

/// A small collection: `n` identities with 1–9 images each (some singletons), ages spread over
/// decades, three groups and a `camera` column.
fn cohort(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    for i in 0..n {
        let k = if i % 17 == 0 { 1 } else { rng.gen_range(2..10) };
        let first = rng.gen_range(5..50);
        for j in 0..k {
            rows.push(Row {
                path: format!("id{i:04}/img{j:02}.jpg"),
                identity: format!("person {i}"),
                age: first + rng.gen_range(0..40),
                group: format!("site{}", i % 3),
            });
        }
    }
    rows
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from("path,identity,age,group,camera\n");
    for (k, r) in rows.iter().enumerate() {
        s.push_str(&format!("{},{},{},{},cam{}\n", r.path, r.identity, r.age, r.group, k % 2));
    }
    s
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn bin() -> Command {
    Command::new(crate::support::EXE)
}

fn read_error(dir: &Path, text: &str) -> String {
    Manifest::read(&write(dir, "m.csv", text)).unwrap_err().to_string()
}

#[test]
fn malformed_manifests_give_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cases: &[(&str, &str)] = &[
        ("path,age\na.jpg,3\n", "no 'identity' column"),
        ("identity\nx\n", "no 'path' column"),
        ("path,identity\n", "no rows"),
        ("path,identity\na.jpg,x\n,y\n", "m.csv:3: empty 'path'"),
        ("path,identity\na.jpg,\n", "m.csv:2: empty 'identity'"),
        ("path,identity\na.jpg,x\nb.jpg,y\na.jpg,z\n", "m.csv:4: duplicate path 'a.jpg' (first on line 2)"),
        ("path,identity\n/etc/passwd,x\n", "m.csv:2: path '/etc/passwd' is absolute"),
        ("path,identity\na/../../x.jpg,x\n", "m.csv:2: path 'a/../../x.jpg' leaves the dataset root"),
        ("path,identity\n../x.jpg,x\n", "leaves the dataset root"),
        ("path,identity,age\na.jpg,x,131\n", "m.csv:2: age must be a whole number of years 0..130, found '131'"),
        ("path,identity,age\na.jpg,x,-1\n", "found '-1'"),
        ("path,identity,age\na.jpg,x,3.5\n", "found '3.5'"),
        ("path,identity,age\na.jpg,x,old\n", "found 'old'"),
        ("path,identity,age\na.jpg,x,4\nb.jpg,x,\n", "m.csv:3: empty 'age'"),
        ("path,identity,landmarks\na.jpg,x,1 2 3\n", "m.csv:2: landmarks must be 10 numbers"),
        ("path,identity,detector_score\na.jpg,x,high\n", "m.csv:2: detector_score must be a number in [0, 1]"),
    ];
    for (text, want) in cases {
        let e = read_error(dir, text);
        assert!(e.contains(want), "{text:?}: got '{e}', want '{want}'");
    }
    let e = Manifest::read(&write(dir, "m.xlsx", "x")).unwrap_err().to_string();
    assert!(e.contains("unknown table format '.xlsx'"), "{e}");
    let e = Manifest::read(&dir.join("absent.csv")).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    // Well-formed optional columns are read; extra columns are kept.
    let m = Manifest::read(&write(
        dir,
        "ok.tsv",
        "path\tidentity\tage\tlandmarks\tdetector_score\tsite\na.jpg\t7\t35.0\t[1,2,3,4,5,6,7,8,9,10]\t0.9\tx\nb.jpg\t7\t40\t\t\ty\n",
    ))
    .unwrap();
    assert_eq!(m.ages, Some(vec![35, 40]));
    assert_eq!(m.identity_names, vec!["7"]);
    assert_eq!(m.landmarks.as_ref().unwrap()[0].unwrap()[9], 10.0);
    assert_eq!(m.landmarks.as_ref().unwrap()[1], None);
    assert_eq!(m.detector_score, Some(vec![Some(0.9), None]));
    assert_eq!(m.text_column("site").unwrap().values, vec![Some("x".to_string()), Some("y".to_string())]);
    // The CLI maps a malformed manifest to exit 3 with the message on stderr.
    let o = bin().args(["manifest", "check"]).arg(write(dir, "bad.csv", "path,identity\n../x,a\n")).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.csv:2: path '../x' leaves the dataset root"));
}

#[test]
fn check_summarises_and_reports_missing_files() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("faces");
    for p in ["a/1.jpg", "a/2.jpg", "b/1.jpg"] {
        std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
        std::fs::write(root.join(p), b"").unwrap();
    }
    let m = write(
        d.path(),
        "faces.csv",
        "path,identity,age,group\na/1.jpg,A,23,x\na/2.jpg,A,41,y\nb/1.jpg,B,67,x\nc/1.jpg,C,8,x\n",
    );
    let o = bin().args(["manifest", "check"]).arg(&m).arg("--root").arg(&root).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.contains("4 images of 3 identities"), "{out}");
    assert!(out.contains("warning: 2 identities have a single image"), "{out}");
    assert!(out.contains("ages 8–67 years"), "{out}");
    assert!(out.contains("column 'group': 2 values: x (3), y (1)"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1 of the 4 files listed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bin().args(["manifest", "check", "--skip-files"]).arg(&m).output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("files not checked"));
}

/// What the test knows about each path, from the rows it wrote.
fn truth(rows: &[Row]) -> HashMap<String, (String, u32)> {
    rows.iter().map(|r| (r.path.clone(), (r.identity.clone(), r.age))).collect()
}

/// Parses a pairs file written by the builder: (folds, per fold, matched[f], mismatched[f]).
#[allow(clippy::type_complexity)]
fn parse_pairs(text: &str) -> (usize, usize, Vec<Vec<(String, String)>>, Vec<Vec<(String, String)>>) {
    let mut lines = text.lines();
    let head: Vec<usize> = lines.next().unwrap().split('\t').map(|x| x.parse().unwrap()).collect();
    let (folds, n) = (head[0], head[1]);
    let (mut m, mut x) = (Vec::new(), Vec::new());
    for _ in 0..folds {
        let mut take = || -> Vec<(String, String)> {
            (0..n)
                .map(|_| {
                    let (a, b) = lines.next().unwrap().split_once('\t').unwrap();
                    (a.to_string(), b.to_string())
                })
                .collect()
        };
        m.push(take());
        x.push(take());
    }
    assert_eq!(lines.next(), None);
    (folds, n, m, x)
}

#[test]
fn built_protocols_honour_their_constraints() {
    let d = tempfile::tempdir().unwrap();
    let rows = cohort(300, 1);
    let manifest = write(d.path(), "faces.csv", &csv(&rows));
    let out = d.path().join("protocol");
    let spec = BuildSpec { seed: 5, folds: 10, pairs_per_fold: Some(40), min_age_gaps: vec![10, 20], age_tolerance: 2 };
    build(&manifest, &out, &spec).unwrap();
    let t = truth(&rows);
    for (file, gap) in [("pairs.txt", 0), ("pairs_min_gap_10.txt", 10), ("pairs_min_gap_20.txt", 20)] {
        let (folds, n, matched, mismatched) = parse_pairs(&std::fs::read_to_string(out.join(file)).unwrap());
        assert_eq!((folds, n), (10, 40), "{file}");
        let mut fold_of: HashMap<&str, usize> = HashMap::new();
        let mut seen = HashSet::new();
        for f in 0..folds {
            for (k, ((a, b), (c, e))) in matched[f].iter().zip(&mismatched[f]).enumerate() {
                let (ia, aa) = &t[a];
                let (ib, ab) = &t[b];
                let (ic, ac) = &t[c];
                let (ie, ae) = &t[e];
                assert_eq!(ia, ib, "{file}: matched pair of two identities");
                assert_ne!(ic, ie, "{file}: mismatched pair of one identity");
                assert!(a != b && seen.insert((a.clone(), b.clone())) && seen.insert((c.clone(), e.clone())), "repeat");
                // Identity-disjoint folds: every identity appears in one fold only.
                for id in [ia, ic, ie] {
                    assert_eq!(*fold_of.entry(id.as_str()).or_insert(f), f, "{file}: identity {id} in two folds");
                }
                if gap > 0 {
                    assert!(aa.abs_diff(*ab) >= gap, "{file}: genuine gap {aa}/{ab}");
                    assert!(ac.abs_diff(*ae) >= gap, "{file}: impostor gap {ac}/{ae}");
                    // The k-th impostor pair is matched on age to the k-th genuine pair.
                    let (young, old) = (aa.min(ab), aa.max(ab));
                    let (y2, o2) = (ac.min(ae), ac.max(ae));
                    assert!(
                        young.abs_diff(*y2) <= 2 && old.abs_diff(*o2) <= 2,
                        "{file} fold {f} pair {k}: not age-matched"
                    );
                }
            }
        }
    }
    // Gallery: the youngest (oldest) image of each identity; probes: all the others.
    let mut by_id: HashMap<&str, Vec<&Row>> = HashMap::new();
    rows.iter().for_each(|r| by_id.entry(r.identity.as_str()).or_default().push(r));
    for (choice, pick) in [("youngest", true), ("oldest", false)] {
        let gallery: Vec<String> = std::fs::read_to_string(out.join(format!("gallery_{choice}.txt")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let probes: Vec<String> = std::fs::read_to_string(out.join(format!("probes_{choice}.txt")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(gallery.len(), by_id.len());
        assert_eq!(gallery.len() + probes.len(), rows.len());
        let all: HashSet<&String> = gallery.iter().chain(&probes).collect();
        assert_eq!(all.len(), rows.len());
        for g in &gallery {
            let (id, age) = &t[g];
            let ages = by_id[id.as_str()].iter().map(|r| r.age);
            let extreme = if pick { ages.min() } else { ages.max() }.unwrap();
            assert_eq!(*age, extreme, "{choice} gallery image {g}");
        }
    }
    let desc: Value = serde_json::from_slice(&std::fs::read(out.join("protocol.json")).unwrap()).unwrap();
    assert_eq!(desc["seed"], 5);
    assert_eq!(desc["manifest"]["rows"], rows.len());
    assert_eq!(desc["files"].as_array().unwrap().len(), 7);
}

fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn builds_are_deterministic_across_runs_threads_row_order_and_formats() {
    let d = tempfile::tempdir().unwrap();
    let mut rows = cohort(200, 2);
    let manifest = write(d.path(), "faces.csv", &csv(&rows));
    let run = |threads: &str, out: &str, manifest: &Path| {
        let o = bin()
            .env("RAYON_NUM_THREADS", threads)
            .args(["manifest", "build", "--seed", "11", "--min-age-gap", "5,15", "--out"])
            .arg(d.path().join(out))
            .arg(manifest)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir_bytes(&d.path().join(out))
    };
    let one = run("1", "t1", &manifest);
    assert_eq!(one, run("2", "t2", &manifest), "thread count changed the protocol");
    assert_eq!(one, run("2", "t2b", &manifest), "two runs differ");
    // Another seed gives other pairs.
    build(&manifest, &d.path().join("s12"), &BuildSpec { seed: 12, min_age_gaps: vec![5, 15], ..Default::default() })
        .unwrap();
    assert_ne!(one[2], dir_bytes(&d.path().join("s12"))[2]);
    // Rows shuffled, and the same table as Parquet: the same pair and split files (only the
    // manifest fingerprint in protocol.json differs).
    let without_json =
        |v: Vec<(String, Vec<u8>)>| v.into_iter().filter(|(n, _)| n != "protocol.json").collect::<Vec<_>>();
    rows.reverse();
    let shuffled = write(d.path(), "shuffled.csv", &csv(&rows));
    assert_eq!(without_json(run("2", "t3", &shuffled)), without_json(one.clone()));
    use polars::prelude::SerReader;
    let mut df = polars::prelude::CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(manifest.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let pq = d.path().join("faces.parquet");
    polars::prelude::ParquetWriter::new(std::fs::File::create(&pq).unwrap()).finish(&mut df).unwrap();
    assert_eq!(without_json(run("2", "t4", &pq)), without_json(one));
}

#[test]
fn protocol_errors_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let manifest = write(d.path(), "faces.csv", &csv(&cohort(40, 3)));
    let e = |spec: BuildSpec| build(&manifest, &d.path().join("p"), &spec).unwrap_err().to_string();
    let msg = e(BuildSpec { pairs_per_fold: Some(100_000), ..Default::default() });
    assert!(msg.contains("lower --pairs-per-fold"), "{msg}");
    let msg = e(BuildSpec { min_age_gaps: vec![100], ..Default::default() });
    assert!(msg.contains("genuine pairs 100+ years apart"), "{msg}");
    let msg = e(BuildSpec { folds: 1, ..Default::default() });
    assert!(msg.contains("--folds must be at least 2"), "{msg}");
    let no_age = write(d.path(), "noage.csv", "path,identity\na/1.jpg,a\na/2.jpg,a\n");
    let msg = build(&no_age, &d.path().join("q"), &BuildSpec { min_age_gaps: vec![5], folds: 2, ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(msg.contains("fewer than the 2 folds"), "{msg}");
}

/// Unit-norm random embeddings: identity centre + noise, written as .npy with a key list.
fn embeddings(dir: &Path, rows: &[Row]) -> (PathBuf, PathBuf, Vec<Vec<f64>>) {
    let dim = 8;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut centres: HashMap<&str, Vec<f64>> = HashMap::new();
    let (mut flat, mut unit) = (Vec::new(), Vec::new());
    for r in rows {
        let c =
            centres.entry(r.identity.as_str()).or_insert_with(|| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect());
        let v: Vec<f32> = c.iter().map(|x| (x + rng.gen_range(-0.6..0.6)) as f32).collect();
        let n = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        unit.push(v.iter().map(|&x| x as f64 / n).collect());
        flat.extend(v);
    }
    let npy = dir.join("emb.npy");
    aifr_eval::store::import::write_npy_f32(&npy, rows.len(), dim, &flat).unwrap();
    let keys = write(dir, "keys.txt", &(rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>().join("\n") + "\n"));
    (npy, keys, unit)
}

fn env(dir: &Path) -> Env {
    Env {
        data_dir: dir.to_path_buf(),
        registry: Registry::builtin().unwrap(),
        cache_dir: dir.join("cache"),
        trust_store: false,
    }
}

fn request(manifest: &Path, npy: &Path, keys: &Path, out: &Path) -> ManifestRunRequest {
    ManifestRunRequest {
        manifest: manifest.to_path_buf(),
        protocol_dir: None,
        pairs: None,
        min_age_gap: None,
        gallery: None,
        stratify: vec!["camera".into()],
        seed: 0,
        pairs_per_fold: None,
        age_tolerance: 2,
        loo_max_images: 100_000,
        run: RunRequest {
            benchmark: "manifest".into(),
            embeddings: npy.to_path_buf().into(),
            per_subject_models: false,
            keys: Some(keys.to_path_buf()),
            flip_embeddings: None,
            mode: None,
            flip: None,
            protocol_file: None,
            ages: None,
            out_dir: out.to_path_buf(),
        },
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn manifest_run_identification_and_strata_match_an_independent_count() {
    let d = tempfile::tempdir().unwrap();
    let rows = cohort(300, 4);
    let manifest = write(d.path(), "faces.csv", &csv(&rows));
    let (npy, keys, unit) = embeddings(d.path(), &rows);
    let out = d.path().join("run");
    run_manifest(&env(d.path()), &request(&manifest, &npy, &keys, &out)).unwrap();
    let r = json(&out.join("results.json"));
    assert_eq!(r["kind"], "pair_verification");
    assert_eq!(r["benchmark"]["format"], "manifest");
    // The typed run model reads a manifest run as one and writes back the same bytes.
    let typed = aifr_eval::run::results::Results::from_value(r.clone()).unwrap();
    assert!(matches!(typed, aifr_eval::run::results::Results::Manifest(_)));
    assert!(aifr_eval::io::to_json(&typed) == std::fs::read(out.join("results.json")).unwrap());
    let row: HashMap<&str, usize> = rows.iter().enumerate().map(|(i, r)| (r.path.as_str(), i)).collect();
    let cos = |a: usize, b: usize| unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum::<f64>();

    // Closed-set rank-1 from the written split.
    let read = |f: &str| -> Vec<usize> {
        std::fs::read_to_string(out.join("protocol").join(f)).unwrap().lines().map(|l| row[l]).collect()
    };
    let (gallery, probes) = (read("gallery_youngest.txt"), read("probes_youngest.txt"));
    let hit = |p: usize, cands: &mut dyn Iterator<Item = usize>| {
        let (mut mate, mut other) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for g in cands {
            let s = cos(p, g);
            if rows[g].identity == rows[p].identity {
                mate = mate.max(s)
            } else {
                other = other.max(s)
            }
        }
        (mate > f64::NEG_INFINITY).then_some(mate > other)
    };
    let split_hits: Vec<bool> = probes.iter().map(|&p| hit(p, &mut gallery.iter().copied()).unwrap()).collect();
    let id = &r["identification"];
    assert_eq!(id["gallery_rank1"]["probes"], probes.len());
    assert_eq!(id["gallery_rank1"]["hits"], split_hits.iter().filter(|h| **h).count());
    let loo: Vec<Option<bool>> = (0..rows.len()).map(|i| hit(i, &mut (0..rows.len()).filter(|&j| j != i))).collect();
    assert_eq!(id["leave_one_out"]["probes"], loo.iter().flatten().count());
    assert_eq!(id["leave_one_out"]["hits"], loo.iter().flatten().filter(|h| **h).count());

    // Strata: group (always) and camera (requested); pairs counted and TAR/FAR recomputed.
    let strata = r["strata"].as_array().unwrap();
    assert_eq!(strata.iter().map(|s| s["column"].as_str().unwrap()).collect::<Vec<_>>(), ["group", "camera"]);
    let (_, _, matched, mismatched) = parse_pairs(&std::fs::read_to_string(out.join("protocol/pairs.txt")).unwrap());
    let value = |col: &str, i: usize| if col == "group" { rows[i].group.clone() } else { format!("cam{}", i % 2) };
    for st in strata {
        let col = st["column"].as_str().unwrap();
        let th = st["threshold"].as_f64().unwrap();
        let mut counts: HashMap<String, [usize; 4]> = HashMap::new();
        for (genuine, list) in [(true, &matched), (false, &mismatched)] {
            for (a, b) in list.iter().flatten() {
                let (a, b) = (row[a.as_str()], row[b.as_str()]);
                let (va, vb) = (value(col, a), value(col, b));
                let key = if va == vb { va } else { "(mixed)".into() };
                let c = counts.entry(key).or_default();
                let k = if genuine { 0 } else { 2 };
                c[k] += 1;
                c[k + 1] += (cos(a, b) >= th) as usize;
            }
        }
        for x in st["strata"].as_array().unwrap() {
            let v = x["value"].as_str().unwrap();
            let c = counts[v];
            assert_eq!(
                (x["n_genuine"].as_u64().unwrap() as usize, x["n_impostor"].as_u64().unwrap() as usize),
                (c[0], c[2]),
                "{col}={v}"
            );
            let rate = |hits: usize, n: usize| (n > 0).then(|| hits as f64 / n as f64);
            for (key, want) in [("tar", rate(c[1], c[0])), ("far", rate(c[3], c[2]))] {
                match (x[key].as_f64(), want) {
                    (Some(got), Some(want)) => assert!((got - want).abs() < 1e-12, "{col}={v} {key}: {got} vs {want}"),
                    (got, want) => assert_eq!(got, want, "{col}={v} {key}"),
                }
            }
            if v != "(mixed)" {
                let probes_in: Vec<usize> = probes.iter().copied().filter(|&p| value(col, p) == v).collect();
                let hits = probes.iter().zip(&split_hits).filter(|(p, h)| **h && value(col, **p) == v).count();
                assert_eq!(x["gallery_rank1"]["probes"], probes_in.len(), "{col}={v}");
                assert_eq!(x["gallery_rank1"]["hits"], hits, "{col}={v}");
            }
        }
        assert_eq!(st["strata"].as_array().unwrap().len(), counts.len(), "{col}: strata");
    }

    // The same run again, with the protocol directory it wrote and one thread: byte-identical.
    let out2 = d.path().join("run2");
    let o = bin()
        .env("RAYON_NUM_THREADS", "1")
        .args(["--cache-dir"])
        .arg(d.path().join("cache2"))
        .args(["run", "--manifest"])
        .arg(&manifest)
        .arg("--protocol-dir")
        .arg(out.join("protocol"))
        .args(["--stratify", "camera", "--embeddings"])
        .arg(&npy)
        .arg("--keys")
        .arg(&keys)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("closed-set rank-1") && text.contains("by camera"), "{text}");
    let mut r2 = json(&out2.join("results.json"));
    r2["manifest"]["protocol"]["source"] = r["manifest"]["protocol"]["source"].clone();
    assert_eq!(r, r2);
    let html = std::fs::read_to_string(out2.join("report.html")).unwrap();
    assert!(html.contains("<h2>By camera</h2>") && html.contains("<h2>Identification</h2>"));
}

#[test]
fn list_files_are_checked_against_the_manifest_and_the_root() {
    let d = tempfile::tempdir().unwrap();
    let rows = cohort(300, 5);
    let manifest = write(d.path(), "faces.csv", &csv(&rows));
    let (npy, keys, _) = embeddings(d.path(), &rows);
    let run = |pairs: &str| {
        let mut req = request(&manifest, &npy, &keys, &d.path().join("run"));
        req.pairs = Some(write(d.path(), "pairs.txt", pairs));
        run_manifest(&env(d.path()), &req).unwrap_err().to_string()
    };
    let (a, b, c) = (&rows[1].path, &rows[2].path, &rows[12].path);
    assert_eq!(rows[1].identity, rows[2].identity);
    let e = run(&format!("1\t1\n../../etc/passwd\t{a}\n{a}\t{c}\n"));
    assert!(e.contains("pairs.txt:2: path '../../etc/passwd' leaves the dataset root"), "{e}");
    let e = run(&format!("1\t1\n/abs.jpg\t{a}\n{a}\t{c}\n"));
    assert!(e.contains("pairs.txt:2: path '/abs.jpg' is absolute"), "{e}");
    let e = run(&format!("1\t1\n{a}\tnot/there.jpg\n{a}\t{c}\n"));
    assert!(e.contains("pairs.txt:2: 'not/there.jpg' is not a path of the manifest"), "{e}");
    let e = run(&format!("1\t1\n{a}\t{c}\n{a}\t{b}\n"));
    assert!(e.contains("pairs.txt:2: fold 1 matched pair, but the manifest gives identities"), "{e}");
    let e = run(&format!("1\t1\n{a}\t{b}\n{a}\t{b}\n"));
    assert!(e.contains("pairs.txt:3: fold 1 mismatched pair"), "{e}");
    let e = run(&format!("1\t2\n{a}\t{b}\n"));
    assert!(e.contains("file ends early"), "{e}");
    // A protocol built from another manifest is refused.
    let p = d.path().join("proto");
    build(&manifest, &p, &BuildSpec { folds: 2, ..Default::default() }).unwrap();
    let other = write(d.path(), "other.csv", &csv(&cohort(300, 6)));
    let mut req = request(&other, &npy, &keys, &d.path().join("run"));
    req.protocol_dir = Some(p);
    let e = run_manifest(&env(d.path()), &req).unwrap_err().to_string();
    assert!(e.contains("was built from a different manifest"), "{e}");
}

#[test]
fn demo_manifest_run_reproduces_the_builtin_protocol() {
    let d = tempfile::tempdir().unwrap();
    let files = aifr_eval::demo::generate(&aifr_eval::demo::DemoSpec::default(), &d.path().join("data")).unwrap();
    let env = Env {
        data_dir: files.data_dir.clone(),
        registry: Registry::builtin().unwrap(),
        cache_dir: d.path().join("cache"),
        trust_store: false,
    };
    let lfw_out = d.path().join("lfw");
    let base = RunRequest {
        benchmark: "lfw".into(),
        embeddings: files.embeddings.clone().into(),
        per_subject_models: false,
        keys: Some(files.keys.clone()),
        flip_embeddings: Some(files.flip_embeddings.clone()),
        mode: None,
        flip: None,
        protocol_file: None,
        ages: Some(files.ages.clone()),
        out_dir: lfw_out.clone(),
    };
    run_pairs(&env, &base).unwrap();
    let m_out = d.path().join("manifest");
    let mut req = request(&files.manifest, &files.embeddings, &files.keys, &m_out);
    req.pairs = Some(files.pairs.clone());
    req.stratify = vec![];
    req.loo_max_images = 0; // identification is not part of the LFW protocol
    req.run.flip_embeddings = Some(files.flip_embeddings.clone());
    req.run.benchmark = "manifest".into();
    run_manifest(&env, &req).unwrap();
    let (mut a, mut b) = (json(&lfw_out.join("results.json")), json(&m_out.join("results.json")));
    // The manifest run adds the differentials by its `group` column after the age bands.
    let (da, db) = (a["metrics"]["differentials"].take(), b["metrics"]["differentials"].take());
    assert_eq!(da.as_array().unwrap().len(), 1);
    assert_eq!(db[0], da[0], "age-band differentials differ between the LFW-layout and the manifest run");
    assert_eq!(db[1]["attribute"], "group");
    // Identification by group: the spread of the rank-1 miss rate over the sites.
    let strata = &b["strata"][0];
    let misses: Vec<f64> = strata["strata"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["value"] != "(mixed)")
        .filter_map(|s| s["gallery_rank1"]["rank1"].as_f64())
        .map(|r| 1.0 - r)
        .collect();
    let spread = &strata["rank1_miss_spread"];
    assert_eq!(spread["groups"].as_u64(), Some(misses.len() as u64));
    assert_eq!(spread["max"].as_f64(), misses.iter().copied().reduce(f64::max));
    assert_eq!(spread["min"].as_f64(), misses.iter().copied().reduce(f64::min));
    assert!(strata.get("leave_one_out_miss_spread").is_none(), "leave-one-out was not evaluated");
    assert_eq!(a["metrics"], b["metrics"], "metrics differ between the LFW-layout and the manifest run");
    assert_eq!(a["counts"], b["counts"]);
    assert_eq!(a["embeddings"], b["embeddings"]);
    assert_eq!(
        std::fs::read(lfw_out.join("pair_scores.npy")).unwrap(),
        std::fs::read(m_out.join("pair_scores.npy")).unwrap()
    );
    assert_eq!(std::fs::read(lfw_out.join("curves.json")).unwrap(), std::fs::read(m_out.join("curves.json")).unwrap());
    // The group column (three synthetic sites) is broken down.
    let sites: Vec<&str> =
        b["strata"][0]["strata"].as_array().unwrap().iter().map(|x| x["value"].as_str().unwrap()).collect();
    assert_eq!(sites, ["site-1", "site-2", "site-3", "(mixed)"]);
}
