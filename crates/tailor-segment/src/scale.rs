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

/// How one numeric column is transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `(x - mean) / std`.
    Zscore,
    /// `(x - median) / IQR` (scikit-learn's `RobustScaler`); robust to outliers.
    Robust,
    /// `ln(1 + max(x, 0))`, then z-score: for skewed money and counts.
    Log1p,
    /// `(x - min) / (max - min)` into `[0, 1]`.
    MinMax,
    /// Features used as they are (when they share a unit already).
    None,
}

/// The fitted transform of one column: `((f(x) - center) / scale) * weight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnTransform {
    /// The method.
    pub method: Method,
    /// Subtracted after `f`.
    pub center: f64,
    /// Divided by (never 0).
    pub scale: f64,
    /// Multiplied by last (per-feature weight).
    pub weight: f64,
}

impl ColumnTransform {
    /// Transforms one value exactly as during fitting.
    pub fn apply(&self, x: f64) -> f64 {
        let v = if self.method == Method::Log1p { x.max(0.0).ln_1p() } else { x };
        (v - self.center) / self.scale * self.weight
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    // Linear interpolation between closest ranks (numpy's default).
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Fitted transforms of every column, recorded so a new row is transformed identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transforms {
    /// One per column.
    pub columns: Vec<ColumnTransform>,
}

impl Transforms {
    /// Fits `methods[j]` with `weights[j]` (1 when missing) on column `j` of `x`.
    pub fn fit(x: &[f64], d: usize, methods: &[Method], weights: &[f64]) -> Result<Self> {
        let n = check_matrix(x, d)?;
        if methods.len() != d {
            return Err(crate::SegmentError::InvalidData(format!("{} methods for {d} columns", methods.len())));
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return Err(crate::SegmentError::InvalidParam {
                param: "weight",
                value: w.to_string(),
                rule: "must be a finite number >= 0",
            });
        }
        let mut columns = Vec::with_capacity(d);
        for (j, &method) in methods.iter().enumerate() {
            let mut col: Vec<f64> = x.chunks_exact(d).map(|r| r[j]).collect();
            if method == Method::Log1p {
                col.iter_mut().for_each(|v| *v = v.max(0.0).ln_1p());
            }
            let nonzero = |s: f64| if s > 0.0 && s.is_finite() { s } else { 1.0 };
            let (center, scale) = match method {
                Method::None => (0.0, 1.0),
                Method::Zscore | Method::Log1p => {
                    let mean = col.iter().sum::<f64>() / n.max(1) as f64;
                    let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n.max(1) as f64;
                    (mean, nonzero(var.sqrt()))
                }
                Method::Robust | Method::MinMax => {
                    col.sort_by(f64::total_cmp);
                    if col.is_empty() {
                        (0.0, 1.0)
                    } else if method == Method::Robust {
                        (quantile(&col, 0.5), nonzero(quantile(&col, 0.75) - quantile(&col, 0.25)))
                    } else {
                        (col[0], nonzero(col[col.len() - 1] - col[0]))
                    }
                }
            };
            columns.push(ColumnTransform { method, center, scale, weight: weights.get(j).copied().unwrap_or(1.0) });
        }
        Ok(Self { columns })
    }

    /// Transforms rows in place.
    pub fn transform(&self, x: &mut [f64]) {
        let d = self.columns.len();
        for row in x.chunks_exact_mut(d) {
            for (v, t) in row.iter_mut().zip(&self.columns) {
                *v = t.apply(*v);
            }
        }
    }
}

/// One-hot encoding of a categorical attribute with a recorded vocabulary; values never
/// seen in fitting (and missing ones) encode as all zeros.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneHot {
    /// Categories in column order (sorted).
    pub categories: Vec<String>,
}

impl OneHot {
    /// Learns the categories.
    pub fn fit<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut categories: Vec<String> = values.into_iter().flatten().map(str::to_owned).collect();
        categories.sort();
        categories.dedup();
        Self { categories }
    }

    /// Appends the encoding of `value` to `out`.
    pub fn encode(&self, value: Option<&str>, out: &mut Vec<f64>) {
        let hit = value.and_then(|v| self.categories.binary_search_by(|c| c.as_str().cmp(v)).ok());
        out.extend((0..self.categories.len()).map(|k| if Some(k) == hit { 1.0 } else { 0.0 }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_match_their_definitions() {
        // Columns: z-score, robust, log1p, min-max, none.
        let x: Vec<f64> = (0..5)
            .flat_map(|i| {
                let v = f64::from(i);
                [v, v * v, v * 10.0, v + 3.0, v]
            })
            .collect();
        let m = [Method::Zscore, Method::Robust, Method::Log1p, Method::MinMax, Method::None];
        let t = Transforms::fit(&x, 5, &m, &[1.0, 1.0, 1.0, 2.0]).expect("fits");
        assert!((t.columns[0].center - 2.0).abs() < 1e-12 && (t.columns[0].scale - 2f64.sqrt()).abs() < 1e-12);
        // Robust on [0, 1, 4, 9, 16]: median 4, IQR 9 - 1 = 8.
        assert_eq!((t.columns[1].center, t.columns[1].scale), (4.0, 8.0));
        assert_eq!((t.columns[3].center, t.columns[3].scale, t.columns[3].weight), (3.0, 4.0, 2.0));
        let mut y = x.clone();
        t.transform(&mut y);
        assert_eq!(y[5 * 4 + 3], 2.0); // max of the min-max column, times weight 2
        assert_eq!(y[4], 0.0);
        // A new row goes through the same recorded transform.
        assert_eq!(t.columns[3].apply(5.0), 1.0);
        assert!(Transforms::fit(&x, 5, &m[..4], &[]).is_err());
        assert!(Transforms::fit(&x, 5, &m, &[f64::NAN]).is_err());
    }

    #[test]
    fn one_hot_with_unknowns() {
        let oh = OneHot::fit([Some("mobile"), Some("desktop"), None, Some("mobile")]);
        assert_eq!(oh.categories, ["desktop", "mobile"]);
        let mut out = Vec::new();
        oh.encode(Some("mobile"), &mut out);
        oh.encode(Some("tablet"), &mut out);
        oh.encode(None, &mut out);
        assert_eq!(out, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn standardises_columns() {
        let mut x = vec![1.0, 5.0, 3.0, 5.0];
        let z = ZScore::fit(&x, 2).expect("fits");
        z.transform(&mut x);
        assert_eq!(x, vec![-1.0, 0.0, 1.0, 0.0]);
        assert!(ZScore::fit(&[1.0, f64::NAN], 2).is_err());
    }
}
