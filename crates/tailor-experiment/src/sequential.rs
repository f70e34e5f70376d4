//! Always-valid p-values by the mixture sequential probability ratio test (mSPRT; Johari,
//! Pekelis and Walsh, "Always Valid Inference", 2017), so a shop can look at a running
//! experiment every day and stop when it is significant without inflating false positives.
//!
//! For a difference θ̂ of two means (or rates) with estimated variance s² and a normal
//! mixing distribution θ ~ N(0, τ²), the mixture likelihood ratio is
//! Λ = sqrt(s² / (s² + τ²)) · exp(θ̂² τ² / (2 s² (s² + τ²))),
//! and p = min over looks of min(1, 1/Λ) is valid at any stopping time.

use serde::Serialize;

/// The running always-valid p-value of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Msprt {
    /// Mixing standard deviation τ, in the units of the difference.
    pub tau: f64,
    /// The always-valid p-value so far (1 before the first look).
    pub p_value: f64,
}

impl Msprt {
    /// A test with mixing scale `tau` (a plausible effect size: e.g. the minimum
    /// detectable difference).
    pub fn new(tau: f64) -> Self {
        Self { tau, p_value: 1.0 }
    }

    /// The mixture likelihood ratio for a difference estimate and its variance.
    pub fn likelihood_ratio(&self, diff: f64, variance: f64) -> f64 {
        let t2 = self.tau * self.tau;
        if variance.is_nan() || variance <= 0.0 || t2.is_nan() || t2 <= 0.0 {
            return 1.0;
        }
        let ln = 0.5 * (variance / (variance + t2)).ln() + diff * diff * t2 / (2.0 * variance * (variance + t2));
        ln.exp()
    }

    /// Takes one look at the data and returns the updated p-value.
    pub fn look(&mut self, diff: f64, variance: f64) -> f64 {
        let lr = self.likelihood_ratio(diff, variance);
        if lr > 0.0 {
            self.p_value = self.p_value.min((1.0 / lr).min(1.0));
        }
        self.p_value
    }

    /// A look at two proportions, with the pooled (null) variance of the difference.
    pub fn look_proportions(&mut self, x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
        if n1 == 0 || n2 == 0 {
            return self.p_value;
        }
        let (a, b) = (n1 as f64, n2 as f64);
        let pool = (x1 + x2) as f64 / (a + b);
        let variance = pool * (1.0 - pool) * (1.0 / a + 1.0 / b);
        self.look(x2 as f64 / b - x1 as f64 / a, variance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;
    use tailor_core::rng::Rng;

    /// Daily looks at a null A/A test: the naive z-test rejects far more often than 5%
    /// when peeked at, the always-valid p-value stays under 5%.
    #[test]
    fn daily_peeking_keeps_the_false_positive_rate() {
        let mut rng = Rng::new(17);
        let (mut naive, mut always) = (0, 0);
        let runs = 400usize;
        for _ in 0..runs {
            let mut m = Msprt::new(0.005);
            let (mut x1, mut n1, mut x2, mut n2) = (0u64, 0u64, 0u64, 0u64);
            let (mut naive_hit, mut always_hit) = (false, false);
            for _day in 0..14 {
                for _ in 0..700 {
                    n1 += 1;
                    x1 += u64::from(rng.chance(0.05));
                    n2 += 1;
                    x2 += u64::from(rng.chance(0.05));
                }
                naive_hit |= stats::two_proportion_z(x1, n1, x2, n2, 0.05).is_ok_and(|t| t.p_value < 0.05);
                always_hit |= m.look_proportions(x1, n1, x2, n2) < 0.05;
            }
            naive += usize::from(naive_hit);
            always += usize::from(always_hit);
        }
        let (naive, always) = (naive as f64 / runs as f64, always as f64 / runs as f64);
        assert!(naive > 0.12, "peeking should inflate the naive test: {naive}");
        assert!(always <= 0.05, "always-valid p under daily peeking: {always}");
    }

    #[test]
    fn a_real_effect_is_found() {
        let mut rng = Rng::new(4);
        let mut m = Msprt::new(0.01);
        let (mut x1, mut x2, mut n) = (0u64, 0u64, 0u64);
        for _ in 0..30 {
            for _ in 0..2000 {
                n += 1;
                x1 += u64::from(rng.chance(0.05));
                x2 += u64::from(rng.chance(0.065));
            }
            m.look_proportions(x1, n, x2, n);
        }
        assert!(m.p_value < 0.01, "{}", m.p_value);
    }
}
