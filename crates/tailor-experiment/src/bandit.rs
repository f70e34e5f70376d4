//! Multi-armed bandits for choices that should adapt while they are measured (slot
//! layouts, recommendation strategies): Thompson sampling with Beta-Bernoulli posteriors,
//! UCB1 and epsilon-greedy. A bandit keeps one set of arm statistics per context (the
//! slot, and optionally the user's segment, so each segment learns its own best arm).
//!
//! The state is plain data (serde) that the caller persists and guards; `choose` and
//! `reward` are cheap enough to run under a mutex on every request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailor_core::rng::Rng;

use crate::error::{ExperimentError, Result};

/// How arms are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Policy {
    /// Sample each arm's Beta(1 + successes, 1 + failures) posterior, play the best draw.
    Thompson,
    /// Play the arm with the highest mean + sqrt(2 ln N / n) (every arm once first).
    Ucb1,
    /// Explore a random arm with probability `epsilon`, else play the best mean.
    EpsilonGreedy {
        /// Probability of a random arm, in [0, 1].
        epsilon: f64,
    },
    /// Every arm equally often, at random (the baseline bandits are compared with).
    Uniform,
}

impl Policy {
    /// Parses `thompson`, `ucb1`, `epsilon-greedy[:0.1]`, `uniform`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
        match name.trim() {
            "thompson" => Ok(Self::Thompson),
            "ucb1" => Ok(Self::Ucb1),
            "uniform" => Ok(Self::Uniform),
            "epsilon-greedy" | "epsilon_greedy" => {
                let epsilon = match arg {
                    None => 0.1,
                    Some(a) => a
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| ExperimentError::invalid("policy", format!("epsilon {a:?} is not a number")))?,
                };
                if !(0.0..=1.0).contains(&epsilon) {
                    return Err(ExperimentError::invalid("policy", "epsilon must be in [0, 1]"));
                }
                Ok(Self::EpsilonGreedy { epsilon })
            }
            other => Err(ExperimentError::invalid(
                "policy",
                format!("unknown policy {other:?}; use thompson, ucb1, epsilon-greedy[:EPS] or uniform"),
            )),
        }
    }
}

/// What one arm has earned so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmStats {
    /// Times played.
    pub pulls: u64,
    /// Sum of rewards in [0, 1] (successes for 0/1 rewards).
    pub reward: f64,
}

impl ArmStats {
    /// Mean reward (0 before the first pull).
    pub fn mean(&self) -> f64 {
        if self.pulls == 0 { 0.0 } else { self.reward / self.pulls as f64 }
    }
}

/// One bandit: its arms, policy, and statistics per context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bandit {
    /// Arm names (layouts or strategies).
    pub arms: Vec<String>,
    /// The policy.
    pub policy: Policy,
    /// Statistics per context key (`""` for the global context).
    pub contexts: BTreeMap<String, Vec<ArmStats>>,
}

impl Bandit {
    /// A bandit over these arms.
    pub fn new(arms: Vec<String>, policy: Policy) -> Result<Self> {
        if arms.len() < 2 {
            return Err(ExperimentError::invalid("arms", "a bandit needs at least two arms"));
        }
        Ok(Self { arms, policy, contexts: BTreeMap::new() })
    }

    /// The statistics of a context (zeros when it has not been seen).
    pub fn stats(&self, context: &str) -> Vec<ArmStats> {
        self.contexts.get(context).cloned().unwrap_or_else(|| vec![ArmStats::default(); self.arms.len()])
    }

    /// Picks an arm for `context` and counts the pull.
    pub fn choose(&mut self, context: &str, rng: &mut Rng) -> usize {
        let n = self.arms.len();
        let policy = self.policy;
        let arms = self.contexts.entry(context.to_owned()).or_insert_with(|| vec![ArmStats::default(); n]);
        let arm = pick(policy, arms, rng);
        arms[arm].pulls += 1;
        arm
    }

    /// Credits `reward` (clamped to [0, 1]) to an arm previously chosen in `context`.
    pub fn reward(&mut self, context: &str, arm: usize, reward: f64) -> Result<()> {
        let n = self.arms.len();
        if arm >= n {
            return Err(ExperimentError::invalid("arm", format!("arm {arm} does not exist (the bandit has {n})")));
        }
        let arms = self.contexts.entry(context.to_owned()).or_insert_with(|| vec![ArmStats::default(); n]);
        arms[arm].reward += reward.clamp(0.0, 1.0);
        Ok(())
    }

    /// Share of pulls per arm in a context.
    pub fn shares(&self, context: &str) -> Vec<f64> {
        let s = self.stats(context);
        let total: u64 = s.iter().map(|a| a.pulls).sum();
        s.iter().map(|a| if total == 0 { 0.0 } else { a.pulls as f64 / total as f64 }).collect()
    }
}

fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

fn pick(policy: Policy, arms: &[ArmStats], rng: &mut Rng) -> usize {
    match policy {
        Policy::Uniform => rng.below(arms.len()),
        Policy::Thompson => argmax(arms.iter().map(|a| {
            let successes = a.reward;
            let failures = (a.pulls as f64 - a.reward).max(0.0);
            beta(rng, 1.0 + successes, 1.0 + failures)
        })),
        Policy::Ucb1 => {
            if let Some(i) = arms.iter().position(|a| a.pulls == 0) {
                return i;
            }
            let total: u64 = arms.iter().map(|a| a.pulls).sum();
            let ln = (total as f64).ln();
            argmax(arms.iter().map(|a| a.mean() + (2.0 * ln / a.pulls as f64).sqrt()))
        }
        Policy::EpsilonGreedy { epsilon } => {
            if rng.chance(epsilon) {
                rng.below(arms.len())
            } else {
                argmax(arms.iter().map(|a| if a.pulls == 0 { f64::INFINITY } else { a.mean() }))
            }
        }
    }
}

/// Gamma(shape, 1) by Marsaglia and Tsang (2000); shapes below 1 through the boost
/// Gamma(a) = Gamma(a + 1) · U^(1/a).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = rng.f64().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.f64();
        if u < 1.0 - 0.0331 * x.powi(4) || u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// Beta(a, b) as Gamma(a) / (Gamma(a) + Gamma(b)).
pub fn beta(rng: &mut Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y == 0.0 { 0.5 } else { x / (x + y) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_draws_have_the_right_moments() {
        let mut rng = Rng::new(5);
        for (a, b) in [(1.0, 1.0), (3.0, 9.0), (0.5, 0.5), (40.0, 960.0)] {
            let n = 200_000usize;
            let xs: Vec<f64> = (0..n).map(|_| beta(&mut rng, a, b)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let want_mean = a / (a + b);
            let want_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((mean - want_mean).abs() < 4.0 * (want_var / n as f64).sqrt() + 1e-4, "Beta({a},{b}) mean {mean}");
            assert!((var / want_var - 1.0).abs() < 0.03, "Beta({a},{b}) var {var} vs {want_var}");
        }
    }

    #[test]
    fn every_policy_finds_the_better_arm() {
        for policy in [Policy::Thompson, Policy::Ucb1, Policy::EpsilonGreedy { epsilon: 0.1 }] {
            let mut b = Bandit::new(vec!["grid".into(), "carousel".into()], policy).expect("bandit");
            let mut rng = Rng::new(11);
            for _ in 0..20_000 {
                let arm = b.choose("home", &mut rng);
                let p = if arm == 1 { 0.3 } else { 0.1 };
                if rng.chance(p) {
                    b.reward("home", arm, 1.0).expect("reward");
                }
            }
            assert!(b.shares("home")[1] > 0.8, "{policy:?}: {:?}", b.shares("home"));
        }
    }

    #[test]
    fn contexts_learn_separately_and_bad_input_is_refused() {
        let mut b = Bandit::new(vec!["a".into(), "b".into()], Policy::Thompson).expect("bandit");
        let mut rng = Rng::new(2);
        for _ in 0..5000 {
            for (ctx, good) in [("seg:young", 0), ("seg:old", 1)] {
                let arm = b.choose(ctx, &mut rng);
                if rng.chance(if arm == good { 0.4 } else { 0.1 }) {
                    b.reward(ctx, arm, 1.0).expect("reward");
                }
            }
        }
        assert!(b.shares("seg:young")[0] > 0.8 && b.shares("seg:old")[1] > 0.8);
        assert!(b.reward("x", 7, 1.0).is_err());
        assert!(Bandit::new(vec!["solo".into()], Policy::Ucb1).is_err());
        assert_eq!(Policy::parse("epsilon-greedy:0.2").expect("p"), Policy::EpsilonGreedy { epsilon: 0.2 });
        assert!(Policy::parse("greedy").is_err());
    }
}
