//! Fixed-horizon statistics for A/B tests, checked against scipy.stats
//! (`scripts/stats_reference.py` records the reference values; the test
//! `golden_statistics_match_scipy` compares them to 1e-9 relative).
//!
//! Conventions: the first group is the control, the second the treatment; a difference is
//! treatment − control; the relative lift is treatment / control − 1; p-values are two-sided.

use serde::Serialize;
use statrs::function::{beta::checked_beta_reg, erf, gamma::checked_gamma_ur, gamma::ln_gamma};

use crate::error::{ExperimentError, Result};
use tailor_core::rng::Rng;

/// P(Z ≤ x) for a standard normal Z.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erf::erfc(-x / std::f64::consts::SQRT_2)
}

/// P(Z > x) for a standard normal Z, accurate far into the tail.
pub fn normal_sf(x: f64) -> f64 {
    0.5 * erf::erfc(x / std::f64::consts::SQRT_2)
}

/// The standard normal quantile: `normal_cdf(normal_ppf(q)) == q` for `q` in (0, 1).
pub fn normal_ppf(q: f64) -> f64 {
    -std::f64::consts::SQRT_2 * erf::erfc_inv(2.0 * q)
}

/// P(X > x) for X chi-square with `dof` degrees of freedom.
pub fn chi2_sf(x: f64, dof: u32) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    checked_gamma_ur(f64::from(dof) / 2.0, x / 2.0).unwrap_or(f64::NAN)
}

/// P(T > t) for T Student-t with `df` (possibly fractional) degrees of freedom.
pub fn t_sf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * checked_beta_reg(df / 2.0, 0.5, df / (df + t * t)).unwrap_or(f64::NAN);
    if t >= 0.0 { tail } else { 1.0 - tail }
}

fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln();
    ln.exp()
}

/// The Student-t quantile for upper-tail probability `1 - q` (Newton on [`t_sf`], bracketed).
pub fn t_ppf(q: f64, df: f64) -> f64 {
    if q == 0.5 {
        return 0.0;
    }
    if q < 0.5 {
        return -t_ppf(1.0 - q, df);
    }
    let target = 1.0 - q;
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while t_sf(hi, df) > target {
        lo = hi;
        hi *= 2.0;
        if hi > 1e12 {
            return f64::INFINITY;
        }
    }
    let mut t = normal_ppf(q).clamp(lo, hi);
    for _ in 0..100 {
        let f = t_sf(t, df) - target;
        if f > 0.0 {
            lo = t
        } else {
            hi = t
        }
        let step = f / t_pdf(t, df);
        let mut next = t + step;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - t).abs() <= 1e-15 * next.abs().max(1.0) {
            return next;
        }
        t = next;
    }
    t
}

/// A chi-square test result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct ChiSquare {
    /// Pearson's χ² over the variants' observed vs expected counts.
    pub statistic: f64,
    /// Degrees of freedom.
    pub dof: u32,
    /// P(X ≥ statistic) under the null.
    pub p_value: f64,
}

/// Chi-square test of independence on a variants × (successes, failures) table, as
/// `scipy.stats.chi2_contingency`: with `yates`, the continuity correction is applied
/// when there is one degree of freedom (two variants).
pub fn chi2_independence(table: &[[u64; 2]], yates: bool) -> Result<ChiSquare> {
    if table.len() < 2 {
        return Err(ExperimentError::invalid("table", "needs at least two variants"));
    }
    let rows: Vec<f64> = table.iter().map(|r| (r[0] + r[1]) as f64).collect();
    let cols = [table.iter().map(|r| r[0] as f64).sum::<f64>(), table.iter().map(|r| r[1] as f64).sum::<f64>()];
    let total: f64 = rows.iter().sum();
    if rows.contains(&0.0) || cols.contains(&0.0) {
        return Err(ExperimentError::Undefined(
            "chi-square is undefined: a variant has no observations, or every observation is a success (or every one a failure)".into(),
        ));
    }
    let dof = (table.len() - 1) as u32;
    let mut statistic = 0.0;
    for (r, row) in table.iter().enumerate() {
        for c in 0..2 {
            let expected = rows[r] * cols[c] / total;
            let mut observed = row[c] as f64;
            if yates && dof == 1 {
                let diff = expected - observed;
                observed += diff.abs().min(0.5) * diff.signum();
            }
            statistic += (observed - expected).powi(2) / expected;
        }
    }
    Ok(ChiSquare { statistic, dof, p_value: chi2_sf(statistic, dof) })
}

/// Chi-square goodness of fit of `observed` counts to shares proportional to `weights`
/// (`scipy.stats.chisquare`): the sample-ratio-mismatch check.
pub fn goodness_of_fit(observed: &[u64], weights: &[f64]) -> Result<ChiSquare> {
    if observed.len() != weights.len() || observed.len() < 2 {
        return Err(ExperimentError::invalid("weights", "needs one weight per group and at least two groups"));
    }
    let wsum: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite() || *w <= 0.0) || wsum <= 0.0 {
        return Err(ExperimentError::invalid("weights", "must be positive numbers"));
    }
    let total: f64 = observed.iter().map(|&o| o as f64).sum();
    if total == 0.0 {
        return Err(ExperimentError::Undefined("no observations".into()));
    }
    let statistic = observed
        .iter()
        .zip(weights)
        .map(|(&o, w)| {
            let e = total * w / wsum;
            (o as f64 - e).powi(2) / e
        })
        .sum::<f64>();
    let dof = (observed.len() - 1) as u32;
    Ok(ChiSquare { statistic, dof, p_value: chi2_sf(statistic, dof) })
}

/// Two-proportion comparison: pooled z-test, Wald interval for the difference and a
/// delta-method (log ratio) interval for the relative lift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProportionTest {
    /// Control rate.
    pub control: f64,
    /// Treatment rate.
    pub treatment: f64,
    /// Treatment − control.
    pub diff: f64,
    /// Confidence interval of the difference.
    pub diff_ci: (f64, f64),
    /// Treatment / control − 1 (`None` when the control rate is 0).
    pub lift: Option<f64>,
    /// Confidence interval of the lift (`None` when either rate is 0).
    pub lift_ci: Option<(f64, f64)>,
    /// The z statistic.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

fn check_alpha(alpha: f64) -> Result<()> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(ExperimentError::invalid("alpha", format!("must be in (0, 1), got {alpha}")))
    }
}

/// Compares `x1` successes of `n1` (control) with `x2` of `n2` (treatment) at level `alpha`.
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64, alpha: f64) -> Result<ProportionTest> {
    check_alpha(alpha)?;
    if n1 == 0 || n2 == 0 {
        return Err(ExperimentError::Undefined("a variant has no observations".into()));
    }
    if x1 > n1 || x2 > n2 {
        return Err(ExperimentError::invalid("successes", "cannot exceed the number of trials"));
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let pool = (x1 + x2) as f64 / (n1f + n2f);
    let se0 = (pool * (1.0 - pool) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let diff = p2 - p1;
    let (z, p_value) = if se0 > 0.0 {
        let z = diff / se0;
        (z, 2.0 * normal_sf(z.abs()))
    } else {
        (0.0, 1.0)
    };
    let q = normal_ppf(1.0 - alpha / 2.0);
    let se1 = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    let lift = (p1 > 0.0).then(|| p2 / p1 - 1.0);
    let lift_ci = (p1 > 0.0 && p2 > 0.0).then(|| {
        let se_log = ((1.0 - p1) / (n1f * p1) + (1.0 - p2) / (n2f * p2)).sqrt();
        let l = (p2 / p1).ln();
        ((l - q * se_log).exp() - 1.0, (l + q * se_log).exp() - 1.0)
    });
    Ok(ProportionTest {
        control: p1,
        treatment: p2,
        diff,
        diff_ci: (diff - q * se1, diff + q * se1),
        lift,
        lift_ci,
        z,
        p_value,
    })
}

/// Count, mean and unbiased variance of a sample, accumulated in one pass (Welford).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// How many values were added (units, for a per-unit metric).
    pub n: u64,
    /// Sample mean of the metric per unit.
    pub mean: f64,
    m2: f64,
}

impl Summary {
    /// Adds one observation.
    pub fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The summary of a slice.
    pub fn of(xs: &[f64]) -> Self {
        let mut s = Self::default();
        for &x in xs {
            s.push(x);
        }
        s
    }

    /// A summary from its count, mean and unbiased variance.
    pub fn from_moments(n: u64, mean: f64, variance: f64) -> Self {
        Self { n, mean, m2: variance * n.saturating_sub(1) as f64 }
    }

    /// Unbiased sample variance (0 with fewer than two observations).
    pub fn variance(&self) -> f64 {
        if self.n < 2 { 0.0 } else { self.m2 / (self.n - 1) as f64 }
    }
}

/// Welch's unequal-variance t-test of treatment − control means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanTest {
    /// Control mean.
    pub control: f64,
    /// Treatment mean.
    pub treatment: f64,
    /// Treatment − control.
    pub diff: f64,
    /// Confidence interval of the difference (Welch–Satterthwaite t).
    pub diff_ci: (f64, f64),
    /// Treatment / control − 1 (`None` when the control mean is 0).
    pub lift: Option<f64>,
    /// The t statistic.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Welch's t-test (`scipy.stats.ttest_ind(treatment, control, equal_var=False)`).
pub fn welch(control: &Summary, treatment: &Summary, alpha: f64) -> Result<MeanTest> {
    check_alpha(alpha)?;
    if control.n < 2 || treatment.n < 2 {
        return Err(ExperimentError::Undefined("Welch's t-test needs two observations per variant".into()));
    }
    let va = control.variance() / control.n as f64;
    let vb = treatment.variance() / treatment.n as f64;
    let se2 = va + vb;
    if se2 <= 0.0 {
        return Err(ExperimentError::Undefined("Welch's t-test is undefined: both variants have zero variance".into()));
    }
    let df = se2 * se2 / (va * va / (control.n - 1) as f64 + vb * vb / (treatment.n - 1) as f64);
    let diff = treatment.mean - control.mean;
    let se = se2.sqrt();
    let t = diff / se;
    let p_value = (2.0 * t_sf(t.abs(), df)).min(1.0);
    let q = t_ppf(1.0 - alpha / 2.0, df);
    Ok(MeanTest {
        control: control.mean,
        treatment: treatment.mean,
        diff,
        diff_ci: (diff - q * se, diff + q * se),
        lift: (control.mean != 0.0).then(|| treatment.mean / control.mean - 1.0),
        t,
        df,
        p_value,
    })
}

/// A sample stored as its non-zero values plus a count of zeros: revenue per user is zero
/// for most users, so resampling only the non-zero part keeps the bootstrap O(buyers).
#[derive(Debug, Clone, Default)]
pub struct SparseSample {
    /// The non-zero observations.
    pub values: Vec<f64>,
    /// Observations equal to zero.
    pub zeros: u64,
}

impl SparseSample {
    /// Number of observations.
    pub fn len(&self) -> u64 {
        self.values.len() as u64 + self.zeros
    }

    /// True without observations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample mean.
    pub fn mean(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.values.iter().sum::<f64>() / self.len() as f64 }
    }

    /// Mean of one bootstrap resample: the number of non-zero draws is Binomial(n, k/n),
    /// sampled by geometric gaps, then that many values are drawn uniformly.
    fn resample_mean(&self, rng: &mut Rng) -> f64 {
        let n = self.len();
        let k = self.values.len();
        if k == 0 {
            return 0.0;
        }
        let q = k as f64 / n as f64;
        let var = n as f64 * q * (1.0 - q);
        let draws = if q >= 1.0 {
            n
        } else if var > 400.0 {
            // Binomial by its normal approximation: with a variance this large the error
            // is far below the bootstrap's own Monte Carlo noise, and it costs O(1).
            (n as f64 * q + var.sqrt() * rng.normal()).round().clamp(0.0, n as f64) as u64
        } else {
            // Successes in n Bernoulli(q) trials = how many geometric gaps fit in n.
            let ln1q = (1.0 - q).ln();
            let mut at = 0u64;
            let mut hits = 0u64;
            loop {
                let u = 1.0 - rng.f64();
                let gap = (u.ln() / ln1q).floor() as u64 + 1;
                at = at.saturating_add(gap);
                if at > n {
                    break hits;
                }
                hits += 1;
            }
        };
        let mut sum = 0.0;
        for _ in 0..draws {
            sum += self.values[rng.below(k)];
        }
        sum / n as f64
    }
}

/// Percentile bootstrap interval of treatment mean − control mean, `resamples` times,
/// reproducible for a seed.
pub fn bootstrap_mean_diff(
    control: &SparseSample,
    treatment: &SparseSample,
    resamples: usize,
    alpha: f64,
    seed: u64,
) -> Result<(f64, f64)> {
    check_alpha(alpha)?;
    if control.is_empty() || treatment.is_empty() {
        return Err(ExperimentError::Undefined("a variant has no observations".into()));
    }
    if resamples < 100 {
        return Err(ExperimentError::invalid("resamples", "needs at least 100 resamples"));
    }
    let mut rng = Rng::new(seed);
    let mut diffs: Vec<f64> =
        (0..resamples).map(|_| treatment.resample_mean(&mut rng) - control.resample_mean(&mut rng)).collect();
    diffs.sort_by(f64::total_cmp);
    let at = |p: f64| {
        // Linear interpolation between order statistics (numpy's default percentile).
        let pos = p * (diffs.len() - 1) as f64;
        let (i, frac) = (pos.floor() as usize, pos - pos.floor());
        let j = (i + 1).min(diffs.len() - 1);
        diffs[i] + (diffs[j] - diffs[i]) * frac
    };
    Ok((at(alpha / 2.0), at(1.0 - alpha / 2.0)))
}

/// Holm–Bonferroni adjusted p-values, in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Sample size for comparing two proportions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    /// Control (baseline) rate.
    pub baseline: f64,
    /// Treatment rate at the minimum detectable effect.
    pub target: f64,
    /// Relative minimum detectable effect.
    pub mde: f64,
    /// Significance level (two-sided).
    pub alpha: f64,
    /// Probability of detecting the effect if it is real, in (0, 1).
    pub power: f64,
    /// Users (or trials) needed per variant, rounded up.
    pub per_variant: u64,
    /// `per_variant` before rounding up.
    pub exact: f64,
    /// Power actually reached with `per_variant`.
    pub achieved_power: f64,
}

/// Users per variant to detect a relative lift `mde` over `baseline` with a two-sided
/// z-test at `alpha` and the given power (pooled variance under the null, unpooled under
/// the alternative).
pub fn plan(baseline: f64, mde: f64, alpha: f64, power: f64) -> Result<Plan> {
    check_alpha(alpha)?;
    if !(baseline > 0.0 && baseline < 1.0) {
        return Err(ExperimentError::invalid("baseline", format!("must be a rate in (0, 1), got {baseline}")));
    }
    let target = baseline * (1.0 + mde);
    if mde == 0.0 || !mde.is_finite() || !(target > 0.0 && target < 1.0) {
        return Err(ExperimentError::invalid(
            "mde",
            format!("must be a non-zero relative change keeping the rate in (0, 1), got {mde}"),
        ));
    }
    if !(power > 0.0 && power < 1.0) {
        return Err(ExperimentError::invalid("power", format!("must be in (0, 1), got {power}")));
    }
    let za = normal_ppf(1.0 - alpha / 2.0);
    let zb = normal_ppf(power);
    let pbar = (baseline + target) / 2.0;
    let num = (za * (2.0 * pbar * (1.0 - pbar)).sqrt()
        + zb * (baseline * (1.0 - baseline) + target * (1.0 - target)).sqrt())
    .powi(2);
    let exact = num / (target - baseline).powi(2);
    let per_variant = exact.ceil() as u64;
    Ok(Plan {
        baseline,
        target,
        mde,
        alpha,
        power,
        per_variant,
        exact,
        achieved_power: power_at(baseline, target, per_variant, alpha),
    })
}

/// Power of the two-sided two-proportion z-test with `n` per variant.
pub fn power_at(p1: f64, p2: f64, n: u64, alpha: f64) -> f64 {
    let n = n as f64;
    let za = normal_ppf(1.0 - alpha / 2.0);
    let pbar = (p1 + p2) / 2.0;
    let se0 = (2.0 * pbar * (1.0 - pbar) / n).sqrt();
    let se1 = ((p1 * (1.0 - p1) + p2 * (1.0 - p2)) / n).sqrt();
    let d = (p2 - p1).abs();
    normal_cdf((d - za * se0) / se1) + normal_cdf((-d - za * se0) / se1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantile_inverts_the_tail() {
        for df in [1.0, 2.5, 7.0, 30.0, 1e4] {
            for q in [0.6, 0.9, 0.975, 0.999] {
                let t = t_ppf(q, df);
                assert!((t_sf(t, df) - (1.0 - q)).abs() < 1e-12, "df {df} q {q}: t {t} sf {}", t_sf(t, df));
            }
        }
    }

    #[test]
    fn bootstrap_covers_the_welch_interval_on_large_samples() {
        let mut rng = Rng::new(3);
        let a: Vec<f64> = (0..4000).map(|_| if rng.chance(0.1) { 50.0 + 10.0 * rng.normal() } else { 0.0 }).collect();
        let b: Vec<f64> = (0..4000).map(|_| if rng.chance(0.12) { 50.0 + 10.0 * rng.normal() } else { 0.0 }).collect();
        let sparse = |xs: &[f64]| SparseSample {
            values: xs.iter().copied().filter(|x| *x != 0.0).collect(),
            zeros: xs.iter().filter(|x| **x == 0.0).count() as u64,
        };
        let (lo, hi) = bootstrap_mean_diff(&sparse(&a), &sparse(&b), 2000, 0.05, 9).expect("ci");
        let w = welch(&Summary::of(&a), &Summary::of(&b), 0.05).expect("welch");
        assert!((lo - w.diff_ci.0).abs() < 0.12 && (hi - w.diff_ci.1).abs() < 0.12, "{lo} {hi} vs {:?}", w.diff_ci);
    }

    #[test]
    fn degenerate_inputs_are_errors_not_nan() {
        assert!(chi2_independence(&[[0, 0], [3, 4]], false).is_err());
        assert!(two_proportion_z(1, 0, 1, 2, 0.05).is_err());
        assert!(welch(&Summary::of(&[1.0, 1.0]), &Summary::of(&[1.0, 1.0]), 0.05).is_err());
        assert_eq!(plan(0.04, 0.0, 0.05, 0.8).err().and_then(|e| e.field().map(str::to_owned)), Some("mde".into()));
        let none = two_proportion_z(0, 10, 0, 10, 0.05).expect("zero rates");
        assert_eq!((none.p_value, none.lift), (1.0, None));
    }
}
