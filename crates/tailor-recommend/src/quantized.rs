//! An int8 index for fast approximate top-k over factor vectors, re-ranked exactly.
//!
//! Each item vector is stored as 8-bit codes with one scale (`max |x| / 127`), a quarter of
//! the bytes of f32. The query is quantised the same way; approximate scores are
//! `scale_i · scale_q · Σ code_i · code_q`, the sum exact in i32. Codes are laid out in blocks
//! of [`LANES`] items, by dimension pair inside a block (`block[d / 2][lane][d % 2]`), so one
//! 32-byte load holds a pair of dimensions of 16 items: on x86 it is sign-extended to i16 and
//! multiplied by the query's pair with `pmaddwd` (16 lanes of exact i32 products per three
//! instructions with AVX-512, via pulp's safe intrinsics), and no dot product is ever reduced
//! horizontally. Other targets use a portable loop with the same integer results (tested
//! against each other). The best `candidates` by approximate score are then re-scored exactly
//! in f32 and the best `n` returned, so errors only matter when a true top-`n` item falls
//! outside the candidates (`tailor bench topk` measures the recall).

use crate::topk::top_k;

/// Items per block of the code layout.
pub const LANES: usize = 16;

/// 8-bit codes and scales of row-major item vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedIndex {
    k: usize,
    /// `ceil(n / LANES)` blocks of `kp × LANES` codes (`kp` = `k` rounded up to even, the
    /// padding dimension zero): dimension pairs major, then lane, then the pair's two codes.
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
    /// Query codes, padded to an even length like the items'.
    query: &'a [i8],
    /// The query's scale, folded into the output.
    query_scale: f32,
    out: &'a mut [f32],
}

impl Scan<'_> {
    /// The query's dimension pairs as the two i16 halves of an i32, the operand `pmaddwd`
    /// multiplies each pair of codes by.
    #[cfg(target_arch = "x86_64")]
    fn query_pairs(&self) -> Vec<i32> {
        self.query
            .chunks_exact(2)
            .map(|p| {
                let ([a0, a1], [b0, b1]) = (i16::from(p[0]).to_le_bytes(), i16::from(p[1]).to_le_bytes());
                i32::from_le_bytes([a0, a1, b0, b1])
            })
            .collect()
    }

    /// Writes the scaled scores of one block from its 16 exact integer dot products.
    #[inline(always)]
    fn finish(acc: [i32; LANES], scales: &[f32], query_scale: f32, out: &mut [f32]) {
        for ((o, a), s) in out.iter_mut().zip(acc).zip(scales) {
            *o = a as f32 * (s * query_scale);
        }
    }

    fn run(self) {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return pulp::Simd::vectorize(simd, ScanV4 { simd, scan: self });
            }
            if let Some(simd) = pulp::x86::V3::try_new() {
                return pulp::Simd::vectorize(simd, ScanV3 { simd, scan: self });
            }
        }
        pulp::Arch::new().dispatch(self)
    }
}

/// AVX-512: one 32-byte load holds a dimension pair of all 16 lanes; sign-extended to i16
/// and multiplied by the query pair with `vpmaddwd`, it adds 16 exact i32 products per
/// three instructions (the f32 path needs six: widen, convert and FMA, twice).
#[cfg(target_arch = "x86_64")]
struct ScanV4<'a> {
    simd: pulp::x86::V4,
    scan: Scan<'a>,
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for ScanV4<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { simd, scan } = self;
        let kp = scan.query.len().max(2);
        let q: Vec<_> = scan.query_pairs().into_iter().map(|p| simd.avx512f._mm512_set1_epi32(p)).collect();
        for ((block, scales), out) in
            scan.codes.chunks_exact(kp * LANES).zip(scan.scales.chunks_exact(LANES)).zip(scan.out.chunks_mut(LANES))
        {
            let (pairs, _) = pulp::as_arrays::<32, i8>(block);
            let mut acc = simd.avx512f._mm512_setzero_si512();
            for (pair, &qq) in pairs.iter().zip(&q) {
                let codes = simd.avx512bw._mm512_cvtepi8_epi16(pulp::cast(*pair));
                acc = simd.avx512f._mm512_add_epi32(acc, simd.avx512bw._mm512_madd_epi16(codes, qq));
            }
            Scan::finish(pulp::cast(acc), scales, scan.query_scale, out);
        }
    }
}

/// AVX2: the same with two 256-bit halves (lanes 0–7 and 8–15).
#[cfg(target_arch = "x86_64")]
struct ScanV3<'a> {
    simd: pulp::x86::V3,
    scan: Scan<'a>,
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for ScanV3<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self { simd, scan } = self;
        let kp = scan.query.len().max(2);
        let q: Vec<_> = scan.query_pairs().into_iter().map(|p| simd.avx._mm256_set1_epi32(p)).collect();
        for ((block, scales), out) in
            scan.codes.chunks_exact(kp * LANES).zip(scan.scales.chunks_exact(LANES)).zip(scan.out.chunks_mut(LANES))
        {
            let (halves, _) = pulp::as_arrays::<16, i8>(block);
            let (mut lo, mut hi) = (simd.avx._mm256_setzero_si256(), simd.avx._mm256_setzero_si256());
            for (pair, &qq) in halves.chunks_exact(2).zip(&q) {
                let a = simd.avx2._mm256_cvtepi8_epi16(pulp::cast(pair[0]));
                let b = simd.avx2._mm256_cvtepi8_epi16(pulp::cast(pair[1]));
                lo = simd.avx2._mm256_add_epi32(lo, simd.avx2._mm256_madd_epi16(a, qq));
                hi = simd.avx2._mm256_add_epi32(hi, simd.avx2._mm256_madd_epi16(b, qq));
            }
            Scan::finish(pulp::cast([lo, hi]), scales, scan.query_scale, out);
        }
    }
}

/// Portable: exact integer dot products, vectorised by the compiler as it can.
impl pulp::WithSimd for Scan<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let kp = self.query.len().max(2);
        let q: Vec<(i32, i32)> = self.query.chunks_exact(2).map(|p| (i32::from(p[0]), i32::from(p[1]))).collect();
        for ((block, scales), out) in
            self.codes.chunks_exact(kp * LANES).zip(self.scales.chunks_exact(LANES)).zip(self.out.chunks_mut(LANES))
        {
            let mut acc = [0i32; LANES];
            for (pair, &(q0, q1)) in block.chunks_exact(2 * LANES).zip(&q) {
                for (l, a) in acc.iter_mut().enumerate() {
                    *a += i32::from(pair[2 * l]) * q0 + i32::from(pair[2 * l + 1]) * q1;
                }
            }
            Scan::finish(acc, scales, self.query_scale, out);
        }
    }
}

impl QuantizedIndex {
    /// Quantises `items` (row-major, `k` per row).
    pub fn build(items: &[f32], k: usize) -> Self {
        let k = k.max(1);
        let n = items.len() / k;
        let blocks = n.div_ceil(LANES);
        let kp = k.div_ceil(2) * 2;
        let mut codes = vec![0i8; blocks * LANES * kp];
        let mut scales = vec![0f32; blocks * LANES];
        let mut row = vec![0i8; k];
        for (i, v) in items.chunks_exact(k).enumerate() {
            scales[i] = quantise(v, &mut row);
            let (b, l) = (i / LANES, i % LANES);
            for (d, &c) in row.iter().enumerate() {
                codes[((b * kp / 2 + d / 2) * LANES + l) * 2 + d % 2] = c;
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
        let mut q = vec![0i8; self.k.div_ceil(2) * 2];
        let query_scale = quantise(&query[..self.k.min(query.len())], &mut q);
        Scan { codes: &self.codes, scales: &self.scales, query: &q, query_scale, out }.run();
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

    /// Every scan path (AVX-512, AVX2, portable) gives exactly the integer dot products of
    /// the codes, for odd and even dimensions and partial last blocks.
    #[test]
    fn every_scan_path_equals_naive_integer_dot_products() {
        let mut rng = Rng::new(11);
        for (n, k) in [(1, 1), (17, 5), (40, 64), (33, 7)] {
            let items: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
            let idx = QuantizedIndex::build(&items, k);
            let query: Vec<f32> = (0..k).map(|_| rng.normal() as f32).collect();
            let mut q = vec![0i8; k.div_ceil(2) * 2];
            let qs = quantise(&query, &mut q);
            let mut row = vec![0i8; k];
            let naive: Vec<f32> = items
                .chunks_exact(k)
                .map(|v| {
                    let s = quantise(v, &mut row);
                    row.iter().zip(&q).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum::<i32>() as f32 * (s * qs)
                })
                .collect();
            let blocks = n.div_ceil(LANES) * LANES;
            fn scan<'a>(idx: &'a QuantizedIndex, query: &'a [i8], query_scale: f32, out: &'a mut [f32]) -> Scan<'a> {
                Scan { codes: &idx.codes, scales: &idx.scales, query, query_scale, out }
            }
            let mut out = vec![0f32; blocks];
            pulp::Arch::new().dispatch(scan(&idx, &q, qs, &mut out));
            assert_eq!(&out[..n], &naive[..], "portable n={n} k={k}");
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(simd) = pulp::x86::V3::try_new() {
                    let mut out = vec![0f32; blocks];
                    pulp::Simd::vectorize(simd, ScanV3 { simd, scan: scan(&idx, &q, qs, &mut out) });
                    assert_eq!(&out[..n], &naive[..], "AVX2 n={n} k={k}");
                }
                if let Some(simd) = pulp::x86::V4::try_new() {
                    let mut out = vec![0f32; blocks];
                    pulp::Simd::vectorize(simd, ScanV4 { simd, scan: scan(&idx, &q, qs, &mut out) });
                    assert_eq!(&out[..n], &naive[..], "AVX-512 n={n} k={k}");
                }
            }
            let mut out = vec![0f32; n];
            idx.scores(&query, &mut out);
            assert_eq!(out, naive);
        }
    }

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
