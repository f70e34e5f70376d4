//! What the dashboard reads that the store does not keep in that shape: hourly rollups of
//! events and of what recommendations led to (by event time, rebuilt from the store at
//! start and kept up to date as events arrive), of serving (lists, cache hits, latency;
//! by wall clock, since the process started), the exposure of items in served lists and
//! in impression events, and a live feed of the latest events and served lists.
//!
//! Attribution follows the `rec_id` an event carries: impressions with one were shown by a
//! recommendation, clicks with one (or product views with one, for storefronts that pass
//! the `rec_id` on to the product page instead of sending a click) are click-throughs, and
//! purchase lines with one are revenue from recommendations.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};
use tailor_core::{Event, EventKind, Timestamp};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Entries the live feed keeps.
pub const FEED_LEN: usize = 300;
/// Most buckets one timeseries answer holds (the latest ones).
pub const MAX_BUCKETS: usize = 400;
/// Latency histogram: bucket `i` holds latencies up to `10 µs × 1.2^i`; the last bucket
/// holds everything slower.
const LATENCY_BUCKETS: usize = 72;
/// Served-list strategies, in the order the serving rollup counts them.
pub const STRATEGIES: [&str; 6] = ["personalized", "segment_popular", "popular", "trending", "catalog", "none"];

fn latency_bound_us(i: usize) -> f64 {
    10.0 * 1.2f64.powi(i as i32)
}

fn latency_bucket(us: u64) -> usize {
    if us <= 10 {
        return 0;
    }
    let i = ((us as f64 / 10.0).ln() / 1.2f64.ln()).ceil() as usize;
    i.min(LATENCY_BUCKETS - 1)
}

/// Events of one hour (by event time) and what recommendations led to in it.
#[derive(Debug, Clone, Default)]
struct EventHour {
    kinds: [u64; EventKind::ALL.len()],
    rec_impressions: u64,
    rec_clicks: u64,
    rec_purchases: u64,
    rec_revenue: f64,
    revenue: f64,
    /// Orders that began in this hour (order id, or user and time when there is none):
    /// counted at their first line ([`RecentOrders`]), so hours add up.
    orders: u64,
    /// Of them, orders with a line from a recommendation (counted at the first such line).
    rec_orders: u64,
}

/// Orders whose lines were seen lately, so that an order's other lines do not count it
/// again: the last [`RECENT_ORDERS`] keys, oldest forgotten first. A set of every order
/// ever seen grew with the shop's history (8 bytes and more per order, for good); an
/// order's lines arrive together, so two lines of one order farther apart than this many
/// other orders is a case this may count twice.
#[derive(Debug, Default)]
struct RecentOrders {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

/// Order keys the dashboard keeps to count each order once (about 2 MiB with its set).
pub const RECENT_ORDERS: usize = 65_536;

impl RecentOrders {
    /// Whether `key` is new (and now remembered).
    fn first(&mut self, key: u64) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > RECENT_ORDERS
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// Adds `from` to `into` element-wise.
fn add_all<T: Copy + std::ops::AddAssign>(into: &mut [T], from: &[T]) {
    into.iter_mut().zip(from).for_each(|(a, &x)| *a += x);
}

impl EventHour {
    /// Adds another hour's counts (for wider buckets).
    fn absorb(&mut self, h: &EventHour) {
        add_all(&mut self.kinds, &h.kinds);
        self.rec_impressions += h.rec_impressions;
        self.rec_clicks += h.rec_clicks;
        self.rec_purchases += h.rec_purchases;
        self.rec_revenue += h.rec_revenue;
        self.revenue += h.revenue;
        self.orders += h.orders;
        self.rec_orders += h.rec_orders;
    }
}

/// Serving in one hour (wall clock).
#[derive(Debug, Clone)]
struct ServeHour {
    lists: u64,
    cache_hits: u64,
    strategies: [u64; STRATEGIES.len()],
    latency: [u32; LATENCY_BUCKETS],
}

impl Default for ServeHour {
    fn default() -> Self {
        Self { lists: 0, cache_hits: 0, strategies: [0; STRATEGIES.len()], latency: [0; LATENCY_BUCKETS] }
    }
}

impl ServeHour {
    /// Adds another hour's counts (for wider buckets).
    fn absorb(&mut self, h: &ServeHour) {
        self.lists += h.lists;
        self.cache_hits += h.cache_hits;
        add_all(&mut self.strategies, &h.strategies);
        add_all(&mut self.latency, &h.latency);
    }
}

/// Bandit decisions of one hour per (slot, arm).
type DecisionHour = BTreeMap<(String, String), u64>;

/// One line of the live feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEntry {
    /// Increasing; ask for entries `after` the last one seen.
    pub seq: u64,
    /// Wall-clock time it happened here (ms).
    pub at: i64,
    /// `event` or `served`.
    pub kind: &'static str,
    /// The user or `session:` id.
    pub subject: String,
    /// Event kind (events) or strategy (served lists).
    pub what: String,
    /// The event's item, or the served items (first ten).
    pub items: Vec<String>,
    /// The event's or the list's `rec_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rec_id: Option<String>,
    /// The slot asking (served lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Answer time in microseconds (served lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Answered from the cache (served lists).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// A served list, as [`Insights::served`] records it.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    /// The user or session key.
    pub subject: &'a str,
    /// Catalog indices of the items, in order.
    pub items: &'a [u32],
    /// Item ids (for the feed).
    pub ids: &'a [&'a str],
    /// Which source filled it.
    pub strategy: &'a str,
    /// The list's id.
    pub rec_id: &'a str,
    /// The slot asking.
    pub slot: Option<&'a str>,
    /// Time to answer.
    pub latency_us: u64,
    /// From the cache.
    pub cached: bool,
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<i64, EventHour>,
    serving: BTreeMap<i64, ServeHour>,
    decisions: BTreeMap<i64, DecisionHour>,
    /// Orders lately seen, and orders lately seen with a line from a recommendation.
    orders: RecentOrders,
    rec_orders: RecentOrders,
    /// Times each catalog item was in a served list (since start).
    served_exposure: Vec<u64>,
    /// Impression events per catalog item (stored history and live).
    shown_exposure: Vec<u64>,
    feed: VecDeque<FeedEntry>,
    seq: u64,
    /// Served lists the feed took in the current second (second, count): at most
    /// [`FEED_SERVED_PER_SECOND`], so under load the fast path allocates nothing for it.
    feed_window: (i64, u32),
}

/// Most served lists the feed takes per second (a person reads far fewer).
pub const FEED_SERVED_PER_SECOND: u32 = 50;

/// The dashboard's rollups (see the module docs).
#[derive(Debug, Default)]
pub struct Insights {
    inner: Mutex<Inner>,
}

fn order_key(e: &Event) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    match &e.order_id {
        Some(o) => h.update(o.as_bytes()),
        None => {
            h.update(e.user.as_ref().map_or("", |u| u.as_str()).as_bytes());
            h.update(e.session.as_deref().unwrap_or("").as_bytes());
            h.update(&e.ts.0.to_le_bytes());
        }
    }
    h.digest()
}

fn bump(v: &mut Vec<u64>, i: u32) {
    let i = i as usize;
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// Gini coefficient of exposure counts over `n` items (missing ones count zero): 0 when
/// every item is shown equally, near 1 when one item takes all.
pub fn gini(counts: &[u64], n: usize) -> f64 {
    let mut c: Vec<f64> = counts.iter().take(n).map(|&x| x as f64).collect();
    c.resize(n, 0.0);
    tailor_eval::metrics::gini(&mut c)
}

impl Insights {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Folds one stored event (new to this process) into the rollups; `item` is its
    /// catalog index. `live` events also go to the feed.
    pub fn event(&self, e: &Event, item: Option<u32>, live: bool) {
        let mut guard = self.lock();
        let g = &mut *guard;
        let hour = e.ts.0.div_euclid(HOUR_MS);
        let h = g.events.entry(hour).or_default();
        h.kinds[e.kind as usize] += 1;
        let from_rec = e.rec_id.is_some();
        match e.kind {
            EventKind::Impression if from_rec => h.rec_impressions += 1,
            EventKind::Click | EventKind::View if from_rec => h.rec_clicks += 1,
            EventKind::Purchase => {
                let money = e.unit_price.unwrap_or(0.0) * f64::from(e.quantity.max(1));
                let key = order_key(e);
                h.revenue += money;
                h.orders += u64::from(g.orders.first(key));
                if from_rec {
                    h.rec_purchases += 1;
                    h.rec_revenue += money;
                    h.rec_orders += u64::from(g.rec_orders.first(key));
                }
            }
            _ => {}
        }
        if e.kind == EventKind::Impression
            && let Some(i) = item
        {
            bump(&mut g.shown_exposure, i);
        }
        if live {
            let subject = match (&e.user, &e.session) {
                (Some(u), _) => u.as_str().to_string(),
                (None, Some(s)) => format!("session:{s}"),
                (None, None) => String::new(),
            };
            let entry = FeedEntry {
                seq: 0,
                at: Timestamp::now().0,
                kind: "event",
                subject,
                what: e.kind.to_string(),
                items: e.item.iter().map(|i| i.as_str().to_string()).collect(),
                rec_id: e.rec_id.clone(),
                slot: None,
                latency_us: None,
                cached: false,
            };
            push_feed(g, entry);
        }
    }

    /// Records a served list (computed or from the cache).
    pub fn served(&self, s: &Served<'_>) {
        let now = Timestamp::now().0;
        let mut g = self.lock();
        let h = g.serving.entry(now.div_euclid(HOUR_MS)).or_default();
        h.lists += 1;
        h.cache_hits += u64::from(s.cached);
        let k = STRATEGIES.iter().position(|x| *x == s.strategy).unwrap_or(STRATEGIES.len() - 1);
        h.strategies[k] += 1;
        h.latency[latency_bucket(s.latency_us)] += 1;
        for &i in s.items {
            bump(&mut g.served_exposure, i);
        }
        let second = now.div_euclid(1000);
        if g.feed_window.0 != second {
            g.feed_window = (second, 0);
        }
        if g.feed_window.1 >= FEED_SERVED_PER_SECOND {
            return;
        }
        g.feed_window.1 += 1;
        let entry = FeedEntry {
            seq: 0,
            at: now,
            kind: "served",
            subject: match (s.subject.strip_prefix("u:"), s.subject.strip_prefix("s:")) {
                (Some(user), _) => user.to_string(),
                (None, Some(session)) => format!("session:{session}"),
                (None, None) => s.subject.to_string(),
            },
            what: s.strategy.to_string(),
            items: s.ids.iter().take(10).map(|x| (*x).to_string()).collect(),
            rec_id: Some(s.rec_id.to_string()),
            slot: s.slot.map(str::to_string),
            latency_us: Some(s.latency_us),
            cached: s.cached,
        };
        push_feed(&mut g, entry);
    }

    /// Records a bandit's choice of `arm` for `slot`.
    pub fn decision(&self, slot: &str, arm: &str) {
        let hour = Timestamp::now().0.div_euclid(HOUR_MS);
        *self.lock().decisions.entry(hour).or_default().entry((slot.to_string(), arm.to_string())).or_insert(0) += 1;
    }

    /// Drops an erased user's entries from the live feed (the rollups hold only counts).
    pub fn forget(&self, user: &str) {
        self.lock().feed.retain(|e| e.subject != user);
    }

    /// Feed entries after `after` (oldest first).
    pub fn feed(&self, after: u64) -> Vec<FeedEntry> {
        self.lock().feed.iter().filter(|e| e.seq > after).cloned().collect()
    }

    /// Per-bucket series (`bucket` hours wide: 1 or 24) from `from` to `to` (ms, inclusive);
    /// without them, every bucket from the first with data to the current one, the latest
    /// [`MAX_BUCKETS`] at most.
    pub fn timeseries(&self, bucket_hours: i64, from: Option<i64>, to: Option<i64>) -> Value {
        let g = self.lock();
        let width = bucket_hours * HOUR_MS;
        let hours_with_data = [
            (g.events.first_key_value().map(|x| *x.0), g.events.last_key_value().map(|x| *x.0)),
            (g.serving.first_key_value().map(|x| *x.0), g.serving.last_key_value().map(|x| *x.0)),
            (g.decisions.first_key_value().map(|x| *x.0), g.decisions.last_key_value().map(|x| *x.0)),
        ];
        let first_data = hours_with_data.iter().filter_map(|x| x.0).min();
        let last_data = hours_with_data.iter().filter_map(|x| x.1).max();
        // The latest data, but never past the wall clock (a future-dated row stored before
        // the clock bound existed cannot stretch the chart to the year 2199).
        let now = Timestamp::now().0;
        let to_b = to.map_or_else(
            || last_data.map_or(now, |h| (h * HOUR_MS).min(now)).div_euclid(width),
            |t| t.div_euclid(width),
        );
        let from_b =
            from.map_or_else(|| first_data.map_or(to_b, |h| (h * HOUR_MS).div_euclid(width)), |t| t.div_euclid(width));
        let from_b = from_b.max(to_b - MAX_BUCKETS as i64 + 1);
        let hours_of = |b: i64| (b * bucket_hours)..((b + 1) * bucket_hours);
        let mut points = Vec::new();
        for b in from_b..=to_b {
            let mut e = EventHour::default();
            let mut s = ServeHour::default();
            let mut d: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            g.events.range(hours_of(b)).for_each(|(_, h)| e.absorb(h));
            g.serving.range(hours_of(b)).for_each(|(_, h)| s.absorb(h));
            for (_, h) in g.decisions.range(hours_of(b)) {
                for ((slot, arm), n) in h {
                    *d.entry(slot.clone()).or_default().entry(arm.clone()).or_insert(0) += n;
                }
            }
            points.push(point(b * width, &e, &s, &d));
        }
        json!({
            "bucket": if bucket_hours == 24 { "day" } else { "hour" },
            "bucket_ms": width,
            "from": from_b * width,
            "to": (to_b + 1) * width,
            "points": points,
        })
    }

    /// Exposure of catalog items (`n` of them) in served lists and impression events, with
    /// `popularity` (the serving popularity score per item) for the popularity bias; the
    /// most exposed items are named by id and by `title(index)`.
    pub fn exposure(
        &self,
        n: usize,
        popularity: &[f32],
        names: &[std::sync::Arc<str>],
        title: &dyn Fn(u32) -> String,
    ) -> Value {
        let g = self.lock();
        let one = |counts: &[u64], what: &str| {
            let total: u64 = counts.iter().sum();
            let distinct = counts.iter().take(n).filter(|&&c| c > 0).count();
            let pop_mean = if popularity.is_empty() {
                0.0
            } else {
                popularity.iter().map(|&p| f64::from(p)).sum::<f64>() / popularity.len() as f64
            };
            let exposed_pop: f64 = counts
                .iter()
                .enumerate()
                .map(|(i, &c)| c as f64 * popularity.get(i).map_or(0.0, |&p| f64::from(p)))
                .sum();
            let bias = (total > 0 && pop_mean > 0.0).then(|| exposed_pop / total as f64 / pop_mean);
            // Share of exposure taken by the most shown 1% and 10% of the catalog.
            // Every catalog item, the never-exposed ones (beyond the counts' length) as 0.
            let mut sorted: Vec<u64> = counts.iter().take(n).copied().collect();
            sorted.resize(n, 0);
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let top_share = |frac: f64| {
                let m = ((n as f64 * frac).ceil() as usize).max(1);
                (total > 0).then(|| sorted.iter().take(m).sum::<u64>() as f64 / total as f64)
            };
            let mut top: Vec<(usize, u64)> =
                counts.iter().take(n).enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| (i, *c)).collect();
            top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            // Lorenz curve at 20 points: share of exposure of the least shown x% of items.
            let lorenz: Vec<[f64; 2]> = (0..=20)
                .map(|q| {
                    let m = n * q / 20;
                    let s: u64 = sorted.iter().rev().take(m).sum();
                    [q as f64 / 20.0, if total > 0 { s as f64 / total as f64 } else { 0.0 }]
                })
                .collect();
            json!({
                "source": what,
                "exposures": total,
                "distinct_items": distinct,
                "coverage": if n > 0 { distinct as f64 / n as f64 } else { 0.0 },
                "gini": gini(counts, n),
                "popularity_bias": bias,
                "top_1pct_share": top_share(0.01),
                "top_10pct_share": top_share(0.10),
                "lorenz": lorenz,
                "top_items": top
                    .iter()
                    .take(10)
                    .map(|(i, c)| json!({"item": names.get(*i).map(|n| &**n), "title": title(*i as u32), "exposures": c}))
                    .collect::<Vec<_>>(),
            })
        };
        json!({
            "catalog_items": n,
            "served": one(&g.served_exposure, "items in served recommendation lists since the server started"),
            "shown": one(&g.shown_exposure, "impression events (stored history and live)"),
        })
    }
}

fn push_feed(g: &mut Inner, mut entry: FeedEntry) {
    g.seq += 1;
    entry.seq = g.seq;
    g.feed.push_back(entry);
    while g.feed.len() > FEED_LEN {
        g.feed.pop_front();
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn percentile(hist: &[u32; LATENCY_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        seen += u64::from(c);
        if seen >= want {
            return Some(latency_bound_us(i) / 1000.0);
        }
    }
    Some(latency_bound_us(LATENCY_BUCKETS - 1) / 1000.0)
}

fn point(t: i64, e: &EventHour, s: &ServeHour, d: &BTreeMap<String, BTreeMap<String, u64>>) -> Value {
    let mut kinds = serde_json::Map::new();
    for k in EventKind::ALL {
        kinds.insert(k.to_string(), json!(e.kinds[k as usize]));
    }
    let total: u64 = e.kinds.iter().sum();
    let orders = e.orders as f64;
    let rec_orders = e.rec_orders as f64;
    let strategies: serde_json::Map<String, Value> =
        STRATEGIES.iter().zip(&s.strategies).map(|(n, c)| ((*n).to_string(), json!(c))).collect();
    json!({
        "t": t,
        "events": total,
        "events_by_kind": kinds,
        "revenue": e.revenue,
        "orders": e.orders,
        "aov": ratio(e.revenue, orders),
        "rec_impressions": e.rec_impressions,
        "rec_clicks": e.rec_clicks,
        "rec_purchases": e.rec_purchases,
        "rec_orders": e.rec_orders,
        "rec_revenue": e.rec_revenue,
        "ctr": ratio(e.rec_clicks as f64, e.rec_impressions as f64),
        "conversion": ratio(e.rec_purchases as f64, e.rec_clicks as f64),
        "rec_aov": ratio(e.rec_revenue, rec_orders),
        "rec_revenue_share": ratio(e.rec_revenue, e.revenue),
        "lists": s.lists,
        "cache_hits": s.cache_hits,
        "cache_hit_ratio": ratio(s.cache_hits as f64, s.lists as f64),
        "latency_ms": {"p50": percentile(&s.latency, 0.5), "p95": percentile(&s.latency, 0.95), "p99": percentile(&s.latency, 0.99)},
        "strategies": strategies,
        "decisions": d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, ts: i64, rec: Option<&str>, price: Option<f64>, order: Option<&str>) -> Event {
        let mut e = Event::new(Some("u1"), Some("i1"), kind, Timestamp(ts));
        e.rec_id = rec.map(str::to_string);
        e.unit_price = price;
        e.order_id = order.map(str::to_string);
        e
    }

    #[test]
    fn rollup_counts_attribution_per_hour() {
        let x = Insights::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;
        for i in 0..10 {
            x.event(&ev(EventKind::Impression, t0 + i, Some("r1"), None, None), Some(0), false);
        }
        x.event(&ev(EventKind::Click, t0 + 20, Some("r1"), None, None), Some(0), false);
        x.event(&ev(EventKind::View, t0 + 21, Some("r1"), None, None), Some(0), false);
        x.event(&ev(EventKind::View, t0 + 22, None, None, None), Some(0), false);
        // One order of two lines, one from a recommendation; another order without one.
        x.event(&ev(EventKind::Purchase, t0 + 30, Some("r1"), Some(10.0), Some("o1")), Some(0), false);
        x.event(&ev(EventKind::Purchase, t0 + 30, None, Some(5.0), Some("o1")), Some(0), false);
        x.event(&ev(EventKind::Purchase, t0 + HOUR_MS + 5, None, Some(7.0), Some("o2")), Some(0), true);
        let ts = x.timeseries(1, None, None);
        let p = &ts["points"];
        assert_eq!(p.as_array().map(Vec::len), Some(2));
        assert_eq!(p[0]["rec_impressions"], 10);
        assert_eq!(p[0]["rec_clicks"], 2);
        assert_eq!(p[0]["ctr"], 0.2);
        assert_eq!(p[0]["conversion"], 0.5);
        assert_eq!(p[0]["orders"], 1);
        assert_eq!(p[0]["revenue"], 15.0);
        assert_eq!(p[0]["aov"], 15.0);
        assert_eq!(p[0]["rec_revenue"], 10.0);
        assert_eq!(p[0]["events_by_kind"]["impression"], 10);
        assert_eq!(p[1]["revenue"], 7.0);
        assert_eq!(p[1]["ctr"], Value::Null);
        // Daily buckets add the hours up.
        let day = x.timeseries(24, None, None);
        assert_eq!(day["points"][0]["revenue"], 22.0);
        assert_eq!(day["points"][0]["orders"], 2);
        // Only the live event reached the feed.
        let feed = x.feed(0);
        assert_eq!(feed.len(), 1);
        assert_eq!(feed[0].what, "purchase");
    }

    #[test]
    fn orders_are_counted_once_with_bounded_memory() {
        let x = Insights::default();
        let t0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;
        let n = RECENT_ORDERS as i64 + 1000;
        for i in 0..n {
            let order = format!("o{i}");
            // Two lines per order, the second from a recommendation; then the first line
            // again (a re-sent line) after 500 other orders.
            x.event(&ev(EventKind::Purchase, t0 + i, None, Some(1.0), Some(&order)), None, false);
            x.event(&ev(EventKind::Purchase, t0 + i, Some("r"), Some(1.0), Some(&order)), None, false);
            if i >= 500 {
                let earlier = format!("o{}", i - 500);
                x.event(&ev(EventKind::Purchase, t0 + i, None, Some(1.0), Some(&earlier)), None, false);
            }
        }
        let g = x.lock();
        assert!(g.orders.seen.len() <= RECENT_ORDERS && g.orders.order.len() <= RECENT_ORDERS);
        assert!(g.rec_orders.seen.len() <= RECENT_ORDERS);
        let (orders, rec_orders): (u64, u64) =
            g.events.values().fold((0, 0), |(a, b), h| (a + h.orders, b + h.rec_orders));
        assert_eq!((orders, rec_orders), (n as u64, n as u64));
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let x = Insights::default();
        for us in 1..=1000u64 {
            let s = Served {
                subject: "u:1",
                items: &[1, 2],
                ids: &["a", "b"],
                strategy: "popular",
                rec_id: "r",
                slot: None,
                latency_us: us,
                cached: us % 4 == 0,
            };
            x.served(&s);
        }
        let ts = x.timeseries(1, None, None);
        let last = &ts["points"][ts["points"].as_array().map_or(0, Vec::len) - 1];
        assert_eq!(last["lists"], 1000);
        assert_eq!(last["cache_hit_ratio"], 0.25);
        let p50 = last["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
        let p99 = last["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
        // Buckets are 20% wide: the reported bound is within 20% above the true value.
        assert!((0.5..=0.6).contains(&p50), "{p50}");
        assert!((0.99..=1.19).contains(&p99), "{p99}");
        let ex = x.exposure(4, &[1.0, 1.0, 1.0, 1.0], &["a".into(), "b".into(), "c".into(), "d".into()], &|i| {
            format!("title {i}")
        });
        assert_eq!(ex["served"]["distinct_items"], 2);
        assert_eq!(ex["served"]["coverage"], 0.5);
        assert_eq!(ex["served"]["popularity_bias"], 1.0);
        // The least exposed half of the catalog (items 0 and 3, never served) has nothing.
        let lorenz = &ex["served"]["lorenz"];
        assert_eq!(lorenz[10], json!([0.5, 0.0]), "{lorenz}");
        assert_eq!(lorenz[20], json!([1.0, 1.0]));
        // Two of four items share everything equally: Gini 0.5.
        assert!((ex["served"]["gini"].as_f64().unwrap_or(0.0) - 0.5).abs() < 1e-12);
        // The feed took at most its per-second share of the thousand lists...
        let served = x.feed(0).len();
        assert!((1..=2 * FEED_SERVED_PER_SECOND as usize).contains(&served), "{served}");
        // ...and keeps the newest FEED_LEN entries.
        for i in 0..1000 {
            x.event(&Event::new(Some("u"), Some("i"), EventKind::View, Timestamp(i)), None, true);
        }
        let feed = x.feed(0);
        assert_eq!(feed.len(), FEED_LEN);
        let last = feed.last().map_or(0, |e| e.seq);
        assert_eq!(x.feed(last - 10).len(), 10);
    }

    #[test]
    fn latency_buckets_are_monotone() {
        let mut last = 0;
        for us in [0, 5, 10, 11, 12, 100, 1000, 10_000, 1_000_000, u64::MAX / 2] {
            let b = latency_bucket(us);
            assert!(b >= last);
            assert!(us as f64 <= latency_bound_us(b) || b == LATENCY_BUCKETS - 1);
            last = b;
        }
    }
}
