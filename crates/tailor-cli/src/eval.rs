//! `tailor eval` (several models, one table, JSON and a bar chart) and `tailor tune`
//! (seeded random search on a validation split carved from train), on the benchmark's
//! temporal split and metrics (`tailor-eval`).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tailor_core::rng::Rng;
use tailor_eval::metrics::{Report, evaluate};
use tailor_eval::split::{Fraction, Row, Strategy, collapse, split, temporal};
use tailor_recommend::{History, Model};

use crate::recommend::{TrainSet, recency_of, train};

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// Model name.
    pub model: String,
    /// Parameters (`key=value,...`).
    pub params: String,
    /// Metrics at K.
    pub metrics: Report,
    /// Wall-clock seconds of the fit.
    pub train_seconds: f64,
    /// Scoring time for every test user.
    pub recommend_seconds: f64,
    /// Mean per-user AUC over all items the user has not used in train (test users known
    /// in train with at least one test item known in train).
    pub auc: Option<f64>,
    /// RMSE of predicted against test ratings (the `biases` rating predictor only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Test NDCG after each iteration/epoch (`--curves`, iterative models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<Vec<(usize, f64)>>,
    /// Metrics per user group (`--groups`), by group name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<(String, Report)>,
    /// Calibrated re-ranking per λ (`--genres`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<CalibrationPoint>,
    /// Fairness and popularity bias (`--report fairness`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<tailor_eval::fairness::FairnessReport>,
}

/// How `--input` is split.
#[derive(Debug, Clone, Copy)]
pub struct SplitSpec {
    /// How the data is split (temporal, leave-last-out, random).
    pub strategy: Strategy,
    /// Share of each user's (or all) interactions held out for the test, in (0, 1).
    pub fraction: Fraction,
    /// Seed of the random strategies.
    pub seed: u64,
}

impl SplitSpec {
    /// From the command-line values.
    pub fn parse(strategy: &str, fraction: &str, seed: u64) -> Result<Self> {
        let names: Vec<&str> = Strategy::ALL.iter().map(|(n, _)| *n).collect();
        let strategy = Strategy::parse(strategy)
            .ok_or_else(|| crate::usage(format!("--split {strategy}: expected one of {}", names.join(", "))))?;
        let fraction = Fraction::parse(fraction)
            .filter(|f| f.as_f64() > 0.0 && f.as_f64() < 1.0)
            .ok_or_else(|| crate::usage(format!("--test-fraction {fraction}: expected a decimal between 0 and 1")))?;
        Ok(Self { strategy, fraction, seed })
    }
}

/// Train/test rows: given, or one file split with `spec`.
pub fn load(
    input: Option<&Path>,
    train: Option<&Path>,
    test: Option<&Path>,
    spec: SplitSpec,
) -> Result<(Vec<Row>, Vec<Row>)> {
    match (input, train, test) {
        (Some(i), None, None) => {
            let rows = crate::recommend::read_rows(i)?;
            Ok(split(collapse(rows), spec.strategy, spec.fraction, 5, spec.seed))
        }
        (None, Some(a), Some(b)) => Ok((crate::recommend::read_rows(a)?, crate::recommend::read_rows(b)?)),
        _ => Err(crate::usage("give --input FILE (split temporally here) or both --train and --test")),
    }
}

/// User → group (`--groups` file: `user<TAB>group` per line, optional header `user`).
pub fn read_groups(path: &Path) -> Result<std::collections::HashMap<String, String>> {
    let text = fs_err::read_to_string(path)?;
    let mut out = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.starts_with("user\t")) {
            continue;
        }
        let (u, g) = line
            .split_once('\t')
            .ok_or_else(|| anyhow::anyhow!("{}:{}: expected `user<TAB>group`, got {line:?}", path.display(), n + 1))?;
        out.insert(u.trim().to_owned(), g.trim().to_owned());
    }
    Ok(out)
}

/// Test items per train user (indices; sorted, distinct), for those known in train.
fn held_out(set: &TrainSet, test_rows: &[Row]) -> Vec<Vec<u32>> {
    let mut held = vec![Vec::new(); set.matrix.n_users()];
    for r in test_rows {
        if let (Some(u), Some(i)) = (set.users.get(&r.user), set.items.get(&r.item)) {
            held[u as usize].push(i);
        }
    }
    for h in &mut held {
        h.sort_unstable();
        h.dedup();
    }
    held
}

/// Per-user AUC: the chance that a held-out item scores above an item the user never used,
/// averaged over users (ties count one half).
fn auc(set: &TrainSet, model: &dyn Model, test_rows: &[Row]) -> Option<f64> {
    let n_items = set.matrix.n_items();
    let mut scores = vec![0f32; n_items];
    let (mut total, mut users) = (0f64, 0usize);
    for (u, rel) in held_out(set, test_rows).iter().enumerate() {
        if rel.is_empty() {
            continue;
        }
        let u = u as u32;
        let h = History::of(&set.matrix, tailor_core::UserIdx(u));
        model.score(Some(u), h, &mut scores);
        // Candidates: items not in train for this user; positives among them.
        let mut cand: Vec<(f32, bool)> = (0..n_items as u32)
            .filter(|i| h.items.binary_search(i).is_err())
            .map(|i| (scores[i as usize], rel.binary_search(&i).is_ok()))
            .collect();
        let n_pos = cand.iter().filter(|c| c.1).count();
        let n_neg = cand.len() - n_pos;
        if n_pos == 0 || n_neg == 0 {
            continue;
        }
        cand.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Mann–Whitney: sum of the positives' mid-ranks.
        let (mut rank_sum, mut start) = (0f64, 0usize);
        while start < cand.len() {
            // Ties (by total order, so a NaN score ties with itself and the loop always moves).
            let mut end = start + 1;
            while end < cand.len() && cand[end].0.total_cmp(&cand[start].0).is_eq() {
                end += 1;
            }
            let mid = (start + end + 1) as f64 / 2.0;
            rank_sum += mid * cand[start..end].iter().filter(|c| c.1).count() as f64;
            start = end;
        }
        let (p, q) = (n_pos as f64, n_neg as f64);
        total += (rank_sum - p * (p + 1.0) / 2.0) / (p * q);
        users += 1;
    }
    (users > 0).then(|| total / users as f64)
}

/// What `--report fairness` needs besides the lists: item → provider (brand).
pub struct FairnessAsk<'a> {
    /// Item → provider, when known.
    pub providers: Option<&'a std::collections::HashMap<String, String>>,
}

/// Trains `model` with `spec` on `train` and scores it on `test` at `k` (and per group of
/// `groups`, and the fairness report, when asked).
#[allow(clippy::too_many_arguments)]
pub fn score(
    train_rows: &[Row],
    test_rows: &[Row],
    model: &str,
    spec: &str,
    k: usize,
    groups: Option<&std::collections::HashMap<String, String>>,
    fairness: Option<&FairnessAsk<'_>>,
) -> Result<ModelResult> {
    let set = TrainSet::from_rows(train_rows)?;
    let spec_opt = (!spec.is_empty()).then_some(spec);
    let t = Instant::now();
    let trained = train(model, spec_opt, &set.matrix, &set.times, None)?;
    let train_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut users: Vec<String> = test_rows.iter().map(|r| r.user.clone()).collect();
    users.sort();
    users.dedup();
    let recs = set.recommend(trained.as_model(), recency_of(spec_opt)?, &users, k);
    let recommend_seconds = t.elapsed().as_secs_f64();
    let rows: Vec<(&str, &str, f64)> = users
        .iter()
        .zip(&recs)
        .flat_map(|(u, (items, _))| {
            items.iter().enumerate().map(move |(r, i)| (u.as_str(), i.as_str(), (r + 1) as f64))
        })
        .collect();
    let metrics = evaluate(
        train_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())),
        test_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())),
        rows.iter().copied(),
        k,
    );
    let mut by_group = Vec::new();
    if let Some(g) = groups {
        let mut names: Vec<&String> = g.values().collect();
        names.sort();
        names.dedup();
        for name in names {
            let member = |u: &str| g.get(u) == Some(name);
            let report = evaluate(
                train_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())),
                test_rows.iter().filter(|r| member(&r.user)).map(|r| (r.user.as_str(), r.item.as_str())),
                rows.iter().copied().filter(|(u, _, _)| member(u)),
                k,
            );
            if report.n_users > 0 {
                by_group.push((name.clone(), report));
            }
        }
    }
    let fairness = fairness.map(|f| {
        let train: Vec<(&str, &str)> = train_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())).collect();
        let test: Vec<(&str, &str)> = test_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())).collect();
        let lists: Vec<(&str, Vec<&str>)> = users
            .iter()
            .zip(&recs)
            .map(|(u, (items, _))| (u.as_str(), items.iter().map(String::as_str).collect()))
            .collect();
        tailor_eval::fairness::report(&tailor_eval::fairness::Input {
            train: &train,
            train_counts: None,
            test: &test,
            lists: &lists,
            catalog: &[],
            groups,
            providers: f.providers,
            k,
        })
    });
    let auc = auc(&set, trained.as_model(), test_rows);
    let rmse = match &trained {
        // An item or user unknown in train contributes no bias (`predict` of an index it
        // does not have).
        tailor_recommend::file::AnyModel::Biases(b) => tailor_eval::metrics::rmse(test_rows.iter().map(|r| {
            let item = set.items.get(&r.item).unwrap_or(u32::MAX);
            (f64::from(b.predict(set.users.get(&r.user), item)), r.weight)
        })),
        _ => None,
    };
    Ok(ModelResult {
        model: model.to_owned(),
        params: spec.to_owned(),
        metrics,
        train_seconds,
        recommend_seconds,
        auc,
        rmse,
        curve: None,
        groups: by_group,
        calibration: Vec::new(),
        fairness,
    })
}

/// Prints each model's fairness report.
pub fn print_fairness(results: &[ModelResult]) {
    for r in results {
        if let Some(f) = &r.fairness {
            print_fairness_of(&r.model, f);
        }
    }
}

/// Prints one fairness report (of a model, or of the served lists).
pub fn print_fairness_of(model: &str, f: &tailor_eval::fairness::FairnessReport) {
    println!("fairness of {model} at k = {}: ARP {:.1}, APLT {:.3}", f.k, f.arp, f.aplt);
    if !f.groups.is_empty() {
        println!("  {:<40}{:>8}{:>10}{:>10}", "user group", "users", "ndcg", "recall");
        for g in &f.groups {
            println!("  {:<40}{:>8}{:>10.4}{:>10.4}", g.group, g.users, g.ndcg, g.recall);
        }
        if let (Some(gap), Some(mad)) = (f.ndcg_gap, f.user_mad_ranking) {
            println!("  NDCG gap (max - min) {gap:.4}, UserMADranking {mad:.4}");
        }
    }
    let table = |title: &str, rows: &[tailor_eval::fairness::Exposure]| {
        println!(
            "  {title:<24}{:>10}{:>10}{:>13}{:>8}{:>9}{:>9}",
            "exposure", "catalog", "interactions", "test", "parity", "opport."
        );
        for e in rows {
            let eo = e.equal_opportunity.map_or("-".to_owned(), |v| format!("{v:.2}"));
            println!(
                "  {:<24}{:>10.4}{:>10.4}{:>13.4}{:>8.4}{:>+9.4}{:>9}",
                e.name, e.exposure_share, e.catalog_share, e.interaction_share, e.test_share, e.statistical_parity, eo
            );
        }
    };
    table("popularity band", &f.popularity_bands);
    if !f.providers.is_empty() {
        table("provider", &f.providers[..f.providers.len().min(15)]);
    }
}

/// Prints each model's calibration sweep.
pub fn print_calibration(results: &[ModelResult]) {
    for r in results.iter().filter(|r| !r.calibration.is_empty()) {
        println!(
            "calibrated re-ranking of {} (Steck 2018; miscalibration = mean KL of list genres to history genres)",
            r.model
        );
        println!("{:>8}{:>10}{:>10}{:>10}{:>16}", "lambda", "ndcg", "recall", "coverage", "miscalibration");
        for c in &r.calibration {
            println!(
                "{:>8.2}{:>10.4}{:>10.4}{:>10.4}{:>16.4}",
                c.lambda, c.metrics.ndcg, c.metrics.recall, c.metrics.coverage, c.miscalibration
            );
        }
    }
}

/// Prints the comparison table.
pub fn print_table(results: &[ModelResult]) {
    println!(
        "{:<10} {:<28} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>8} {:>9}",
        "model",
        "params",
        "NDCG",
        "precision",
        "recall",
        "MAP",
        "hit",
        "MRR",
        "AUC",
        "diversity",
        "coverage",
        "novelty",
        "gini",
        "pop bias",
        "train s"
    );
    for r in results {
        let m = &r.metrics;
        println!(
            "{:<10} {:<28} {:>8.4} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8} {:>9} {:>8.3} {:>8.2} {:>6.3} {:>8.2} {:>9.3}",
            r.model,
            if r.params.is_empty() { "defaults" } else { &r.params },
            m.ndcg,
            m.precision,
            m.recall,
            m.map,
            m.hit_rate,
            m.mrr,
            r.auc.map_or_else(|| "-".to_owned(), |a| format!("{a:.4}")),
            m.diversity.map_or_else(|| "-".to_owned(), |d| format!("{d:.4}")),
            m.coverage,
            m.novelty.unwrap_or(0.0),
            m.gini_exposure,
            m.popularity_bias.unwrap_or(0.0),
            r.train_seconds
        );
    }
    for r in results {
        if let Some(e) = r.rmse {
            println!(
                "{} ({}): RMSE {e:.4} against the test ratings",
                r.model,
                if r.params.is_empty() { "defaults" } else { &r.params }
            );
        }
    }
}

/// Test NDCG@`k` after every iteration (ALS) or epoch (BPR) of `model` trained with `spec`
/// on `train_rows`: the training curve that shows under- and overfitting. `None` for models
/// that are not iterative.
pub fn curve(
    train_rows: &[Row],
    test_rows: &[Row],
    model: &str,
    spec: &str,
    k: usize,
) -> Result<Option<Vec<(usize, f64)>>> {
    if model != "als" && model != "bpr" {
        return Ok(None);
    }
    let set = TrainSet::from_rows(train_rows)?;
    let held = held_out(&set, test_rows);
    let mut p = crate::recommend::params((!spec.is_empty()).then_some(spec))?;
    p.remove("recency");
    p.remove("patience");
    let mut points = Vec::new();
    let mut record = |it: usize, m: &dyn Model| {
        points.push((it, tailor_recommend::validation::ndcg(m, &set.matrix, &held, k)));
        true
    };
    if model == "als" {
        crate::recommend::als_params(&mut p)?.fit_with(&set.matrix, |it, m| record(it, m))?;
    } else {
        crate::recommend::bpr_params(&mut p)?.fit_with(&set.matrix, |it, m| record(it, m))?;
    }
    Ok(Some(points))
}

/// Writes the training curves of `results` (those with one) as a line chart.
pub fn curves_chart(path: &Path, results: &[ModelResult], k: usize) -> Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter_map(|r| {
            let c = r.curve.as_ref()?;
            let name = if r.params.is_empty() { r.model.clone() } else { format!("{} ({})", r.model, r.params) };
            Some((name, c.iter().map(|&(x, y)| (x as f64, y)).collect()))
        })
        .collect();
    if series.is_empty() {
        return Err(crate::usage("--curves: none of the models is iterative (als, bpr)"));
    }
    crate::plot::lines(
        path,
        &crate::plot::Lines {
            title: &format!("Test NDCG@{k} during training"),
            x_label: "iteration (ALS) / epoch (BPR)",
            y_label: &format!("NDCG@{k}"),
            series: &series,
        },
    )
}

/// Prints NDCG, recall and hit rate per user group and model.
pub fn print_groups(results: &[ModelResult]) {
    if results.iter().all(|r| r.groups.is_empty()) {
        return;
    }
    println!();
    println!("{:<10} {:<24} {:>7} {:>8} {:>8} {:>8}", "model", "group", "users", "NDCG", "recall", "hit");
    for r in results {
        for (g, m) in &r.groups {
            println!(
                "{:<10} {:<24} {:>7} {:>8.4} {:>8.4} {:>8.4}",
                r.model, g, m.n_users, m.ndcg, m.recall, m.hit_rate
            );
        }
    }
}

/// Writes a bar chart of NDCG@K per model.
pub fn chart(path: &Path, results: &[ModelResult], k: usize) -> Result<()> {
    let bars: Vec<(String, f64)> = results
        .iter()
        .map(|r| {
            (if r.params.is_empty() { r.model.clone() } else { format!("{} ({})", r.model, r.params) }, r.metrics.ndcg)
        })
        .collect();
    crate::plot::bars(path, &format!("NDCG@{k} by model (temporal split)"), &format!("NDCG@{k}"), &bars)
}

/// One searched parameter: (name, low, high, log scale, integer).
type Range = (&'static str, f64, f64, bool, bool);

/// Ranges searched by `tailor tune`, per model.
fn space(model: &str) -> Result<Vec<Range>> {
    Ok(match model {
        "als" => vec![
            ("factors", 16.0, 128.0, true, true),
            ("regularization", 0.01, 50.0, true, false),
            ("alpha", 0.1, 20.0, true, false),
            ("iterations", 5.0, 20.0, false, true),
        ],
        "ease" => vec![("lambda", 10.0, 5000.0, true, false), ("recency", 1.0, 100.0, true, false)],
        "itemknn" => vec![("neighbours", 10.0, 500.0, true, true), ("recency", 1.0, 100.0, true, false)],
        other => return Err(crate::usage(format!("tune: no search space for {other} (als, ease, itemknn)"))),
    })
}

/// One tried setting.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// The model's parameters as `key=value` pairs.
    pub params: String,
    /// Validation NDCG@K.
    pub validation_ndcg: f64,
}

/// Seeded random search: `budget` settings scored on a validation split of train; the best
/// is retrained on all of train and scored on test.
pub fn tune(
    train_rows: &[Row],
    test_rows: &[Row],
    model: &str,
    budget: usize,
    seed: u64,
    k: usize,
) -> Result<(Vec<Trial>, ModelResult)> {
    let ranges = space(model)?;
    let frac = Fraction::parse("0.2").ok_or_else(|| crate::usage("bad fraction"))?;
    let (fit, val) = temporal(collapse(train_rows.to_vec()), frac, 5);
    let mut rng = Rng::new(seed);
    let mut trials = Vec::new();
    for _ in 0..budget.max(1) {
        let parts: Vec<String> = ranges
            .iter()
            .map(|(name, lo, hi, log, int)| {
                let u = rng.f64();
                let v = if *log { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) };
                if *int { format!("{name}={}", v.round() as i64) } else { format!("{name}={v:.4}") }
            })
            .collect();
        let spec = parts.join(",");
        let r = score(&fit, &val, model, &spec, k, None, None)?;
        trials.push(Trial { params: spec, validation_ndcg: r.metrics.ndcg });
    }
    trials.sort_by(|a, b| b.validation_ndcg.total_cmp(&a.validation_ndcg));
    let best = trials.first().map(|t| t.params.clone()).unwrap_or_default();
    let result = score(train_rows, test_rows, model, &best, k, None, None)?;
    Ok((trials, result))
}

/// Reads `item<TAB>genre|genre|...` (header optional when its first field is `item`): the
/// genres calibration follows (ml-100k's, a shop's categories).
pub fn read_genres(path: &Path) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let text = fs_err::read_to_string(path)?;
    let mut out = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (n == 0 && line.split('\t').next() == Some("item")) {
            continue;
        }
        let (item, genres) = line
            .split_once('\t')
            .ok_or_else(|| crate::usage(format!("{}:{}: expected item<TAB>genre|genre|...", path.display(), n + 1)))?;
        let genres: Vec<String> =
            genres.split('|').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
        out.insert(item.trim().to_owned(), genres);
    }
    if out.is_empty() {
        return Err(crate::usage(format!("{}: no item with genres", path.display())));
    }
    Ok(out)
}

/// One λ of a calibration sweep.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationPoint {
    /// Model name.
    pub model: String,
    /// Weight of calibration (0: the model's own order).
    pub lambda: f64,
    /// NDCG, recall and the rest at k of the re-ranked lists.
    pub metrics: Report,
    /// Mean C_KL(history genres, list genres) over users with a genre in their history.
    pub miscalibration: f64,
}

/// Trains `model` once, takes its `pool` best candidates per test user, and scores the
/// lists re-ranked by [`tailor_recommend::calibration::calibrate`] for each λ.
#[allow(clippy::too_many_arguments)]
pub fn calibration_sweep(
    train_rows: &[Row],
    test_rows: &[Row],
    model: &str,
    spec: &str,
    k: usize,
    genres: &std::collections::HashMap<String, Vec<String>>,
    lambdas: &[f64],
    pool: usize,
) -> Result<Vec<CalibrationPoint>> {
    use tailor_recommend::calibration::{self, Genres};
    let set = TrainSet::from_rows(train_rows)?;
    let spec_opt = (!spec.is_empty()).then_some(spec);
    let trained = train(model, spec_opt, &set.matrix, &set.times, None)?;
    let mut names: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let per_item: Vec<Vec<u32>> = (0..set.matrix.n_items() as u32)
        .map(|i| {
            let g = set.items.name(i).and_then(|n| genres.get(n)).map(Vec::as_slice).unwrap_or(&[]);
            g.iter()
                .map(|g| {
                    let next = names.len() as u32;
                    *names.entry(g.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect();
    let table = Genres::new(&per_item);
    let mut users: Vec<String> = test_rows.iter().map(|r| r.user.clone()).collect();
    users.sort();
    users.dedup();
    let known: Vec<(u32, tailor_recommend::History<'_>)> = users
        .iter()
        .filter_map(|u| set.users.get(u))
        .map(|row| (row, History::of(&set.matrix, tailor_core::UserIdx(row))))
        .collect();
    let batch: Vec<(Option<u32>, History<'_>)> = known.iter().map(|(r, h)| (Some(*r), *h)).collect();
    let candidates = trained.as_model().recommend_batch(&batch, pool, &tailor_recommend::Filter::default());
    let history: Vec<Vec<f64>> = known.iter().map(|(_, h)| table.distribution(h.items.iter().copied())).collect();
    let mut out = Vec::new();
    for &lambda in lambdas {
        use rayon::prelude::*;
        let lists: Vec<Vec<u32>> = candidates
            .par_iter()
            .zip(&history)
            .map(|(c, p)| calibration::calibrate(c, k, lambda, &table, p).into_iter().map(|x| x.0).collect())
            .collect();
        let calibrated: Vec<f64> = lists
            .iter()
            .zip(&history)
            .filter(|(_, p)| p.iter().any(|x| *x > 0.0))
            .map(|(l, p)| calibration::miscalibration(&table, p, l))
            .collect();
        let rows: Vec<(&str, &str, f64)> = known
            .iter()
            .zip(&lists)
            .flat_map(|((row, _), l)| {
                let (users, items) = (&set.users, &set.items);
                let user = users.name(*row).unwrap_or_default();
                l.iter().enumerate().map(move |(r, i)| (user, items.name(*i).unwrap_or_default(), (r + 1) as f64))
            })
            .collect();
        let metrics = evaluate(
            train_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())),
            test_rows.iter().map(|r| (r.user.as_str(), r.item.as_str())),
            rows.iter().copied(),
            k,
        );
        out.push(CalibrationPoint {
            model: model.to_owned(),
            lambda,
            metrics,
            miscalibration: calibrated.iter().sum::<f64>() / calibrated.len().max(1) as f64,
        });
    }
    Ok(out)
}
