//! Customer lifetime value: BG/NBD for the number of future purchases and the probability
//! that a customer is still "alive" (Fader, Hardie & Lee 2005, "Counting your customers the
//! easy way"), Gamma-Gamma for the value of a purchase (Fader, Hardie & Lee 2005, "RFM and
//! CLV: using iso-value curves"), both fitted by maximum likelihood.
//!
//! The definitions follow the `lifetimes` Python package, so that its figures and ours can
//! be compared one to one (`tests/it/clv.rs` does, on CDNOW):
//!
//! - a **transaction** is a day (UTC) with at least one purchase; its value is the sum of
//!   that day's purchases,
//! - per customer, with the observation ending on day `end`: `frequency` = transactions
//!   after the first (repeat transactions), `recency` = days from the first transaction to
//!   the last, `t` = days from the first transaction to `end`, `monetary` = mean value of
//!   the repeat transactions (0 without any), recency and `t` divided by the period length
//!   (1 day, or 7 for weeks as in the paper),
//! - `clv(months, d)` = Σ_{i=1..months} value × (E[purchases by 30·i days] − E[by 30·(i−1)])
//!   / (1 + d)^i, `lifetimes.utils.customer_lifetime_value` with `freq = "D"`.
//!
//! The fits maximise the mean log-likelihood over the log-parameters by BFGS with the
//! analytic gradient; customers with identical (frequency, recency, t) are one weighted term.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError};

const DAY_MS: i64 = 86_400_000;

/// One purchase, reduced to what lifetime value needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Purchase {
    /// Dense customer index.
    pub user: u32,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// Value of the purchase (quantity × unit price).
    pub amount: f64,
}

/// One customer's repeat-purchase summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Dense customer index.
    pub user: u32,
    /// Repeat transactions (transactions after the first).
    pub frequency: u32,
    /// Periods from the first transaction to the last.
    pub recency: f64,
    /// Periods from the first transaction to the end of the observation.
    pub t: f64,
    /// Mean value of the repeat transactions (0 without any).
    pub monetary: f64,
}

impl Summary {
    /// Checks the rules a summary obeys: `0 <= recency <= t`, finite values, recency 0
    /// without repeat transactions.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |rule: &'static str| Err(SegmentError::InvalidParam { param: "summary", value: format!("{self:?}"), rule });
        if !(self.recency.is_finite() && self.t.is_finite() && self.monetary.is_finite()) {
            return bad("recency, t and monetary are finite");
        }
        if self.recency < 0.0 || self.recency > self.t {
            return bad("0 <= recency <= t");
        }
        if self.frequency == 0 && self.recency != 0.0 {
            return bad("recency is 0 without repeat transactions");
        }
        Ok(())
    }
}

/// Day number (UTC) of a timestamp in ms.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

/// Per-customer summaries of the purchases made on days up to and including `end_day`
/// (customers whose first purchase is later are left out), in customer order; recency and
/// `t` in periods of `period_days` days. Non-positive amounts count as transactions with
/// their value (a free day still is a visit), as in `lifetimes`.
pub fn summarize(purchases: &[Purchase], end_day: i64, period_days: f64) -> Result<Vec<Summary>> {
    if !(period_days.is_finite() && period_days > 0.0) {
        return Err(SegmentError::InvalidParam {
            param: "period_days",
            value: period_days.to_string(),
            rule: "a positive number of days",
        });
    }
    let mut days: Vec<(u32, i64, f64)> = purchases
        .iter()
        .filter(|p| day_of(p.ts) <= end_day)
        .map(|p| (p.user, day_of(p.ts), if p.amount.is_finite() { p.amount } else { 0.0 }))
        .collect();
    days.sort_unstable_by_key(|&(u, d, _)| (u, d));
    let mut out = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let user = days[i].0;
        let first = days[i].1;
        let (mut last, mut repeats, mut repeat_value) = (first, 0u32, 0.0);
        // The first day's purchases are the first transaction, whatever their number.
        while i < days.len() && days[i].0 == user && days[i].1 == first {
            i += 1;
        }
        while i < days.len() && days[i].0 == user {
            let day = days[i].1;
            let mut value = 0.0;
            while i < days.len() && days[i].0 == user && days[i].1 == day {
                value += days[i].2;
                i += 1;
            }
            repeats += 1;
            repeat_value += value;
            last = day;
        }
        out.push(Summary {
            user,
            frequency: repeats,
            recency: (last - first) as f64 / period_days,
            t: (end_day - first) as f64 / period_days,
            monetary: if repeats > 0 { repeat_value / f64::from(repeats) } else { 0.0 },
        });
    }
    Ok(out)
}

/// How a fit ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FitReport {
    /// Mean log-likelihood per customer at the optimum.
    pub mean_log_likelihood: f64,
    /// BFGS iterations.
    pub iterations: u32,
    /// Customers the fit used.
    pub customers: usize,
}

/// A fitted BG/NBD model: purchases follow a Poisson process with rate λ ~ Gamma(r, α);
/// after each purchase the customer drops out with probability p ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BgNbd {
    /// Shape of the purchase rates.
    pub r: f64,
    /// Scale of the purchase rates (in periods).
    pub alpha: f64,
    /// First shape of the drop-out probability.
    pub a: f64,
    /// Second shape of the drop-out probability.
    pub b: f64,
    /// Days per period of `alpha` and of the summaries it was fitted on.
    pub period_days: f64,
    /// How the fit ended.
    pub fit: FitReport,
}

/// Distinct (frequency, recency, t) triples with their counts.
fn grouped(s: &[Summary]) -> Vec<(f64, f64, f64, f64)> {
    let mut keys: Vec<(u32, u64, u64)> = s.iter().map(|c| (c.frequency, c.recency.to_bits(), c.t.to_bits())).collect();
    keys.sort_unstable();
    let mut out: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (x, tx, t) in keys {
        let (x, tx, t) = (f64::from(x), f64::from_bits(tx), f64::from_bits(t));
        match out.last_mut() {
            Some(last) if last.0 == x && last.1 == tx && last.2 == t => last.3 += 1.0,
            _ => out.push((x, tx, t, 1.0)),
        }
    }
    out
}

impl BgNbd {
    /// Fits r, α, a, b to the summaries (all in the same period length, `period_days`).
    pub fn fit(s: &[Summary], period_days: f64) -> Result<Self> {
        if s.is_empty() {
            return Err(SegmentError::InvalidData("no customer to fit BG/NBD on".into()));
        }
        for c in s {
            c.validate()?;
        }
        if s.iter().all(|c| c.frequency == 0) {
            return Err(SegmentError::InvalidData(
                "no customer has a repeat purchase: BG/NBD cannot tell drop-out from purchase rates".into(),
            ));
        }
        let groups = grouped(s);
        let n = s.len() as f64;
        let objective = |theta: &[f64; 4], grad: &mut [f64; 4]| -> f64 {
            let [r, alpha, a, b] = theta.map(f64::exp);
            let (ln_alpha, lg_r, dg_r) = (alpha.ln(), ln_gamma(r), digamma(r));
            let (lg_ab, dg_ab, lg_b, dg_b) = (ln_gamma(a + b), digamma(a + b), ln_gamma(b), digamma(b));
            let mut ll = 0.0;
            let mut g = [0.0; 4];
            for &(x, tx, t, w) in &groups {
                let a1 = ln_gamma(r + x) - lg_r + r * ln_alpha;
                let a2 = lg_ab + ln_gamma(b + x) - lg_b - ln_gamma(a + b + x);
                let a3 = -(r + x) * (alpha + t).ln();
                let (lse, s4, a4_terms) = if x > 0.0 {
                    let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + tx).ln();
                    let m = a3.max(a4);
                    let lse = m + ((a3 - m).exp() + (a4 - m).exp()).ln();
                    (lse, (a4 - lse).exp(), true)
                } else {
                    (a3, 0.0, false)
                };
                let s3 = 1.0 - s4;
                ll += w * (a1 + a2 + lse);
                let mut dr = digamma(r + x) - dg_r + ln_alpha - s3 * (alpha + t).ln();
                let mut dalpha = r / alpha - s3 * (r + x) / (alpha + t);
                let mut da = dg_ab - digamma(a + b + x);
                let mut db = dg_ab + digamma(b + x) - dg_b - digamma(a + b + x);
                if a4_terms {
                    dr -= s4 * (alpha + tx).ln();
                    dalpha -= s4 * (r + x) / (alpha + tx);
                    da += s4 / a;
                    db -= s4 / (b + x - 1.0);
                }
                g[0] += w * dr;
                g[1] += w * dalpha;
                g[2] += w * da;
                g[3] += w * db;
            }
            // d/dθ = p d/dp, of the negative mean.
            for (k, p) in [r, alpha, a, b].into_iter().enumerate() {
                grad[k] = -g[k] * p / n;
            }
            -ll / n
        };
        let (theta, f, iterations) = bfgs(objective, [0.0; 4])?;
        let [r, alpha, a, b] = theta.map(f64::exp);
        Ok(Self {
            r,
            alpha,
            a,
            b,
            period_days,
            fit: FitReport { mean_log_likelihood: -f, iterations, customers: s.len() },
        })
    }

    /// `(α + T) / (α + recency)` raised to `r + x`, times `a / (b + x − 1)`, in logs: the odds
    /// against being alive (−∞ without repeat transactions).
    fn ln_dead_odds(&self, c: &Summary) -> f64 {
        if c.frequency == 0 {
            return f64::NEG_INFINITY;
        }
        let x = f64::from(c.frequency);
        (self.r + x) * ((self.alpha + c.t) / (self.alpha + c.recency)).ln() + (self.a / (self.b + x - 1.0)).ln()
    }

    /// Probability that the customer is still active at the end of the observation.
    pub fn p_alive(&self, c: &Summary) -> f64 {
        1.0 / (1.0 + self.ln_dead_odds(c).exp())
    }

    /// Expected purchases of the customer in the next `periods` periods.
    pub fn expected_purchases(&self, periods: f64, c: &Summary) -> f64 {
        if periods <= 0.0 {
            return 0.0;
        }
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let x = f64::from(c.frequency);
        let (ha, hb, hc) = (r + x, b + x, a + b + x - 1.0);
        let z = periods / (alpha + c.t + periods);
        // ₂F₁ · ((α + T) / (α + T + t))^(r + x), by logarithms of magnitudes (either factor
        // may overflow alone) with the sign kept: with a + b + x < 1 the series' third
        // argument is negative and ₂F₁ may be too (`lifetimes` answers NaN there).
        let ln_scale = (r + x) * ((alpha + c.t) / (alpha + periods + c.t)).ln();
        let direct = hyp2f1(ha, hb, hc, z);
        let (sign, ln_hyp) = if direct.is_finite() {
            (direct.signum(), direct.abs().ln())
        } else {
            // Euler's transformation, as `lifetimes` does when the direct series overflows.
            let e = hyp2f1(hc - ha, hc - hb, hc, z);
            (e.signum(), e.abs().ln() + (hc - ha - hb) * (1.0 - z).ln())
        };
        let first = (a + b + x - 1.0) / (a - 1.0);
        let second = 1.0 - sign * (ln_hyp + ln_scale).exp();
        first * second / (1.0 + self.ln_dead_odds(c).exp())
    }

    /// Expected purchases in the next `days` days.
    pub fn expected_purchases_in_days(&self, days: f64, c: &Summary) -> f64 {
        self.expected_purchases(days / self.period_days, c)
    }
}

/// A fitted Gamma-Gamma model of the value of a customer's transactions: values are
/// Gamma(p, ν), ν ~ Gamma(q, v) across customers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GammaGamma {
    /// Shape of a transaction's value.
    pub p: f64,
    /// Shape of the customers' rates.
    pub q: f64,
    /// Scale of the customers' rates.
    pub v: f64,
    /// How the fit ended.
    pub fit: FitReport,
}

impl GammaGamma {
    /// Fits p, q, v to the customers with repeat transactions and a positive mean value
    /// (the model's assumption; the others are left out, as `lifetimes` asks its users to).
    pub fn fit(s: &[Summary]) -> Result<Self> {
        let used: Vec<(f64, f64)> = s
            .iter()
            .filter(|c| c.frequency > 0 && c.monetary > 0.0 && c.monetary.is_finite())
            .map(|c| (f64::from(c.frequency), c.monetary))
            .collect();
        if used.len() < 2 {
            return Err(SegmentError::InvalidData(format!(
                "Gamma-Gamma needs at least 2 customers with repeat purchases of positive value ({} here)",
                used.len()
            )));
        }
        let n = used.len() as f64;
        let objective = |theta: &[f64; 3], grad: &mut [f64; 3]| -> f64 {
            let [p, q, v] = theta.map(f64::exp);
            let (lg_q, dg_q, ln_v) = (ln_gamma(q), digamma(q), v.ln());
            let mut ll = 0.0;
            let mut g = [0.0; 3];
            for &(x, m) in &used {
                let px = p * x;
                let xmv = x * m + v;
                ll += ln_gamma(px + q) - ln_gamma(px) - lg_q + q * ln_v + (px - 1.0) * m.ln() + px * x.ln()
                    - (px + q) * xmv.ln();
                let dg_pxq = digamma(px + q);
                g[0] += x * (dg_pxq - digamma(px) + m.ln() + x.ln() - xmv.ln());
                g[1] += dg_pxq - dg_q + ln_v - xmv.ln();
                g[2] += q / v - (px + q) / xmv;
            }
            for (k, par) in [p, q, v].into_iter().enumerate() {
                grad[k] = -g[k] * par / n;
            }
            -ll / n
        };
        let (theta, f, iterations) = bfgs(objective, [0.0; 3])?;
        let [p, q, v] = theta.map(f64::exp);
        Ok(Self { p, q, v, fit: FitReport { mean_log_likelihood: -f, iterations, customers: used.len() } })
    }

    /// Expected value of the customer's future transactions (the population mean, shrunk
    /// towards their own mean by their number of repeat transactions).
    pub fn expected_value(&self, c: &Summary) -> f64 {
        let (p, q, v) = (self.p, self.q, self.v);
        let x = f64::from(c.frequency);
        let weight = p * x / (p * x + q - 1.0);
        let population = v * p / (q - 1.0);
        (1.0 - weight) * population + weight * c.monetary
    }
}

/// Lifetime value over `months` months of 30 days, discounted by `monthly_discount` per
/// month (0 for none): purchases from BG/NBD, their value from Gamma-Gamma.
pub fn clv(bg: &BgNbd, gg: &GammaGamma, c: &Summary, months: u32, monthly_discount: f64) -> f64 {
    let value = gg.expected_value(c);
    let mut total = 0.0;
    let mut before = 0.0;
    for i in 1..=months {
        let by = bg.expected_purchases_in_days(30.0 * f64::from(i), c);
        total += value * (by - before) / (1.0 + monthly_discount).powi(i as i32);
        before = by;
    }
    total
}

/// Minimises `f` from `x0` by BFGS with a backtracking (Armijo) line search; returns the
/// point, the value there and the iterations taken.
fn bfgs<const N: usize>(
    mut f: impl FnMut(&[f64; N], &mut [f64; N]) -> f64,
    x0: [f64; N],
) -> Result<([f64; N], f64, u32)> {
    const MAX_ITER: u32 = 1_000;
    let mut x = x0;
    let mut g = [0.0; N];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() {
        return Err(SegmentError::InvalidData("the likelihood is not finite at the starting point".into()));
    }
    // Inverse Hessian approximation, row-major.
    let mut h = [[0.0; N]; N];
    for (i, row) in h.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let mut g_new = [0.0; N];
    for it in 0..MAX_ITER {
        if g.iter().all(|v| v.abs() < 1e-12) {
            return Ok((x, fx, it));
        }
        let mut d = [0.0; N];
        for i in 0..N {
            d[i] = -(0..N).map(|j| h[i][j] * g[j]).sum::<f64>();
        }
        let mut slope: f64 = (0..N).map(|i| d[i] * g[i]).sum();
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            for (i, row) in h.iter_mut().enumerate() {
                *row = [0.0; N];
                row[i] = 1.0;
            }
            d = g.map(|v| -v);
            slope = -g.iter().map(|v| v * v).sum::<f64>();
        }
        // Steps in log-parameters beyond 5 (a factor of ~150) are never useful.
        let longest = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut step = if longest > 5.0 { 5.0 / longest } else { 1.0 };
        let mut x_new = x;
        let mut f_new;
        loop {
            for i in 0..N {
                x_new[i] = x[i] + step * d[i];
            }
            f_new = f(&x_new, &mut g_new);
            if f_new.is_finite() && f_new <= fx + 1e-4 * step * slope {
                break;
            }
            step *= 0.5;
            if step < 1e-20 {
                // No decrease left at machine precision: this is the optimum.
                return Ok((x, fx, it));
            }
        }
        let s: [f64; N] = std::array::from_fn(|i| x_new[i] - x[i]);
        let y: [f64; N] = std::array::from_fn(|i| g_new[i] - g[i]);
        let sy: f64 = (0..N).map(|i| s[i] * y[i]).sum();
        if sy > 1e-300 {
            let hy: [f64; N] = std::array::from_fn(|i| (0..N).map(|j| h[i][j] * y[j]).sum());
            let yhy: f64 = (0..N).map(|i| y[i] * hy[i]).sum();
            for i in 0..N {
                for j in 0..N {
                    h[i][j] += (sy + yhy) * s[i] * s[j] / (sy * sy) - (hy[i] * s[j] + s[i] * hy[j]) / sy;
                }
            }
        }
        // Converged once a step gains nothing beyond rounding (the gradient is then ~1e-10).
        let converged = fx - f_new <= 1e-15 * fx.abs().max(1.0);
        x = x_new;
        fx = f_new;
        g = g_new;
        if converged {
            return Ok((x, fx, it + 1));
        }
    }
    Err(SegmentError::InvalidData(format!("the fit did not converge in {MAX_ITER} iterations")))
}

/// ln Γ(x) for x > 0 (statrs, as the experiment statistics use).
pub fn ln_gamma(x: f64) -> f64 {
    statrs::function::gamma::ln_gamma(x)
}

/// ψ(x) = d ln Γ(x) / dx for x > 0 (statrs).
pub fn digamma(x: f64) -> f64 {
    statrs::function::gamma::digamma(x)
}

/// The Gauss hypergeometric function ₂F₁(a, b; c; z) for 0 <= z < 1 and c > 0, by its
/// series (NaN when it does not converge in a million terms).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    // A pole where c is 0, -1, -2...; any other c (negative too) has a convergent series.
    if !(0.0..1.0).contains(&z) || (c <= 0.0 && c.fract() == 0.0) {
        return f64::NAN;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 0..1_000_000u32 {
        let n = f64::from(n);
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        if !sum.is_finite() {
            return sum;
        }
        if term.abs() <= 1e-17 * sum.abs() {
            return sum;
        }
    }
    f64::NAN
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cust(user: u32, frequency: u32, recency: f64, t: f64, monetary: f64) -> Summary {
        Summary { user, frequency, recency, t, monetary }
    }

    #[test]
    fn special_functions_match_known_values() {
        // Γ(5) = 24, Γ(1/2) = √π, ψ(1) = −γ, ψ(1/2) = −γ − 2 ln 2; the others from scipy.special.
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((ln_gamma(0.1) - 2.252_712_651_734_206).abs() < 1e-12);
        assert!((ln_gamma(100.5) - 361.435_540_467_777_57).abs() < 1e-10);
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        assert!((digamma(0.243) - (-4.351_093_864_423_211)).abs() < 1e-12);
        // ₂F₁(1, 1; 2; z) = −ln(1 − z) / z.
        let z = 0.7;
        assert!((hyp2f1(1.0, 1.0, 2.0, z) + (1.0 - z).ln() / z).abs() < 1e-13);
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_nan());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_nan(), "a pole");
        // A negative third argument (a + b < 1, x = 0): scipy.special.hyp2f1 gives
        // -213850.08523999908, and the expected purchases by the formula with it
        // 10.122026916257015 (lifetimes 0.11.3 answers NaN: it takes the log of ₂F₁).
        let (r, alpha, a, b) = (45.35975827377872, 367.78047204616024, 0.014039447026061264, 0.29810571207653525);
        let h = hyp2f1(r, b, a + b - 1.0, 90.0 / (alpha + 11.0 + 90.0));
        assert!((h / -213_850.085_239_999_08 - 1.0).abs() < 1e-10, "{h}");
        let fit = FitReport { mean_log_likelihood: 0.0, iterations: 0, customers: 1 };
        let m = BgNbd { r, alpha, a, b, period_days: 1.0, fit };
        let e = m.expected_purchases(90.0, &cust(1, 0, 0.0, 11.0, 0.0));
        assert!((e / 10.122_026_916_257_015 - 1.0).abs() < 1e-8, "{e}");
    }

    proptest! {
        #[test]
        fn digamma_is_the_derivative_of_ln_gamma(x in 0.05f64..200.0) {
            let h = 1e-5 * x.max(1.0);
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            prop_assert!((numeric - digamma(x)).abs() < 1e-6 * digamma(x).abs().max(1.0), "{x}: {numeric} vs {}", digamma(x));
        }

        #[test]
        fn ln_gamma_obeys_the_recurrence(x in 0.01f64..300.0) {
            // Γ(x + 1) = x Γ(x).
            prop_assert!((ln_gamma(x + 1.0) - ln_gamma(x) - x.ln()).abs() < 1e-11 * ln_gamma(x + 1.0).abs().max(1.0));
        }
    }

    #[test]
    fn summaries_follow_the_lifetimes_definitions() {
        let day = |d: i64| d * DAY_MS + 3_600_000;
        let p = |user, d, amount| Purchase { user, ts: day(d), amount };
        // User 0: days 0 (two purchases), 3, 3, 10; user 1: day 5 only; user 2 starts after the end.
        let purchases =
            [p(0, 0, 5.0), p(0, 0, 7.0), p(0, 3, 1.0), p(0, 3, 2.0), p(0, 10, 9.0), p(1, 5, 4.0), p(2, 30, 1.0)];
        let s = summarize(&purchases, 20, 1.0).unwrap();
        assert_eq!(s, vec![cust(0, 2, 10.0, 20.0, 6.0), cust(1, 0, 0.0, 15.0, 0.0)]);
        let weeks = summarize(&purchases, 20, 7.0).unwrap();
        assert!((weeks[0].recency - 10.0 / 7.0).abs() < 1e-15 && (weeks[0].t - 20.0 / 7.0).abs() < 1e-15);
        // Purchases after the end day do not count.
        let s = summarize(&purchases, 9, 1.0).unwrap();
        assert_eq!(s[0], cust(0, 1, 3.0, 9.0, 3.0));
        assert!(summarize(&purchases, 20, 0.0).is_err());
    }

    /// Draws customers from the BG/NBD process itself.
    fn simulate(n: usize, r: f64, alpha: f64, a: f64, b: f64, t_end: f64, seed: u64) -> Vec<Summary> {
        let mut rng = tailor_core::rng::Rng::new(seed);
        let gamma = |rng: &mut tailor_core::rng::Rng, shape: f64| -> f64 {
            // Marsaglia-Tsang, with the boost for shapes below 1.
            let (shape, boost) = if shape < 1.0 { (shape + 1.0, rng.f64().powf(1.0 / shape)) } else { (shape, 1.0) };
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let x = rng.normal();
                let v = (1.0 + c * x).powi(3);
                if v > 0.0 && rng.f64().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                    return d * v * boost;
                }
            }
        };
        (0..n)
            .map(|u| {
                let lambda = gamma(&mut rng, r) / alpha;
                let ga = gamma(&mut rng, a);
                let p = ga / (ga + gamma(&mut rng, b));
                let (mut t, mut last, mut x) = (0.0, 0.0, 0u32);
                loop {
                    t += -(1.0 - rng.f64()).ln() / lambda;
                    if t > t_end {
                        break;
                    }
                    x += 1;
                    last = t;
                    if rng.f64() < p {
                        break;
                    }
                }
                cust(u as u32, x, last, t_end, 0.0)
            })
            .collect()
    }

    #[test]
    fn bg_nbd_recovers_the_parameters_it_simulated() {
        let s = simulate(20_000, 0.5, 8.0, 1.5, 3.0, 60.0, 7);
        let m = BgNbd::fit(&s, 7.0).unwrap();
        for (got, want) in [(m.r, 0.5), (m.alpha, 8.0), (m.a, 1.5), (m.b, 3.0)] {
            assert!((got / want - 1.0).abs() < 0.25, "{m:?}");
        }
        // Probabilities and expectations behave.
        for c in s.iter().take(200) {
            let p = m.p_alive(c);
            assert!((0.0..=1.0).contains(&p));
            let (e4, e8) = (m.expected_purchases(4.0, c), m.expected_purchases(8.0, c));
            assert!(e4 >= 0.0 && e8 >= e4, "{c:?}: {e4} {e8}");
        }
    }

    #[test]
    fn the_gradient_is_the_likelihoods_derivative() {
        // At the optimum the analytic gradient vanishes; a numeric check of the objective
        // at the optimum shows the point is a minimum along each axis.
        let s = simulate(3_000, 0.7, 4.0, 0.8, 2.5, 40.0, 11);
        let m = BgNbd::fit(&s, 1.0).unwrap();
        let ll = |r: f64, alpha: f64, a: f64, b: f64| {
            let mut total = 0.0;
            for c in &s {
                let x = f64::from(c.frequency);
                let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
                let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
                let main = (-(r + x) * (alpha + c.t).ln()).exp();
                let extra =
                    if c.frequency > 0 { a / (b + x - 1.0) * (-(r + x) * (alpha + c.recency).ln()).exp() } else { 0.0 };
                total += a1 + a2 + (main + extra).ln();
            }
            total / s.len() as f64
        };
        let best = ll(m.r, m.alpha, m.a, m.b);
        assert!((best - m.fit.mean_log_likelihood).abs() < 1e-9, "{best} vs {:?}", m.fit);
        for k in 0..4 {
            for f in [0.99, 1.01] {
                let mut p = [m.r, m.alpha, m.a, m.b];
                p[k] *= f;
                assert!(ll(p[0], p[1], p[2], p[3]) < best, "parameter {k} × {f}");
            }
        }
    }

    #[test]
    fn fits_refuse_data_they_cannot_fit() {
        assert!(BgNbd::fit(&[], 1.0).is_err());
        assert!(BgNbd::fit(&[cust(0, 0, 0.0, 5.0, 0.0)], 1.0).is_err());
        assert!(BgNbd::fit(&[cust(0, 2, 9.0, 5.0, 1.0)], 1.0).is_err());
        assert!(GammaGamma::fit(&[cust(0, 2, 1.0, 5.0, 3.0)]).is_err());
    }

    #[test]
    fn clv_without_discount_is_purchases_times_value() {
        let s = simulate(5_000, 0.5, 8.0, 1.5, 3.0, 300.0, 3);
        let s: Vec<Summary> = s
            .into_iter()
            .enumerate()
            .map(|(i, c)| Summary { monetary: if c.frequency > 0 { 10.0 + (i % 17) as f64 } else { 0.0 }, ..c })
            .collect();
        let bg = BgNbd::fit(&s, 1.0).unwrap();
        let gg = GammaGamma::fit(&s).unwrap();
        for c in s.iter().take(100) {
            let want = bg.expected_purchases_in_days(90.0, c) * gg.expected_value(c);
            let got = clv(&bg, &gg, c, 3, 0.0);
            assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
            assert!(clv(&bg, &gg, c, 3, 0.01) <= got + 1e-12);
        }
    }
}
