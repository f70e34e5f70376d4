//! `tailor eval`, `tailor eval-context` and `tailor tune`: offline comparison and tuning.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{Cli, context, eval, recommend, usage};

#[derive(Args, Debug)]
pub(crate) struct SplitArgs {
    /// Interactions `user item timestamp weight` (TSV); split here like split.py (last 20% per user).
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// Or a train file (split.py's train.tsv) ...
    #[arg(long)]
    pub(crate) train: Option<PathBuf>,
    /// ... and its test file.
    #[arg(long)]
    pub(crate) test: Option<PathBuf>,
    /// How --input is split: temporal (split.py's), global (one time cut-off), leave-last-out, random,
    /// cold-user, cold-item.
    #[arg(long, default_value = "temporal")]
    pub(crate) split: String,
    /// Test share for --input.
    #[arg(long, default_value = "0.2")]
    pub(crate) test_fraction: String,
    /// Seed of the random, cold-user and cold-item splits.
    #[arg(long, default_value_t = 0)]
    pub(crate) split_seed: u64,
    /// Cut-off K of the metrics.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
}

impl SplitArgs {
    fn load(&self) -> Result<(Vec<tailor_eval::split::Row>, Vec<tailor_eval::split::Row>)> {
        let spec = eval::SplitSpec::parse(&self.split, &self.test_fraction, self.split_seed)?;
        eval::load(self.input.as_deref(), self.train.as_deref(), self.test.as_deref(), spec)
    }
}

#[derive(Args, Debug)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub(crate) split: SplitArgs,
    /// Models, comma separated; parameters after a colon with `;` between them:
    /// `popular,itemknn,als:factors=64;regularization=10,ease:lambda=800;recency=5`.
    #[arg(long, default_value = "popular,itemknn,als,ease")]
    pub(crate) models: String,
    /// Write the results as JSON here.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Bar chart of NDCG@K (.svg or .png).
    #[arg(long)]
    pub(crate) chart: Option<PathBuf>,
    /// Metrics per user group too: a `user<TAB>group` file (segments, demographics).
    #[arg(long)]
    pub(crate) groups: Option<PathBuf>,
    /// Training curves (test NDCG@K after each ALS iteration / BPR epoch) as a line chart (.svg or .png).
    #[arg(long)]
    pub(crate) curves: Option<PathBuf>,
    /// Calibrated re-ranking (Steck 2018) to these genres: an `item<TAB>genre|genre` file;
    /// each model's lists are re-ranked for every --calibration weight.
    #[arg(long, value_name = "FILE")]
    pub(crate) genres: Option<PathBuf>,
    /// Calibration weights λ in [0, 1), comma separated (with --genres).
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,0.99")]
    pub(crate) calibration: Vec<f64>,
    /// Candidates re-ranked per user for calibration.
    #[arg(long, default_value_t = 100)]
    pub(crate) calibration_pool: usize,
    /// Extra reports: `fairness` (NDCG per --groups group and their gap, exposure by
    /// --providers and popularity band against catalog, interaction and test shares, ARP, APLT).
    #[arg(long, value_enum)]
    pub(crate) report: Vec<EvalReport>,
    /// Item providers for the fairness report: an `item<TAB>provider` file (e.g. brands).
    #[arg(long, value_name = "FILE")]
    pub(crate) providers: Option<PathBuf>,
}

/// Extra reports of `tailor eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EvalReport {
    /// Fairness and popularity bias.
    Fairness,
}

#[derive(Args, Debug)]
pub(crate) struct EvalContextArgs {
    /// Delimited file with a header (tab-separated if the header has a tab, else comma).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// User column.
    #[arg(long, default_value = "user")]
    pub(crate) user: String,
    /// Item column.
    #[arg(long, default_value = "item")]
    pub(crate) item: String,
    /// Weight column (e.g. frappe's `cnt`); 1 per row without it.
    #[arg(long)]
    pub(crate) weight: Option<String>,
    /// How the weight becomes an interaction strength.
    #[arg(long, value_enum, default_value = "log1p")]
    pub(crate) weight_transform: context::WeightTransform,
    /// Context columns, comma separated; their combination is one context value (e.g. `daytime,isweekend`);
    /// `daypart(ts)` and `weekpart(ts)` derive night/morning/afternoon/evening and weekday/weekend from a time column.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) context: Vec<String>,
    /// Share of each user's triples held out.
    #[arg(long, default_value_t = 0.2)]
    pub(crate) test_fraction: f64,
    /// Seed of the split and of the models.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Cut-off K of the metrics.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// ALS/iTALS parameters `key=value,...` (factors, regularization, alpha, iterations, solver, cg_steps).
    #[arg(long)]
    pub(crate) params: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct TuneArgs {
    #[command(flatten)]
    pub(crate) split: SplitArgs,
    /// Model: als, ease or itemknn.
    #[arg(long)]
    pub(crate) model: String,
    /// Settings tried.
    #[arg(long, default_value_t = 20)]
    pub(crate) budget: usize,
    /// Seed of the search.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

/// `tailor eval`.
pub(crate) fn eval(cli: &Cli, a: &EvalArgs) -> Result<()> {
    let (train, test) = a.split.load()?;
    let groups = a.groups.as_deref().map(eval::read_groups).transpose()?;
    let genres = a.genres.as_deref().map(eval::read_genres).transpose()?;
    let providers = a.providers.as_deref().map(eval::read_groups).transpose()?;
    let fairness =
        a.report.contains(&EvalReport::Fairness).then_some(eval::FairnessAsk { providers: providers.as_ref() });
    if providers.is_some() && fairness.is_none() {
        return Err(usage("--providers is for --report fairness"));
    }
    if let Some(bad) = a.calibration.iter().find(|l| !(0.0..1.0).contains(*l)) {
        return Err(usage(format!("--calibration {bad}: a weight in [0, 1)")));
    }
    if a.calibration_pool < a.split.k || a.calibration_pool > 10_000 {
        return Err(usage(format!("--calibration-pool {}: between K ({}) and 10000", a.calibration_pool, a.split.k)));
    }
    let mut results = Vec::new();
    for m in a.models.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (name, spec) = m.split_once(':').unwrap_or((m, ""));
        let spec = spec.replace(';', ",");
        let mut r = eval::score(&train, &test, name, &spec, a.split.k, groups.as_ref(), fairness.as_ref())?;
        if a.curves.is_some() {
            r.curve = eval::curve(&train, &test, name, &spec, a.split.k)?;
        }
        if let Some(g) = &genres {
            r.calibration =
                eval::calibration_sweep(&train, &test, name, &spec, a.split.k, g, &a.calibration, a.calibration_pool)?;
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
        eval::print_calibration(&results);
        eval::print_fairness(&results);
    }
    Ok(())
}

/// `tailor eval-context`.
pub(crate) fn eval_context(cli: &Cli, a: &EvalContextArgs) -> Result<()> {
    if !(a.test_fraction > 0.0 && a.test_fraction < 1.0) {
        return Err(usage("--test-fraction must be between 0 and 1"));
    }
    let cols = context::Columns { user: &a.user, item: &a.item, weight: a.weight.as_deref(), context: &a.context };
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

/// `tailor tune`.
pub(crate) fn tune(cli: &Cli, a: &TuneArgs) -> Result<()> {
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
