//! BPR (Rendle et al. 2009): matrix factorisation trained by stochastic gradient ascent on
//! `ln σ(x_uij)`, `x_uij = x_u · (y_i − y_j) + b_i − b_j`, for sampled triples of a user, an
//! item they interacted with and one they did not (uniform or popularity-weighted negatives,
//! resampled when the user has it).
//!
//! Parallel without locks or atomics by stratification (as DSGD, Gemulla et al. 2011): with
//! `T` threads, users and items are split into `T` blocks (`u mod T`, `i mod T`); an epoch
//! runs `T` rounds, and in round `s` thread `t` samples positives from the pairs of user
//! block `t` × item block `(t + s) mod T`, with negatives from that same item block. The `T`
//! strata of a round share no user and no item, so each thread owns its rows outright and
//! the update loops are plain, vectorised f32 code. Over an epoch every pair's stratum is
//! visited once and negatives cover every item block.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::Interactions;
use tailor_core::rng::Rng;

use crate::error::{RecommendError, Result, check};
use crate::{Filter, History, Model};

/// How negative items are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Negatives {
    /// Every item equally likely.
    Uniform,
    /// In proportion to the item's number of users (harder negatives).
    Popularity,
}

/// Training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `ln σ(x_ui − x_uj)` for one sampled negative (Rendle et al. 2009).
    #[default]
    Bpr,
    /// WARP (Weston, Bengio & Usunier 2011): negatives are drawn until one violates the margin
    /// (`x_uj > x_ui − 1`), at most `max_trials` times; the hinge's gradient is weighted by
    /// `ln ⌊(n_items − 1) / trials⌋` (an estimate of how far down the positive ranks, so that
    /// errors at the top of the list count most), and steps are AdaGrad's (per-parameter
    /// `lr / √(1 + Σ g²)`, as LightFM's), which keeps those large weights stable. Skips the
    /// pair when no violation is found.
    Warp {
        /// Draws before giving up on a pair.
        max_trials: usize,
    },
}

/// Parameters of [`BprModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BprParams {
    /// Length of each user and item vector (1 to 1,024).
    pub factors: usize,
    /// SGD step.
    pub learning_rate: f32,
    /// L2 regularisation.
    pub regularization: f32,
    /// Epochs (one epoch = as many sampled triples as stored pairs).
    pub epochs: usize,
    /// Negative sampling.
    pub negatives: Negatives,
    /// Loss: BPR's log-sigmoid of pairwise differences, or WARP's rank-weighted hinge.
    #[serde(default)]
    pub loss: Loss,
    /// Seed of the initial factors and the sampled triples.
    pub seed: u64,
}

impl Default for BprParams {
    fn default() -> Self {
        Self {
            factors: 64,
            learning_rate: 0.05,
            regularization: 0.01,
            epochs: 100,
            negatives: Negatives::Uniform,
            loss: Loss::Bpr,
            seed: 0,
        }
    }
}

/// Fitted BPR factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BprModel {
    /// The parameters it was fitted with.
    pub params: BprParams,
    /// Factors per row.
    pub k: usize,
    /// `n_users × k`.
    pub user_factors: Vec<f32>,
    /// `n_items × k`.
    pub item_factors: Vec<f32>,
    /// Item biases.
    pub item_bias: Vec<f32>,
}

/// Dot product with 8 independent accumulators, so that it vectorises (a single running sum
/// would be one long chain of dependent additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    tail + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The users `b, b + T, b + 2T, …` (local index `u / T`): their factors, and their pairs
/// by item block as (local user, local item).
struct UserBlock {
    factors: Vec<f32>,
    /// AdaGrad's running sums of squared gradients (WARP), starting at 1.
    grad_sq: Vec<f32>,
    pairs: Vec<Vec<(u32, u32)>>,
}

/// The items `b, b + T, …` (local index `i / T`): factors, biases, cumulative popularity.
struct ItemBlock {
    factors: Vec<f32>,
    bias: Vec<f32>,
    /// AdaGrad's running sums for factors and biases (WARP).
    grad_sq: Vec<f32>,
    bias_grad_sq: Vec<f32>,
    cum: Vec<f64>,
}

/// Block-major rows (row `r` of block `r mod T` at local `r / T`) back to row order.
fn gather<'a>(blocks: impl Iterator<Item = &'a [f32]>, n: usize, k: usize, t: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * k];
    for (b, block) in blocks.enumerate() {
        for (local, row) in block.chunks_exact(k).enumerate() {
            let r = local * t + b;
            out[r * k..(r + 1) * k].copy_from_slice(row);
        }
    }
    out
}

/// One thread's share of a round: user block `ub` × item block `ib`.
struct Stratum<'a> {
    m: &'a Interactions,
    t: usize,
    ub: usize,
    ib: usize,
    k: usize,
    params: &'a BprParams,
}

impl Stratum<'_> {
    fn run(&self, users: &mut UserBlock, items: &mut ItemBlock, r: &mut Rng) {
        let (t, k, p) = (self.t, self.k, self.params);
        let pairs = &users.pairs[self.ib];
        let n_local = items.bias.len();
        if pairs.is_empty() || n_local < 2 {
            return;
        }
        let (lr, reg) = (p.learning_rate, p.regularization);
        let n_items = self.m.n_items();
        let ip = self.m.indptr();
        let mut diff = vec![0f32; k];
        for _ in 0..pairs.len() {
            let (ul, il) = pairs[r.below(pairs.len())];
            let u = ul as usize * t + self.ub;
            let row = &self.m.indices()[ip[u]..ip[u + 1]];
            // Negatives from this item block; popular ones can all be the user's: after 20
            // tries, uniform draws; skip the sample if those fail too.
            let negative = |r: &mut Rng| {
                for attempt in 0..40 {
                    let jl = match p.negatives {
                        Negatives::Popularity if attempt < 20 => {
                            let x = r.f64() * items.cum[n_local - 1];
                            items.cum.partition_point(|c| *c <= x).min(n_local - 1)
                        }
                        _ => r.below(n_local),
                    };
                    let j = jl * t + self.ib;
                    if row.binary_search(&(j as u32)).is_err() {
                        return Some(jl);
                    }
                }
                None
            };
            let il = il as usize;
            let xu = &users.factors[ul as usize * k..(ul as usize + 1) * k];
            let yi = &items.factors[il * k..(il + 1) * k];
            let si = dot(xu, yi) + items.bias[il];
            let (jl, z) = match p.loss {
                Loss::Bpr => {
                    let Some(jl) = negative(r) else { continue };
                    let sj = dot(xu, &items.factors[jl * k..(jl + 1) * k]) + items.bias[jl];
                    (jl, 1.0 / (1.0 + (si - sj).exp()))
                }
                Loss::Warp { max_trials } => {
                    let mut hit = None;
                    for trial in 1..=max_trials.max(1) {
                        let Some(jl) = negative(r) else { break };
                        let sj = dot(xu, &items.factors[jl * k..(jl + 1) * k]) + items.bias[jl];
                        if sj > si - 1.0 {
                            hit = Some((jl, (((n_items - 1) / trial).max(1) as f32).ln().max(0.1)));
                            break;
                        }
                    }
                    let Some(found) = hit else { continue };
                    found
                }
            };
            // i ≠ j (j is not among the user's items, i is): two disjoint rows.
            let (yi, yj) = two_rows(&mut items.factors, il, jl, k);
            let urow = ul as usize * k..(ul as usize + 1) * k;
            let xu = &mut users.factors[urow.clone()];
            for ((d, b), c) in diff.iter_mut().zip(yi.iter()).zip(yj.iter()) {
                *d = b - c;
            }
            if let Loss::Warp { .. } = p.loss {
                // AdaGrad on the rank-weighted hinge (as LightFM): per-parameter steps
                // lr / √(1 + Σ g²), which keeps the large WARP weights stable.
                let gu = &mut users.grad_sq[urow];
                let (gi, gj) = two_rows(&mut items.grad_sq, il, jl, k);
                for f in 0..k {
                    let a = xu[f];
                    let g = -z * diff[f] + reg * a;
                    gu[f] += g * g;
                    xu[f] = a - lr * g / gu[f].sqrt();
                    let g = -z * a + reg * yi[f];
                    gi[f] += g * g;
                    yi[f] -= lr * g / gi[f].sqrt();
                    let g = z * a + reg * yj[f];
                    gj[f] += g * g;
                    yj[f] -= lr * g / gj[f].sqrt();
                }
                for (b, sign) in [(il, -1.0f32), (jl, 1.0)] {
                    let g = sign * z + reg * items.bias[b];
                    items.bias_grad_sq[b] += g * g;
                    items.bias[b] -= lr * g / items.bias_grad_sq[b].sqrt();
                }
                continue;
            }
            for f in 0..k {
                let a = xu[f];
                xu[f] = a + lr * (z * diff[f] - reg * a);
                yi[f] += lr * (z * a - reg * yi[f]);
                yj[f] += lr * (-z * a - reg * yj[f]);
            }
            let (bi, bj) = (items.bias[il], items.bias[jl]);
            items.bias[il] = bi + lr * (z - reg * bi);
            items.bias[jl] = bj + lr * (-z - reg * bj);
        }
    }
}

/// Mutable rows `a` and `b` (distinct) of a row-major matrix with `k` columns.
fn two_rows(v: &mut [f32], a: usize, b: usize, k: usize) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (lo, hi) = v.split_at_mut(b * k);
        (&mut lo[a * k..(a + 1) * k], &mut hi[..k])
    } else {
        let (lo, hi) = v.split_at_mut(a * k);
        let (x, y) = (&mut hi[..k], &mut lo[b * k..(b + 1) * k]);
        (x, y)
    }
}

impl BprParams {
    /// Parameters from `key=value` pairs (factors, learning_rate, regularization, epochs,
    /// negatives=uniform|popularity, loss=bpr|warp, max_trials, seed), removing the keys it
    /// uses; unset keys keep their defaults. The error names the key and value.
    pub fn from_pairs(p: &mut std::collections::HashMap<String, String>) -> std::result::Result<Self, String> {
        use crate::error::take_param as take;
        let d = Self::default();
        let negatives = match p.remove("negatives").as_deref() {
            None | Some("uniform") => Negatives::Uniform,
            Some("popularity") => Negatives::Popularity,
            Some(other) => return Err(format!("negatives={other}: expected uniform or popularity")),
        };
        let loss = match p.remove("loss").as_deref() {
            None | Some("bpr") => Loss::Bpr,
            Some("warp") => Loss::Warp { max_trials: take(p, "max_trials", 100)? },
            Some(other) => return Err(format!("loss={other}: expected bpr or warp")),
        };
        let params = Self {
            factors: take(p, "factors", d.factors)?,
            learning_rate: take(p, "learning_rate", d.learning_rate)?,
            regularization: take(p, "regularization", d.regularization)?,
            epochs: take(p, "epochs", d.epochs)?,
            negatives,
            loss,
            seed: take(p, "seed", d.seed)?,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(params)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        check((1..=1024).contains(&self.factors), "factors", self.factors, "must be in 1..=1024")?;
        check(
            self.learning_rate > 0.0 && self.learning_rate.is_finite(),
            "learning_rate",
            self.learning_rate,
            "must be > 0",
        )?;
        check(
            self.regularization >= 0.0 && self.regularization.is_finite(),
            "regularization",
            self.regularization,
            "must be >= 0",
        )
    }

    /// Trains; `each_epoch(epoch, &model)` after every epoch, `false` stops (early stopping).
    pub fn fit_with(&self, m: &Interactions, mut each_epoch: impl FnMut(usize, &BprModel) -> bool) -> Result<BprModel> {
        self.validate()?;
        let (n_users, n_items, k) = (m.n_users(), m.n_items(), self.factors);
        if m.nnz() == 0 || n_items < 2 {
            return Err(RecommendError::InvalidData("BPR needs interactions and at least 2 items".into()));
        }
        let t = rayon::current_num_threads().clamp(1, n_items / 2);
        let mut rng = Rng::new(self.seed);
        let init = |rng: &mut Rng| ((rng.f64() - 0.5) / k as f64) as f32;
        let user_init: Vec<f32> = (0..n_users * k).map(|_| init(&mut rng)).collect();
        let item_init: Vec<f32> = (0..n_items * k).map(|_| init(&mut rng)).collect();
        let counts = crate::popularity::Popularity::fit(m).counts;
        let mut users: Vec<UserBlock> = (0..t)
            .map(|b| {
                let members: Vec<usize> = (b..n_users).step_by(t).collect();
                let factors = members.iter().flat_map(|&u| user_init[u * k..(u + 1) * k].iter().copied()).collect();
                let grad_sq = vec![1.0; members.len() * k];
                UserBlock { factors, grad_sq, pairs: vec![Vec::new(); t] }
            })
            .collect();
        let mut items: Vec<ItemBlock> = (0..t)
            .map(|b| {
                let members: Vec<usize> = (b..n_items).step_by(t).collect();
                let factors = members.iter().flat_map(|&i| item_init[i * k..(i + 1) * k].iter().copied()).collect();
                let mut acc = 0.0;
                let cum = members
                    .iter()
                    .map(|&i| {
                        acc += f64::from(counts[i]);
                        acc
                    })
                    .collect();
                ItemBlock {
                    factors,
                    bias: vec![0.0; members.len()],
                    grad_sq: vec![1.0; members.len() * k],
                    bias_grad_sq: vec![1.0; members.len()],
                    cum,
                }
            })
            .collect();
        let ip = m.indptr();
        for u in 0..n_users {
            for &i in &m.indices()[ip[u]..ip[u + 1]] {
                users[u % t].pairs[i as usize % t].push(((u / t) as u32, i / t as u32));
            }
        }
        let mut model = BprModel {
            params: self.clone(),
            k,
            user_factors: Vec::new(),
            item_factors: Vec::new(),
            item_bias: Vec::new(),
        };
        for epoch in 0..self.epochs {
            for round in 0..t {
                let mut rotated: Vec<(usize, &mut ItemBlock)> = items.iter_mut().enumerate().collect();
                rotated.rotate_left(round);
                users.par_iter_mut().zip(rotated.into_par_iter()).enumerate().for_each(
                    |(ub, (user_block, (ib, item_block)))| {
                        let stream = ((epoch * t + round) * t + ub) as u64;
                        let mut r = Rng::fork(self.seed ^ 0xB9B, stream);
                        let stratum = Stratum { m, t, ub, ib, k, params: self };
                        stratum.run(user_block, item_block, &mut r);
                    },
                );
            }
            model.user_factors = gather(users.iter().map(|b| b.factors.as_slice()), n_users, k, t);
            model.item_factors = gather(items.iter().map(|b| b.factors.as_slice()), n_items, k, t);
            model.item_bias = gather(items.iter().map(|b| b.bias.as_slice()), n_items, 1, t);
            if !each_epoch(epoch + 1, &model) {
                break;
            }
        }
        if model.user_factors.is_empty() {
            model.user_factors = gather(users.iter().map(|b| b.factors.as_slice()), n_users, k, t);
            model.item_factors = gather(items.iter().map(|b| b.factors.as_slice()), n_items, k, t);
            model.item_bias = gather(items.iter().map(|b| b.bias.as_slice()), n_items, 1, t);
        }
        Ok(model)
    }

    /// Trains for all epochs.
    pub fn fit(&self, m: &Interactions) -> Result<BprModel> {
        self.fit_with(m, |_, _| true)
    }
}

impl Model for BprModel {
    fn name(&self) -> &'static str {
        "bpr"
    }

    fn n_items(&self) -> usize {
        self.item_bias.len()
    }

    fn recommend_batch(&self, users: &[(Option<u32>, History<'_>)], k: usize, filter: &Filter) -> Vec<Vec<(u32, f32)>> {
        let kf = self.k;
        let user = |u: u32| self.user_factors.get(u as usize * kf..(u as usize + 1) * kf);
        let side = crate::ItemFactors { items: &self.item_factors, bias: Some(&self.item_bias), k: kf };
        crate::factor_batch(side, users, user, k, filter, |u, h| self.recommend(u, h, k, filter))
    }

    fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        crate::cosine_neighbours(&self.item_factors, self.k, item, k)
    }

    fn score(&self, user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        let k = self.k;
        // A user unknown to the model: the mean of their items' factors (a simple fold-in).
        let mut folded = vec![0f32; k];
        let x: &[f32] = match user.and_then(|u| self.user_factors.get(u as usize * k..(u as usize + 1) * k)) {
            Some(x) => x,
            None => {
                for &i in history.items {
                    if let Some(y) = self.item_factors.get(i as usize * k..(i as usize + 1) * k) {
                        folded.iter_mut().zip(y).for_each(|(a, b)| *a += b);
                    }
                }
                let n = history.items.len().max(1) as f32;
                folded.iter_mut().for_each(|a| *a /= n);
                &folded
            }
        };
        for ((o, y), b) in out.iter_mut().zip(self.item_factors.chunks_exact(k)).zip(&self.item_bias) {
            *o = x.iter().zip(y).map(|(a, c)| a * c).sum::<f32>() + b;
        }
    }
}
