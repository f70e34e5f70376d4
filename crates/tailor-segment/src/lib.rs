//! Customer segmentation algorithms: pure functions over row-major `f64` matrices.
//!
//! - [`scale`]: z-score standardisation recorded so new rows transform identically,
//! - [`kmeans`]: k-means++ seeding and Lloyd iterations with Hamerly's bounds, parallel,
//!   converging like scikit-learn's `KMeans`,
//! - [`silhouette`]: exact and sampled silhouette scores equal to scikit-learn's.
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

pub mod error;
pub mod kmeans;
pub mod scale;
pub mod silhouette;

pub use error::{Result, SegmentError};

/// Squared Euclidean distance.
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
