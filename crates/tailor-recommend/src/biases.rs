//! Baseline rating predictor (Koren 2010, "baseline predictors"): `r̂(u, i) = μ + b_u + b_i`,
//! the biases fitted by alternating regularised means. It is what explicit ratings are
//! scored against with RMSE (`tailor eval` reports RMSE for it), and, as a recommender,
//! it ranks the items rated best after shrinkage.

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::error::{RecommendError, Result, check};
use crate::{History, Model};

/// Parameters of [`BiasModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasParams {
    /// Shrinkage of user biases (in ratings).
    pub reg_user: f32,
    /// Shrinkage of item biases.
    pub reg_item: f32,
    /// Alternating passes.
    pub iterations: usize,
}

impl Default for BiasParams {
    fn default() -> Self {
        Self { reg_user: 10.0, reg_item: 25.0, iterations: 10 }
    }
}

/// Fitted biases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasModel {
    /// The parameters it was fitted with.
    pub params: BiasParams,
    /// Global mean rating.
    pub mean: f32,
    /// Per user.
    pub user_bias: Vec<f32>,
    /// Per item.
    pub item_bias: Vec<f32>,
}

impl BiasParams {
    /// Fits on `m`, whose values are the ratings.
    pub fn fit(&self, m: &Interactions) -> Result<BiasModel> {
        check(self.reg_user >= 0.0 && self.reg_user.is_finite(), "reg_user", self.reg_user, "must be >= 0")?;
        check(self.reg_item >= 0.0 && self.reg_item.is_finite(), "reg_item", self.reg_item, "must be >= 0")?;
        if m.nnz() == 0 || m.data().iter().any(|r| !r.is_finite()) {
            return Err(RecommendError::InvalidData("ratings must be present and finite".into()));
        }
        let mean = m.data().iter().map(|&r| f64::from(r)).sum::<f64>() / m.nnz() as f64;
        let mean = mean as f32;
        let (mut bu, mut bi) = (vec![0f32; m.n_users()], vec![0f32; m.n_items()]);
        let ip = m.indptr();
        for _ in 0..self.iterations.max(1) {
            let (mut sum, mut n) = (vec![0f32; m.n_items()], vec![0f32; m.n_items()]);
            for (u, b) in bu.iter().enumerate() {
                for p in ip[u]..ip[u + 1] {
                    let i = m.indices()[p] as usize;
                    sum[i] += m.data()[p] - mean - b;
                    n[i] += 1.0;
                }
            }
            for ((b, s), c) in bi.iter_mut().zip(&sum).zip(&n) {
                *b = s / (self.reg_item + c).max(1e-6);
            }
            for (u, b) in bu.iter_mut().enumerate() {
                let (mut s, mut c) = (0f32, 0f32);
                for p in ip[u]..ip[u + 1] {
                    s += m.data()[p] - mean - bi[m.indices()[p] as usize];
                    c += 1.0;
                }
                *b = s / (self.reg_user + c).max(1e-6);
            }
        }
        Ok(BiasModel { params: self.clone(), mean, user_bias: bu, item_bias: bi })
    }
}

impl BiasModel {
    /// Predicted rating; unknown users or items contribute no bias.
    pub fn predict(&self, user: Option<u32>, item: u32) -> f32 {
        let bu = user.and_then(|u| self.user_bias.get(u as usize)).copied().unwrap_or(0.0);
        self.mean + bu + self.item_bias.get(item as usize).copied().unwrap_or(0.0)
    }
}

impl Model for BiasModel {
    fn name(&self) -> &'static str {
        "biases"
    }

    fn n_items(&self) -> usize {
        self.item_bias.len()
    }

    fn score(&self, user: Option<u32>, _history: History<'_>, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.predict(user, i as u32);
        }
    }

    fn similar_items(&self, _item: u32, _k: usize) -> Vec<(u32, f32)> {
        Vec::new()
    }

    fn explain(&self, _history: History<'_>, _item: u32) -> Vec<(u32, f32)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_user_and_item_offsets() {
        // Ratings = 3 + user offset (−1, 0, +1) + item offset (−0.5, +0.5), every cell.
        let (uo, io) = ([-1.0f32, 0.0, 1.0], [-0.5f32, 0.5]);
        let mut indptr = vec![0];
        let (mut idx, mut data) = (Vec::new(), Vec::new());
        for u in uo {
            for (i, o) in io.iter().enumerate() {
                idx.push(i as u32);
                data.push(3.0 + u + o);
            }
            indptr.push(idx.len());
        }
        let m = Interactions::from_csr(3, 2, indptr, idx, data).expect("csr");
        let b = BiasParams { reg_user: 0.0, reg_item: 0.0, iterations: 20 }.fit(&m).expect("fits");
        for (u, uo) in uo.iter().enumerate() {
            for (i, io) in io.iter().enumerate() {
                assert!((b.predict(Some(u as u32), i as u32) - (3.0 + uo + io)).abs() < 1e-4);
            }
        }
        assert!((b.predict(None, 1) - 3.5).abs() < 1e-4, "unknown user: mean + item bias");
        // Shrinkage pulls biases towards zero.
        let shrunk = BiasParams::default().fit(&m).expect("fits");
        assert!(shrunk.item_bias[1].abs() < b.item_bias[1].abs());
    }
}
