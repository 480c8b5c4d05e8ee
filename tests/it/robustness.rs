//! Invalid and hostile inputs, one test per case a mutation tester found against the release
//! binary (issue #20): each once panicked, was silently accepted, or gave an unusable message.
//! The rules are in docs/protocols.md §0 "Invalid input".

use crate::support::{data, EXE};
use aifr_eval::dataset::{agedb, calfw, ijb, lfw, manifest::Manifest, mat5, megaface};
use aifr_eval::store::import::{import, import_devkit_features, read_keys, EmbeddingSource};
use std::path::{Path, PathBuf};
use std::process::Command;

fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `aifr-eval import --embeddings E --keys K -o OUT`.
fn cli_import(e: &Path, k: &Path, out: &Path) -> std::process::Output {
    Command::new(EXE).args(["import", "--embeddings"]).arg(e).arg("--keys").arg(k).arg("-o").arg(out).output().unwrap()
}

/// A float32 rows×cols `.npy` holding 1, 2, 3, … (no zero or repeated row).
fn npy(rows: usize, cols: usize) -> Vec<u8> {
    let vals: Vec<f32> = (0..rows * cols).map(|i| 1.0 + i as f32).collect();
    aifr_eval::store::import::npy_f32_bytes(rows, cols, &vals)
}

#[test]
fn safetensors_with_zero_columns_is_refused_without_a_panic_or_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"embeddings":{"dtype":"F32","shape":[3,0],"data_offsets":[0,0]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend(header.as_bytes());
    let e = put(dir.path(), "e.safetensors", st);
    let k = put(dir.path(), "k.txt", "a\nb\nc\n");
    let out = dir.path().join("s.aifrstore");
    let o = cli_import(&e, &k, &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("3×0") && !stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "only the two inputs remain: {left:?}");
}

#[test]
fn the_real_pair_lists_have_no_contradictory_lines() {
    // The rule "a pair of an image with itself, or a mismatched pair of one person, is an error"
    // holds on the real LFW list, so real data keeps running.
    let b = lfw::read_pairs(&data("lfw_pairs.txt")).unwrap();
    assert_eq!(b.pairs.len(), 6000);
}

#[test]
fn contradictory_pairs_are_errors_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "pairs.txt", "1\t1\nAbel_Pacheco\t1\t2\nAbel_Pacheco\t1\tAbel_Pacheco\t1\n");
    let e = lfw::read_pairs(&p).unwrap_err().to_string();
    assert!(e.ends_with("pairs.txt:3: mismatched pair names one person twice ('Abel_Pacheco')"), "{e}");
    let p = put(dir.path(), "pairs.txt", "1\t1\nAbel_Pacheco\t1\t1\nA\t1\tB\t1\n");
    let e = lfw::read_pairs(&p).unwrap_err().to_string();
    assert!(e.ends_with("pairs.txt:2: matched pair of image 1 of 'Abel_Pacheco' with itself"), "{e}");

    let mut text = String::new();
    for k in 0..20 {
        let (a, b, l) = if k < 10 {
            (format!("P{k}_0001"), format!("P{k}_0002"), 1)
        } else {
            (format!("N{k}_1"), format!("M{k}_1"), 0)
        };
        text += &format!("{a}.jpg {l}\n{b}.jpg {l}\n");
    }
    let p = put(dir.path(), "calfw.txt", text.replace("P3_0002", "P3_0001"));
    let e = calfw::read_pairs(&p).unwrap_err().to_string();
    assert!(e.contains("calfw.txt:8: pair 4 is image 'P3_0001.jpg' with itself"), "{e}");
    let p = put(dir.path(), "calfw.txt", text.replace("M12_1", "N12_2"));
    let e = calfw::read_pairs(&p).unwrap_err().to_string();
    assert!(e.contains("calfw.txt:26: negative pair 13 names one person twice ('N12')"), "{e}");
}

/// A small IJB release; `edit` changes one file's text before it is written.
fn ijb_release(dir: &Path, edit: impl Fn(usize, String) -> String) -> aifr_eval::Result<ijb::IjbRelease> {
    let mut faces = String::new();
    let mut lmk = String::new();
    for i in 1..=6 {
        faces += &format!("{i}.jpg {} {i}\n", (i + 1) / 2);
        lmk += &format!("{i}.jpg 38 51 73 51 56 71 41 92 70 92 0.9\n");
    }
    let texts = [
        faces,
        lmk,
        "1 2 0\n2 3 0\n1 3 1\n".to_string(),
        "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,1,img/1.jpg\n1,1,img/2.jpg\n".to_string(),
        "TEMPLATE_ID,SUBJECT_ID,FILENAME\n2,2,img/3.jpg\n".to_string(),
        "TEMPLATE_ID,SUBJECT_ID,FILENAME\n3,1,img/5.jpg\n".to_string(),
    ];
    let names = ["faces.txt", "lmk.txt", "pairs.txt", "g1.csv", "g2.csv", "probes.csv"];
    let p: Vec<PathBuf> = (0..6).map(|i| put(dir, names[i], edit(i, texts[i].clone()))).collect();
    let files = ijb::IjbFiles {
        faces: p[0].clone(),
        landmarks: p[1].clone(),
        pairs: p[2].clone(),
        one_n: Some([p[3].clone(), p[4].clone(), p[5].clone()]),
    };
    ijb::read_release(&files, ["G1", "G2"])
}

#[test]
fn ijb_self_pairs_scores_outside_0_1_and_cut_rows_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ijb_release(d, |_, t| t).unwrap();
    let e = ijb_release(d, |i, t| if i == 2 { t + "2 2 1\n" } else { t }).unwrap_err().to_string();
    assert!(e.ends_with("pairs.txt:4: template 2 is paired with itself: a comparison needs two templates"), "{e}");
    for bad in ["-1", "1e30"] {
        let e = ijb_release(d, |i, t| if i == 1 { t.replacen("0.9\n", &format!("{bad}\n"), 1) } else { t })
            .unwrap_err()
            .to_string();
        assert!(e.contains("lmk.txt:1: detector score") && e.contains("is outside [0, 1]"), "{e}");
    }
    // A gallery cut off in the middle of a row.
    let e = ijb_release(d, |i, t| if i == 3 { t[..t.len() - 12].to_string() } else { t }).unwrap_err().to_string();
    assert!(e.contains("g1.csv:3: 2 comma-separated fields where the header has 3"), "{e}");
    // A byte-order mark is stripped like everywhere else.
    ijb_release(d, |i, t| if i == 3 || i == 0 { format!("\u{feff}{t}") } else { t }).unwrap();
}

#[test]
fn agedb_labels_must_be_a_vector() {
    use agedb::ProtocolImage;
    use mat5::Value;
    let img = |name: &str, age| ProtocolImage { name: name.into(), age };
    let split = |k: u32| {
        vec![
            (img(&format!("{k}_Anna_30_f"), 30), img(&format!("{}_Anna_52_f", k + 10), 52), true),
            (img(&format!("{}_Bob_41_m", k + 20), 41), img(&format!("{}_Carl_19_m", k + 30), 19), false),
            (img(&format!("{}_Dan_20_m", k + 40), 20), img(&format!("{}_Dan_60_m", k + 50), 60), true),
            (img(&format!("{}_Eve_33_f", k + 60), 33), img(&format!("{}_Fay_34_f", k + 70), 34), false),
        ]
    };
    let mut value = agedb::protocol_value(&[split(1), split(2)]);
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "ok.mat", mat5::write(&[(agedb::VARIABLE, &value)]));
    agedb::read_protocol(&p, None).unwrap();
    // The four labels as a 2×2 matrix: read column-major, they would no longer follow the pairs.
    let Value::Cell { items, .. } = &mut value else { panic!() };
    for s in items.iter_mut() {
        let Value::Struct { items, .. } = s else { panic!() };
        for v in items[0].iter_mut() {
            if let Value::Numeric { dims, .. } = v {
                *dims = vec![2, 2];
            }
        }
    }
    // Keep the element count equal to the pairs so only the shape is wrong.
    let p = put(dir.path(), "bad.mat", mat5::write(&[(agedb::VARIABLE, &value)]));
    let e = agedb::read_protocol(&p, None).unwrap_err().to_string();
    assert!(e.contains("expected a 1×N array of labels, found 2×2"), "{e}");
}

#[test]
fn manifest_scores_structure_and_quotes_are_checked_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let read = |text: &str| Manifest::read(&put(dir.path(), "m.csv", text)).map(|m| m.len());
    let ok = "path,identity,detector_score\na.jpg,x,0.5\nb.jpg,y,1\n";
    assert_eq!(read(ok).unwrap(), 2);
    assert_eq!(read(&format!("{ok}\n")).unwrap(), 2, "one trailing blank line is fine");
    assert_eq!(read(&format!("\u{feff}{ok}\r\n\r\n")).unwrap(), 2, "BOM and CRLF blank lines too");
    let e = read(&ok.replace("0.5", "-5")).unwrap_err().to_string();
    assert!(e.ends_with("m.csv:2: detector_score must be a number in [0, 1], found '-5'"), "{e}");
    let e = read(&ok.replace("b.jpg,y,1", "b.jpg,y")).unwrap_err().to_string();
    assert!(e.ends_with("m.csv:3: 2 fields where the header has 3: 'b.jpg,y'"), "{e}");
    let e = read(&ok.replace("b.jpg,y,1", "b.jpg,y,1,extra")).unwrap_err().to_string();
    assert!(e.ends_with("m.csv:3: 4 fields where the header has 3: 'b.jpg,y,1,extra'"), "{e}");
    let e = read(&ok.replace("\nb.jpg", "\n\nb.jpg")).unwrap_err().to_string();
    assert!(e.contains("m.csv:3: blank line inside the table"), "{e}");
    let junk = "z".repeat(800_000);
    let e = read(&format!("path,identity\n\"a.jpg,x\n{junk}\n")).unwrap_err().to_string();
    assert!(e.contains("m.csv:2: a quoted field that starts on this line is never closed") && e.len() < 500, "{e}");
}

#[test]
fn megaface_lists_may_not_leave_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["/etc/passwd", "../../x.jpg"] {
        let mut paths: Vec<String> = (0..9).map(|i| format!("a/{i}.jpg")).collect();
        paths.push(bad.into());
        let p = put(dir.path(), "list.json", serde_json::json!({ "path": paths }).to_string());
        let e = megaface::read_distractor_list(&p, 10).unwrap_err().to_string();
        assert!(e.contains("entry 9 of \"path\"") && (e.contains("absolute") || e.contains("leaves")), "{e}");
    }
    // The real lists are all relative.
    megaface::read_distractor_list(&data("megaface/megaface_features_list.json_100_1"), 100).unwrap();
    megaface::read_probe_list(&data("megaface/facescrub_features_list.json")).unwrap();
}

#[test]
fn a_devkit_dimension_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let feats = dir.path().join("f");
    std::fs::create_dir_all(&feats).unwrap();
    let keys: Vec<String> = (0..3).map(|i| format!("{i}.jpg")).collect();
    // The first file is the odd one out: the message must not blame the others alone.
    for (i, k) in keys.iter().enumerate() {
        let dim = if i == 0 { 4 } else { 8 };
        put(&feats, &format!("{k}_x.bin"), megaface::encode_feature_file(&vec![0.5; dim]));
    }
    let cache = dir.path().join("cache");
    let e = import_devkit_features(&keys, &feats, "_x.bin", &cache).err().unwrap().to_string();
    assert!(e.contains("0.jpg_x.bin") && e.contains("1.jpg_x.bin") && e.contains("disagree"), "{e}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "a refused conversion leaves no .partial");
}

#[test]
fn a_refused_import_leaves_no_partial_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = npy(3, 2);
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = put(dir.path(), "e.npy", bytes);
    let k = put(dir.path(), "k.txt", "a\nb\nc\n");
    let err = import(&EmbeddingSource { embeddings: e, keys: k, flip: None }, &dir.path().join("s.aifrstore"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("row 2 (key 'c') has a non-finite value"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "only the inputs remain");
}

#[test]
fn non_files_and_oversized_inputs_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let zero = Path::new("/dev/zero");
    let e = lfw::read_pairs(zero).unwrap_err().to_string();
    assert!(e.contains("is not a regular file"), "{e}");
    assert!(read_keys(zero).unwrap_err().to_string().contains("is not a regular file"));
    assert!(mat5::read(zero).unwrap_err().to_string().contains("is not a regular file"));
    assert!(megaface::read_feature_file(zero).unwrap_err().to_string().contains("is not a regular file"));
    let e = lfw::read_pairs(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a directory"), "{e}");
    // A feature file is a few kilobytes; a 2 MB one is not what was meant.
    let big = put(dir.path(), "big.bin", vec![0u8; 2 << 20]);
    let e = megaface::read_feature_file(&big).unwrap_err().to_string();
    assert!(e.contains("a devkit feature file is at most"), "{e}");
    // Through the binary: the exit code of an unreadable input.
    let e_npy = put(dir.path(), "e.npy", npy(2, 3));
    let o = cli_import(&e_npy, dir.path(), &dir.path().join("s.aifrstore"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("is a directory") && !stderr.contains("No such device"), "{stderr}");
}

#[test]
fn byte_order_marks_are_stripped_and_messages_stay_short() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "pairs.txt", "\u{feff}1\t1\nA\t1\t2\nA\t1\tB\t1\n");
    assert_eq!(lfw::read_pairs(&p).unwrap().pairs.len(), 2);
    let k = put(dir.path(), "keys.txt", "\u{feff}a\nb\n");
    assert_eq!(read_keys(&k).unwrap(), ["a", "b"]);
    // A 5 MB line gives a message of a few hundred bytes, through the binary too.
    let junk = "x".repeat(5 << 20);
    let k = put(dir.path(), "keys.txt", format!("{junk}\nb\n{junk}\n"));
    let e = put(dir.path(), "e.npy", npy(3, 2));
    let o = cli_import(&e, &k, &dir.path().join("s.aifrstore"));
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stderr.len() < 2000, "{} bytes of stderr", o.stderr.len());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(":3: duplicate key") && stderr.contains("more bytes)"), "{stderr}");
    let src = EmbeddingSource { embeddings: e, keys: k, flip: None };
    assert!(import(&src, &dir.path().join("t.aifrstore")).is_err());
}
