//! Streaming k-means: mini-batch training for millions of users (Sculley 2010) and online
//! assignment with slowly drifting centroids for real-time segment updates.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError, check_matrix};
use crate::kmeans::{KMeansModel, KMeansParams};
use crate::sq_dist;

/// Mini-batch k-means parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiniBatchParams {
    /// Number of clusters (at least 1).
    pub k: usize,
    /// Rows per mini-batch.
    pub batch_size: usize,
    /// Mini-batch steps.
    pub steps: usize,
    /// Rows of the sample the k-means++ seeds are drawn from.
    pub init_size: usize,
    /// Seed of the initial centres and the mini-batch draws.
    pub seed: u64,
}

impl Default for MiniBatchParams {
    fn default() -> Self {
        Self { k: 8, batch_size: 4096, steps: 200, init_size: 30_000, seed: 0 }
    }
}

impl MiniBatchParams {
    /// Fits on `x` (`d` columns): seeds from a k-means on a sample, then per-centre learning
    /// rates `1 / count` over random mini-batches; a final pass assigns every row.
    pub fn fit(&self, x: &[f64], d: usize) -> Result<KMeansModel> {
        let n = check_matrix(x, d)?;
        if self.k == 0 || self.k > n || self.batch_size == 0 {
            return Err(SegmentError::InvalidParam {
                param: "k/batch_size",
                value: format!("{}/{}", self.k, self.batch_size),
                rule: "k in 1..=rows and batch_size >= 1",
            });
        }
        let idx = crate::sample_rows(n, self.init_size.max(self.k), self.seed);
        let sample: Vec<f64> = idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
        let init = KMeansParams { k: self.k, n_init: 3, max_iter: 100, seed: self.seed, ..KMeansParams::default() }
            .fit(&sample, d)?;
        let mut centers = init.centroids;
        let mut counts = vec![0u64; self.k];
        let mut rng = tailor_core::rng::Rng::new(self.seed ^ 0x5eed);
        for _ in 0..self.steps {
            let batch: Vec<usize> = (0..self.batch_size.min(n)).map(|_| rng.below(n)).collect();
            let labels: Vec<usize> = batch.par_iter().map(|&i| nearest(&x[i * d..(i + 1) * d], &centers, d)).collect();
            for (&i, &c) in batch.iter().zip(&labels) {
                counts[c] += 1;
                let eta = 1.0 / counts[c] as f64;
                for (cv, xv) in centers[c * d..(c + 1) * d].iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *cv += eta * (xv - *cv);
                }
            }
        }
        let labels: Vec<usize> = x.par_chunks(d).map(|r| nearest(r, &centers, d)).collect();
        let inertia =
            x.par_chunks(d).zip(labels.par_iter()).map(|(r, &c)| sq_dist(r, &centers[c * d..(c + 1) * d])).sum();
        Ok(KMeansModel { k: self.k, d, centroids: centers, labels, inertia, n_iter: self.steps, converged: true })
    }
}

fn nearest(row: &[f64], centers: &[f64], d: usize) -> usize {
    crate::kmeans::nearest(row, centers, d).0
}

/// Online assignment: each new or updated user goes to the nearest centroid, which then
/// moves towards the user by `learning_rate` (an exponential moving average), so segments
/// follow slow drift between full reclusterings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineKMeans {
    /// Columns of each row.
    pub d: usize,
    /// Centres, row-major.
    pub centroids: Vec<f64>,
    /// Step towards each assigned user, in `[0, 1]`.
    pub learning_rate: f64,
}

impl OnlineKMeans {
    /// Starts from a fitted model.
    pub fn new(model: &KMeansModel, learning_rate: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&learning_rate) {
            return Err(SegmentError::InvalidParam {
                param: "learning_rate",
                value: learning_rate.to_string(),
                rule: "must be in [0, 1]",
            });
        }
        Ok(Self { d: model.d, centroids: model.centroids.clone(), learning_rate })
    }

    /// Starts from centres given row-major (`k × d`), e.g. a stored segmentation's.
    pub fn from_centroids(d: usize, centroids: Vec<f64>, learning_rate: f64) -> Result<Self> {
        if d == 0 || centroids.is_empty() || !centroids.len().is_multiple_of(d) {
            return Err(SegmentError::InvalidData(format!(
                "{} centroid values do not form rows of {d}",
                centroids.len()
            )));
        }
        let model = KMeansModel {
            k: centroids.len() / d,
            d,
            centroids,
            labels: Vec::new(),
            inertia: 0.0,
            n_iter: 0,
            converged: true,
        };
        Self::new(&model, learning_rate)
    }

    /// How far the centres moved from `original` (same shape): the largest Euclidean
    /// displacement of one centre, in the units of the encoded features (standard deviations
    /// for z-scored ones).
    pub fn drift(&self, original: &[f64]) -> f64 {
        self.centroids
            .chunks_exact(self.d)
            .zip(original.chunks_exact(self.d))
            .map(|(a, b)| crate::sq_dist(a, b).sqrt())
            .fold(0.0, f64::max)
    }

    /// The nearest centre, without moving it.
    pub fn assign(&self, row: &[f64]) -> usize {
        nearest(row, &self.centroids, self.d)
    }

    /// Assigns `row` and moves its centre towards it.
    pub fn update(&mut self, row: &[f64]) -> usize {
        let c = self.assign(row);
        let lr = self.learning_rate;
        for (cv, xv) in self.centroids[c * self.d..(c + 1) * self.d].iter_mut().zip(row) {
            *cv += lr * (xv - *cv);
        }
        c
    }
}

/// When a full reclustering is due: after `every_ms`, after `max_updates` online updates, or
/// once a centre drifted by more than `max_drift` (whichever comes first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclusterPolicy {
    /// Longest time between full runs (ms).
    pub every_ms: i64,
    /// Most online updates between full runs.
    pub max_updates: u64,
    /// Largest tolerated drift of one centre (see [`OnlineKMeans::drift`]).
    pub max_drift: f64,
}

impl Default for ReclusterPolicy {
    fn default() -> Self {
        Self { every_ms: 24 * 3_600_000, max_updates: 100_000, max_drift: 0.5 }
    }
}

impl ReclusterPolicy {
    /// Whether a full run is due, and why.
    pub fn due(&self, last_run_ms: i64, now_ms: i64, updates: u64, drift: f64) -> Option<String> {
        if now_ms - last_run_ms >= self.every_ms {
            let hours = (now_ms - last_run_ms) as f64 / 3_600_000.0;
            return Some(format!(
                "the last run is {hours:.1} h old (limit {:.1} h)",
                self.every_ms as f64 / 3_600_000.0
            ));
        }
        if updates >= self.max_updates {
            return Some(format!("{updates} online updates since the last run (limit {})", self.max_updates));
        }
        if drift > self.max_drift {
            return Some(format!("a centre drifted by {drift:.3} (limit {})", self.max_drift));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use tailor_core::rng::Rng;

    use super::*;

    fn blobs(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n)
            .flat_map(|i| {
                let c = (i % 4) as f64 * 10.0;
                [c + rng.normal(), -c + rng.normal()]
            })
            .collect()
    }

    #[test]
    fn drift_and_policy() {
        let mut o = OnlineKMeans::from_centroids(2, vec![0.0, 0.0, 10.0, 10.0], 0.5).expect("valid");
        assert!(OnlineKMeans::from_centroids(2, vec![1.0], 0.5).is_err());
        assert_eq!(o.update(&[2.0, 0.0]), 0);
        assert_eq!(o.drift(&[0.0, 0.0, 10.0, 10.0]), 1.0);
        let p = ReclusterPolicy::default();
        assert_eq!(p.due(0, 3_600_000, 10, 0.1), None);
        assert!(p.due(0, 25 * 3_600_000, 10, 0.1).is_some_and(|w| w.contains("25.0 h old")));
        assert!(p.due(0, 1, 100_000, 0.1).is_some());
        assert!(p.due(0, 1, 1, 0.6).is_some_and(|w| w.contains("drifted by 0.600")));
    }

    #[test]
    fn mini_batch_is_close_to_full_kmeans() {
        let x = blobs(40_000, 1);
        let full = KMeansParams { k: 4, n_init: 3, ..KMeansParams::default() }.fit(&x, 2).expect("full");
        let mb = MiniBatchParams { k: 4, batch_size: 512, steps: 100, init_size: 2000, seed: 3 }
            .fit(&x, 2)
            .expect("mini-batch");
        assert!(mb.inertia <= full.inertia * 1.02, "{} vs {}", mb.inertia, full.inertia);
    }

    #[test]
    fn online_centres_drift_towards_new_users() {
        let x = blobs(4000, 2);
        let m = KMeansParams { k: 4, n_init: 2, ..KMeansParams::default() }.fit(&x, 2).expect("fit");
        let mut online = OnlineKMeans::new(&m, 0.05).expect("online");
        let c = online.assign(&[0.0, 0.0]);
        let before = online.centroids[c * 2];
        for _ in 0..200 {
            assert_eq!(online.update(&[1.5, 0.0]), c);
        }
        assert!((online.centroids[c * 2] - 1.5).abs() < (before - 1.5).abs() / 10.0);
        assert!(OnlineKMeans::new(&m, 1.5).is_err());
    }
}
