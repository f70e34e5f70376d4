//! Popularity: items ranked by how many users interacted with them (weights ignored), the
//! fallback that answers for anyone; and trending: the same count with each interaction
//! decayed by its age, so what is rising now outranks what was popular long ago.

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::{History, Model};

/// Item popularity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Popularity {
    /// Users per item.
    pub counts: Vec<f32>,
}

impl Popularity {
    /// Popularity among some users only (a segment's members, a demographic group): counts
    /// of the rows of users for which `member(user)` holds.
    pub fn fit_users(m: &Interactions, member: impl Fn(u32) -> bool) -> Self {
        let mut counts = vec![0f32; m.n_items()];
        let ip = m.indptr();
        for u in 0..m.n_users() {
            if member(u as u32) {
                for &i in &m.indices()[ip[u]..ip[u + 1]] {
                    counts[i as usize] += 1.0;
                }
            }
        }
        Self { counts }
    }

    /// Counts the users of every item.
    pub fn fit(m: &Interactions) -> Self {
        let mut counts = vec![0f32; m.n_items()];
        for &i in m.indices() {
            counts[i as usize] += 1.0;
        }
        Self { counts }
    }
}

/// Trending: `Σ 0.5^(age / half_life)` per item over its stored pairs, ages measured to `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trending {
    /// Decayed counts per item.
    pub scores: Vec<f32>,
    /// Half-life in the unit of the timestamps (e.g. seconds).
    pub half_life: f64,
}

impl Trending {
    /// `times[p]` is the time of the `p`-th stored pair of `m` (aligned with its values).
    pub fn fit(m: &Interactions, times: &[f64], now: f64, half_life: f64) -> crate::Result<Self> {
        crate::error::check(half_life > 0.0 && half_life.is_finite(), "half_life", half_life, "must be > 0")?;
        let mut scores = vec![0f32; m.n_items()];
        for (p, &i) in m.indices().iter().enumerate() {
            let age = (now - times.get(p).copied().unwrap_or(now)).max(0.0);
            scores[i as usize] += 0.5f64.powf(age / half_life) as f32;
        }
        Ok(Self { scores, half_life })
    }
}

impl Model for Trending {
    fn name(&self) -> &'static str {
        "trending"
    }

    fn n_items(&self) -> usize {
        self.scores.len()
    }

    fn similar_items(&self, _item: u32, _k: usize) -> Vec<(u32, f32)> {
        Vec::new()
    }

    fn explain(&self, _history: History<'_>, _item: u32) -> Vec<(u32, f32)> {
        Vec::new()
    }

    fn score(&self, _user: Option<u32>, _history: History<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
}

impl Model for Popularity {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn similar_items(&self, _item: u32, _k: usize) -> Vec<(u32, f32)> {
        Vec::new()
    }

    fn explain(&self, _history: History<'_>, _item: u32) -> Vec<(u32, f32)> {
        Vec::new()
    }

    fn score(&self, _user: Option<u32>, _history: History<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trending_prefers_recent_interactions() {
        // Item 0: three users long ago; item 1: two users just now.
        let m = Interactions::from_csr(3, 2, vec![0, 2, 3, 4], vec![0, 1, 0, 0], vec![1.0; 4]).expect("csr");
        let times = [0.0, 100.0, 0.0, 0.0];
        let p = Popularity::fit(&m);
        assert_eq!(p.counts, vec![3.0, 1.0]);
        let t = Trending::fit(&m, &times, 100.0, 10.0).expect("fits");
        assert!(t.scores[1] > t.scores[0], "{:?}", t.scores);
        assert!((t.scores[1] - 1.0).abs() < 1e-6 && (t.scores[0] - 3.0 * 0.5f32.powi(10)).abs() < 1e-6);
        assert!(Trending::fit(&m, &times, 100.0, 0.0).is_err());
        // Users 0 and 2 only: item 0 twice, item 1 once (user 0).
        assert_eq!(Popularity::fit_users(&m, |u| u != 1).counts, vec![2.0, 1.0]);
    }
}
