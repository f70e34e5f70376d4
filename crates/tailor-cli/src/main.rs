//! `tailor`: the personalization engine's command line.
//!
//! Thin commands over the library crates: parse flags, load configuration, open the store,
//! call the library, print a table or JSON. Each command lives in `commands/<name>.rs`
//! with its arguments; `main` dispatches. Exit codes: 0 success, 1 error, 2 usage.

mod cluster;
mod commands;
mod config;
mod context;
mod eval;
mod experiment;
mod plot;
mod recommend;
mod segment;
mod sessions;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

/// mimalloc: a long-running server's RSS stays flat under mixed traffic, where glibc's
/// per-thread arenas kept growing (scripts in docs/benchmarks.md, "Soak").
/// The `system-alloc` feature leaves it out, for heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tailor_ingest::IngestError;
use tailor_store::RedbStore;

use crate::commands::{bench, cluster as cluster_cmd, config as config_cmd, demo, eval as eval_cmd, export, import};
use crate::commands::{model, recommend as recommend_cmd, report, segment as segment_cmd, serve, stats};
use crate::config::{Config, Override, Sources};

/// tailor: personalization engine for e-commerce (segments, recommendations, serving).
#[derive(Parser, Debug)]
#[command(name = "tailor", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Data directory of the embedded store [config: store.data_dir].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Configuration file (default: ./tailor.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Log format [config: log.format].
    #[arg(long, global = true, value_parser = ["pretty", "json"])]
    pub(crate) log_format: Option<String>,
    /// Print machine-readable JSON instead of tables, and no progress bars.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Override any configuration key: `--conf section.key=value` (repeatable).
    #[arg(long = "conf", global = true, value_name = "KEY=VALUE")]
    pub(crate) conf: Vec<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import events, items or users from CSV/TSV (optionally .gz), JSON Lines or Parquet.
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Export stored data.
    #[command(subcommand)]
    Export(export::ExportCmd),
    /// Generate the demo shop into the store, train the models and rule segments, and serve it
    /// on 127.0.0.1:8080 (`--no-serve` only generates).
    Demo(demo::DemoArgs),
    /// Serve the HTTP API over the stored data: serves the registered model version (or trains
    /// the first), then answers `/v1/...`.
    Serve(serve::ServeArgs),
    /// Train the served models from the store, measure the candidate on a holdout and register
    /// it as the live version unless it is worse than the live one (stop `tailor serve` first,
    /// or use its `POST /v1/admin/retrain`).
    Train,
    /// Registered model versions: list them, or roll back to an earlier one.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Summary statistics of the stored data.
    Stats {
        /// How many top items to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Customer reports: cohorts (retention and revenue by first-purchase month) and lifetime
    /// value (BG/NBD + Gamma-Gamma) per customer and segment.
    #[command(subcommand)]
    Report(report::ReportCmd),
    /// Show, check or write the configuration file (`config show|check|init`).
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Customer segments: clustering, RFM or rules over user features; stored with history.
    #[command(subcommand)]
    Segment(segment_cmd::SegmentCmd),
    /// Batch recommendations: train on a `user item timestamp weight` TSV and write `user item rank` for the listed users.
    Recommend(recommend_cmd::RecommendArgs),
    /// Offline comparison of models on a temporal split: one table, JSON, and an NDCG bar chart.
    Eval(eval_cmd::EvalArgs),
    /// Seeded random search of a model's parameters on a validation split carved from train.
    Tune(eval_cmd::TuneArgs),
    /// Context-aware evaluation of (user, item, context) logs such as frappe: popularity, popularity in the
    /// context, ALS without context and iTALS with it, on one seeded split.
    EvalContext(eval_cmd::EvalContextArgs),
    /// Cluster the rows of a numeric CSV/TSV (header row) or .npy matrix (k-means, mini-batch k-means, DBSCAN, Ward).
    Cluster(cluster_cmd::ClusterArgs),
    /// Benchmarks of this build on this machine (results as a table or --json).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// A/B experiments: create, start, pause, stop, report; plan a sample size.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCmd),
    /// Replay synthetic shoppers with known truths through the real assignment, attribution,
    /// statistics and bandits: false-positive rate, power, peeking, regret.
    Simulate(experiment::SimulateArgs),
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            use tailor_server::segmentation::Error as SegmentationError;
            let usage = e.downcast_ref::<IngestError>().is_some_and(|i| matches!(i, IngestError::Usage(_)))
                || e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<SegmentationError>()
                    .is_some_and(|s| matches!(s, SegmentationError::Usage(_) | SegmentationError::NotFound(_)));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// `tailor ... | head`: when the reader of stdout goes away, printing fails with EPIPE and
/// `println!` panics. The command ends quietly instead (exit 0, no backtrace), as `cat`
/// and `grep` do; every other panic keeps the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// A mistake in how the command was called (exit code 2).
#[derive(Debug)]
struct UsageError(String);

impl std::error::Error for UsageError {}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

fn load_config(cli: &Cli) -> Result<(Config, Sources)> {
    let explicit = cli.config.is_some();
    let path = cli.config.clone().unwrap_or_else(|| PathBuf::from("tailor.toml"));
    let text = match fs_err::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(usage(format!("{e}"))),
    };
    let shown = path.display().to_string();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut flags = Vec::new();
    for c in &cli.conf {
        let (k, v) = c.split_once('=').ok_or_else(|| usage(format!("--conf {c:?}: expected section.key=value")))?;
        flags.push(Override { key: k.trim().to_owned(), value: v.to_owned(), origin: format!("--conf {}", k.trim()) });
    }
    if let Some(d) = &cli.data_dir {
        flags.push(Override {
            key: "store.data_dir".into(),
            value: d.display().to_string(),
            origin: "--data-dir".into(),
        });
    }
    if let Some(f) = &cli.log_format {
        flags.push(Override { key: "log.format".into(), value: f.clone(), origin: "--log-format".into() });
    }
    Config::load(text.as_deref().map(|t| (shown.as_str(), t)), &env, &flags).map_err(usage)
}

fn init_logging(config: &Config) {
    let filter = std::env::var("TAILOR_LOG").unwrap_or_else(|_| config.log.filter.clone());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.with_target(false).try_init() };
}

fn run(cli: Cli) -> Result<()> {
    let (config, sources) = load_config(&cli)?;
    init_logging(&config);
    match &cli.command {
        Command::Config(cmd) => config_cmd::run(&cli, &config, &sources, cmd),
        Command::Import(cmd) => import::run(&cli, &config, cmd),
        Command::Export(cmd) => export::run(&cli, &config, cmd),
        Command::Demo(args) => demo::run(&cli, &config, args),
        Command::Serve(args) => serve::run(&config, args),
        Command::Train => model::train(&cli, &config),
        Command::Model(cmd) => model::run(&cli, &config, cmd),
        Command::Bench(cmd) => bench::run(&cli, &config, cmd),
        Command::Experiment(cmd) => experiment::run_cmd(&cli, &config, cmd),
        Command::Simulate(args) => experiment::simulate_cmd(cli.json, args),
        Command::Cluster(args) => cluster_cmd::run(&cli, args),
        Command::Segment(cmd) => segment_cmd::run(&cli, &config, cmd),
        Command::Eval(args) => eval_cmd::eval(&cli, args),
        Command::EvalContext(args) => eval_cmd::eval_context(&cli, args),
        Command::Tune(args) => eval_cmd::tune(&cli, args),
        Command::Recommend(args) => recommend_cmd::run(args),
        Command::Stats { top } => stats::run(&cli, &config, *top),
        Command::Report(cmd) => report::run(&cli, &config, cmd),
    }
}

pub(crate) fn open_store(config: &Config) -> Result<RedbStore> {
    let tuning = tailor_store::Tuning {
        cache_bytes: (config.store.cache_mb as usize) << 20,
        recent_ids: config.store.recent_ids,
    };
    RedbStore::open_tuned(&config.store.data_dir, tuning)
        .with_context(|| format!("opening the store in {}", config.store.data_dir.display()))
}

pub(crate) fn progress_bar(cli: &Cli, total: u64) -> Option<ProgressBar> {
    if cli.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total.max(1));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}
