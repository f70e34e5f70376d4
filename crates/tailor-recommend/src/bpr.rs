//! BPR (Rendle et al. 2009): matrix factorisation trained by stochastic gradient ascent on
//! `ln σ(x_uij)`, `x_uij = x_u · (y_i − y_j) + b_i − b_j`, for sampled triples of a user, an
//! item they interacted with and one they did not (uniform or popularity-weighted negatives,
//! resampled when the user has it). Parallel Hogwild!-style updates (Niu et al. 2011): threads
//! update shared factors without locks; the factors are atomics with relaxed ordering, so
//! concurrent updates may overwrite each other (as in Hogwild!) but never tear a value.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::Interactions;
use tailor_core::rng::Rng;

use crate::error::{RecommendError, Result, check};
use crate::{History, Model};

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
    /// errors at the top of the list count most), normalised to at most 1. Skips the pair
    /// when no violation is found.
    Warp {
        /// Draws before giving up on a pair.
        max_trials: usize,
    },
}

/// Parameters of [`BprModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BprParams {
    /// Latent factors.
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
    /// Seed.
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
    /// Parameters used.
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

/// WARP's rank weight for a violation found at draw `trial`, `ln ⌊(n − 1)/trial⌋`, divided by
/// its largest value `ln(n − 1)` so that steps stay within BPR's (whose scale is at most 1)
/// and plain SGD at BPR's learning rates does not diverge; at least 0.05, so a violation
/// found late still moves the factors.
fn warp_weight(n_items: usize, trial: usize) -> f32 {
    let top = ((n_items.max(3) - 1) as f32).ln();
    ((((n_items.max(2) - 1) / trial.max(1)).max(1) as f32).ln() / top).max(0.05)
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

fn load(v: &[AtomicU32]) -> Vec<f32> {
    v.iter().map(|a| f32::from_bits(a.load(Relaxed))).collect()
}

impl BprParams {
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
        let mut rng = Rng::new(self.seed);
        let users: Vec<AtomicU32> =
            (0..n_users * k).map(|_| AtomicU32::new((((rng.f64() - 0.5) / k as f64) as f32).to_bits())).collect();
        let items: Vec<AtomicU32> =
            (0..n_items * k).map(|_| AtomicU32::new((((rng.f64() - 0.5) / k as f64) as f32).to_bits())).collect();
        let bias: Vec<AtomicU32> = (0..n_items).map(|_| AtomicU32::new(0f32.to_bits())).collect();
        // The user of every stored pair, to sample positives in proportion to activity.
        let ip = m.indptr();
        let mut owner = vec![0u32; m.nnz()];
        for u in 0..n_users {
            owner[ip[u]..ip[u + 1]].iter_mut().for_each(|o| *o = u as u32);
        }
        // Cumulative item popularity for popularity-weighted negatives.
        let mut cum = vec![0f64; n_items];
        if self.negatives == Negatives::Popularity {
            let mut counts = vec![0f64; n_items];
            m.indices().iter().for_each(|&i| counts[i as usize] += 1.0);
            let mut acc = 0.0;
            for (c, n) in cum.iter_mut().zip(&counts) {
                acc += n;
                *c = acc;
            }
        }
        let threads = rayon::current_num_threads().max(1);
        let per_thread = m.nnz().div_ceil(threads);
        let (lr, reg) = (self.learning_rate, self.regularization);
        let mut model = BprModel {
            params: self.clone(),
            k,
            user_factors: Vec::new(),
            item_factors: Vec::new(),
            item_bias: Vec::new(),
        };
        for epoch in 0..self.epochs {
            (0..threads).into_par_iter().for_each(|t| {
                let mut r = Rng::fork(self.seed ^ 0xB9B, (epoch * threads + t) as u64);
                let (mut xu, mut yi, mut yj) = (vec![0f32; k], vec![0f32; k], vec![0f32; k]);
                for _ in 0..per_thread {
                    let p = r.below(m.nnz());
                    let (u, i) = (owner[p] as usize, m.indices()[p] as usize);
                    let row = &m.indices()[ip[u]..ip[u + 1]];
                    if row.len() >= n_items {
                        continue;
                    }
                    // Popular negatives can all be among the user's items: after 20 tries,
                    // fall back to uniform draws, and skip the sample if those fail too.
                    let negative = |r: &mut Rng| {
                        for attempt in 0..40 {
                            let j = match self.negatives {
                                Negatives::Popularity if attempt < 20 => {
                                    let x = r.f64() * cum[n_items - 1];
                                    cum.partition_point(|c| *c <= x).min(n_items - 1)
                                }
                                _ => r.below(n_items),
                            };
                            if row.binary_search(&(j as u32)).is_err() {
                                return Some(j);
                            }
                        }
                        None
                    };
                    let get = |v: &[AtomicU32], at: usize, out: &mut [f32]| {
                        for (o, a) in out.iter_mut().zip(&v[at * k..(at + 1) * k]) {
                            *o = f32::from_bits(a.load(Relaxed));
                        }
                    };
                    let score = |x: &[f32], y: &[f32], b: f32| dot(x, y) + b;
                    get(&users, u, &mut xu);
                    get(&items, i, &mut yi);
                    let bi = f32::from_bits(bias[i].load(Relaxed));
                    // The negative and the gradient scale of this pair.
                    let (j, z) = match self.loss {
                        Loss::Bpr => {
                            let Some(j) = negative(&mut r) else { continue };
                            get(&items, j, &mut yj);
                            let bj = f32::from_bits(bias[j].load(Relaxed));
                            let x = score(&xu, &yi, bi) - score(&xu, &yj, bj);
                            (j, 1.0 / (1.0 + x.exp()))
                        }
                        Loss::Warp { max_trials } => {
                            let si = score(&xu, &yi, bi);
                            let mut hit = None;
                            for trial in 1..=max_trials.max(1) {
                                let Some(j) = negative(&mut r) else { break };
                                get(&items, j, &mut yj);
                                let bj = f32::from_bits(bias[j].load(Relaxed));
                                if score(&xu, &yj, bj) > si - 1.0 {
                                    hit = Some((j, warp_weight(n_items, trial)));
                                    break;
                                }
                            }
                            let Some(found) = hit else { continue };
                            found
                        }
                    };
                    let bj = f32::from_bits(bias[j].load(Relaxed));
                    for f in 0..k {
                        let (a, b, c) = (xu[f], yi[f], yj[f]);
                        users[u * k + f].store((a + lr * (z * (b - c) - reg * a)).to_bits(), Relaxed);
                        items[i * k + f].store((b + lr * (z * a - reg * b)).to_bits(), Relaxed);
                        items[j * k + f].store((c + lr * (-z * a - reg * c)).to_bits(), Relaxed);
                    }
                    bias[i].store((bi + lr * (z - reg * bi)).to_bits(), Relaxed);
                    bias[j].store((bj + lr * (-z - reg * bj)).to_bits(), Relaxed);
                }
            });
            model.user_factors = load(&users);
            model.item_factors = load(&items);
            model.item_bias = load(&bias);
            if !each_epoch(epoch + 1, &model) {
                break;
            }
        }
        if model.user_factors.is_empty() {
            model.user_factors = load(&users);
            model.item_factors = load(&items);
            model.item_bias = load(&bias);
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
