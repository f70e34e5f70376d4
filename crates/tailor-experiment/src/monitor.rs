//! Watching a rate (CTR, conversion; or the share of fallback lists, errors, slow requests;
//! or events per bucket) for sudden changes without crying wolf: a CUSUM against a seasonal
//! baseline, with a stated false-alarm rate and hysteresis.
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
//! when the mirror CUSUM (p₀ against p₁) passes h: the rate is back to normal with the
//! same evidence that fired it, so a firing alert does not flap at low volume (at h / 2 a
//! doubled fallback share of 25 lists a bucket resolved and fired again within hours).
//!
//! Variants: [`Direction::Rise`] watches for p₁ = p₀ (1 + `drop`) (capped below 1) instead,
//! for rates that should stay low (fallback lists, 5xx answers); [`RateDropParams::expected`]
//! fixes p₀ (an objective such as "1% of requests slower than 50 ms", i.e. a p99) instead of
//! learning it, and needs no warm-up; [`Counts::Poisson`] reads `x` as events in `n` units of
//! exposure (buckets) with LLR = x ln(λ₁ / λ₀) − n (λ₁ − λ₀), for an ingest rate.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Which way the watched rate moves when something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// It falls (click-through rate, conversion, ingest).
    #[default]
    Drop,
    /// It rises (fallback share, error share, slow requests).
    Rise,
}

/// What the counts of a bucket are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// `x` successes of `n` trials (clicks of impressions).
    #[default]
    Binomial,
    /// `x` events in `n` units of exposure (one per bucket): a Poisson rate.
    Poisson,
}

/// How the detector is set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateDropParams {
    /// Relative change to detect: 0.2 is a fifth of the rate lost ([`Direction::Drop`],
    /// in (0, 1)) or gained ([`Direction::Rise`], in (0, 100]).
    pub drop: f64,
    /// Which way is wrong.
    #[serde(default)]
    pub direction: Direction,
    /// What the counts are.
    #[serde(default)]
    pub counts: Counts,
    /// A fixed expected rate (an objective) instead of the learnt one; binomial only, in
    /// (0, 1).
    #[serde(default)]
    pub expected: Option<f64>,
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
        Self {
            drop: 0.2,
            direction: Direction::Drop,
            counts: Counts::Binomial,
            expected: None,
            false_alarms_per_30_days: 1.0,
            bucket_ms: 5 * 60_000,
            half_life_days: 7.0,
            warm_up_days: 7.0,
        }
    }
}

impl RateDropParams {
    /// Checks the ranges: a drop in (0, 1) or a rise in (0, 100], a positive false-alarm
    /// rate and bucket, a half-life of at least a day, a warm-up of at least a day, an
    /// expected rate in (0, 1) of binomial counts.
    pub fn validate(&self) -> Result<(), String> {
        match self.direction {
            Direction::Drop if !(self.drop > 0.0 && self.drop < 1.0) => {
                return Err(format!("drop = {}: a share in (0, 1)", self.drop));
            }
            Direction::Rise if !(self.drop > 0.0 && self.drop <= 100.0) => {
                return Err(format!("rise = {}: a relative rise in (0, 100]", self.drop));
            }
            _ => {}
        }
        if let Some(e) = self.expected
            && !(self.counts == Counts::Binomial && e > 0.0 && e < 1.0)
        {
            return Err(format!("expected = {e}: a rate in (0, 1) of binomial counts"));
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
        if let Some(e) = self.params.expected {
            return Some(e);
        }
        let (mut x, mut n, _) = self.slots[Self::slot(ts)];
        if n <= 0.0 {
            (x, n) = self.slots.iter().fold((0.0, 0.0), |(a, b), s| (a + s.0, b + s.1));
        }
        (n > 0.0).then(|| match self.params.counts {
            Counts::Binomial => ((x + 0.5) / (n + 1.0)).clamp(1e-6, 1.0 - 1e-6),
            // Events per bucket: half an event when none was ever seen.
            Counts::Poisson => x.max(0.5) / n,
        })
    }

    /// The log-likelihood ratio of one bucket, the alternative against the baseline `p0`.
    fn llr(&self, p0: f64, n: f64, x: f64) -> f64 {
        let p1 = match self.params.direction {
            Direction::Drop => p0 * (1.0 - self.params.drop),
            Direction::Rise => p0 * (1.0 + self.params.drop),
        };
        match self.params.counts {
            Counts::Binomial => {
                let p1 = p1.min(1.0 - 1e-9);
                x * (p1 / p0).ln() + (n - x) * ((1.0 - p1) / (1.0 - p0)).ln()
            }
            Counts::Poisson => x * (p1 / p0).ln() - n * (p1 - p0),
        }
    }

    fn learn(&mut self, ts: i64, n: u64, x: u64) {
        let half_life = self.params.half_life_days * DAY_MS as f64;
        let slot = &mut self.slots[Self::slot(ts)];
        let decay = if slot.2 == 0 { 1.0 } else { 0.5f64.powf((ts - slot.2).max(0) as f64 / half_life) };
        *slot = (slot.0 * decay + x as f64, slot.1 * decay + n as f64, ts);
    }

    /// Feeds one bucket starting at `ts` (ms; buckets in time order) with `n` trials and
    /// `x` successes (x ≤ n), or [`Counts::Poisson`] `x` events in `n` buckets.
    pub fn push(&mut self, ts: i64, n: u64, x: u64) -> Transition {
        let x = if self.params.counts == Counts::Binomial { x.min(n) } else { x };
        let first = *self.first.get_or_insert(ts);
        let warm = self.params.expected.is_some() || (ts - first) as f64 >= self.params.warm_up_days * DAY_MS as f64;
        let h = self.params.threshold();
        let mut out = Transition::None;
        if let Some(p0) = self.rate_at(ts)
            && warm
            && n > 0
        {
            self.baseline = Some(p0);
            let llr = self.llr(p0, n as f64, x as f64);
            self.s = (self.s + llr).max(0.0);
            if self.firing {
                self.recovery = (self.recovery - llr).max(0.0);
                if self.recovery > h {
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
/// warm-up), then a relative change of `drop` from day `warm_up + 30` plus a random hour
/// (the rate falls, or rises for [`Direction::Rise`]; for [`Counts::Poisson`] the volume
/// itself changes and the detector sees events per bucket), detected (or not) within 7 days.
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
            let change = match (ts >= drop_at, params.direction) {
                (false, _) => 1.0,
                (true, Direction::Drop) => 1.0 - drop,
                (true, Direction::Rise) => 1.0 + drop,
            };
            let volume = volume * params.bucket_ms as f64 / (5.0 * 60_000.0);
            let fired = match params.counts {
                Counts::Binomial => {
                    let n = draw(&mut rng, volume);
                    d.push(ts, n, clicks(&mut rng, n, (rate * change).min(1.0)))
                }
                Counts::Poisson => d.push(ts, 1, draw(&mut rng, volume * change)),
            } == Transition::Fired;
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

    /// A rate that should stay low (fallback lists at 5%, 300 lists an hour in 5-minute
    /// buckets) doubles for a day: it fires once in that day, never in the two stable
    /// weeks, and resolves after.
    #[test]
    fn a_rise_fires_once_and_resolves() {
        let params = RateDropParams { direction: Direction::Rise, drop: 1.0, ..RateDropParams::default() };
        let per_hour = HOUR_MS / params.bucket_ms;
        let mut d = RateDrop::new(params);
        let mut rng = Rng::new(5);
        let (mut fired, mut resolved) = (Vec::new(), Vec::new());
        for b in 0..(24 * 21 * per_hour) {
            let hour = b / per_hour;
            let p = if (24 * 14..24 * 15).contains(&hour) { 0.10 } else { 0.05 };
            match d.push(b * params.bucket_ms, 25, binomial(&mut rng, 25, p)) {
                Transition::Fired => fired.push(hour),
                Transition::Resolved => resolved.push(hour),
                Transition::None => {}
            }
        }
        assert_eq!(fired.len(), 1, "fired at hours {fired:?}");
        assert!((24 * 14..24 * 15).contains(&fired[0]), "fired at hour {}", fired[0]);
        assert!(resolved.len() == 1 && resolved[0] > 24 * 15, "resolved at hours {resolved:?}");
        // A drop of the same rate is no alarm for a rise detector.
        let mut d = RateDrop::new(params);
        for b in 0..(24 * 21 * per_hour) {
            let p = if b >= 24 * 14 * per_hour { 0.01 } else { 0.05 };
            assert_eq!(d.push(b * params.bucket_ms, 25, binomial(&mut rng, 25, p)), Transition::None, "bucket {b}");
        }
    }

    /// An objective instead of a baseline: 1% of requests may be slower than the limit (a
    /// p99). At 1% it stays quiet from the first bucket (no warm-up); at 3% it fires within
    /// the first buckets.
    #[test]
    fn a_fixed_objective_needs_no_warm_up() {
        let params = RateDropParams {
            direction: Direction::Rise,
            drop: 1.0,
            expected: Some(0.01),
            bucket_ms: 60_000,
            ..RateDropParams::default()
        };
        let mut rng = Rng::new(8);
        let mut d = RateDrop::new(params);
        for m in 0..(60 * 24 * 3) {
            assert_eq!(d.push(m * 60_000, 1_000, binomial(&mut rng, 1_000, 0.01)), Transition::None, "minute {m}");
        }
        let mut d = RateDrop::new(params);
        let first = (0..60).find(|m| d.push(m * 60_000, 1_000, binomial(&mut rng, 1_000, 0.03)) == Transition::Fired);
        assert!(first.is_some_and(|m| m < 3), "fired at minute {first:?}");
        assert_eq!(d.baseline, Some(0.01));
        assert!(RateDropParams { expected: Some(1.5), ..params }.validate().is_err());
        assert!(RateDropParams { expected: Some(0.01), counts: Counts::Poisson, ..params }.validate().is_err());
        assert!(RateDropParams { drop: 150.0, ..params }.validate().is_err());
        assert!(params.validate().is_ok());
    }

    /// Events per 5-minute bucket, Poisson around a daily curve (quiet nights): 30 stable
    /// days raise no alarm at a halving detector; then half the events go missing and it
    /// fires within the hour.
    #[test]
    fn an_ingest_rate_that_halves_fires_and_a_seasonal_one_does_not() {
        let params = RateDropParams { counts: Counts::Poisson, drop: 0.5, ..RateDropParams::default() };
        let mut d = RateDrop::new(params);
        let mut rng = Rng::new(13);
        let traffic = Traffic { impressions: 200.0, rate: 0.0 };
        let bucket = params.bucket_ms;
        let start = 4 * DAY_MS;
        let stable = start + 37 * DAY_MS;
        let mut ts = start;
        while ts < stable {
            let n = u64::from(rng.poisson(traffic.at(ts).0));
            assert_eq!(d.push(ts, 1, n), Transition::None, "day {:.2}", (ts - start) as f64 / DAY_MS as f64);
            ts += bucket;
        }
        let fired = (0..48).find(|k| {
            let t = stable + k * bucket;
            d.push(t, 1, u64::from(rng.poisson(traffic.at(t).0 * 0.4))) == Transition::Fired
        });
        assert!(fired.is_some_and(|k| k < 12), "fired after {fired:?} buckets");
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
