//! Watching a rate (CTR, conversion) for sudden drops without crying wolf: a binomial CUSUM
//! against a seasonal baseline, with a stated false-alarm rate and hysteresis.
//!
//! Traffic arrives in buckets (e.g. 5 minutes): `n` trials (impressions), `x` successes
//! (clicks). The baseline rate p₀ of a bucket is learnt per hour of the day and weekday /
//! weekend (48 slots, each an exponentially weighted sum of past successes and trials with
//! a half-life of `half_life_days`), so daily and weekly seasonality in volume and in the rate
//! itself are expected, not alarming. Against the alternative p₁ = p₀ (1 − `drop`), each
//! bucket adds its log-likelihood ratio
//!
//! ```text
//! LLR = x ln(p₁ / p₀) + (n − x) ln((1 − p₁) / (1 − p₀))
//! ```
//!
//! to S = max(0, S + LLR) (Page's CUSUM). It fires when S > h. For a CUSUM of
//! log-likelihood ratios the mean run length between false alarms is at least e^h buckets
//! (Lorden 1971), so h = ln(buckets in 30 days / allowed false alarms per 30 days) bounds
//! the false-alarm rate; the baseline's own estimation error is why the simulated rate is
//! measured too (`tailor bench alerts`). While S is above h / 2 or the alert fires the
//! baseline is not updated (a drop must not teach itself as normal). A firing alert resolves
//! when the mirror CUSUM (p₀ against p₁) passes h / 2: the rate is back to normal with
//! evidence, not by one good bucket.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How the detector is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateDropParams {
    /// Relative drop to detect (0.2: a fifth of the rate).
    pub drop: f64,
    /// False alarms allowed per 30 days of stable traffic (sets h).
    pub false_alarms_per_30_days: f64,
    /// Length of a bucket (ms).
    pub bucket_ms: i64,
    /// Half-life of the baseline (days).
    pub half_life_days: f64,
    /// Days of data before it may fire.
    pub warm_up_days: f64,
}

impl Default for RateDropParams {
    fn default() -> Self {
        Self { drop: 0.2, false_alarms_per_30_days: 1.0, bucket_ms: 5 * 60_000, half_life_days: 7.0, warm_up_days: 7.0 }
    }
}

impl RateDropParams {
    /// Checks the ranges: drop in (0, 1), a positive false-alarm rate and bucket, a
    /// half-life of at least a day, a warm-up of at least a day.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.drop > 0.0 && self.drop < 1.0) {
            return Err(format!("drop = {}: a share in (0, 1)", self.drop));
        }
        if !(self.false_alarms_per_30_days > 0.0 && self.false_alarms_per_30_days.is_finite()) {
            return Err(format!("false_alarms_per_30_days = {}: a positive number", self.false_alarms_per_30_days));
        }
        if self.bucket_ms < 1_000 || self.bucket_ms > DAY_MS {
            return Err(format!("bucket = {} ms: between 1 s and 1 day", self.bucket_ms));
        }
        if !(self.half_life_days >= 1.0 && self.half_life_days <= 365.0) {
            return Err(format!("half_life_days = {}: between 1 and 365", self.half_life_days));
        }
        if !(self.warm_up_days >= 1.0 && self.warm_up_days <= 365.0) {
            return Err(format!("warm_up_days = {}: between 1 and 365", self.warm_up_days));
        }
        Ok(())
    }

    /// The threshold h: ln(buckets in 30 days / allowed false alarms).
    pub fn threshold(&self) -> f64 {
        let buckets = 30.0 * DAY_MS as f64 / self.bucket_ms as f64;
        (buckets / self.false_alarms_per_30_days).max(std::f64::consts::E).ln()
    }
}

/// What a bucket did to the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    /// Nothing changed.
    None,
    /// It started firing.
    Fired,
    /// It stopped firing.
    Resolved,
}

/// The detector's state (serialisable, so a restart keeps what it learnt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateDrop {
    /// Its settings.
    pub params: RateDropParams,
    /// Per baseline slot: weighted successes and trials, and when they were last decayed.
    slots: Vec<(f64, f64, i64)>,
    /// The CUSUM of the drop.
    pub s: f64,
    /// The mirror CUSUM of the recovery (while firing).
    pub recovery: f64,
    /// Whether the alert fires.
    pub firing: bool,
    /// Start of the first bucket seen.
    first: Option<i64>,
    /// The latest bucket's baseline rate.
    pub baseline: Option<f64>,
}

impl RateDrop {
    /// A detector that has seen nothing.
    pub fn new(params: RateDropParams) -> Self {
        Self {
            params,
            slots: vec![(0.0, 0.0, 0); 48],
            s: 0.0,
            recovery: 0.0,
            firing: false,
            first: None,
            baseline: None,
        }
    }

    fn slot(ts: i64) -> usize {
        let hour = ts.div_euclid(HOUR_MS).rem_euclid(24) as usize;
        // 1970-01-01 was a Thursday: day 0 → weekday 3 (Monday = 0).
        let weekday = (ts.div_euclid(DAY_MS) + 3).rem_euclid(7);
        hour + if weekday >= 5 { 24 } else { 0 }
    }

    /// The learnt rate of the slot `ts` falls in; of all slots together while that one has
    /// no trials yet (a young shop); None before any.
    fn rate_at(&self, ts: i64) -> Option<f64> {
        let (mut x, mut n, _) = self.slots[Self::slot(ts)];
        if n <= 0.0 {
            (x, n) = self.slots.iter().fold((0.0, 0.0), |(a, b), s| (a + s.0, b + s.1));
        }
        (n > 0.0).then(|| ((x + 0.5) / (n + 1.0)).clamp(1e-6, 1.0 - 1e-6))
    }

    fn learn(&mut self, ts: i64, n: u64, x: u64) {
        let half_life = self.params.half_life_days * DAY_MS as f64;
        let slot = &mut self.slots[Self::slot(ts)];
        let decay = if slot.2 == 0 { 1.0 } else { 0.5f64.powf((ts - slot.2).max(0) as f64 / half_life) };
        *slot = (slot.0 * decay + x as f64, slot.1 * decay + n as f64, ts);
    }

    /// Feeds one bucket starting at `ts` (ms; buckets in time order) with `n` trials and
    /// `x` successes (x ≤ n).
    pub fn push(&mut self, ts: i64, n: u64, x: u64) -> Transition {
        let x = x.min(n);
        let first = *self.first.get_or_insert(ts);
        let warm = (ts - first) as f64 >= self.params.warm_up_days * DAY_MS as f64;
        let h = self.params.threshold();
        let mut out = Transition::None;
        if let Some(p0) = self.rate_at(ts)
            && warm
            && n > 0
        {
            self.baseline = Some(p0);
            let p1 = p0 * (1.0 - self.params.drop);
            let (n, x) = (n as f64, x as f64);
            let llr = x * (p1 / p0).ln() + (n - x) * ((1.0 - p1) / (1.0 - p0)).ln();
            self.s = (self.s + llr).max(0.0);
            if self.firing {
                self.recovery = (self.recovery - llr).max(0.0);
                if self.recovery > h / 2.0 {
                    self.firing = false;
                    self.s = 0.0;
                    self.recovery = 0.0;
                    out = Transition::Resolved;
                }
            } else if self.s > h {
                self.firing = true;
                self.recovery = 0.0;
                out = Transition::Fired;
            }
        }
        if !self.firing && self.s <= h / 2.0 {
            self.learn(ts, n, x);
        }
        out
    }
}

/// A simulated shop's traffic for judging a detector: `impressions` per bucket on average,
/// with daily (quiet nights, busy evenings) and weekly (busier weekends) seasonality in
/// volume and a daily swing of ±10% in the rate itself around `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Traffic {
    /// Mean impressions per bucket.
    pub impressions: f64,
    /// Mean click-through rate.
    pub rate: f64,
}

impl Traffic {
    /// Expected (impressions, rate) of the bucket at `ts`.
    pub fn at(&self, ts: i64) -> (f64, f64) {
        let hour = ts.div_euclid(HOUR_MS).rem_euclid(24) as f64;
        let weekday = (ts.div_euclid(DAY_MS) + 3).rem_euclid(7);
        let angle = (hour - 20.0) / 24.0 * std::f64::consts::TAU;
        let volume = self.impressions * (1.0 + 0.7 * angle.cos()) * if weekday >= 5 { 1.3 } else { 1.0 };
        (volume, self.rate * (1.0 + 0.1 * angle.cos()))
    }
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationOutcome {
    /// The traffic simulated.
    pub traffic: Traffic,
    /// Stable days simulated after the warm-up, over all runs.
    pub stable_days: f64,
    /// Alerts fired during them.
    pub false_alarms: u64,
    /// False alarms per 30 days.
    pub false_alarms_per_30_days: f64,
    /// Runs with a drop injected, and how many were detected within 7 days.
    pub drops: u64,
    /// Of which detected.
    pub detected: u64,
    /// Median time from the drop to the alert (hours).
    pub median_delay_hours: Option<f64>,
    /// 90th percentile of it (hours).
    pub p90_delay_hours: Option<f64>,
}

/// Runs `runs` seeded shops: each `warm_up + 30` stable days (false alarms counted after the
/// warm-up), then a relative drop of `drop` from day `warm_up + 30` plus a random hour,
/// detected (or not) within 7 days.
pub fn simulate(params: &RateDropParams, traffic: Traffic, drop: f64, runs: u64, seed: u64) -> SimulationOutcome {
    let mut false_alarms = 0u64;
    let mut delays: Vec<f64> = Vec::new();
    let warm = params.warm_up_days.ceil() as i64;
    // Poisson volume by a normal approximation (exact enough at these means), binomial clicks.
    let draw = |rng: &mut tailor_core::rng::Rng, mean: f64| -> u64 {
        if mean < 30.0 {
            u64::from(rng.poisson(mean))
        } else {
            (mean + mean.sqrt() * rng.normal()).round().max(0.0) as u64
        }
    };
    let clicks = |rng: &mut tailor_core::rng::Rng, n: u64, p: f64| -> u64 {
        if (n as f64) * p * (1.0 - p) < 25.0 {
            (0..n).filter(|_| rng.chance(p)).count() as u64
        } else {
            let (m, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
            (m + sd * rng.normal()).round().clamp(0.0, n as f64) as u64
        }
    };
    for run in 0..runs {
        let mut rng = tailor_core::rng::Rng::fork(seed, run);
        let mut d = RateDrop::new(*params);
        let start = 4 * DAY_MS; // a Monday
        let stable_end = start + (warm + 30) * DAY_MS;
        let drop_at = stable_end + (rng.below(24) as i64) * HOUR_MS;
        let end = drop_at + 7 * DAY_MS;
        let mut ts = start;
        while ts < end {
            let (volume, rate) = traffic.at(ts);
            let rate = if ts >= drop_at { rate * (1.0 - drop) } else { rate };
            let n = draw(&mut rng, volume * params.bucket_ms as f64 / (5.0 * 60_000.0));
            let fired = d.push(ts, n, clicks(&mut rng, n, rate)) == Transition::Fired;
            if fired && ts < drop_at && ts >= start + warm * DAY_MS {
                false_alarms += 1;
            }
            if fired && ts >= drop_at {
                delays.push((ts + params.bucket_ms - drop_at) as f64 / HOUR_MS as f64);
                break;
            }
            if d.firing && ts >= stable_end && ts < drop_at {
                // A false alarm still firing when the drop comes would hide it: clear it.
                d = RateDrop { firing: false, s: 0.0, recovery: 0.0, ..d };
            }
            ts += params.bucket_ms;
        }
    }
    delays.sort_by(f64::total_cmp);
    let q = |p: f64| (!delays.is_empty()).then(|| delays[((delays.len() - 1) as f64 * p).round() as usize]);
    let stable_days = (runs * 30) as f64;
    SimulationOutcome {
        traffic,
        stable_days,
        false_alarms,
        false_alarms_per_30_days: false_alarms as f64 / stable_days * 30.0,
        drops: runs,
        detected: delays.len() as u64,
        median_delay_hours: q(0.5),
        p90_delay_hours: q(0.9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tailor_core::rng::Rng;

    fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| rng.chance(p)).count() as u64
    }

    #[test]
    fn the_threshold_follows_the_allowed_false_alarms() {
        let p = RateDropParams::default();
        // 8,640 five-minute buckets in 30 days.
        assert!((p.threshold() - 8_640f64.ln()).abs() < 1e-12);
        let strict = RateDropParams { false_alarms_per_30_days: 0.1, ..p };
        assert!((strict.threshold() - 86_400f64.ln()).abs() < 1e-9);
        assert!(RateDropParams { drop: 1.0, ..p }.validate().is_err());
        assert!(RateDropParams { bucket_ms: 10, ..p }.validate().is_err());
        assert!(p.validate().is_ok());
    }

    /// The issue's figure in small: seasonal traffic, 30 stable days per shop, then a 20%
    /// drop: no more than the stated false alarms, every drop found.
    #[test]
    fn simulated_shops_keep_the_false_alarm_rate_and_find_every_drop() {
        let params = RateDropParams::default();
        for impressions in [20.0, 500.0] {
            let o = simulate(&params, Traffic { impressions, rate: 0.05 }, 0.2, 12, 1);
            assert!(o.false_alarms_per_30_days <= params.false_alarms_per_30_days, "{o:?}");
            assert_eq!(o.detected, o.drops, "{o:?}");
            assert!(o.median_delay_hours.is_some_and(|h| h < if impressions > 100.0 { 6.0 } else { 48.0 }), "{o:?}");
        }
    }

    /// Hourly buckets, 200 impressions each, CTR 5%: two weeks stable, then 20% lower for a
    /// day, then back. It fires once during the drop, never before, and resolves after.
    #[test]
    fn a_drop_fires_once_and_recovery_resolves() {
        let params = RateDropParams { bucket_ms: HOUR_MS, ..RateDropParams::default() };
        let mut d = RateDrop::new(params);
        let mut rng = Rng::new(3);
        let (mut fired, mut resolved) = (Vec::new(), Vec::new());
        for hour in 0..(24 * 21) {
            let ts = hour * HOUR_MS;
            let p = if (24 * 14..24 * 15).contains(&hour) { 0.04 } else { 0.05 };
            match d.push(ts, 200, binomial(&mut rng, 200, p)) {
                Transition::Fired => fired.push(hour),
                Transition::Resolved => resolved.push(hour),
                Transition::None => {}
            }
        }
        assert_eq!(fired.len(), 1, "fired at {fired:?}");
        assert!((24 * 14..24 * 15).contains(&fired[0]), "fired at hour {}", fired[0]);
        assert_eq!(resolved.len(), 1, "resolved at {resolved:?}");
        assert!(resolved[0] > 24 * 15, "resolved at hour {}", resolved[0]);
        // State survives a save/load (JSON floats to within their last bit).
        let saved = serde_json::to_string(&d).expect("json");
        let mut loaded: RateDrop = serde_json::from_str(&saved).expect("loads");
        let ts = 24 * 21 * HOUR_MS;
        assert_eq!(loaded.push(ts, 200, 2), d.push(ts, 200, 2));
        assert!((loaded.s - d.s).abs() < 1e-9 && loaded.firing == d.firing);
    }
}
