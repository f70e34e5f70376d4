//! Agglomerative clustering with Ward's linkage, exact, by the nearest-neighbour chain
//! algorithm (Murtagh 1983; Müllner 2011, as scipy's `linkage(method="ward")` which
//! scikit-learn's `AgglomerativeClustering(linkage="ward")` builds on) over a condensed
//! distance matrix updated with the Lance–Williams formula. Memory is n(n-1)/2 `f64`, so
//! above [`MAX_EXACT_ROWS`] rows a seeded sample is clustered and the other rows join the
//! nearest cluster centroid.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError, check_matrix};
use crate::sq_dist;

/// Rows clustered exactly; larger inputs are sampled down to this.
pub const MAX_EXACT_ROWS: usize = 20_000;

/// Parameters of Ward clustering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WardParams {
    /// Number of clusters to cut the tree into.
    pub k: usize,
    /// Seed of the sample drawn above [`MAX_EXACT_ROWS`] rows.
    pub seed: u64,
}

/// One merge of the dendrogram (clusters numbered as scipy does: rows `0..n`, then
/// `n + step`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Merge {
    /// First merged cluster.
    pub a: usize,
    /// Second merged cluster.
    pub b: usize,
    /// Ward distance of the merge.
    pub distance: f64,
    /// Rows in the new cluster.
    pub size: usize,
}

/// Result of Ward clustering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WardResult {
    /// Cluster of each row, `0..k`, numbered by first appearance.
    pub labels: Vec<usize>,
    /// The merges, by increasing distance (of the clustered rows: the sample when sampled).
    pub merges: Vec<Merge>,
    /// Whether a sample was clustered and the rest assigned.
    pub sampled: bool,
}

fn cidx(n: usize, i: usize, j: usize) -> usize {
    let (i, j) = if i < j { (i, j) } else { (j, i) };
    n * i - i * (i + 1) / 2 + (j - i - 1)
}

/// The Ward dendrogram of all rows (n(n-1)/2 memory).
pub fn linkage(x: &[f64], d: usize) -> Result<Vec<Merge>> {
    let n = check_matrix(x, d)?;
    if n < 2 {
        return Ok(Vec::new());
    }
    let mut dist = vec![0.0f64; n * (n - 1) / 2];
    for i in 0..n {
        let xi = &x[i * d..(i + 1) * d];
        for j in i + 1..n {
            dist[cidx(n, i, j)] = sq_dist(xi, &x[j * d..(j + 1) * d]).sqrt();
        }
    }
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    // Scipy's cluster number of the cluster stored in each slot.
    let mut id: Vec<usize> = (0..n).collect();
    let mut merges = Vec::with_capacity(n - 1);
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut remaining = n;
    while remaining > 1 {
        if chain.is_empty() {
            chain.push(active.iter().position(|&a| a).unwrap_or(0));
        }
        loop {
            let a = chain[chain.len() - 1];
            // Prefer the previous chain element on ties, so the chain ends in a reciprocal pair.
            let prev = if chain.len() >= 2 { Some(chain[chain.len() - 2]) } else { None };
            let mut best = prev.unwrap_or(usize::MAX);
            let mut best_d = prev.map_or(f64::INFINITY, |p| dist[cidx(n, a, p)]);
            for j in 0..n {
                if j == a || !active[j] {
                    continue;
                }
                let dj = dist[cidx(n, a, j)];
                if dj < best_d {
                    best_d = dj;
                    best = j;
                }
            }
            if Some(best) == prev {
                chain.pop();
                chain.pop();
                let (lo, hi) = if a < best { (a, best) } else { (best, a) };
                let (ni, nj) = (size[lo] as f64, size[hi] as f64);
                let dij = best_d;
                // Lance–Williams for Ward on Euclidean distances; the new cluster lives in `hi`.
                for k in 0..n {
                    if !active[k] || k == lo || k == hi {
                        continue;
                    }
                    let nk = size[k] as f64;
                    let (dik, djk) = (dist[cidx(n, lo, k)], dist[cidx(n, hi, k)]);
                    let v = ((ni + nk) * dik * dik + (nj + nk) * djk * djk - nk * dij * dij) / (ni + nj + nk);
                    dist[cidx(n, hi, k)] = v.max(0.0).sqrt();
                }
                active[lo] = false;
                size[hi] += size[lo];
                let (ia, ib) = (id[lo].min(id[hi]), id[lo].max(id[hi]));
                merges.push(Merge { a: ia, b: ib, distance: dij, size: size[hi] });
                id[hi] = n + merges.len() - 1;
                remaining -= 1;
                break;
            }
            chain.push(best);
        }
    }
    // NN-chain finds merges out of order; a stable sort by distance gives the dendrogram,
    // and the cluster numbers are relabelled to follow it (scipy's `_hierarchy.label`).
    let mut order: Vec<usize> = (0..merges.len()).collect();
    order.sort_by(|&p, &q| merges[p].distance.total_cmp(&merges[q].distance));
    let mut new_id = vec![0usize; merges.len()];
    for (pos, &m) in order.iter().enumerate() {
        new_id[m] = n + pos;
    }
    let remap = |c: usize| if c < n { c } else { new_id[c - n] };
    Ok(order
        .iter()
        .map(|&m| {
            let mg = merges[m];
            let (a, b) = (remap(mg.a), remap(mg.b));
            Merge { a: a.min(b), b: a.max(b), ..mg }
        })
        .collect())
}

/// Cuts a dendrogram of `n` rows into `k` clusters, numbered by first appearance.
pub fn cut(merges: &[Merge], n: usize, k: usize) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..2 * n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (step, m) in merges.iter().take(n.saturating_sub(k)).enumerate() {
        let (ra, rb) = (find(&mut parent, m.a), find(&mut parent, m.b));
        parent[ra] = n + step;
        parent[rb] = n + step;
    }
    let mut names = std::collections::HashMap::new();
    (0..n)
        .map(|i| {
            let r = find(&mut parent, i);
            let next = names.len();
            *names.entry(r).or_insert(next)
        })
        .collect()
}

impl WardParams {
    /// Clusters the rows of `x` (`d` columns) into `k` clusters.
    pub fn fit(&self, x: &[f64], d: usize) -> Result<WardResult> {
        let n = check_matrix(x, d)?;
        if self.k == 0 || self.k > n {
            return Err(SegmentError::InvalidParam {
                param: "k",
                value: self.k.to_string(),
                rule: "must be in 1..=rows",
            });
        }
        if n <= MAX_EXACT_ROWS {
            let merges = linkage(x, d)?;
            return Ok(WardResult { labels: cut(&merges, n, self.k), merges, sampled: false });
        }
        let idx = crate::sample_rows(n, MAX_EXACT_ROWS, self.seed);
        let xs: Vec<f64> = idx.iter().flat_map(|&i| x[i * d..(i + 1) * d].iter().copied()).collect();
        let merges = linkage(&xs, d)?;
        let sample_labels = cut(&merges, MAX_EXACT_ROWS, self.k);
        let mut centroids = vec![0.0; self.k * d];
        let mut counts = vec![0usize; self.k];
        for (row, &l) in xs.chunks_exact(d).zip(&sample_labels) {
            counts[l] += 1;
            centroids[l * d..(l + 1) * d].iter_mut().zip(row).for_each(|(c, v)| *c += v);
        }
        for (l, c) in counts.iter().enumerate() {
            centroids[l * d..(l + 1) * d].iter_mut().for_each(|v| *v /= (*c).max(1) as f64);
        }
        let labels = x
            .chunks_exact(d)
            .map(|row| {
                (0..self.k)
                    .min_by(|&a, &b| {
                        sq_dist(row, &centroids[a * d..(a + 1) * d])
                            .total_cmp(&sq_dist(row, &centroids[b * d..(b + 1) * d]))
                    })
                    .unwrap_or(0)
            })
            .collect();
        Ok(WardResult { labels, merges, sampled: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_nearest_first() {
        let x = [0.0, 1.0, 10.0, 11.5];
        let m = linkage(&x, 1).expect("linkage");
        assert_eq!((m[0].a, m[0].b, m[0].distance), (0, 1, 1.0));
        assert_eq!((m[1].a, m[1].b), (2, 3));
        assert_eq!((m[2].a, m[2].b, m[2].size), (4, 5, 4));
        assert_eq!(cut(&m, 4, 2), vec![0, 0, 1, 1]);
        assert_eq!(cut(&m, 4, 4), vec![0, 1, 2, 3]);
        // Ward distance of two singletons at distance 1 and 1.5 merged: sqrt(2 * 4/4 * ...).
        assert!(m[2].distance > 10.0);
    }
}
