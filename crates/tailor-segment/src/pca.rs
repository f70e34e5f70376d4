//! Principal component analysis for 2-D maps of segments: the covariance matrix of the
//! centred data (d × d, parallel over rows) and its eigen-decomposition by cyclic Jacobi
//! rotations, which is exact for the tens of features customer data has. Components carry
//! scikit-learn's sign convention (the largest-magnitude loading of each is positive), so
//! maps look the same in both tools.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError, check_matrix};

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Column means subtracted before projecting.
    pub mean: Vec<f64>,
    /// Components, row-major `n_components × d`, by decreasing variance.
    pub components: Vec<f64>,
    /// Variance along each component (divisor n − 1, as scikit-learn).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each component.
    pub explained_variance_ratio: Vec<f64>,
}

/// Eigenvalues and eigenvectors (columns of `v`, row-major d × d) of a symmetric matrix.
fn jacobi(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        let total: f64 = a.iter().map(|x| x * x).sum();
        if off <= 1e-30 * total.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

impl Pca {
    /// Fits `n_components` components to the rows of `x` (`d` columns). Each component's
    /// sign makes its largest-magnitude loading positive (scikit-learn ≥ 1.5's `svd_flip`
    /// on the components).
    pub fn fit(x: &[f64], d: usize, n_components: usize) -> Result<Self> {
        let n = check_matrix(x, d)?;
        if n < 2 || n_components == 0 || n_components > d {
            return Err(SegmentError::InvalidParam {
                param: "n_components",
                value: n_components.to_string(),
                rule: "needs 1 <= n_components <= columns and at least 2 rows",
            });
        }
        let mut mean = vec![0.0; d];
        for row in x.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let cov = x
            .par_chunks(4096 * d)
            .map(|rows| {
                let mut c = vec![0.0; d * d];
                let mut centred = vec![0.0; d];
                for row in rows.chunks_exact(d) {
                    centred.iter_mut().zip(row).zip(&mean).for_each(|((c, v), m)| *c = v - m);
                    for i in 0..d {
                        for j in i..d {
                            c[i * d + j] += centred[i] * centred[j];
                        }
                    }
                }
                c
            })
            .reduce(
                || vec![0.0; d * d],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(p, q)| *p += q);
                    a
                },
            );
        let mut cov = cov;
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / (n - 1) as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        let total: f64 = (0..d).map(|i| cov[i * d + i]).sum();
        let (values, vectors) = jacobi(cov, d);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Vec::with_capacity(n_components * d);
        let mut explained_variance = Vec::with_capacity(n_components);
        for &k in order.iter().take(n_components) {
            let mut comp: Vec<f64> = (0..d).map(|i| vectors[i * d + k]).collect();
            let big = comp.iter().copied().fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            if big < 0.0 {
                comp.iter_mut().for_each(|v| *v = -*v);
            }
            components.extend(comp);
            explained_variance.push(values[k].max(0.0));
        }
        let explained_variance_ratio =
            explained_variance.iter().map(|v| if total > 0.0 { v / total } else { 0.0 }).collect();
        Ok(Self { mean, components, explained_variance, explained_variance_ratio })
    }

    /// Projects rows onto the components (row-major `rows × n_components`).
    pub fn transform(&self, x: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        let k = self.explained_variance.len();
        let mut out = Vec::with_capacity(x.len() / d * k);
        for row in x.chunks_exact(d) {
            for c in self.components.chunks_exact(d) {
                out.push(row.iter().zip(&self.mean).zip(c).map(|((v, m), w)| (v - m) * w).sum());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_main_axis() {
        // Points along y = 2x with a little noise across.
        let x: Vec<f64> = (0..100)
            .flat_map(|i| {
                let t = f64::from(i) / 10.0;
                let e = if i % 2 == 0 { 0.05 } else { -0.05 };
                [t - 2.0 * e, 2.0 * t + e]
            })
            .collect();
        let p = Pca::fit(&x, 2, 2).expect("fits");
        let (a, b) = (p.components[0], p.components[1]);
        assert!((b / a - 2.0).abs() < 1e-2, "{a} {b}");
        assert!(p.explained_variance_ratio[0] > 0.999);
        assert!(Pca::fit(&x, 2, 3).is_err());
    }
}
