//! Simulation with known truths: synthetic shoppers with per-segment rates go through the
//! real assignment ([`Assigner`]), the real attribution and report ([`analyse`]) and the
//! real bandits, so the error rates the statistics promise can be checked by counting.

use serde::Serialize;
use tailor_core::rng::Rng;
use tailor_core::{Event, EventKind, Timestamp};

use crate::assign::Assigner;
use crate::bandit::{Bandit, Policy};
use crate::error::{ExperimentError, Result};
use crate::report::{Exposure, Options, analyse};
use crate::spec::{Experiment, ExperimentSpec, Metric, Status};

const DAY_MS: i64 = 86_400_000;
const START: i64 = 1_790_000_000_000 - 1_790_000_000_000 % DAY_MS;

/// A group of shoppers with its own rates.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentTruth {
    /// Variant name, as in the report.
    pub name: String,
    /// Share of the population.
    pub share: f64,
    /// Probability that a served list is clicked (control).
    pub ctr: f64,
    /// Probability that a click leads to a purchase.
    pub buy_after_click: f64,
    /// Relative change of the click rate under the treatment (0 under the null).
    pub effect: f64,
}

/// An A/B scenario: many independent experiments over fresh populations.
#[derive(Debug, Clone, Serialize)]
pub struct AbScenario {
    /// Number of simulated experiments.
    pub experiments: usize,
    /// Shoppers per experiment.
    pub users: usize,
    /// Days each experiment runs (one look per day).
    pub days: u32,
    /// Lists served per shopper (visits spread over the days).
    pub visits: u32,
    /// Segments (shares sum to 1).
    pub segments: Vec<SegmentTruth>,
    /// The metric tested.
    pub metric: Metric,
    /// Significance level.
    pub alpha: f64,
    /// Seed of the simulated traffic (same seed, same outcome).
    pub seed: u64,
}

impl AbScenario {
    /// Three segments with different rates; `effect` is the treatment's relative lift of
    /// the click rate in every segment (0: no effect, an A/A test).
    pub fn standard(experiments: usize, users: usize, effect: f64, seed: u64) -> Self {
        let seg =
            |name: &str, share, ctr, buy| SegmentTruth { name: name.into(), share, ctr, buy_after_click: buy, effect };
        Self {
            experiments,
            users,
            days: 14,
            visits: 3,
            segments: vec![
                seg("bargain hunters", 0.5, 0.04, 0.25),
                seg("loyal", 0.3, 0.08, 0.35),
                seg("new", 0.2, 0.02, 0.15),
            ],
            metric: Metric::Conversion,
            alpha: 0.05,
            seed,
        }
    }

    fn validate(&self) -> Result<()> {
        let share: f64 = self.segments.iter().map(|s| s.share).sum();
        if self.segments.is_empty() || (share - 1.0).abs() > 1e-9 {
            return Err(ExperimentError::invalid("segments", "segment shares must sum to 1"));
        }
        if self.experiments == 0 || self.users < 20 || self.days == 0 || self.visits == 0 {
            return Err(ExperimentError::invalid(
                "scenario",
                "needs at least one experiment, 20 users, one day and one visit",
            ));
        }
        for s in &self.segments {
            let top = s.ctr * (1.0 + s.effect.max(0.0));
            if !(s.ctr > 0.0 && top < 1.0 && (0.0..=1.0).contains(&s.buy_after_click)) {
                return Err(ExperimentError::invalid(format!("segments.{}", s.name), "rates must be probabilities"));
            }
        }
        Ok(())
    }
}

/// What one simulated experiment concluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AbRun {
    /// Fixed-horizon p-value at the end.
    pub p_value: f64,
    /// Always-valid p-value after the last daily look.
    pub p_always_valid: f64,
    /// Smallest fixed-horizon p-value over the daily looks (naive peeking).
    pub min_daily_p: f64,
    /// The sample-ratio check fired.
    pub srm: bool,
}

/// Rejection rates over all simulated experiments.
#[derive(Debug, Clone, Serialize)]
pub struct AbOutcome {
    /// The scenario.
    pub scenario: AbScenario,
    /// Share rejected by the fixed-horizon test at the end (false-positive rate under
    /// the null, power under an effect).
    pub rejected_fixed: f64,
    /// Share rejected at some daily look by the naive fixed-horizon test.
    pub rejected_naive_peeking: f64,
    /// Share rejected at some daily look by the always-valid p-value.
    pub rejected_msprt_peeking: f64,
    /// Share with a sample-ratio-mismatch warning (≈ 0.1% expected).
    pub srm_warnings: f64,
    /// 95% binomial interval half-width of the rates (normal approximation).
    pub margin: f64,
}

/// Simulates experiment number `index` of a scenario.
pub fn ab_run(s: &AbScenario, index: usize) -> Result<AbRun> {
    let report = ab_report(s, index)?;
    let cmp = report.primary.first();
    Ok(AbRun {
        p_value: cmp.map_or(1.0, |c| c.p_value),
        p_always_valid: cmp.map_or(1.0, |c| c.p_always_valid),
        min_daily_p: report.daily.iter().map(|d| d.p_value).fold(1.0, f64::min),
        srm: report.srm.is_some_and(|c| c.p_value < 0.001),
    })
}

/// The full report of simulated experiment number `index`.
pub fn ab_report(s: &AbScenario, index: usize) -> Result<crate::report::Report> {
    s.validate()?;
    let mut rng = Rng::fork(s.seed, index as u64);
    let mut spec = ExperimentSpec::new(&format!("sim-{}-{index}", s.seed), &["control", "treatment"]);
    spec.primary_metric = s.metric;
    spec.alpha = s.alpha;
    spec.attribution_window_hours = 24;
    let assigner = Assigner::new(&spec)?;
    let mut exp = Experiment::create(spec, Timestamp(START), None)?;
    exp.transition(Status::Running, Timestamp(START), None)?;
    let mut exposures = Vec::with_capacity(s.users * s.visits as usize);
    let mut events = Vec::with_capacity(s.users * s.visits as usize / 8);
    let horizon = i64::from(s.days) * DAY_MS;
    for u in 0..s.users {
        let unit = format!("u{u}");
        let Some(variant) = assigner.variant(&unit) else { continue };
        let mut pick = rng.f64();
        let seg = s
            .segments
            .iter()
            .find(|g| {
                pick -= g.share;
                pick < 0.0
            })
            .unwrap_or(&s.segments[s.segments.len() - 1]);
        let ctr = if variant == 1 { seg.ctr * (1.0 + seg.effect) } else { seg.ctr };
        // Arrival uniform over the horizon; later visits within the horizon.
        let arrive = (rng.f64() * horizon as f64) as i64;
        for v in 0..s.visits {
            let at = arrive + (f64::from(v) * rng.f64() * (horizon - arrive) as f64 / f64::from(s.visits)) as i64;
            let ts = Timestamp(START + at);
            let rec_id = format!("r{u}-{v}");
            let item = format!("i{}", rng.below(200));
            if rng.chance(ctr) {
                let mut click = Event::new(Some(&unit), Some(&item), EventKind::Click, Timestamp(ts.0 + 1000));
                click.rec_id = Some(rec_id.clone());
                events.push(click);
                if rng.chance(seg.buy_after_click) {
                    let mut buy = Event::new(Some(&unit), Some(&item), EventKind::Purchase, Timestamp(ts.0 + 60_000));
                    buy.rec_id = Some(rec_id.clone());
                    buy.unit_price = Some((20.0 + 15.0 * rng.normal()).max(1.0));
                    events.push(buy);
                }
            }
            exposures.push(Exposure {
                rec_id,
                unit: unit.clone(),
                variant,
                ts,
                items: vec![item],
                segment: Some(seg.name.clone()),
            });
        }
    }
    analyse(&exp, &exposures, &events, Options { bootstrap: 0, min_units: 0, ..Options::default() })
}

/// Summarises runs into rejection rates.
pub fn ab_outcome(s: &AbScenario, runs: &[AbRun]) -> AbOutcome {
    let n = runs.len().max(1) as f64;
    let share = |f: &dyn Fn(&AbRun) -> bool| runs.iter().filter(|r| f(r)).count() as f64 / n;
    let fixed = share(&|r| r.p_value < s.alpha);
    AbOutcome {
        scenario: s.clone(),
        rejected_fixed: fixed,
        rejected_naive_peeking: share(&|r| r.min_daily_p < s.alpha),
        rejected_msprt_peeking: share(&|r| r.p_always_valid < s.alpha),
        srm_warnings: share(&|r| r.srm),
        margin: 1.96 * (fixed.max(s.alpha) * (1.0 - fixed.max(s.alpha)) / n).sqrt(),
    }
}

/// A bandit scenario: arms with known reward rates, per segment.
#[derive(Debug, Clone, Serialize)]
pub struct BanditScenario {
    /// Arm names.
    pub arms: Vec<String>,
    /// Per segment: (name, share, reward rate of each arm).
    pub segments: Vec<(String, f64, Vec<f64>)>,
    /// Decisions per run.
    pub decisions: usize,
    /// Independent runs averaged.
    pub runs: usize,
    /// Seed of the simulated traffic (same seed, same outcome).
    pub seed: u64,
}

impl BanditScenario {
    /// Layouts with a 20% relative gap between the best and the others, the same in
    /// every segment.
    pub fn standard(decisions: usize, runs: usize, seed: u64) -> Self {
        Self {
            arms: vec!["carousel".into(), "grid".into(), "list".into()],
            segments: vec![("all".into(), 1.0, vec![0.05, 0.06, 0.05])],
            decisions,
            runs,
            seed,
        }
    }

    /// Two segments whose best arms differ (a per-segment bandit should win).
    pub fn segmented(decisions: usize, runs: usize, seed: u64) -> Self {
        Self {
            arms: vec!["carousel".into(), "grid".into()],
            segments: vec![("young".into(), 0.5, vec![0.06, 0.05]), ("older".into(), 0.5, vec![0.05, 0.06])],
            decisions,
            runs,
            seed,
        }
    }
}

/// Regret of one policy.
#[derive(Debug, Clone, Serialize)]
pub struct BanditOutcome {
    /// Policy name.
    pub policy: String,
    /// Whether each segment had its own posterior.
    pub per_segment: bool,
    /// Mean cumulative (pseudo-)regret: expected reward lost against always playing
    /// each segment's best arm.
    pub regret: f64,
    /// Standard error of the mean over runs.
    pub regret_se: f64,
    /// Mean reward per decision.
    pub reward_rate: f64,
    /// Share of decisions that played the segment's best arm.
    pub best_arm_share: f64,
    /// Mean cumulative regret at 10 checkpoints (for a chart).
    pub curve: Vec<(usize, f64)>,
}

/// Runs a policy through a scenario.
pub fn bandit_run(s: &BanditScenario, policy: Policy, per_segment: bool) -> Result<BanditOutcome> {
    if s.runs == 0 || s.decisions == 0 {
        return Err(ExperimentError::invalid("scenario", "needs at least one run and one decision"));
    }
    let checkpoints: Vec<usize> = (1..=10).map(|i| s.decisions * i / 10).collect();
    let mut curve = vec![0.0; checkpoints.len()];
    let mut regrets = Vec::with_capacity(s.runs);
    let (mut reward_total, mut best_total) = (0.0, 0u64);
    for run in 0..s.runs {
        let mut rng = Rng::fork(s.seed, run as u64);
        let mut bandit = Bandit::new(s.arms.clone(), policy)?;
        let mut regret = 0.0;
        let mut c = 0;
        for d in 1..=s.decisions {
            let mut pick = rng.f64();
            let (name, _, rates) = s
                .segments
                .iter()
                .find(|g| {
                    pick -= g.1;
                    pick < 0.0
                })
                .unwrap_or(&s.segments[s.segments.len() - 1]);
            let ctx = if per_segment { name.as_str() } else { "" };
            let arm = bandit.choose(ctx, &mut rng);
            let best = rates.iter().copied().fold(f64::MIN, f64::max);
            regret += best - rates[arm];
            best_total += u64::from(rates[arm] == best);
            if rng.chance(rates[arm]) {
                bandit.reward(ctx, arm, 1.0)?;
                reward_total += 1.0;
            }
            if c < checkpoints.len() && d == checkpoints[c] {
                curve[c] += regret / s.runs as f64;
                c += 1;
            }
        }
        regrets.push(regret);
    }
    let n = regrets.len() as f64;
    let mean = regrets.iter().sum::<f64>() / n;
    let var = regrets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let name = match policy {
        Policy::Thompson => "thompson".to_string(),
        Policy::Ucb1 => "ucb1".to_string(),
        Policy::EpsilonGreedy { epsilon } => format!("epsilon-greedy:{epsilon}"),
        Policy::Uniform => "uniform".to_string(),
    };
    let total = (s.runs * s.decisions) as f64;
    Ok(BanditOutcome {
        policy: name,
        per_segment,
        regret: mean,
        regret_se: (var / n).sqrt(),
        reward_rate: reward_total / total,
        best_arm_share: best_total as f64 / total,
        curve: checkpoints.into_iter().zip(curve).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_experiment_rarely_rejects_and_an_effect_often_does() {
        let null = AbScenario::standard(60, 3000, 0.0, 1);
        let runs: Vec<AbRun> = (0..null.experiments).map(|i| ab_run(&null, i).expect("run")).collect();
        let o = ab_outcome(&null, &runs);
        assert!(o.rejected_fixed <= 0.15, "{o:?}");
        assert!(o.rejected_msprt_peeking <= o.rejected_naive_peeking, "{o:?}");
        let real = AbScenario::standard(20, 20_000, 0.4, 2);
        let runs: Vec<AbRun> = (0..real.experiments).map(|i| ab_run(&real, i).expect("run")).collect();
        assert!(ab_outcome(&real, &runs).rejected_fixed >= 0.8, "power too low");
    }

    #[test]
    fn thompson_beats_uniform_allocation() {
        let s = BanditScenario::standard(20_000, 4, 3);
        let ts = bandit_run(&s, Policy::Thompson, false).expect("ts");
        let uni = bandit_run(&s, Policy::Uniform, false).expect("uniform");
        assert!(uni.regret > 2.0 * ts.regret, "thompson {} vs uniform {}", ts.regret, uni.regret);
        let seg = BanditScenario::segmented(20_000, 4, 3);
        let global = bandit_run(&seg, Policy::Thompson, false).expect("global");
        let local = bandit_run(&seg, Policy::Thompson, true).expect("per segment");
        assert!(local.regret < global.regret, "per-segment {} vs global {}", local.regret, global.regret);
    }
}
