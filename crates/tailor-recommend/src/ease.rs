//! EASE (Steck 2019): an item × item weight matrix `B` with zero diagonal, the closed-form
//! solution of `min |X − XB|² + λ|B|²`: `P = (XᵀX + λI)⁻¹`, `B_ij = −P_ij / P_jj`.
//! Scores are `x_u B`. Dense in the catalog size (`n_items²` values), so meant for catalogs
//! up to about 20,000 items; the inverse is a Cholesky factorisation (faer).

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::error::{RecommendError, Result, check};
use crate::{History, Model};

/// Largest catalog EASE accepts (its matrix has `n²` entries).
pub const MAX_ITEMS: usize = 30_000;

/// Parameters of [`EaseModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EaseParams {
    /// L2 regularisation λ.
    pub lambda: f64,
    /// Use 1 for every interaction instead of its weight.
    pub binary: bool,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self { lambda: 500.0, binary: true }
    }
}

/// The fitted item × item matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EaseModel {
    /// The parameters it was fitted with.
    pub params: EaseParams,
    n: usize,
    /// Row-major `n × n`, zero diagonal.
    b: Vec<f32>,
}

impl EaseParams {
    /// Fits `B`.
    pub fn fit(&self, m: &Interactions) -> Result<EaseModel> {
        check(self.lambda > 0.0 && self.lambda.is_finite(), "lambda", self.lambda, "must be > 0")?;
        let n = m.n_items();
        if n > MAX_ITEMS {
            return Err(RecommendError::InvalidData(format!(
                "EASE keeps an items x items matrix; {n} items is above its limit of {MAX_ITEMS} (use als or itemknn)"
            )));
        }
        // Gram matrix XᵀX (upper triangle; rows hold sorted items). One buffer: per-thread
        // copies would cost n² values each.
        let ip = m.indptr();
        let mut g = vec![0f64; n * n];
        for u in 0..m.n_users() {
            let (items, w) = (&m.indices()[ip[u]..ip[u + 1]], &m.data()[ip[u]..ip[u + 1]]);
            for (a, (&i, &wi)) in items.iter().zip(w).enumerate() {
                let wi = if self.binary { 1.0 } else { f64::from(wi) };
                let row = &mut g[i as usize * n..(i as usize + 1) * n];
                for (&j, &wj) in items[a..].iter().zip(&w[a..]) {
                    row[j as usize] += wi * if self.binary { 1.0 } else { f64::from(wj) };
                }
            }
        }
        // Only the upper triangle (i <= j, items sorted) was filled.
        let gm = Mat::<f64>::from_fn(n, n, |i, j| {
            let v = if i <= j { g[i * n + j] } else { g[j * n + i] };
            if i == j { v + self.lambda } else { v }
        });
        drop(g);
        let p = gm
            .llt(Side::Lower)
            .map_err(|e| RecommendError::InvalidData(format!("XᵀX + λI is not positive definite: {e:?}")))?
            .inverse();
        let mut b = vec![0f32; n * n];
        b.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                if i != j {
                    *v = (-p[(i, j)] / p[(j, j)]) as f32;
                }
            }
        });
        Ok(EaseModel { params: self.clone(), n, b })
    }
}

impl EaseModel {
    /// Row `i` of `B`: how much an interaction with `i` adds to every item's score.
    pub fn row(&self, i: u32) -> &[f32] {
        let i = i as usize;
        self.b.get(i * self.n..(i + 1) * self.n).unwrap_or(&[])
    }

    /// Which history items contribute to `item`'s score, largest first.
    pub fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        let binary = self.params.binary;
        let mut v: Vec<(u32, f32)> = history
            .items
            .iter()
            .zip(history.weights)
            .filter_map(|(&i, &w)| self.row(i).get(item as usize).map(|b| (i, b * if binary { 1.0 } else { w })))
            .collect();
        crate::topk::best_first(&mut v);
        v
    }
}

impl Model for EaseModel {
    fn name(&self) -> &'static str {
        "ease"
    }

    fn n_items(&self) -> usize {
        self.n
    }

    fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        EaseModel::explain(self, history, item)
    }

    fn score(&self, _user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for (p, (&i, &w)) in history.items.iter().zip(history.weights).enumerate() {
            let w = if self.params.binary { 1.0 } else { w } * history.recency_at(p);
            for (o, b) in out.iter_mut().zip(self.row(i)) {
                *o += w * b;
            }
        }
    }
}
