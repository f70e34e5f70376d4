//! Item-to-item nearest neighbours: item similarities from co-interactions, the `K` most
//! similar kept per item; a user's score for item `j` is `Σ_{i ∈ history} w_ui · s_ij`.
//! Weightings follow implicit's: cosine on the raw item × user rows, TF-IDF (`√w · idf`,
//! then cosine) and BM25 (`w (K1 + 1) / (K1 · norm + w) · idf`, dot products).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::error::{Result, check};
use crate::{History, Model};

/// How co-interactions are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Cosine of the raw item × user rows, optionally shrunk: `dot / (|i| |j| + shrink)`.
    Cosine,
    /// TF-IDF on the item × user rows, then cosine.
    Tfidf,
    /// BM25 on the item × user rows (implicit's `bm25_weight`), then dot products.
    Bm25 {
        /// Term-frequency saturation.
        k1: f32,
        /// Length normalisation.
        b: f32,
    },
}

/// Parameters of [`ItemKnn`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    /// How co-occurrences are weighted before cosine (none, TF-IDF, BM25).
    pub weighting: Weighting,
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// Cosine shrinkage (0: none).
    pub shrink: f32,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self { weighting: Weighting::Cosine, neighbours: 100, shrink: 0.0 }
    }
}

/// The fitted neighbourhoods: for each item, its neighbours and similarities (CSR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemKnn {
    /// The parameters it was fitted with.
    pub params: KnnParams,
    indptr: Vec<usize>,
    neighbours: Vec<u32>,
    sims: Vec<f32>,
}

/// Rows of `x` (CSR, `n` rows) with `f(row, col, value)` applied to each value.
fn reweight(x: &Interactions, f: impl Fn(usize, u32, f32) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.nnz());
    for r in 0..x.n_users() {
        let (cols, vals) = x.row(tailor_core::UserIdx(r as u32));
        out.extend(cols.iter().zip(vals).map(|(&c, &v)| f(r, c, v)));
    }
    out
}

impl KnnParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        check(self.neighbours > 0, "neighbours", self.neighbours, "must be at least 1")?;
        check(self.shrink >= 0.0 && self.shrink.is_finite(), "shrink", self.shrink, "must be >= 0")?;
        if let Weighting::Bm25 { k1, b } = self.weighting {
            check(k1 > 0.0, "k1", k1, "must be > 0")?;
            check((0.0..=1.0).contains(&b), "b", b, "must be in [0, 1]")?;
        }
        Ok(())
    }

    /// Computes the neighbourhoods from the user × item matrix.
    pub fn fit(&self, m: &Interactions) -> Result<ItemKnn> {
        self.validate()?;
        let item_users = m.transpose();
        let n_items = m.n_items();
        // Inverse document frequency of each user (column of item_users), as implicit.
        let n = n_items.max(1) as f32;
        let idf: Vec<f32> =
            (0..m.n_users()).map(|u| n.ln() - (m.row(tailor_core::UserIdx(u as u32)).0.len() as f32).ln_1p()).collect();
        let mut w = match self.weighting {
            Weighting::Cosine => item_users.data().to_vec(),
            Weighting::Tfidf => reweight(&item_users, |_, u, v| v.sqrt() * idf[u as usize]),
            Weighting::Bm25 { k1, b } => {
                let sums: Vec<f32> =
                    (0..n_items).map(|i| item_users.row(tailor_core::UserIdx(i as u32)).1.iter().sum()).collect();
                let avg = sums.iter().sum::<f32>() / n;
                reweight(&item_users, |i, u, v| {
                    let norm = (1.0 - b) + b * sums[i] / avg.max(f32::MIN_POSITIVE);
                    v * (k1 + 1.0) / (k1 * norm + v) * idf[u as usize]
                })
            }
        };
        let ip = item_users.indptr();
        let mut norms = vec![1f32; n_items];
        if !matches!(self.weighting, Weighting::Bm25 { .. }) {
            for i in 0..n_items {
                let nrm = w[ip[i]..ip[i + 1]].iter().map(|v| v * v).sum::<f32>().sqrt();
                norms[i] = if nrm > 0.0 { nrm } else { 1.0 };
                if self.shrink == 0.0 {
                    w[ip[i]..ip[i + 1]].iter_mut().for_each(|v| *v /= norms[i]);
                }
            }
        }
        let weighted = Interactions::from_csr(n_items, m.n_users(), ip.to_vec(), item_users.indices().to_vec(), w)
            .map_err(|e| crate::RecommendError::InvalidData(e.to_string()))?;
        let user_items = weighted.transpose();
        let k = self.neighbours;
        let shrink = self.shrink;
        let rows: Vec<Vec<(u32, f32)>> = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n_items], vec![false; n_items], Vec::<u32>::new()),
                |(acc, mark, touched), i| {
                    let (users, wi) = weighted.row(tailor_core::UserIdx(i as u32));
                    for (&u, &a) in users.iter().zip(wi) {
                        let (items, wu) = user_items.row(tailor_core::UserIdx(u));
                        for (&j, &b) in items.iter().zip(wu) {
                            if !mark[j as usize] {
                                mark[j as usize] = true;
                                touched.push(j);
                            }
                            acc[j as usize] += a * b;
                        }
                    }
                    let mut row: Vec<(u32, f32)> = touched
                        .iter()
                        .map(|&j| {
                            let mut s = acc[j as usize];
                            if shrink > 0.0 {
                                s /= norms[i] * norms[j as usize] + shrink;
                            }
                            (j, s)
                        })
                        .filter(|(j, s)| *j as usize != i && *s > 0.0)
                        .collect();
                    for &j in touched.iter() {
                        acc[j as usize] = 0.0;
                        mark[j as usize] = false;
                    }
                    touched.clear();
                    if row.len() > k {
                        row.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                        row.truncate(k);
                    }
                    row.sort_unstable_by_key(|e| e.0);
                    row
                },
            )
            .collect();
        let mut indptr = Vec::with_capacity(n_items + 1);
        indptr.push(0);
        let mut neighbours = Vec::new();
        let mut sims = Vec::new();
        for r in rows {
            for (j, s) in r {
                neighbours.push(j);
                sims.push(s);
            }
            indptr.push(neighbours.len());
        }
        Ok(ItemKnn { params: self.clone(), indptr, neighbours, sims })
    }
}

impl ItemKnn {
    /// The stored neighbours of item `i` and their similarities.
    pub fn neighbours(&self, i: u32) -> (&[u32], &[f32]) {
        let i = i as usize;
        match (self.indptr.get(i), self.indptr.get(i + 1)) {
            (Some(&a), Some(&b)) => (&self.neighbours[a..b], &self.sims[a..b]),
            _ => (&[], &[]),
        }
    }

    /// The `k` items most similar to `item`, best first.
    pub fn similar(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        let (n, s) = self.neighbours(item);
        let mut v: Vec<(u32, f32)> = n.iter().copied().zip(s.iter().copied()).collect();
        crate::topk::best_first(&mut v);
        v.truncate(k);
        v
    }

    /// Which history items contribute to `item`'s score, largest contribution first
    /// ("because you viewed X").
    pub fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        let mut v: Vec<(u32, f32)> = history
            .items
            .iter()
            .zip(history.weights)
            .filter_map(|(&i, &w)| {
                let (n, s) = self.neighbours(i);
                n.binary_search(&item).ok().map(|p| (i, w * s[p]))
            })
            .collect();
        crate::topk::best_first(&mut v);
        v
    }
}

impl Model for ItemKnn {
    fn name(&self) -> &'static str {
        "itemknn"
    }

    fn n_items(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        self.similar(item, k)
    }

    fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        ItemKnn::explain(self, history, item)
    }

    fn score(&self, _user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for (p, (&i, &w)) in history.items.iter().zip(history.weights).enumerate() {
            let w = w * history.recency_at(p);
            let (n, s) = self.neighbours(i);
            for (&j, &sim) in n.iter().zip(s) {
                if let Some(o) = out.get_mut(j as usize) {
                    *o += w * sim;
                }
            }
        }
    }
}
