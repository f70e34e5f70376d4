//! An int8 index for fast approximate top-k over factor vectors, re-ranked exactly.
//!
//! Each item vector is stored as 8-bit codes with one scale (`max |x| / 127`), a quarter of
//! the bytes of f32. The query is quantised the same way; approximate scores are
//! `scale_i · scale_q · Σ code_i · code_q`. Codes are laid out in blocks of [`LANES`] items,
//! dimension-major inside a block (`block[d][lane]`), so the scan adds one dimension of 16
//! items at a time in vector registers and never reduces a dot product horizontally (the
//! cost that made a row-per-item int8 scan barely faster than f32); the compiler vectorises
//! it inside [`pulp::Arch::dispatch`]. The best `candidates` by approximate score are then
//! re-scored exactly in f32 and the best `n` returned, so errors only matter when a true
//! top-`n` item falls outside the candidates (`tailor bench topk` measures the recall).

use crate::topk::top_k;

/// Items per block of the code layout.
pub const LANES: usize = 16;

/// 8-bit codes and scales of row-major item vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedIndex {
    k: usize,
    /// `ceil(n / LANES)` blocks of `k × LANES` codes, dimension-major.
    codes: Vec<i8>,
    /// Per item; padded with zeros to whole blocks.
    scales: Vec<f32>,
    n: usize,
}

fn quantise(v: &[f32], out: &mut [i8]) -> f32 {
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if m > 0.0 && m.is_finite() { m / 127.0 } else { 1.0 };
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

struct Scan<'a> {
    codes: &'a [i8],
    scales: &'a [f32],
    query: &'a [i8],
    /// The query's scale, folded into the output.
    query_scale: f32,
    out: &'a mut [f32],
}

impl pulp::WithSimd for Scan<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let k = self.query.len().max(1);
        let q: Vec<f32> = self.query.iter().map(|&c| f32::from(c)).collect();
        for ((block, scales), out) in
            self.codes.chunks_exact(k * LANES).zip(self.scales.chunks_exact(LANES)).zip(self.out.chunks_mut(LANES))
        {
            // Two accumulators halve the dependency chain of the adds.
            let (mut a0, mut a1) = ([0f32; LANES], [0f32; LANES]);
            let mut dims = block.chunks_exact(2 * LANES);
            let mut qs = q.chunks_exact(2);
            for (pair, qq) in (&mut dims).zip(&mut qs) {
                for l in 0..LANES {
                    a0[l] += f32::from(pair[l]) * qq[0];
                    a1[l] += f32::from(pair[LANES + l]) * qq[1];
                }
            }
            for (dim, &qd) in dims.remainder().chunks_exact(LANES).zip(qs.remainder()) {
                for l in 0..LANES {
                    a0[l] += f32::from(dim[l]) * qd;
                }
            }
            for (((o, x), y), s) in out.iter_mut().zip(a0).zip(a1).zip(scales) {
                *o = (x + y) * (s * self.query_scale);
            }
        }
    }
}

impl QuantizedIndex {
    /// Quantises `items` (row-major, `k` per row).
    pub fn build(items: &[f32], k: usize) -> Self {
        let k = k.max(1);
        let n = items.len() / k;
        let blocks = n.div_ceil(LANES);
        let mut codes = vec![0i8; blocks * LANES * k];
        let mut scales = vec![0f32; blocks * LANES];
        let mut row = vec![0i8; k];
        for (i, v) in items.chunks_exact(k).enumerate() {
            scales[i] = quantise(v, &mut row);
            let (b, l) = (i / LANES, i % LANES);
            for (d, &c) in row.iter().enumerate() {
                codes[(b * k + d) * LANES + l] = c;
            }
        }
        Self { k, codes, scales, n }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.codes.len() + self.scales.len() * 4
    }

    /// Approximate scores of every item for `query` into `out` (length at least [`Self::len`];
    /// only the first `len` are written).
    pub fn scores(&self, query: &[f32], out: &mut [f32]) {
        let mut q = vec![0i8; self.k];
        let query_scale = quantise(query, &mut q);
        pulp::Arch::new().dispatch(Scan { codes: &self.codes, scales: &self.scales, query: &q, query_scale, out });
    }

    /// The best `n` items for `query` among those `keep` allows: the best `candidates` by
    /// approximate score, re-scored exactly against `exact` (the f32 item vectors the index
    /// was built from).
    pub fn top_k(
        &self,
        exact: &[f32],
        query: &[f32],
        n: usize,
        candidates: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        // One score buffer per thread, reused: a fresh 400 KB allocation per query costs page
        // faults and zeroing comparable to a third of the scan.
        thread_local! {
            static APPROX: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        APPROX.with(|buf| {
            let mut approx = buf.borrow_mut();
            approx.resize(self.len(), 0.0);
            self.scores(query, &mut approx);
            self.rerank(exact, query, &approx, n, candidates, keep)
        })
    }

    /// [`Self::top_k`] from approximate scores already computed (e.g. into a reused buffer).
    pub fn rerank(
        &self,
        exact: &[f32],
        query: &[f32],
        approx: &[f32],
        n: usize,
        candidates: usize,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let pool = top_k(approx, candidates.max(n), keep);
        let k = self.k;
        let mut rescored: Vec<(u32, f32)> = pool
            .into_iter()
            .filter_map(|(i, _)| {
                let v = exact.get(i as usize * k..(i as usize + 1) * k)?;
                Some((i, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            })
            .collect();
        crate::topk::best_first(&mut rescored);
        rescored.truncate(n);
        rescored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tailor_core::rng::Rng;

    #[test]
    fn recall_against_the_exact_scan_is_near_one() {
        let (n, k) = (5000, 32);
        let mut rng = Rng::new(3);
        let items: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
        let idx = QuantizedIndex::build(&items, k);
        assert_eq!(idx.len(), n);
        assert!(idx.bytes() < items.len() * 4 / 3);
        let mut hits = 0;
        for _ in 0..50 {
            let q: Vec<f32> = (0..k).map(|_| rng.normal() as f32).collect();
            let exact: Vec<f32> = items.chunks_exact(k).map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum()).collect();
            let truth: Vec<u32> = top_k(&exact, 10, |_| true).into_iter().map(|x| x.0).collect();
            let got = idx.top_k(&items, &q, 10, 100, |_| true);
            hits += got.iter().filter(|g| truth.contains(&g.0)).count();
            // Re-scored values are exact.
            for (i, s) in &got {
                assert!((exact[*i as usize] - s).abs() < 1e-4);
            }
        }
        assert!(hits as f64 / 500.0 >= 0.99, "recall {}", hits as f64 / 500.0);
        // The filter is honoured.
        let q = vec![1f32; k];
        assert!(idx.top_k(&items, &q, 10, 100, |i| i % 2 == 0).iter().all(|x| x.0 % 2 == 0));
    }
}
