//! Calibrated recommendations (Steck 2018, "Calibrated Recommendations", RecSys): re-rank a
//! candidate list so that its genre (category) mix follows the user's history.
//!
//! - p(g|u): the genre distribution of the user's history, each history item weighted
//!   equally and spreading its unit over its genres (p(g|i) = 1 / |genres(i)|),
//! - q(g|I): the same over a list I,
//! - miscalibration C_KL(p, q) = Σ_g p(g|u) ln(p(g|u) / q̃(g|I)) with q̃ = (1 − α) q + α p,
//!   α = 0.01 (so that a genre missing from the list costs a finite amount),
//! - the list maximises (1 − λ) Σ_{i∈I} s(i) − λ C_KL(p, q(I)), built greedily one item at a
//!   time, where s are the candidates' scores scaled to [0, 1] over the candidate pool (so
//!   that λ means the same whatever the model's score scale). λ = 0 keeps the score order.

/// Steck's α: the share of p mixed into q.
pub const ALPHA: f64 = 0.01;

/// Where calibration reads an item's genres (dense ids).
pub trait GenreOf {
    /// The genres of `item` (empty: none known).
    fn genres_of(&self, item: u32) -> &[u32];
}

/// Every item's one top-level category as its genre (the serving catalog's).
pub struct OneGenre<'a>(pub &'a [Option<u32>]);

impl GenreOf for OneGenre<'_> {
    fn genres_of(&self, item: u32) -> &[u32] {
        match self.0.get(item as usize) {
            Some(Some(c)) => std::slice::from_ref(c),
            _ => &[],
        }
    }
}

/// Adds `item`'s genre distribution to `mass` (genres beyond it are left out: they carry no
/// weight of p, so they change only the count); whether it has any genre.
fn add(genres: &(impl GenreOf + ?Sized), item: u32, mass: &mut [f64]) -> bool {
    let g = genres.genres_of(item);
    if g.is_empty() {
        return false;
    }
    let share = 1.0 / g.len() as f64;
    for &x in g {
        if let Some(m) = mass.get_mut(x as usize) {
            *m += share;
        }
    }
    true
}

/// The genre distribution (over `n` genres) of `items`, each weighing the same; items
/// without genres are left out; all zeros when none has one.
pub fn distribution(genres: &(impl GenreOf + ?Sized), n: usize, items: impl IntoIterator<Item = u32>) -> Vec<f64> {
    let mut mass = vec![0.0; n];
    let mut count = 0usize;
    for i in items {
        count += usize::from(add(genres, i, &mut mass));
    }
    if count > 0 {
        for m in &mut mass {
            *m /= count as f64;
        }
    }
    mass
}

/// Genres of each item (dense genre ids), in item order.
#[derive(Debug, Clone, Default)]
pub struct Genres {
    offsets: Vec<u32>,
    ids: Vec<u32>,
    /// Number of distinct genres.
    pub n: usize,
}

impl Genres {
    /// From each item's genre ids (`per_item[i]`, any order, duplicates ignored).
    pub fn new(per_item: &[Vec<u32>]) -> Self {
        let mut offsets = Vec::with_capacity(per_item.len() + 1);
        let mut ids = Vec::new();
        let mut n = 0;
        offsets.push(0);
        for g in per_item {
            let mut g = g.clone();
            g.sort_unstable();
            g.dedup();
            n = n.max(g.last().map_or(0, |x| *x as usize + 1));
            ids.extend(g);
            offsets.push(ids.len() as u32);
        }
        Self { offsets, ids, n }
    }

    /// The genres of `item` (empty for items beyond the table or without any).
    pub fn of(&self, item: u32) -> &[u32] {
        let i = item as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.ids[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The genre distribution of `items` over this table's genres ([`distribution`]).
    pub fn distribution(&self, items: impl IntoIterator<Item = u32>) -> Vec<f64> {
        distribution(self, self.n, items)
    }
}

impl GenreOf for Genres {
    fn genres_of(&self, item: u32) -> &[u32] {
        self.of(item)
    }
}

/// C_KL(p, q) with Steck's smoothing; 0 when p is all zeros (nothing to calibrate to).
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).filter(|(p, _)| **p > 0.0).map(|(&p, &q)| p * (p / ((1.0 - ALPHA) * q + ALPHA * p)).ln()).sum()
}

/// Miscalibration of `list` for a user whose history has the genre distribution `p`.
pub fn miscalibration(genres: &(impl GenreOf + ?Sized), p: &[f64], list: &[u32]) -> f64 {
    kl(p, &distribution(genres, p.len(), list.iter().copied()))
}

/// The `k` candidates (item, score; any order) re-ranked for calibration to `p` with weight
/// `lambda` in [0, 1] (p over the genres `genres` names; higher ids are ignored); scores
/// are returned unchanged.
pub fn calibrate(
    candidates: &[(u32, f32)],
    k: usize,
    lambda: f64,
    genres: &(impl GenreOf + ?Sized),
    p: &[f64],
) -> Vec<(u32, f32)> {
    let mut left: Vec<(u32, f32)> = candidates.to_vec();
    left.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let k = k.min(left.len());
    if lambda <= 0.0 || p.iter().all(|x| *x == 0.0) {
        left.truncate(k);
        return left;
    }
    let (lo, hi) = left.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), c| (l.min(c.1), h.max(c.1)));
    let span = f64::from(hi - lo);
    let scaled = |s: f32| if span > 0.0 { f64::from(s - lo) / span } else { 1.0 };
    let mut picked = Vec::with_capacity(k);
    // Genre mass of the picked items with genres, and their count.
    let mut mass = vec![0.0; p.len()];
    let mut with_genres = 0usize;
    let mut trial = vec![0.0; p.len()];
    while picked.len() < k {
        let mut best = (f64::NEG_INFINITY, 0usize);
        for (pos, &(item, score)) in left.iter().enumerate() {
            // KL of the list with `item` added: q = (mass + p(·|item)) / count.
            trial.copy_from_slice(&mass);
            let has = add(genres, item, &mut trial);
            let count = with_genres + usize::from(has);
            let divergence = if count == 0 {
                kl(p, &vec![0.0; p.len()])
            } else {
                let inv = 1.0 / count as f64;
                p.iter()
                    .zip(&trial)
                    .filter(|(p, _)| **p > 0.0)
                    .map(|(&p, &m)| p * (p / ((1.0 - ALPHA) * m * inv + ALPHA * p)).ln())
                    .sum()
            };
            // The picked items' scores are common to every choice: only this one's counts.
            let value = (1.0 - lambda) * scaled(score) - lambda * divergence;
            if value > best.0 {
                best = (value, pos);
            }
        }
        let chosen = left.remove(best.1);
        if add(genres, chosen.0, &mut mass) {
            with_genres += 1;
        }
        picked.push(chosen);
    }
    picked
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn table() -> Genres {
        // Items 0-3: genre 0; 4-7: genre 1; 8: genres 0 and 2; 9: none.
        let mut g: Vec<Vec<u32>> = (0..8).map(|i| vec![if i < 4 { 0 } else { 1 }]).collect();
        g.push(vec![2, 0]);
        g.push(vec![]);
        Genres::new(&g)
    }

    #[test]
    fn distributions_and_divergence_by_hand() {
        let g = table();
        assert_eq!(g.n, 3);
        assert_eq!(g.of(8), &[0, 2]);
        assert!(g.of(99).is_empty());
        assert_eq!(g.distribution([0, 4, 8, 9]), vec![0.5, 1.0 / 3.0, 1.0 / 6.0]);
        let p = [0.5, 0.5, 0.0];
        // q = p: nothing to pay; q missing genre 1: 0.5 ln(0.5 / 0.005) = 0.5 ln 100.
        assert!(kl(&p, &p).abs() < 1e-15);
        assert!((kl(&p, &[1.0, 0.0, 0.0]) - (0.5 * (0.5f64 / 0.995).ln() + 0.5 * 100f64.ln())).abs() < 1e-12);
        assert_eq!(kl(&[0.0; 3], &[1.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn a_one_genre_list_becomes_the_historys_mix() {
        let g = table();
        // Scores favour genre 0; the history is half genre 1.
        let cands: Vec<(u32, f32)> = (0..8).map(|i| (i, if i < 4 { 1.0 - i as f32 * 0.01 } else { 0.5 })).collect();
        let p = [0.5, 0.5, 0.0];
        let plain: Vec<u32> = calibrate(&cands, 4, 0.0, &g, &p).iter().map(|c| c.0).collect();
        assert_eq!(plain, vec![0, 1, 2, 3]);
        let fair: Vec<u32> = calibrate(&cands, 4, 0.9, &g, &p).iter().map(|c| c.0).collect();
        let genre1 = fair.iter().filter(|&&i| (4..8).contains(&i)).count();
        assert_eq!(genre1, 2, "{fair:?}");
        assert!(miscalibration(&g, &p, &fair) < miscalibration(&g, &p, &plain));
    }

    proptest! {
        #[test]
        fn calibrated_lists_are_distinct_candidates_and_lambda_zero_is_the_score_order(
            scores in prop::collection::vec(0.0f32..10.0, 0..30),
            k in 0usize..12,
            lambda in 0.0f64..1.0,
            history in prop::collection::vec(0u32..10, 0..8),
        ) {
            let g = table();
            // Items from 10 on have no genre.
            let cands: Vec<(u32, f32)> = scores.iter().enumerate().map(|(i, s)| (i as u32, *s)).collect();
            let p = g.distribution(history.iter().copied());
            let out = calibrate(&cands, k, lambda, &g, &p);
            prop_assert_eq!(out.len(), k.min(cands.len()));
            let mut ids: Vec<u32> = out.iter().map(|c| c.0).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), out.len());
            prop_assert!(out.iter().all(|c| cands.contains(c)));
            let mut by_score = cands.clone();
            by_score.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            by_score.truncate(k);
            prop_assert_eq!(calibrate(&cands, k, 0.0, &g, &p), by_score);
            // The first pick at λ near 1 is the single item closest to the history's mix.
            if let Some(first) = calibrate(&cands, 1, 0.999_999, &g, &p).first()
                && p.iter().any(|x| *x > 0.0)
            {
                let best = cands.iter().map(|c| miscalibration(&g, &p, &[c.0])).fold(f64::INFINITY, f64::min);
                prop_assert!(miscalibration(&g, &p, &[first.0]) <= best + 1e-5);
            }
        }
    }
}
