//! Recommendation models for tailor: pure algorithms over the user × item CSR matrix
//! ([`tailor_core::Interactions`]) and parameter structs.
//!
//! - [`popularity`]: most interacted items, the fallback that always answers,
//! - [`knn`]: item-to-item nearest neighbours (cosine, BM25, TF-IDF, shrinkage),
//! - [`als`]: implicit-feedback ALS (Hu, Koren & Volinsky 2008) with the conjugate-gradient
//!   solver (Takács et al. 2011) or exact Cholesky, fold-in and explanations,
//! - [`biases`]: the baseline rating predictor (global mean + user + item biases, RMSE),
//! - [`bpr`]: BPR or WARP by SGD parallelised by stratification (DSGD), uniform or popularity
//!   negatives, early stopping through [`validation`],
//! - [`content`]: TF-IDF over item features, user profiles, cold-item recommendations,
//! - [`ease`]: EASE (Steck 2019), the closed-form item–item model,
//! - [`hybrid`]: EASE + content blended by item interaction count (cold start),
//! - [`context`]: iTALS, context-aware tensor factorisation by ALS,
//! - [`together`]: frequently bought together,
//! - [`business`]: filters, boosts, diversity and reasons on any model's scores,
//! - [`calibration`]: calibrated re-ranking (Steck 2018) of a list to the genre mix of the user's history,
//! - [`quantized`]: an int8 index for fast approximate top-k, re-ranked exactly,
//! - [`validation`]: validation carves, NDCG, early stopping,
//! - [`mod@file`]: versioned model files (ids, data fingerprint, metrics),
//! - [`rerank`]: maximal-marginal-relevance diversity and per-category caps,
//! - [`topk`]: exact top-k selection with filters.
//!
//! Every model scores items for a user from the user's index (when trained on them) and
//! history, so users who arrived after training are served by the same call.

pub mod als;
pub mod biases;
pub mod bpr;
pub mod business;
pub mod calibration;
pub mod content;
pub mod context;
pub mod ease;
pub mod error;
pub mod file;
pub mod hybrid;
pub mod knn;
pub mod popularity;
pub mod quantized;
pub mod rerank;
pub mod together;
pub mod topk;
pub mod validation;
pub mod zoo;

pub use error::{RecommendError, Result};
pub use topk::{Filter, top_k};

/// A user's interactions: sorted item indices and their weights.
#[derive(Debug, Clone, Copy)]
pub struct History<'a> {
    /// Item indices, sorted ascending.
    pub items: &'a [u32],
    /// Weights (same length).
    pub weights: &'a [f32],
    /// Optional per-item recency multipliers in `[0, 1]` (same length): recent interactions
    /// count more when item-based models score the user.
    pub recency: Option<&'a [f32]>,
}

impl<'a> History<'a> {
    /// A user's row of the training matrix.
    pub fn of(m: &'a tailor_core::Interactions, user: tailor_core::UserIdx) -> Self {
        let (items, weights) = m.row(user);
        Self { items, weights, recency: None }
    }

    /// No interactions.
    pub fn empty() -> Self {
        Self { items: &[], weights: &[], recency: None }
    }

    /// The recency multiplier of the `p`-th history entry (1 without recency).
    pub fn recency_at(&self, p: usize) -> f32 {
        self.recency.and_then(|r| r.get(p).copied()).unwrap_or(1.0)
    }
}

/// A trained model.
pub trait Model: Send + Sync {
    /// Short name (`als`, `ease`...).
    fn name(&self) -> &'static str;

    /// Catalog size the model knows.
    fn n_items(&self) -> usize;

    /// Writes a score for every item into `out` (length [`Model::n_items`]), higher is
    /// better. `user` is the training row of the user when there is one.
    fn score(&self, user: Option<u32>, history: History<'_>, out: &mut [f32]);

    /// The best `k` items for the user, without the items of their history and those the
    /// filter excludes.
    fn recommend(&self, user: Option<u32>, history: History<'_>, k: usize, filter: &Filter) -> Vec<(u32, f32)> {
        let mut scores = vec![0f32; self.n_items()];
        self.score(user, history, &mut scores);
        let seen = history.items;
        top_k(&scores, k, |i| seen.binary_search(&i).is_err() && filter.allows(i))
    }

    /// [`Model::recommend`] for several users at once; factor models override it with one
    /// matrix product per block of users (GEMM), which batch jobs (e-mails, offline
    /// evaluation) use.
    fn recommend_batch(&self, users: &[(Option<u32>, History<'_>)], k: usize, filter: &Filter) -> Vec<Vec<(u32, f32)>> {
        users.iter().map(|(u, h)| self.recommend(*u, *h, k, filter)).collect()
    }

    /// The `k` items most like `item`, best first, without `item` itself: by default the
    /// scores of a history holding `item` alone (item-to-item models answer exactly "because
    /// you viewed"); factor models override it with the cosine of item vectors. Empty when
    /// the model has no notion of likeness (popularity).
    fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        if item as usize >= self.n_items() {
            return Vec::new();
        }
        let mut scores = vec![0f32; self.n_items()];
        self.score(None, History { items: &[item], weights: &[1.0], recency: None }, &mut scores);
        top_k(&scores, k, |i| i != item).into_iter().filter(|(_, s)| *s > 0.0).collect()
    }

    /// How much each item of `history` contributes to `item`'s score, largest first: by
    /// default the score `item` gets from that history item alone, which is exact for models
    /// whose score is a sum over history items (item-kNN, EASE, content's numerator, bought
    /// together); ALS overrides it with Hu et al.'s decomposition.
    fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        if item as usize >= self.n_items() {
            return Vec::new();
        }
        let mut scores = vec![0f32; self.n_items()];
        let mut out: Vec<(u32, f32)> = history
            .items
            .iter()
            .zip(history.weights)
            .map(|(&h, &w)| {
                self.score(None, History { items: &[h], weights: &[w], recency: None }, &mut scores);
                (h, scores[item as usize])
            })
            .filter(|(_, s)| *s != 0.0)
            .collect();
        topk::best_first(&mut out);
        out
    }
}

/// The `n` items whose vectors (row-major, `k` per row) have the highest cosine with
/// `item`'s, without `item`: "similar items" of factor models.
pub fn cosine_neighbours(factors: &[f32], k: usize, item: u32, n: usize) -> Vec<(u32, f32)> {
    let k = k.max(1);
    let Some(x) = factors.get(item as usize * k..(item as usize + 1) * k) else {
        return Vec::new();
    };
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
    let nx = norm(x);
    if nx == 0.0 {
        return Vec::new();
    }
    let scores: Vec<f32> = factors
        .chunks_exact(k)
        .map(|y| {
            let ny = norm(y);
            if ny == 0.0 { 0.0 } else { x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>() / (nx * ny) }
        })
        .collect();
    top_k(&scores, n, |i| i != item)
}

/// The item side of a factor model: vectors (row-major, `k` per row) and optional biases.
#[derive(Debug, Clone, Copy)]
pub struct ItemFactors<'a> {
    /// `n_items × k`.
    pub items: &'a [f32],
    /// Per item, added to the dot product.
    pub bias: Option<&'a [f32]>,
    /// Factors per row.
    pub k: usize,
}

/// [`Model::recommend_batch`] for a factor model: users with a factor row (`user_vector`)
/// are scored in blocks of 64 by one GEMM each (`X_block · Yᵀ`, plus `bias`), the others one
/// by one through `fallback`.
pub fn factor_batch<'a>(
    item_side: ItemFactors<'_>,
    users: &[(Option<u32>, History<'_>)],
    user_vector: impl Fn(u32) -> Option<&'a [f32]>,
    k: usize,
    filter: &Filter,
    fallback: impl Fn(Option<u32>, History<'_>) -> Vec<(u32, f32)>,
) -> Vec<Vec<(u32, f32)>> {
    const BLOCK: usize = 64;
    let ItemFactors { items, bias, k: k_factors } = item_side;
    let kf = k_factors.max(1);
    let n_items = items.len() / kf;
    let y = faer::MatRef::from_row_major_slice(items, n_items, kf);
    let mut out: Vec<Vec<(u32, f32)>> = vec![Vec::new(); users.len()];
    let known: Vec<usize> = (0..users.len()).filter(|&p| users[p].0.and_then(&user_vector).is_some()).collect();
    let mut x = vec![0f32; BLOCK * kf];
    // Items × users, column-major: each user's scores are one contiguous column.
    let mut scores = faer::Mat::<f32>::zeros(n_items, BLOCK);
    let mut row = vec![0f32; n_items];
    for block in known.chunks(BLOCK) {
        for (r, &p) in block.iter().enumerate() {
            if let Some(v) = users[p].0.and_then(&user_vector) {
                x[r * kf..(r + 1) * kf].copy_from_slice(v);
            }
        }
        let xm = faer::MatRef::from_row_major_slice(&x[..block.len() * kf], block.len(), kf);
        let dst = scores.as_mut().subcols_mut(0, block.len());
        faer::linalg::matmul::matmul(dst, faer::Accum::Replace, y, xm.transpose(), 1.0f32, faer::Par::Seq);
        for (r, &p) in block.iter().enumerate() {
            let col = scores.col(r);
            match col.try_as_col_major() {
                Some(c) => row.copy_from_slice(c.as_slice()),
                None => row.iter_mut().enumerate().for_each(|(i, v)| *v = col[i]),
            }
            if let Some(b) = bias {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
            let seen = users[p].1.items;
            out[p] = top_k(&row, k, |i| seen.binary_search(&i).is_err() && filter.allows(i));
        }
    }
    for (p, (u, h)) in users.iter().enumerate() {
        if u.and_then(&user_vector).is_none() {
            out[p] = fallback(*u, *h);
        }
    }
    out
}

/// Recency multipliers for every stored pair of `m` (aligned with its values): per user, the
/// interactions ordered by `times` (newest first, ties by item index) get `0.5^(age / half_life)`
/// where `age` counts the user's newer interactions. Item-based models multiply them into the
/// query weights ([`History::recency`]); on a temporal split this lifts NDCG markedly, since
/// what a user does next resembles what they did last.
pub fn recency_weights(m: &tailor_core::Interactions, times: &[f64], half_life: f32) -> Vec<f32> {
    let ip = m.indptr();
    let mut r = vec![1f32; m.nnz()];
    let h = half_life.max(1e-6);
    for u in 0..m.n_users() {
        let (a, b) = (ip[u], ip[u + 1]);
        let mut order: Vec<usize> = (a..b).collect();
        order.sort_by(|&x, &y| {
            let (tx, ty) = (times.get(x).copied().unwrap_or(0.0), times.get(y).copied().unwrap_or(0.0));
            ty.total_cmp(&tx).then(x.cmp(&y))
        });
        for (age, &p) in order.iter().enumerate() {
            r[p] = 0.5f32.powf(age as f32 / h);
        }
    }
    r
}
