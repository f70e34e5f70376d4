//! `tailor`: the personalization engine's command line.
//!
//! Thin commands over the library crates: parse flags, load configuration, open the store,
//! call the library, print a table or JSON. Exit codes: 0 success, 1 error, 2 usage.

mod cluster;
mod config;
mod context;
mod eval;
mod experiment;
mod plot;
mod recommend;
mod segment;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tailor_core::Timestamp;
use tailor_ingest::IngestError;
use tailor_ingest::import::{ImportOptions, Progress, import_file};
use tailor_ingest::mapping::{Mapping, Target};
use tailor_ingest::source::{Encoding, Format, SourceOptions};
use tailor_store::{EventFilter, RedbStore, Store, WriteBatch};

use crate::config::{Config, Override, Sources};

/// tailor: personalization engine for e-commerce (segments, recommendations, serving).
#[derive(Parser, Debug)]
#[command(name = "tailor", version, about, propagate_version = true)]
struct Cli {
    /// Data directory of the embedded store [config: store.data_dir].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (default: ./tailor.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format [config: log.format].
    #[arg(long, global = true, value_parser = ["pretty", "json"])]
    log_format: Option<String>,
    /// Print machine-readable JSON instead of tables, and no progress bars.
    #[arg(long, global = true)]
    json: bool,
    /// Override any configuration key: `--conf section.key=value` (repeatable).
    #[arg(long = "conf", global = true, value_name = "KEY=VALUE")]
    conf: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import events, items or users from CSV/TSV (optionally .gz), JSON Lines or Parquet.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Export stored data.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Generate the demo shop into the store, train the models and rule segments, and serve it
    /// on 127.0.0.1:8080 (`--no-serve` only generates).
    Demo(DemoArgs),
    /// Serve the HTTP API over the stored data: serves the registered model version (or trains
    /// the first), then answers `/v1/...`.
    Serve(ServeArgs),
    /// Train the served models from the store, measure the candidate on a holdout and register
    /// it as the live version unless it is worse than the live one (stop `tailor serve` first,
    /// or use its `POST /v1/admin/retrain`).
    Train,
    /// Registered model versions: list them, or roll back to an earlier one.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Summary statistics of the stored data.
    Stats {
        /// How many top items to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Customer segments: clustering, RFM or rules over user features; stored with history.
    #[command(subcommand)]
    Segment(SegmentCmd),
    /// Batch recommendations: train on a `user item timestamp weight` TSV and write `user item rank` for the listed users.
    Recommend(RecommendArgs),
    /// Offline comparison of models on a temporal split: one table, JSON, and an NDCG bar chart.
    Eval(EvalArgs),
    /// Seeded random search of a model's parameters on a validation split carved from train.
    Tune(TuneArgs),
    /// Context-aware evaluation of (user, item, context) logs such as frappe: popularity, popularity in the
    /// context, ALS without context and iTALS with it, on one seeded split.
    EvalContext(EvalContextArgs),
    /// Cluster the rows of a numeric CSV/TSV (header row) or .npy matrix (k-means, mini-batch k-means, DBSCAN, Ward).
    Cluster(ClusterArgs),
    /// Benchmarks of this build on this machine (results as a table or --json).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// A/B experiments: create, start, pause, stop, report; plan a sample size.
    #[command(subcommand)]
    Experiment(experiment::ExperimentCmd),
    /// Replay synthetic shoppers with known truths through the real assignment, attribution,
    /// statistics and bandits: false-positive rate, power, peeking, regret.
    Simulate(experiment::SimulateArgs),
}

#[derive(Args, Debug)]
struct RecommendArgs {
    /// Training interactions (TSV with header `user item timestamp weight`, as split.py writes).
    #[arg(long)]
    train: PathBuf,
    /// Users to recommend for, one id per line (default: every train user).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Model: popular, trending, itemknn, als, bpr, ease, content (needs --item-features) or hybrid (EASE + content
    /// blended by item interaction count, β learned on a validation split; needs --item-features).
    #[arg(long, default_value = "als")]
    model: String,
    /// Model parameters `key=value,...` (als: factors, regularization, alpha, iterations, solver=cg|cholesky, cg_steps,
    /// seed; ease: lambda, binary; hybrid: lambda, binary, beta; itemknn: weighting=cosine|tfidf|bm25, neighbours,
    /// shrink, k1, b).
    #[arg(long)]
    params: Option<String>,
    /// Recommendations per user.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Output TSV `user item rank`.
    #[arg(long)]
    out: PathBuf,
    /// Save the trained model to this file (versioned JSON; `.gz` compresses).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Use this saved model instead of training (`--model` is ignored; `--params recency=H` still applies).
    #[arg(long, conflicts_with = "save")]
    load: Option<PathBuf>,
    /// Item features for `--model content`: `item<TAB>token token ...` per line.
    #[arg(long)]
    item_features: Option<PathBuf>,
    /// Recommend only items without training interactions (cold-item evaluation).
    #[arg(long)]
    cold_items_only: bool,
}

#[derive(Args, Debug)]
struct SplitArgs {
    /// Interactions `user item timestamp weight` (TSV); split here like split.py (last 20% per user).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Or a train file (split.py's train.tsv) ...
    #[arg(long)]
    train: Option<PathBuf>,
    /// ... and its test file.
    #[arg(long)]
    test: Option<PathBuf>,
    /// How --input is split: temporal (split.py's), global (one time cut-off), leave-last-out, random,
    /// cold-user, cold-item.
    #[arg(long, default_value = "temporal")]
    split: String,
    /// Test share for --input.
    #[arg(long, default_value = "0.2")]
    test_fraction: String,
    /// Seed of the random, cold-user and cold-item splits.
    #[arg(long, default_value_t = 0)]
    split_seed: u64,
    /// Cut-off K of the metrics.
    #[arg(long, default_value_t = 10)]
    k: usize,
}

impl SplitArgs {
    fn load(&self) -> Result<(Vec<tailor_eval::split::Row>, Vec<tailor_eval::split::Row>)> {
        let spec = eval::SplitSpec::parse(&self.split, &self.test_fraction, self.split_seed)?;
        eval::load(self.input.as_deref(), self.train.as_deref(), self.test.as_deref(), spec)
    }
}

#[derive(Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    split: SplitArgs,
    /// Models, comma separated; parameters after a colon with `;` between them:
    /// `popular,itemknn,als:factors=64;regularization=10,ease:lambda=800;recency=5`.
    #[arg(long, default_value = "popular,itemknn,als,ease")]
    models: String,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bar chart of NDCG@K (.svg or .png).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Metrics per user group too: a `user<TAB>group` file (segments, demographics).
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Training curves (test NDCG@K after each ALS iteration / BPR epoch) as a line chart (.svg or .png).
    #[arg(long)]
    curves: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct EvalContextArgs {
    /// Delimited file with a header (tab-separated if the header has a tab, else comma).
    #[arg(long)]
    input: PathBuf,
    /// User column.
    #[arg(long, default_value = "user")]
    user: String,
    /// Item column.
    #[arg(long, default_value = "item")]
    item: String,
    /// Weight column (e.g. frappe's `cnt`); 1 per row without it.
    #[arg(long)]
    weight: Option<String>,
    /// How the weight becomes an interaction strength.
    #[arg(long, value_enum, default_value = "log1p")]
    weight_transform: context::WeightTransform,
    /// Context columns, comma separated; their combination is one context value (e.g. `daytime,isweekend`);
    /// `daypart(ts)` and `weekpart(ts)` derive night/morning/afternoon/evening and weekday/weekend from a time column.
    #[arg(long, value_delimiter = ',', required = true)]
    context: Vec<String>,
    /// Share of each user's triples held out.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the split and of the models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cut-off K of the metrics.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// ALS/iTALS parameters `key=value,...` (factors, regularization, alpha, iterations, solver, cg_steps).
    #[arg(long)]
    params: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TuneArgs {
    #[command(flatten)]
    split: SplitArgs,
    /// Model: als, ease or itemknn.
    #[arg(long)]
    model: String,
    /// Settings tried.
    #[arg(long, default_value_t = 20)]
    budget: usize,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum SegmentCmd {
    /// Compute user features, segment the users, explain and store the result.
    Run(SegmentRunArgs),
    /// List the stored segmentations, or describe one segment.
    Show {
        /// A segment name (default: list every segment of the segmentation).
        name: Option<String>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Print the members of a segment, one user id per line.
    Users {
        /// Segment name.
        name: String,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Print each segment as readable rules (decision tree of depth <= 3) with precision and coverage.
    Explain {
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Draw the 2-D PCA map coloured by segment (.svg or .png), and the silhouette-by-k chart of `--k auto`.
    Plot {
        /// Output file (.svg or .png).
        #[arg(long)]
        out: PathBuf,
        /// Silhouette-by-k chart (default: next to --out, `<stem>-silhouette-by-k.<ext>`).
        #[arg(long)]
        k_chart: Option<PathBuf>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Put one user in a segment of a stored run now (nearest centre, or the run's rules), from their events.
    Assign {
        /// User id.
        user: String,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// Features as of this time (default: now).
        #[arg(long)]
        as_of: Option<String>,
        /// Store the membership (recorded in the history when it changes).
        #[arg(long)]
        apply: bool,
    },
    /// Membership changes: who moved from which segment to which, when.
    History {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// Print every change instead of the from → to counts.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args, Debug)]
struct SegmentRunArgs {
    /// How to segment.
    #[arg(long, default_value = "kmeans", value_parser = ["kmeans", "minibatch", "dbscan", "ward", "rfm", "rules"])]
    method: String,
    /// Number of segments for kmeans/minibatch/ward; `auto` (kmeans) picks the best silhouette in 2..=10.
    #[arg(long, default_value = "auto")]
    k: String,
    /// Features: `name[:zscore|robust|log1p|minmax|none][*weight]`, comma separated; categorical names are one-hot encoded
    /// (default: value, engagement, price sensitivity, novelty, brand loyalty, evening share, mobile share, age).
    #[arg(long)]
    features: Option<String>,
    /// Rule file (TOML, `[[segment]] name = "..." when = "..."`) for --method rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Compute features from events before this time (backtests); default: all history.
    #[arg(long)]
    as_of: Option<String>,
    /// Name of the segmentation (default: the method).
    #[arg(long)]
    name: Option<String>,
    /// Override automatic names: `0=VIP,2=Bargain hunters`.
    #[arg(long)]
    names: Option<String>,
    /// DBSCAN radius (default: suggested from the k-distance curve).
    #[arg(long)]
    eps: Option<f64>,
    /// DBSCAN core threshold.
    #[arg(long, default_value_t = 5)]
    min_samples: usize,
    /// k-means restarts.
    #[arg(long, default_value_t = 4)]
    n_init: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Categories whose shares become features [config: segment.top_categories].
    #[arg(long)]
    top_categories: Option<usize>,
    /// Compute and print, store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run only when the last run of this segmentation is due for a recluster ([segment] recluster_* settings); for cron.
    #[arg(long)]
    if_due: bool,
}

#[derive(Args, Debug)]
struct ClusterArgs {
    /// Input matrix: .csv/.tsv with a header row of column names, or .npy (float64).
    #[arg(long)]
    input: PathBuf,
    /// Algorithm.
    #[arg(long, default_value = "kmeans", value_parser = ["kmeans", "minibatch", "dbscan", "ward"])]
    method: String,
    /// DBSCAN radius (default: suggested from the knee of the k-distance curve).
    #[arg(long)]
    eps: Option<f64>,
    /// DBSCAN: points within eps (the point included) that make a core point.
    #[arg(long, default_value_t = 5)]
    min_samples: usize,
    /// Number of clusters (k-means, ward); `auto` (k-means) scans 2..=10 and keeps the best
    /// silhouette.
    #[arg(long, default_value = "8")]
    k: String,
    /// Restarts (best inertia wins).
    #[arg(long, default_value_t = 1)]
    n_init: usize,
    /// Most Lloyd iterations per restart.
    #[arg(long, default_value_t = 300)]
    max_iter: usize,
    /// Convergence tolerance, relative to the mean column variance (as scikit-learn).
    #[arg(long, default_value_t = 1e-4)]
    tol: f64,
    /// Column scaling before clustering.
    #[arg(long, default_value = "none", value_parser = ["none", "zscore"])]
    scale: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The CSV/TSV has no header row.
    #[arg(long)]
    no_header: bool,
    /// Skip the silhouette.
    #[arg(long)]
    no_silhouette: bool,
    /// Write `row,label` here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Import a file into a fresh temporary store `--repeat` times (end to end, durable).
    Ingest {
        /// Input file.
        file: PathBuf,
        /// Preset of the file (e.g. online-retail).
        #[arg(long)]
        preset: Option<String>,
        /// Runs.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Online segment assignment: nearest of `--k` k-means centroids for one user's
    /// `--dim` standardised features, timed over `--n` users.
    Assign {
        /// Clusters.
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// Features per user.
        #[arg(long, default_value_t = 16)]
        dim: usize,
        /// Assignments timed.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
    },
    /// Segment the stored users end to end (features, k-means with k = auto, explanations,
    /// store) `--repeat` times, then time the online assignment of every user with the
    /// stored encoder and centres (features already computed).
    Segment {
        /// Runs.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// k (or auto).
        #[arg(long, default_value = "auto")]
        k: String,
    },
    /// One user's top-10 over `--items` items with `--factors` f32 factors on one thread: exact scan,
    /// and the int8 index with exact re-ranking (time, recall@10 against exact); and the fold-in of a user with
    /// `--history` items (ALS, Cholesky).
    Topk {
        /// Catalog size.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Factors.
        #[arg(long, default_value_t = 64)]
        factors: usize,
        /// Items in the folded-in user's history.
        #[arg(long, default_value_t = 50)]
        history: usize,
        /// Queries timed per round.
        #[arg(long, default_value_t = 200)]
        n: usize,
    },
    /// Experiments: `--n` sticky assignments on one thread (rate, and the shares of a
    /// 50/30/20 split), then a report over `--exposures` served lists with clicks and
    /// purchases (attribution, every test, 1,000 bootstrap resamples).
    Experiment {
        /// Assignments timed.
        #[arg(long, default_value_t = 10_000_000)]
        n: usize,
        /// Exposures in the report.
        #[arg(long, default_value_t = 1_000_000)]
        exposures: usize,
    },
    /// Read every stored event into the CSR interaction matrix `--repeat` times.
    Csr {
        /// Runs.
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
}

#[derive(Subcommand, Debug)]
enum ImportCmd {
    /// Events (may also create the items and users they mention via item.* / user.* fields).
    Events(ImportArgs),
    /// Catalog items (upsert: a row replaces the stored item).
    Items(ImportArgs),
    /// Users (upsert: a row replaces the stored user).
    Users(ImportArgs),
    /// A MovieLens-100K directory (u.data, u.item, u.user, u.genre).
    Movielens {
        /// The directory.
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// Input file (.csv, .tsv, .jsonl, .parquet, optionally .gz).
    file: PathBuf,
    /// Format, when the file name does not tell.
    #[arg(long)]
    format: Option<String>,
    /// Field delimiter for CSV (one character, e.g. ';').
    #[arg(long)]
    delimiter: Option<char>,
    /// Map fields to columns: `--map user=CustomerID,item=StockCode` (repeatable).
    #[arg(long, value_name = "FIELD=COLUMN")]
    map: Vec<String>,
    /// Set fields to constants: `--set kind=purchase` (repeatable).
    #[arg(long, value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// strftime format of timestamps, e.g. `%d/%m/%Y %H:%M` (default: auto-detect).
    #[arg(long)]
    ts_format: Option<String>,
    /// A known layout: online-retail.
    #[arg(long)]
    preset: Option<String>,
    /// Import the valid rows and write the invalid ones to a rejects file.
    #[arg(long)]
    skip_invalid: bool,
    /// Where rejected rows go (default: FILE.rejects.csv).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Read the input as ISO-8859-1 instead of UTF-8.
    #[arg(long)]
    latin1: bool,
    /// Accept events dated more than limits.max_future_seconds ahead of this machine's
    /// clock (refused by default: one mistyped date would become "now" for the shop).
    #[arg(long)]
    allow_future: bool,
}

#[derive(Subcommand, Debug)]
enum ExportCmd {
    /// Events, with the columns `tailor import events` reads back unchanged.
    Events {
        /// csv, tsv, jsonl or parquet.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Only events at or after this time (RFC 3339, date, or Unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time.
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Seed [config: demo.seed].
    #[arg(long)]
    seed: Option<u64>,
    /// Users [config: demo.users].
    #[arg(long)]
    users: Option<usize>,
    /// Items [config: demo.items].
    #[arg(long)]
    items: Option<usize>,
    /// Days of history [config: demo.days].
    #[arg(long)]
    days: Option<u32>,
    /// Only generate and store; do not train or serve.
    #[arg(long)]
    no_serve: bool,
    /// Leave out the history of recommendation traffic (impression events and the rec_ids
    /// of attributed click-throughs, carts and purchases); shoppers' behaviour is the same.
    #[arg(long)]
    no_rec_traffic: bool,
    /// Also write each user's hidden archetype to this CSV (user,archetype).
    #[arg(long)]
    truth_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on [config: serve.addr].
    #[arg(long)]
    addr: Option<String>,
    /// Retrain in the background this often, e.g. `1h` [config: serve.retrain_every].
    #[arg(long)]
    retrain_every: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ModelCmd {
    /// Every registered version with its training facts; `*` marks the live one.
    List,
    /// Make an earlier version live (default: the promoted version before the live one);
    /// running servers switch on `POST /v1/admin/reload`.
    Rollback {
        /// The version to serve.
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Every configuration value and where it came from.
    Show,
}

fn main() -> ExitCode {
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
            let usage = e.downcast_ref::<IngestError>().is_some_and(|i| matches!(i, IngestError::Usage(_)))
                || e.downcast_ref::<UsageError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
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

fn usage(msg: impl Into<String>) -> anyhow::Error {
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if config.log.format == "json" { builder.json().try_init() } else { builder.with_target(false).try_init() };
}

fn run(cli: Cli) -> Result<()> {
    let (config, sources) = load_config(&cli)?;
    init_logging(&config);
    match &cli.command {
        Command::Config(ConfigCmd::Show) => {
            let rows = config.show(&sources).map_err(anyhow::Error::msg)?;
            if cli.json {
                let obj: serde_json::Map<String, serde_json::Value> =
                    rows.into_iter().map(|(k, v, s)| (k, serde_json::json!({ "value": v, "source": s }))).collect();
                println!("{}", serde_json::to_string_pretty(&obj)?);
            } else {
                let width = rows.iter().map(|r| r.0.len() + r.1.len() + 3).max().unwrap_or(0);
                for (k, v, s) in rows {
                    let kv = format!("{k} = {v}");
                    println!("{kv:<width$}  # {s}");
                }
            }
            Ok(())
        }
        Command::Import(cmd) => import(&cli, &config, cmd),
        Command::Export(ExportCmd::Events { format, out, since, until }) => {
            let format: Format = format.parse().map_err(usage)?;
            let parse_ts = |flag: &str, s: &Option<String>| -> Result<Option<Timestamp>> {
                s.as_deref().map(|v| Timestamp::parse_auto(v).map_err(|e| usage(format!("{flag}: {e}")))).transpose()
            };
            let filter = EventFilter { since: parse_ts("--since", since)?, until: parse_ts("--until", until)? };
            let store = open_store(&config)?;
            let report = tailor_ingest::export::export_events(&store, format, out, filter)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("exported {} events to {} in {:.2} s", report.events, report.path, report.seconds);
            }
            Ok(())
        }
        Command::Demo(args) => demo(&cli, &config, args),
        Command::Serve(args) => {
            let mut config = config.clone();
            if let Some(every) = &args.retrain_every {
                config.serve.retrain_every = every.clone();
                config.serve.validate().map_err(usage)?;
            }
            serve(&config, args.addr.as_deref())
        }
        Command::Train => train(&cli, &config),
        Command::Model(cmd) => model(&cli, &config, cmd),
        Command::Bench(b) => bench(&cli, &config, b),
        Command::Experiment(cmd) => {
            if matches!(cmd, experiment::ExperimentCmd::Plan { .. }) {
                experiment::run(cli.json, None, cmd)
            } else {
                let store = open_store(&config)?;
                experiment::run(cli.json, Some(&store), cmd)
            }
        }
        Command::Simulate(a) => experiment::simulate_cmd(cli.json, a),
        Command::Cluster(a) => cluster_cmd(&cli, a),
        Command::Segment(c) => segment_cmd(&cli, &config, c),
        Command::Eval(a) => {
            let (train, test) = a.split.load()?;
            let groups = a.groups.as_deref().map(eval::read_groups).transpose()?;
            let mut results = Vec::new();
            for m in a.models.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let (name, spec) = m.split_once(':').unwrap_or((m, ""));
                let spec = spec.replace(';', ",");
                let mut r = eval::score(&train, &test, name, &spec, a.split.k, groups.as_ref())?;
                if a.curves.is_some() {
                    r.curve = eval::curve(&train, &test, name, &spec, a.split.k)?;
                }
                results.push(r);
            }
            if let Some(p) = &a.curves {
                eval::curves_chart(p, &results, a.split.k)?;
            }
            if let Some(p) = &a.out {
                fs_err::write(p, serde_json::to_string_pretty(&results)?)?;
            }
            if let Some(p) = &a.chart {
                eval::chart(p, &results, a.split.k)?;
            }
            if cli.json {
                println!("{}", serde_json::to_string(&results)?);
            } else {
                println!(
                    "{} train rows, {} test rows ({} split), K = {}",
                    train.len(),
                    test.len(),
                    if a.split.input.is_some() { a.split.split.as_str() } else { "given" },
                    a.split.k
                );
                eval::print_table(&results);
                eval::print_groups(&results);
            }
            Ok(())
        }
        Command::EvalContext(a) => {
            if !(a.test_fraction > 0.0 && a.test_fraction < 1.0) {
                return Err(usage("--test-fraction must be between 0 and 1"));
            }
            let cols =
                context::Columns { user: &a.user, item: &a.item, weight: a.weight.as_deref(), context: &a.context };
            let log = context::read(&a.input, &cols, a.weight_transform)?;
            let (train, test) = context::split(&log.triples, a.test_fraction, a.seed);
            let mut p = recommend::params(a.params.as_deref())?;
            let mut params = recommend::als_params(&mut p)?;
            if let Some(k) = p.keys().next() {
                return Err(usage(format!("--params {k}: not a parameter of ALS/iTALS")));
            }
            if !a.params.as_deref().unwrap_or("").contains("seed=") {
                params.seed = a.seed;
            }
            let results = context::compare(&train, &test, &params, a.k)?;
            if let Some(p) = &a.out {
                fs_err::write(p, serde_json::to_string_pretty(&results)?)?;
            }
            if cli.json {
                println!("{}", serde_json::to_string(&results)?);
            } else {
                println!(
                    "{} triples ({} users, {} items, {} contexts of {}; {} rows without user or item left out); \
                     {} train, {} test; K = {}",
                    log.triples.len(),
                    log.triples.n_users,
                    log.triples.n_items,
                    log.contexts.len(),
                    a.context.join("×"),
                    log.skipped,
                    train.len(),
                    test.len(),
                    a.k
                );
                context::print_table(&results, a.k);
            }
            Ok(())
        }
        Command::Tune(a) => {
            let (train, test) = a.split.load()?;
            let (trials, best) = eval::tune(&train, &test, &a.model, a.budget, a.seed, a.split.k)?;
            if cli.json {
                println!("{}", serde_json::json!({"trials": trials, "best": best}));
            } else {
                for t in trials.iter().take(5) {
                    println!("validation NDCG@{} {:.4}  {}", a.split.k, t.validation_ndcg, t.params);
                }
                println!(
                    "best: --model {} --params {}  → test NDCG@{} {:.4} ({} settings tried, seed {})",
                    best.model,
                    best.params,
                    a.split.k,
                    best.metrics.ndcg,
                    trials.len(),
                    a.seed
                );
            }
            Ok(())
        }
        Command::Recommend(a) => {
            let io = recommend::ModelIo {
                load: a.load.as_deref(),
                save: a.save.as_deref(),
                item_features: a.item_features.as_deref(),
                cold_only: a.cold_items_only,
            };
            let r = recommend::batch(&a.train, a.users.as_deref(), &a.model, a.params.as_deref(), a.k, &a.out, &io)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Stats { top } => {
            let store = open_store(&config)?;
            let stats = tailor_store::stats::compute(&store, *top)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print_stats(&stats);
            }
            Ok(())
        }
    }
}

fn open_store(config: &Config) -> Result<RedbStore> {
    RedbStore::open(&config.store.data_dir)
        .with_context(|| format!("opening the store in {}", config.store.data_dir.display()))
}

fn progress_bar(cli: &Cli, total: u64) -> Option<ProgressBar> {
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

fn import(cli: &Cli, config: &Config, cmd: &ImportCmd) -> Result<()> {
    let store = open_store(config)?;
    let (target, args) = match cmd {
        ImportCmd::Events(a) => (Target::Events, a),
        ImportCmd::Items(a) => (Target::Items, a),
        ImportCmd::Users(a) => (Target::Users, a),
        ImportCmd::Movielens { dir } => {
            let report = tailor_ingest::presets::import_movielens(dir, &store, config.import.max_errors)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "imported MovieLens from {}: {} ratings, {} movies ({} genres), {} users; {} new events in {:.2} s",
                    dir.display(),
                    report.ratings,
                    report.movies,
                    report.genres,
                    report.users,
                    report.written.events_added,
                    report.seconds
                );
            }
            return Ok(());
        }
    };
    let mut mapping = match &args.preset {
        Some(p) if target == Target::Events => {
            if !args.map.is_empty() || !args.set.is_empty() {
                return Err(usage("--preset cannot be combined with --map/--set"));
            }
            tailor_ingest::presets::by_name(p)?
        }
        Some(_) => return Err(usage("--preset applies to `tailor import events`")),
        None => Mapping::parse(target, &args.map, &args.set)?,
    };
    mapping.ts_format = args.ts_format.clone();
    if args.latin1 {
        mapping.encoding = Encoding::Latin1;
    }
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => return Err(usage(format!("--delimiter {c:?}: must be one ASCII character"))),
        None => None,
    };
    let opts = ImportOptions {
        source: SourceOptions {
            format: args.format.as_deref().map(str::parse).transpose().map_err(usage)?,
            delimiter,
            max_line_bytes: config.import.max_line_bytes,
            encoding: mapping.encoding,
            columns: None,
        },
        skip_invalid: args.skip_invalid,
        rejects_path: args.rejects.clone(),
        max_errors: config.import.max_errors,
        limits: config.limits.clone(),
        allow_future: args.allow_future,
    };
    let total = fs_err::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(cli, total);
    let started = Instant::now();
    let mut on_progress = |p: Progress| {
        if let Some(b) = &bar {
            b.set_position(p.bytes);
            let rate = p.rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(if p.writing {
                format!("{} rows, writing…", p.rows)
            } else {
                format!("{} rows ({rate:.0} rows/s)", p.rows)
            });
        }
    };
    let result = import_file(&args.file, &mapping, &opts, &store, &mut on_progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let w = &report.written;
        println!(
            "imported {}: {} rows ({} rejected) in {:.2} s ({:.0} rows/s)\n  events: {} new, {} already stored\n  items: {} new, {} updated; users: {} new, {} updated",
            report.path,
            report.rows,
            report.rejected_rows,
            report.seconds,
            report.rows_per_second,
            w.events_added,
            w.events_duplicate,
            w.items_inserted,
            w.items_updated,
            w.users_inserted,
            w.users_updated
        );
        if let Some(r) = &report.rejects_file {
            println!("  rejected rows written to {r}");
        }
    }
    Ok(())
}

fn demo(cli: &Cli, config: &Config, args: &DemoArgs) -> Result<()> {
    let params = tailor_ingest::demo::DemoParams {
        seed: args.seed.unwrap_or(config.demo.seed),
        users: args.users.unwrap_or(config.demo.users),
        items: args.items.unwrap_or(config.demo.items),
        days: args.days.unwrap_or(config.demo.days),
        anonymous_sessions: config.demo.anonymous_sessions,
        rec_traffic: !args.no_rec_traffic,
        ..Default::default()
    };
    if params.users == 0 || params.items == 0 || params.days == 0 {
        return Err(usage("--users, --items and --days must be positive"));
    }
    let start = Instant::now();
    let spinner = progress_bar(cli, 3);
    if let Some(s) = &spinner {
        s.set_message("generating the demo shop");
    }
    let shop = tailor_ingest::demo::generate(&params);
    let generated = start.elapsed().as_secs_f64();
    if let Some(s) = &spinner {
        s.set_position(1);
        s.set_message("storing");
    }
    if let Some(path) = &args.truth_out {
        write_truth(path, &shop)?;
    }
    let (n_items, n_users, n_events) = (shop.items.len(), shop.users.len(), shop.events.len());
    let store = open_store(config)?;
    let batch = WriteBatch { items: shop.items, users: shop.users, events: shop.events, ..WriteBatch::default() };
    let written = store.write(batch)?;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut shares = std::collections::BTreeMap::new();
    for a in &shop.archetypes {
        *shares.entry(a.as_str()).or_insert(0u64) += 1;
    }
    let summary = serde_json::json!({
        "data_dir": config.store.data_dir,
        "params": params,
        "items": n_items,
        "users": n_users,
        "events": n_events,
        "written": written,
        "archetypes": shares,
        "generate_seconds": generated,
        "seconds": seconds,
        "serving": !args.no_serve,
    });
    if cli.json {
        println!("{summary}");
    } else {
        println!(
            "demo shop (seed {}) in {}: {} items, {} users, {} events over {} days; {} new events stored in {:.2} s",
            params.seed,
            config.store.data_dir.display(),
            n_items,
            n_users,
            n_events,
            params.days,
            written.events_added,
            seconds
        );
        println!(
            "hidden shopper archetypes: {}",
            shares.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
        println!("next: `tailor stats` for a summary; `tailor export events --out events.csv` for the raw data");
    }
    if args.no_serve {
        return Ok(());
    }
    drop(store);
    demo_segments(config)?;
    let mut config = config.clone();
    if config.serve.playbooks.is_empty() {
        use tailor_server::config::{Playbook, Strategy};
        let p = |segment: &str, strategy, weight| Playbook { segment: segment.into(), strategy, weight };
        config.serve.playbooks = vec![
            p("Bargain hunters", Strategy::BoostDiscounted, 0.3),
            p("Trend followers", Strategy::BoostNewArrivals, 0.3),
            p("Luxury", Strategy::PremiumOnly, 0.0),
        ];
    }
    if config.serve.experiments.is_empty() {
        // An A/B test of diversified lists on the home slot, and a layout bandit there.
        let mut e = tailor_experiment::ExperimentSpec::new("home-diversity", &["control", "diverse"]);
        e.description = Some("Does a more diverse home list get more clicks without losing revenue?".into());
        e.slots = vec!["home".into()];
        e.variants[1].params.insert("diversity".into(), "0.3".into());
        e.guardrails = vec![tailor_experiment::Metric::RevenuePerUser];
        config.serve.experiments = vec![e];
    }
    if config.serve.bandits.is_empty() {
        config.serve.bandits = vec![tailor_server::experiments::BanditConfig {
            slot: "home".into(),
            arms: vec!["carousel".into(), "grid".into(), "list".into()],
            policy: "thompson".into(),
            per_segment: true,
        }];
    }
    let addr = config.serve.addr.clone();
    let user = shop_first_user(&config)?;
    println!("serving the demo shop on http://{addr}  (Ctrl-C stops)");
    println!("  open http://{addr}/demo   the storefront: switch shoppers, browse, buy");
    println!("  curl 'http://{addr}/v1/users/{user}/recommendations?k=5'");
    println!("  curl 'http://{addr}/v1/users/{user}/layout?slot=home'");
    println!("  curl 'http://{addr}/v1/users/{user}/recommendations?k=5&slot=home'   # in the home-diversity A/B test");
    println!("  curl http://{addr}/v1/experiments/home-diversity/report");
    println!("  curl 'http://{addr}/v1/popular?k=5'");
    println!(
        "  curl -X POST http://{addr}/v1/events -d '{{\"user\":\"{user}\",\"item\":\"<an item id>\",\"kind\":\"purchase\"}}'"
    );
    println!("  curl http://{addr}/openapi.json");
    serve(&config, None)
}

/// The demo's rule segments (bargain hunters, trend followers, luxury), which its playbooks
/// use, and a k-means segmentation of behaviour.
fn demo_segments(config: &Config) -> Result<()> {
    let store = open_store(config)?;
    let rules = config.store.data_dir.join("demo-rules.toml");
    fs_err::write(&rules, include_str!("../../../examples/demo-rules.toml"))?;
    let opts = segment::RunOptions {
        method: "rules".into(),
        k: "auto".into(),
        features: None,
        rules: Some(rules),
        as_of: None,
        name: None,
        names: None,
        eps: None,
        min_samples: 5,
        n_init: 1,
        seed: 0,
        top_categories: config.segment.top_categories,
        dry_run: false,
    };
    let out = segment::run(&store, &opts)?;
    tracing::info!(segments = out.record.names.len(), "demo rule segments stored");
    // And a behavioural clustering (k-means over the default features), for the dashboard's
    // map and explanations.
    let opts = segment::RunOptions {
        method: "kmeans".into(),
        k: "5".into(),
        rules: None,
        name: Some("behaviour".into()),
        ..opts
    };
    let out = segment::run(&store, &opts)?;
    tracing::info!(segments = out.record.names.len(), "demo behaviour segments stored");
    Ok(())
}

fn shop_first_user(config: &Config) -> Result<String> {
    let store = open_store(config)?;
    Ok(store.user_names()?.into_iter().next().unwrap_or_else(|| "u1".into()))
}

fn server_state(config: &Config, store: std::sync::Arc<dyn tailor_store::Store>) -> Result<tailor_server::AppState> {
    tailor_server::AppState::open(
        config.serve.clone(),
        store,
        config.interactions.clone(),
        config.store.data_dir.join("models"),
    )
    .map_err(|e| anyhow::anyhow!("starting the server state: {e}"))
}

/// `tailor train`: one retraining with the promotion check.
fn train(cli: &Cli, config: &Config) -> Result<()> {
    let store: std::sync::Arc<dyn tailor_store::Store> = std::sync::Arc::new(open_store(config)?);
    let state = server_state(config, store)?;
    // Load the live version first so the candidate is compared with it.
    let reg = state.registry.read().map_err(|e| anyhow::anyhow!(e.message))?;
    if reg.live.is_some_and(|v| state.registry.has_model(v)) {
        state.reload_blocking().map_err(|e| anyhow::anyhow!("loading the live version: {}", e.message))?;
    }
    let spinner = progress_bar(cli, 1);
    if let Some(s) = &spinner {
        s.set_message("training and measuring the candidate");
    }
    let r = state.retrain_blocking().map_err(|e| anyhow::anyhow!("training: {}", e.message))?;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    if cli.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "version {}: {} in {:.2} s, holdout NDCG@10 {} — {}",
            r.candidate.version,
            if r.promoted { "promoted" } else { "rejected" },
            r.candidate.train_seconds,
            r.candidate.holdout_ndcg.map_or("-".into(), |n| format!("{n:.4}")),
            r.reason
        );
    }
    Ok(())
}

/// `tailor model list|rollback`.
fn model(cli: &Cli, config: &Config, cmd: &ModelCmd) -> Result<()> {
    let registry = tailor_server::registry::Registry::new(config.store.data_dir.join("models"));
    let mut reg = registry.read().map_err(|e| anyhow::anyhow!(e.message))?;
    match cmd {
        ModelCmd::List => {
            if cli.json {
                println!("{}", serde_json::to_string(&reg)?);
            } else {
                println!(
                    "{:>2} {:>7}  {:<20}  {:>8}  {:>9}  {:>8}  kept",
                    "", "version", "trained at", "seconds", "NDCG@10", "promoted"
                );
                for v in &reg.versions {
                    println!(
                        "{:>2} {:>7}  {:<20}  {:>8.2}  {:>9}  {:>8}  {}",
                        if reg.live == Some(v.version) { "*" } else { "" },
                        v.version,
                        v.trained_at,
                        v.train_seconds,
                        v.holdout_ndcg.map_or("-".into(), |n| format!("{n:.4}")),
                        v.promoted,
                        if registry.has_model(v.version) { "yes" } else { "no" }
                    );
                }
            }
        }
        ModelCmd::Rollback { to } => {
            let target = match to {
                Some(v) => *v,
                None => reg
                    .versions
                    .iter()
                    .rev()
                    .filter(|v| v.promoted && Some(v.version) < reg.live && registry.has_model(v.version))
                    .map(|v| v.version)
                    .next()
                    .ok_or_else(|| usage("no earlier version with a kept model file to roll back to"))?,
            };
            if !registry.has_model(target) {
                return Err(usage(format!("version {target} has no kept model file (see `tailor model list`)")));
            }
            let from = reg.live;
            reg.live = Some(target);
            registry.write(&reg).map_err(|e| anyhow::anyhow!(e.message))?;
            if cli.json {
                println!("{}", serde_json::json!({"from": from, "live": target}));
            } else {
                println!(
                    "live version: {} → {target}; running servers switch on POST /v1/admin/reload (a restart serves it too)",
                    from.map_or("none".into(), |v| v.to_string())
                );
            }
        }
    }
    Ok(())
}

/// `tailor serve`: loads the state, trains, serves until Ctrl-C / SIGTERM.
fn serve(config: &Config, addr: Option<&str>) -> Result<()> {
    let addr_text = addr.unwrap_or(&config.serve.addr).to_string();
    let addr: std::net::SocketAddr = addr_text
        .parse()
        .map_err(|e| usage(format!("--addr {addr_text}: not an address like 127.0.0.1:8080 ({e})")))?;
    let store: std::sync::Arc<dyn tailor_store::Store> = std::sync::Arc::new(open_store(config)?);
    let start = Instant::now();
    let state = server_state(config, store)?;
    let info = state.start_blocking().map_err(|e| anyhow::anyhow!("loading the served models: {}", e.message))?;
    tracing::info!(seconds = start.elapsed().as_secs_f64(), version = info.version, pairs = info.pairs, "ready");
    eprintln!(
        "models trained in {:.2} s ({} users, {} items, {} pairs); listening on http://{addr}",
        info.train_seconds, info.users, info.items, info.pairs
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(tailor_server::serve(std::sync::Arc::new(state), addr))?;
    Ok(())
}

fn write_truth(path: &Path, shop: &tailor_ingest::demo::DemoShop) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["user", "archetype"])?;
    for (u, a) in shop.users.iter().zip(&shop.archetypes) {
        w.write_record([u.id.0.as_str(), a.as_str()])?;
    }
    w.flush()?;
    Ok(())
}

fn print_stats(s: &tailor_store::stats::Stats) {
    println!("events        {:>12}", s.events);
    for (k, v) in &s.events_by_kind {
        println!("  {k:<12}{v:>12}");
    }
    println!("users         {:>12}  ({} with attributes)", s.users, s.user_records);
    println!("items         {:>12}  ({} with catalog data)", s.items, s.item_records);
    println!("orders        {:>12}", s.orders);
    println!("sessions      {:>12}", s.sessions);
    println!("countries     {:>12}", s.countries);
    println!("anonymous     {:>12}  events without a known user", s.anonymous_events);
    println!("date range    {} → {}", s.first_event.as_deref().unwrap_or("-"), s.last_event.as_deref().unwrap_or("-"));
    println!("revenue       {:>12.2}  (returns {:.2})", s.revenue, s.returned);
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "funnel        view→cart {}  cart→purchase {}  view→purchase {}",
        pct(s.funnel.view_to_cart),
        pct(s.funnel.cart_to_purchase),
        pct(s.funnel.view_to_purchase)
    );
    if !s.top_items.is_empty() {
        println!("top items            purchases     views    events");
        for t in &s.top_items {
            println!("  {:<20}{:>10}{:>10}{:>10}", t.item, t.purchases, t.views, t.events);
        }
    }
}

fn summarize(name: &str, units: &str, per_run: f64, times: &mut [f64]) -> serde_json::Value {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    serde_json::json!({
        "bench": name,
        "runs": times.len(),
        "seconds_min": times[0],
        "seconds_median": median,
        "units": units,
        "per_run": per_run,
        "rate_per_second_median": per_run / median,
        "rate_per_second_best": per_run / times[0],
    })
}

fn bench(cli: &Cli, config: &Config, cmd: &BenchCmd) -> Result<()> {
    let result = match cmd {
        BenchCmd::Ingest { file, preset, repeat } => {
            let mapping = match preset {
                Some(p) => tailor_ingest::presets::by_name(p)?,
                None => Mapping::parse(Target::Events, &[], &[])?,
            };
            let opts = ImportOptions::default();
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..(*repeat).max(1) {
                let dir = tempfile::tempdir()?;
                let store = RedbStore::open(dir.path())?;
                let t = Instant::now();
                let report = import_file(file, &mapping, &opts, &store, &mut |_| {})?;
                times.push(t.elapsed().as_secs_f64());
                rows = report.rows;
            }
            summarize("ingest", "rows", rows as f64, &mut times)
        }
        BenchCmd::Assign { k, dim, n } => {
            let (k, d, n) = (*k, (*dim).max(1), (*n).max(1));
            let mut rng = tailor_core::rng::Rng::new(1);
            let train: Vec<f64> = (0..20_000 * d).map(|_| rng.normal()).collect();
            let model = tailor_segment::kmeans::KMeansParams { k, ..Default::default() }.fit(&train, d)?;
            let users: Vec<f64> = (0..10_000 * d).map(|_| rng.normal()).collect();
            let mut checksum = 0usize;
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for i in 0..n {
                    let row = &users[(i % 10_000) * d..(i % 10_000 + 1) * d];
                    checksum = checksum.wrapping_add(model.predict(std::hint::black_box(row)));
                }
                times.push(t.elapsed().as_secs_f64());
            }
            let mut v = summarize("assign", "assignments", n as f64, &mut times);
            v["nanoseconds_per_assignment_median"] =
                serde_json::json!(v["seconds_median"].as_f64().unwrap_or(0.0) * 1e9 / n as f64);
            v["checksum"] = serde_json::json!(checksum);
            v
        }
        BenchCmd::Segment { repeat, k } => {
            let store = open_store(config)?;
            let opts = segment::RunOptions {
                method: "kmeans".into(),
                k: k.clone(),
                features: None,
                rules: None,
                as_of: None,
                name: Some("bench".into()),
                names: None,
                eps: None,
                min_samples: 5,
                n_init: 4,
                seed: 0,
                top_categories: config.segment.top_categories,
                dry_run: false,
            };
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..(*repeat).max(1) {
                let t = Instant::now();
                last = Some(segment::run(&store, &opts)?);
                times.push(t.elapsed().as_secs_f64());
            }
            let out = last.context("no run")?;
            let users = out.record.users;
            let mut v = summarize("segment", "users", users as f64, &mut times);
            v["timings_last_run"] = serde_json::to_value(&out.record.timings)?;
            v["k"] = serde_json::json!(out.record.names.len());
            // Online assignment with the stored encoder and centres.
            let pop = segment::population(&store, None, out.record.top_categories.len())?;
            let (ns, checksum) = segment::bench_assign(&pop.table, &out.record, 200_000)?;
            v["assign_nanoseconds_per_user_median"] = serde_json::json!(ns);
            v["assign_checksum"] = serde_json::json!(checksum);
            v
        }
        BenchCmd::Topk { items, factors, history, n } => {
            use tailor_recommend::Model;
            let (n_items, k) = ((*items).max(1), (*factors).max(1));
            let mut rng = tailor_core::rng::Rng::new(7);
            let item_f: Vec<f32> = (0..n_items * k).map(|_| (rng.normal() * 0.1) as f32).collect();
            let user_f: Vec<f32> = (0..1000 * k).map(|_| (rng.normal() * 0.1) as f32).collect();
            let params = tailor_recommend::als::AlsParams { factors: k, ..Default::default() };
            let model = tailor_recommend::als::AlsModel::from_factors(params, user_f, item_f)?;
            let filter = tailor_recommend::Filter::default();
            let empty = tailor_recommend::History::empty();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
            let (mut times, mut checksum) = (Vec::new(), 0u64);
            pool.install(|| {
                for _ in 0..5 {
                    let t = Instant::now();
                    for q in 0..*n {
                        let recs = model.recommend(Some((q % 1000) as u32), empty, 10, &filter);
                        checksum = checksum.wrapping_add(u64::from(recs[0].0));
                    }
                    times.push(t.elapsed().as_secs_f64());
                }
            });
            let mut v = summarize("topk", "queries", *n as f64, &mut times);
            v["milliseconds_per_query_median"] =
                serde_json::json!(v["seconds_median"].as_f64().unwrap_or(0.0) * 1e3 / *n as f64);
            // The int8 index with exact re-ranking of the best 100: time and recall@10.
            let index = tailor_recommend::quantized::QuantizedIndex::build(&model.item_factors, k);
            let (mut qtimes, mut hits, mut total) = (Vec::new(), 0usize, 0usize);
            pool.install(|| {
                for round in 0..5 {
                    let t = Instant::now();
                    for q in 0..*n {
                        let u = model.user((q % 1000) as u32).unwrap_or(&[]);
                        let recs = index.top_k(&model.item_factors, u, 10, 100, |_| true);
                        checksum = checksum.wrapping_add(u64::from(recs.first().map_or(0, |r| r.0)));
                    }
                    qtimes.push(t.elapsed().as_secs_f64());
                    if round == 0 {
                        for q in 0..(*n).min(1000) {
                            let u = model.user(q as u32).unwrap_or(&[]);
                            let exact = model.recommend(Some(q as u32), empty, 10, &filter);
                            let approx = index.top_k(&model.item_factors, u, 10, 100, |_| true);
                            hits += approx.iter().filter(|a| exact.iter().any(|e| e.0 == a.0)).count();
                            total += exact.len();
                        }
                    }
                }
            });
            qtimes.sort_by(f64::total_cmp);
            // The approximate scan alone (no selection or re-ranking).
            let mut scan_times = Vec::new();
            let mut approx = vec![0f32; index.len()];
            pool.install(|| {
                for _ in 0..5 {
                    let t = Instant::now();
                    for q in 0..*n {
                        let u = model.user((q % 1000) as u32).unwrap_or(&[]);
                        index.scores(u, &mut approx);
                        checksum = checksum.wrapping_add(u64::from(approx[q % approx.len().max(1)].to_bits()));
                    }
                    scan_times.push(t.elapsed().as_secs_f64());
                }
            });
            scan_times.sort_by(f64::total_cmp);
            v["quantized_scan_milliseconds_median"] =
                serde_json::json!(scan_times[scan_times.len() / 2] * 1e3 / *n as f64);
            v["quantized_milliseconds_per_query_median"] =
                serde_json::json!(qtimes[qtimes.len() / 2] * 1e3 / *n as f64);
            v["quantized_recall_at_10"] = serde_json::json!(hits as f64 / total.max(1) as f64);
            v["quantized_index_bytes"] = serde_json::json!(index.bytes());
            // Batch jobs: 1,000 users one by one vs one GEMM per block of 64 (one thread each).
            let batch_users: Vec<(Option<u32>, tailor_recommend::History<'_>)> =
                (0..1000u32).map(|u| (Some(u), empty)).collect();
            let (mut single, mut batched) = (Vec::new(), Vec::new());
            pool.install(|| {
                for _ in 0..3 {
                    let t = Instant::now();
                    for (u, h) in &batch_users {
                        checksum = checksum.wrapping_add(model.recommend(*u, *h, 10, &filter).len() as u64);
                    }
                    single.push(t.elapsed().as_secs_f64());
                    let t = Instant::now();
                    checksum = checksum.wrapping_add(model.recommend_batch(&batch_users, 10, &filter).len() as u64);
                    batched.push(t.elapsed().as_secs_f64());
                }
            });
            single.sort_by(f64::total_cmp);
            batched.sort_by(f64::total_cmp);
            v["one_by_one_milliseconds_per_user"] = serde_json::json!(single[1]);
            v["gemm_batch_milliseconds_per_user"] = serde_json::json!(batched[1]);
            // Fold-in of one user with `history` items.
            let mut hist: Vec<u32> = (0..*history).map(|_| rng.below(n_items) as u32).collect();
            hist.sort_unstable();
            hist.dedup();
            let weights = vec![1f32; hist.len()];
            let h = tailor_recommend::History { items: &hist, weights: &weights, recency: None };
            let mut fold = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..*n {
                    checksum = checksum.wrapping_add(model.fold_in(std::hint::black_box(h)).len() as u64);
                }
                fold.push(t.elapsed().as_secs_f64() * 1e6 / *n as f64);
            }
            fold.sort_by(f64::total_cmp);
            v["fold_in_microseconds_median"] = serde_json::json!(fold[fold.len() / 2]);
            v["checksum"] = serde_json::json!(checksum);
            v
        }
        BenchCmd::Experiment { n, exposures } => return experiment::bench(cli.json, *n, *exposures),
        BenchCmd::Csr { repeat } => {
            let store = open_store(config)?;
            let mut times = Vec::new();
            let mut n = 0;
            let mut nnz = 0;
            for _ in 0..(*repeat).max(1) {
                let t = Instant::now();
                let m = tailor_store::load_interactions(
                    &store,
                    tailor_core::InteractionsBuilder::new(config.interactions.clone()),
                )?;
                times.push(t.elapsed().as_secs_f64());
                n = store.counts()?.events;
                nnz = m.nnz();
            }
            let mut v = summarize("csr", "events", n as f64, &mut times);
            v["nnz"] = serde_json::json!(nnz);
            v
        }
    };
    if cli.json {
        println!("{result}");
    } else {
        println!(
            "{}: {} {} per run, median {:.3} s ({:.0} {}/s), best {:.3} s ({:.0} {}/s) over {} runs",
            result["bench"].as_str().unwrap_or_default(),
            result["per_run"],
            result["units"].as_str().unwrap_or_default(),
            result["seconds_median"].as_f64().unwrap_or_default(),
            result["rate_per_second_median"].as_f64().unwrap_or_default(),
            result["units"].as_str().unwrap_or_default(),
            result["seconds_min"].as_f64().unwrap_or_default(),
            result["rate_per_second_best"].as_f64().unwrap_or_default(),
            result["units"].as_str().unwrap_or_default(),
            result["runs"],
        );
    }
    Ok(())
}

fn cluster_cmd(cli: &Cli, a: &ClusterArgs) -> Result<()> {
    let started = Instant::now();
    let method = if a.method == "dbscan" {
        let p = tailor_segment::dbscan::DbscanParams { eps: a.eps.unwrap_or(1.0), min_samples: a.min_samples };
        p.validate().map_err(|e| usage(e.to_string()))?;
        cluster::Method::Dbscan { eps: a.eps, min_samples: a.min_samples }
    } else {
        let k = if a.k == "auto" {
            None
        } else {
            Some(a.k.parse::<usize>().map_err(|_| usage(format!("--k {}: expected a number or auto", a.k)))?)
        };
        if a.method == "minibatch" {
            match k {
                Some(k) if k > 0 => cluster::Method::MiniBatch(tailor_segment::online::MiniBatchParams {
                    k,
                    seed: a.seed,
                    ..Default::default()
                }),
                _ => return Err(usage("--k must be a number of at least 1 for minibatch")),
            }
        } else if a.method == "ward" {
            match k {
                Some(k) if k > 0 => cluster::Method::Ward { k },
                _ => return Err(usage("--k must be a number of at least 1 for ward")),
            }
        } else {
            let params = tailor_segment::kmeans::KMeansParams {
                k: k.unwrap_or(2),
                n_init: a.n_init,
                max_iter: a.max_iter,
                tol: a.tol,
                seed: a.seed,
            };
            params.validate().map_err(|e| usage(e.to_string()))?;
            cluster::Method::KMeans { params, auto: k.is_none() }
        }
    };
    let mut m = cluster::read_matrix(&a.input, a.no_header)?;
    let opts = cluster::ClusterOptions { scale: a.scale.clone(), method, seed: a.seed, no_silhouette: a.no_silhouette };
    let (report, labels) = cluster::run(&mut m, &opts, started)?;
    if let Some(out) = &a.out {
        let mut w = csv::Writer::from_path(out).with_context(|| format!("writing {}", out.display()))?;
        w.write_record(["row", "label"])?;
        for (i, l) in labels.iter().enumerate() {
            // Noise is -1, as scikit-learn writes it.
            w.write_record([i.to_string(), l.map_or("-1".to_owned(), |l| l.to_string())])?;
        }
        w.flush()?;
    }
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} on {} rows x {} columns: {} clusters, {} noise, inertia {}, silhouette {}, {} iterations, {:.3} s (fit {:.3} s)",
            report.method,
            report.n,
            report.d,
            report.k,
            report.noise,
            report.inertia.map_or("-".into(), |i| format!("{i:.6e}")),
            report
                .silhouette
                .map_or("-".into(), |s| format!("{s:.4}{}", if report.silhouette_sampled { " (sampled)" } else { "" })),
            report.iterations,
            report.seconds,
            report.fit_seconds
        );
        if let Some(eps) = report.eps {
            println!("eps = {eps}");
        }
        println!("cluster sizes: {:?}", report.sizes);
    }
    Ok(())
}

fn parse_time(flag: &str, s: &str) -> Result<Timestamp> {
    Timestamp::parse_auto(s).map_err(|e| usage(format!("{flag} {s:?}: {e}")))
}

/// A membership as text: `a + b`, or `(none)`.
fn segments_text(v: &[String]) -> String {
    if v.is_empty() { "(none)".to_owned() } else { v.join(" + ") }
}

fn segment_cmd(cli: &Cli, config: &Config, cmd: &SegmentCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        SegmentCmd::Run(a) => {
            if a.if_due {
                let name = a.name.clone().unwrap_or_else(|| a.method.clone());
                if let Some(last) = store.segmentation(&name, None)? {
                    let since = store.membership_history(&name, None)?;
                    let updates = since.iter().filter(|c| c.run.is_none() && c.at >= last.created_at).count() as u64;
                    let due = config.segment.policy().due(last.created_at.0, Timestamp::now().0, updates, 0.0);
                    match due {
                        None => {
                            if cli.json {
                                println!("{}", serde_json::json!({"segmentation": name, "run": last.id, "due": false}));
                            } else {
                                println!("segmentation {name:?} run {} is not due for a recluster", last.id);
                            }
                            return Ok(());
                        }
                        Some(why) => tracing::info!("reclustering {name:?}: {why}"),
                    }
                }
            }
            let opts = segment::RunOptions {
                method: a.method.clone(),
                k: a.k.clone(),
                features: a.features.clone(),
                rules: a.rules.clone(),
                as_of: a.as_of.as_deref().map(|s| parse_time("--as-of", s)).transpose()?,
                name: a.name.clone(),
                names: a.names.clone(),
                eps: a.eps,
                min_samples: a.min_samples,
                n_init: a.n_init,
                seed: a.seed,
                top_categories: a.top_categories.unwrap_or(config.segment.top_categories),
                dry_run: a.dry_run,
            };
            let out = segment::run(&store, &opts)?;
            if cli.json {
                let v = serde_json::json!({"segmentation": out.name, "run": out.run_id, "record": out.record});
                println!("{}", serde_json::to_string(&v)?);
            } else {
                segment::print_summary(&out.name, out.run_id, &out.record);
            }
        }
        SegmentCmd::Show { name, segmentation } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let rec = segment::record_of(&run)?;
            match name {
                None if cli.json => println!("{}", serde_json::to_string(&run)?),
                None => {
                    let mut names: Vec<String> = store.segmentation_runs()?.into_iter().map(|r| r.name).collect();
                    names.sort();
                    names.dedup();
                    println!("segmentations: {}", names.join(", "));
                    segment::print_summary(&run.name, Some(run.id), &rec);
                }
                Some(n) => {
                    let k = rec.names.iter().position(|x| x == n).ok_or_else(|| {
                        usage(format!(
                            "no segment {n:?} in segmentation {:?}; it has: {}",
                            run.name,
                            rec.names.join(", ")
                        ))
                    })?;
                    let summary = rec.summaries.get(k);
                    let def = run.segments.get(k);
                    if cli.json {
                        let v = serde_json::json!({"segmentation": run.name, "run": run.id, "segment": def,
                            "summary": summary, "explanation": rec.explanations.get(k)});
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        println!("{n} (segmentation {:?}, run {})", run.name, run.id);
                        if let Some(d) = def.and_then(|d| d.description.as_deref()) {
                            println!("  {d}");
                        }
                        if let Some(s) = summary {
                            println!(
                                "  users {} ({:.1}%), mean recency {:.1} days, orders {:.2}, monetary {:.2}, AOV {:.2}",
                                s.size,
                                s.share * 100.0,
                                s.recency_days,
                                s.frequency,
                                s.monetary,
                                s.aov
                            );
                            let mix = |v: &[(String, f64)]| {
                                v.iter().map(|(k, p)| format!("{k} {:.0}%", p * 100.0)).collect::<Vec<_>>().join(", ")
                            };
                            println!("  top categories: {}", mix(&s.top_categories));
                            println!(
                                "  main device: {}, mean age {}",
                                s.main_device.as_deref().unwrap_or("-"),
                                s.age.map_or("unknown".into(), |a| format!("{a:.1}"))
                            );
                            println!("  gender: {}; urbanicity: {}", mix(&s.gender), mix(&s.urbanicity));
                        }
                        for r in rec.explanations.get(k).into_iter().flatten() {
                            println!(
                                "  rule: {} (precision {:.0}%, coverage {:.0}%)",
                                r.rule,
                                r.precision * 100.0,
                                r.coverage * 100.0
                            );
                        }
                    }
                }
            }
        }
        SegmentCmd::Users { name, segmentation, limit } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            if !run.segments.iter().any(|s| &s.name == name) {
                let have: Vec<&str> = run.segments.iter().map(|s| s.name.as_str()).collect();
                return Err(usage(format!(
                    "no segment {name:?} in segmentation {:?}; it has: {}",
                    run.name,
                    have.join(", ")
                )));
            }
            let mut users = store.segment_members(&run.name, name)?;
            if *limit > 0 {
                users.truncate(*limit);
            }
            if cli.json {
                println!("{}", serde_json::to_string(&users)?);
            } else {
                for u in users {
                    println!("{u}");
                }
            }
        }
        SegmentCmd::Explain { segmentation } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let rec = segment::record_of(&run)?;
            if cli.json {
                let v = serde_json::json!({"segmentation": run.name, "run": run.id, "tree_accuracy": rec.tree_accuracy,
                    "segments": rec.names.iter().zip(&rec.explanations).map(|(n, e)| serde_json::json!({"name": n, "rules": e})).collect::<Vec<_>>()});
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("segmentation {:?} run {} ({})", run.name, run.id, rec.method);
                segment::print_explanations(&rec);
            }
        }
        SegmentCmd::Plot { out, k_chart, segmentation } => {
            let written = segment::plot(&store, segmentation.as_deref(), out, k_chart.as_deref())?;
            if cli.json {
                println!("{}", serde_json::to_string(&written)?);
            } else {
                for w in written {
                    println!("wrote {}", w.display());
                }
            }
        }
        SegmentCmd::Assign { user, segmentation, as_of, apply } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let as_of = as_of.as_deref().map(|s| parse_time("--as-of", s)).transpose()?;
            let a = segment::assign(&store, &run, user, as_of, *apply)?;
            if cli.json {
                println!("{}", serde_json::to_string(&a)?);
            } else {
                let segs = if a.segments.is_empty() { "(no segment)".to_owned() } else { a.segments.join(" + ") };
                let dist = a.distance.map_or(String::new(), |d| format!(", distance {d:.3}"));
                let stored = if *apply { if a.changed { ", stored (changed)" } else { ", unchanged" } } else { "" };
                println!(
                    "{user}: {segs} (segmentation {:?} run {}{dist}{stored}; assigned in {:.1} µs)",
                    a.segmentation, a.run, a.assign_micros
                );
            }
        }
        SegmentCmd::History { user, segmentation, all } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let changes = store.membership_history(&run.name, user.as_deref())?;
            if *all || user.is_some() {
                if cli.json {
                    println!("{}", serde_json::to_string(&changes)?);
                } else {
                    for c in changes {
                        let how = c.run.map_or("real time".to_owned(), |r| format!("run {r}"));
                        println!("{} {}: {} -> {} ({how})", c.at, c.user, segments_text(&c.from), segments_text(&c.to));
                    }
                }
            } else {
                // From → to counts of the latest run.
                let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
                for c in changes.iter().filter(|c| c.run == Some(run.id)) {
                    *counts.entry((segments_text(&c.from), segments_text(&c.to))).or_default() += 1;
                }
                if cli.json {
                    let v: Vec<serde_json::Value> =
                        counts.iter().map(|((f, t), n)| serde_json::json!({"from": f, "to": t, "users": n})).collect();
                    println!("{}", serde_json::to_string(&v)?);
                } else {
                    println!("moves made by run {} of {:?}:", run.id, run.name);
                    let mut rows: Vec<_> = counts.into_iter().collect();
                    rows.sort_by_key(|b| std::cmp::Reverse(b.1));
                    for ((f, t), n) in rows {
                        println!("{n:>8}  {f} -> {t}");
                    }
                }
            }
        }
    }
    Ok(())
}
