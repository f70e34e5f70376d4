//! `tailor demo`: the synthetic shop, generated, stored, segmented, trained and served.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use tailor_store::{Store, WriteBatch};

use crate::commands::serve::serve;
use crate::config::Config;
use crate::{Cli, open_store, progress_bar, segment, usage};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Seed [config: demo.seed].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Users [config: demo.users].
    #[arg(long)]
    pub(crate) users: Option<usize>,
    /// Items [config: demo.items].
    #[arg(long)]
    pub(crate) items: Option<usize>,
    /// Days of history [config: demo.days].
    #[arg(long)]
    pub(crate) days: Option<u32>,
    /// Only generate and store; do not train or serve.
    #[arg(long)]
    pub(crate) no_serve: bool,
    /// Leave out the history of recommendation traffic (impression events and the rec_ids
    /// of attributed click-throughs, carts and purchases); shoppers' behaviour is the same.
    #[arg(long)]
    pub(crate) no_rec_traffic: bool,
    /// Also write each user's hidden archetype to this CSV (user,archetype).
    #[arg(long)]
    pub(crate) truth_out: Option<PathBuf>,
}

pub(crate) fn run(cli: &Cli, config: &Config, args: &DemoArgs) -> Result<()> {
    let params = tailor_ingest::demo::DemoParams {
        seed: args.seed.unwrap_or(config.demo.seed),
        users: args.users.unwrap_or(config.demo.users),
        items: args.items.unwrap_or(config.demo.items),
        days: args.days.unwrap_or(config.demo.days),
        anonymous_sessions: config.demo.anonymous_sessions,
        rec_traffic: !args.no_rec_traffic,
        ..Default::default()
    };
    if params.users == 0 || params.items == 0 || params.days == 0 {
        return Err(usage("--users, --items and --days must be positive"));
    }
    let start = Instant::now();
    let spinner = progress_bar(cli, 3);
    if let Some(s) = &spinner {
        s.set_message("generating the demo shop");
    }
    let shop = tailor_ingest::demo::generate(&params);
    let generated = start.elapsed().as_secs_f64();
    if let Some(s) = &spinner {
        s.set_position(1);
        s.set_message("storing");
    }
    if let Some(path) = &args.truth_out {
        write_truth(path, &shop)?;
    }
    let (n_items, n_users, n_events) = (shop.items.len(), shop.users.len(), shop.events.len());
    let store = open_store(config)?;
    let batch = WriteBatch { items: shop.items, users: shop.users, events: shop.events, ..WriteBatch::default() };
    let written = store.write(batch)?;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut shares = std::collections::BTreeMap::new();
    for a in &shop.archetypes {
        *shares.entry(a.as_str()).or_insert(0u64) += 1;
    }
    let summary = serde_json::json!({
        "data_dir": config.store.data_dir,
        "params": params,
        "items": n_items,
        "users": n_users,
        "events": n_events,
        "written": written,
        "archetypes": shares,
        "generate_seconds": generated,
        "seconds": seconds,
        "serving": !args.no_serve,
    });
    if cli.json {
        println!("{summary}");
    } else {
        println!(
            "demo shop (seed {}) in {}: {} items, {} users, {} events over {} days; {} new events stored in {:.2} s",
            params.seed,
            config.store.data_dir.display(),
            n_items,
            n_users,
            n_events,
            params.days,
            written.events_added,
            seconds
        );
        println!(
            "hidden shopper archetypes: {}",
            shares.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
        println!("next: `tailor stats` for a summary; `tailor export events --out events.csv` for the raw data");
    }
    if args.no_serve {
        return Ok(());
    }
    drop(store);
    demo_segments(config)?;
    let mut config = config.clone();
    if config.serve.playbooks.is_empty() {
        use tailor_server::config::{Playbook, Strategy};
        let p = |segment: &str, strategy, weight| Playbook { segment: segment.into(), strategy, weight };
        config.serve.playbooks = vec![
            p("Bargain hunters", Strategy::BoostDiscounted, 0.3),
            p("Trend followers", Strategy::BoostNewArrivals, 0.3),
            p("Luxury", Strategy::PremiumOnly, 0.0),
        ];
    }
    if config.serve.experiments.is_empty() {
        // An A/B test of diversified lists on the home slot, and a layout bandit there.
        let mut e = tailor_experiment::ExperimentSpec::new("home-diversity", &["control", "diverse"]);
        e.description = Some("Does a more diverse home list get more clicks without losing revenue?".into());
        e.slots = vec!["home".into()];
        e.variants[1].params.insert("diversity".into(), "0.3".into());
        e.guardrails = vec![tailor_experiment::Metric::RevenuePerUser];
        config.serve.experiments = vec![e];
    }
    if config.serve.bandits.is_empty() {
        config.serve.bandits = vec![tailor_server::experiments::BanditConfig {
            slot: "home".into(),
            arms: vec!["carousel".into(), "grid".into(), "list".into()],
            policy: "thompson".into(),
            per_segment: true,
        }];
    }
    let addr = config.serve.addr.clone();
    let user = shop_first_user(&config)?;
    println!("serving the demo shop on http://{addr}  (Ctrl-C stops)");
    println!("  open http://{addr}/demo   the storefront: switch shoppers, browse, buy");
    println!("  curl 'http://{addr}/v1/users/{user}/recommendations?k=5'");
    println!("  curl 'http://{addr}/v1/users/{user}/layout?slot=home'");
    println!("  curl 'http://{addr}/v1/users/{user}/recommendations?k=5&slot=home'   # in the home-diversity A/B test");
    println!("  curl http://{addr}/v1/experiments/home-diversity/report");
    println!("  curl 'http://{addr}/v1/popular?k=5'");
    println!(
        "  curl -X POST http://{addr}/v1/events -d '{{\"user\":\"{user}\",\"item\":\"<an item id>\",\"kind\":\"purchase\"}}'"
    );
    println!("  curl http://{addr}/openapi.json");
    serve(&config, None)
}

/// The demo's rule segments (bargain hunters, trend followers, luxury), which its playbooks
/// use, and a k-means segmentation of behaviour.
pub(crate) fn demo_segments(config: &Config) -> Result<()> {
    let store = open_store(config)?;
    let rules = config.store.data_dir.join("demo-rules.toml");
    fs_err::write(&rules, include_str!("../../../../examples/demo-rules.toml"))?;
    let opts = segment::RunOptions {
        method: "rules".into(),
        rules: Some(rules),
        top_categories: config.segment.top_categories,
        ..segment::RunOptions::default()
    };
    let out = segment::run(&store, &opts)?;
    tracing::info!(segments = out.record.names.len(), "demo rule segments stored");
    // And a behavioural clustering (k-means over the default features), for the dashboard's
    // map and explanations.
    let opts = segment::RunOptions {
        method: "kmeans".into(),
        k: "5".into(),
        rules: None,
        name: Some("behaviour".into()),
        ..opts
    };
    let out = segment::run(&store, &opts)?;
    tracing::info!(segments = out.record.names.len(), "demo behaviour segments stored");
    Ok(())
}

pub(crate) fn shop_first_user(config: &Config) -> Result<String> {
    let store = open_store(config)?;
    Ok(store.user_names()?.into_iter().next().unwrap_or_else(|| "u1".into()))
}

pub(crate) fn write_truth(path: &Path, shop: &tailor_ingest::demo::DemoShop) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["user", "archetype"])?;
    for (u, a) in shop.users.iter().zip(&shop.archetypes) {
        w.write_record([u.id.0.as_str(), a.as_str()])?;
    }
    w.flush()?;
    Ok(())
}
