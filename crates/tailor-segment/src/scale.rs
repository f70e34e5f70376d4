//! Feature scaling, recorded so that a new row is transformed exactly like the training rows.

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_matrix};

/// A fitted z-score transform: `(x - mean) / std` per column (population std, like
/// scikit-learn's `StandardScaler`; a constant column is only centred).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    /// Column means.
    pub mean: Vec<f64>,
    /// Column scales (std, or 1 for constant columns).
    pub scale: Vec<f64>,
}

impl ZScore {
    /// Learns means and standard deviations of the `d` columns of `x`.
    pub fn fit(x: &[f64], d: usize) -> Result<Self> {
        let n = check_matrix(x, d)?;
        let mut mean = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        let nf = n.max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= nf);
        let mut var = vec![0.0; d];
        for row in x.chunks_exact(d) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var.into_iter().map(|s| (s / nf).sqrt()).map(|s| if s > 0.0 { s } else { 1.0 }).collect();
        Ok(Self { mean, scale })
    }

    /// Transforms rows in place.
    pub fn transform(&self, x: &mut [f64]) {
        let d = self.mean.len();
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_columns() {
        let mut x = vec![1.0, 5.0, 3.0, 5.0];
        let z = ZScore::fit(&x, 2).expect("fits");
        z.transform(&mut x);
        assert_eq!(x, vec![-1.0, 0.0, 1.0, 0.0]);
        assert!(ZScore::fit(&[1.0, f64::NAN], 2).is_err());
    }
}
