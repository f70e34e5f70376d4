//! Context-aware recommendations: implicit tensor factorization (iTALS, Hidasi & Tikk 2012).
//!
//! The data are (user, item, context, weight) observations, where a context is one value of
//! a small categorical variable (time-of-day bucket, weekday/weekend, device, location, or
//! their combination). The model is a CP decomposition of the user × item × context tensor,
//!
//! ```text
//! r̂(u, i, c) = Σ_f U[u,f] · I[i,f] · C[c,f]
//! ```
//!
//! trained as implicit ALS is: every cell of the tensor is a target (1 where observed, 0
//! elsewhere) with confidence `1 + α·w` on the observed ones and 1 on the rest. Fixing two of
//! the three factor matrices makes the third a set of independent ridge regressions, and the
//! sum over *all* cells collapses to the Hadamard product of the two fixed Gram matrices,
//! `(AᵀA) ∘ (BᵀB)`, so an iteration costs O(nnz·k + (rows)·k²) as ALS does. Each row solve is
//! exactly [`crate::als`]'s row solve (conjugate gradient or Cholesky) with the observation
//! vectors `a ∘ b` in place of the other side's factors, so the same SIMD kernels run it.
//!
//! With one context value the model is implicit ALS (the context vector only rescales the
//! factors); that is the "same model without context" it is compared with.

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;
use tailor_core::rng::Rng;

use crate::als::{AlsParams, gram, half_sweep};
use crate::error::{RecommendError, Result};

/// Observations of a user × item × context tensor.
#[derive(Debug, Clone, Default)]
pub struct Triples {
    /// Number of users (indices below it).
    pub n_users: usize,
    /// Number of items.
    pub n_items: usize,
    /// Number of context values.
    pub n_contexts: usize,
    /// User of each observation.
    pub users: Vec<u32>,
    /// Item of each observation.
    pub items: Vec<u32>,
    /// Context of each observation.
    pub contexts: Vec<u32>,
    /// Interaction strength (≥ 0); confidence is `1 + α·w`.
    pub weights: Vec<f32>,
}

impl Triples {
    /// Adds one observation.
    pub fn push(&mut self, user: u32, item: u32, context: u32, weight: f32) {
        self.n_users = self.n_users.max(user as usize + 1);
        self.n_items = self.n_items.max(item as usize + 1);
        self.n_contexts = self.n_contexts.max(context as usize + 1);
        self.users.push(user);
        self.items.push(item);
        self.contexts.push(context);
        self.weights.push(weight);
    }

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn check(&self) -> Result<()> {
        let n = self.users.len();
        if self.items.len() != n || self.contexts.len() != n || self.weights.len() != n {
            return Err(RecommendError::InvalidData("users, items, contexts and weights differ in length".into()));
        }
        let out_of_range = |v: &[u32], bound: usize| v.iter().any(|&x| x as usize >= bound);
        if out_of_range(&self.users, self.n_users)
            || out_of_range(&self.items, self.n_items)
            || out_of_range(&self.contexts, self.n_contexts)
        {
            return Err(RecommendError::InvalidData("an observation's index is out of range".into()));
        }
        if self.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(RecommendError::InvalidData("interaction weights must be finite and >= 0".into()));
        }
        Ok(())
    }

    /// Observations grouped by one mode (0 users, 1 items, 2 contexts): a CSR whose row `x`
    /// lists the positions (into the returned order) of `x`'s observations, with their weights,
    /// and that order (observation indices).
    fn grouped(&self, mode: usize) -> Result<(Interactions, Vec<usize>)> {
        let (key, n_rows) = match mode {
            0 => (&self.users, self.n_users),
            1 => (&self.items, self.n_items),
            _ => (&self.contexts, self.n_contexts),
        };
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&p| key[p]);
        let mut indptr = vec![0usize; n_rows + 1];
        for &x in key {
            indptr[x as usize + 1] += 1;
        }
        for r in 0..n_rows {
            indptr[r + 1] += indptr[r];
        }
        let indices: Vec<u32> = (0..self.len() as u32).collect();
        let data: Vec<f32> = order.iter().map(|&p| self.weights[p]).collect();
        // Positions are 0..nnz in row order, so each row's columns are sorted and distinct.
        let csr = Interactions::from_csr(n_rows, self.len().max(1), indptr, indices, data)
            .map_err(|e| RecommendError::InvalidData(e.to_string()))?;
        Ok((csr, order))
    }
}

/// A trained iTALS model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextModel {
    /// Training parameters.
    pub params: AlsParams,
    /// Factors per row.
    pub k: usize,
    /// `n_users × k`, row-major.
    pub users: Vec<f32>,
    /// `n_items × k`, row-major.
    pub items: Vec<f32>,
    /// `n_contexts × k`, row-major.
    pub contexts: Vec<f32>,
}

/// Trains iTALS with `params` (factors, λ, α, iterations, solver, seed as for ALS).
pub fn fit(params: &AlsParams, t: &Triples) -> Result<ContextModel> {
    params.validate()?;
    t.check()?;
    let k = params.factors;
    let mut rng = Rng::new(params.seed);
    let scale = 0.01;
    let mut users: Vec<f32> = (0..t.n_users * k).map(|_| (rng.normal() * scale) as f32).collect();
    let mut items: Vec<f32> = (0..t.n_items * k).map(|_| (rng.normal() * scale) as f32).collect();
    // Contexts start neutral, so that the first sweep is an ALS sweep.
    let mut contexts = vec![1f32; t.n_contexts * k];
    let groups = (0..3).map(|m| t.grouped(m)).collect::<Result<Vec<_>>>()?;
    let mut v = vec![0f32; t.len() * k];
    for _ in 0..params.iterations {
        for (mode, (csr, order)) in groups.iter().enumerate() {
            // The two fixed modes and each observation's index into them.
            let ((a, ai), (b, bi), x) = match mode {
                0 => ((&items, &t.items), (&contexts, &t.contexts), &mut users),
                1 => ((&users, &t.users), (&contexts, &t.contexts), &mut items),
                _ => ((&users, &t.users), (&items, &t.items), &mut contexts),
            };
            for (row, &p) in v.chunks_exact_mut(k).zip(order) {
                let (ra, rb) = (ai[p] as usize * k, bi[p] as usize * k);
                for ((o, x), y) in row.iter_mut().zip(&a[ra..ra + k]).zip(&b[rb..rb + k]) {
                    *o = x * y;
                }
            }
            // (AᵀA) ∘ (BᵀB) + λI.
            let mut g = gram(a, k, 0.0);
            for (g, h) in g.iter_mut().zip(gram(b, k, 0.0)) {
                *g *= h;
            }
            for d in 0..k {
                g[d * k + d] += params.regularization;
            }
            half_sweep(x, &v, &g, csr, k, params);
        }
    }
    Ok(ContextModel { params: params.clone(), k, users, items, contexts })
}

impl ContextModel {
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.len() / self.k.max(1)
    }

    /// Scores every item for `user` in `context` into `out` (length `n_items`). An unknown
    /// user scores 0 everywhere; an unknown context is treated as the mean context.
    pub fn score(&self, user: u32, context: Option<u32>, out: &mut [f32]) {
        let k = self.k;
        let Some(u) = self.users.get(user as usize * k..(user as usize + 1) * k) else {
            out.iter_mut().for_each(|o| *o = 0.0);
            return;
        };
        let c: Vec<f32> = match context.and_then(|c| self.contexts.get(c as usize * k..(c as usize + 1) * k)) {
            Some(c) => c.to_vec(),
            None => {
                let n = (self.contexts.len() / k.max(1)).max(1) as f32;
                let mut mean = vec![0f32; k];
                for row in self.contexts.chunks_exact(k) {
                    for (m, x) in mean.iter_mut().zip(row) {
                        *m += x / n;
                    }
                }
                mean
            }
        };
        let w: Vec<f32> = u.iter().zip(&c).map(|(a, b)| a * b).collect();
        for (o, item) in out.iter_mut().zip(self.items.chunks_exact(k)) {
            *o = w.iter().zip(item).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::top_k;

    /// Two groups of items, each used only in "its" context (0..5 in the morning, 5..10 in
    /// the evening); a random tenth of the cells is held out. A held-out item scores higher in
    /// its own context than in the other one, and ranks in its context's top five.
    #[test]
    fn context_changes_the_ranking_where_usage_depends_on_it() {
        let mut t = Triples::default();
        let mut rng = Rng::new(7);
        let mut held_out = Vec::new();
        for u in 0..40u32 {
            for i in 0..10u32 {
                let c = u32::from(i >= 5);
                if rng.chance(0.1) {
                    held_out.push((u, i, c));
                } else {
                    t.push(u, i, c, 1.0);
                }
            }
        }
        assert!(held_out.len() > 10);
        let p = AlsParams { factors: 2, regularization: 2.0, iterations: 15, ..AlsParams::default() };
        let m = fit(&p, &t).expect("fits");
        let (mut own, mut other) = (vec![0f32; 10], vec![0f32; 10]);
        for &(u, i, c) in &held_out {
            m.score(u, Some(c), &mut own);
            m.score(u, Some(1 - c), &mut other);
            assert!(own[i as usize] > other[i as usize], "user {u} item {i}: {own:?} vs {other:?}");
            let top: Vec<u32> = top_k(&own, 5, |_| true).into_iter().map(|(j, _)| j).collect();
            assert!(top.contains(&i), "user {u} item {i} context {c}: {top:?}");
        }
    }

    #[test]
    fn bad_observations_are_refused() {
        let mut t = Triples::default();
        t.push(0, 0, 0, 1.0);
        t.weights[0] = f32::NAN;
        assert!(fit(&AlsParams::default(), &t).is_err());
        let mut t = Triples::default();
        t.push(0, 0, 0, 1.0);
        t.n_items = 0;
        assert!(fit(&AlsParams::default(), &t).is_err());
    }
}
