//! DBSCAN (Ester et al. 1996) with scikit-learn's semantics: a point is *core* when at
//! least `min_samples` points (itself included) lie within `eps` (Euclidean, inclusive);
//! clusters grow depth-first from core points in index order; a border point joins the
//! first cluster that reaches it; everything else is noise (`None`).
//!
//! Neighbourhoods are found by an exact parallel scan (O(n² d)), which suits the up to a
//! few tens of thousands of customers DBSCAN is used on here. [`suggest_eps`] reads a
//! value for `eps` off the knee of the sorted k-distance curve.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError, check_matrix};
use crate::sq_dist;

/// Parameters of DBSCAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbscanParams {
    /// Neighbourhood radius.
    pub eps: f64,
    /// Points within `eps` (the point included) that make a core point.
    pub min_samples: usize,
}

impl Default for DbscanParams {
    /// scikit-learn's defaults.
    fn default() -> Self {
        Self { eps: 0.5, min_samples: 5 }
    }
}

/// The result of DBSCAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbscanResult {
    /// Cluster of each row, `None` for noise.
    pub labels: Vec<Option<usize>>,
    /// Whether each row is a core point.
    pub is_core: Vec<bool>,
    /// Number of clusters.
    pub n_clusters: usize,
}

impl DbscanParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(SegmentError::InvalidParam {
                param: "eps",
                value: self.eps.to_string(),
                rule: "must be a finite number > 0",
            });
        }
        if self.min_samples == 0 {
            return Err(SegmentError::InvalidParam {
                param: "min_samples",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
        Ok(())
    }

    /// Clusters the rows of the row-major matrix `x` with `d` columns.
    pub fn fit(&self, x: &[f64], d: usize) -> Result<DbscanResult> {
        self.validate()?;
        let n = check_matrix(x, d)?;
        let eps2 = self.eps * self.eps;
        // Neighbours in index order, as scikit-learn's brute-force radius query returns them.
        let neighbours: Vec<Vec<u32>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let xi = &x[i * d..(i + 1) * d];
                x.chunks_exact(d).enumerate().filter(|(_, xj)| sq_dist(xi, xj) <= eps2).map(|(j, _)| j as u32).collect()
            })
            .collect();
        let is_core: Vec<bool> = neighbours.iter().map(|nb| nb.len() >= self.min_samples).collect();
        let mut labels: Vec<Option<usize>> = vec![None; n];
        let mut next = 0usize;
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..n {
            if labels[start].is_some() || !is_core[start] {
                continue;
            }
            let mut i = start;
            loop {
                if labels[i].is_none() {
                    labels[i] = Some(next);
                    if is_core[i] {
                        stack.extend(neighbours[i].iter().map(|&v| v as usize).filter(|&v| labels[v].is_none()));
                    }
                }
                match stack.pop() {
                    Some(v) => i = v,
                    None => break,
                }
            }
            next += 1;
        }
        Ok(DbscanResult { labels, is_core, n_clusters: next })
    }
}

/// Distance of every row to its `k`-th nearest neighbour (the row itself counts as the
/// first, as in `min_samples`), sorted from largest to smallest.
pub fn k_distances(x: &[f64], d: usize, k: usize) -> Result<Vec<f64>> {
    let n = check_matrix(x, d)?;
    if k == 0 || k > n {
        return Err(SegmentError::InvalidParam { param: "k", value: k.to_string(), rule: "must be in 1..=rows" });
    }
    let mut out: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut dists: Vec<f64> = x.chunks_exact(d).map(|xj| sq_dist(xi, xj)).collect();
            let (_, kth, _) = dists.select_nth_unstable_by(k - 1, f64::total_cmp);
            kth.sqrt()
        })
        .collect();
    out.sort_by(|a, b| b.total_cmp(a));
    Ok(out)
}

/// A value for `eps`: the k-distance (k = `min_samples`) at the knee of the sorted curve,
/// the point farthest from the chord between its ends (the "kneedle" rule).
pub fn suggest_eps(x: &[f64], d: usize, min_samples: usize) -> Result<f64> {
    let curve = k_distances(x, d, min_samples)?;
    let n = curve.len();
    if n < 3 {
        return Ok(curve[0]);
    }
    let (y0, y1) = (curve[0], curve[n - 1]);
    let (dx, dy) = ((n - 1) as f64, y1 - y0);
    let norm = (dx * dx + dy * dy).sqrt();
    let knee = (0..n)
        .map(|i| ((dy * i as f64 - dx * (curve[i] - y0)).abs() / norm, i))
        .fold((f64::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a })
        .1;
    Ok(curve[knee])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_border_and_noise() {
        // Three close points (core with min_samples 3), one border point, one far noise point.
        let x = [0.0, 0.1, 0.2, 0.65, 5.0];
        let r = DbscanParams { eps: 0.5, min_samples: 3 }.fit(&x, 1).expect("fits");
        assert_eq!(r.labels, vec![Some(0), Some(0), Some(0), Some(0), None]);
        assert_eq!(r.is_core, vec![true, true, true, false, false]);
        assert_eq!(r.n_clusters, 1);
        assert!(DbscanParams { eps: 0.0, min_samples: 3 }.fit(&x, 1).is_err());
    }

    #[test]
    fn k_distance_knee() {
        let mut x: Vec<f64> = (0..50).map(|i| f64::from(i) * 0.01).collect();
        x.extend([10.0, 20.0, 30.0]);
        let kd = k_distances(&x, 1, 2).expect("kd");
        assert_eq!(kd.len(), 53);
        assert!(kd.windows(2).all(|w| w[0] >= w[1]));
        let eps = suggest_eps(&x, 1, 2).expect("eps");
        assert!(eps < 10.0, "{eps}");
    }
}
