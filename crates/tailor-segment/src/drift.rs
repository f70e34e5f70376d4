//! Drift of a population against a snapshot: the population stability index (PSI) of each
//! feature's distribution over the snapshot's decile bins, and of segment shares.
//!
//! PSI = Σ_b (a_b − e_b) ln(a_b / e_b) over bins b, with e the snapshot's shares and a the
//! current ones, each share floored at 1e-4 (an empty bin would make it infinite). The
//! usual reading: below 0.1 stable, 0.1–0.25 a moderate shift, above 0.25 a major one.

use serde::{Deserialize, Serialize};

const FLOOR: f64 = 1e-4;

/// A feature's bins in a snapshot: the interior edges (deciles, ties merged) and the share
/// of the snapshot in each bin (`edges.len() + 1` bins; a value equal to an edge falls in
/// the bin above it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Feature name.
    pub name: String,
    /// Interior edges, ascending, distinct.
    pub edges: Vec<f64>,
    /// Share of the snapshot per bin.
    pub shares: Vec<f64>,
}

impl Bins {
    /// Decile bins of `values` (non-finite values are left out); None without any value.
    pub fn fit(name: &str, values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..10).map(|d| v[(v.len() * d / 10).min(v.len() - 1)]).collect();
        edges.dedup();
        // An edge at the minimum would leave the first bin empty by construction.
        edges.retain(|e| *e > v[0]);
        let mut b = Self { name: name.to_owned(), edges, shares: Vec::new() };
        b.shares = b.shares_of(&v);
        Some(b)
    }

    /// The share of `values` in each bin (all zeros without finite values).
    pub fn shares_of(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 1];
        let mut n = 0usize;
        for &x in values.iter().filter(|x| x.is_finite()) {
            counts[self.edges.partition_point(|e| *e <= x)] += 1;
            n += 1;
        }
        counts.iter().map(|&c| if n > 0 { c as f64 / n as f64 } else { 0.0 }).collect()
    }

    /// PSI of `values` against the snapshot.
    pub fn psi(&self, values: &[f64]) -> f64 {
        psi(&self.shares, &self.shares_of(values))
    }
}

/// PSI of `actual` shares against `expected` (same bins; shares floored at 1e-4).
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(FLOOR), a.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn psi_by_hand() {
        // Two bins, 50/50 against 70/30: 0.2 ln(1.4) + (−0.2) ln(0.6) = 0.1689...
        let want = 0.2 * 1.4f64.ln() - 0.2 * 0.6f64.ln();
        assert!((psi(&[0.5, 0.5], &[0.7, 0.3]) - want).abs() < 1e-12);
        assert_eq!(psi(&[0.25; 4], &[0.25; 4]), 0.0);
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let b = Bins::fit("x", &values).expect("bins");
        assert_eq!(b.edges.len(), 9);
        assert!(b.shares.iter().all(|s| (s - 0.1).abs() < 1e-12), "{b:?}");
        // The same population: 0; everyone in the top decile: a major shift.
        assert!(b.psi(&values).abs() < 1e-12);
        let shifted: Vec<f64> = values.iter().map(|v| v + 900.0).collect();
        assert!(b.psi(&shifted) > 1.0);
        // A constant feature has one bin.
        let c = Bins::fit("c", &[3.0; 50]).expect("bins");
        assert_eq!((c.edges.len(), c.shares.clone()), (0, vec![1.0]));
        assert!(Bins::fit("none", &[f64::NAN]).is_none());
    }

    proptest! {
        #[test]
        fn psi_is_never_negative_and_zero_on_the_snapshot(values in prop::collection::vec(-1e6f64..1e6, 1..300), other in prop::collection::vec(-1e6f64..1e6, 1..300)) {
            let b = Bins::fit("x", &values).expect("bins");
            prop_assert!((b.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(b.psi(&values).abs() < 1e-12);
            prop_assert!(b.psi(&other) >= -1e-12);
        }
    }
}
