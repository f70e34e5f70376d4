//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008): minimise
//! `Σ_{u,i} c_ui (p_ui − x_uᵀ y_i)² + λ (Σ |x_u|² + Σ |y_i|²)` with preference `p_ui = 1` for
//! observed pairs (0 otherwise) and confidence `c_ui = 1 + α · w_ui`, alternating exact
//! least-squares half-sweeps. Each user's (item's) system
//! `(YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u` is solved either by a few warm-started
//! conjugate-gradient steps (Takács et al. 2011; the cost per user is `O(n_u k + k²)` per
//! step instead of `O(n_u k² + k³)`) or exactly by Cholesky. `YᵀY` is shared by all rows of
//! a half-sweep. f32 factors, rayon over users.

use pulp::Simd as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tailor_core::Interactions;
use tailor_core::rng::Rng;

use crate::error::{RecommendError, Result, check};
use crate::{Filter, History, Model};

/// How each row's linear system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// `steps` conjugate-gradient iterations, warm-started from the previous factors.
    Cg {
        /// CG steps per row and half-sweep (implicit uses 3).
        steps: usize,
    },
    /// Exact Cholesky factorisation per row.
    Cholesky,
}

/// Parameters of [`AlsModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    /// Length of each user and item vector (1 to 1,024).
    pub factors: usize,
    /// L2 regularisation λ.
    pub regularization: f32,
    /// Confidence scale α in `1 + α w`.
    pub alpha: f32,
    /// Full sweeps (users then items).
    pub iterations: usize,
    /// Row solver.
    pub solver: Solver,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self { factors: 64, regularization: 0.01, alpha: 1.0, iterations: 15, solver: Solver::Cg { steps: 3 }, seed: 0 }
    }
}

/// Fitted factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsModel {
    /// The parameters it was fitted with.
    pub params: AlsParams,
    /// Factors per row.
    pub k: usize,
    /// `n_users × k`, row-major.
    pub user_factors: Vec<f32>,
    /// `n_items × k`, row-major.
    pub item_factors: Vec<f32>,
    /// `YᵀY + λI` of the final item factors (k × k), for fold-in.
    yty: Vec<f32>,
}

/// Dot product with 16 independent accumulators (two 8-lane vectors under AVX2), summed
/// as a tree so that the reduction does not serialise on the adder's latency.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    let mut w = 8;
    while w > 0 {
        for l in 0..w {
            acc[l] += acc[l + w];
        }
        w /= 2;
    }
    s + acc[0]
}

/// [`dot`] with explicit vectors and fused multiply-adds (Rust does not contract `a * b + c`
/// into an FMA on its own), two accumulators.
#[inline(always)]
fn sdot<S: pulp::Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (va, ta) = S::as_simd_f32s(a);
    let (vb, tb) = S::as_simd_f32s(b);
    let zero = simd.splat_f32s(0.0);
    let (mut a0, mut a1) = (zero, zero);
    let (pa, pb) = (va.chunks_exact(2), vb.chunks_exact(2));
    let (ra, rb) = (pa.remainder(), pb.remainder());
    for (x, y) in pa.zip(pb) {
        a0 = simd.mul_add_f32s(x[0], y[0], a0);
        a1 = simd.mul_add_f32s(x[1], y[1], a1);
    }
    for (x, y) in ra.iter().zip(rb) {
        a0 = simd.mul_add_f32s(*x, *y, a0);
    }
    let mut s = simd.reduce_sum_f32s(simd.add_f32s(a0, a1));
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// Horizontal sums of four vectors at once: a dot product of 64 floats is four FMAs and
/// then a horizontal sum, so the sums are where row-by-row dots spend their instructions.
trait Sum4: Copy {
    type S: pulp::Simd;
    fn simd(self) -> Self::S;
    fn sum4(self, v: [<Self::S as pulp::Simd>::f32s; 4]) -> [f32; 4];
}

/// Any instruction set: one horizontal sum per vector.
#[derive(Clone, Copy)]
struct EachSum<S>(S);

impl<S: pulp::Simd> Sum4 for EachSum<S> {
    type S = S;

    #[inline(always)]
    fn simd(self) -> S {
        self.0
    }

    #[inline(always)]
    fn sum4(self, v: [S::f32s; 4]) -> [f32; 4] {
        v.map(|x| self.0.reduce_sum_f32s(x))
    }
}

/// AVX-512: the four vectors are summed together, halving and transposing as they go
/// (256-bit halves of pairs, then 128-bit quarters of all four, then within 128-bit lanes):
/// 13 instructions for four sums instead of about 8 per sum.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct TransposeSum(pulp::x86::V4);

#[cfg(target_arch = "x86_64")]
impl Sum4 for TransposeSum {
    type S = pulp::x86::V4;

    #[inline(always)]
    fn simd(self) -> pulp::x86::V4 {
        self.0
    }

    #[inline(always)]
    fn sum4(self, v: [pulp::f32x16; 4]) -> [f32; 4] {
        use core::arch::x86_64::__m512;
        let f = self.0.avx512f;
        let [a, b, c, d] = v.map(pulp::cast::<pulp::f32x16, __m512>);
        // Lanes 0-7 hold eight partial sums of the first vector, 8-15 of the second.
        let ab = f._mm512_add_ps(f._mm512_shuffle_f32x4::<0x44>(a, b), f._mm512_shuffle_f32x4::<0xEE>(a, b));
        let cd = f._mm512_add_ps(f._mm512_shuffle_f32x4::<0x44>(c, d), f._mm512_shuffle_f32x4::<0xEE>(c, d));
        // 128-bit quarter q holds four partial sums of vector q.
        let all = f._mm512_add_ps(f._mm512_shuffle_f32x4::<0x88>(ab, cd), f._mm512_shuffle_f32x4::<0xDD>(ab, cd));
        let t = f._mm512_add_ps(all, f._mm512_permute_ps::<0b01_00_11_10>(all));
        let t = f._mm512_add_ps(t, f._mm512_permute_ps::<0b10_11_00_01>(t));
        let l = pulp::cast::<__m512, [f32; 16]>(t);
        [l[0], l[4], l[8], l[12]]
    }
}

/// `out[j] = f(j, rows[j] · b)` for the row-major `rows` (n × k): four rows at a time, each
/// with two accumulators, so eight independent FMA chains hide the FMA latency that one
/// dot product after another waits on (a lone 64-float dot is latency-bound: two chains of
/// four FMAs, then a horizontal sum). The CG steps spend most of their time here.
#[inline(always)]
fn sdots<H: Sum4>(h: H, rows: &[f32], b: &[f32], k: usize, out: &mut [f32], f: impl Fn(usize, f32) -> f32) {
    let simd = h.simd();
    let (vb, tb) = <H::S as pulp::Simd>::as_simd_f32s(b);
    let nv = vb.len();
    let t0 = k - tb.len();
    let zero = simd.splat_f32s(0.0);
    let mut quads = rows.chunks_exact(4 * k);
    let mut j = 0;
    for quad in quads.by_ref() {
        let (r0, rest) = quad.split_at(k);
        let (r1, rest) = rest.split_at(k);
        let (r2, r3) = rest.split_at(k);
        let rs = [r0, r1, r2, r3];
        let vs = rs.map(|r| <H::S as pulp::Simd>::as_simd_f32s(r).0);
        let mut acc = [[zero; 2]; 4];
        let mut v = 0;
        while v + 1 < nv {
            for q in 0..4 {
                acc[q][0] = simd.mul_add_f32s(vs[q][v], vb[v], acc[q][0]);
                acc[q][1] = simd.mul_add_f32s(vs[q][v + 1], vb[v + 1], acc[q][1]);
            }
            v += 2;
        }
        if v < nv {
            for q in 0..4 {
                acc[q][0] = simd.mul_add_f32s(vs[q][v], vb[v], acc[q][0]);
            }
        }
        let sums = h.sum4(acc.map(|[a0, a1]| simd.add_f32s(a0, a1)));
        for q in 0..4 {
            let mut d = sums[q];
            for (x, y) in rs[q][t0..].iter().zip(tb) {
                d += x * y;
            }
            out[j + q] = f(j + q, d);
        }
        j += 4;
    }
    for row in quads.remainder().chunks_exact(k) {
        out[j] = f(j, sdot(simd, row, b));
        j += 1;
    }
}

/// `out += Σ_j f(j, rows[j] · b) · rows[j]` in one pass over the row-major `rows` (n × k):
/// each group of four rows is loaded into registers once, dotted with `b` (held in
/// registers), summed by [`Sum4`], and added into `out` (held in registers) while still
/// there — what [`sdots`] then [`saccumulate`] do in two passes, reading every row twice.
/// Only when `k` is one to four whole vectors (k = 64 under AVX-512): returns `false`, doing
/// nothing, otherwise.
#[inline(always)]
fn fused_dots_accumulate<H: Sum4>(
    h: H,
    rows: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(usize, f32) -> f32 + Copy,
) -> bool {
    let lanes = size_of::<<H::S as pulp::Simd>::f32s>() / size_of::<f32>();
    if !b.len().is_multiple_of(lanes) || out.len() != b.len() {
        return false;
    }
    match b.len() / lanes {
        1 => fused_block::<H, 1>(h, rows, b, out, f),
        2 => fused_block::<H, 2>(h, rows, b, out, f),
        3 => fused_block::<H, 3>(h, rows, b, out, f),
        4 => fused_block::<H, 4>(h, rows, b, out, f),
        _ => return false,
    }
    true
}

/// [`fused_dots_accumulate`] for rows of `NV` whole vectors: 4 × NV row vectors, NV of `b`
/// and NV accumulators stay in registers (24 of AVX-512's 32 for NV = 4).
#[inline(always)]
fn fused_block<H: Sum4, const NV: usize>(
    h: H,
    rows: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(usize, f32) -> f32,
) {
    let simd = h.simd();
    let k = b.len();
    let load = |row: &[f32]| -> [<H::S as pulp::Simd>::f32s; NV] {
        let (v, _) = <H::S as pulp::Simd>::as_simd_f32s(row);
        std::array::from_fn(|i| v[i])
    };
    let dot = |r: &[<H::S as pulp::Simd>::f32s; NV], vb: &[<H::S as pulp::Simd>::f32s; NV]| {
        let mut a = simd.mul_f32s(r[0], vb[0]);
        for v in 1..NV {
            a = simd.mul_add_f32s(r[v], vb[v], a);
        }
        a
    };
    let vb = load(b);
    let (vo, _) = <H::S as pulp::Simd>::as_mut_simd_f32s(out);
    let mut acc: [<H::S as pulp::Simd>::f32s; NV] = std::array::from_fn(|i| vo[i]);
    let mut quads = rows.chunks_exact(4 * k);
    let mut j = 0;
    for quad in quads.by_ref() {
        let r: [[<H::S as pulp::Simd>::f32s; NV]; 4] = std::array::from_fn(|q| load(&quad[q * k..(q + 1) * k]));
        let sums = h.sum4(std::array::from_fn(|q| dot(&r[q], &vb)));
        for (q, rq) in r.iter().enumerate() {
            let c = simd.splat_f32s(f(j + q, sums[q]));
            for v in 0..NV {
                acc[v] = simd.mul_add_f32s(c, rq[v], acc[v]);
            }
        }
        j += 4;
    }
    for row in quads.remainder().chunks_exact(k) {
        let r = load(row);
        let c = simd.splat_f32s(f(j, simd.reduce_sum_f32s(dot(&r, &vb))));
        for v in 0..NV {
            acc[v] = simd.mul_add_f32s(c, r[v], acc[v]);
        }
        j += 1;
    }
    vo[..NV].copy_from_slice(&acc);
}

/// `out += Σ_j coef[j] · rows[j]` for row-major `rows` (n × k), with the output held in
/// vector registers (blocks of up to four vectors) while the rows stream past, instead of
/// being loaded and stored once per row as repeated `y += a·x` calls would.
#[inline(always)]
fn saccumulate<S: pulp::Simd>(simd: S, rows: &[f32], coef: &[f32], k: usize, out: &mut [f32]) {
    let (vo, to) = S::as_mut_simd_f32s(out);
    let nv = vo.len();
    let lanes = (k - to.len()).checked_div(nv).unwrap_or(k);
    let mut c = 0;
    while c < nv {
        c = match nv - c {
            1 => saccumulate_block::<S, 1>(simd, rows, coef, k, lanes, c, vo),
            2 => saccumulate_block::<S, 2>(simd, rows, coef, k, lanes, c, vo),
            3 => saccumulate_block::<S, 3>(simd, rows, coef, k, lanes, c, vo),
            _ => saccumulate_block::<S, 4>(simd, rows, coef, k, lanes, c, vo),
        };
    }
    let t0 = k - to.len();
    for (row, &a) in rows.chunks_exact(k).zip(coef) {
        for (o, r) in to.iter_mut().zip(&row[t0..]) {
            *o += a * r;
        }
    }
}

/// One block of `W` output vectors of [`saccumulate`], starting at vector `c`; returns the
/// next block's start. `W` is a constant so that the accumulators live in registers.
#[inline(always)]
fn saccumulate_block<S: pulp::Simd, const W: usize>(
    simd: S,
    rows: &[f32],
    coef: &[f32],
    k: usize,
    lanes: usize,
    c: usize,
    vo: &mut [S::f32s],
) -> usize {
    // Even and odd rows into two sets of accumulators: 2 W independent FMA chains, enough
    // to cover the FMA latency at two per cycle (W chains alone ran at half speed).
    let zero = simd.splat_f32s(0.0);
    let mut acc: [S::f32s; W] = [zero; W];
    acc.copy_from_slice(&vo[c..c + W]);
    let mut odd: [S::f32s; W] = [zero; W];
    let n = (rows.len() / k.max(1)).min(coef.len());
    let (rows, coef) = (&rows[..n * k], &coef[..n]);
    let pairs = rows.chunks_exact(2 * k);
    let last = pairs.remainder();
    for (pair, cf) in pairs.zip(coef.chunks_exact(2)) {
        let (r0, r1) = pair.split_at(k);
        let (v0, _) = S::as_simd_f32s(&r0[c * lanes..]);
        let (v1, _) = S::as_simd_f32s(&r1[c * lanes..]);
        let (a0, a1) = (simd.splat_f32s(cf[0]), simd.splat_f32s(cf[1]));
        for v in 0..W {
            acc[v] = simd.mul_add_f32s(a0, v0[v], acc[v]);
            odd[v] = simd.mul_add_f32s(a1, v1[v], odd[v]);
        }
    }
    if let (false, Some(&a)) = (last.is_empty(), coef.last()) {
        let (vr, _) = S::as_simd_f32s(&last[c * lanes..]);
        let av = simd.splat_f32s(a);
        for v in 0..W {
            acc[v] = simd.mul_add_f32s(av, vr[v], acc[v]);
        }
    }
    for (o, (a, b)) in vo[c..c + W].iter_mut().zip(acc.iter().zip(&odd)) {
        *o = simd.add_f32s(*a, *b);
    }
    c + W
}

/// `YᵀY + λI` (k × k, row-major) of row-major factors: rayon over blocks of rows, each
/// block's upper triangle summed in f32 by [`GramBlock`] and the blocks added in f64.
///
/// Not faer's GEMM: it keeps two L3-sized packing buffers (64 MiB here) in a thread-local
/// of every thread that ever calls it, and a server's retrainings run on whichever
/// blocking-pool thread is free, so each new one held another 64 MiB for good (the soak
/// test's heap grew by that at every retraining; docs/benchmarks.md, "Soak").
pub(crate) fn gram(y: &[f32], k: usize, reg: f32) -> Vec<f32> {
    const BLOCK: usize = 1024;
    if k == 0 {
        return Vec::new();
    }
    let arch = pulp::Arch::new();
    let sum = y
        .par_chunks(BLOCK * k)
        .fold(
            || (vec![0f64; k * k], vec![0f32; k * k]),
            |(mut total, mut block), rows| {
                arch.dispatch(GramBlock { rows, weights: None, k, out: &mut block });
                for a in 0..k {
                    let (t, b) = (&mut total[a * k + a..(a + 1) * k], &block[a * k + a..(a + 1) * k]);
                    t.iter_mut().zip(b).for_each(|(t, &b)| *t += f64::from(b));
                }
                (total, block)
            },
        )
        .map(|(total, _)| total)
        .reduce(
            || vec![0f64; k * k],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let mut out = vec![0f32; k * k];
    for a in 0..k {
        for b in a..k {
            let v = sum[a * k + b] as f32;
            out[a * k + b] = v;
            out[b * k + a] = v;
        }
        out[a * k + a] += reg;
    }
    out
}

/// The element type of [`GramBlock`]: f32 (ALS's Gram matrix) or f64 (a user's
/// explanation system), with the pulp operations the tiles need.
trait TileScalar: Copy + std::ops::Mul<Output = Self> + std::ops::AddAssign + 'static {
    const ZERO: Self;
    type V<S: pulp::Simd>: Copy;
    fn splat<S: pulp::Simd>(simd: S, x: Self) -> Self::V<S>;
    fn mul_add<S: pulp::Simd>(simd: S, a: Self::V<S>, b: Self::V<S>, c: Self::V<S>) -> Self::V<S>;
    fn as_simd<S: pulp::Simd>(x: &[Self]) -> &[Self::V<S>];
    fn as_mut_simd<S: pulp::Simd>(x: &mut [Self]) -> &mut [Self::V<S>];
}

impl TileScalar for f32 {
    const ZERO: Self = 0.0;
    type V<S: pulp::Simd> = S::f32s;

    #[inline(always)]
    fn splat<S: pulp::Simd>(simd: S, x: f32) -> S::f32s {
        simd.splat_f32s(x)
    }

    #[inline(always)]
    fn mul_add<S: pulp::Simd>(simd: S, a: S::f32s, b: S::f32s, c: S::f32s) -> S::f32s {
        simd.mul_add_f32s(a, b, c)
    }

    #[inline(always)]
    fn as_simd<S: pulp::Simd>(x: &[f32]) -> &[S::f32s] {
        S::as_simd_f32s(x).0
    }

    #[inline(always)]
    fn as_mut_simd<S: pulp::Simd>(x: &mut [f32]) -> &mut [S::f32s] {
        S::as_mut_simd_f32s(x).0
    }
}

impl TileScalar for f64 {
    const ZERO: Self = 0.0;
    type V<S: pulp::Simd> = S::f64s;

    #[inline(always)]
    fn splat<S: pulp::Simd>(simd: S, x: f64) -> S::f64s {
        simd.splat_f64s(x)
    }

    #[inline(always)]
    fn mul_add<S: pulp::Simd>(simd: S, a: S::f64s, b: S::f64s, c: S::f64s) -> S::f64s {
        simd.mul_add_f64s(a, b, c)
    }

    #[inline(always)]
    fn as_simd<S: pulp::Simd>(x: &[f64]) -> &[S::f64s] {
        S::as_simd_f64s(x).0
    }

    #[inline(always)]
    fn as_mut_simd<S: pulp::Simd>(x: &mut [f64]) -> &mut [S::f64s] {
        S::as_mut_simd_f64s(x).0
    }
}

/// `Σ_r c_r row_r row_rᵀ` of a block of row-major rows on and above the diagonal, into
/// `out` (k × k, row-major; entries below the diagonal are left unspecified), with
/// `c_r = weights[r]` or 1. Tiles of four output rows by up to four vectors of columns keep
/// 16 accumulators in registers while the rows stream past (each row loaded once per
/// tile, multiplied by four broadcasts: the loop is bound by FMAs, not by loads and stores
/// as element-wise rank-one updates are); tiles start at the vector holding the diagonal,
/// so little below it is computed.
struct GramBlock<'a, T> {
    rows: &'a [T],
    weights: Option<&'a [T]>,
    k: usize,
    out: &'a mut [T],
}

impl<T: TileScalar> pulp::WithSimd for GramBlock<'_, T> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self { rows, weights, k, out } = self;
        out.fill(T::ZERO);
        let lanes = size_of::<T::V<S>>() / size_of::<T>();
        let nv = k / lanes;
        let t0 = nv * lanes;
        // 4 × W accumulators, 4 broadcasts and W loaded vectors: W = 4 fits AVX-512's 32
        // registers, W = 2 the 16 of AVX2.
        let widest = if size_of::<T::V<S>>() >= 64 { 4 } else { 2 };
        for a0 in (0..k).step_by(4) {
            let h = (k - a0).min(4);
            let mut c = a0 / lanes;
            while c < nv {
                let tile = Tile { rows, weights, k, a0, h, c, lanes };
                c = match (nv - c).min(widest) {
                    1 => tile.run::<S, 1>(simd, out),
                    2 => tile.run::<S, 2>(simd, out),
                    3 => tile.run::<S, 3>(simd, out),
                    _ => tile.run::<S, 4>(simd, out),
                };
            }
            if t0 < k {
                for (r, row) in rows.chunks_exact(k).enumerate() {
                    let w = weights.map(|w| w[r]);
                    for i in a0..a0 + h {
                        let ri = w.map_or(row[i], |w| row[i] * w);
                        for (o, &rt) in out[i * k + t0.max(i)..(i + 1) * k].iter_mut().zip(&row[t0.max(i)..]) {
                            *o += ri * rt;
                        }
                    }
                }
            }
        }
    }
}

/// Output rows `a0..a0 + h` (h ≤ 4) × column vectors from `c` of a [`GramBlock`].
#[derive(Clone, Copy)]
struct Tile<'a, T> {
    rows: &'a [T],
    weights: Option<&'a [T]>,
    k: usize,
    a0: usize,
    h: usize,
    c: usize,
    lanes: usize,
}

impl<T: TileScalar> Tile<'_, T> {
    /// Computes `W` vectors of columns; returns the next tile's first vector.
    #[inline(always)]
    fn run<S: pulp::Simd, const W: usize>(self, simd: S, out: &mut [T]) -> usize {
        let Self { rows, weights, k, a0, h, c, lanes } = self;
        let zero = T::splat(simd, T::ZERO);
        let mut acc = [[zero; W]; 4];
        for (r, row) in rows.chunks_exact(k).enumerate() {
            let vr = T::as_simd::<S>(&row[c * lanes..]);
            let w = weights.map(|w| w[r]);
            let b: [T::V<S>; 4] = std::array::from_fn(|i| {
                let x = if i < h { row[a0 + i] } else { T::ZERO };
                T::splat(simd, w.map_or(x, |w| x * w))
            });
            for (acc, &b) in acc.iter_mut().zip(&b) {
                for (a, &v) in acc.iter_mut().zip(&vr[..W]) {
                    *a = T::mul_add(simd, b, v, *a);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(h) {
            let start = (a0 + i) * k + c * lanes;
            T::as_mut_simd::<S>(&mut out[start..start + W * lanes]).copy_from_slice(acc);
        }
        c + W
    }
}

/// Solves `A x = b` for symmetric positive definite `A` (k × k) by Cholesky, in f64.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> bool {
    cholesky_factor(a, k) && {
        cholesky_substitute(a, b, k);
        true
    }
}

/// Factors the SPD `a` (row-major k × k, the lower triangle read) in place into its lower
/// Cholesky factor; `false` when it is not positive definite. The upper triangle is the
/// work space: it holds the columns of the lower triangle as contiguous rows, so the
/// factorisation is axpys down whole columns (left-looking), compiled for the CPU's best
/// instructions, and the factor is copied back into the lower triangle (the upper then
/// holds its transpose). The earlier form, one short dot product with a horizontal sum per
/// entry, was 6.6% of an ALS server's CPU under load.
fn cholesky_factor(a: &mut [f64], k: usize) -> bool {
    pulp::Arch::new().dispatch(Factor { a, k })
}

struct Factor<'a> {
    a: &'a mut [f64],
    k: usize,
}

impl pulp::WithSimd for Factor<'_> {
    type Output = bool;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> bool {
        let Self { a, k } = self;
        // Column j of the lower triangle, rows j.., becomes row j of the upper, columns j...
        for j in 0..k {
            for i in j + 1..k {
                a[j * k + i] = a[i * k + j];
            }
        }
        for j in 0..k {
            let (done, rest) = a.split_at_mut(j * k);
            let done: &[f64] = done;
            let col_j = &mut rest[j..k];
            sub_combination(simd, col_j, j, |p| &done[p * k + j..p * k + k], |p| done[p * k + j]);
            let d = col_j[0];
            if d <= 0.0 || !d.is_finite() {
                return false;
            }
            let d = d.sqrt();
            col_j[0] = d;
            let inv = 1.0 / d;
            col_j[1..].iter_mut().for_each(|x| *x *= inv);
        }
        for j in 0..k {
            for i in j..k {
                a[i * k + j] = a[j * k + i];
            }
        }
        true
    }
}

/// `x −= Σ_{p < m} c(p) · y(p)` (each `y(p)` at least as long as `x`), four terms per pass
/// over `x` in the CPU's vectors: one load and one store of each element per four
/// multiply-adds (one term per pass, left to the auto-vectoriser, made the small Cholesky
/// factorisations and solves of the explanation systems load/store bound).
#[inline(always)]
fn sub_combination<'y, S: pulp::Simd>(
    simd: S,
    x: &mut [f64],
    m: usize,
    y: impl Fn(usize) -> &'y [f64],
    c: impl Fn(usize) -> f64,
) {
    let n = x.len();
    let (xh, xt) = S::as_mut_simd_f64s(x);
    let split = n - xt.len();
    let mut p = 0;
    while p + 4 <= m {
        let cs = [c(p), c(p + 1), c(p + 2), c(p + 3)];
        let ys = [&y(p)[..n], &y(p + 1)[..n], &y(p + 2)[..n], &y(p + 3)[..n]];
        let [v0, v1, v2, v3] = ys.map(|v| S::as_simd_f64s(v).0);
        let [m0, m1, m2, m3] = cs.map(|c| simd.splat_f64s(-c));
        for ((((xv, a), b), d), e) in xh.iter_mut().zip(v0).zip(v1).zip(v2).zip(v3) {
            let acc = simd.mul_add_f64s(m0, *a, *xv);
            let acc = simd.mul_add_f64s(m1, *b, acc);
            let acc = simd.mul_add_f64s(m2, *d, acc);
            *xv = simd.mul_add_f64s(m3, *e, acc);
        }
        for (t, xs) in xt.iter_mut().enumerate() {
            let i = split + t;
            *xs = (-cs[3]).mul_add(
                ys[3][i],
                (-cs[2]).mul_add(ys[2][i], (-cs[1]).mul_add(ys[1][i], (-cs[0]).mul_add(ys[0][i], *xs))),
            );
        }
        p += 4;
    }
    for p in p..m {
        let (cp, yp) = (c(p), &y(p)[..n]);
        let mp = simd.splat_f64s(-cp);
        for (xv, a) in xh.iter_mut().zip(S::as_simd_f64s(yp).0) {
            *xv = simd.mul_add_f64s(mp, *a, *xv);
        }
        for (xs, a) in xt.iter_mut().zip(&yp[split..]) {
            *xs = (-cp).mul_add(*a, *xs);
        }
    }
}

/// [`cholesky_substitute`] for `n` right-hand sides at once, `b` holding them side by side
/// (row-major k × n): each step is four axpys across the right-hand sides at once
/// ([`sub_combination`]), equal to one solve at a time within rounding, compiled for the
/// CPU's best vector instructions.
struct SubstituteMany<'a> {
    l: &'a [f64],
    b: &'a mut [f64],
    k: usize,
    n: usize,
}

impl pulp::WithSimd for SubstituteMany<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self { l, b, k, n } = self;
        for i in 0..k {
            let (done, rest) = b.split_at_mut(i * n);
            let done: &[f64] = done;
            let bi = &mut rest[..n];
            sub_combination(simd, bi, i, |p| &done[p * n..(p + 1) * n], |p| l[i * k + p]);
            let d = l[i * k + i];
            bi.iter_mut().for_each(|x| *x /= d);
        }
        for i in (0..k).rev() {
            let (head, tail) = b.split_at_mut((i + 1) * n);
            let tail: &[f64] = tail;
            let bi = &mut head[i * n..];
            sub_combination(simd, bi, k - i - 1, |q| &tail[q * n..(q + 1) * n], |q| l[(i + 1 + q) * k + i]);
            let d = l[i * k + i];
            bi.iter_mut().for_each(|x| *x /= d);
        }
    }
}

/// Solves `L Lᵀ x = b` in place with the factor from [`cholesky_factor`].
fn cholesky_substitute(l: &[f64], b: &mut [f64], k: usize) {
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= l[i * k + p] * b[p];
        }
        b[i] = s / l[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= l[p * k + i] * b[p];
        }
        b[i] = s / l[i * k + i];
    }
}

/// `a += Σ_j α w_j y_j y_jᵀ` over a history, on the lower triangle and the diagonal (all
/// the Cholesky factor reads), in f64: the history's rows are gathered and widened once,
/// their weighted Gram matrix formed by the register-tiled [`GramBlock`] (rank-one updates
/// of the triangle, one load and one store per multiply-add, were a seventh of an ALS
/// server's CPU under load) and added in transposed: the user's system of
/// [`AlsModel::explain_many`].
fn add_history(a: &mut [f64], model: &AlsModel, history: History<'_>) {
    let k = model.k;
    let mut rows = Vec::with_capacity(history.items.len() * k);
    let mut weights = Vec::with_capacity(history.items.len());
    for (&j, &w) in history.items.iter().zip(history.weights) {
        let Some(yj) = model.item(j) else { continue };
        rows.extend(yj.iter().map(|v| f64::from(*v)));
        weights.push(f64::from(model.params.alpha * w));
    }
    let mut g = vec![0f64; k * k];
    pulp::Arch::new().dispatch(GramBlock { rows: &rows, weights: Some(&weights), k, out: &mut g });
    for p in 0..k {
        for q in p..k {
            a[q * k + p] += g[p * k + q];
        }
    }
}

/// Scratch space for one row solve.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    a64: Vec<f64>,
    b64: Vec<f64>,
    /// The row's factor vectors of the other side, copied together once per solve so that
    /// the CG steps read them from cache instead of gathering random rows again.
    g: Vec<f32>,
    /// `c − 1 = alpha · weight` per column of the row.
    cm1: Vec<f32>,
    /// Per-column coefficients of the current matrix–vector product.
    q: Vec<f32>,
}

impl Scratch {
    fn new(k: usize) -> Self {
        Self {
            r: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            a64: vec![0.0; k * k],
            b64: vec![0.0; k],
            g: Vec::new(),
            cm1: Vec::new(),
            q: Vec::new(),
        }
    }
}

/// Updates `x` (one row's factors) given the other side's factors `y`, the Gram matrix
/// `yty = YᵀY + λI`, and the row's (column, weight) pairs. Always inlined, so that inside
/// [`pulp::Arch::dispatch`] it is compiled for the CPU's best vector instructions (AVX2 on
/// x86-64-v3) while the binary still runs anywhere.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn solve_row<H: Sum4>(
    h: H,
    x: &mut [f32],
    y: &[f32],
    yty: &[f32],
    cols: &[u32],
    weights: &[f32],
    alpha: f32,
    solver: Solver,
    prefetch: Prefetch,
    s: &mut Scratch,
) {
    let k = x.len();
    let simd = h.simd();
    match solver {
        Solver::Cg { steps } => {
            // Gather the row's vectors once: the residual and every CG step read them.
            s.g.clear();
            for (j, &i) in cols.iter().enumerate() {
                if let Some(&ahead) = cols.get(j + Prefetch::AHEAD) {
                    prefetch.rows(y, &[ahead], k);
                }
                s.g.extend_from_slice(&y[i as usize * k..(i as usize + 1) * k]);
            }
            s.cm1.resize(weights.len(), 0.0);
            for (c, &w) in s.cm1.iter_mut().zip(weights) {
                *c = alpha * w;
            }
            // r = b − A x, with b = Σ c y_i and A = YtY + Σ (c − 1) y_i y_iᵀ; YtY is
            // symmetric, so YtY·x is a combination of its rows.
            s.r.iter_mut().for_each(|v| *v = 0.0);
            saccumulate(simd, yty, x, k, &mut s.r);
            s.r.iter_mut().for_each(|v| *v = -*v);
            s.q.resize(s.cm1.len(), 0.0);
            let cm1 = &s.cm1;
            let residual = |j: usize, d: f32| 1.0 + cm1[j] - cm1[j] * d;
            if !fused_dots_accumulate(h, &s.g, x, &mut s.r, residual) {
                sdots(h, &s.g, x, k, &mut s.q, residual);
                saccumulate(simd, &s.g, &s.q, k, &mut s.r);
            }
            s.p.copy_from_slice(&s.r);
            let mut rsold = sdot(simd, &s.r, &s.r);
            if rsold < 1e-20 {
                return;
            }
            for _ in 0..steps {
                s.ap.iter_mut().for_each(|v| *v = 0.0);
                saccumulate(simd, yty, &s.p, k, &mut s.ap);
                let cm1 = &s.cm1;
                let step = |j: usize, d: f32| cm1[j] * d;
                if !fused_dots_accumulate(h, &s.g, &s.p, &mut s.ap, step) {
                    sdots(h, &s.g, &s.p, k, &mut s.q, step);
                    saccumulate(simd, &s.g, &s.q, k, &mut s.ap);
                }
                let pap = sdot(simd, &s.p, &s.ap);
                if pap <= 0.0 || !pap.is_finite() {
                    break;
                }
                let a = rsold / pap;
                for (xv, p) in x.iter_mut().zip(&s.p) {
                    *xv += a * p;
                }
                for (r, ap) in s.r.iter_mut().zip(&s.ap) {
                    *r -= a * ap;
                }
                let rsnew = sdot(simd, &s.r, &s.r);
                if rsnew < 1e-20 {
                    break;
                }
                let beta = rsnew / rsold;
                for (p, r) in s.p.iter_mut().zip(&s.r) {
                    *p = r + beta * *p;
                }
                rsold = rsnew;
            }
        }
        Solver::Cholesky => {
            for (a, v) in s.a64.iter_mut().zip(yty) {
                *a = f64::from(*v);
            }
            s.b64.iter_mut().for_each(|v| *v = 0.0);
            for (&i, &w) in cols.iter().zip(weights) {
                let yi = &y[i as usize * k..(i as usize + 1) * k];
                let c = f64::from(1.0 + alpha * w);
                for a in 0..k {
                    let ya = f64::from(yi[a]);
                    s.b64[a] += c * ya;
                    let row = &mut s.a64[a * k..(a + 1) * k];
                    for (r, yb) in row.iter_mut().zip(yi) {
                        *r += (c - 1.0) * ya * f64::from(*yb);
                    }
                }
            }
            if cholesky_solve(&mut s.a64, &mut s.b64, k) {
                for (xv, b) in x.iter_mut().zip(&s.b64) {
                    *xv = *b as f32;
                }
            }
        }
    }
}

const ROWS_PER_TASK: usize = 64;

/// Rows of the other side a solve will gather, asked of the memory system ahead of time:
/// the gathers are random reads of 256-byte rows (k = 64) from tables larger than the L2
/// cache (12.8 MB of item factors, 51 MB of user factors in the 200k × 50k benchmark),
/// and without prefetching each copy waited for its cache misses (a fifth of the fit's CPU
/// time in `memmove`). A prefetch never faults, so it is safe for any address; pulp's
/// `Sse` token makes the intrinsic callable without `unsafe`.
#[derive(Clone, Copy)]
struct Prefetch {
    #[cfg(target_arch = "x86_64")]
    sse: Option<pulp::core_arch::x86::Sse>,
}

impl Prefetch {
    /// How many rows ahead of the one being gathered are prefetched.
    const AHEAD: usize = 32;

    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            sse: pulp::core_arch::x86::Sse::try_new(),
        }
    }

    /// Prefetches the rows `cols` of `y` (row-major, `k` columns), every cache line of each.
    #[inline(always)]
    fn rows(self, y: &[f32], cols: &[u32], k: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse) = self.sse {
            for &i in cols {
                let Some(row) = y.get(i as usize * k..(i as usize + 1) * k) else { continue };
                for line in row.chunks(16) {
                    sse._mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (y, cols, k);
    }
}

/// A block of rows to solve, as a [`pulp::WithSimd`] operation: `with_simd` is inlined into
/// pulp's `#[target_feature]` entry point, and `solve_row` (with [`sdot`] and [`saccumulate`]) into it,
/// so the whole loop is compiled for AVX2/AVX-512 when the CPU has them.
struct Rows<'a> {
    xs: &'a mut [f32],
    first: usize,
    y: &'a [f32],
    yty: &'a [f32],
    m: &'a Interactions,
    p: &'a AlsParams,
    s: &'a mut Scratch,
}

impl Rows<'_> {
    #[inline(always)]
    fn solve<H: Sum4>(self, h: H) {
        let k = self.s.r.len();
        let ip = self.m.indptr();
        let (idx, data) = (self.m.indices(), self.m.data());
        let prefetch = Prefetch::new();
        let cg = matches!(self.p.solver, Solver::Cg { .. });
        for (r, xu) in self.xs.chunks_exact_mut(k).enumerate() {
            let u = self.first + r;
            let (a, b) = (ip[u], ip[u + 1]);
            if cg && let Some(&next) = ip.get(u + 2) {
                // The next row's first vectors arrive while this one is solved.
                let first = &idx[b..next.min(b + Prefetch::AHEAD)];
                prefetch.rows(self.y, first, k);
            }
            let (cols, weights) = (&idx[a..b], &data[a..b]);
            solve_row(h, xu, self.y, self.yty, cols, weights, self.p.alpha, self.p.solver, prefetch, self.s);
        }
    }
}

impl pulp::WithSimd for Rows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        self.solve(EachSum(simd));
    }
}

/// Solves every row of `x` against `y`, whose Gram matrix `YᵀY + λI` is `yty`: under
/// AVX-512 with [`TransposeSum`], elsewhere with pulp's best instruction set.
pub(crate) fn half_sweep(x: &mut [f32], y: &[f32], yty: &[f32], m: &Interactions, k: usize, p: &AlsParams) {
    let arch = pulp::Arch::new();
    #[cfg(target_arch = "x86_64")]
    let v4 = pulp::x86::V4::try_new();
    x.par_chunks_mut(k * ROWS_PER_TASK).enumerate().for_each_init(
        || Scratch::new(k),
        |s, (block, xs)| {
            let rows = Rows { xs, first: block * ROWS_PER_TASK, y, yty, m, p, s };
            #[cfg(target_arch = "x86_64")]
            if let Some(v4) = v4 {
                return v4.vectorize(
                    #[inline(always)]
                    || rows.solve(TransposeSum(v4)),
                );
            }
            arch.dispatch(rows);
        },
    );
}

impl AlsParams {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        check((1..=1024).contains(&self.factors), "factors", self.factors, "must be in 1..=1024")?;
        check(
            self.regularization >= 0.0 && self.regularization.is_finite(),
            "regularization",
            self.regularization,
            "must be >= 0",
        )?;
        check(self.alpha >= 0.0 && self.alpha.is_finite(), "alpha", self.alpha, "must be >= 0")?;
        if let Solver::Cg { steps } = self.solver {
            check(steps >= 1, "cg_steps", steps, "must be at least 1")?;
        }
        Ok(())
    }

    /// Trains on the user × item matrix; `each_iteration(iteration, &model)` is called after
    /// every full sweep (for training curves and early stopping: return `false` to stop).
    pub fn fit_with(
        &self,
        m: &Interactions,
        mut each_iteration: impl FnMut(usize, &AlsModel) -> bool,
    ) -> Result<AlsModel> {
        self.validate()?;
        if m.data().iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(RecommendError::InvalidData("interaction weights must be finite and >= 0".into()));
        }
        let k = self.factors;
        let mut rng = Rng::new(self.seed);
        let scale = 0.01;
        let mut user_factors: Vec<f32> = (0..m.n_users() * k).map(|_| (rng.normal() * scale) as f32).collect();
        let mut item_factors: Vec<f32> = (0..m.n_items() * k).map(|_| (rng.normal() * scale) as f32).collect();
        let mt = m.transpose();
        let mut model =
            AlsModel { params: self.clone(), k, user_factors: Vec::new(), item_factors: Vec::new(), yty: Vec::new() };
        // The item Gram matrix serves the next user half-sweep and the model's fold-in alike.
        let reg = self.regularization;
        let mut item_gram = gram(&item_factors, k, reg);
        for it in 0..self.iterations {
            half_sweep(&mut user_factors, &item_factors, &item_gram, m, k, self);
            let user_gram = gram(&user_factors, k, reg);
            half_sweep(&mut item_factors, &user_factors, &user_gram, &mt, k, self);
            model.user_factors = std::mem::take(&mut user_factors);
            model.item_factors = std::mem::take(&mut item_factors);
            model.yty = gram(&model.item_factors, k, reg);
            let go_on = each_iteration(it + 1, &model);
            user_factors = std::mem::take(&mut model.user_factors);
            item_factors = std::mem::take(&mut model.item_factors);
            item_gram = std::mem::take(&mut model.yty);
            if !go_on {
                break;
            }
        }
        model.yty = item_gram;
        model.user_factors = user_factors;
        model.item_factors = item_factors;
        Ok(model)
    }

    /// Parameters from `key=value` pairs (factors, regularization, alpha, iterations,
    /// solver=cg|cholesky, cg_steps, seed), removing the keys it uses; unset keys keep their
    /// defaults. The error names the key and value.
    pub fn from_pairs(p: &mut std::collections::HashMap<String, String>) -> std::result::Result<Self, String> {
        use crate::error::take_param as take;
        let d = Self::default();
        let solver = match p.remove("solver").as_deref() {
            None | Some("cg") => Solver::Cg { steps: take(p, "cg_steps", 3)? },
            Some("cholesky") => Solver::Cholesky,
            Some(other) => return Err(format!("solver={other}: expected cg or cholesky")),
        };
        let params = Self {
            factors: take(p, "factors", d.factors)?,
            regularization: take(p, "regularization", d.regularization)?,
            alpha: take(p, "alpha", d.alpha)?,
            iterations: take(p, "iterations", d.iterations)?,
            solver,
            seed: take(p, "seed", d.seed)?,
        };
        params.validate().map_err(|e| e.to_string())?;
        Ok(params)
    }

    /// Trains on the user × item matrix.
    pub fn fit(&self, m: &Interactions) -> Result<AlsModel> {
        self.fit_with(m, |_, _| true)
    }
}

/// Scores every item against one user vector inside pulp's SIMD dispatch.
struct ScoreAll<'a> {
    x: &'a [f32],
    items: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for ScoreAll<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let k = self.x.len().max(1);
        for (o, yi) in self.out.iter_mut().zip(self.items.chunks_exact(k)) {
            *o = sdot(simd, self.x, yi);
        }
    }
}

impl AlsModel {
    /// A model from given factors (row-major, `k` per row), e.g. loaded from elsewhere.
    pub fn from_factors(params: AlsParams, user_factors: Vec<f32>, item_factors: Vec<f32>) -> Result<Self> {
        let k = params.factors;
        if k == 0 || !user_factors.len().is_multiple_of(k) || !item_factors.len().is_multiple_of(k) {
            return Err(RecommendError::InvalidData(format!("factor arrays are not rows of {k}")));
        }
        let yty = gram(&item_factors, k, params.regularization);
        Ok(Self { params, k, user_factors, item_factors, yty })
    }

    /// The user's factors computed from their history alone (fold-in): one exact solve
    /// against the trained item factors, as a full sweep would give them.
    pub fn fold_in(&self, history: History<'_>) -> Vec<f32> {
        let k = self.k;
        let mut x = vec![0f32; k];
        let mut s = Scratch::new(k);
        solve_row(
            EachSum(pulp::Scalar::new()),
            &mut x,
            &self.item_factors,
            &self.yty,
            history.items,
            history.weights,
            self.params.alpha,
            Solver::Cholesky,
            Prefetch::new(),
            &mut s,
        );
        x
    }

    /// Factors of training user `u`.
    pub fn user(&self, u: u32) -> Option<&[f32]> {
        self.user_factors.get(u as usize * self.k..(u as usize + 1) * self.k)
    }

    /// Factors of item `i`.
    pub fn item(&self, i: u32) -> Option<&[f32]> {
        self.item_factors.get(i as usize * self.k..(i as usize + 1) * self.k)
    }

    /// How much each history item contributes to the score of `item` (Hu et al. §5: the
    /// score is `Σ_j s_ij c_uj` with `s = y_iᵀ W_u y_j`, `W_u = (YᵀC_uY + λI)⁻¹`), largest
    /// first.
    pub fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        self.explain_many(history, &[item]).pop().unwrap_or_default()
    }

    /// [`AlsModel::explain`] for several items of one user: the user's system is factored
    /// once and each item costs two triangular solves (what a served list of 10 needs).
    pub fn explain_many(&self, history: History<'_>, items: &[u32]) -> Vec<Vec<(u32, f32)>> {
        self.contributions(history, items, |mut v| {
            crate::topk::best_first(&mut v);
            v
        })
    }

    /// The history item contributing most to each of `items` (the first of
    /// [`AlsModel::explain_many`]'s lists, ties to the smaller index), without sorting the
    /// rest: what a served list's "Because you viewed X" needs.
    pub fn best_reasons(&self, history: History<'_>, items: &[u32]) -> Vec<Option<(u32, f32)>> {
        self.contributions(history, items, |v| {
            v.into_iter().reduce(|b, c| if c.1.total_cmp(&b.1).then(b.0.cmp(&c.0)).is_gt() { c } else { b })
        })
    }

    /// Each history item's contribution to each of `items`, handed to `each` per item
    /// (empty for an item the model does not know or a system that is not positive
    /// definite).
    fn contributions<T>(&self, history: History<'_>, items: &[u32], each: impl Fn(Vec<(u32, f32)>) -> T) -> Vec<T> {
        let k = self.k;
        let mut a: Vec<f64> = self.yty.iter().map(|v| f64::from(*v)).collect();
        add_history(&mut a, self, history);
        if !cholesky_factor(&mut a, k) {
            return items.iter().map(|_| each(Vec::new())).collect();
        }
        // W_u y_i for every item at once: the right-hand sides side by side (k × n, row-major,
        // n padded to whole 8-lane vectors with zero columns), so the triangular solves are
        // axpys across the items, vectorised (one item after another was a scalar loop, a
        // quarter of a served ALS list's CPU time).
        let n = items.len().div_ceil(8) * 8;
        let mut rhs = vec![0f64; k * n];
        for (c, &item) in items.iter().enumerate() {
            for (t, v) in self.item(item).into_iter().flatten().enumerate() {
                rhs[t * n + c] = f64::from(*v);
            }
        }
        pulp::Arch::new().dispatch(SubstituteMany { l: &a, b: &mut rhs, k, n });
        items
            .iter()
            .enumerate()
            .map(|(c, &item)| {
                if self.item(item).is_none() {
                    return each(Vec::new());
                }
                let wy: Vec<f32> = (0..k).map(|t| rhs[t * n + c] as f32).collect();
                let v: Vec<(u32, f32)> = history
                    .items
                    .iter()
                    .zip(history.weights)
                    .filter_map(|(&j, &w)| self.item(j).map(|yj| (j, dot(&wy, yj) * (1.0 + self.params.alpha * w))))
                    .collect();
                each(v)
            })
            .collect()
    }
}

impl Model for AlsModel {
    fn name(&self) -> &'static str {
        "als"
    }

    fn n_items(&self) -> usize {
        self.item_factors.len() / self.k.max(1)
    }

    fn recommend_batch(&self, users: &[(Option<u32>, History<'_>)], k: usize, filter: &Filter) -> Vec<Vec<(u32, f32)>> {
        crate::factor_batch(
            crate::ItemFactors { items: &self.item_factors, bias: None, k: self.k },
            users,
            |u| self.user(u),
            k,
            filter,
            |u, h| self.recommend(u, h, k, filter),
        )
    }

    fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        crate::cosine_neighbours(&self.item_factors, self.k, item, k)
    }

    fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        AlsModel::explain(self, history, item)
    }

    fn score(&self, user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        let folded;
        let x = match user.and_then(|u| self.user(u)) {
            Some(x) => x,
            None => {
                folded = self.fold_in(history);
                &folded
            }
        };
        pulp::Arch::new().dispatch(ScoreAll { x, items: &self.item_factors, out });
    }
}

/// `factors=64,iterations=15,...` (the keys of [`AlsParams::from_pairs`]; empty: defaults),
/// as `serve.als_params` writes it. Unknown keys are refused.
impl std::str::FromStr for AlsParams {
    type Err = String;

    fn from_str(spec: &str) -> std::result::Result<Self, String> {
        let mut pairs = std::collections::HashMap::new();
        for kv in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| format!("{kv:?} is not key=value"))?;
            pairs.insert(k.trim().to_string(), v.trim().to_string());
        }
        let p = Self::from_pairs(&mut pairs)?;
        match pairs.keys().next() {
            Some(k) => Err(format!(
                "unknown key {k:?} (expected factors, regularization, alpha, iterations, solver, cg_steps, seed)"
            )),
            None => Ok(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Just, any, prop_assert, prop_oneof, proptest};
    use tailor_core::rng::Rng;

    /// Runs both SIMD kernels under the CPU's best instructions.
    struct Kernels<'a> {
        a: &'a [f32],
        rows: &'a [f32],
        coef: &'a [f32],
        k: usize,
    }

    impl pulp::WithSimd for Kernels<'_> {
        type Output = (f32, Vec<f32>, Vec<f32>, Vec<f32>);

        fn with_simd<S: pulp::Simd>(self, simd: S) -> Self::Output {
            let d = sdot(simd, self.a, &self.rows[..self.k]);
            let mut out = self.a.to_vec();
            saccumulate(simd, self.rows, self.coef, self.k, &mut out);
            let n = self.rows.len() / self.k;
            let mut dots = vec![0.0; n];
            sdots(EachSum(simd), self.rows, self.a, self.k, &mut dots, |j, d| d * self.coef[j]);
            let one_by_one = self.rows.chunks_exact(self.k).zip(self.coef).map(|(r, c)| sdot(simd, r, self.a) * c);
            (d, out, dots, one_by_one.collect())
        }
    }

    /// The fused one-pass kernel and the two passes it replaces, under the CPU's best
    /// instructions (and AVX-512's transposed sums where the CPU has them).
    struct Fused<'a> {
        rows: &'a [f32],
        b: &'a [f32],
        coef: &'a [f32],
    }

    impl pulp::WithSimd for Fused<'_> {
        /// (lanes, whether the fused kernel ran, its result, the two passes' result)
        type Output = (usize, bool, Vec<f32>, Vec<f32>);

        fn with_simd<S: pulp::Simd>(self, simd: S) -> Self::Output {
            let k = self.b.len();
            let f = |j: usize, d: f32| 1.0 + self.coef[j] * d;
            let mut two = self.b.to_vec();
            let mut q = vec![0.0; self.coef.len()];
            sdots(EachSum(simd), self.rows, self.b, k, &mut q, f);
            saccumulate(simd, self.rows, &q, k, &mut two);
            let mut one = self.b.to_vec();
            let ran = fused_dots_accumulate(EachSum(simd), self.rows, self.b, &mut one, f);
            #[cfg(target_arch = "x86_64")]
            if let Some(v4) = pulp::x86::V4::try_new() {
                let mut wide = self.b.to_vec();
                if v4.vectorize(|| fused_dots_accumulate(TransposeSum(v4), self.rows, self.b, &mut wide, f)) {
                    assert!(
                        wide.iter().zip(&two).all(|(w, t)| (w - t).abs() <= 1e-3 * (1.0 + t.abs())),
                        "{wide:?} vs {two:?}"
                    );
                }
            }
            (size_of::<S::f32s>() / size_of::<f32>(), ran, one, two)
        }
    }

    proptest! {
        #[test]
        fn cholesky_factor_reproduces_the_matrix_and_the_textbook_factor(
            k in prop_oneof![Just(1usize), Just(8), Just(64), 2usize..80],
            seed in any::<u64>(),
            garbage_above in any::<bool>(),
        ) {
            let mut rng = Rng::new(seed);
            // A = B Bᵀ + I: symmetric positive definite, as the explanation systems are.
            let bm: Vec<f64> = (0..k * k).map(|_| rng.normal()).collect();
            let mut a = vec![0f64; k * k];
            for i in 0..k {
                for j in 0..k {
                    a[i * k + j] = (0..k).map(|t| bm[i * k + t] * bm[j * k + t]).sum::<f64>() + f64::from(u8::from(i == j));
                }
            }
            // Only the lower triangle is read: the upper may hold anything.
            let mut work = a.clone();
            if garbage_above {
                for i in 0..k {
                    for j in i + 1..k {
                        work[i * k + j] = f64::NAN;
                    }
                }
            }
            prop_assert!(cholesky_factor(&mut work, k));
            // The textbook (Cholesky–Banachiewicz) factor, entry by entry.
            let mut want = vec![0f64; k * k];
            for i in 0..k {
                for j in 0..=i {
                    let s: f64 = (0..j).map(|p| want[i * k + p] * want[j * k + p]).sum();
                    want[i * k + j] = if i == j { (a[i * k + i] - s).sqrt() } else { (a[i * k + j] - s) / want[j * k + j] };
                }
            }
            let scale = a.iter().fold(1f64, |m, v| m.max(v.abs())).sqrt();
            for i in 0..k {
                for j in 0..=i {
                    let (got, w) = (work[i * k + j], want[i * k + j]);
                    prop_assert!((got - w).abs() <= 1e-9 * scale, "L[{i}][{j}] {got} vs {w}");
                }
            }
            // L Lᵀ = A.
            for i in 0..k {
                for j in 0..=i {
                    let r: f64 = (0..=j).map(|p| work[i * k + p] * work[j * k + p]).sum();
                    prop_assert!((r - a[i * k + j]).abs() <= 1e-9 * scale * scale, "(LLᵀ)[{i}][{j}] {r} vs {}", a[i * k + j]);
                }
            }
            // Not positive definite: refused, whichever pivot fails.
            let mut bad = a.clone();
            let at = (seed as usize) % k;
            bad[at * k + at] = -1e6 * scale * scale;
            prop_assert!(!cholesky_factor(&mut bad, k));
        }

        #[test]
        fn fused_dots_and_accumulate_equal_the_two_passes(
            k in prop_oneof![Just(16usize), Just(32), Just(48), Just(64), Just(8), Just(24), 1usize..100],
            n in 0usize..23,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let b: Vec<f32> = (0..k).map(|_| rng.normal() as f32).collect();
            let rows: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
            let coef: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let (lanes, ran, one, two) = pulp::Arch::new().dispatch(Fused { rows: &rows, b: &b, coef: &coef });
            prop_assert!(ran == (k.is_multiple_of(lanes) && k / lanes <= 4), "k {k}, {lanes} lanes: ran {ran}");
            if ran {
                for (c, (o, t)) in one.iter().zip(&two).enumerate() {
                    prop_assert!((o - t).abs() <= 1e-3 * (1.0 + t.abs()), "col {c}: {o} vs {t}");
                }
            } else {
                prop_assert!(one == b, "a kernel that did not run leaves its output alone");
            }
        }

        #[test]
        fn simd_kernels_equal_the_naive_loops(
            k in 1usize..150,
            n in 1usize..11,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let a: Vec<f32> = (0..k).map(|_| rng.normal() as f32).collect();
            let rows: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
            let coef: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let (d, out, dots, one_by_one) = pulp::Arch::new().dispatch(Kernels { a: &a, rows: &rows, coef: &coef, k });
            // Four rows at a time sum in the same order as one at a time: equal bits.
            prop_assert!(dots == one_by_one, "{dots:?} vs {one_by_one:?}");
            // AVX-512's transposed sums add in another order: equal within rounding.
            #[cfg(target_arch = "x86_64")]
            if let Some(v4) = pulp::x86::V4::try_new() {
                let mut fast = vec![0.0; n];
                v4.vectorize(|| sdots(TransposeSum(v4), &rows, &a, k, &mut fast, |j, d| d * coef[j]));
                for (j, (f, o)) in fast.iter().zip(&one_by_one).enumerate() {
                    let scale: f32 = a.iter().zip(&rows[j * k..(j + 1) * k]).map(|(x, y)| (x * y).abs()).sum();
                    prop_assert!((f - o).abs() <= 1e-5 * (1.0 + scale * coef[j].abs()), "row {j}: {f} vs {o}");
                }
            }
            let naive_d: f32 = a.iter().zip(&rows[..k]).map(|(x, y)| x * y).sum();
            prop_assert!((d - naive_d).abs() <= 1e-4 * (1.0 + naive_d.abs()), "{d} vs {naive_d}");
            for c in 0..k {
                let want = a[c] + (0..n).map(|j| coef[j] * rows[j * k + c]).sum::<f32>();
                prop_assert!((out[c] - want).abs() <= 1e-4 * (1.0 + want.abs()), "col {c}: {} vs {want}", out[c]);
            }
            prop_assert!((dot(&a, &rows[..k]) - naive_d).abs() <= 1e-4 * (1.0 + naive_d.abs()));
        }

        #[test]
        fn explanations_of_many_items_equal_one_solve_each(
            k in 1usize..40,
            items in 2usize..30,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let params = AlsParams { factors: k, ..AlsParams::default() };
            let y: Vec<f32> = (0..items * k).map(|_| rng.normal() as f32).collect();
            let m = AlsModel::from_factors(params, vec![0.0; k], y).expect("model");
            let hist: Vec<u32> = (0..items as u32).filter(|i| i % 3 == 0).collect();
            let weights: Vec<f32> = hist.iter().map(|_| 1.0 + rng.f64() as f32).collect();
            let history = History { items: &hist, weights: &weights, recency: None };
            let targets: Vec<u32> = (0..items as u32).filter(|i| i % 2 == 1).chain([items as u32 + 5]).collect();
            let many = m.explain_many(history, &targets);
            let best = m.best_reasons(history, &targets);
            for (b, l) in best.iter().zip(&many) {
                prop_assert!(b.as_ref() == l.first(), "{b:?} vs {:?}", l.first());
            }
            // One right-hand side at a time, as before the batched solves.
            let mut a: Vec<f64> = m.yty.iter().map(|v| f64::from(*v)).collect();
            add_history(&mut a, &m, history);
            prop_assert!(cholesky_factor(&mut a, k));
            for (&t, got) in targets.iter().zip(&many) {
                let Some(yt) = m.item(t) else {
                    prop_assert!(got.is_empty(), "an unknown item has no reasons");
                    continue;
                };
                let mut b: Vec<f64> = yt.iter().map(|v| f64::from(*v)).collect();
                cholesky_substitute(&a, &mut b, k);
                let wy: Vec<f32> = b.iter().map(|v| *v as f32).collect();
                let mut want: Vec<(u32, f32)> = hist
                    .iter()
                    .zip(&weights)
                    .map(|(&j, &w)| (j, dot(&wy, m.item(j).expect("known")) * (1.0 + m.params.alpha * w)))
                    .collect();
                crate::topk::best_first(&mut want);
                prop_assert!(got == &want, "item {t}: {got:?} vs {want:?}");
            }
        }

        #[test]
        fn a_users_system_equals_the_rank_one_updates(
            k in 1usize..70,
            items in 1usize..40,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let params = AlsParams { factors: k, ..AlsParams::default() };
            let y: Vec<f32> = (0..items * k).map(|_| rng.normal() as f32).collect();
            let m = AlsModel::from_factors(params, vec![0.0; k], y).expect("model");
            // Every other item, and one the model does not know (skipped).
            let hist: Vec<u32> = (0..items as u32).step_by(2).chain([items as u32 + 3]).collect();
            let weights: Vec<f32> = hist.iter().map(|_| 1.0 + rng.f64() as f32).collect();
            let history = History { items: &hist, weights: &weights, recency: None };
            let mut a: Vec<f64> = m.yty.iter().map(|v| f64::from(*v)).collect();
            add_history(&mut a, &m, history);
            for p in 0..k {
                for q in 0..=p {
                    let terms: Vec<f64> = hist
                        .iter()
                        .zip(&weights)
                        .filter_map(|(&j, &w)| {
                            let yj = m.item(j)?;
                            Some(f64::from(m.params.alpha * w) * f64::from(yj[p]) * f64::from(yj[q]))
                        })
                        .collect();
                    let want = f64::from(m.yty[p * k + q]) + terms.iter().sum::<f64>();
                    let scale = 1.0 + terms.iter().map(|t| t.abs()).sum::<f64>();
                    let got = a[p * k + q];
                    prop_assert!((got - want).abs() <= 1e-12 * scale, "({p}, {q}): {got} vs {want}");
                }
            }
        }

        #[test]
        fn gram_equals_the_naive_sum_in_f64(
            k in 1usize..70,
            n in 0usize..1200,
            reg in 0f32..2.0,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let y: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
            let g = gram(&y, k, reg);
            prop_assert!(g.len() == k * k);
            for a in 0..k {
                for b in 0..k {
                    let terms = (0..n).map(|r| f64::from(y[r * k + a]) * f64::from(y[r * k + b]));
                    let want = terms.clone().sum::<f64>() + if a == b { f64::from(reg) } else { 0.0 };
                    // f32 products summed in f32 within a block: the error scales with the
                    // magnitude of the terms, not of their (possibly cancelling) sum.
                    let scale = 1.0 + terms.map(f64::abs).sum::<f64>();
                    let got = f64::from(g[a * k + b]);
                    prop_assert!((got - want).abs() <= 1e-5 * scale, "({a}, {b}): {got} vs {want}");
                    prop_assert!(g[a * k + b] == g[b * k + a]);
                }
            }
        }
    }
}
