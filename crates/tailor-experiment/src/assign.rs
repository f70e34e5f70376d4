//! Deterministic, sticky assignment: a user (or an anonymous session) is hashed with the
//! experiment's salt, so the same id gets the same variant on every request, node and
//! restart without storing anything, and different experiments (different salts) split
//! users independently of each other.
//!
//! One 64-bit XXH3 hash of the id, seeded by a hash of the salt: its high 32 bits decide
//! whether the user is in the experiment's traffic share, its low 32 bits pick the variant
//! by the cumulative weights. Both are compared as integers, so shares are exact to 2⁻³².

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::Result;
use crate::spec::ExperimentSpec;

/// The precomputed split of one experiment.
#[derive(Debug, Clone)]
pub struct Assigner {
    seed: u64,
    /// Users whose high 32 bits are below this are in the experiment (2³² = everyone).
    traffic: u64,
    /// Upper bounds (exclusive) of each variant on the low 32 bits; the last is 2³².
    bounds: Vec<u64>,
}

const SPAN: f64 = 4_294_967_296.0;

impl Assigner {
    /// The split for a spec (validated first).
    pub fn new(spec: &ExperimentSpec) -> Result<Self> {
        spec.validate()?;
        let weights: Vec<f64> = spec.variants.iter().map(|v| v.weight).collect();
        Ok(Self::from_parts(spec.salt(), spec.traffic, &weights))
    }

    /// The split for a salt, a traffic share in (0, 1] and positive weights.
    pub fn from_parts(salt: &str, traffic: f64, weights: &[f64]) -> Self {
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut bounds: Vec<u64> = weights
            .iter()
            .map(|w| {
                acc += w;
                ((acc / total) * SPAN).round() as u64
            })
            .collect();
        if let Some(last) = bounds.last_mut() {
            *last = 1 << 32;
        }
        Self { seed: xxh3_64(salt.as_bytes()), traffic: (traffic.clamp(0.0, 1.0) * SPAN).round() as u64, bounds }
    }

    /// The variant index of `unit` (a user or session id), or `None` when the unit falls
    /// outside the traffic share.
    #[inline]
    pub fn variant(&self, unit: &str) -> Option<usize> {
        let h = xxh3_64_with_seed(unit.as_bytes(), self.seed);
        if (h >> 32) >= self.traffic {
            return None;
        }
        let low = h & 0xFFFF_FFFF;
        Some(self.bounds.iter().position(|&b| low < b).unwrap_or(self.bounds.len() - 1))
    }

    /// Number of variants.
    pub fn variants(&self) -> usize {
        self.bounds.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;
    use proptest::prelude::*;

    const PINNED: [Option<usize>; 12] =
        [None, Some(2), Some(0), Some(0), Some(2), Some(1), Some(0), None, None, None, Some(2), Some(2)];

    fn users(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("user-{i}")).collect()
    }

    #[test]
    fn shares_follow_the_weights_within_half_a_percent_over_a_million_users() {
        let a = Assigner::from_parts("layout-test", 1.0, &[0.5, 0.3, 0.2]);
        let mut counts = [0u64; 3];
        for u in users(1_000_000) {
            counts[a.variant(&u).expect("all traffic")] += 1;
        }
        for (c, w) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let share = *c as f64 / 1e6;
            assert!((share - w).abs() < 0.005, "share {share} for weight {w}");
        }
        // And the split passes the sample-ratio check it will be judged by.
        let srm = stats::goodness_of_fit(&counts, &[0.5, 0.3, 0.2]).expect("gof");
        assert!(srm.p_value > 0.001, "{srm:?}");
    }

    #[test]
    fn traffic_share_leaves_the_rest_out() {
        let a = Assigner::from_parts("t", 0.1, &[1.0, 1.0]);
        let inside = users(200_000).iter().filter(|u| a.variant(u).is_some()).count();
        assert!((inside as f64 / 200_000.0 - 0.1).abs() < 0.003, "{inside}");
    }

    #[test]
    fn known_values_never_change() {
        // Sticky across restarts, nodes and releases: these literal answers pin the hash,
        // the seed from the salt, the traffic cut and the weight split. Changing any of them
        // would move live users between variants, so this test must never be "updated".
        let a = Assigner::from_parts("home-algo", 0.5, &[1.0, 1.0, 2.0]);
        let got: Vec<Option<usize>> = (1..=12).map(|i| a.variant(&format!("U{i:05}"))).collect();
        assert_eq!(got, PINNED);
    }

    #[test]
    fn the_independence_check_would_catch_a_shared_salt() {
        // The property below has power: two experiments with one salt are fully dependent.
        let a = Assigner::from_parts("same", 1.0, &[1.0, 1.0, 1.0]);
        let b = Assigner::from_parts("same", 1.0, &[1.0, 1.0]);
        let mut table = [[0u64; 2]; 3];
        for u in users(30_000) {
            table[a.variant(&u).unwrap_or(0)][b.variant(&u).unwrap_or(0)] += 1;
        }
        assert!(stats::chi2_independence(&table, false).expect("chi2").p_value < 1e-100);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn assignment_is_deterministic(salt in "[a-z]{1,12}", unit in ".{0,40}", w in 0.05f64..20.0) {
            let a = Assigner::from_parts(&salt, 1.0, &[1.0, w]);
            let b = Assigner::from_parts(&salt, 1.0, &[1.0, w]);
            prop_assert_eq!(a.variant(&unit), b.variant(&unit));
        }

        #[test]
        fn independent_experiments_are_uncorrelated(s1 in "[a-z]{3,10}", s2 in "[A-Z]{3,10}") {
            // Cross table of two experiments' variants over the same users: a chi-square
            // test of independence must not reject (at 1e-6: with 48 cases a false alarm
            // has odds of 1 in 20,000, while a real dependence gives p-values near 0).
            let a = Assigner::from_parts(&s1, 1.0, &[1.0, 1.0, 1.0]);
            let b = Assigner::from_parts(&s2, 1.0, &[1.0, 1.0]);
            let mut table = [[0u64; 2]; 3];
            for u in users(30_000) {
                table[a.variant(&u).unwrap_or(0)][b.variant(&u).unwrap_or(0)] += 1;
            }
            let chi = stats::chi2_independence(&table, false).expect("chi2");
            prop_assert!(chi.p_value > 1e-6, "{:?} {:?}", table, chi);
        }
    }
}
