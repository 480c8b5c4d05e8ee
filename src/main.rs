//! The `aifr-eval` command line: parse, call the library, print, exit with a documented code.

use aifr_eval::app::embed::{embed_benchmark, run_with_model, ModelRequest};
use aifr_eval::app::manifest::{self as manifest_app, ManifestRunRequest};
use aifr_eval::app::{self, Env, RunRequest};
use aifr_eval::config::{FlipChoice, Registry};
use aifr_eval::demo;
use aifr_eval::embed::extract::ExtractOptions;
use aifr_eval::error::{exit, Error};
use aifr_eval::gate::{self, GateConfig};
use aifr_eval::io::write_atomic;
use aifr_eval::metrics::FoldMode;
use aifr_eval::protocol::manifest::build::{BuildSpec, GalleryChoice};
use aifr_eval::report::write_report;
use aifr_eval::run::dir::RunData;
use aifr_eval::store::import::{import, EmbeddingSource};
use aifr_eval::store::EmbeddingStore;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  internal error (a bug: please report it)
  2  usage or configuration error (bad flag, unknown benchmark, invalid datasets.toml/protocol)
  3  invalid input data (malformed pairs file, corrupt .bin/.npy/store, missing keys, NaN embeddings)
  4  a required input file is missing or unreadable
  5  an output file could not be written (nothing partial is left behind)
  6  gate: the run regressed against its baseline";

/// `--version`: the optional features this binary was built with (is it a CUDA build?) and the
/// commit it was built from (build.rs).
const VERSION: &str = match (cfg!(feature = "cuda"), cfg!(feature = "onnx")) {
    (true, true) => {
        concat!(env!("CARGO_PKG_VERSION"), " (features: cuda, onnx; commit ", env!("AIFR_EVAL_COMMIT"), ")")
    }
    (true, false) => concat!(env!("CARGO_PKG_VERSION"), " (features: cuda; commit ", env!("AIFR_EVAL_COMMIT"), ")"),
    (false, true) => concat!(env!("CARGO_PKG_VERSION"), " (features: onnx; commit ", env!("AIFR_EVAL_COMMIT"), ")"),
    (false, false) => concat!(env!("CARGO_PKG_VERSION"), " (features: none; commit ", env!("AIFR_EVAL_COMMIT"), ")"),
};

#[derive(Parser, Debug)]
#[command(
    name = "aifr-eval",
    version = VERSION,
    about = "Exact, fast, reproducible evaluation of face-recognition models: LFW family, AgeDB, CACD-VS, FG-NET, RFW, IJB-B/C, MegaFace",
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct GlobalArgs {
    /// Directory holding the benchmarks (each under the `root` given in datasets.toml).
    #[arg(long, global = true, env = "AIFR_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// A datasets.toml to use instead of the built-in registry.
    #[arg(long, global = true, env = "AIFR_DATASETS")]
    datasets: Option<PathBuf>,
    /// Where converted embedding stores are cached [default: $XDG_CACHE_HOME/aifr-eval or ~/.cache/aifr-eval].
    #[arg(long, global = true, env = "AIFR_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Use embedding stores (given or cached) without checking their content hash first. The
    /// check reads the whole store once (2 s for 1M × 512 float32 on 2 cores); skip it only for stores
    /// you made yourself on this machine.
    #[arg(long, global = true)]
    trust_store: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate embeddings on a benchmark and write results.json.
    #[command(after_help = "Examples:
  aifr-eval run lfw --embeddings emb.npy --keys keys.txt
  aifr-eval run lfw --embeddings emb.npy --keys keys.txt --flip-embeddings emb_flip.npy --mode insightface
  aifr-eval run agedb30 --embeddings agedb_emb.npy          # .bin packs: rows in pack order, no key file
  aifr-eval run calfw --embeddings store.aifrstore --mode facexzoo --out reports/calfw-r50
  aifr-eval run rfw --embeddings rfw.npy --keys rfw_keys.txt   # four subsets, differentials at one threshold
  aifr-eval run --manifest faces.csv --embeddings emb.npy --keys keys.txt --stratify camera
  aifr-eval run --manifest faces.csv --protocol-dir faces-protocol --min-age-gap 10 --embeddings faces.aifrstore")]
    Run(RunArgs),
    /// Your own collection: validate a manifest, build age-aware protocols from it, export the demo's.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Compute a benchmark's embeddings with a network into an embedding store (resumable; a
    /// finished store for the same model and images is reused).
    #[command(after_help = "Examples:
  aifr-eval embed lfw --model .models/dlib_face_recognition_resnet_model_v1.dat
  aifr-eval embed lfw --model backbone.pth --device cuda:0 --dtype f16      # arcface_torch IResNet/MobileFaceNet
  aifr-eval embed agedb30 --model ms1mv3_r50.pth --arch r50 -o agedb_r50.aifrstore
  aifr-eval run agedb30 --embeddings agedb_r50.aifrstore     # evaluate a store later

Killed or interrupted, the same command continues where it stopped. Unreadable images stop the run
(exit 4 missing, 3 corrupt) unless --skip-bad-images records them in the store's record; protocols then
exclude the pairs that use them and say so in results.json.")]
    Embed(EmbedArgs),
    /// List every benchmark in datasets.toml and which of its files are present.
    Datasets,
    /// Generate the synthetic benchmark and evaluate it end to end (no downloads).
    #[command(after_help = "Example:\n  aifr-eval demo                 # writes reports/demo/results.json")]
    Demo(DemoArgs),
    /// Convert .npy/.safetensors embeddings plus a key list into an embedding store.
    #[command(
        after_help = "Example:\n  aifr-eval import --embeddings emb.npy --keys keys.txt --output lfw_r50.aifrstore"
    )]
    Import(ImportArgs),
    /// Write an HTML report (PNG charts, Markdown/LaTeX summary) for one or more run directories.
    #[command(after_help = "Examples:
  aifr-eval report reports/lfw                          # one run: reports/lfw/report.html
  aifr-eval report reports/lfw-r50 reports/lfw-mbf      # compare: reports/compare/index.html
  aifr-eval report runs/* --out reports/paper")]
    Report(ReportArgs),
    /// Compare a run with a baseline and fail (exit 6) when a metric regressed beyond tolerance.
    #[command(
        after_help = "A metric regresses when it is worse than the baseline by more than its tolerance and the paired
bootstrap interval of the difference lies on the worse side of zero (rules: gate.toml, override with
--config). Runs on different benchmarks, protocols, modes or flip fusion are an error, not a pass.

Examples:
  aifr-eval gate reports/lfw --baseline baselines/lfw --markdown gate.md --junit gate.xml
  aifr-eval gate reports/demo --baseline tests/baselines/demo --exact    # any changed number fails
  aifr-eval gate reports/lfw --baseline baselines/lfw --update           # accept this run as the new baseline

Exit codes: 0 pass, 6 regression, 2/3/4 unusable input (see aifr-eval --help)."
    )]
    Gate(GateArgs),
    /// MegaFace Challenge 1: FGNet or FaceScrub probes among 10 … 1,000,000 distractors.
    #[command(
        after_help = "Embeddings come from stores (or .npy + keys) whose keys are the devkit list paths, or from
the devkit's per-image feature files (--feature-suffix). Every ordered pair of same-identity probe
images is one search; rank = distractors scoring strictly above the mate (ties go to the mate).

Examples:
  aifr-eval megaface --distractors 1m --embeddings fgnet.aifrstore --distractor-embeddings megaface.aifrstore
  aifr-eval megaface --probe facescrub --distractors 10k --distractors 1m --clean insightface \
      --embeddings facescrub.npy --keys facescrub_keys.txt --distractor-embeddings mf.aifrstore
  aifr-eval megaface --distractors 100k --feature-suffix _arcface.bin      # devkit feature files
  aifr-eval megaface --distractors 1m --embeddings all.aifrstore --score-device cuda   # on the GPU
  aifr-eval megaface --distractors 1m --embeddings all.aifrstore --distractor-shard 2/8 --part p/2.safetensors
  aifr-eval megaface merge p/*.safetensors --out reports/megaface_fgnet   # join the 8 slices",
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Megaface(MegafaceArgs),
    /// Check an embedding store (header, size, content hash) and print what it holds.
    #[command(after_help = "Example:\n  aifr-eval verify-store lfw_r50.aifrstore")]
    VerifyStore { store: PathBuf },
    /// Work on embedding stores: merge the pieces of a sharded `embed`.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print a shell completion script to standard output.
    #[command(after_help = "Examples:
  aifr-eval completions bash > ~/.local/share/bash-completion/completions/aifr-eval
  aifr-eval completions zsh > ~/.zfunc/_aifr-eval          # a folder on $fpath
  aifr-eval completions fish > ~/.config/fish/completions/aifr-eval.fish")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    #[command(after_help = "Examples:
  aifr-eval man | man -l -
  aifr-eval man > ~/.local/share/man/man1/aifr-eval.1")]
    Man,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// The project's strict definitions (docs/protocols.md §1.3.1).
    Strict,
    /// Reproduce insightface's verification.py (docs/protocols.md §1.3.2).
    Insightface,
    /// Reproduce FaceX-Zoo's LFW evaluator (docs/protocols.md §1.3.3).
    Facexzoo,
}

/// Flip-fusion rule (docs/protocols.md §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flip {
    /// `sum` when the embeddings include mirrored images, otherwise `none`.
    Auto,
    /// normalize(e + e_flip), raw embeddings summed (insightface).
    Sum,
    /// normalize([e, e_flip]), raw embeddings concatenated.
    Concat,
    /// The image's own embedding only (FaceX-Zoo).
    None,
}

impl From<Flip> for FlipChoice {
    fn from(f: Flip) -> Self {
        match f {
            Flip::Auto => FlipChoice::Auto,
            Flip::Sum => FlipChoice::Sum,
            Flip::Concat => FlipChoice::Concat,
            Flip::None => FlipChoice::None,
        }
    }
}

/// Where each gallery image of a manifest run comes from.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Gallery {
    /// The youngest image of each identity (ties: smallest path); probes are older.
    Youngest,
    /// The oldest image of each identity (ties: largest path); probes are younger.
    Oldest,
    /// Without ages: the identity's first image by path.
    First,
}

impl From<Gallery> for GalleryChoice {
    fn from(g: Gallery) -> Self {
        match g {
            Gallery::Youngest => GalleryChoice::Youngest,
            Gallery::Oldest => GalleryChoice::Oldest,
            Gallery::First => GalleryChoice::First,
        }
    }
}

/// MegaFace noise cleaning (docs/protocols.md §4.4).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Clean {
    /// The official devkit: no cleaning.
    None,
    /// Noisy distractors can never outrank a mate; a noisy probe becomes its identity centre plus
    /// a tiny seeded jitter.
    Insightface,
    /// Noisy distractors become zero vectors (score 0); a noisy probe becomes its identity centre.
    Facexzoo,
}

impl From<Clean> for aifr_eval::protocol::megaface::Cleaning {
    fn from(c: Clean) -> Self {
        use aifr_eval::protocol::megaface::Cleaning;
        match c {
            Clean::None => Cleaning::None,
            Clean::Insightface => Cleaning::Insightface,
            Clean::Facexzoo => Cleaning::Facexzoo,
        }
    }
}

impl From<Mode> for FoldMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Strict => FoldMode::Strict,
            Mode::Insightface => FoldMode::Insightface,
            Mode::Facexzoo => FoldMode::Facexzoo,
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Benchmark name from datasets.toml (see `aifr-eval datasets`); omit with --manifest.
    #[arg(required_unless_present = "manifest", conflicts_with = "manifest")]
    benchmark: Option<String>,
    /// Embeddings: an .aifrstore, or an N×D .npy (f32/f16/f64) or .safetensors file.
    #[arg(long, required_unless_present_any = ["loo_embeddings", "model"], conflicts_with_all = ["loo_embeddings", "model"])]
    embeddings: Option<PathBuf>,
    /// Compute the embeddings with this network first (see `aifr-eval embed`).
    #[command(flatten)]
    model: ModelArgs,
    /// FG-NET leave-one-person-out with one model per held-out subject: a directory with
    /// `<subject>.npy` (e.g. `001.npy`, optional `001_flip.npy`) and `keys.txt`, or `<subject>.aifrstore`.
    #[arg(long, value_name = "DIR")]
    loo_embeddings: Option<PathBuf>,
    /// Text file with the image key of each embedding row (LFW: `<name>/<name>_<nnnn>.jpg`).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Embeddings of the horizontally mirrored images, same rows as --embeddings.
    #[arg(long)]
    flip_embeddings: Option<PathBuf>,
    /// Threshold procedure for k-fold accuracy [default: from the protocol file, strict] (see docs/protocols.md §1.3).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Flip fusion [default: from the protocol file for the mode] (see docs/protocols.md §1.2).
    #[arg(long, value_enum)]
    flip: Option<Flip>,
    /// A protocol file to use instead of the built-in protocols/pair_verification.toml.
    #[arg(long)]
    protocol_file: Option<PathBuf>,
    /// Ages for the age-gap analysis and the age-band differentials: a text file with `<image key> <age>` per line [default:
    /// the AgeDB protocol .mat, else AgeDB (`<id>_<name>_<age>_<gender>.jpg`) or FG-NET (`001A02.JPG`) file names].
    #[arg(long)]
    ages: Option<PathBuf>,
    /// Output directory [default: reports/<benchmark>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    manifest: ManifestRunArgs,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Your own collection (--manifest)")]
struct ManifestRunArgs {
    /// Evaluate the images listed in a manifest (CSV, TSV or Parquet with columns path, identity
    /// and optionally age, group, …) instead of a registered benchmark; embedding keys are its paths.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Protocol files written by `aifr-eval manifest build` [default: built now with --seed into <out>/protocol].
    #[arg(long, value_name = "DIR", requires = "manifest")]
    protocol_dir: Option<PathBuf>,
    /// Evaluate this pairs file instead of the protocol's pairs.txt: pairs.txt layout with two
    /// manifest paths per line, or LFW's own `name n1 n2` / `name1 n1 name2 n2` lines.
    #[arg(long, value_name = "FILE", requires = "manifest")]
    pairs: Option<PathBuf>,
    /// Evaluate the age-gap-controlled pairs (genuine pairs at least this many years apart,
    /// impostors matched on age) instead of the plain pairs.
    #[arg(long, value_name = "YEARS", requires = "manifest")]
    min_age_gap: Option<u32>,
    /// Identification gallery: each identity's youngest or oldest image (first: by path, without ages).
    #[arg(long, value_enum, requires = "manifest")]
    gallery: Option<Gallery>,
    /// Also break every result down by this manifest column (repeatable; `group` always is).
    #[arg(long, value_name = "COLUMN", requires = "manifest")]
    stratify: Vec<String>,
    /// Seed of the protocol built when no --protocol-dir is given.
    #[arg(long, default_value_t = manifest_app::DEFAULT_SEED)]
    seed: u64,
    /// Matched (= mismatched) pairs per fold of a protocol built now [default: up to 300].
    #[arg(long, value_name = "N", requires = "manifest")]
    pairs_per_fold: Option<usize>,
    /// Age-matched impostors: each image within this many years of its genuine pair's.
    #[arg(long, value_name = "YEARS", default_value_t = 2)]
    age_tolerance: u32,
    /// Leave-one-image-out rank-1 compares every image with every other: skipped above this many images.
    #[arg(long, value_name = "N", default_value_t = manifest_app::DEFAULT_LOO_MAX_IMAGES)]
    loo_max_images: usize,
}

#[derive(Subcommand, Debug)]
enum ManifestCommand {
    /// Validate a manifest and print a summary (images, identities, age histogram, groups).
    #[command(
        after_help = "A manifest is a table, one image per row: columns `path` (relative to the dataset root) and
`identity`, optional `age` (whole years), `landmarks` (10 numbers: x y of 5 points), `detector_score`,
`group` (e.g. a site or camera) and any other column (kept; usable with `run --stratify`).
Format from the extension: .csv, .tsv, .parquet.

Errors (exit 3): missing columns or cells, duplicate paths, absolute paths or `..` leaving the root,
ages outside 0..130. Missing files under the root: exit 4, after the summary. Identities with a
single image are a warning (they serve only as gallery entries and impostors).

Examples:
  aifr-eval manifest check faces.csv                      # files looked up next to faces.csv
  aifr-eval manifest check faces.parquet --root /data/faces
  aifr-eval manifest check faces.csv --skip-files         # the table alone"
    )]
    Check {
        /// The manifest (.csv, .tsv or .parquet).
        file: PathBuf,
        /// Dataset root the paths are relative to [default: the manifest's directory].
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Validate the table only; do not look for the image files.
        #[arg(long)]
        skip_files: bool,
    },
    /// Build verification pairs and identification splits from a manifest, as shareable files.
    #[command(after_help = "Writes into --out:
  pairs.txt               10 identity-disjoint folds in LFW's pairs.txt layout (`<folds>\t<n>` header,
                          then per fold n matched and n mismatched lines `<path a>\t<path b>`)
  pairs_min_gap_<G>.txt   per --min-age-gap: genuine pairs at least G years apart, each impostor pair
                          matched on age (each image within --age-tolerance of its genuine pair's)
  gallery_<g>.txt, probes_<g>.txt
                          closed-set identification: g = youngest and oldest image of each identity
                          (first by path when the manifest has no ages), probes = the other images
  protocol.json           seed, folds, tolerance, method, the manifest's fingerprint, each file's blake3
The same manifest and seed give byte-identical files, whatever the row order or thread count.

Examples:
  aifr-eval manifest build faces.csv --out faces-protocol
  aifr-eval manifest build faces.csv --out faces-protocol --seed 3 --min-age-gap 5,10,20,30
  aifr-eval run --manifest faces.csv --protocol-dir faces-protocol --min-age-gap 30 --embeddings e.npy --keys k.txt")]
    Build {
        /// The manifest (.csv, .tsv or .parquet).
        file: PathBuf,
        /// Directory to write the protocol files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = manifest_app::DEFAULT_SEED)]
        seed: u64,
        /// Identity-disjoint folds.
        #[arg(long, default_value_t = 10)]
        folds: usize,
        /// Matched (= mismatched) pairs per fold [default: as many as every fold allows, at most 300].
        #[arg(long, value_name = "N")]
        pairs_per_fold: Option<usize>,
        /// Also build age-gap-controlled pairs for each gap, in years (e.g. 5,10,20,30 like AgeDB).
        #[arg(long, value_name = "YEARS", value_delimiter = ',')]
        min_age_gap: Vec<u32>,
        /// Age-matched impostors: each image within this many years of its genuine pair's.
        #[arg(long, value_name = "YEARS", default_value_t = 2)]
        age_tolerance: u32,
    },
    /// Write the synthetic ageing cohort with its manifest (the demo, as your own collection).
    #[command(after_help = "Example:
  aifr-eval manifest export-demo --out demo-cohort
  aifr-eval run --manifest demo-cohort/manifest.csv --embeddings demo-cohort/embeddings/embeddings.npy \\
      --keys demo-cohort/embeddings/keys.txt --flip-embeddings demo-cohort/embeddings/embeddings_flip.npy")]
    ExportDemo {
        /// Directory for the cohort (manifest.csv, embeddings/, lfw/pairs.txt).
        #[arg(long, value_name = "DIR", default_value = "reports/demo-manifest")]
        out: PathBuf,
        /// Seed of the synthetic cohort.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProbeSet {
    /// FG-NET (82 subjects aged 0–69): the age-invariance benchmark.
    Fgnet,
    /// FaceScrub (3,530 images of 80 celebrities).
    Facescrub,
}

#[derive(Subcommand, Debug)]
enum MegafaceCommand {
    /// Join the parts of a split scan (--distractor-shard) into the run directory one machine
    /// would write: runs the shards' own command (recorded in the parts) with --merge.
    #[command(after_help = "Example:
  aifr-eval megaface merge parts/megaface-*-of-8.safetensors --out reports/megaface_fgnet

The parts must be every slice of one split. The command runs in the shards' working directory
with their arguments; AIFR_* variables the shards had and this environment lacks are taken from
the parts. Equivalent: the shards' megaface command with --merge PARTS instead of
--distractor-shard/--part (docs/sharding.md).")]
    Merge {
        /// The part files, one per slice.
        #[arg(required = true, value_name = "PART")]
        parts: Vec<PathBuf>,
        /// Output directory [default: the shards' --out, else reports/megaface_<probe>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct MegafaceArgs {
    #[command(subcommand)]
    command: Option<MegafaceCommand>,
    /// Probe set: chooses the datasets.toml entry megaface_fgnet or megaface_facescrub.
    #[arg(long, value_enum, default_value = "fgnet")]
    probe: ProbeSet,
    /// Distractor set size(s): 10, 100, 1k, 10k, 100k, 1m; repeat or comma-separate for several.
    #[arg(long, required = true, value_delimiter = ',')]
    distractors: Vec<String>,
    /// Noise cleaning with insightface's noise lists (recorded in the results; see docs/protocols.md §4.4).
    #[arg(long, value_enum, default_value = "none")]
    clean: Clean,
    /// Probe embeddings (.aifrstore, or .npy/.safetensors with --keys); keys are the probe list paths.
    #[arg(long, required_unless_present_any = ["feature_suffix", "model"], conflicts_with_all = ["feature_suffix", "model"])]
    embeddings: Option<PathBuf>,
    /// Row keys of --embeddings (.npy/.safetensors only).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Mirrored-image embeddings, same rows as --embeddings.
    #[arg(long)]
    flip_embeddings: Option<PathBuf>,
    /// Distractor embeddings [default: --embeddings holds both]; keys are the distractor list paths.
    #[arg(long)]
    distractor_embeddings: Option<PathBuf>,
    #[arg(long)]
    distractor_keys: Option<PathBuf>,
    #[arg(long)]
    distractor_flip_embeddings: Option<PathBuf>,
    /// Read the devkit's per-image feature files `<list path><SUFFIX>` instead (e.g. `_arcface.bin`);
    /// they are converted once into cached stores.
    #[arg(long, value_name = "SUFFIX", conflicts_with = "model")]
    feature_suffix: Option<String>,
    /// Directory of the probe feature files [default: the dataset's probe_features entry].
    #[arg(long, requires = "feature_suffix")]
    probe_features: Option<PathBuf>,
    /// Directory of the distractor feature files [default: the dataset's distractor_features entry].
    #[arg(long, requires = "feature_suffix")]
    distractor_features: Option<PathBuf>,
    /// Noise lists [default: the dataset's probe_noise / distractor_noise entries].
    #[arg(long)]
    probe_noise: Option<PathBuf>,
    #[arg(long)]
    distractor_noise: Option<PathBuf>,
    /// Flip fusion [default: from protocols/megaface.toml] (see docs/protocols.md §1.2).
    #[arg(long, value_enum)]
    flip: Option<Flip>,
    /// A protocol file to use instead of the built-in protocols/megaface.toml.
    #[arg(long)]
    protocol_file: Option<PathBuf>,
    /// Output directory [default: reports/megaface_<probe>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where probe × distractor scores are computed: cpu (faer, all cores) or cuda / cuda:N
    /// (cuBLAS through candle; needs a binary built with --features cuda). Scores of the two may
    /// differ in the last bits; the kernel is recorded in results.json.
    /// [default: --device with --model, else cpu]
    #[arg(long, value_name = "DEVICE")]
    score_device: Option<String>,
    /// Scan only the K-th (from 0) of N slices of the distractors and write its part to --part;
    /// `auto/N` takes K from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AIFR_SHARD_INDEX.
    /// Join the parts with the same command and --merge (docs/sharding.md).
    #[arg(long, value_name = "K/N", requires = "part", conflicts_with = "merge")]
    distractor_shard: Option<String>,
    /// Where --distractor-shard writes its part (a small safetensors file).
    #[arg(long, value_name = "FILE", requires = "distractor_shard")]
    part: Option<PathBuf>,
    /// Join the parts of every slice (written by --distractor-shard) instead of scanning the
    /// distractors: the run directory equals a single machine's, number for number.
    #[arg(long, value_name = "PART", num_args = 1.., value_delimiter = ',')]
    merge: Vec<PathBuf>,
    /// Or compute the embeddings: probe images under the dataset's `images` entry and distractor
    /// images under `distractor_images`, used as they are on disk (aligned crops such as
    /// insightface's MegaFace test pack) and resized to the network's input.
    #[command(flatten)]
    model: ModelArgs,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct ModelArgs {
    /// Network weights (.safetensors, .pth state dict, dlib .dat, .onnx): compute the embeddings.
    #[arg(long, value_name = "WEIGHTS")]
    model: Option<PathBuf>,
    /// Architecture of --model: iresnet18/34/50/100/200 (r18…r200), mobilefacenet (mbf),
    /// mobilefacenet-large, liaad-student, dlib-resnet, test-net, onnx (.onnx graphs; needs a binary
    /// built with --features onnx). Read off the file when omitted (state-dict keys and shapes;
    /// dlib's header; the .onnx extension); when given it must agree with the file.
    #[arg(long, requires = "model")]
    arch: Option<String>,
    /// Where the network runs: cpu, cuda or cuda:N (cuda needs a binary built with --features cuda).
    #[arg(long, default_value = "cpu", requires = "model")]
    device: String,
    /// Arithmetic of the network: f32, f16 or bf16 (embeddings are stored as f32).
    #[arg(long, default_value = "f32", requires = "model")]
    dtype: String,
    /// Images per network call.
    #[arg(long, default_value_t = 64, requires = "model")]
    batch_size: usize,
    /// Record unreadable or corrupt images and go on; pairs using them are excluded and counted.
    #[arg(long, requires = "model")]
    skip_bad_images: bool,
}

impl ModelArgs {
    fn request(&self, flip: bool, quiet: bool) -> Option<ModelRequest> {
        Some(ModelRequest {
            weights: self.model.clone()?,
            arch: self.arch.clone(),
            device: self.device.clone(),
            dtype: self.dtype.clone(),
            options: ExtractOptions {
                batch_size: self.batch_size,
                flip,
                skip_bad_images: self.skip_bad_images,
                progress: !quiet,
                shard: None,
                stop_after_batches: None,
            },
        })
    }
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Join the pieces of `embed --shard K/N` into the store an unsharded run writes (byte for
    /// byte); refuses a missing, duplicated or foreign piece.
    #[command(after_help = "Example:
  for k in 0 1 2 3; do aifr-eval embed lfw --model r50.pth --shard $k/4 -o parts/lfw-$k.aifrstore; done
  aifr-eval store merge parts/lfw-*.aifrstore -o lfw_r50.aifrstore
  aifr-eval run lfw --embeddings lfw_r50.aifrstore

On Slurm and Kubernetes, --shard auto/N reads the task index: docs/sharding.md.")]
    Merge {
        /// The pieces (`.aifrstore` files written by `embed --shard`, each with its .meta.json).
        #[arg(required = true)]
        pieces: Vec<PathBuf>,
        /// The merged store to write.
        #[arg(long, short, required = true)]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
struct EmbedArgs {
    /// Benchmark name from datasets.toml (see `aifr-eval datasets`).
    benchmark: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Do not embed the mirrored images (the store then has no flip view).
    #[arg(long)]
    no_flip: bool,
    /// The store to write [default: in the cache directory, named by the inputs' fingerprint].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Embed only the K-th of N slices of the images (K from 0) into a piece of its own;
    /// `auto/N` takes K from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AIFR_SHARD_INDEX.
    /// Join the pieces with `aifr-eval store merge` (docs/sharding.md).
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Output directory for the generated data and the results.
    #[arg(long, default_value = "reports/demo")]
    out: PathBuf,
    /// Seed of the synthetic benchmark.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Threshold procedure for k-fold accuracy (see docs/protocols.md §1.3).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run directories (each holding results.json), or results.json files.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output directory [default: the run directory for one run, reports/compare for several].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct GateArgs {
    /// Run directory (or its results.json) to check.
    run: PathBuf,
    /// Baseline run directory (or its results.json).
    #[arg(long)]
    baseline: PathBuf,
    /// Gate rules; replaces the built-in gate.toml as a whole.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Require bit-identical results.json (except `software`), curves.json and pair_scores.npy.
    #[arg(long)]
    exact: bool,
    /// Write a Markdown summary (for a CI job summary or a pull-request comment).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Write JUnit XML (one test case per metric).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Make RUN the new baseline instead of gating.
    #[arg(long)]
    update: bool,
}

#[derive(Args, Debug)]
struct ImportArgs {
    #[arg(long)]
    embeddings: PathBuf,
    #[arg(long)]
    keys: PathBuf,
    #[arg(long)]
    flip_embeddings: Option<PathBuf>,
    /// The store file to write.
    #[arg(long, short)]
    output: PathBuf,
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("aifr-eval"))
        .unwrap_or_else(|| PathBuf::from(".aifr-cache"))
}

fn env(global: &GlobalArgs) -> Result<Env, Error> {
    let registry = match &global.datasets {
        Some(p) => Registry::from_file(p)?,
        None => Registry::builtin()?,
    };
    Ok(Env {
        data_dir: global.data_dir.clone(),
        registry,
        cache_dir: global.cache_dir.clone().unwrap_or_else(default_cache_dir),
        trust_store: global.trust_store,
    })
}

fn print_run(r: &app::RunReport) {
    print!("{}", r.table);
    println!("  wrote {} and {} ({:.2} s)", r.results_path.display(), r.report.display(), r.timings.total_seconds);
}

/// The evaluation request of `run`, for a registered benchmark or a manifest.
fn run_request(a: &RunArgs, benchmark: String, default_out: PathBuf) -> RunRequest {
    RunRequest {
        benchmark,
        per_subject_models: a.loo_embeddings.is_some(),
        embeddings: a.embeddings.clone().or_else(|| a.loo_embeddings.clone()).unwrap_or_default().into(),
        keys: a.keys.clone(),
        flip_embeddings: a.flip_embeddings.clone(),
        mode: a.mode.map(Into::into),
        flip: a.flip.map(Into::into),
        protocol_file: a.protocol_file.clone(),
        ages: a.ages.clone(),
        out_dir: a.out.clone().unwrap_or(default_out),
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Run(a) if a.manifest.manifest.is_some() => {
            let env = env(&cli.global)?;
            let manifest = a.manifest.manifest.clone().unwrap_or_default();
            let stem = manifest.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let run = run_request(&a, "manifest".into(), PathBuf::from("reports").join(format!("manifest-{stem}")));
            let m = a.manifest;
            let req = ManifestRunRequest {
                manifest,
                protocol_dir: m.protocol_dir,
                pairs: m.pairs,
                min_age_gap: m.min_age_gap,
                gallery: m.gallery.map(Into::into),
                stratify: m.stratify,
                seed: m.seed,
                pairs_per_fold: m.pairs_per_fold,
                age_tolerance: m.age_tolerance,
                loo_max_images: m.loo_max_images,
                run,
            };
            let r = manifest_app::run_manifest(&env, &req)?;
            if !a.quiet {
                print_run(&r);
            }
        }
        Command::Run(a) => {
            let env = env(&cli.global)?;
            let benchmark = a.benchmark.clone().unwrap_or_default();
            // The mirrored images are embedded unless flip fusion is switched off.
            let model = a.model.request(a.flip != Some(Flip::None), a.quiet);
            let out = PathBuf::from("reports").join(&benchmark);
            let req = run_request(&a, benchmark, out);
            let r = match model {
                Some(m) => {
                    let (embedded, r) = run_with_model(&env, &req, &m)?;
                    if !a.quiet {
                        println!("{}", embedded.summary());
                    }
                    r.ok_or_else(|| Error::Invalid("embedding stopped before the end".into()))?
                }
                None => app::run_benchmark(&env, &req)?,
            };
            if !a.quiet {
                print_run(&r);
            }
        }
        Command::Embed(a) => {
            let env = env(&cli.global)?;
            let Some(mut model) = a.model.request(!a.no_flip, a.quiet) else {
                return Err(Error::Config(
                    "embed needs --model WEIGHTS (and --arch NAME when the file does not say)".into(),
                ));
            };
            model.options.shard = a.shard.as_deref().map(aifr_eval::embed::shard::Shard::parse).transpose()?;
            let r = embed_benchmark(&env, &a.benchmark, &model, a.output.as_deref())?;
            if !a.quiet {
                println!("{}", r.summary());
                println!("  model {} fingerprint {}", r.arch, r.model_fingerprint);
            }
        }
        Command::Datasets => {
            let env = env(&cli.global)?;
            print!("{}", app::datasets::listing(&env));
        }
        Command::Demo(a) => {
            let spec = demo::DemoSpec { seed: a.seed, ..Default::default() };
            println!("synthetic benchmark (seed {}) in {}", a.seed, a.out.join("data").display());
            app::demo::run_all(&spec, &a.out, a.mode.map(Into::into), &mut |r| print_run(r))?;
        }
        Command::Manifest(ManifestCommand::Check { file, root, skip_files }) => {
            let (m, summary) = manifest_app::check(&file, root.as_deref(), !skip_files)?;
            print!("{}", summary.render(&m.source));
            if let Some(missing) = summary.missing_files.as_ref().filter(|v| !v.is_empty()) {
                let root = root.unwrap_or_else(|| manifest_app::default_root(&file));
                return Err(Error::Missing(format!(
                    "{} of the {} files listed in {} are missing under {} (first: '{}'); fix the paths or give --root",
                    missing.len(),
                    m.len(),
                    file.display(),
                    root.display(),
                    missing[0]
                )));
            }
        }
        Command::Manifest(ManifestCommand::Build {
            file,
            out,
            seed,
            folds,
            pairs_per_fold,
            min_age_gap,
            age_tolerance,
        }) => {
            let spec = BuildSpec { seed, folds, pairs_per_fold, min_age_gaps: min_age_gap, age_tolerance };
            let desc = manifest_app::build(&file, &out, &spec)?;
            println!(
                "{}: {} images of {} identities; seed {seed}, {folds} identity-disjoint folds",
                file.display(),
                desc.manifest.rows,
                desc.manifest.identities
            );
            for f in &desc.files {
                let what = match (f.min_age_gap, f.pairs_per_fold, f.lines) {
                    (Some(0), Some(n), _) => format!("{n} matched + {n} mismatched pairs per fold"),
                    (Some(g), Some(n), _) => format!("{n} + {n} pairs per fold, genuine pairs {g}+ years apart"),
                    (_, _, Some(n)) => format!("{n} {}", f.role),
                    _ => f.role.clone(),
                };
                println!("  wrote {}  ({what})", out.join(&f.file).display());
            }
            println!("  wrote {}", out.join("protocol.json").display());
        }
        Command::Manifest(ManifestCommand::ExportDemo { out, seed }) => {
            let files = demo::generate(&demo::DemoSpec { seed, ..Default::default() }, &out)?;
            let e = |p: &PathBuf| p.display().to_string();
            println!("synthetic ageing cohort (seed {seed}): {}", e(&files.manifest));
            println!(
                "  evaluate it: aifr-eval run --manifest {} --embeddings {} --keys {} --flip-embeddings {}",
                e(&files.manifest),
                e(&files.embeddings),
                e(&files.keys),
                e(&files.flip_embeddings)
            );
            println!("  (add --pairs {} to evaluate the built-in LFW-layout pairs)", e(&files.pairs));
        }
        Command::Report(a) => {
            let runs = a.runs.iter().map(|p| RunData::load(p)).collect::<Result<Vec<_>, _>>()?;
            let (out, index) = match (&a.out, runs.as_slice()) {
                (Some(o), _) => (o.clone(), "index.html"),
                (None, [one]) => (one.dir.clone(), "report.html"),
                (None, _) => (PathBuf::from("reports/compare"), "index.html"),
            };
            let written = write_report(&runs, &out, index)?;
            for p in &written {
                println!("wrote {}", p.display());
            }
        }
        Command::Import(a) => {
            let src = EmbeddingSource { embeddings: a.embeddings, keys: a.keys, flip: a.flip_embeddings };
            let s = import(&src, &a.output)?;
            println!(
                "wrote {}: {} rows × {} ({}), flip {}, fingerprint {}",
                s.path().display(),
                s.len(),
                s.dim(),
                s.header().dtype.name(),
                s.has_flip(),
                s.fingerprint()
            );
        }
        Command::Gate(a) => {
            if a.update {
                gate::update_baseline(&a.run, &a.baseline)?;
                println!("baseline {} updated from {}", a.baseline.display(), a.run.display());
                return Ok(exit::OK);
            }
            let cfg = match &a.config {
                Some(p) => GateConfig::from_file(p)?,
                None => GateConfig::builtin()?,
            };
            let cfg = if a.exact { cfg.with_exact(true) } else { cfg };
            let baseline = RunData::load(&a.baseline).map_err(|e| match e {
                Error::Read { .. } => {
                    Error::Missing(format!("{e} (to create the baseline: aifr-eval gate RUN --baseline DIR --update)"))
                }
                e => e,
            })?;
            let outcome = gate::gate(&RunData::load(&a.run)?, &baseline, &cfg)?;
            print!("{}", outcome.table());
            // Write the summaries before exiting: CI needs them most when the gate fails.
            if let Some(p) = &a.markdown {
                write_atomic(p, outcome.markdown().as_bytes())?;
            }
            if let Some(p) = &a.junit {
                write_atomic(p, outcome.junit_xml().as_bytes())?;
            }
            return Ok(outcome.exit_code());
        }
        Command::Megaface(MegafaceArgs { command: Some(MegafaceCommand::Merge { parts, out }), .. }) => {
            return megaface_merge(&parts, out.as_deref());
        }
        Command::Megaface(a) => {
            let env = env(&cli.global)?;
            let benchmark = match a.probe {
                ProbeSet::Fgnet => "megaface_fgnet",
                ProbeSet::Facescrub => "megaface_facescrub",
            };
            let sizes = a
                .distractors
                .iter()
                .map(|s| aifr_eval::dataset::megaface::parse_size(s))
                .collect::<Result<Vec<_>, _>>()?;
            let flip_views = a.flip != Some(Flip::None);
            let embeddings = match (a.embeddings, a.feature_suffix) {
                (None, None) if a.model.model.is_some() => {
                    let model = a
                        .model
                        .request(flip_views, a.quiet)
                        .ok_or_else(|| Error::Config("--model is missing".into()))?;
                    app::MegafaceEmbeddingsSource::Model(Box::new(model))
                }
                (Some(probes), None) => app::MegafaceEmbeddingsSource::Files {
                    probes,
                    keys: a.keys,
                    flip: a.flip_embeddings,
                    distractors: a.distractor_embeddings,
                    distractor_keys: a.distractor_keys,
                    distractor_flip: a.distractor_flip_embeddings,
                },
                (None, Some(suffix)) => app::MegafaceEmbeddingsSource::DevkitFeatures {
                    suffix,
                    probe_dir: a.probe_features,
                    distractor_dir: a.distractor_features,
                },
                _ => return Err(Error::Config("give one of --embeddings, --feature-suffix or --model".into())),
            };
            let req = app::MegafaceRequest {
                out_dir: a.out.unwrap_or_else(|| PathBuf::from("reports").join(benchmark)),
                benchmark: benchmark.into(),
                sizes,
                cleaning: a.clean.into(),
                embeddings,
                flip: a.flip.map(Into::into),
                probe_noise: a.probe_noise,
                distractor_noise: a.distractor_noise,
                protocol_file: a.protocol_file,
                score_device: aifr_eval::score::ScoreDevice::parse(
                    a.score_device.as_deref().unwrap_or(if a.model.model.is_some() {
                        a.model.device.as_str()
                    } else {
                        "cpu"
                    }),
                )?,
                merge: a.merge,
            };
            if let (Some(shard), Some(part)) = (a.distractor_shard, a.part) {
                let shard = aifr_eval::embed::shard::Shard::parse_option("--distractor-shard", &shard)?;
                let r = app::scan_megaface_shard(&env, &req, shard, &part, Some(invocation()?))?;
                if !a.quiet {
                    println!(
                        "megaface: slice {}/{} (distractor rows {}..{} of {}) scanned in {:.1} s → {} ({:.1} MB)",
                        r.index,
                        r.count,
                        r.rows.start,
                        r.rows.end,
                        r.distractor_rows,
                        r.seconds,
                        r.part.display(),
                        r.bytes as f64 / 1e6
                    );
                }
                return Ok(exit::OK);
            }
            let r = app::run_megaface(&env, &req)?;
            if !a.quiet {
                print_run(&r);
            }
        }
        // Both render into memory first: clap_complete panics on a failed write, and a full
        // disk or closed pipe must be an output error (exit 5), not a crash.
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "aifr-eval", &mut script);
            write_stdout(&script)?;
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|source| Error::Write { path: "man page".into(), source })?;
            write_stdout(&page)?;
        }
        Command::Store(StoreCommand::Merge { pieces, output }) => {
            let m = aifr_eval::embed::shard::merge(&pieces, &output)?;
            println!(
                "wrote {}: {} pieces, {} rows ({} images skipped), fingerprint {}",
                m.store.display(),
                m.pieces,
                m.rows,
                m.skipped,
                m.fingerprint
            );
        }
        Command::VerifyStore { store } => {
            let s = EmbeddingStore::open(&store)?;
            s.verify()?;
            println!(
                "{}: ok — {} rows × {} ({}), flip {}, fingerprint {}",
                store.display(),
                s.len(),
                s.dim(),
                s.header().dtype.name(),
                s.has_flip(),
                s.fingerprint()
            );
        }
    }
    Ok(exit::OK)
}

fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Write { path: "standard output".into(), source })
}

/// Variables the command line reads (clap `env`), recorded with a shard's command.
const COMMAND_LINE_VARIABLES: [&str; 3] = ["AIFR_DATA_DIR", "AIFR_DATASETS", "AIFR_CACHE_DIR"];

/// This process's command, for a MegaFace part (`megaface merge` runs it again with --merge).
fn invocation() -> Result<aifr_eval::protocol::megaface::part::Invocation, Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Read { path: ".".into(), source })?;
    let env = COMMAND_LINE_VARIABLES.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    Ok(aifr_eval::protocol::megaface::part::Invocation { args: std::env::args().skip(1).collect(), cwd, env })
}

/// `megaface merge PARTS`: the shards' command, with --merge PARTS in place of the slice options.
fn megaface_merge(parts: &[PathBuf], out: Option<&std::path::Path>) -> Result<i32, Error> {
    let absolute =
        |p: &std::path::Path| std::path::absolute(p).map_err(|source| Error::Read { path: p.to_path_buf(), source });
    let first = aifr_eval::protocol::megaface::part::ScanPart::read(&parts[0])?;
    let inv = first.invocation.ok_or_else(|| {
        Error::Config(format!(
            "{} does not record the command that wrote it; run that megaface command with --merge PARTS instead",
            parts[0].display()
        ))
    })?;
    // Drop the slice options (and --out when a new one is given), in both `--opt value` and
    // `--opt=value` forms.
    let mut drop: Vec<&str> = vec!["--distractor-shard", "--part"];
    if out.is_some() {
        drop.push("--out");
    }
    let mut args = Vec::new();
    let mut words = inv.args.into_iter();
    while let Some(w) = words.next() {
        if drop.contains(&w.as_str()) {
            words.next();
        } else if !drop.iter().any(|d| w.starts_with(&format!("{d}="))) {
            args.push(w);
        }
    }
    args.push("--merge".into());
    for p in parts {
        args.push(absolute(p)?.display().to_string());
    }
    if let Some(o) = out {
        args.extend(["--out".to_string(), absolute(o)?.display().to_string()]);
    }
    for (k, v) in &inv.env {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    std::env::set_current_dir(&inv.cwd).map_err(|source| Error::Read { path: inv.cwd.clone(), source })?;
    let cli = Cli::try_parse_from(std::iter::once("aifr-eval".to_string()).chain(args))
        .map_err(|e| Error::Config(format!("the shards' command does not parse here: {}", e.render())))?;
    run(cli)
}

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away (`| head`)
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A panic is a bug: report it as one and exit with the documented code 1 (Rust's default is
    // 101), from whichever thread it happens on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("error: internal error in aifr-eval {VERSION} (a bug: please report it with the command line)");
        std::process::exit(exit::INTERNAL);
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::error::ErrorKind;
    use clap::Parser;
    use std::path::{Path, PathBuf};

    /// Splits one shell command line into words (quotes, no expansion), dropping what follows
    /// a redirection, a pipe, `&&`, `;` or a comment: those parts are not ours to parse.
    fn shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let (mut quote, mut in_word) = (None, false);
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '\'' | '"') => {
                    quote = Some(c);
                    in_word = true;
                }
                (None, c) if c.is_whitespace() => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                (None, c) => {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        let end = words
            .iter()
            .position(|w| ["|", "&&", ";", "||"].contains(&w.as_str()) || w.starts_with('>') || w.starts_with('#'))
            .unwrap_or(words.len());
        words.truncate(end);
        words
    }

    /// Every `aifr-eval …` command in the fenced shell blocks of a Markdown file, with its line.
    fn documented_commands(path: &Path) -> Vec<(usize, Vec<String>)> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut out = Vec::new();
        let (mut in_shell, mut pending): (bool, Option<(usize, String)>) = (false, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(lang) = line.strip_prefix("```") {
                in_shell = !in_shell && ["sh", "bash", "shell", "console"].contains(&lang.trim());
                continue;
            }
            if !in_shell {
                continue;
            }
            let line = line.strip_prefix("$ ").unwrap_or(line);
            let (start, mut cmd) = match pending.take() {
                Some((start, acc)) => (start, acc + " " + line),
                None => {
                    let body = line.strip_prefix("cargo run --release -- ").map(|r| format!("aifr-eval {r}"));
                    match body.or_else(|| line.starts_with("aifr-eval ").then(|| line.to_string())) {
                        Some(b) => (i + 1, b),
                        None => continue,
                    }
                }
            };
            if let Some(head) = cmd.strip_suffix('\\') {
                cmd = head.to_string();
                pending = Some((start, cmd));
                continue;
            }
            out.push((start, shell_words(&cmd)));
        }
        out
    }

    fn markdown_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
        let mut stack = vec![root.join("docs")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "md") {
                    files.push(p);
                }
            }
        }
        files.retain(|p| p.exists());
        files.sort();
        files
    }

    #[test]
    fn shell_words_follow_quotes_and_stop_at_operators() {
        assert_eq!(shell_words(r#"aifr-eval run 'a b' --x "c d" | head"#), ["aifr-eval", "run", "a b", "--x", "c d"]);
        assert_eq!(shell_words("aifr-eval man > x.1"), ["aifr-eval", "man"]);
        assert_eq!(shell_words("aifr-eval demo   # comment"), ["aifr-eval", "demo"]);
    }

    /// Each command the README and docs show parses against the CLI as it is now: a renamed flag
    /// or subcommand fails here until the documentation follows.
    #[test]
    fn every_documented_command_parses() {
        let mut failures = Vec::new();
        let mut in_readme = 0;
        for file in markdown_files() {
            for (line, words) in documented_commands(&file) {
                if file.ends_with("README.md") {
                    in_readme += 1;
                }
                if let Err(e) = Cli::try_parse_from(&words) {
                    if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                        failures.push(format!("{}:{line}: {}\n  {}", file.display(), words.join(" "), e.kind()));
                    }
                }
            }
        }
        assert!(in_readme >= 5, "the README shows only {in_readme} aifr-eval commands in ```sh blocks");
        assert!(failures.is_empty(), "documented commands that do not parse:\n{}", failures.join("\n"));
    }
}
