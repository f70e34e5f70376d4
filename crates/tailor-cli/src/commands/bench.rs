//! `tailor bench`: the benchmarks behind docs/benchmarks.md, on this build and machine.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use tailor_ingest::import::{ImportOptions, import_file};
use tailor_ingest::mapping::{Mapping, Target};
use tailor_store::{RedbStore, Store};

use crate::config::Config;
use crate::{Cli, experiment, open_store, segment};

/// What `tailor bench alerts` simulates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A click-through rate that falls.
    Drop,
    /// A share that should stay low and rises.
    Rise,
    /// Events per bucket that fall (a Poisson rate).
    Volume,
}

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// Import a file into a fresh temporary store `--repeat` times (end to end, durable).
    Ingest {
        /// Input file.
        file: PathBuf,
        /// Preset of the file (e.g. online-retail).
        #[arg(long)]
        preset: Option<String>,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Online segment assignment: nearest of `--k` k-means centroids for one user's
    /// `--dim` standardised features, timed over `--n` users.
    Assign {
        /// Number of clusters of the timed k-means.
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
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// k (or auto).
        #[arg(long, default_value = "auto", value_parser = crate::cluster::parse_k)]
        k: crate::cluster::K,
    },
    /// One user's top-10 over `--items` items with `--factors` f32 factors on one thread: exact scan,
    /// and the int8 index with exact re-ranking (time, recall@10 against exact); and the fold-in of a user with
    /// `--history` items (ALS, Cholesky) and the reasons of their top 10 (best history item of each).
    Topk {
        /// Items in the synthetic catalog.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Latent factors of the timed ALS model.
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
    /// Next-item quality of session lists on real click sessions (HR@k, MRR@k of each
    /// test session's last click from the clicks before it), per model, with and without
    /// recency weights; the served path for anonymous visitors.
    Sessions {
        /// `yoochoose` or `diginetica` (from `--data`).
        #[arg(long, default_value = "yoochoose")]
        dataset: String,
        /// The shared datasets' folder.
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// Models as `name:key=value;key=value`, comma-separated.
        #[arg(long, default_value = "popular,itemknn,itemknn:weighting=bm25,ease:lambda=50,als:factors=64")]
        models: String,
        /// List length.
        #[arg(long, default_value_t = 20)]
        k: usize,
        /// Recency half-life in clicks for the runs with recency.
        #[arg(long, default_value_t = 1.0)]
        recency: f32,
    },
    /// The CTR-drop alert (binomial CUSUM on a seasonal baseline) on simulated shops with
    /// daily and weekly seasonality: false alarms per 30 stable days and the delay to detect
    /// a `--drop` relative fall, per traffic level (impressions per 5 minutes).
    Alerts {
        /// Simulated shops per traffic level.
        #[arg(long, default_value_t = 20)]
        runs: u64,
        /// What is watched: `drop` (a CTR falls: ctr_drop, conversion_drop), `rise` (a share
        /// that should stay low rises: fallback_rate, zero_results, error_rate), `volume`
        /// (events per bucket fall: ingest_drop).
        #[arg(long, value_enum, default_value_t = Shape::Drop)]
        shape: Shape,
        /// Relative change injected and detected (rise: in (0, 100]).
        #[arg(long, default_value_t = 0.2)]
        drop: f64,
        /// Mean rate (CTR, or the share that rises); unused for `volume`.
        #[arg(long, default_value_t = 0.05)]
        ctr: f64,
        /// Traffic levels: mean impressions (lists, answers, events) per 5 minutes, comma
        /// separated.
        #[arg(long, value_delimiter = ',', default_value = "20,100,500,2000")]
        impressions: Vec<f64>,
    },
    /// Read every stored event into the CSR interaction matrix `--repeat` times.
    Csr {
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
}

pub(crate) fn summarize(name: &str, units: &str, per_run: f64, times: &mut [f64]) -> serde_json::Value {
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

pub(crate) fn run(cli: &Cli, config: &Config, cmd: &BenchCmd) -> Result<()> {
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
                k: *k,
                name: Some("bench".into()),
                n_init: 4,
                top_categories: config.segment.top_categories,
                ..segment::RunOptions::default()
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
            // The "because you viewed" reasons of a served list: the best history item for
            // each of 10 recommended items (the user's system, its factor, the solves).
            let top: Vec<u32> = model.recommend(None, h, 10, &filter).iter().map(|r| r.0).collect();
            let mut reasons = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..*n {
                    checksum = checksum.wrapping_add(model.best_reasons(std::hint::black_box(h), &top).len() as u64);
                }
                reasons.push(t.elapsed().as_secs_f64() * 1e6 / *n as f64);
            }
            reasons.sort_by(f64::total_cmp);
            v["reasons_of_10_microseconds_median"] = serde_json::json!(reasons[reasons.len() / 2]);
            v["checksum"] = serde_json::json!(checksum);
            v
        }
        BenchCmd::Experiment { n, exposures } => return experiment::bench(cli.json, *n, *exposures),
        BenchCmd::Sessions { dataset, data, models, k, recency } => {
            let mut specs = Vec::new();
            for m in models.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let (name, params) = m.split_once(':').unwrap_or((m, ""));
                let kind = name.parse().map_err(|e| crate::usage(format!("--models {e}")))?;
                specs.push((kind, params.replace(';', ",")));
            }
            let sessions = crate::sessions::read(data, dataset)?;
            let report = crate::sessions::bench(&sessions, dataset, &specs, *k, *recency)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {} train sessions, {} items, {} test sessions; HR@{k} and MRR@{k} of the last click",
                    report.dataset, report.train_sessions, report.items, report.test_sessions
                );
                println!("{:<28} {:>8} {:>8} {:>8} {:>8} {:>10}", "model", "recency", "HR", "MRR", "fit s", "µs/list");
                for r in &report.rows {
                    println!(
                        "{:<28} {:>8} {:>8.4} {:>8.4} {:>8.2} {:>10.1}",
                        r.model,
                        r.recency.map_or("-".into(), |h| h.to_string()),
                        r.hit_rate,
                        r.mrr,
                        r.fit_seconds,
                        r.micros_per_list
                    );
                }
            }
            return Ok(());
        }
        BenchCmd::Alerts { runs, shape, drop, ctr, impressions } => {
            use tailor_experiment::monitor::{Counts, Direction, RateDropParams};
            let params = RateDropParams {
                drop: *drop,
                direction: if *shape == Shape::Rise { Direction::Rise } else { Direction::Drop },
                counts: if *shape == Shape::Volume { Counts::Poisson } else { Counts::Binomial },
                ..RateDropParams::default()
            };
            params.validate().map_err(|e| crate::usage(format!("--drop: {e}")))?;
            if !(*ctr > 0.0 && *ctr < 1.0) {
                return Err(crate::usage("--ctr: a share in (0, 1)"));
            }
            let t = Instant::now();
            let outcomes: Vec<_> = impressions
                .iter()
                .map(|&n| {
                    let traffic = tailor_experiment::monitor::Traffic { impressions: n, rate: *ctr };
                    tailor_experiment::monitor::simulate(&params, traffic, *drop, *runs, 7)
                })
                .collect();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"bench": "alerts", "params": params, "drop": drop, "outcomes": outcomes, "seconds": t.elapsed().as_secs_f64()})
                );
            } else {
                let what = match shape {
                    Shape::Drop => format!("CTR {ctr}, {:.0}% drop", drop * 100.0),
                    Shape::Rise => format!("share {ctr}, {:.0}% rise", drop * 100.0),
                    Shape::Volume => format!("events per bucket, {:.0}% drop", drop * 100.0),
                };
                println!(
                    "{what}, threshold h = {:.2} (≤ {} false alarm per 30 days by Lorden's bound), {} shops per level",
                    params.threshold(),
                    params.false_alarms_per_30_days,
                    runs
                );
                println!(
                    "{:>14}{:>16}{:>12}{:>14}{:>14}",
                    "impr./5 min", "false alarms", "per 30 d", "detected", "delay p50/p90"
                );
                let h = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.1}"));
                for o in &outcomes {
                    println!(
                        "{:>14}{:>16}{:>12.2}{:>14}{:>14}",
                        o.traffic.impressions,
                        o.false_alarms,
                        o.false_alarms_per_30_days,
                        format!("{}/{}", o.detected, o.drops),
                        format!("{}/{} h", h(o.median_delay_hours), h(o.p90_delay_hours))
                    );
                }
            }
            return Ok(());
        }
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
