//! Customer lifetime value and cohorts over the stored purchases: the CLI's `tailor report
//! clv|cohorts` and the admin API answer from here.
//!
//! A purchase's value is quantity × unit price (the item's effective price when the event
//! has none), as the segmentation features count it; returns are not subtracted (cohort
//! revenue is what the cohort bought).

use std::collections::HashMap;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use tailor_core::{EventKind, Timestamp};
use tailor_segment::clv::{self, BgNbd, GammaGamma, Purchase, Summary};
use tailor_segment::cohort::{self, Cohorts};
use tailor_store::{EventFilter, Store};

use crate::segmentation::{Error, Result, item_table};

/// The stored purchases, users interned in first-seen order.
pub struct Purchases {
    /// External user id of each dense index.
    pub users: Vec<String>,
    /// The purchases.
    pub lines: Vec<Purchase>,
}

/// Every purchase by a known user before `until` (all when None).
pub fn purchases(store: &dyn Store, until: Option<Timestamp>) -> Result<Purchases> {
    let items = item_table(store)?;
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut users = Vec::new();
    let mut lines = Vec::new();
    let filter = EventFilter { since: None, until, kinds: Some(&[EventKind::Purchase]) };
    store.scan_events(filter, &mut |_, e| {
        if let Some(u) = &e.user {
            let user = *index.entry(u.0.clone()).or_insert_with(|| {
                users.push(u.0.clone());
                (users.len() - 1) as u32
            });
            let price = e
                .unit_price
                .or_else(|| e.item.as_ref().and_then(|i| items.get(&i.0)).and_then(|i| i.effective_price))
                .unwrap_or(0.0);
            lines.push(Purchase { user, ts: e.ts.0, amount: f64::from(e.quantity) * price });
        }
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(Purchases { users, lines })
}

/// The cohort matrix of the stored purchases.
pub fn cohorts(store: &dyn Store) -> Result<Cohorts> {
    Ok(cohort::cohorts(&purchases(store, None)?.lines))
}

/// What `tailor report clv` asks for.
#[derive(Debug, Clone)]
pub struct ClvOptions {
    /// Last day of the observation (default: the day of the latest purchase).
    pub through: Option<Timestamp>,
    /// Months (30 days) of value to add up.
    pub months: u32,
    /// Discount per month (0 for none).
    pub monthly_discount: f64,
    /// How many of the most valuable customers to list.
    pub top: usize,
}

/// One customer's figures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CustomerValue {
    /// External user id.
    pub user: String,
    /// Repeat purchase days.
    pub frequency: u32,
    /// Days from the first purchase day to the last.
    pub recency_days: f64,
    /// Days from the first purchase day to the end of the observation.
    pub age_days: f64,
    /// Mean value of a repeat purchase day.
    pub monetary: f64,
    /// Probability of still being active.
    pub p_alive: f64,
    /// Purchase days expected in the horizon.
    pub expected_purchases: f64,
    /// Expected value of a future purchase day.
    pub expected_value: f64,
    /// Lifetime value over the horizon.
    pub clv: f64,
}

/// Lifetime value of the members of one segment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SegmentValue {
    /// Segmentation name.
    pub segmentation: String,
    /// Segment name.
    pub segment: String,
    /// Members with a purchase.
    pub customers: usize,
    /// Mean lifetime value of those members.
    pub mean_clv: f64,
    /// Their summed lifetime value.
    pub total_clv: f64,
    /// Their mean probability of being active.
    pub mean_p_alive: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClvReport {
    /// Last day of the observation (`YYYY-MM-DD`).
    pub through: String,
    /// Months (of 30 days) the values add up.
    pub months: u32,
    /// Discount per month.
    pub monthly_discount: f64,
    /// Customers with a purchase.
    pub customers: usize,
    /// Customers who bought on more than one day.
    pub repeat_customers: usize,
    /// Purchase model (days); None when the data cannot be fitted (see `reason`).
    pub bg_nbd: Option<BgNbd>,
    /// Value model; None when the data cannot be fitted.
    pub gamma_gamma: Option<GammaGamma>,
    /// Why there are no models (no purchases, too few repeat buyers); None when fitted.
    pub reason: Option<String>,
    /// Seconds to fit both models (summaries included).
    pub fit_seconds: f64,
    /// Summed lifetime value of every customer.
    pub total_clv: f64,
    /// Summed purchase days expected in the horizon.
    pub total_expected_purchases: f64,
    /// The most valuable customers, best first.
    pub top: Vec<CustomerValue>,
    /// Per segment of every stored segmentation (their latest run).
    pub segments: Vec<SegmentValue>,
    /// Every customer, in first-purchase order (not serialised; for `--out`).
    #[serde(skip)]
    pub all: Vec<CustomerValue>,
}

/// Fits BG/NBD and Gamma-Gamma on the stored purchases and scores every customer.
pub fn clv_report(store: &dyn Store, o: &ClvOptions) -> Result<ClvReport> {
    if !(o.monthly_discount.is_finite() && (0.0..1.0).contains(&o.monthly_discount)) {
        return Err(Error::Usage(format!("discount = {}: a share per month in [0, 1)", o.monthly_discount)));
    }
    if o.months == 0 || o.months > 120 {
        return Err(Error::Usage(format!("months = {}: between 1 and 120", o.months)));
    }
    let until = o.through.map(|t| Timestamp((clv::day_of(t.0) + 1) * 86_400_000));
    let p = purchases(store, until)?;
    let unfitted = |through: String, customers: usize, reason: String| ClvReport {
        through,
        months: o.months,
        monthly_discount: o.monthly_discount,
        customers,
        repeat_customers: 0,
        bg_nbd: None,
        gamma_gamma: None,
        reason: Some(reason),
        fit_seconds: 0.0,
        total_clv: 0.0,
        total_expected_purchases: 0.0,
        top: Vec::new(),
        segments: Vec::new(),
        all: Vec::new(),
    };
    let day_text = |d: i64| Timestamp(d * 86_400_000).to_rfc3339().chars().take(10).collect::<String>();
    let Some(last) = p.lines.iter().map(|l| l.ts).max() else {
        let through = o.through.map_or_else(String::new, |t| day_text(clv::day_of(t.0)));
        return Ok(unfitted(through, 0, "no purchase is stored; lifetime value needs purchases".into()));
    };
    let end_day = clv::day_of(o.through.map_or(last, |t| t.0));
    let started = Instant::now();
    let summaries = clv::summarize(&p.lines, end_day, 1.0).map_err(|e| Error::Data(e.to_string()))?;
    let fitted = BgNbd::fit(&summaries, 1.0)
        .map_err(|e| format!("BG/NBD: {e}"))
        .and_then(|bg| GammaGamma::fit(&summaries).map(|gg| (bg, gg)).map_err(|e| format!("Gamma-Gamma: {e}")))
        .and_then(|(bg, gg)| {
            if gg.q > 1.0 {
                Ok((bg, gg))
            } else {
                Err(format!(
                    "Gamma-Gamma: q = {:.3} <= 1, the mean value of a purchase is not finite on this data",
                    gg.q
                ))
            }
        });
    let (bg, gg) = match fitted {
        Ok(m) => m,
        Err(reason) => return Ok(unfitted(day_text(end_day), summaries.len(), reason)),
    };
    let fit_seconds = started.elapsed().as_secs_f64();
    let value = |s: &Summary| CustomerValue {
        user: p.users[s.user as usize].clone(),
        frequency: s.frequency,
        recency_days: s.recency,
        age_days: s.t,
        monetary: s.monetary,
        p_alive: bg.p_alive(s),
        expected_purchases: bg.expected_purchases_in_days(30.0 * f64::from(o.months), s),
        expected_value: gg.expected_value(s),
        clv: clv::clv(&bg, &gg, s, o.months, o.monthly_discount),
    };
    let all: Vec<CustomerValue> = summaries.iter().map(value).collect();
    let mut top: Vec<&CustomerValue> = all.iter().collect();
    top.sort_by(|a, b| b.clv.total_cmp(&a.clv).then(a.user.cmp(&b.user)));
    let top = top.into_iter().take(o.top).cloned().collect();
    let by_user: HashMap<&str, &CustomerValue> = all.iter().map(|c| (c.user.as_str(), c)).collect();
    let mut latest: HashMap<String, tailor_store::SegmentationRun> = HashMap::new();
    for run in store.segmentation_runs()? {
        latest.insert(run.name.clone(), run);
    }
    let mut names: Vec<&String> = latest.keys().collect();
    names.sort();
    let mut segments = Vec::new();
    for name in names {
        for seg in &latest[name].segments {
            let members: Vec<&CustomerValue> = store
                .segment_members(name, &seg.name)?
                .iter()
                .filter_map(|u| by_user.get(u.as_str()).copied())
                .collect();
            let n = members.len();
            let total: f64 = members.iter().map(|c| c.clv).sum();
            segments.push(SegmentValue {
                segmentation: name.clone(),
                segment: seg.name.clone(),
                customers: n,
                mean_clv: if n > 0 { total / n as f64 } else { 0.0 },
                total_clv: total,
                mean_p_alive: if n > 0 { members.iter().map(|c| c.p_alive).sum::<f64>() / n as f64 } else { 0.0 },
            });
        }
    }
    Ok(ClvReport {
        through: day_text(end_day),
        months: o.months,
        monthly_discount: o.monthly_discount,
        customers: all.len(),
        repeat_customers: summaries.iter().filter(|s| s.frequency > 0).count(),
        bg_nbd: Some(bg),
        gamma_gamma: Some(gg),
        reason: None,
        fit_seconds,
        total_clv: all.iter().map(|c| c.clv).sum(),
        total_expected_purchases: all.iter().map(|c| c.expected_purchases).sum(),
        top,
        segments,
        all,
    })
}
