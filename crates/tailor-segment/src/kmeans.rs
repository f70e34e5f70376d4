//! k-means: k-means++ seeding (Arthur & Vassilvitskii 2007, with scikit-learn's greedy
//! local trials), then Lloyd iterations accelerated with Hamerly's bounds (Hamerly 2010),
//! parallel over blocks of rows with rayon.
//!
//! Convergence follows scikit-learn's `KMeans`: stop when the labels no longer change, or
//! when the summed squared centre shift falls to `tol × mean column variance`; after a
//! tolerance stop one more assignment makes the labels match the final centres. Empty
//! clusters are moved to the rows farthest from their centres. Defaults: `k = 8`,
//! `n_init = 1` (scikit-learn's `"auto"` for k-means++), `max_iter = 300`, `tol = 1e-4`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::rng::Rng;

use crate::error::{Result, SegmentError, check_matrix};
use crate::sq_dist;

/// Rows per parallel block.
const BLOCK: usize = 4096;

/// Parameters of k-means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KMeansParams {
    /// Number of clusters.
    pub k: usize,
    /// Independent seeded restarts; the lowest inertia wins.
    pub n_init: usize,
    /// Lloyd iterations per restart at most.
    pub max_iter: usize,
    /// Relative tolerance on the centre shift (times the mean column variance).
    pub tol: f64,
    /// Seed of the restarts.
    pub seed: u64,
}

impl Default for KMeansParams {
    fn default() -> Self {
        Self { k: 8, n_init: 1, max_iter: 300, tol: 1e-4, seed: 0 }
    }
}

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// Number of clusters.
    pub k: usize,
    /// Columns of each row.
    pub d: usize,
    /// Centres, row-major `k × d`.
    pub centroids: Vec<f64>,
    /// Cluster of each training row.
    pub labels: Vec<usize>,
    /// Sum of squared distances of rows to their centres.
    pub inertia: f64,
    /// Lloyd iterations of the winning restart.
    pub n_iter: usize,
    /// Whether the winning restart converged before `max_iter`.
    pub converged: bool,
}

impl KMeansParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |param, value: String, rule| Err(SegmentError::InvalidParam { param, value, rule });
        if self.k == 0 {
            return bad("k", self.k.to_string(), "must be at least 1");
        }
        if self.n_init == 0 {
            return bad("n_init", self.n_init.to_string(), "must be at least 1");
        }
        if self.max_iter == 0 {
            return bad("max_iter", self.max_iter.to_string(), "must be at least 1");
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return bad("tol", self.tol.to_string(), "must be a finite number >= 0");
        }
        Ok(())
    }

    /// Clusters the rows of the row-major matrix `x` with `d` columns.
    pub fn fit(&self, x: &[f64], d: usize) -> Result<KMeansModel> {
        self.validate()?;
        let n = check_matrix(x, d)?;
        if n < self.k {
            return Err(SegmentError::InvalidData(format!("{n} rows cannot form {} clusters", self.k)));
        }
        let tol = self.tol * mean_variance(x, d);
        let mut best: Option<KMeansModel> = None;
        for run in 0..self.n_init {
            let mut rng = Rng::fork(self.seed, run as u64);
            let seeds = plus_plus(x, d, self.k, &mut rng);
            let model = lloyd(x, d, seeds, self.k, self.max_iter, tol);
            if best.as_ref().is_none_or(|b| model.inertia < b.inertia) {
                best = Some(model);
            }
        }
        best.ok_or_else(|| SegmentError::InvalidData("no restart ran".into()))
    }
}

/// One candidate of an automatic choice of k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KCandidate {
    /// Number of clusters.
    pub k: usize,
    /// Inertia of the fit.
    pub inertia: f64,
    /// Mean silhouette (exact up to `exact_rows` rows, else on a seeded sample of that size).
    pub silhouette: f64,
}

/// Fits k-means for every k in `ks` and returns the model with the best silhouette, with
/// the scan (for the silhouette-by-k chart). Ties go to the smaller k.
pub fn auto_k(
    x: &[f64],
    d: usize,
    ks: std::ops::RangeInclusive<usize>,
    params: &KMeansParams,
    exact_rows: usize,
) -> Result<(KMeansModel, Vec<KCandidate>)> {
    let n = check_matrix(x, d)?;
    let (lo, hi) = (*ks.start().max(&2), (*ks.end()).min(n.saturating_sub(1)));
    if lo > hi {
        return Err(SegmentError::InvalidParam {
            param: "k",
            value: format!("{}..={}", ks.start(), ks.end()),
            rule: "needs 2 <= k <= rows - 1",
        });
    }
    let mut best: Option<(f64, KMeansModel)> = None;
    let mut scan = Vec::new();
    for k in lo..=hi {
        let model = KMeansParams { k, ..params.clone() }.fit(x, d)?;
        let s = crate::silhouette::sampled_score(x, d, &model.labels, exact_rows, params.seed)?;
        scan.push(KCandidate { k, inertia: model.inertia, silhouette: s });
        if best.as_ref().is_none_or(|(b, _)| s > *b) {
            best = Some((s, model));
        }
    }
    let (_, model) = best.ok_or_else(|| SegmentError::InvalidData("no k was tried".into()))?;
    Ok((model, scan))
}

impl KMeansModel {
    /// The nearest centre of `row` (online assignment of a new user).
    pub fn predict(&self, row: &[f64]) -> usize {
        nearest(row, &self.centroids, self.d).0
    }
}

fn mean_variance(x: &[f64], d: usize) -> f64 {
    let n = (x.len() / d).max(1) as f64;
    let sums = x
        .par_chunks(BLOCK * d)
        .map(|rows| {
            let mut s = vec![0.0; d];
            for row in rows.chunks_exact(d) {
                s.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            s
        })
        .reduce(
            || vec![0.0; d],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(p, q)| *p += q);
                a
            },
        );
    let mean: Vec<f64> = sums.iter().map(|s| s / n).collect();
    let var: f64 =
        x.par_chunks(BLOCK * d).map(|rows| rows.chunks_exact(d).map(|r| sq_dist(r, &mean)).sum::<f64>()).sum();
    var / n / d as f64
}

/// Index and squared distance of the nearest centre.
#[inline]
pub(crate) fn nearest(row: &[f64], centers: &[f64], d: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, c) in centers.chunks_exact(d).enumerate() {
        let dist = sq_dist(row, c);
        if dist < best.1 {
            best = (j, dist);
        }
    }
    best
}

/// k-means++ with `2 + ln k` greedy local trials per centre, as scikit-learn. Every pass
/// over the rows runs in parallel blocks of plain loops.
fn plus_plus(x: &[f64], d: usize, k: usize, rng: &mut Rng) -> Vec<f64> {
    let n = x.len() / d;
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers = Vec::with_capacity(k * d);
    let first = rng.below(n);
    centers.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut closest = vec![0.0; n];
    closest.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK * d)).for_each(|(cl, rows)| {
        for (c, row) in cl.iter_mut().zip(rows.chunks_exact(d)) {
            *c = sq_dist(row, &centers[..d]);
        }
    });
    let mut pot: f64 = closest.iter().sum();
    let mut cumsum = vec![0.0; n];
    for _ in 1..k {
        let mut acc = 0.0;
        for (c, v) in cumsum.iter_mut().zip(&closest) {
            acc += v;
            *c = acc;
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let r = rng.f64() * pot;
                cumsum.partition_point(|&c| c < r).min(n - 1)
            })
            .collect();
        let cand_rows: Vec<f64> = candidates.iter().flat_map(|&c| x[c * d..(c + 1) * d].iter().copied()).collect();
        let pots: Vec<f64> = closest
            .par_chunks(BLOCK)
            .zip(x.par_chunks(BLOCK * d))
            .map(|(cl, rows)| {
                let mut acc = vec![0.0; trials];
                for (&c, row) in cl.iter().zip(rows.chunks_exact(d)) {
                    for (a, cand) in acc.iter_mut().zip(cand_rows.chunks_exact(d)) {
                        *a += sq_dist(row, cand).min(c);
                    }
                }
                acc
            })
            .reduce(|| vec![0.0; trials], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect());
        let (t, &best_pot) =
            pots.iter().enumerate().fold((0, &f64::INFINITY), |b, (t, p)| if *p < *b.1 { (t, p) } else { b });
        let c = &cand_rows[t * d..(t + 1) * d];
        closest.par_chunks_mut(BLOCK).zip(x.par_chunks(BLOCK * d)).for_each(|(cl, rows)| {
            for (v, row) in cl.iter_mut().zip(rows.chunks_exact(d)) {
                *v = v.min(sq_dist(row, c));
            }
        });
        pot = best_pot;
        centers.extend_from_slice(c);
    }
    centers
}

/// Per-block accumulators of an assignment pass: cluster sums and counts (of every row in
/// an exact pass; of the changes in a bounded pass), and the rows that changed cluster.
struct Partial {
    sums: Vec<f64>,
    counts: Vec<i64>,
    changed: usize,
}

impl Partial {
    fn new(k: usize, d: usize) -> Self {
        Self { sums: vec![0.0; k * d], counts: vec![0; k], changed: 0 }
    }

    fn merge(mut self, o: Partial) -> Partial {
        self.sums.iter_mut().zip(&o.sums).for_each(|(a, b)| *a += b);
        self.counts.iter_mut().zip(&o.counts).for_each(|(a, b)| *a += b);
        self.changed += o.changed;
        self
    }
}

/// Exact distances to the nearest and second-nearest centres.
#[inline(always)]
fn two_nearest(row: &[f64], centers: &[f64], d: usize) -> (usize, f64, f64) {
    let (mut a, mut d1, mut d2) = (0, f64::INFINITY, f64::INFINITY);
    for (j, c) in centers.chunks_exact(d).enumerate() {
        let dist = sq_dist(row, c);
        if dist < d1 {
            d2 = d1;
            d1 = dist;
            a = j;
        } else if dist < d2 {
            d2 = dist;
        }
    }
    (a, d1.sqrt(), d2.sqrt())
}

struct State {
    labels: Vec<usize>,
    upper: Vec<f64>,
    lower: Vec<f64>,
}

/// How far the centres moved in the last update, for Hamerly's bounds: a row's own centre
/// moved by `shift[a]`, any other by at most the largest shift among the others (`m2` for
/// rows of the centre that moved most, `arg`; `m1` for the rest).
struct Moved {
    shift: Vec<f64>,
    m1: f64,
    m2: f64,
    arg: usize,
}

impl Moved {
    fn new(shift: Vec<f64>) -> Self {
        let (mut m1, mut m2, mut arg) = (0.0f64, 0.0f64, 0usize);
        for (j, &s) in shift.iter().enumerate() {
            if s > m1 {
                m2 = m1;
                m1 = s;
                arg = j;
            } else if s > m2 {
                m2 = s;
            }
        }
        Self { shift, m1, m2, arg }
    }
}

/// One assignment pass. Exact (`bounds` is `None`): every row's nearest centre, and the
/// sums and counts of the clusters. Bounded (Hamerly): each row's bounds first move with
/// the centres (`Moved`), and `half_gap[j]` is half the distance from centre `j` to its
/// nearest other centre; a row whose bounds prove its centre is still the nearest is not
/// read at all, and the sums and counts returned are the changes only (a row that moved is
/// added to its new cluster and taken from its old one), which is what lets a late
/// iteration touch a small share of the data.
fn assign(x: &[f64], d: usize, k: usize, centers: &[f64], bounds: Option<(&[f64], &Moved)>, st: &mut State) -> Partial {
    let arch = pulp::Arch::new();
    st.labels
        .par_chunks_mut(BLOCK)
        .zip(st.upper.par_chunks_mut(BLOCK))
        .zip(st.lower.par_chunks_mut(BLOCK))
        .enumerate()
        .map(|(b, ((labels, upper), lower))| {
            let rows = &x[b * BLOCK * d..((b * BLOCK + labels.len()) * d)];
            arch.dispatch(AssignBlock { rows, d, k, centers, bounds, labels, upper, lower })
        })
        .reduce(|| Partial::new(k, d), Partial::merge)
}

/// One block of rows of [`assign`], as a [`pulp::WithSimd`] operation: `with_simd` is
/// inlined into pulp's `#[target_feature]` entry point, and the distance loops into it, so
/// they are compiled for AVX2/AVX-512 when the CPU has them (the binary targets baseline
/// x86-64; the distances took 24 ms of a 1,000,000 × 16 pass in SSE2, docs/benchmarks.md).
struct AssignBlock<'a> {
    rows: &'a [f64],
    d: usize,
    k: usize,
    centers: &'a [f64],
    bounds: Option<(&'a [f64], &'a Moved)>,
    labels: &'a mut [usize],
    upper: &'a mut [f64],
    lower: &'a mut [f64],
}

impl pulp::WithSimd for AssignBlock<'_> {
    type Output = Partial;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> Partial {
        let Self { rows, d, k, centers, bounds, labels, upper, lower } = self;
        let mut p = Partial::new(k, d);
        let each = labels.iter_mut().zip(upper.iter_mut()).zip(lower.iter_mut()).zip(rows.chunks_exact(d));
        for (((a, u), l), row) in each {
            let old = *a;
            let test = bounds.map(|(half_gap, m)| {
                *u += m.shift[old];
                *l -= if old == m.arg { m.m2 } else { m.m1 };
                half_gap[old].max(*l)
            });
            let fresh = match test {
                None => true,
                Some(bound) if *u > bound => {
                    *u = sq_dist(row, &centers[old * d..(old + 1) * d]).sqrt();
                    *u > bound
                }
                Some(_) => false,
            };
            if !fresh {
                continue;
            }
            let (na, d1, d2) = two_nearest(row, centers, d);
            *u = d1;
            *l = d2;
            if na != old {
                p.changed += 1;
                *a = na;
            }
            if test.is_none() {
                p.counts[na] += 1;
                p.sums[na * d..(na + 1) * d].iter_mut().zip(row).for_each(|(s, v)| *s += v);
            } else if na != old {
                p.counts[na] += 1;
                p.counts[old] -= 1;
                p.sums[na * d..(na + 1) * d].iter_mut().zip(row).for_each(|(s, v)| *s += v);
                p.sums[old * d..(old + 1) * d].iter_mut().zip(row).for_each(|(s, v)| *s -= v);
            }
        }
        p
    }
}

fn half_gaps(centers: &[f64], d: usize, k: usize) -> Vec<f64> {
    (0..k)
        .map(|j| {
            let cj = &centers[j * d..(j + 1) * d];
            let m = (0..k)
                .filter(|&o| o != j)
                .map(|o| sq_dist(cj, &centers[o * d..(o + 1) * d]))
                .fold(f64::INFINITY, f64::min);
            if m.is_finite() { 0.5 * m.sqrt() } else { 0.0 }
        })
        .collect()
}

fn lloyd(x: &[f64], d: usize, mut centers: Vec<f64>, k: usize, max_iter: usize, tol: f64) -> KMeansModel {
    let n = x.len() / d;
    let mut st = State { labels: vec![0; n], upper: vec![f64::INFINITY; n], lower: vec![0.0; n] };
    let mut strict = false;
    let mut n_iter = 0;
    let mut converged = false;
    // The clusters' sums and counts, kept up to date by each pass's changes.
    let mut totals = assign(x, d, k, &centers, None, &mut st);
    let mut moved: Option<Moved> = None;
    for it in 1..=max_iter {
        if let Some(m) = &moved {
            let delta = assign(x, d, k, &centers, Some((&half_gaps(&centers, d, k), m)), &mut st);
            // The rows this pass moved (not the running total).
            let changed = delta.changed;
            totals = totals.merge(delta);
            totals.changed = changed;
        }
        relocate_empty(x, d, k, &centers, &mut st, &mut totals);
        let mut new = vec![0.0; k * d];
        for j in 0..k {
            let cnt = totals.counts[j].max(1) as f64;
            for (c, s) in new[j * d..(j + 1) * d].iter_mut().zip(&totals.sums[j * d..(j + 1) * d]) {
                *c = s / cnt;
            }
        }
        let shift: Vec<f64> =
            (0..k).map(|j| sq_dist(&centers[j * d..(j + 1) * d], &new[j * d..(j + 1) * d]).sqrt()).collect();
        centers = new;
        n_iter = it;
        let shifted: f64 = shift.iter().map(|s| s * s).sum();
        // The next pass moves the bounds with the centres (Hamerly).
        moved = Some(Moved::new(shift));
        if it > 1 && totals.changed == 0 {
            strict = true;
            converged = true;
            break;
        }
        if shifted <= tol {
            converged = true;
            break;
        }
    }
    if !strict {
        // Labels must match the final centres.
        assign(x, d, k, &centers, None, &mut st);
    }
    let inertia = x
        .par_chunks(BLOCK * d)
        .zip(st.labels.par_chunks(BLOCK))
        .map(|(rows, labels)| {
            rows.chunks_exact(d).zip(labels).map(|(row, &a)| sq_dist(row, &centers[a * d..(a + 1) * d])).sum::<f64>()
        })
        .sum();
    KMeansModel { k, d, centroids: centers, labels: st.labels, inertia, n_iter, converged }
}

/// Gives each empty cluster the row farthest from its current centre, as scikit-learn does.
fn relocate_empty(x: &[f64], d: usize, k: usize, centers: &[f64], st: &mut State, part: &mut Partial) {
    let empty: Vec<usize> = (0..k).filter(|&j| part.counts[j] == 0).collect();
    if empty.is_empty() {
        return;
    }
    let mut far: Vec<(f64, usize)> = x
        .par_chunks(d)
        .zip(st.labels.par_iter())
        .enumerate()
        .map(|(i, (row, &a))| (sq_dist(row, &centers[a * d..(a + 1) * d]), i))
        .collect();
    far.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut taken = far.into_iter().map(|(_, i)| i);
    for j in empty {
        // A row whose cluster would become empty is skipped.
        let Some(i) = taken.by_ref().find(|&i| part.counts[st.labels[i]] > 1) else { break };
        let old = st.labels[i];
        let row = &x[i * d..(i + 1) * d];
        for (t, v) in row.iter().enumerate() {
            part.sums[old * d + t] -= v;
            part.sums[j * d + t] += v;
        }
        part.counts[old] -= 1;
        part.counts[j] += 1;
        part.changed += 1;
        st.labels[i] = j;
        st.upper[i] = f64::INFINITY;
        st.lower[i] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tailor_core::rng::Rng;

    use super::{KMeansParams, lloyd, nearest, plus_plus};

    fn blobs(n_per: usize, centers: &[[f64; 2]], seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let mut x = Vec::new();
        for c in centers {
            for _ in 0..n_per {
                x.push(c[0] + 0.3 * rng.normal());
                x.push(c[1] + 0.3 * rng.normal());
            }
        }
        x
    }

    #[test]
    fn separates_well_separated_blobs() {
        let x = blobs(200, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], 1);
        let m = KMeansParams { k: 3, n_init: 3, ..KMeansParams::default() }.fit(&x, 2).expect("fits");
        for b in 0..3 {
            let l = &m.labels[b * 200..(b + 1) * 200];
            assert!(l.iter().all(|&v| v == l[0]), "blob {b} split");
        }
        assert!(m.converged);
        assert_eq!(m.predict(&[9.8, 0.2]), m.labels[200]);
    }

    #[test]
    fn auto_k_finds_the_number_of_blobs() {
        let x = blobs(100, &[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]], 3);
        let (m, scan) =
            super::auto_k(&x, 2, 2..=8, &KMeansParams { n_init: 3, ..KMeansParams::default() }, 20_000).expect("auto");
        assert_eq!(m.k, 4, "{scan:?}");
        assert_eq!(scan.len(), 7);
        assert!(super::auto_k(&x[..4], 2, 2..=8, &KMeansParams::default(), 100).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(KMeansParams { k: 0, ..KMeansParams::default() }.fit(&[1.0], 1).is_err());
        assert!(KMeansParams { k: 3, ..KMeansParams::default() }.fit(&[1.0, 2.0], 1).is_err());
        assert!(KMeansParams { k: 1, ..KMeansParams::default() }.fit(&[1.0, f64::NAN], 1).is_err());
        let e = KMeansParams { tol: f64::NAN, ..KMeansParams::default() }.validate().unwrap_err();
        assert_eq!(e.to_string(), "invalid parameter tol = NaN: must be a finite number >= 0");
    }

    /// Naive Lloyd from the same seeds: the accelerated one must give identical labels.
    fn naive(x: &[f64], d: usize, mut c: Vec<f64>, k: usize, max_iter: usize) -> Vec<usize> {
        let n = x.len() / d;
        let mut labels = vec![usize::MAX; n];
        for _ in 0..max_iter {
            let new: Vec<usize> = x.chunks_exact(d).map(|r| nearest(r, &c, d).0).collect();
            if new == labels {
                break;
            }
            labels = new;
            let mut sums = vec![0.0; k * d];
            let mut counts = vec![0usize; k];
            for (r, &a) in x.chunks_exact(d).zip(&labels) {
                counts[a] += 1;
                for t in 0..d {
                    sums[a * d + t] += r[t];
                }
            }
            for j in 0..k {
                if counts[j] > 0 {
                    for t in 0..d {
                        c[j * d + t] = sums[j * d + t] / counts[j] as f64;
                    }
                }
            }
        }
        labels
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn hamerly_equals_naive_lloyd(seed in 0u64..1000, k in 1usize..6, n in 20usize..300) {
            let mut rng = Rng::new(seed);
            let x: Vec<f64> = (0..n * 3).map(|_| rng.normal() * 3.0 + (rng.below(4) as f64) * 4.0).collect();
            let seeds = plus_plus(&x, 3, k, &mut Rng::new(seed));
            let fast = lloyd(&x, 3, seeds.clone(), k, 300, 0.0);
            let slow = naive(&x, 3, seeds, k, 300);
            // Without empty clusters the two must agree exactly.
            let mut counts = vec![0; k];
            for &l in &slow { counts[l] += 1; }
            prop_assume!(counts.iter().all(|&c| c > 0));
            prop_assert_eq!(fast.labels, slow);
        }
    }
}
