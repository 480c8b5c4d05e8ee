//! RFW: the release layout read as one benchmark of four subsets, each subset's own 10-fold
//! accuracy, and differentials at one global threshold that track a planted differential.

use aifr_eval::app::{run_benchmark, Env, RunRequest};
use aifr_eval::config::Registry;
use aifr_eval::dataset::rfw::SUBSETS;
use aifr_eval::gate::{gate, GateConfig, Verdict};
use aifr_eval::metrics::differentials::DifferentialsAt;
use aifr_eval::run::dir::RunData;
use aifr_eval::run::results::{Results, VerificationResults};
use aifr_eval::synth::rfw::{generate, RfwSpec};
use std::path::Path;

fn run(spec: &RfwSpec, dir: &Path) -> VerificationResults {
    let files = generate(spec, &dir.join("data")).unwrap();
    let env = Env {
        data_dir: files.data_dir.clone(),
        registry: Registry::builtin().unwrap(),
        cache_dir: dir.join("cache"),
        trust_store: false,
    };
    let req = RunRequest {
        benchmark: "rfw".into(),
        embeddings: files.embeddings.into(),
        per_subject_models: false,
        keys: Some(files.keys),
        flip_embeddings: None,
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: dir.join("out"),
    };
    let report = run_benchmark(&env, &req).unwrap();
    let value = serde_json::from_slice(&std::fs::read(&report.results_path).unwrap()).unwrap();
    let Ok(Results::Pairs(r)) = Results::from_value(value) else { panic!("an RFW run is a pair-verification run") };
    r
}

/// The differentials by subset at FMR 1e-2.
fn at_1e2(r: &VerificationResults) -> &DifferentialsAt {
    let d = r.metrics.differentials.iter().find(|d| d.attribute == "subset").expect("differentials by subset");
    assert_eq!(d.groups, SUBSETS);
    assert_eq!(d.reference.as_deref(), Some("Caucasian"));
    d.at.iter().find(|a| a.far_target == 1e-2).filter(|a| a.available).expect("FMR 1e-2 measurable")
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn argmin(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] < v[b] { i } else { b })
}

#[test]
fn one_run_gives_each_subsets_accuracy_and_the_planted_differential() {
    let dir = tempfile::tempdir().unwrap();
    let spec = RfwSpec::demo(3);
    let r = run(&spec, dir.path());
    assert_eq!((r.counts.pairs, r.counts.folds), (4 * 10 * 2 * spec.pairs_per_fold, 10));
    let g = r.metrics.group_accuracy.as_ref().expect("per-subset accuracy");
    assert_eq!(g.groups.iter().map(|x| x.group.as_str()).collect::<Vec<_>>(), SUBSETS);
    assert!(g.groups.iter().all(|x| x.pairs == 20 * spec.pairs_per_fold && x.fold_accuracies.len() == 10));
    let means: Vec<f64> = g.groups.iter().map(|x| x.spread.mean).collect();
    assert!((g.over_groups.mean - means.iter().sum::<f64>() / 4.0).abs() < 1e-15);

    let at = at_1e2(&r);
    let fnmr: Vec<f64> = at.groups.iter().map(|x| x.fnmr.unwrap()).collect();
    let fmr: Vec<f64> = at.groups.iter().map(|x| x.fmr.unwrap()).collect();
    let gen: Vec<f64> = (0..4).map(|s| spec.expected_genuine_cosine(s)).collect();
    let imp: Vec<f64> = (0..4).map(|s| spec.expected_impostor_cosine(s)).collect();
    // The subset planted with the lowest genuine similarity is falsely rejected most, the one
    // with the most alike identities falsely matched most, the least alike least.
    assert_eq!(argmax(&fnmr), argmin(&gen), "FNMR {fnmr:?} vs planted genuine cosines {gen:?}");
    assert_eq!(argmax(&fmr), argmax(&imp), "FMR {fmr:?} vs planted impostor cosines {imp:?}");
    assert_eq!(argmin(&fmr), argmin(&imp), "FMR {fmr:?} vs planted impostor cosines {imp:?}");
    // RFW's lists never mix subsets: no cross-group pairs.
    assert_eq!(at.cross_group.as_ref().unwrap().n_impostor, 0);
    // Ratios to Caucasian, and the Caucasian row's own ratio is 1.
    let caucasian = &at.groups[2];
    match caucasian.fnmr {
        Some(x) if x > 0.0 => assert_eq!(caucasian.fnmr_ratio_to_reference, Some(1.0)),
        _ => assert_eq!(caucasian.fnmr_ratio_to_reference, None),
    }
}

/// With the same knobs for every subset the measured differential is small; planting one makes
/// FDR fall and GARBE rise, and more planted noise means more false non-matches.
#[test]
fn the_measured_differential_tracks_the_planted_one() {
    let dir = tempfile::tempdir().unwrap();
    let fair = RfwSpec { noise: [0.95; 4], crowding: [0.4; 4], ..RfwSpec::demo(5) };
    let planted = RfwSpec { noise: [1.25, 0.95, 0.95, 0.95], crowding: [0.4, 0.7, 0.4, 0.4], ..fair.clone() };
    let stronger = RfwSpec { noise: [1.45, 0.95, 0.95, 0.95], ..planted.clone() };
    let f = run(&fair, &dir.path().join("fair"));
    let p = run(&planted, &dir.path().join("planted"));
    let s = run(&stronger, &dir.path().join("stronger"));
    let (f, p, s) = (at_1e2(&f), at_1e2(&p), at_1e2(&s));

    // The gate fails the stronger differential against the planted one as a baseline: African's
    // FNMR worsens beyond its tolerance and FDR drops beyond its own.
    let load = |name: &str| RunData::load(&dir.path().join(name).join("out")).unwrap();
    let o = gate(&load("stronger"), &load("planted"), &GateConfig::builtin().unwrap()).unwrap();
    let row = |m: &str| o.rows.iter().find(|r| r.metric == m).unwrap_or_else(|| panic!("no {m} in\n{}", o.table()));
    for m in ["fnmr@far=1e-2@subset=African", "fdr@far=1e-2@subset"] {
        assert_eq!(row(m).verdict, Verdict::Regressed, "{m}: {}", row(m).note);
        assert!(row(m).note.contains("significance not tested"), "{}", row(m).note);
    }
    assert_eq!(row("fnmr@far=1e-2@subset=Caucasian").verdict, Verdict::Unchanged);
    assert_eq!(o.exit_code(), aifr_eval::error::exit::REGRESSION);
    let summary = |a: &DifferentialsAt| a.summary.clone().unwrap();
    let (sf, sp) = (summary(f), summary(p));
    assert!(sf.fdr.unwrap() > sp.fdr.unwrap(), "FDR fair {:?} planted {:?}", sf.fdr, sp.fdr);
    assert!(sf.garbe.unwrap() < sp.garbe.unwrap(), "GARBE fair {:?} planted {:?}", sf.garbe, sp.garbe);
    assert_eq!(sp.fnmr.max_group.as_deref(), Some("African"));
    assert_eq!(sp.fmr.max_group.as_deref(), Some("Asian"));
    assert!(s.groups[0].fnmr.unwrap() > p.groups[0].fnmr.unwrap(), "more planted noise, more false non-matches");
    // The planted groups' intervals exclude the fair run's rate of the same group.
    let iv = p.groups[0].fnmr_interval.unwrap();
    assert!(iv.lo > f.groups[0].fnmr.unwrap(), "{iv:?} vs fair {:?}", f.groups[0].fnmr);
}

/// `run rfw --model` embeds the release's images (`test/data/<Subset>/<person>/<person>_<NNNN>.jpg`)
/// like any image benchmark and evaluates all four subsets.
#[test]
fn the_release_images_are_embedded_and_evaluated() {
    use aifr_eval::app::embed::{run_with_model, ModelRequest};
    use aifr_eval::embed::extract::ExtractOptions;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/RFW/test");
    for (s, subset) in SUBSETS.iter().enumerate() {
        let people: Vec<String> = (0..4).map(|p| format!("m.{}{p}", subset.to_lowercase())).collect();
        for (p, person) in people.iter().enumerate() {
            let d = root.join("data").join(subset).join(person);
            std::fs::create_dir_all(&d).unwrap();
            for shot in 1..=2u32 {
                let img = ::image::RgbImage::from_fn(112, 112, |x, y| {
                    let v = ((x as f32 * (0.05 + 0.02 * p as f32) + y as f32 * 0.03 * shot as f32).sin() * 100.0
                        + 128.0) as u8;
                    ::image::Rgb([v, (v as usize * (s + 1) % 256) as u8, (x + y) as u8])
                });
                img.save(d.join(format!("{person}_{shot:04}.jpg"))).unwrap();
            }
        }
        // 10 folds of one matched and one mismatched pair, in RFW's headerless lines.
        let lines: Vec<String> = (0..10)
            .flat_map(|f| {
                let (a, b) = (&people[f % 4], &people[(f + 1) % 4]);
                [format!("{a}\t1\t2"), format!("{a}\t1\t{b}\t2")]
            })
            .collect();
        let txt = root.join("txts").join(subset);
        std::fs::create_dir_all(&txt).unwrap();
        std::fs::write(txt.join(format!("{subset}_pairs.txt")), lines.join("\n") + "\n").unwrap();
    }
    std::fs::write(dir.path().join("weights.bin"), b"test-net weights for rfw").unwrap();
    let env = Env {
        data_dir: dir.path().join("data"),
        registry: Registry::builtin().unwrap(),
        cache_dir: dir.path().join("cache"),
        trust_store: false,
    };
    let model = ModelRequest {
        weights: dir.path().join("weights.bin"),
        arch: Some("test-net".into()),
        device: "cpu".into(),
        dtype: "f32".into(),
        options: ExtractOptions { batch_size: 8, progress: false, ..Default::default() },
    };
    let req = RunRequest {
        benchmark: "rfw".into(),
        embeddings: std::path::PathBuf::new().into(),
        per_subject_models: false,
        keys: None,
        flip_embeddings: None,
        mode: None,
        flip: None,
        protocol_file: None,
        ages: None,
        out_dir: dir.path().join("out"),
    };
    let (embedded, run) = run_with_model(&env, &req, &model).unwrap();
    assert_eq!(embedded.images, 4 * 4 * 2);
    let run = run.expect("the run follows a complete extraction");
    let value = serde_json::from_slice(&std::fs::read(&run.results_path).unwrap()).unwrap();
    let Ok(Results::Pairs(r)) = Results::from_value(value) else { panic!("a pair-verification run") };
    assert_eq!(r.counts.pairs, 4 * 20);
    let g = r.metrics.group_accuracy.unwrap();
    assert!(g.groups.iter().all(|x| x.pairs == 20), "{g:?}");
    assert_eq!(r.metrics.differentials[0].attribute, "subset");
}
