//! Silhouette coefficients (Rousseeuw 1987) with Euclidean distances, as scikit-learn's
//! `silhouette_samples` / `silhouette_score` compute them: `s = (b - a) / max(a, b)`, where
//! `a` is the mean distance to the other members of the own cluster and `b` the smallest
//! mean distance to another cluster; members of singleton clusters score 0.

use rayon::prelude::*;

use crate::error::{Result, SegmentError, check_matrix};
use crate::sq_dist;

fn check_labels(n: usize, labels: &[usize]) -> Result<usize> {
    if labels.len() != n {
        return Err(SegmentError::InvalidData(format!("{} labels for {n} rows", labels.len())));
    }
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    let used = sizes.iter().filter(|&&s| s > 0).count();
    if used < 2 || used >= n {
        return Err(SegmentError::InvalidData(format!(
            "the silhouette needs 2 <= number of clusters <= n - 1 (got {used} clusters for {n} rows)"
        )));
    }
    Ok(k)
}

/// The silhouette of every row. Exact, O(n² d), parallel over rows.
pub fn samples(x: &[f64], d: usize, labels: &[usize]) -> Result<Vec<f64>> {
    let n = check_matrix(x, d)?;
    let k = check_labels(n, labels)?;
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    Ok((0..n)
        .into_par_iter()
        .map(|i| {
            let xi = &x[i * d..(i + 1) * d];
            let mut sums = vec![0.0f64; k];
            for (j, xj) in x.chunks_exact(d).enumerate() {
                sums[labels[j]] += sq_dist(xi, xj).sqrt();
            }
            let own = labels[i];
            if sizes[own] <= 1 {
                return 0.0;
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sums[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let m = a.max(b);
            if m > 0.0 { (b - a) / m } else { 0.0 }
        })
        .collect())
}

/// Mean silhouette over all rows (scikit-learn's `silhouette_score`).
pub fn score(x: &[f64], d: usize, labels: &[usize]) -> Result<f64> {
    let s = samples(x, d, labels)?;
    Ok(s.iter().sum::<f64>() / s.len() as f64)
}

/// Silhouette of a seeded random sample of `sample_size` rows (distances among the sample
/// only, as scikit-learn's `sample_size`); the exact score when `sample_size >= n`.
pub fn sampled_score(x: &[f64], d: usize, labels: &[usize], sample_size: usize, seed: u64) -> Result<f64> {
    let n = check_matrix(x, d)?;
    if sample_size >= n {
        return score(x, d, labels);
    }
    let idx = crate::sample_rows(n, sample_size, seed);
    let mut xs = Vec::with_capacity(sample_size * d);
    let mut ls = Vec::with_capacity(sample_size);
    for &i in &idx {
        xs.extend_from_slice(&x[i * d..(i + 1) * d]);
        ls.push(labels[i]);
    }
    score(&xs, d, &ls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_tight_blobs_score_near_one() {
        let x = [0.0, 0.1, 10.0, 10.1];
        let s = score(&x, 1, &[0, 0, 1, 1]).expect("score");
        assert!(s > 0.98, "{s}");
        assert!(score(&x, 1, &[0, 0, 0, 0]).is_err());
        // A singleton cluster scores 0 for its member.
        let s = samples(&[0.0, 0.1, 10.0], 1, &[0, 0, 1]).expect("samples");
        assert_eq!(s[2], 0.0);
    }
}
