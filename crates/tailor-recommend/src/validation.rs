//! Validation inside training data: carving the most recent interactions of each user off
//! a matrix, and scoring a model on them (for learned blends, early stopping and training
//! curves), without going through ids or files.

use tailor_core::{Interactions, UserIdx};

use crate::error::Result;
use crate::topk::top_k;
use crate::{History, Model};

/// The most recent `fraction` of each user's interactions (users with at least five) as a
/// validation set: (fit matrix, held-out items per user, sorted).
pub fn carve(m: &Interactions, times: &[f64], fraction: f64) -> Result<(Interactions, Vec<Vec<u32>>)> {
    carve_with_times(m, times, fraction).map(|(fit, _, held)| (fit, held))
}

/// [`carve`], also returning the kept pairs' times aligned with the carved matrix (for fits
/// that read times: trending, early stopping, the hybrid's blend).
pub fn carve_with_times(
    m: &Interactions,
    times: &[f64],
    fraction: f64,
) -> Result<(Interactions, Vec<f64>, Vec<Vec<u32>>)> {
    let ip = m.indptr();
    let (mut indptr, mut indices, mut data) = (vec![0usize], Vec::new(), Vec::new());
    let mut kept_times = Vec::new();
    let mut held = vec![Vec::new(); m.n_users()];
    for (u, h) in held.iter_mut().enumerate() {
        let (a, b) = (ip[u], ip[u + 1]);
        let n = b - a;
        let n_out = if n >= 5 { ((n as f64) * fraction).round() as usize } else { 0 };
        let mut order: Vec<usize> = (a..b).collect();
        order.sort_by(|&x, &y| {
            let (tx, ty) = (times.get(x).copied().unwrap_or(0.0), times.get(y).copied().unwrap_or(0.0));
            ty.total_cmp(&tx).then(y.cmp(&x))
        });
        let mut keep: Vec<usize> = order[n_out..].to_vec();
        keep.sort_unstable();
        h.extend(order[..n_out].iter().map(|&p| m.indices()[p]));
        h.sort_unstable();
        for p in keep {
            indices.push(m.indices()[p]);
            data.push(m.data()[p]);
            kept_times.push(times.get(p).copied().unwrap_or(0.0));
        }
        indptr.push(indices.len());
    }
    let fit = Interactions::from_csr(m.n_users(), m.n_items(), indptr, indices, data)
        .map_err(|e| crate::RecommendError::InvalidData(e.to_string()))?;
    Ok((fit, kept_times, held))
}

/// Mean NDCG@`k` (binary gains) over users with held-out items: each user's top `k`
/// excludes their items in `fit`; `held[u]` are the relevant items (sorted).
pub fn ndcg(model: &dyn Model, fit: &Interactions, held: &[Vec<u32>], k: usize) -> f64 {
    let (mut total, mut users) = (0f64, 0usize);
    let mut scores = vec![0f32; model.n_items()];
    for (u, relevant) in held.iter().enumerate() {
        if relevant.is_empty() || u >= fit.n_users() {
            continue;
        }
        let h = History::of(fit, UserIdx(u as u32));
        model.score(Some(u as u32), h, &mut scores);
        total += ndcg_of(&scores, h.items, relevant, k);
        users += 1;
    }
    if users == 0 { 0.0 } else { total / users as f64 }
}

/// What a holdout says of a model beyond NDCG: the same top-`k` lists as [`ndcg`], with
/// the exposure metrics `tailor-eval` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Holdout {
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Mean share of each user's held-out items in their top k (versions recorded before
    /// it was measured read 0).
    #[serde(default)]
    pub recall: f64,
    /// Distinct recommended items / items.
    pub coverage: f64,
    /// Mean self-information −log2(users of the item / users) of recommended items (higher:
    /// less obvious items).
    pub novelty: f64,
    /// Mean 1 − cosine of the audiences of each pair of items in a list (over a sample of
    /// [`DIVERSITY_USERS`] users).
    pub diversity: f64,
}

/// Users whose lists [`holdout`] measures diversity on.
pub const DIVERSITY_USERS: usize = 500;

/// [`ndcg`] with coverage, novelty and intra-list diversity of the same lists (diversity
/// over an even sample of [`DIVERSITY_USERS`] of them).
pub fn holdout(model: &dyn Model, fit: &Interactions, held: &[Vec<u32>], k: usize) -> Holdout {
    holdout_with_recency(model, fit, held, k, None)
}

/// [`holdout`] with query-side recency multipliers (aligned with `fit`'s values, from
/// [`crate::recency_weights`]) in every user's history.
pub fn holdout_with_recency(
    model: &dyn Model,
    fit: &Interactions,
    held: &[Vec<u32>],
    k: usize,
    recency: Option<&[f32]>,
) -> Holdout {
    let ip = fit.indptr();
    let audience = fit.transpose();
    let n_users = fit.n_users().max(1) as f64;
    let (mut total, mut users, mut recall) = (0f64, 0usize, 0f64);
    let mut shown = vec![false; model.n_items()];
    let (mut novelty, mut novelty_n) = (0f64, 0usize);
    let (mut diversity, mut diversity_n) = (0f64, 0usize);
    // Diversity compares audiences of every pair in a list (the dear part): over an even
    // sample of at most DIVERSITY_USERS users.
    let scored = held.iter().take(fit.n_users()).filter(|r| !r.is_empty()).count();
    let stride = scored.div_ceil(DIVERSITY_USERS).max(1);
    let mut scores = vec![0f32; model.n_items()];
    let audience_of =
        |i: u32| -> &[u32] { if (i as usize) < audience.n_users() { audience.row(UserIdx(i)).0 } else { &[] } };
    for (u, relevant) in held.iter().enumerate() {
        if relevant.is_empty() || u >= fit.n_users() {
            continue;
        }
        let mut h = History::of(fit, UserIdx(u as u32));
        h.recency = recency.and_then(|r| r.get(ip[u]..ip[u + 1]));
        model.score(Some(u as u32), h, &mut scores);
        let top = top_k(&scores, k, |i| h.items.binary_search(&i).is_err());
        total += ndcg_of_top(&top, relevant, k);
        recall += top.iter().filter(|(i, _)| relevant.binary_search(i).is_ok()).count() as f64 / relevant.len() as f64;
        users += 1;
        for &(i, _) in &top {
            shown[i as usize] = true;
            let n = audience_of(i).len();
            if n > 0 {
                novelty += -(n as f64 / n_users).log2();
                novelty_n += 1;
            }
        }
        if (users - 1) % stride != 0 {
            continue;
        }
        for (a, &(x, _)) in top.iter().enumerate() {
            for &(y, _) in &top[a + 1..] {
                let (ax, ay) = (audience_of(x), audience_of(y));
                if ax.is_empty() || ay.is_empty() {
                    continue;
                }
                let common = sorted_overlap(ax, ay) as f64;
                diversity += 1.0 - common / ((ax.len() as f64) * (ay.len() as f64)).sqrt();
                diversity_n += 1;
            }
        }
    }
    let mean = |s: f64, n: usize| if n == 0 { 0.0 } else { s / n as f64 };
    Holdout {
        ndcg: mean(total, users),
        recall: mean(recall, users),
        coverage: shown.iter().filter(|&&s| s).count() as f64 / shown.len().max(1) as f64,
        novelty: mean(novelty, novelty_n),
        diversity: mean(diversity, diversity_n),
    }
}

/// Elements common to two sorted slices.
fn sorted_overlap(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// NDCG@`k` (binary gains) of one ranking: the best `k` of `scores` outside `seen` (sorted)
/// against `relevant` (sorted, not empty).
pub fn ndcg_of(scores: &[f32], seen: &[u32], relevant: &[u32], k: usize) -> f64 {
    ndcg_of_top(&top_k(scores, k, |i| seen.binary_search(&i).is_err()), relevant, k)
}

/// NDCG@`k` of a ranked list of (item, score) against `relevant` (sorted).
fn ndcg_of_top(top: &[(u32, f32)], relevant: &[u32], k: usize) -> f64 {
    let dcg: f64 = top
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| relevant.binary_search(i).is_ok())
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// Early stopping for iterative models: carves a validation set off `m` (the latest 20% of
/// each user's interactions, by `times`), trains with `train(fit_matrix, callback)` where
/// the model calls `callback(epoch, &model)` after every epoch and stops when it returns
/// false, scores NDCG@`k` after each epoch, and stops after `patience` epochs without
/// improvement. Returns the best epoch count (to refit on all of `m`) and the curve.
pub fn early_stopping<F>(m: &Interactions, times: &[f64], patience: usize, k: usize, train: F) -> Result<EarlyStop>
where
    F: FnOnce(&Interactions, &mut dyn FnMut(usize, &dyn Model) -> bool) -> Result<()>,
{
    let (fit, held) = carve(m, times, 0.2)?;
    let mut curve = Vec::new();
    let (mut best, mut best_epoch) = (f64::NEG_INFINITY, 0usize);
    let mut callback = |epoch: usize, model: &dyn Model| {
        let v = ndcg(model, &fit, &held, k);
        curve.push((epoch, v));
        if v > best {
            best = v;
            best_epoch = epoch;
        }
        epoch - best_epoch < patience.max(1)
    };
    train(&fit, &mut callback)?;
    Ok(EarlyStop { best_epoch: best_epoch.max(1), best_ndcg: best.max(0.0), curve })
}

/// What [`early_stopping`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStop {
    /// Epochs to train on all the data.
    pub best_epoch: usize,
    /// Validation NDCG at that epoch.
    pub best_ndcg: f64,
    /// Validation NDCG after each epoch that ran.
    pub curve: Vec<(usize, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validation_carve_holds_out_each_users_latest_fifth() {
        let m =
            Interactions::from_csr(2, 10, vec![0, 10, 12], (0..10).chain(0..2).collect(), vec![1.0; 12]).expect("csr");
        // User 0's items were seen in reverse order: item 0 last.
        let times: Vec<f64> = (0..10).map(|p| f64::from(10 - p)).chain([1.0, 2.0]).collect();
        let (fit, held) = carve(&m, &times, 0.2).expect("carves");
        assert_eq!(held[0], vec![0, 1]);
        assert!(held[1].is_empty(), "fewer than five interactions: nothing held out");
        assert_eq!(fit.nnz(), 10);
        assert_eq!(fit.row(tailor_core::UserIdx(0)).0, &[2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn ndcg_of_a_perfect_and_a_useless_model() {
        let fit = Interactions::from_csr(1, 4, vec![0, 1], vec![0], vec![1.0]).expect("csr");
        let held = vec![vec![3]];
        let perfect = crate::popularity::Popularity { counts: vec![9.0, 0.0, 1.0, 5.0] };
        assert!((ndcg(&perfect, &fit, &held, 2) - 1.0).abs() < 1e-12, "item 0 is excluded, 3 ranks first");
        let useless = crate::popularity::Popularity { counts: vec![0.0, 5.0, 4.0, 1.0] };
        assert!((ndcg(&useless, &fit, &held, 2)).abs() < 1e-12);
        assert!((ndcg(&useless, &fit, &held, 3) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn holdout_metrics_of_known_lists() {
        // Users 0-3; user 0 saw item 0 and holds out item 3. Audiences: item 0 {0, 1},
        // item 1 {1, 2}, item 2 {2}, item 3 {3}.
        let fit = Interactions::from_csr(4, 4, vec![0, 1, 3, 5, 6], vec![0, 0, 1, 1, 2, 3], vec![1.0; 6]).expect("csr");
        let held = vec![vec![3], vec![], vec![], vec![]];
        let pop = crate::popularity::Popularity { counts: vec![9.0, 2.0, 1.0, 5.0] };
        let h = holdout(&pop, &fit, &held, 2);
        assert!((h.ndcg - ndcg(&pop, &fit, &held, 2)).abs() < 1e-12);
        assert!((h.ndcg - 1.0).abs() < 1e-12);
        // User 0's list: items 3 and 1 (item 0 excluded): half the catalog.
        assert!((h.coverage - 0.5).abs() < 1e-12);
        // Audiences of 1 and 3 of 4 users: −log2(1/4) = 2 and −log2(2/4) = 1.
        assert!((h.novelty - 1.5).abs() < 1e-12);
        // Disjoint audiences: diversity 1.
        assert!((h.diversity - 1.0).abs() < 1e-12);
    }
}
