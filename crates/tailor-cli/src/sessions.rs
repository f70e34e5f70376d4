//! `tailor bench sessions`: next-item quality of the served session path on real click
//! sessions (YooChoose, Diginetica). Every train session is a row of the matrix the models
//! are fitted on; for every test session the items before its last click are the
//! session's history (weighted as the server weighs it: clicks summed, optionally the
//! newest counted most) and the last click is the item to predict. Lists leave the
//! history's items out, as served lists do. HR@k and MRR@k over the test sessions.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tailor_core::{Interactions, Interner};
use tailor_recommend::zoo::{self, ModelKind};
use tailor_recommend::{History, top_k};

/// Sessions as ordered item ids.
pub struct Sessions {
    /// Train sessions (each a sequence of item ids, oldest first).
    pub train: Vec<Vec<String>>,
    /// Test sessions.
    pub test: Vec<Vec<String>>,
}

/// Reads a dataset folder of `../shared/data`: `yoochoose` (session-rec's train/test split)
/// or `diginetica` (the SR-GNN sample; its last 7 days are the test sessions).
pub fn read(root: &Path, dataset: &str) -> Result<Sessions> {
    match dataset {
        "yoochoose" => {
            let dir = root.join("yoochoose-100k");
            let file = |name: &str| -> Result<Vec<Vec<String>>> {
                let path = dir.join(name);
                let text = fs_err::read_to_string(&path)?;
                let mut rows: Vec<(String, f64, String)> = Vec::new();
                for (n, line) in text.lines().enumerate().skip(1) {
                    let f: Vec<&str> = line.split('\t').collect();
                    let [session, item, time] = f[..] else {
                        bail!("{}:{}: expected SessionId, ItemId, Time", path.display(), n + 1)
                    };
                    let t: f64 = time.parse().with_context(|| format!("{}:{}: Time", path.display(), n + 1))?;
                    rows.push((session.to_string(), t, item.to_string()));
                }
                Ok(group(rows))
            };
            Ok(Sessions {
                train: file("yoochoose-clicks-100k_train_full.txt")?,
                test: file("yoochoose-clicks-100k_test.txt")?,
            })
        }
        "diginetica" => {
            let path = root.join("diginetica-sample/sample_train-item-views.csv");
            let text = fs_err::read_to_string(&path)?;
            let mut rows: Vec<(String, String, f64, String)> = Vec::new();
            for (n, line) in text.lines().enumerate().skip(1) {
                let f: Vec<&str> = line.split(';').collect();
                let [session, _, item, frame, date] = f[..] else {
                    bail!("{}:{}: expected session_id;user_id;item_id;timeframe;eventdate", path.display(), n + 1)
                };
                let t: f64 = frame.parse().with_context(|| format!("{}:{}: timeframe", path.display(), n + 1))?;
                rows.push((session.to_string(), date.to_string(), t, item.to_string()));
            }
            let last_day = rows.iter().map(|r| r.1.as_str()).max().unwrap_or_default().to_string();
            let cut = tailor_core::Timestamp::parse_auto(&last_day)
                .map(|t| tailor_core::Timestamp(t.0 - 7 * 86_400_000))
                .map_err(|e| anyhow::anyhow!("{}: eventdate {last_day:?}: {e}", path.display()))?;
            let mut day: HashMap<String, String> = HashMap::new();
            for r in &rows {
                let d = day.entry(r.0.clone()).or_default();
                if r.1 > *d {
                    *d = r.1.clone();
                }
            }
            let is_test =
                |s: &str| day.get(s).and_then(|d| tailor_core::Timestamp::parse_auto(d).ok()).is_some_and(|t| t > cut);
            let (test, train): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| is_test(&r.0));
            let strip = |v: Vec<(String, String, f64, String)>| v.into_iter().map(|r| (r.0, r.2, r.3)).collect();
            Ok(Sessions { train: group(strip(train)), test: group(strip(test)) })
        }
        other => bail!("--dataset {other}: expected yoochoose or diginetica"),
    }
}

/// Rows (session, time, item) → sessions ordered by time, in order of first appearance.
fn group(rows: Vec<(String, f64, String)>) -> Vec<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<String, Vec<(f64, String)>> = HashMap::new();
    for (s, t, i) in rows {
        let e = by.entry(s.clone()).or_insert_with(|| {
            order.push(s);
            Vec::new()
        });
        e.push((t, i));
    }
    order
        .into_iter()
        .filter_map(|s| by.remove(&s))
        .map(|mut v| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// One model's figures.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Model and parameters.
    pub model: String,
    /// Recency half-life in clicks (none: every click counts the same).
    pub recency: Option<f32>,
    /// Share of test sessions whose last click is in the top k.
    pub hit_rate: f64,
    /// Mean reciprocal rank of the last click (0 beyond k).
    pub mrr: f64,
    /// Seconds fitting on the train sessions.
    pub fit_seconds: f64,
    /// Microseconds per list.
    pub micros_per_list: f64,
}

/// What the benchmark prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The dataset's name as given to `--dataset` (`yoochoose`, `diginetica`).
    pub dataset: String,
    /// Train sessions, items, clicks.
    pub train_sessions: usize,
    /// Items in train.
    pub items: usize,
    /// Test sessions scored (at least two clicks on items known in train).
    pub test_sessions: usize,
    /// List length.
    pub k: usize,
    /// One row per model and recency.
    pub rows: Vec<Row>,
}

/// One test session: its history (items ascending, summed clicks, recency multipliers) and
/// the last click.
struct Case {
    items: Vec<u32>,
    weights: Vec<f32>,
    recency: Vec<f32>,
    target: u32,
}

/// Fits each `model:params` on the train sessions and scores the test sessions' last clicks.
pub fn bench(data: &Sessions, dataset: &str, models: &[(ModelKind, String)], k: usize, recency: f32) -> Result<Report> {
    let mut items = Interner::new();
    let mut cells: Vec<(u32, u32)> = Vec::new();
    for (s, seq) in data.train.iter().enumerate() {
        for i in seq {
            cells.push((s as u32, items.intern(i)));
        }
    }
    cells.sort_unstable();
    let mut indptr = vec![0usize; data.train.len() + 1];
    let (mut indices, mut values): (Vec<u32>, Vec<f32>) = (Vec::new(), Vec::new());
    for w in cells.chunk_by(|a, b| a == b) {
        indptr[w[0].0 as usize + 1] += 1;
        indices.push(w[0].1);
        values.push(w.len() as f32);
    }
    for s in 0..data.train.len() {
        indptr[s + 1] += indptr[s];
    }
    let m = Interactions::from_csr(data.train.len(), items.len(), indptr, indices, values)?;
    let tests: Vec<Case> = data
        .test
        .iter()
        .filter_map(|seq| {
            let known: Vec<u32> = seq.iter().filter_map(|i| items.get(i)).collect();
            let (&target, before) = known.split_last()?;
            if before.is_empty() {
                return None;
            }
            // Weights summed per item; recency by the order of each item's last click.
            let mut last: HashMap<u32, (f32, usize)> = HashMap::new();
            for (pos, &i) in before.iter().enumerate() {
                let e = last.entry(i).or_insert((0.0, 0));
                e.0 += 1.0;
                e.1 = pos;
            }
            let mut h: Vec<(u32, f32, usize)> = last.into_iter().map(|(i, (w, p))| (i, w, p)).collect();
            h.sort_unstable_by_key(|e| e.0);
            let mut newest: Vec<usize> = (0..h.len()).collect();
            newest.sort_by(|&a, &b| h[b].2.cmp(&h[a].2));
            let mut r = vec![1f32; h.len()];
            for (age, &p) in newest.iter().enumerate() {
                r[p] = 0.5f32.powf(age as f32 / recency.max(1e-6));
            }
            Some(Case {
                items: h.iter().map(|e| e.0).collect(),
                weights: h.iter().map(|e| e.1).collect(),
                recency: r,
                target,
            })
        })
        .collect();
    let times = vec![0.0; m.nnz()];
    let mut rows = Vec::new();
    for (kind, spec) in models {
        let mut p = zoo::parse_pairs(spec).map_err(|e| anyhow::anyhow!("{kind}: {e}"))?;
        let t = Instant::now();
        let model = zoo::fit(*kind, &mut p, zoo::Inputs { matrix: &m, times: &times, features: None })?;
        let fit_seconds = t.elapsed().as_secs_f64();
        let model = model.as_model();
        for with_recency in [false, true] {
            let t = Instant::now();
            let (mut hits, mut rr) = (0usize, 0f64);
            let mut scores = vec![0f32; model.n_items()];
            for c in &tests {
                let h = History {
                    items: &c.items,
                    weights: &c.weights,
                    recency: with_recency.then_some(c.recency.as_slice()),
                };
                model.score(None, h, &mut scores);
                let top = top_k(&scores, k, |i| c.items.binary_search(&i).is_err());
                if let Some(rank) = top.iter().position(|e| e.0 == c.target) {
                    hits += 1;
                    rr += 1.0 / (rank + 1) as f64;
                }
            }
            let n = tests.len().max(1) as f64;
            rows.push(Row {
                model: if spec.is_empty() { kind.to_string() } else { format!("{kind}:{spec}") },
                recency: with_recency.then_some(recency),
                hit_rate: hits as f64 / n,
                mrr: rr / n,
                fit_seconds,
                micros_per_list: t.elapsed().as_secs_f64() * 1e6 / n,
            });
        }
    }
    Ok(Report {
        dataset: dataset.into(),
        train_sessions: m.n_users(),
        items: m.n_items(),
        test_sessions: tests.len(),
        k,
        rows,
    })
}
