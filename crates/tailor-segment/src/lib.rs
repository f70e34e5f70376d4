//! Customer segmentation algorithms: pure functions over row-major `f64` matrices.
//!
//! - [`clv`]: customer lifetime value, BG/NBD and Gamma-Gamma fitted by maximum likelihood
//!   (the `lifetimes` package's definitions),
//! - [`cohort`]: retention and revenue by first-purchase month,
//! - [`drift`]: population stability index of features and segment shares against a snapshot,
//! - [`explain`]: CART (depth ≤ 3) rules with precision and coverage, automatic names,
//!   per-segment summaries,
//! - [`features`]: user features from events (RFM, behaviour, price sensitivity, devices,
//!   time of day, categories, attributes), updatable one event at a time,
//! - [`rfm`]: recency/frequency/monetary measures, quintile scores and the named RFM segments,
//! - [`rules`]: the rule language of named segments (`monetary >= p80(monetary) and ...`),
//! - [`scale`]: z-score, robust, log1p, min-max, one-hot and per-feature weights, recorded
//!   so that a new row is transformed identically,
//! - [`kmeans`]: k-means++ seeding and Lloyd iterations with Hamerly's bounds, parallel,
//!   converging like scikit-learn's `KMeans`,
//! - [`pipeline`]: named features → transformed, weighted, one-hot matrix (the fitted
//!   encoder is stored so real-time assignment encodes identically),
//! - [`pca`]: principal components for 2-D segment maps,
//! - [`online`]: mini-batch k-means for millions of users and drifting online assignment,
//! - [`dbscan`]: DBSCAN with scikit-learn's core/border/noise semantics and an `eps` helper,
//! - [`silhouette`]: exact and sampled silhouette scores equal to scikit-learn's,
//! - [`ward`]: exact agglomerative clustering with Ward's linkage (nearest-neighbour chain).
//!
//! No storage, no HTTP: callers pass slices and get plain data back.
//!
//! ```
//! use tailor_segment::kmeans::KMeansParams;
//! let x = [0.0, 0.0, 0.1, 0.0, 10.0, 10.0, 10.1, 10.0];
//! let model = KMeansParams { k: 2, ..KMeansParams::default() }.fit(&x, 2)?;
//! assert_eq!(model.labels[0], model.labels[1]);
//! assert_ne!(model.labels[0], model.labels[2]);
//! # Ok::<(), tailor_segment::SegmentError>(())
//! ```

pub mod assign;
pub mod cluster;
pub mod clv;
pub mod cohort;
pub mod dbscan;
pub mod drift;
pub mod error;
pub mod explain;
pub mod features;
pub mod kmeans;
pub mod online;
pub mod pca;
pub mod pipeline;
pub mod rfm;
pub mod rules;
pub mod scale;
pub mod silhouette;
pub mod ward;

pub use error::{Result, SegmentError};

/// Squared Euclidean distance. Four independent accumulators let the compiler vectorise
/// and break the dependency chain of one running sum (2x faster on 16 columns). Always
/// inlined, so that inside a [`pulp::Arch::dispatch`] the lanes become AVX2/AVX-512
/// vectors (the same operations in the same order: equal results on every CPU).
#[inline(always)]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += (x - y) * (x - y);
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// A seeded uniform sample of `m` of the indices `0..n`, sorted (partial Fisher–Yates).
pub(crate) fn sample_rows(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let m = m.min(n);
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = tailor_core::rng::Rng::new(seed);
    for i in 0..m {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx.sort_unstable();
    idx
}
