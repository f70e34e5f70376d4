//! `tailor stats`: what the store holds.

use anyhow::Result;

use crate::config::Config;
use crate::{Cli, open_store};

pub(crate) fn print_stats(s: &tailor_store::stats::Stats) {
    println!("events        {:>12}", s.events);
    for (k, v) in &s.events_by_kind {
        println!("  {k:<12}{v:>12}");
    }
    println!("users         {:>12}  ({} with attributes)", s.users, s.user_records);
    println!("items         {:>12}  ({} with catalog data)", s.items, s.item_records);
    println!("orders        {:>12}", s.orders);
    println!("sessions      {:>12}", s.sessions);
    println!("countries     {:>12}", s.countries);
    println!("anonymous     {:>12}  events without a known user", s.anonymous_events);
    println!("date range    {} → {}", s.first_event.as_deref().unwrap_or("-"), s.last_event.as_deref().unwrap_or("-"));
    println!("revenue       {:>12.2}  (returns {:.2})", s.revenue, s.returned);
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "funnel        view→cart {}  cart→purchase {}  view→purchase {}",
        pct(s.funnel.view_to_cart),
        pct(s.funnel.cart_to_purchase),
        pct(s.funnel.view_to_purchase)
    );
    if !s.top_items.is_empty() {
        println!("top items            purchases     views    events");
        for t in &s.top_items {
            println!("  {:<20}{:>10}{:>10}{:>10}", t.item, t.purchases, t.views, t.events);
        }
    }
}

/// `tailor stats`.
pub(crate) fn run(cli: &Cli, config: &Config, top: usize) -> Result<()> {
    let store = open_store(config)?;
    let stats = tailor_store::stats::compute(&store, top)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print_stats(&stats);
    }
    Ok(())
}
