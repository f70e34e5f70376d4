//! `tailor eval` (several models, one table, JSON and a bar chart) and `tailor tune`
//! (seeded random search on a validation split carved from train), on the benchmark's
//! temporal split and metrics (`tailor-eval`).

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tailor_core::rng::Rng;
use tailor_eval::metrics::{Report, evaluate};
use tailor_eval::split::{Fraction, Row, collapse, temporal};

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
    /// Training time.
    pub train_seconds: f64,
    /// Scoring time for every test user.
    pub recommend_seconds: f64,
}

/// Train/test rows: given, or the temporal split of one file.
pub fn load(input: Option<&Path>, train: Option<&Path>, test: Option<&Path>) -> Result<(Vec<Row>, Vec<Row>)> {
    match (input, train, test) {
        (Some(i), None, None) => {
            let rows = crate::recommend::read_rows(i)?;
            let frac = Fraction::parse("0.2").ok_or_else(|| crate::usage("bad test fraction"))?;
            Ok(temporal(collapse(rows), frac, 5))
        }
        (None, Some(a), Some(b)) => Ok((crate::recommend::read_rows(a)?, crate::recommend::read_rows(b)?)),
        _ => Err(crate::usage("give --input FILE (split temporally here) or both --train and --test")),
    }
}

/// Trains `model` with `spec` on `train` and scores it on `test` at `k`.
pub fn score(train_rows: &[Row], test_rows: &[Row], model: &str, spec: &str, k: usize) -> Result<ModelResult> {
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
        rows,
        k,
    );
    Ok(ModelResult { model: model.to_owned(), params: spec.to_owned(), metrics, train_seconds, recommend_seconds })
}

/// Prints the comparison table.
pub fn print_table(results: &[ModelResult]) {
    println!(
        "{:<10} {:<28} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>9}",
        "model",
        "params",
        "NDCG",
        "precision",
        "recall",
        "MAP",
        "hit",
        "coverage",
        "novelty",
        "gini",
        "pop bias",
        "train s"
    );
    for r in results {
        let m = &r.metrics;
        println!(
            "{:<10} {:<28} {:>8.4} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.3} {:>8.2} {:>6.3} {:>8.2} {:>9.3}",
            r.model,
            if r.params.is_empty() { "defaults" } else { &r.params },
            m.ndcg,
            m.precision,
            m.recall,
            m.map,
            m.hit_rate,
            m.coverage,
            m.novelty.unwrap_or(0.0),
            m.gini_exposure,
            m.popularity_bias.unwrap_or(0.0),
            r.train_seconds
        );
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
    /// Parameters.
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
        let r = score(&fit, &val, model, &spec, k)?;
        trials.push(Trial { params: spec, validation_ndcg: r.metrics.ndcg });
    }
    trials.sort_by(|a, b| b.validation_ndcg.total_cmp(&a.validation_ndcg));
    let best = trials.first().map(|t| t.params.clone()).unwrap_or_default();
    let result = score(train_rows, test_rows, model, &best, k)?;
    Ok((trials, result))
}
