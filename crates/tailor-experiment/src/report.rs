//! Attribution and the experiment report.
//!
//! Inputs are the exposures the server logged (one per served list: rec_id, unit, variant,
//! items, the unit's segment) and the shop's events. Attribution:
//! - click-through: an event carrying the `rec_id` of an exposure belongs to it;
//! - view-through: a purchase or cart without a `rec_id` belongs to the unit's latest
//!   exposure that showed the item within `attribution_window_hours` before it.
//!
//! Unit-level metrics (conversion, revenue per user, AOV) count everything a unit bought
//! after its first exposure: randomisation is by unit, so these comparisons are unbiased
//! whatever the attribution rule. Every metric is computed per day cumulatively in one
//! time-ordered sweep, which gives the lift-over-time series and the always-valid p-values
//! of the daily looks for free.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::Serialize;
use tailor_core::{Event, EventKind, Timestamp};

use crate::error::{ExperimentError, Result};
use crate::sequential::Msprt;
use crate::spec::{Experiment, ExperimentSpec, Metric};
use crate::stats::{self, ChiSquare, SparseSample, Summary};

const DAY_MS: i64 = 86_400_000;

/// One served list of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Exposure {
    /// The rec_id returned with the list (events that carry it are click-through).
    pub rec_id: String,
    /// User id, or session id for anonymous visitors.
    pub unit: String,
    /// Variant index.
    pub variant: usize,
    /// When it was served.
    pub ts: Timestamp,
    /// The items shown, in order.
    pub items: Vec<String>,
    /// The unit's segment when served, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

impl Exposure {
    /// Reads a stored exposure (JSON). Here rather than at the caller so that the decoder
    /// is compiled with this crate's optimisation: a report reads every exposure.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Reads only the time of a stored exposure (no allocation: the other fields are
    /// skipped), for a first pass that finds where the events to attribute begin.
    pub fn ts_from_json(bytes: &[u8]) -> std::result::Result<Timestamp, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Ts {
            ts: Timestamp,
        }
        serde_json::from_slice::<Ts>(bytes).map(|t| t.ts)
    }
}

/// Report options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bootstrap resamples for the money metrics' intervals (0: none).
    pub bootstrap: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// Fewer exposed units than this per variant is warned about.
    pub min_units: u64,
    /// The relative effect the always-valid (mSPRT) p-value is tuned to: its mixing scale
    /// τ is this fraction of the control's value. Any fixed choice keeps the p-value valid;
    /// a τ near the true effect detects it soonest.
    pub msprt_relative_tau: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self { bootstrap: 1000, seed: 7, min_units: 100, msprt_relative_tau: 0.2 }
    }
}

/// Totals of one variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct VariantTotals {
    /// Variant name, as in the spec.
    pub name: String,
    /// Configured weight.
    pub weight: f64,
    /// Exposed units.
    pub users: u64,
    /// Served lists.
    pub exposures: u64,
    /// Impressions (impression events, or served lists when the client sends none).
    pub impressions: u64,
    /// Clicks carrying one of the variant's rec_ids.
    pub clicks: u64,
    /// Clicks per impression.
    pub ctr: f64,
    /// Served lists with at least one click.
    pub accepted: u64,
    /// Accepted / exposures.
    pub acceptance: f64,
    /// Units who bought after their first exposure.
    pub converters: u64,
    /// Converters / users.
    pub conversion: f64,
    /// Purchases attributed to the variant's lists (click- or view-through).
    pub attributed_purchases: u64,
    /// Of which click-through.
    pub click_through_purchases: u64,
    /// Carts attributed to the variant's lists.
    pub attributed_carts: u64,
    /// Attributed purchases per impression.
    pub conversion_per_impression: f64,
    /// Revenue of attributed purchases.
    pub attributed_revenue: f64,
    /// Orders placed by exposed units after exposure.
    pub orders: u64,
    /// Their revenue.
    pub revenue: f64,
    /// Revenue per order.
    pub aov: f64,
    /// Revenue per exposed unit.
    pub revenue_per_user: f64,
}

impl VariantTotals {
    /// The value of a metric.
    pub fn value(&self, m: Metric) -> f64 {
        match m {
            Metric::Ctr => self.ctr,
            Metric::Conversion => self.conversion,
            Metric::ConversionPerImpression => self.conversion_per_impression,
            Metric::Aov => self.aov,
            Metric::RevenuePerUser => self.revenue_per_user,
            Metric::Acceptance => self.acceptance,
        }
    }

    /// (successes, trials) of a rate metric.
    fn counts(&self, m: Metric) -> (u64, u64) {
        match m {
            Metric::Ctr => (self.clicks.min(self.impressions), self.impressions),
            Metric::Conversion => (self.converters, self.users),
            Metric::ConversionPerImpression => (self.attributed_purchases.min(self.impressions), self.impressions),
            Metric::Acceptance => (self.accepted, self.exposures),
            Metric::Aov | Metric::RevenuePerUser => (0, 0),
        }
    }
}

/// A treatment compared with the control on one metric.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct Comparison {
    /// Treatment variant name.
    pub variant: String,
    /// The metric.
    pub metric: Metric,
    /// `two-proportion z` or `welch t`.
    pub test: &'static str,
    /// Control value.
    pub control: f64,
    /// Treatment value.
    pub treatment: f64,
    /// Treatment − control.
    pub diff: f64,
    /// Its confidence interval.
    pub diff_ci: (f64, f64),
    /// Relative lift.
    pub lift: Option<f64>,
    /// Its confidence interval (proportions: delta method; means: the difference's
    /// interval over the control mean).
    pub lift_ci: Option<(f64, f64)>,
    /// Percentile bootstrap interval of the difference (money metrics).
    pub bootstrap_ci: Option<(f64, f64)>,
    /// Fixed-horizon p-value.
    pub p_value: f64,
    /// Holm-adjusted over the treatments.
    pub p_holm: f64,
    /// Always-valid p-value over the daily looks (mSPRT).
    pub p_always_valid: f64,
    /// `p_holm < alpha`.
    pub significant: bool,
}

/// Per segment and variant.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct SegmentRow {
    /// Segment (`(none)` for units without one).
    pub segment: String,
    /// The variant compared with the control.
    pub variant: String,
    /// Exposed units.
    pub users: u64,
    /// Clicks per impression.
    pub ctr: f64,
    /// Converters per unit.
    pub conversion: f64,
    /// Revenue per unit.
    pub revenue_per_user: f64,
}

/// The primary metric's cumulative lift at the end of one day.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct DayPoint {
    /// Day start (ms).
    pub day: Timestamp,
    /// Treatment variant.
    pub variant: String,
    /// Exposed units so far (all variants).
    pub users: u64,
    /// Relative lift so far.
    pub lift: Option<f64>,
    /// Its confidence interval.
    pub lift_ci: Option<(f64, f64)>,
    /// Fixed-horizon p-value at this look (not valid for stopping: shown to compare).
    pub p_value: f64,
    /// Always-valid p-value at this look.
    pub p_always_valid: f64,
}

/// Everything a report says.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::nullable_numbers)]
pub struct Report {
    /// The experiment reported on.
    pub experiment: String,
    /// Current status.
    pub status: &'static str,
    /// The metric the decision is taken on (the spec's first).
    pub primary_metric: Metric,
    /// Significance level.
    pub alpha: f64,
    /// `impression_events` or `served_lists` (when no impression events arrived).
    pub impressions_from: &'static str,
    /// Totals per variant (control first).
    pub variants: Vec<VariantTotals>,
    /// Primary metric, each treatment against the control.
    pub primary: Vec<Comparison>,
    /// Guardrail metrics, each treatment against the control.
    pub guardrails: Vec<Comparison>,
    /// Chi-square test of independence of the primary rate across all variants (rates only).
    pub chi_square: Option<ChiSquare>,
    /// The same with Yates' correction (two variants only).
    pub chi_square_yates: Option<ChiSquare>,
    /// Sample-ratio check of users per variant against the weights.
    pub srm: Option<ChiSquare>,
    /// Per segment and variant.
    pub segments: Vec<SegmentRow>,
    /// Cumulative lift per day.
    pub daily: Vec<DayPoint>,
    /// Plain warnings (SRM, too few users, guardrail worse, units seen in two variants).
    pub warnings: Vec<String>,
    /// One sentence per treatment.
    pub verdict: Vec<String>,
}

/// Running sums of one variant during the sweep.
#[derive(Debug, Clone, Default)]
struct Acc {
    users: u64,
    exposures: u64,
    impression_events: u64,
    clicks: u64,
    accepted: u64,
    converters: u64,
    attributed: u64,
    click_through: u64,
    carts: u64,
    attributed_revenue: f64,
    orders: u64,
    revenue: f64,
    order_values: Summary,
    /// Sum of squares of per-unit revenue (with `revenue` and `users`, the variance).
    unit_rev_sq: f64,
}

/// A unit's state in the sweep.
struct UnitState {
    variant: usize,
    first: i64,
    segment: u32,
    revenue: f64,
    converted: bool,
}

/// "None" in an interned index.
const NONE: u32 = u32::MAX;

/// Strings interned to dense indices: the report keeps indices, never the strings.
#[derive(Default)]
struct Names(HashMap<Box<str>, u32>);

impl Names {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.0.get(s) {
            return i;
        }
        let i = self.0.len() as u32;
        self.0.insert(s.into(), i);
        i
    }

    fn get(&self, s: &str) -> u32 {
        self.0.get(s).copied().unwrap_or(NONE)
    }
}

/// An event the report reads, its strings interned (40 bytes instead of an [`Event`]).
#[derive(Clone, Copy)]
struct Ev {
    ts: i64,
    money: f64,
    unit: u32,
    item: u32,
    rec: u32,
    order: u32,
    kind: EventKind,
}

/// A unit's first exposure.
#[derive(Clone, Copy)]
struct First {
    ts: i64,
    variant: u32,
    segment: u32,
}

fn rate(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

fn unit_of(e: &Event) -> Option<&str> {
    e.user.as_ref().map(|u| u.as_str()).or(e.session.as_deref())
}

fn day_of(ts: i64) -> i64 {
    ts.div_euclid(DAY_MS) * DAY_MS
}

/// Extends the union of view-through intervals `[t, t + window]` of one (unit, item) by an
/// exposure at `t`. Exposures arrive nearly in time order, so the union stays a handful of
/// intervals however often the item is shown; [`normalise`] fixes any disorder at the end.
fn cover(v: &mut Vec<(i64, i64)>, t: i64, window: i64) {
    let (s, e) = (t, t.saturating_add(window));
    if let Some(last) = v.last_mut()
        && s <= last.1
        && e >= last.0
    {
        *last = (last.0.min(s), last.1.max(e));
        return;
    }
    v.push((s, e));
}

/// Sorts and merges intervals into a disjoint, ordered union.
fn normalise(v: &mut Vec<(i64, i64)>) {
    if v.windows(2).all(|p| p[0].1 < p[1].0) {
        return;
    }
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for &(s, e) in v.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    *v = out;
}

/// Whether `t` lies in the (normalised) union.
fn covered(v: &[(i64, i64)], t: i64) -> bool {
    let i = v.partition_point(|iv| iv.0 <= t);
    i > 0 && t <= v[i - 1].1
}

/// Attributes `events` to `exposures` and computes the report of `experiment` (both in
/// any order). A shorthand for [`Attribution`], which takes them one at a time.
pub fn analyse(experiment: &Experiment, exposures: &[Exposure], events: &[Event], opts: Options) -> Result<Report> {
    let mut a = Attribution::new(experiment)?;
    for e in events {
        a.event(e)?;
    }
    let mut x = a.exposures();
    for e in exposures {
        x.exposure(e)?;
    }
    x.finish(opts)
}

/// A report built from streamed inputs: first the events (any order), then the exposures
/// (any order, [`Attribution::exposures`]). What it keeps is bounded by the units, the
/// events and the distinct (unit, item) pairs shown, not by the exposures: a running
/// experiment logs one per served list, and a report over millions of them reads them
/// once without holding them.
pub struct Attribution<'a> {
    experiment: &'a Experiment,
    units: Names,
    items: Names,
    recs: Names,
    orders: Names,
    events: Vec<Ev>,
}

impl<'a> Attribution<'a> {
    /// The event kinds a report reads (others are ignored).
    pub const KINDS: &'static [EventKind] =
        &[EventKind::Impression, EventKind::Click, EventKind::Purchase, EventKind::AddToCart];

    /// Starts a report of a validated experiment.
    pub fn new(experiment: &'a Experiment) -> Result<Self> {
        experiment.spec.validate()?;
        Ok(Self {
            experiment,
            units: Names::default(),
            items: Names::default(),
            recs: Names::default(),
            orders: Names::default(),
            events: Vec::new(),
        })
    }

    /// Reads one event (kinds other than [`Self::KINDS`] and events without a unit are
    /// ignored).
    pub fn event(&mut self, e: &Event) -> Result<()> {
        if !Self::KINDS.contains(&e.kind) {
            return Ok(());
        }
        let Some(unit) = unit_of(e) else { return Ok(()) };
        if self.events.len() >= (NONE - 1) as usize {
            return Err(ExperimentError::invalid("events", "at most 2^32 - 2 events per report"));
        }
        // Items matter for view-through only (purchases and carts); rec_ids for all.
        let buys = matches!(e.kind, EventKind::Purchase | EventKind::AddToCart);
        self.events.push(Ev {
            ts: e.ts.0,
            money: e.unit_price.unwrap_or(0.0) * f64::from(e.quantity),
            unit: self.units.intern(unit),
            item: match e.item.as_ref() {
                Some(i) if buys => self.items.intern(i.as_str()),
                _ => NONE,
            },
            rec: e.rec_id.as_deref().map_or(NONE, |r| self.recs.intern(r)),
            order: match e.order_id.as_deref() {
                Some(o) if e.kind == EventKind::Purchase => self.orders.intern(o),
                _ => NONE,
            },
            kind: e.kind,
        });
        Ok(())
    }

    /// Done with the events: the exposures come next.
    pub fn exposures(self) -> ExposureSweep<'a> {
        let recs = self.recs.0.len();
        ExposureSweep {
            window: self.experiment.spec.attribution_window_hours as i64 * 3_600_000,
            k: self.experiment.spec.variants.len(),
            input: self,
            first: Vec::new(),
            per_variant: Vec::new(),
            rec_unit: vec![NONE; recs],
            shown: HashMap::new(),
            days: std::collections::BTreeMap::new(),
            segments: Names::default(),
            segment_names: Vec::new(),
        }
    }
}

/// The second half of an [`Attribution`]: exposures, then [`ExposureSweep::finish`].
pub struct ExposureSweep<'a> {
    input: Attribution<'a>,
    window: i64,
    k: usize,
    /// Each unit's first exposure (by unit index).
    first: Vec<Option<First>>,
    /// Exposures per unit and variant (`unit · k + variant`).
    per_variant: Vec<u32>,
    /// The unit of the exposure with each rec_id events carry (`NONE`: no such exposure).
    rec_unit: Vec<u32>,
    /// (unit, item) → when a view-through purchase of it is attributable.
    shown: HashMap<u64, Vec<(i64, i64)>>,
    /// Exposures per day and variant.
    days: std::collections::BTreeMap<i64, Vec<u64>>,
    segments: Names,
    segment_names: Vec<String>,
}

impl ExposureSweep<'_> {
    /// Reads one exposure.
    pub fn exposure(&mut self, x: &Exposure) -> Result<()> {
        let k = self.k;
        if x.variant >= k {
            return Err(ExperimentError::invalid(
                "exposures",
                format!("rec_id {} names variant {} but the experiment has {k}", x.rec_id, x.variant),
            ));
        }
        let unit = self.input.units.intern(&x.unit);
        let u = unit as usize;
        if self.first.len() <= u {
            self.first.resize(u + 1, None);
            self.per_variant.resize((u + 1) * k, 0);
        }
        let segment = match &x.segment {
            Some(s) => {
                let i = self.segments.intern(s);
                if i as usize == self.segment_names.len() {
                    self.segment_names.push(s.clone());
                }
                i
            }
            None => NONE,
        };
        let ts = x.ts.0;
        if self.first[u].is_none_or(|f| ts < f.ts) {
            self.first[u] = Some(First { ts, variant: x.variant as u32, segment });
        }
        self.per_variant[u * k + x.variant] += 1;
        self.days.entry(day_of(ts)).or_insert_with(|| vec![0; k])[x.variant] += 1;
        let rec = self.input.recs.get(&x.rec_id);
        if rec != NONE {
            self.rec_unit[rec as usize] = unit;
        }
        if self.window > 0 {
            for item in &x.items {
                let it = self.input.items.get(item);
                if it != NONE {
                    cover(self.shown.entry(u64::from(unit) << 32 | u64::from(it)).or_default(), ts, self.window);
                }
            }
        }
        Ok(())
    }

    /// Attributes the events to the exposures and computes the report. Every metric is
    /// computed per day cumulatively in one time-ordered sweep over the events of exposed
    /// units (an exposure counts from its instant on, before events of the same instant).
    pub fn finish(mut self, opts: Options) -> Result<Report> {
        let experiment = self.input.experiment;
        let spec = &experiment.spec;
        let k = self.k;
        let events = std::mem::take(&mut self.input.events);
        self.first.resize(self.input.units.0.len(), None);
        for v in self.shown.values_mut() {
            normalise(v);
        }
        let mut state: Vec<Option<UnitState>> = self
            .first
            .iter()
            .map(|f| {
                f.map(|f| UnitState {
                    variant: f.variant as usize,
                    first: f.ts,
                    segment: f.segment,
                    revenue: 0.0,
                    converted: false,
                })
            })
            .collect();
        // New units per day and variant (by their first exposure); exposures in another
        // variant than the unit's first.
        let mut new_units: std::collections::BTreeMap<i64, Vec<u64>> = std::collections::BTreeMap::new();
        let mut mixed = 0u64;
        for (u, f) in self.first.iter().enumerate() {
            let Some(f) = f else { continue };
            new_units.entry(day_of(f.ts)).or_insert_with(|| vec![0; k])[f.variant as usize] += 1;
            let row = &self.per_variant[u * k..(u + 1) * k];
            mixed += row
                .iter()
                .enumerate()
                .filter(|&(v, _)| v != f.variant as usize)
                .map(|(_, &n)| u64::from(n))
                .sum::<u64>();
        }
        let mut order: Vec<u32> =
            (0..events.len() as u32).filter(|&i| state[events[i as usize].unit as usize].is_some()).collect();
        order.sort_by_key(|&i| events[i as usize].ts);

        let mut acc = vec![Acc::default(); k];
        let mut clicked = vec![false; self.rec_unit.len()];
        let mut orders_seen: HashSet<(u32, u32)> = HashSet::new();
        let mut daily = Vec::new();
        let primary = spec.primary_metric;
        let mut msprt: Vec<Msprt> = vec![Msprt::new(0.0); k];
        let (days, window, rec_unit, shown) = (&self.days, self.window, &self.rec_unit, &self.shown);
        // The exposures and new units of `day` join the totals before its look.
        let close_day = |acc: &mut [Acc], day: i64, msprt: &mut [Msprt], daily: &mut Vec<DayPoint>| {
            for (a, n) in acc.iter_mut().zip(days.get(&day).into_iter().flatten()) {
                a.exposures += n;
            }
            for (a, n) in acc.iter_mut().zip(new_units.get(&day).into_iter().flatten()) {
                a.users += n;
            }
            let totals = totals_of(spec, acc);
            for v in 1..k {
                let Look { lift, lift_ci, diff, variance: var, p_value } =
                    quick_compare(primary, &totals[0], &totals[v], &acc[0], &acc[v], spec.alpha);
                if msprt[v].tau == 0.0 {
                    msprt[v] = Msprt::new(opts.msprt_relative_tau * totals[0].value(primary).max(0.0));
                }
                let p = match var {
                    Some(var) if msprt[v].tau > 0.0 => msprt[v].look(diff, var),
                    _ => msprt[v].p_value,
                };
                daily.push(DayPoint {
                    day: Timestamp(day),
                    variant: spec.variants[v].name.clone(),
                    users: acc.iter().map(|a| a.users).sum(),
                    lift,
                    lift_ci,
                    p_value,
                    p_always_valid: p,
                });
            }
        };
        if let (Some(&day0), Some(&last_x)) = (days.keys().next(), days.keys().next_back()) {
            let mut day = day0;
            for &i in &order {
                let e = &events[i as usize];
                while e.ts >= day + DAY_MS {
                    close_day(&mut acc, day, &mut msprt, &mut daily);
                    day += DAY_MS;
                }
                let Some(st) = state[e.unit as usize].as_mut() else { continue };
                if e.ts < st.first {
                    continue;
                }
                let v = st.variant;
                let via_rec = (e.rec != NONE && rec_unit[e.rec as usize] != NONE).then_some(e.rec as usize);
                match e.kind {
                    EventKind::Impression if via_rec.is_some() => acc[v].impression_events += 1,
                    EventKind::Click => {
                        if let Some(r) = via_rec {
                            acc[v].clicks += 1;
                            if !clicked[r] {
                                clicked[r] = true;
                                acc[v].accepted += 1;
                            }
                        }
                    }
                    EventKind::Purchase | EventKind::AddToCart => {
                        let viewed = || {
                            window > 0
                                && e.item != NONE
                                && shown
                                    .get(&(u64::from(e.unit) << 32 | u64::from(e.item)))
                                    .is_some_and(|iv| covered(iv, e.ts))
                        };
                        let attributed = via_rec.is_some() || viewed();
                        if e.kind == EventKind::AddToCart {
                            acc[v].carts += u64::from(attributed);
                            continue;
                        }
                        if attributed {
                            acc[v].attributed += 1;
                            acc[v].click_through += u64::from(via_rec.is_some());
                            acc[v].attributed_revenue += e.money;
                        }
                        if !st.converted {
                            st.converted = true;
                            acc[v].converters += 1;
                        }
                        if e.order == NONE || orders_seen.insert((e.unit, e.order)) {
                            acc[v].orders += 1;
                        }
                        acc[v].revenue += e.money;
                        acc[v].unit_rev_sq += (st.revenue + e.money).powi(2) - st.revenue.powi(2);
                        st.revenue += e.money;
                    }
                    _ => {}
                }
            }
            let last = order.last().map_or(last_x, |&i| last_x.max(day_of(events[i as usize].ts)));
            while day < last {
                close_day(&mut acc, day, &mut msprt, &mut daily);
                day += DAY_MS;
            }
            close_day(&mut acc, day, &mut msprt, &mut daily);
        }

        // Order values (lines of one order summed, in the order first seen) for AOV.
        let mut order_ix: HashMap<(u32, u32), usize> = HashMap::new();
        let mut grouped: Vec<(usize, f64)> = Vec::new();
        let mut order_samples: Vec<Vec<f64>> = vec![Vec::new(); k];
        for e in events.iter().filter(|e| e.kind == EventKind::Purchase) {
            let Some(st) = state[e.unit as usize].as_ref() else { continue };
            if e.ts < st.first {
                continue;
            }
            if e.order == NONE {
                order_samples[st.variant].push(e.money);
                continue;
            }
            let n = grouped.len();
            let i = *order_ix.entry((e.unit, e.order)).or_insert(n);
            if i == n {
                grouped.push((st.variant, 0.0));
            }
            grouped[i].1 += e.money;
        }
        for (v, value) in grouped {
            order_samples[v].push(value);
        }
        for (a, s) in acc.iter_mut().zip(&order_samples) {
            a.order_values = Summary::of(s);
        }

        let use_served = acc.iter().all(|a| a.impression_events == 0);
        let totals = totals_of(spec, &acc);
        let mut unit_revenue: Vec<SparseSample> = vec![SparseSample::default(); k];
        for st in state.iter().flatten() {
            if st.revenue != 0.0 {
                unit_revenue[st.variant].values.push(st.revenue);
            } else {
                unit_revenue[st.variant].zeros += 1;
            }
        }
        let compare_all = |metric: Metric, msprt: &[Msprt]| -> Vec<Comparison> {
            let mut out: Vec<Comparison> = (1..k)
                .filter_map(|v| {
                    compare(metric, spec, &totals, &acc, &order_samples, &unit_revenue, v, opts).ok().map(|mut c| {
                        if metric == primary {
                            c.p_always_valid = msprt[v].p_value;
                        }
                        c
                    })
                })
                .collect();
            let adjusted = stats::holm(&out.iter().map(|c| c.p_value).collect::<Vec<_>>());
            for (c, p) in out.iter_mut().zip(adjusted) {
                c.p_holm = p;
                c.significant = p < spec.alpha;
            }
            out
        };
        let primary_cmp = compare_all(primary, &msprt);
        let guardrails: Vec<Comparison> = spec.guardrails.iter().flat_map(|&m| compare_all(m, &msprt)).collect();

        let (chi_square, chi_square_yates) = if primary.is_rate() {
            let table: Vec<[u64; 2]> = totals
                .iter()
                .map(|t| {
                    let (x, n) = t.counts(primary);
                    [x, n - x]
                })
                .collect();
            (
                stats::chi2_independence(&table, false).ok(),
                (k == 2).then(|| stats::chi2_independence(&table, true).ok()).flatten(),
            )
        } else {
            (None, None)
        };
        let users: Vec<u64> = totals.iter().map(|t| t.users).collect();
        let weights: Vec<f64> = spec.variants.iter().map(|v| v.weight).collect();
        let srm = stats::goodness_of_fit(&users, &weights).ok();

        let mut warnings = Vec::new();
        if let Some(s) = srm
            && s.p_value < 0.001
        {
            warnings.push(format!(
                "sample ratio mismatch: users per variant {users:?} do not match the weights {weights:?} (chi-square p = {:.2e}); the assignment or the exposure logging is broken, do not trust the result",
                s.p_value
            ));
        }
        for t in &totals {
            if t.users < opts.min_units {
                warnings
                    .push(format!("too few users: variant {} has {} (fewer than {})", t.name, t.users, opts.min_units));
            }
        }
        for g in &guardrails {
            if g.p_value < spec.alpha && g.diff < 0.0 {
                warnings.push(format!(
                    "guardrail worse: {} of {} is {} than the control ({}), p = {:.4}",
                    g.metric.name(),
                    g.variant,
                    "lower",
                    fmt_lift(g.lift),
                    g.p_value
                ));
            }
        }
        if mixed > 0 {
            warnings.push(format!(
                "{mixed} exposures were logged under a different variant than their unit's first one (was the salt or a weight changed while running?)"
            ));
        }
        if use_served && acc.iter().any(|a| a.exposures > 0) {
            warnings.push("no impression events arrived: CTR is per served list, not per visible impression".into());
        }

        let verdict = primary_cmp.iter().map(|c| verdict_line(c, spec)).collect();
        let segments = self.segment_rows(&state, &events);
        Ok(Report {
            experiment: spec.name.clone(),
            status: experiment.status.name(),
            primary_metric: primary,
            alpha: spec.alpha,
            impressions_from: if use_served { "served_lists" } else { "impression_events" },
            variants: totals,
            primary: primary_cmp,
            guardrails,
            chi_square,
            chi_square_yates,
            srm,
            segments,
            daily,
            warnings,
            verdict,
        })
    }

    /// Per segment (of the unit's first exposure) and variant: units, CTR per served list,
    /// conversion and revenue per unit.
    fn segment_rows(&self, state: &[Option<UnitState>], events: &[Ev]) -> Vec<SegmentRow> {
        #[derive(Default)]
        struct S {
            users: u64,
            converters: u64,
            revenue: f64,
            clicks: u64,
            impressions: u64,
        }
        let k = self.k;
        let mut rows: std::collections::BTreeMap<(&str, usize), S> = std::collections::BTreeMap::new();
        let seg = |st: &UnitState| self.segment_names.get(st.segment as usize).map_or("(none)", String::as_str);
        for (u, st) in state.iter().enumerate() {
            let Some(st) = st else { continue };
            let r = rows.entry((seg(st), st.variant)).or_default();
            r.users += 1;
            r.converters += u64::from(st.converted);
            r.revenue += st.revenue;
            r.impressions += self.per_variant[u * k..(u + 1) * k].iter().map(|&n| u64::from(n)).sum::<u64>();
        }
        for e in events.iter().filter(|e| e.kind == EventKind::Click && e.rec != NONE) {
            let unit = self.rec_unit[e.rec as usize];
            if unit != NONE
                && let Some(st) = state[unit as usize].as_ref()
            {
                rows.entry((seg(st), st.variant)).or_default().clicks += 1;
            }
        }
        rows.into_iter()
            .map(|((segment, v), s)| SegmentRow {
                segment: segment.to_string(),
                variant: self.input.experiment.spec.variants[v].name.clone(),
                users: s.users,
                ctr: rate(s.clicks, s.impressions),
                conversion: rate(s.converters, s.users),
                revenue_per_user: if s.users == 0 { 0.0 } else { s.revenue / s.users as f64 },
            })
            .collect()
    }
}
/// Totals per variant; impressions are the served lists while no impression event arrived.
fn totals_of(spec: &ExperimentSpec, acc: &[Acc]) -> Vec<VariantTotals> {
    let use_served = acc.iter().all(|a| a.impression_events == 0);
    acc.iter()
        .zip(&spec.variants)
        .map(|(a, v)| {
            let impressions = if use_served { a.exposures } else { a.impression_events };
            VariantTotals {
                name: v.name.clone(),
                weight: v.weight,
                users: a.users,
                exposures: a.exposures,
                impressions,
                clicks: a.clicks,
                ctr: rate(a.clicks, impressions),
                accepted: a.accepted,
                acceptance: rate(a.accepted, a.exposures),
                converters: a.converters,
                conversion: rate(a.converters, a.users),
                attributed_purchases: a.attributed,
                click_through_purchases: a.click_through,
                attributed_carts: a.carts,
                conversion_per_impression: rate(a.attributed, impressions),
                attributed_revenue: a.attributed_revenue,
                orders: a.orders,
                revenue: a.revenue,
                aov: if a.orders == 0 { 0.0 } else { a.revenue / a.orders as f64 },
                revenue_per_user: if a.users == 0 { 0.0 } else { a.revenue / a.users as f64 },
            }
        })
        .collect()
}

/// Mean and unbiased variance of per-unit revenue from the running sums.
fn unit_revenue_summary(a: &Acc) -> (u64, f64, f64) {
    let n = a.users;
    if n < 2 {
        return (n, if n == 1 { a.revenue } else { 0.0 }, 0.0);
    }
    let mean = a.revenue / n as f64;
    let var = ((a.unit_rev_sq - n as f64 * mean * mean) / (n - 1) as f64).max(0.0);
    (n, mean, var)
}

/// One daily look at the primary metric.
struct Look {
    lift: Option<f64>,
    lift_ci: Option<(f64, f64)>,
    diff: f64,
    /// Variance of the difference, for the mSPRT (`None`: not yet estimable).
    variance: Option<f64>,
    p_value: f64,
}

const NO_LOOK: Look = Look { lift: None, lift_ci: None, diff: 0.0, variance: None, p_value: 1.0 };

/// Lift, its interval, the p-value and (difference, variance) for the mSPRT, cheaply.
fn quick_compare(m: Metric, c: &VariantTotals, t: &VariantTotals, ca: &Acc, ta: &Acc, alpha: f64) -> Look {
    if m.is_rate() {
        let (x1, n1) = c.counts(m);
        let (x2, n2) = t.counts(m);
        match stats::two_proportion_z(x1, n1, x2, n2, alpha) {
            Ok(z) => {
                let pool = (x1 + x2) as f64 / (n1 + n2) as f64;
                let var = pool * (1.0 - pool) * (1.0 / n1 as f64 + 1.0 / n2 as f64);
                Look { lift: z.lift, lift_ci: z.lift_ci, diff: z.diff, variance: Some(var), p_value: z.p_value }
            }
            Err(_) => NO_LOOK,
        }
    } else {
        let (s1, s2) = if m == Metric::Aov {
            (
                (ca.order_values.n, ca.order_values.mean, ca.order_values.variance()),
                (ta.order_values.n, ta.order_values.mean, ta.order_values.variance()),
            )
        } else {
            (unit_revenue_summary(ca), unit_revenue_summary(ta))
        };
        if s1.0 < 2 || s2.0 < 2 {
            return NO_LOOK;
        }
        let var = s1.2 / s1.0 as f64 + s2.2 / s2.0 as f64;
        if var <= 0.0 {
            return NO_LOOK;
        }
        let diff = s2.1 - s1.1;
        let q = stats::normal_ppf(1.0 - alpha / 2.0);
        let lift = (s1.1 != 0.0).then(|| diff / s1.1);
        let ci = lift.map(|_| ((diff - q * var.sqrt()) / s1.1, (diff + q * var.sqrt()) / s1.1));
        // Large-sample normal test: the exact Welch test runs once, at the end.
        let p_value = 2.0 * stats::normal_sf((diff / var.sqrt()).abs());
        Look { lift, lift_ci: ci, diff, variance: Some(var), p_value }
    }
}

#[allow(clippy::too_many_arguments)]
fn compare(
    m: Metric,
    spec: &ExperimentSpec,
    totals: &[VariantTotals],
    acc: &[Acc],
    orders: &[Vec<f64>],
    unit_revenue: &[SparseSample],
    v: usize,
    opts: Options,
) -> Result<Comparison> {
    let alpha = spec.alpha;
    let (c, t) = (&totals[0], &totals[v]);
    let base = Comparison {
        variant: t.name.clone(),
        metric: m,
        test: "two-proportion z",
        control: c.value(m),
        treatment: t.value(m),
        diff: 0.0,
        diff_ci: (0.0, 0.0),
        lift: None,
        lift_ci: None,
        bootstrap_ci: None,
        p_value: 1.0,
        p_holm: 1.0,
        p_always_valid: 1.0,
        significant: false,
    };
    if m.is_rate() {
        let (x1, n1) = c.counts(m);
        let (x2, n2) = t.counts(m);
        let z = stats::two_proportion_z(x1, n1, x2, n2, alpha)?;
        return Ok(Comparison {
            diff: z.diff,
            diff_ci: z.diff_ci,
            lift: z.lift,
            lift_ci: z.lift_ci,
            p_value: z.p_value,
            ..base
        });
    }
    let (a, b, sa, sb) = if m == Metric::Aov {
        let sa = SparseSample { values: orders[0].clone(), zeros: 0 };
        let sb = SparseSample { values: orders[v].clone(), zeros: 0 };
        (acc[0].order_values, acc[v].order_values, sa, sb)
    } else {
        let s = |a: &Acc| {
            let (n, mean, var) = unit_revenue_summary(a);
            // Rebuild a Summary from the sums (push-free): n, mean and M2 = var·(n−1).
            Summary::from_moments(n, mean, var)
        };
        (s(&acc[0]), s(&acc[v]), unit_revenue[0].clone(), unit_revenue[v].clone())
    };
    let w = stats::welch(&a, &b, alpha)?;
    let bootstrap_ci = (opts.bootstrap >= 100)
        .then(|| stats::bootstrap_mean_diff(&sa, &sb, opts.bootstrap, alpha, opts.seed ^ v as u64).ok())
        .flatten();
    Ok(Comparison {
        test: "welch t",
        diff: w.diff,
        diff_ci: w.diff_ci,
        lift: w.lift,
        lift_ci: w.lift.map(|_| (w.diff_ci.0 / w.control, w.diff_ci.1 / w.control)),
        bootstrap_ci,
        p_value: w.p_value,
        ..base
    })
}

fn fmt_lift(l: Option<f64>) -> String {
    l.map_or_else(|| "n/a".into(), |l| format!("{:+.1}%", 100.0 * l))
}

fn verdict_line(c: &Comparison, spec: &ExperimentSpec) -> String {
    let ci = c
        .lift_ci
        .map(|(lo, hi)| format!(" ({:.0}% CI {:+.1}% to {:+.1}%)", 100.0 * (1.0 - spec.alpha), 100.0 * lo, 100.0 * hi))
        .unwrap_or_default();
    let word = if c.significant {
        if c.diff > 0.0 { "significantly better" } else { "significantly worse" }
    } else {
        "not significantly different"
    };
    format!(
        "{} vs {}: {} {}{}, p = {:.4} (Holm {:.4}, always-valid {:.4}): {word}",
        c.variant,
        spec.variants[0].name,
        c.metric.name(),
        fmt_lift(c.lift),
        ci,
        c.p_value,
        c.p_holm,
        c.p_always_valid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Status;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_790_000_000_000;

    fn exposure(rec: &str, unit: &str, variant: usize, at: i64, items: &[&str], segment: &str) -> Exposure {
        Exposure {
            rec_id: rec.into(),
            unit: unit.into(),
            variant,
            ts: Timestamp(T0 + at),
            items: items.iter().map(|s| s.to_string()).collect(),
            segment: Some(segment.into()),
        }
    }

    fn event(unit: &str, item: &str, kind: EventKind, at: i64, rec: Option<&str>) -> Event {
        let mut e = Event::new(Some(unit), Some(item), kind, Timestamp(T0 + at));
        e.rec_id = rec.map(str::to_owned);
        e
    }

    fn buy(unit: &str, item: &str, at: i64, rec: Option<&str>, price: f64, qty: u32, order: Option<&str>) -> Event {
        let mut e = event(unit, item, EventKind::Purchase, at, rec);
        e.unit_price = Some(price);
        e.quantity = qty;
        e.order_id = order.map(str::to_owned);
        e
    }

    #[test]
    fn attribution_counts_click_through_view_through_and_unit_metrics() {
        let mut exp =
            Experiment::create(ExperimentSpec::new("t", &["control", "new"]), Timestamp(T0), None).expect("spec");
        exp.transition(Status::Running, Timestamp(T0), None).expect("start");
        let exposures = vec![
            exposure("r1", "u1", 0, 0, &["A", "B"], "loyal"),
            exposure("r2", "u2", 1, 0, &["C"], "loyal"),
            exposure("r3", "u2", 1, 2 * H, &["D"], "loyal"),
            exposure("r4", "u3", 1, 0, &["E"], "new"),
        ];
        let events = vec![
            event("u1", "A", EventKind::Impression, 1, Some("r1")),
            event("u2", "C", EventKind::Impression, 1, Some("r2")),
            event("u2", "D", EventKind::Impression, 2 * H + 1, Some("r3")),
            event("u3", "E", EventKind::Impression, 1, Some("r4")),
            event("u1", "A", EventKind::Click, 10, Some("r1")),
            event("u2", "C", EventKind::Click, 10, Some("r2")),
            event("u2", "C", EventKind::Click, 20, Some("r2")),
            event("u1", "A", EventKind::AddToCart, 30, Some("r1")),
            // Click-through purchase of the control.
            buy("u1", "A", H, Some("r1"), 7.0, 1, None),
            // Before exposure: ignored.
            buy("u1", "B", -H, None, 100.0, 1, None),
            // View-through (r3 showed D two hours before... one hour before), and an
            // unattributed line of the same order.
            buy("u2", "D", 3 * H, None, 10.0, 2, Some("o1")),
            buy("u2", "Z", 3 * H, None, 5.0, 1, Some("o1")),
            // Outside the 24 h window: converts the unit but is not attributed.
            buy("u3", "E", 30 * H, None, 8.0, 1, None),
            // A unit never exposed: ignored.
            buy("u9", "A", H, Some("r1"), 50.0, 1, None),
        ];
        let r =
            analyse(&exp, &exposures, &events, Options { bootstrap: 0, seed: 1, min_units: 0, ..Options::default() })
                .expect("report");
        let c = &r.variants[0];
        assert_eq!((c.users, c.exposures, c.impressions, c.clicks, c.accepted, c.converters), (1, 1, 1, 1, 1, 1));
        assert_eq!((c.attributed_purchases, c.click_through_purchases, c.attributed_carts, c.orders), (1, 1, 1, 1));
        assert_eq!((c.attributed_revenue, c.revenue), (7.0, 7.0));
        let t = &r.variants[1];
        assert_eq!((t.users, t.exposures, t.impressions, t.clicks, t.accepted, t.converters), (2, 3, 3, 2, 1, 2));
        assert_eq!((t.attributed_purchases, t.click_through_purchases, t.orders), (1, 0, 2));
        assert_eq!((t.attributed_revenue, t.revenue), (20.0, 33.0));
        assert!((t.ctr - 2.0 / 3.0).abs() < 1e-12 && (t.acceptance - 1.0 / 3.0).abs() < 1e-12);
        assert!((t.aov - 16.5).abs() < 1e-12 && (t.revenue_per_user - 16.5).abs() < 1e-12);
        assert_eq!(r.impressions_from, "impression_events");
        let seg: Vec<(&str, &str, u64)> =
            r.segments.iter().map(|s| (s.segment.as_str(), s.variant.as_str(), s.users)).collect();
        assert_eq!(seg, [("loyal", "control", 1), ("loyal", "new", 1), ("new", "new", 1)]);
        assert!(!r.warnings.iter().any(|w| w.contains("too few")), "min_units 0 warns about nothing");
        assert_eq!(r.daily.len(), 2, "two days of looks: {:?}", r.daily);
        // A report names what it cannot conclude instead of failing.
        assert_eq!(r.primary.len(), 1);
    }

    #[test]
    fn the_report_does_not_depend_on_the_order_of_its_inputs() {
        let mut spec = ExperimentSpec::new("o", &["a", "b"]);
        spec.guardrails = vec![Metric::RevenuePerUser, Metric::Aov];
        let exp = Experiment::create(spec, Timestamp(T0), None).expect("spec");
        let mut rng = tailor_core::rng::Rng::new(3);
        let mut exposures = Vec::new();
        let mut events = Vec::new();
        for n in 0..3000i64 {
            let u = n % 400;
            let (unit, rec) = (format!("u{u}"), format!("r{n}"));
            let at = n * 97_000 + rng.below(50_000) as i64;
            let item = format!("i{}", rng.below(30));
            exposures.push(exposure(
                &rec,
                &unit,
                usize::from(u % 3 == 0),
                at,
                &[&item, "i0"],
                ["x", "y"][(u % 2) as usize],
            ));
            if rng.chance(0.3) {
                events.push(event(&unit, &item, EventKind::Click, at + 10, Some(&rec)));
            }
            if rng.chance(0.2) {
                let order = format!("o{}", n / 2);
                events.push(buy(&unit, &item, at + rng.below(40 * H as usize) as i64, None, 9.5, 1, Some(&order)));
            }
        }
        let opts = Options { bootstrap: 0, ..Options::default() };
        let a = analyse(&exp, &exposures, &events, opts).expect("report");
        assert!(a.variants.iter().all(|v| v.attributed_purchases > 0 && v.clicks > 0), "{:?}", a.variants);
        exposures.reverse();
        events.reverse();
        let b = analyse(&exp, &exposures, &events, opts).expect("report");
        assert_eq!(a.variants, b.variants);
        assert_eq!(a.daily, b.daily);
        assert_eq!(a.segments, b.segments);
        assert_eq!(serde_json::to_string(&a.primary).ok(), serde_json::to_string(&b.primary).ok());
    }

    proptest::proptest! {
        /// The interval union answers "was the item shown within the window before t" as
        /// a scan of every exposure does, in whatever order the exposures arrive.
        #[test]
        fn view_through_coverage_equals_a_scan_of_every_exposure(
            shown in proptest::collection::vec(0i64..1000, 0..40),
            window in 0i64..200,
            probes in proptest::collection::vec(-50i64..1300, 1..40),
        ) {
            let mut v = Vec::new();
            for &t in &shown {
                cover(&mut v, t, window);
            }
            normalise(&mut v);
            for &t in &probes {
                let scan = shown.iter().any(|&x| x <= t && t - x <= window);
                proptest::prop_assert_eq!(covered(&v, t), scan, "t = {} shown = {:?}", t, shown);
            }
        }
    }

    #[test]
    fn a_clear_winner_is_called_significant_and_srm_is_flagged() {
        let mut spec = ExperimentSpec::new("w", &["a", "b"]);
        spec.primary_metric = Metric::Ctr;
        spec.guardrails = vec![Metric::RevenuePerUser];
        let exp = Experiment::create(spec, Timestamp(T0), None).expect("spec");
        let mut exposures = Vec::new();
        let mut events = Vec::new();
        // 3,000 users in a, 2,000 in b (weights are equal: a sample-ratio mismatch);
        // b's lists are clicked twice as often.
        for u in 0..5000i64 {
            let variant = usize::from(u >= 3000);
            let rec = format!("r{u}");
            let unit = format!("u{u}");
            exposures.push(exposure(&rec, &unit, variant, u * 1000, &["A"], "all"));
            let clicks = if variant == 1 { u % 5 == 0 } else { u % 10 == 0 };
            if clicks {
                events.push(event(&unit, "A", EventKind::Click, u * 1000 + 5, Some(&rec)));
            }
        }
        let r = analyse(&exp, &exposures, &events, Options::default()).expect("report");
        let cmp = &r.primary[0];
        assert!(cmp.significant && cmp.diff > 0.0, "{cmp:?}");
        assert!((cmp.lift.expect("lift") - 1.0).abs() < 1e-9, "CTR 0.2 vs 0.1 is +100%");
        assert!(r.verdict[0].contains("significantly better"), "{}", r.verdict[0]);
        assert!(r.warnings.iter().any(|w| w.starts_with("sample ratio mismatch")), "{:?}", r.warnings);
        assert!(r.warnings.iter().any(|w| w.contains("no impression events")));
        assert!(r.chi_square.is_some_and(|c| c.p_value < 1e-6) && r.chi_square_yates.is_some());
        assert_eq!(r.guardrails.len(), 0, "no revenue at all: the guardrail is undefined, not invented");
    }
}
