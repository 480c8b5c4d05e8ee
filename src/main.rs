//! The `aifr-eval` command line: parse, call the library, print, exit with a documented code.

use aifr_eval::app::{self, Env, RunRequest};
use aifr_eval::config::{FlipChoice, Registry};
use aifr_eval::demo;
use aifr_eval::error::{exit, Error};
use aifr_eval::gate::{self, GateConfig};
use aifr_eval::metrics::FoldMode;
use aifr_eval::report::html::write_report;
use aifr_eval::report::run::RunData;
use aifr_eval::report::write_atomic;
use aifr_eval::store::import::{import, EmbeddingSource};
use aifr_eval::store::EmbeddingStore;
use clap::{Args, Parser, Subcommand, ValueEnum};
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

#[derive(Parser, Debug)]
#[command(
    name = "aifr-eval",
    version,
    about = "Exact, fast, reproducible evaluation of face-recognition models (LFW family today; IJB, MegaFace, FG-NET next)",
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate embeddings on a benchmark and write results.json.
    #[command(after_help = "Examples:
  aifr-eval run lfw --embeddings emb.npy --keys keys.txt
  aifr-eval run lfw --embeddings emb.npy --keys keys.txt --flip-embeddings emb_flip.npy --mode insightface
  aifr-eval run agedb30 --embeddings agedb_emb.npy          # .bin packs: rows in pack order, no key file
  aifr-eval run calfw --embeddings store.aifrstore --mode facexzoo --out reports/calfw-r50")]
    Run(RunArgs),
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
    /// Check an embedding store (header, size, content hash) and print what it holds.
    #[command(after_help = "Example:\n  aifr-eval verify-store lfw_r50.aifrstore")]
    VerifyStore { store: PathBuf },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// The project's strict definitions (PROTOCOLS.md).
    Strict,
    /// Reproduce insightface's verification.py.
    Insightface,
    /// Reproduce FaceX-Zoo's LFW evaluator.
    Facexzoo,
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
    /// Benchmark name from datasets.toml (see `aifr-eval datasets`).
    benchmark: String,
    /// Embeddings: an .aifrstore, or an N×D .npy (f32/f16/f64) or .safetensors file.
    #[arg(long, required_unless_present = "loo_embeddings", conflicts_with = "loo_embeddings")]
    embeddings: Option<PathBuf>,
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
    /// Threshold procedure for k-fold accuracy [default: from the protocol file, strict].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Flip fusion [default: from the protocol file for the mode].
    #[arg(long, value_enum)]
    flip: Option<FlipChoice>,
    /// A protocol file to use instead of the built-in protocols/pair_verification.toml.
    #[arg(long)]
    protocol_file: Option<PathBuf>,
    /// Ages for the age-gap analysis: a text file with `<image key> <age>` per line [default:
    /// read from AgeDB (`<id>_<name>_<age>_<gender>.jpg`) or FG-NET (`001A02.JPG`) file names].
    #[arg(long)]
    ages: Option<PathBuf>,
    /// Output directory [default: reports/<benchmark>].
    #[arg(long)]
    out: Option<PathBuf>,
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
    /// Threshold procedure for k-fold accuracy.
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
    })
}

fn print_run(r: &app::RunReport) {
    print!("{}", r.table);
    println!("  wrote {} and {} ({:.2} s)", r.results_path.display(), r.report.display(), r.timings.total_seconds);
}

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Run(a) => {
            let env = env(&cli.global)?;
            let req = RunRequest {
                out_dir: a.out.unwrap_or_else(|| PathBuf::from("reports").join(&a.benchmark)),
                benchmark: a.benchmark,
                per_subject_models: a.loo_embeddings.is_some(),
                embeddings: a.embeddings.or(a.loo_embeddings).unwrap_or_default(),
                keys: a.keys,
                flip_embeddings: a.flip_embeddings,
                mode: a.mode.map(Into::into),
                flip: a.flip,
                protocol_file: a.protocol_file,
                ages: a.ages,
            };
            let r = app::run_benchmark(&env, &req)?;
            if !a.quiet {
                print_run(&r);
            }
        }
        Command::Datasets => {
            let env = env(&cli.global)?;
            println!("data directory: {}   (registry: {})", env.data_dir.display(), env.registry.source);
            for (name, d) in &env.registry.datasets {
                let status = d.status(&env.data_dir);
                let missing_eval: Vec<_> = status.iter().filter(|s| s.needed_for_eval && !s.present).collect();
                let state = if !d.format.supported() {
                    "protocol not implemented yet"
                } else if missing_eval.is_empty() {
                    "ready"
                } else {
                    "missing files"
                };
                println!("{name:<20} {state:<30} {}", d.title);
                for s in &status {
                    let mark = if s.present { "ok     " } else { "MISSING" };
                    let use_ = if s.needed_for_eval {
                        "evaluation"
                    } else if d.format.optional_eval_roles().contains(&s.role.as_str()) {
                        "1:N evaluation, optional"
                    } else {
                        "embedding images"
                    };
                    println!("    {mark} {:<12} {}  (needed for {use_})", s.role, s.path.display());
                }
            }
        }
        Command::Demo(a) => {
            let spec = demo::DemoSpec { seed: a.seed, ..Default::default() };
            // The generated files are new each time, so an older cached store can never match.
            let cache = a.out.join("cache");
            if cache.exists() {
                std::fs::remove_dir_all(&cache).map_err(|e| Error::write(&cache, e))?;
            }
            let files = demo::generate(&spec, &a.out.join("data"))?;
            let env = Env {
                data_dir: files.data_dir.clone(),
                registry: Registry::builtin()?,
                cache_dir: a.out.join("cache"),
            };
            let req = RunRequest {
                benchmark: "lfw".into(),
                embeddings: files.embeddings,
                per_subject_models: false,
                keys: Some(files.keys),
                flip_embeddings: Some(files.flip_embeddings),
                mode: a.mode.map(Into::into),
                flip: None,
                protocol_file: None,
                ages: Some(files.ages),
                out_dir: a.out.clone(),
            };
            let r = app::run_pairs(&env, &req)?;
            println!("synthetic benchmark (seed {}) in {}", a.seed, files.data_dir.display());
            print_run(&r);
            // The same pairs as an insightface .bin pack (the AgeDB-30 slot), ages by image index.
            let bin = demo::BinFiles::under(&files.data_dir);
            let req = RunRequest {
                benchmark: "agedb30".into(),
                embeddings: bin.embeddings,
                per_subject_models: false,
                keys: None,
                flip_embeddings: Some(bin.flip_embeddings),
                mode: None,
                flip: None,
                protocol_file: None,
                ages: Some(bin.ages),
                out_dir: a.out.join("agedb30"),
            };
            print_run(&app::run_pairs(&env, &req)?);
            // The same cohort model in FG-NET's layout: identification across ages.
            let fg = demo::generate_fgnet(&spec, &a.out.join("data"))?;
            let req = RunRequest {
                benchmark: "fgnet".into(),
                embeddings: fg.embeddings,
                per_subject_models: false,
                keys: Some(fg.keys),
                flip_embeddings: Some(fg.flip_embeddings),
                mode: None,
                flip: None,
                protocol_file: None,
                ages: None,
                out_dir: a.out.join("fgnet"),
            };
            let r = app::run_fgnet(&env, &req)?;
            print_run(&r);
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

fn main() {
    // Like other Unix tools, end quietly when the reader of our output goes away (`| head`)
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
