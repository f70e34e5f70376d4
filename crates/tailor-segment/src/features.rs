//! User features from events: RFM, behaviour, price sensitivity, brands, devices, time of
//! day, category shares and user attributes.
//!
//! One [`Activity`] per user is the whole state: it is updated from one event at a time
//! ([`Activity::push`], in any order — sessions are kept as merged intervals, orders as a
//! set) and turned into a feature row as of a date ([`Activity::features`]). The batch path
//! (`tailor segment run`) and the real-time path (the server, one event at a time) share
//! this code, and a property test shows that pushing events one by one, in any order and
//! across a save/load, gives the same features as a direct computation over the history.
//!
//! Times of day and weekdays are in UTC. A session is a run of a user's events with gaps of
//! at most [`SESSION_GAP_MS`] (30 minutes, as in web analytics).
//!
//! | feature | formula | unit |
//! |---|---|---|
//! | `recency_days` | as-of − last purchase (users who never bought: as-of − first event) | days |
//! | `frequency` | distinct orders (a purchase without order id is its own order, keyed by time) | orders |
//! | `monetary` | Σ purchase qty × price − Σ return qty × price | currency |
//! | `aov` | Σ purchase qty × price / frequency (0 without orders) | currency |
//! | `sessions` | number of sessions | sessions |
//! | `visit_frequency` | sessions × 7 / max(7, as-of − first event in days) | sessions/week |
//! | `session_duration_s` | mean of (last − first event) over sessions | seconds |
//! | `views_per_session` | views / sessions | views |
//! | `cart_rate` | add-to-cart events / views (0 without views) | ratio |
//! | `cart_to_purchase` | min(1, purchase lines / add-to-cart events) (0 without carts) | ratio |
//! | `return_rate` | return lines / purchase lines (0 without purchases) | ratio |
//! | `discount_share` | bought units below list price (or on sale) / bought units | share |
//! | `price_percentile` | mean percentile (0–1) of an interacted item's price within its top category | percentile |
//! | `new_item_share` | item events (views, carts, purchases, ratings, wish lists) on items added < 30 days before the event / item events | share |
//! | `brand_concentration` | Herfindahl index Σ sᵦ² of brand shares of item events | 0–1 |
//! | `tod_night` … `tod_evening` | share of events at 0–6, 6–12, 12–18, 18–24 h UTC | share |
//! | `weekend_share` | share of events on Saturday or Sunday | share |
//! | `device_mobile`, `device_desktop`, `device_tablet` | share of events with a device that came from it | share |
//! | `clv_90d` | value expected in the next 90 days: BG/NBD purchases × Gamma-Gamma value ([`crate::clv`]), fitted on the population | currency |
//! | `p_alive` | BG/NBD probability that the customer is still active (1 for one-time buyers and non-buyers) | 0–1 |
//! | `purchases_90d` | BG/NBD purchases (purchase days) expected in the next 90 days | purchases |
//! | `age` | user attribute (birth year turned into age at as-of); missing → median | years |
//! | `cat_<name>`, `cat_other` | share of item events in each of the top-N top categories | share |
//!
//! The three lifetime-value columns need a population to fit the models on (see
//! [`ClvModel`]); they are 0 (and `p_alive` 1) when it has no repeat buyers to fit on.
//!
//! Categorical: `main_device` (most frequent device, ties → alphabetical), `gender`,
//! `country`, `region`, `urbanicity`, `preferred_device` (user attributes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tailor_core::{Event, EventKind, Item, User};
use xxhash_rust::xxh3::xxh3_64;

use crate::clv::{self, BgNbd, GammaGamma, Summary};

/// Longest pause inside one session.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;
/// Items added to the catalog less than this long before an event count as new arrivals.
pub const NEW_ITEM_MS: i64 = 30 * DAY_MS;
const DAY_MS: i64 = 86_400_000;

/// A numeric feature: name, unit and formula (for documentation and `--json` output).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FeatureDef {
    /// Column name (used in `--features` and rule files).
    pub name: &'static str,
    /// Unit of the values (`days`, `currency`, `share`, `count`).
    pub unit: &'static str,
    /// One-line formula.
    pub formula: &'static str,
}

macro_rules! defs {
    ($($name:literal, $unit:literal, $formula:literal;)*) => {
        /// The fixed numeric features, in column order (category shares follow them).
        pub const NUMERIC: &[FeatureDef] = &[$(FeatureDef { name: $name, unit: $unit, formula: $formula }),*];
    };
}

defs! {
    "recency_days", "days", "as-of minus last purchase (never bought: minus first event)";
    "frequency", "orders", "distinct orders";
    "monetary", "currency", "purchase revenue minus returned value";
    "aov", "currency", "purchase revenue / orders";
    "sessions", "sessions", "sessions (30-minute inactivity gap)";
    "visit_frequency", "sessions/week", "sessions * 7 / max(7, days since first event)";
    "session_duration_s", "seconds", "mean session length";
    "views_per_session", "views", "views / sessions";
    "cart_rate", "ratio", "add-to-cart events / views";
    "cart_to_purchase", "ratio", "min(1, purchase lines / add-to-cart events)";
    "return_rate", "ratio", "return lines / purchase lines";
    "discount_share", "share", "bought units below list price / bought units";
    "price_percentile", "percentile", "mean price percentile of interacted items within their top category";
    "new_item_share", "share", "item events on items added < 30 days before / item events";
    "brand_concentration", "0-1", "Herfindahl index of brand shares of item events";
    "tod_night", "share", "events 0-6 h UTC / events";
    "tod_morning", "share", "events 6-12 h UTC / events";
    "tod_afternoon", "share", "events 12-18 h UTC / events";
    "tod_evening", "share", "events 18-24 h UTC / events";
    "weekend_share", "share", "events on Saturday or Sunday / events";
    "device_mobile", "share", "events from mobile / events with a device";
    "device_desktop", "share", "events from desktop / events with a device";
    "device_tablet", "share", "events from tablet / events with a device";
    "clv_90d", "currency", "BG/NBD purchases in 90 days x Gamma-Gamma expected value";
    "p_alive", "0-1", "BG/NBD probability of being active";
    "purchases_90d", "purchases", "BG/NBD purchases (purchase days) expected in 90 days";
    "age", "years", "user attribute; missing -> population median";
}

/// Categorical features, in column order.
pub const CATEGORICAL: &[&str] = &["main_device", "gender", "country", "region", "urbanicity", "preferred_device"];

/// What the features need to know about an item.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemInfo {
    /// Top-level category.
    pub category: Option<String>,
    /// Brand as the catalog gives it.
    pub brand: Option<String>,
    /// List price.
    pub price: Option<f64>,
    /// Effective (sale or list) price, used when an event has no unit price.
    pub effective_price: Option<f64>,
    /// Whether the item is on sale now.
    pub on_sale: bool,
    /// Percentile (0–1) of the effective price within the top category.
    pub price_percentile: Option<f64>,
    /// When the item was added (ms).
    pub created_at: Option<i64>,
}

impl ItemInfo {
    /// The info of one item (its price percentile unknown).
    pub fn of(it: &Item) -> Self {
        Self {
            category: it.category.first().cloned(),
            brand: it.brand.clone(),
            price: it.price,
            effective_price: it.effective_price(),
            on_sale: it.on_sale(),
            price_percentile: None,
            created_at: it.created_at.map(|t| t.0),
        }
    }
}

/// The catalog as the features see it.
#[derive(Debug, Clone, Default)]
pub struct ItemTable {
    by_id: HashMap<String, ItemInfo>,
}

impl ItemTable {
    /// Builds the table; price percentiles are mid-ranks within each top category
    /// (`(rank_below + rank_equal / 2) / n`).
    pub fn new<'a>(items: impl IntoIterator<Item = &'a Item>) -> Self {
        let mut by_id = HashMap::new();
        let mut prices: HashMap<Option<String>, Vec<f64>> = HashMap::new();
        for it in items {
            let info = ItemInfo::of(it);
            if let Some(p) = info.effective_price {
                prices.entry(info.category.clone()).or_default().push(p);
            }
            by_id.insert(it.id.0.clone(), info);
        }
        prices.values_mut().for_each(|v| v.sort_by(f64::total_cmp));
        for info in by_id.values_mut() {
            if let (Some(p), Some(sorted)) = (info.effective_price, prices.get(&info.category)) {
                let below = sorted.partition_point(|v| *v < p);
                let equal = sorted.partition_point(|v| *v <= p) - below;
                info.price_percentile = Some((below as f64 + equal as f64 / 2.0) / sorted.len() as f64);
            }
        }
        Self { by_id }
    }

    /// Adds or replaces one item; its price percentile is its mid-rank among the items of
    /// its category already in the table (the others keep theirs until the next full build).
    pub fn upsert(&mut self, it: &Item) {
        let mut info = ItemInfo::of(it);
        if let Some(p) = info.effective_price {
            let (mut below, mut equal, mut n) = (0usize, 0usize, 0usize);
            for other in self.by_id.iter().filter(|(id, o)| **id != it.id.0 && o.category == info.category) {
                if let Some(q) = other.1.effective_price {
                    n += 1;
                    below += usize::from(q < p);
                    equal += usize::from(q == p);
                }
            }
            // Counting the item itself among the equal ones, as the full build does.
            info.price_percentile = Some((below as f64 + (equal + 1) as f64 / 2.0) / (n + 1) as f64);
        }
        self.by_id.insert(it.id.0.clone(), info);
    }

    /// The item's info, if it is in the catalog.
    pub fn get(&self, id: &str) -> Option<&ItemInfo> {
        self.by_id.get(id)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// One session as a time interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Span {
    end: i64,
    views: u32,
}

/// Everything the features of one user are made of; updated one event at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    first_ts: Option<i64>,
    last_purchase: Option<i64>,
    orders: BTreeSet<u64>,
    gross: f64,
    returned: f64,
    purchase_lines: u32,
    return_lines: u32,
    units: u64,
    discounted_units: u64,
    views: u32,
    carts: u32,
    events: u32,
    item_events: u32,
    new_item_events: u32,
    sessions: BTreeMap<i64, Span>,
    categories: BTreeMap<String, u32>,
    brands: BTreeMap<String, u32>,
    devices: BTreeMap<String, u32>,
    tod: [u32; 4],
    weekend: u32,
    price_pct_sum: f64,
    price_pct_n: u32,
    /// Purchase value per day (UTC day number) with a purchase, for lifetime value.
    #[serde(default)]
    purchase_days: BTreeMap<i64, f64>,
}

/// Events that say the user engaged with an item (for category, brand, price and novelty
/// features): views, add-to-carts, purchases, ratings and wish-list additions.
pub fn is_item_event(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::View | EventKind::AddToCart | EventKind::Purchase | EventKind::Rating | EventKind::Wishlist
    )
}

/// Events that count for the features (impressions are shown to the user, not done by them).
pub fn counts(kind: EventKind) -> bool {
    kind != EventKind::Impression
}

impl Activity {
    /// Adds one event (of this user). Impressions are ignored; events may come in any order.
    pub fn push(&mut self, e: &Event, item: Option<&ItemInfo>) {
        if !counts(e.kind) {
            return;
        }
        let ts = e.ts.0;
        self.events += 1;
        self.first_ts = Some(self.first_ts.map_or(ts, |f| f.min(ts)));
        self.add_to_session(ts, u32::from(e.kind == EventKind::View));
        self.tod[(e.ts.hour() / 6) as usize] += 1;
        if e.ts.weekday() >= 5 {
            self.weekend += 1;
        }
        if let Some(d) = &e.context.device {
            *self.devices.entry(d.to_ascii_lowercase()).or_default() += 1;
        }
        let qty = f64::from(e.quantity);
        let price = e.unit_price.or_else(|| item.and_then(|i| i.effective_price)).unwrap_or(0.0);
        match e.kind {
            EventKind::View => self.views += 1,
            EventKind::AddToCart => self.carts += 1,
            EventKind::Purchase => {
                self.purchase_lines += 1;
                self.gross += qty * price;
                self.units += u64::from(e.quantity);
                let discounted = match (e.unit_price, item) {
                    (Some(u), Some(i)) => i.price.is_some_and(|list| u < list * 0.999),
                    (None, Some(i)) => i.on_sale,
                    _ => false,
                };
                if discounted {
                    self.discounted_units += u64::from(e.quantity);
                }
                self.last_purchase = Some(self.last_purchase.map_or(ts, |l| l.max(ts)));
                *self.purchase_days.entry(clv::day_of(ts)).or_default() += qty * price;
                let key = match &e.order_id {
                    Some(o) => xxh3_64(o.as_bytes()),
                    None => xxh3_64(&ts.to_le_bytes()) ^ 0x5EED,
                };
                self.orders.insert(key);
            }
            EventKind::Return => {
                self.return_lines += 1;
                self.returned += qty * price;
            }
            _ => {}
        }
        if e.item.is_some() && is_item_event(e.kind) {
            self.item_events += 1;
            if let Some(i) = item {
                if let Some(c) = &i.category {
                    *self.categories.entry(c.clone()).or_default() += 1;
                }
                if let Some(b) = &i.brand {
                    *self.brands.entry(b.clone()).or_default() += 1;
                }
                if let Some(p) = i.price_percentile {
                    self.price_pct_sum += p;
                    self.price_pct_n += 1;
                }
                if i.created_at.is_some_and(|c| c <= ts && ts - c < NEW_ITEM_MS) {
                    self.new_item_events += 1;
                }
            }
        }
    }

    /// Merges `ts` into the session intervals: joins the session it falls in or near, and
    /// bridges two sessions when it closes the gap between them.
    fn add_to_session(&mut self, ts: i64, views: u32) {
        let before = self.sessions.range(..=ts).next_back().map(|(s, sp)| (*s, *sp));
        let after = self.sessions.range(ts + 1..).next().map(|(s, sp)| (*s, *sp));
        let mut start = ts;
        let mut span = Span { end: ts, views };
        if let Some((s, sp)) = before
            && ts - sp.end <= SESSION_GAP_MS
        {
            self.sessions.remove(&s);
            start = s;
            span = Span { end: sp.end.max(ts), views: sp.views + views };
        }
        if let Some((s, sp)) = after
            && s - span.end <= SESSION_GAP_MS
        {
            self.sessions.remove(&s);
            span = Span { end: sp.end.max(span.end), views: span.views + sp.views };
        }
        self.sessions.insert(start, span);
    }

    /// Whether any counted event was seen.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Distinct orders.
    pub fn orders(&self) -> usize {
        self.orders.len()
    }

    /// The user's category counts (for choosing the population's top categories).
    pub fn category_counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.categories.iter().map(|(c, n)| (c.as_str(), *n))
    }

    /// The repeat-purchase summary (days) of the purchases on days up to `end_day`
    /// (None without any), as [`clv::summarize`] computes it.
    pub fn clv_summary(&self, end_day: i64) -> Option<Summary> {
        let mut days = self.purchase_days.range(..=end_day);
        let (&first, _) = days.next()?;
        let (mut repeats, mut value, mut last) = (0u32, 0.0, first);
        for (&d, &v) in days {
            repeats += 1;
            value += v;
            last = d;
        }
        Some(Summary {
            user: 0,
            frequency: repeats,
            recency: (last - first) as f64,
            t: (end_day - first) as f64,
            monetary: if repeats > 0 { value / f64::from(repeats) } else { 0.0 },
        })
    }

    /// The most frequent device (ties: alphabetical).
    pub fn main_device(&self) -> Option<&str> {
        let mut best: Option<(&str, u32)> = None;
        for (d, n) in &self.devices {
            if best.is_none_or(|(_, b)| *n > b) {
                best = Some((d, *n));
            }
        }
        best.map(|(d, _)| d)
    }

    /// The numeric features as of `as_of` (ms), in [`NUMERIC`] order without `age` (which is
    /// an attribute), followed by the shares of `top_categories` and `other`; the lifetime
    /// values from `clv` (0, and `p_alive` 1, without a model).
    pub fn features(&self, as_of: i64, top_categories: &[String], clv: Option<&ClvModel>, out: &mut Vec<f64>) {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let days = |t: Option<i64>| t.map_or(0.0, |t| ((as_of - t) as f64 / DAY_MS as f64).max(0.0));
        let orders = self.orders.len() as f64;
        let sessions = self.sessions.len() as f64;
        let events = f64::from(self.events);
        let item_events = f64::from(self.item_events);
        out.push(days(self.last_purchase.or(self.first_ts)));
        out.push(orders);
        out.push(self.gross - self.returned);
        out.push(ratio(self.gross, orders));
        out.push(sessions);
        out.push(ratio(sessions * 7.0, days(self.first_ts).max(7.0)));
        let dur: i64 = self.sessions.iter().map(|(s, sp)| sp.end - s).sum();
        out.push(ratio(dur as f64 / 1000.0, sessions));
        out.push(ratio(f64::from(self.views), sessions));
        out.push(ratio(f64::from(self.carts), f64::from(self.views)));
        out.push(ratio(f64::from(self.purchase_lines), f64::from(self.carts)).min(1.0));
        out.push(ratio(f64::from(self.return_lines), f64::from(self.purchase_lines)));
        out.push(ratio(self.discounted_units as f64, self.units as f64));
        out.push(if self.price_pct_n > 0 { self.price_pct_sum / f64::from(self.price_pct_n) } else { 0.5 });
        out.push(ratio(f64::from(self.new_item_events), item_events));
        let branded: u32 = self.brands.values().sum();
        out.push(self.brands.values().map(|n| ratio(f64::from(*n), f64::from(branded)).powi(2)).sum());
        out.extend(self.tod.iter().map(|n| ratio(f64::from(*n), events)));
        out.push(ratio(f64::from(self.weekend), events));
        let with_device: u32 = self.devices.values().sum();
        for d in ["mobile", "desktop", "tablet"] {
            out.push(ratio(f64::from(self.devices.get(d).copied().unwrap_or(0)), f64::from(with_device)));
        }
        let (value, alive, purchases) = match (clv, self.clv_summary(clv::day_of(as_of))) {
            (Some(m), Some(s)) => m.predict(&s),
            _ => (0.0, 1.0, 0.0),
        };
        out.extend([value, alive, purchases]);
        let mut other = item_events;
        for c in top_categories {
            let n = f64::from(self.categories.get(c).copied().unwrap_or(0));
            other -= n;
            out.push(ratio(n, item_events));
        }
        out.push(ratio(other.max(0.0), item_events));
    }
}

/// Collects the activity of every user from a stream of events (the batch path).
#[derive(Debug, Default)]
pub struct Population {
    catalog: ItemTable,
    index: HashMap<String, usize>,
    ids: Vec<String>,
    acts: Vec<Activity>,
    latest: Option<i64>,
}

impl Population {
    /// An empty population over `catalog`.
    pub fn new(catalog: ItemTable) -> Self {
        Self { catalog, ..Self::default() }
    }

    /// Adds an event; events without a user (anonymous sessions) and impressions are skipped.
    pub fn push(&mut self, e: &Event) {
        let Some(u) = &e.user else { return };
        if !counts(e.kind) {
            return;
        }
        let k = match self.index.get(u.as_str()) {
            Some(k) => *k,
            None => {
                self.index.insert(u.0.clone(), self.ids.len());
                self.ids.push(u.0.clone());
                self.acts.push(Activity::default());
                self.ids.len() - 1
            }
        };
        self.acts[k].push(e, e.item.as_ref().and_then(|i| self.catalog.get(&i.0)));
        self.latest = Some(self.latest.map_or(e.ts.0, |l| l.max(e.ts.0)));
    }

    /// Users seen, in first-seen order.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no user was seen.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Time of the latest event (ms).
    pub fn latest(&self) -> Option<i64> {
        self.latest
    }

    /// The feature table as of `as_of` (default: the latest event) with the `top_n` most
    /// engaged categories as share columns; `users` gives attributes.
    pub fn table(&self, users: &HashMap<String, User>, as_of: Option<i64>, top_n: usize) -> FeatureTable {
        // The data's end, never past the wall clock (one future-dated event would otherwise
        // make every customer look long gone).
        let as_of = as_of.or(self.latest.map(|t| t.min(tailor_core::Timestamp::now().0))).unwrap_or(0);
        let tops = top_categories(&self.acts, top_n);
        let rows: Vec<(String, Option<&User>, &Activity)> =
            self.ids.iter().zip(&self.acts).map(|(id, a)| (id.clone(), users.get(id), a)).collect();
        let model = ClvModel::fit(self.acts.iter(), as_of);
        table(&rows, as_of, tops, model)
    }
}

/// The lifetime-value models of a population, kept with a segmentation run so that one
/// user is scored exactly as the run scored its population.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClvModel {
    /// Purchases and activity (days).
    pub bg_nbd: BgNbd,
    /// Value of a purchase day (None when too few customers bought twice with a value).
    pub gamma_gamma: Option<GammaGamma>,
}

impl ClvModel {
    /// Fits both models on the purchases up to the day of `as_of` (None when BG/NBD cannot be
    /// fitted: no customer bought on two days, or the fit fails).
    pub fn fit<'a>(acts: impl IntoIterator<Item = &'a Activity>, as_of: i64) -> Option<Self> {
        let end = clv::day_of(as_of);
        let summaries: Vec<Summary> = acts.into_iter().filter_map(|a| a.clv_summary(end)).collect();
        let bg_nbd = BgNbd::fit(&summaries, 1.0).ok()?;
        let gamma_gamma = GammaGamma::fit(&summaries).ok().filter(|g| g.q > 1.0);
        Some(Self { bg_nbd, gamma_gamma })
    }

    /// (value expected in 90 days, P(alive), purchases expected in 90 days) of one summary;
    /// the value is 0 without a Gamma-Gamma model.
    pub fn predict(&self, s: &Summary) -> (f64, f64, f64) {
        let purchases = self.bg_nbd.expected_purchases_in_days(90.0, s);
        let value = self.gamma_gamma.map_or(0.0, |g| g.expected_value(s) * purchases);
        let finite = |v: f64, default: f64| if v.is_finite() { v } else { default };
        (finite(value, 0.0), finite(self.bg_nbd.p_alive(s), 1.0), finite(purchases, 0.0))
    }
}

/// Feature matrix of a population: one row per user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureTable {
    /// User ids, row order.
    pub users: Vec<String>,
    /// Numeric column names: [`NUMERIC`] then `cat_<name>` and `cat_other`.
    pub names: Vec<String>,
    /// Row-major numeric values (`users.len() × names.len()`), all finite.
    pub values: Vec<f64>,
    /// Categorical columns ([`CATEGORICAL`] order), one value per user.
    pub categorical: Vec<Vec<Option<String>>>,
    /// The top categories whose shares are columns.
    pub top_categories: Vec<String>,
    /// Whether each user's age is known (the `age` column holds the median otherwise).
    pub age_known: Vec<bool>,
    /// The as-of time (ms).
    pub as_of: i64,
    /// The lifetime-value models behind `clv_90d`, `p_alive` and `purchases_90d`.
    pub clv: Option<ClvModel>,
}

impl FeatureTable {
    /// Column index of a numeric feature.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Index of a categorical feature.
    pub fn categorical_column(&self, name: &str) -> Option<usize> {
        CATEGORICAL.iter().position(|n| *n == name)
    }

    /// Number of numeric columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.width();
        &self.values[i * d..(i + 1) * d]
    }

    /// The numeric columns `cols` of every row, row-major.
    pub fn select(&self, cols: &[usize]) -> Vec<f64> {
        (0..self.users.len()).flat_map(|i| cols.iter().map(move |&c| self.values[i * self.width() + c])).collect()
    }
}

/// The `n` categories with the most item events over the population (ties alphabetical).
pub fn top_categories<'a>(activities: impl IntoIterator<Item = &'a Activity>, n: usize) -> Vec<String> {
    let mut total: BTreeMap<&str, u64> = BTreeMap::new();
    for a in activities {
        for (c, k) in a.category_counts() {
            *total.entry(c).or_default() += u64::from(k);
        }
    }
    let mut v: Vec<(&str, u64)> = total.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(c, _)| c.to_owned()).collect()
}

/// Age of a user at `as_of` (from `age`, or from the birth year).
pub fn age_of(u: &User, as_of: i64) -> Option<f64> {
    u.age.map(f64::from).or_else(|| {
        let year = tailor_core::Timestamp(as_of).to_rfc3339().get(..4).and_then(|y| y.parse::<i32>().ok())?;
        u.birth_year.map(|b| f64::from(year - b))
    })
}

/// Builds the table for `users` (id, attributes if known, activity). Missing ages are filled
/// with the median of the known ones (0 when none is known).
pub fn table(
    users: &[(String, Option<&User>, &Activity)],
    as_of: i64,
    top_categories: Vec<String>,
    clv: Option<ClvModel>,
) -> FeatureTable {
    let mut values = Vec::with_capacity(users.len() * (NUMERIC.len() + top_categories.len() + 1));
    let mut categorical: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(users.len()); CATEGORICAL.len()];
    let mut ages = Vec::with_capacity(users.len());
    let width = NUMERIC.len() + top_categories.len() + 1;
    let age_col = NUMERIC.iter().position(|d| d.name == "age").unwrap_or(NUMERIC.len() - 1);
    for (_, user, act) in users {
        let start = values.len();
        act.features(as_of, &top_categories, clv.as_ref(), &mut values);
        values.insert(start + age_col, f64::NAN);
        let age = user.and_then(|u| age_of(u, as_of));
        ages.push(age);
        debug_assert_eq!(values.len() - start, width);
        let attr = |f: fn(&User) -> Option<String>| user.and_then(f);
        let cats = [
            act.main_device().map(str::to_owned),
            attr(|u| u.gender.clone()),
            attr(|u| u.country.clone()),
            attr(|u| u.region.clone()),
            attr(|u| u.urbanicity.map(|x| x.as_str().to_owned())),
            attr(|u| u.preferred_device.as_ref().map(|d| d.to_ascii_lowercase())),
        ];
        for (col, v) in categorical.iter_mut().zip(cats) {
            col.push(v);
        }
    }
    let mut known: Vec<f64> = ages.iter().flatten().copied().collect();
    known.sort_by(f64::total_cmp);
    let median = match known.len() {
        0 => 0.0,
        n if n % 2 == 1 => known[n / 2],
        n => (known[n / 2 - 1] + known[n / 2]) / 2.0,
    };
    for (i, a) in ages.iter().enumerate() {
        values[i * width + age_col] = a.unwrap_or(median);
    }
    let mut names: Vec<String> = NUMERIC.iter().map(|d| d.name.to_owned()).collect();
    names.extend(top_categories.iter().map(|c| format!("cat_{}", slug(c))));
    names.push("cat_other".into());
    FeatureTable {
        users: users.iter().map(|(id, _, _)| id.clone()).collect(),
        names,
        values,
        categorical,
        top_categories,
        age_known: ages.iter().map(Option::is_some).collect(),
        as_of,
        clv,
    }
}

/// Lower-case ASCII letters, digits and `_` (for column names from category names).
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tailor_core::Timestamp;

    const T0: i64 = 1_700_000_000_000;

    fn items() -> ItemTable {
        let mut v = Vec::new();
        for (k, (cat, brand, price, sale)) in [
            ("Shoes", "Acme", 10.0, None),
            ("Shoes", "Bolt", 50.0, Some(40.0)),
            ("Home", "Acme", 20.0, None),
            ("Home", "Core", 200.0, None),
            ("Books", "Dune", 5.0, Some(4.0)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut it = Item::new(&format!("i{k}"));
            it.category = vec![cat.into(), "Sub".into()];
            it.brand = Some(brand.into());
            it.price = Some(price);
            it.sale_price = sale;
            it.created_at = Some(Timestamp(T0 + k as i64 * 10 * DAY_MS));
            v.push(it);
        }
        ItemTable::new(&v)
    }

    /// A direct, non-incremental computation of the features from the whole history: sort,
    /// split into sessions, count. The reference for the property test.
    fn naive(events: &[Event], items: &ItemTable, as_of: i64, tops: &[String], model: &ClvModel) -> Vec<f64> {
        let mut ev: Vec<&Event> = events.iter().filter(|e| counts(e.kind)).collect();
        ev.sort_by_key(|e| e.ts);
        let day = DAY_MS as f64;
        let info = |e: &Event| e.item.as_ref().and_then(|i| items.get(&i.0));
        let of = |k: EventKind| ev.iter().filter(move |e| e.kind == k);
        let purchases: Vec<&&Event> = of(EventKind::Purchase).collect();
        let price = |e: &Event| e.unit_price.or_else(|| info(e).and_then(|i| i.effective_price)).unwrap_or(0.0);
        let gross: f64 = purchases.iter().map(|e| f64::from(e.quantity) * price(e)).sum();
        let returned: f64 = of(EventKind::Return).map(|e| f64::from(e.quantity) * price(e)).sum();
        let mut orders: Vec<String> =
            purchases.iter().map(|e| e.order_id.clone().unwrap_or_else(|| format!("ts:{}", e.ts.0))).collect();
        orders.sort();
        orders.dedup();
        let first = ev.first().map(|e| e.ts.0);
        let last_buy = purchases.iter().map(|e| e.ts.0).max();
        let mut spans: Vec<(i64, i64, u32)> = Vec::new();
        for e in &ev {
            let v = u32::from(e.kind == EventKind::View);
            match spans.last_mut() {
                Some(s) if e.ts.0 - s.1 <= SESSION_GAP_MS => {
                    s.1 = e.ts.0;
                    s.2 += v;
                }
                _ => spans.push((e.ts.0, e.ts.0, v)),
            }
        }
        let r = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let n = ev.len() as f64;
        let s = spans.len() as f64;
        let views = of(EventKind::View).count() as f64;
        let carts = of(EventKind::AddToCart).count() as f64;
        let units: f64 = purchases.iter().map(|e| f64::from(e.quantity)).sum();
        let disc: f64 = purchases
            .iter()
            .filter(|e| match (e.unit_price, info(e)) {
                (Some(u), Some(i)) => i.price.is_some_and(|l| u < l * 0.999),
                (None, Some(i)) => i.on_sale,
                _ => false,
            })
            .map(|e| f64::from(e.quantity))
            .sum();
        let item_ev: Vec<&&Event> = ev
            .iter()
            .filter(|e| {
                e.item.is_some()
                    && matches!(
                        e.kind,
                        EventKind::View
                            | EventKind::AddToCart
                            | EventKind::Purchase
                            | EventKind::Rating
                            | EventKind::Wishlist
                    )
            })
            .collect();
        let infos: Vec<&ItemInfo> = item_ev.iter().filter_map(|e| info(e)).collect();
        let pct: Vec<f64> = infos.iter().filter_map(|i| i.price_percentile).collect();
        let new = item_ev
            .iter()
            .filter(|e| info(e).and_then(|i| i.created_at).is_some_and(|c| c <= e.ts.0 && e.ts.0 - c < NEW_ITEM_MS))
            .count() as f64;
        let brands: Vec<&str> = infos.iter().filter_map(|i| i.brand.as_deref()).collect();
        let hhi: f64 = {
            let mut b = brands.clone();
            b.sort_unstable();
            b.dedup();
            b.iter().map(|x| r(brands.iter().filter(|y| *y == x).count() as f64, brands.len() as f64).powi(2)).sum()
        };
        let hour = |e: &Event| (e.ts.0 % DAY_MS) / 3_600_000;
        let devs: Vec<String> = ev.iter().filter_map(|e| e.context.device.as_ref()).map(|d| d.to_lowercase()).collect();
        let mut out = vec![
            last_buy.or(first).map_or(0.0, |t| ((as_of - t) as f64 / day).max(0.0)),
            orders.len() as f64,
            gross - returned,
            r(gross, orders.len() as f64),
            s,
            r(s * 7.0, first.map_or(0.0, |f| ((as_of - f) as f64 / day).max(0.0)).max(7.0)),
            r(spans.iter().map(|x| (x.1 - x.0) as f64 / 1000.0).sum(), s),
            r(views, s),
            r(carts, views),
            r(purchases.len() as f64, carts).min(1.0),
            r(of(EventKind::Return).count() as f64, purchases.len() as f64),
            r(disc, units),
            if pct.is_empty() { 0.5 } else { pct.iter().sum::<f64>() / pct.len() as f64 },
            r(new, item_ev.len() as f64),
            hhi,
        ];
        for b in 0..4 {
            out.push(r(ev.iter().filter(|e| hour(e) / 6 == b).count() as f64, n));
        }
        out.push(r(ev.iter().filter(|e| e.ts.weekday() >= 5).count() as f64, n));
        for d in ["mobile", "desktop", "tablet"] {
            out.push(r(devs.iter().filter(|x| *x == d).count() as f64, devs.len() as f64));
        }
        let bought: Vec<clv::Purchase> = purchases
            .iter()
            .map(|e| clv::Purchase { user: 0, ts: e.ts.0, amount: f64::from(e.quantity) * price(e) })
            .collect();
        match clv::summarize(&bought, clv::day_of(as_of), 1.0).expect("summaries").first() {
            Some(c) => {
                let (v, p, n) = model.predict(c);
                out.extend([v, p, n]);
            }
            None => out.extend([0.0, 1.0, 0.0]),
        }
        let cat = |e: &&&Event| info(e).and_then(|i| i.category.clone());
        let mut in_top = 0.0;
        for c in tops {
            let k = item_ev.iter().filter(|e| cat(e).as_deref() == Some(c)).count() as f64;
            in_top += k;
            out.push(r(k, item_ev.len() as f64));
        }
        out.push(r(item_ev.len() as f64 - in_top, item_ev.len() as f64));
        out
    }

    fn event_strategy() -> impl Strategy<Value = Event> {
        let kinds = prop::sample::select(vec![
            EventKind::View,
            EventKind::View,
            EventKind::AddToCart,
            EventKind::Purchase,
            EventKind::Return,
            EventKind::Rating,
            EventKind::Impression,
            EventKind::Search,
        ]);
        (
            kinds,
            0i64..(4 * DAY_MS),
            prop::option::of(0usize..6),
            1u32..4,
            prop::option::of(1.0f64..300.0),
            prop::option::of(0u8..4),
            prop::option::of(prop::sample::select(vec!["mobile", "Desktop", "tablet", "tv"])),
        )
            .prop_map(|(kind, dt, item, quantity, price, order, device)| {
                // Cluster times so that sessions form: snap to a grid of 10-minute steps.
                let ts = T0 + dt / 600_000 * 600_000;
                let item = item.map(|i| format!("i{i}"));
                let mut e = Event::new(Some("u"), item.as_deref(), kind, Timestamp(ts));
                e.quantity = quantity;
                e.unit_price = price;
                e.order_id = order.map(|o| format!("o{o}"));
                e.context.device = device.map(str::to_owned);
                e
            })
    }

    /// A lifetime-value model with the CDNOW paper's parameters (in days).
    fn model() -> ClvModel {
        let fit = clv::FitReport { mean_log_likelihood: 0.0, iterations: 0, customers: 0 };
        ClvModel {
            bg_nbd: BgNbd { r: 0.243, alpha: 4.414 * 7.0, a: 0.793, b: 2.426, period_days: 1.0, fit },
            gamma_gamma: Some(GammaGamma { p: 6.25, q: 3.74, v: 15.44, fit }),
        }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Incremental (one event at a time, shuffled, with a save/load in the middle) ==
        /// a direct computation over the whole history.
        #[test]
        fn incremental_equals_batch(
            events in prop::collection::vec(event_strategy(), 0..60),
            perm_seed in any::<u64>(),
            cut in 0usize..60,
        ) {
            let items = items();
            let tops = vec!["Shoes".to_owned(), "Home".to_owned()];
            let as_of = T0 + 45 * DAY_MS;
            let mut order: Vec<usize> = (0..events.len()).collect();
            let mut rng = tailor_core::rng::Rng::new(perm_seed);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let mut a = Activity::default();
            for (k, &i) in order.iter().enumerate() {
                if k == cut {
                    let saved = serde_json::to_string(&a).expect("serialises");
                    a = serde_json::from_str(&saved).expect("loads");
                }
                let e = &events[i];
                a.push(e, e.item.as_ref().and_then(|id| items.get(&id.0)));
            }
            let mut got = Vec::new();
            let model = model();
            a.features(as_of, &tops, Some(&model), &mut got);
            let want = naive(&events, &items, as_of, &tops, &model);
            prop_assert!(close(&got, &want), "\n got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn sessions_bridge_and_split() {
        let mut a = Activity::default();
        let at = |m: i64| Event::new(Some("u"), None, EventKind::Search, Timestamp(T0 + m * 60_000));
        for m in [0, 40, 80] {
            a.push(&at(m), None);
        }
        assert_eq!(a.sessions.len(), 3);
        a.push(&at(20), None);
        assert_eq!(a.sessions.len(), 2, "20 bridges 0 and 40");
        a.push(&at(60), None);
        assert_eq!(a.sessions.len(), 1);
        assert_eq!(a.sessions.values().next().map(|s| s.end), Some(T0 + 80 * 60_000));
    }

    #[test]
    fn table_fills_ages_and_names_columns() {
        let items = items();
        let mut a = Activity::default();
        let mut e = Event::new(Some("u1"), Some("i1"), EventKind::Purchase, Timestamp(T0));
        e.context.device = Some("Mobile".into());
        a.push(&e, items.get("i1"));
        let b = Activity::default();
        let mut u = User::new("u1");
        u.age = Some(30);
        let mut v = User::new("u3");
        v.birth_year = Some(1980);
        let c = Activity::default();
        let rows = vec![("u1".to_owned(), Some(&u), &a), ("u2".to_owned(), None, &b), ("u3".to_owned(), Some(&v), &c)];
        let tops = top_categories([&a, &b], 3);
        assert_eq!(tops, vec!["Shoes"]);
        let t = table(&rows, T0 + DAY_MS, tops, Some(model()));
        let age = t.column("age").expect("age");
        assert_eq!(t.row(0)[age], 30.0);
        assert_eq!(t.row(2)[age], 43.0, "2023 - 1980");
        assert_eq!(t.row(1)[age], 36.5, "median of known");
        assert_eq!(t.row(0)[t.column("discount_share").expect("col")], 1.0, "no unit price, item on sale");
        assert_eq!(t.categorical[0][0].as_deref(), Some("mobile"));
        assert_eq!(t.names.last().map(String::as_str), Some("cat_other"));
        assert_eq!(t.row(0)[t.column("cat_shoes").expect("col")], 1.0);
        assert_eq!(t.row(0)[t.column("recency_days").expect("col")], 1.0);
        assert!(t.values.iter().all(|v| v.is_finite()));
        // One purchase day: alive for sure, some value expected; no purchase: nothing.
        let (clv, alive) = (t.column("clv_90d").expect("col"), t.column("p_alive").expect("col"));
        assert!(t.row(0)[clv] > 0.0 && t.row(0)[alive] == 1.0);
        assert_eq!((t.row(1)[clv], t.row(1)[alive]), (0.0, 1.0));
    }

    #[test]
    fn a_population_fits_its_lifetime_value_models() {
        // 300 customers; a third buy again every 10 days, the rest once.
        let acts: Vec<Activity> = (0..300)
            .map(|u| {
                let mut a = Activity::default();
                let repeats = if u % 3 == 0 { 1 + u % 7 } else { 0 };
                for k in 0..=repeats {
                    let ts = Timestamp(T0 + (u % 20) * DAY_MS + k * 10 * DAY_MS);
                    let mut e = Event::new(Some("u"), Some("i1"), EventKind::Purchase, ts);
                    e.unit_price = Some(10.0 + (u % 5) as f64);
                    a.push(&e, None);
                }
                a
            })
            .collect();
        let as_of = T0 + 120 * DAY_MS;
        let m = ClvModel::fit(acts.iter(), as_of).expect("fits");
        assert!(m.gamma_gamma.is_some());
        assert_eq!(m.bg_nbd.fit.customers, 300);
        // The steadiest buyer is worth more than a one-time buyer of the same day.
        let (steady, once) =
            (acts[6 * 3 * 10].clv_summary(clv::day_of(as_of)), acts[1].clv_summary(clv::day_of(as_of)));
        let (steady, once) = (m.predict(&steady.expect("bought")), m.predict(&once.expect("bought")));
        assert!(steady.2 > once.2, "{steady:?} {once:?}");
        // Nobody bought twice: no model, and the features say so.
        assert!(ClvModel::fit(acts.iter().skip(1).step_by(3), as_of).is_none());
    }
}
