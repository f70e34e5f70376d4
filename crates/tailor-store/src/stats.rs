//! Summary statistics over a store (`tailor stats`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use serde::Serialize;
use tailor_core::{EventKind, Timestamp};

use crate::{EventFilter, Result, Store};

/// What `tailor stats` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// Number of events.
    pub events: u64,
    /// Events per kind (kinds with none are left out).
    pub events_by_kind: BTreeMap<String, u64>,
    /// Distinct known users.
    pub users: u64,
    /// Distinct items.
    pub items: u64,
    /// Users with attributes stored.
    pub user_records: u64,
    /// Items with catalog data stored.
    pub item_records: u64,
    /// Distinct order ids.
    pub orders: u64,
    /// Distinct sessions (session ids).
    pub sessions: u64,
    /// Distinct `context.country` values.
    pub countries: u64,
    /// Events without a known user.
    pub anonymous_events: u64,
    /// Earliest event.
    pub first_event: Option<String>,
    /// Latest event.
    pub last_event: Option<String>,
    /// Sum of quantity × unit price over purchases.
    pub revenue: f64,
    /// Sum of quantity × unit price over returns.
    pub returned: f64,
    /// Most purchased items (then most events) with counts.
    pub top_items: Vec<TopItem>,
    /// Funnel over (user or session, item) pairs.
    pub funnel: Funnel,
}

/// One row of the top-items list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopItem {
    /// External id.
    pub item: String,
    /// Purchase events.
    pub purchases: u64,
    /// View events.
    pub views: u64,
    /// All events with this item.
    pub events: u64,
}

/// View → cart → purchase conversion over distinct (visitor, item) pairs.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Funnel {
    /// Pairs with a view.
    pub viewed: u64,
    /// Viewed pairs that were also carted.
    pub viewed_then_carted: u64,
    /// Carted pairs that were also bought.
    pub carted_then_bought: u64,
    /// `viewed_then_carted / viewed`.
    pub view_to_cart: Option<f64>,
    /// `carted_then_bought / carted pairs`.
    pub cart_to_purchase: Option<f64>,
    /// Bought pairs over viewed pairs.
    pub view_to_purchase: Option<f64>,
}

/// Computes [`Stats`] with one scan of the events.
pub fn compute(store: &dyn Store, top_n: usize) -> Result<Stats> {
    let counts = store.counts()?;
    let mut by_kind = [0u64; 10];
    let mut orders = HashSet::new();
    let mut sessions = HashSet::new();
    let mut countries = HashSet::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let (mut revenue, mut returned) = (0.0, 0.0);
    let mut anonymous = 0u64;
    let mut per_item: HashMap<String, (u64, u64, u64)> = HashMap::new();
    // Bit 0 viewed, 1 carted, 2 bought, per (visitor, item).
    let mut pairs: HashMap<(String, String), u8> = HashMap::new();
    store.scan_events(EventFilter::default(), &mut |_, e| {
        by_kind[e.kind.code() as usize] += 1;
        first = first.min(e.ts.0);
        last = last.max(e.ts.0);
        if let Some(o) = &e.order_id
            && !orders.contains(o)
        {
            orders.insert(o.clone());
        }
        if let Some(s) = &e.session
            && !sessions.contains(s)
        {
            sessions.insert(s.clone());
        }
        if let Some(c) = &e.context.country
            && !countries.contains(c)
        {
            countries.insert(c.clone());
        }
        if e.user.is_none() {
            anonymous += 1;
        }
        match e.kind {
            EventKind::Purchase => revenue += e.amount(),
            EventKind::Return => returned += e.amount(),
            _ => {}
        }
        if let Some(item) = &e.item {
            let bit = match e.kind {
                EventKind::View | EventKind::Click => 1,
                EventKind::AddToCart => 2,
                EventKind::Purchase => 4,
                _ => 0,
            };
            let entry = match per_item.get_mut(&item.0) {
                Some(e) => e,
                None => per_item.entry(item.0.clone()).or_default(),
            };
            entry.2 += 1;
            match e.kind {
                EventKind::Purchase => entry.0 += 1,
                EventKind::View => entry.1 += 1,
                _ => {}
            }
            let visitor = e.user.as_ref().map(|u| u.0.clone()).or_else(|| e.session.clone());
            if bit != 0
                && let Some(v) = visitor
            {
                *pairs.entry((v, item.0.clone())).or_default() |= bit;
            }
        }
        ControlFlow::Continue(())
    })?;
    let mut f = Funnel::default();
    let mut carted = 0u64;
    let mut bought = 0u64;
    for bits in pairs.values() {
        if bits & 1 != 0 {
            f.viewed += 1;
            if bits & 2 != 0 {
                f.viewed_then_carted += 1;
            }
            if bits & 4 != 0 {
                bought += 1;
            }
        }
        if bits & 2 != 0 {
            carted += 1;
            if bits & 4 != 0 {
                f.carted_then_bought += 1;
            }
        }
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    f.view_to_cart = ratio(f.viewed_then_carted, f.viewed);
    f.cart_to_purchase = ratio(f.carted_then_bought, carted);
    f.view_to_purchase = ratio(bought, f.viewed);
    let mut top: Vec<TopItem> = per_item
        .into_iter()
        .map(|(item, (purchases, views, events))| TopItem { item, purchases, views, events })
        .collect();
    top.sort_by(|a, b| (b.purchases, b.events).cmp(&(a.purchases, a.events)).then_with(|| a.item.cmp(&b.item)));
    top.truncate(top_n);
    let ts = |v: i64| (v != i64::MAX && v != i64::MIN).then(|| Timestamp(v).to_rfc3339());
    Ok(Stats {
        events: counts.events,
        events_by_kind: EventKind::ALL
            .iter()
            .filter(|k| by_kind[k.code() as usize] > 0)
            .map(|k| (k.as_str().to_owned(), by_kind[k.code() as usize]))
            .collect(),
        users: counts.users,
        items: counts.items,
        user_records: counts.user_records,
        item_records: counts.item_records,
        orders: orders.len() as u64,
        sessions: sessions.len() as u64,
        countries: countries.len() as u64,
        anonymous_events: anonymous,
        first_event: ts(first),
        last_event: ts(last),
        revenue: (revenue * 100.0).round() / 100.0,
        returned: (returned * 100.0).round() / 100.0,
        top_items: top,
        funnel: f,
    })
}
