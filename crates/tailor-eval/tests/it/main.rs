//! The yardstick, reproduced: on MovieLens-100K, tailor's split equals `split.py`'s and its
//! metrics of tailor's models equal `evaluate.py`'s (values recorded by
//! `scripts/golden_recommend.sh`), so a quality regression fails CI.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use tailor_core::{Interactions, Interner, UserIdx};
use tailor_eval::metrics::evaluate;
use tailor_eval::split::{Fraction, Row, collapse, temporal};
use tailor_recommend::als::AlsParams;
use tailor_recommend::ease::EaseParams;
use tailor_recommend::knn::KnnParams;
use tailor_recommend::popularity::Popularity;
use tailor_recommend::{Filter, History, Model, recency_weights};

fn golden() -> Value {
    serde_json::from_str(include_str!("../golden/ml100k.json")).expect("golden JSON")
}

fn rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ml-100k/u.data");
    tailor_eval::split::read_ml100k(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The train rows as the matrix `tailor recommend` builds from train.tsv (ids interned in
/// file order, weights summed).
fn matrix(train: &[Row]) -> (Interner, Interner, Interactions, Vec<f64>) {
    let (mut users, mut items) = (Interner::new(), Interner::new());
    let mut cells: Vec<(u32, u32, f32, f64)> =
        train.iter().map(|r| (users.intern(&r.user), items.intern(&r.item), r.weight as f32, r.ts)).collect();
    cells.sort_by_key(|c| (c.0, c.1));
    let mut indptr = vec![0usize; users.len() + 1];
    for c in &cells {
        indptr[c.0 as usize + 1] += 1;
    }
    for u in 0..users.len() {
        indptr[u + 1] += indptr[u];
    }
    let m = Interactions::from_csr(
        users.len(),
        items.len(),
        indptr,
        cells.iter().map(|c| c.1).collect(),
        cells.iter().map(|c| c.2).collect(),
    )
    .expect("csr");
    (users, items, m, cells.iter().map(|c| c.3).collect())
}

#[test]
#[ignore = "slow: trains on MovieLens-100K from ../shared/data (run with --ignored; CI does)"]
fn ml100k_metrics_equal_the_yardstick() {
    let g = golden();
    let (train, test) = temporal(collapse(rows()), Fraction::parse("0.2").expect("0.2"), 5);
    let split = &g["split"];
    assert_eq!(train.len() as u64, split["train_rows"].as_u64().expect("train_rows"));
    assert_eq!(test.len() as u64, split["test_rows"].as_u64().expect("test_rows"));
    let (users, items, m, times) = matrix(&train);
    assert_eq!(items.len() as u64, split["train_items"].as_u64().expect("train_items"));
    let mut test_users: Vec<&str> = test.iter().map(|r| r.user.as_str()).collect();
    test_users.dedup();
    for run in g["runs"].as_array().expect("runs") {
        let (name, params) = (run["model"].as_str().expect("model"), run["params"].as_str().expect("params"));
        let p: HashMap<&str, &str> = params.split(',').filter_map(|kv| kv.split_once('=')).collect();
        let num = |k: &str, d: f64| p.get(k).map_or(d, |v| v.parse().expect("number"));
        let model: Box<dyn Model> = match name {
            "popular" => Box::new(Popularity::fit(&m)),
            "itemknn" => Box::new(KnnParams::default().fit(&m).expect("knn")),
            "ease" => Box::new(EaseParams { lambda: num("lambda", 500.0), binary: true }.fit(&m).expect("ease")),
            "als" => Box::new(AlsParams::default().fit(&m).expect("als")),
            other => panic!("unknown model {other}"),
        };
        let recency = p.get("recency").map(|h| recency_weights(&m, &times, h.parse().expect("half-life")));
        let mut recs: Vec<(String, String, f64)> = Vec::new();
        for u in &test_users {
            let row = users.get(u).expect("test users have train rows here");
            let mut h = History::of(&m, UserIdx(row));
            if let Some(r) = &recency {
                let ip = m.indptr();
                h.recency = Some(&r[ip[row as usize]..ip[row as usize + 1]]);
            }
            for (rank, (i, _)) in model.recommend(Some(row), h, 10, &Filter::default()).iter().enumerate() {
                recs.push(((*u).to_owned(), items.name(*i).expect("item").to_owned(), (rank + 1) as f64));
            }
        }
        let r = evaluate(
            train.iter().map(|x| (x.user.as_str(), x.item.as_str())),
            test.iter().map(|x| (x.user.as_str(), x.item.as_str())),
            recs.iter().map(|(u, i, k)| (u.as_str(), i.as_str(), *k)),
            10,
        );
        let want = &run["metrics"];
        // evaluate.py rounds to 6 digits; ALS sums Gram matrices in parallel, so its factors
        // may differ in the last bits between runs: a looser bound that still catches
        // regressions.
        let tol = if name == "als" { 0.005 } else { 6e-7 };
        for (metric, got) in [
            ("ndcg", r.ndcg),
            ("precision", r.precision),
            ("recall", r.recall),
            ("map", r.map),
            ("coverage", r.coverage),
        ] {
            let w = want[metric].as_f64().expect("metric");
            assert!((got - w).abs() <= tol, "{name} {params}: {metric} {got} vs evaluate.py {w}");
        }
        assert_eq!(r.train_leaks, 0);
        eprintln!("{name} {params}: NDCG@10 {:.4} (evaluate.py {})", r.ndcg, want["ndcg"]);
    }
}
