//! `tailor demo`: the synthetic shop, generated, stored, segmented, trained and served.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use tailor_store::{Store, WriteBatch};

use tailor_core::Timestamp;

use crate::commands::serve::{listen, serve};
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
    /// Days of history, ending now [config: demo.days].
    #[arg(long)]
    pub(crate) days: Option<u32>,
    /// Address to serve on, e.g. 127.0.0.1:8081 [config: serve.addr].
    #[arg(long, visible_alias = "listen", value_name = "HOST:PORT")]
    pub(crate) addr: Option<String>,
    /// Only generate and store; do not train or serve.
    #[arg(long)]
    pub(crate) no_serve: bool,
    /// Delete the shop already in the data directory (store, models, bandit state) and
    /// generate a new one; without it, a data directory that holds a shop is served as it is.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Leave out the history of recommendation traffic (impression events and the rec_ids
    /// of attributed click-throughs, carts and purchases); shoppers' behaviour is the same.
    #[arg(long)]
    pub(crate) no_rec_traffic: bool,
    /// Also write each user's hidden archetype to this CSV (user,archetype).
    #[arg(long)]
    pub(crate) truth_out: Option<PathBuf>,
}

/// The demo's serving preset: playbooks for its rule segments, an A/B test of two models
/// on the home slot (collaborative filtering against the hybrid) and a layout bandit on the home slot (each only where the configuration
/// gives none).
pub(crate) fn preset(config: &Config) -> Config {
    use tailor_server::config::{Playbook, Strategy};
    let mut config = config.clone();
    if config.serve.playbooks.is_empty() {
        let p = |segment: &str, strategy, weight| Playbook { segment: segment.into(), strategy, weight };
        config.serve.playbooks = vec![
            p("Bargain hunters", Strategy::BoostDiscounted, 0.3),
            p("Trend followers", Strategy::BoostNewArrivals, 0.3),
            p("Luxury", Strategy::PremiumOnly, 0.0),
        ];
    }
    if config.serve.experiments.is_empty() {
        let mut e = tailor_experiment::ExperimentSpec::new("collaborative-vs-hybrid", &["collaborative", "hybrid"]);
        e.description = Some(
            "Do home lists from the hybrid (collaborative + content) get more clicks than collaborative filtering \
             (EASE) alone, without losing revenue?"
                .into(),
        );
        e.slots = vec!["home".into()];
        e.variants[0].model = Some("ease".into());
        e.variants[1].model = Some("hybrid".into());
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
    if config.serve.alerts.is_empty() {
        // The server's own alerts, with their defaults: a 20% CTR drop (at most one false
        // alarm a month, after a week of learning), ten quiet minutes, fallback lists
        // doubling, a p99 above 50 ms on the read routes, and a retrained model 20% worse.
        let alert = |text: &str| toml::from_str::<tailor_server::alerts::AlertConfig>(text);
        config.serve.alerts = [
            "name = \"recommendation-ctr\"\nkind = \"ctr_drop\"",
            "name = \"no-events\"\nkind = \"no_events\"\nwindow = \"10m\"",
            "name = \"fallback-lists\"\nkind = \"fallback_rate\"",
            "name = \"p99-latency\"\nkind = \"latency\"\nlatency_ms = 50",
            "name = \"model-regression\"\nkind = \"model_regression\"",
        ]
        .iter()
        .filter_map(|t| alert(t).ok())
        .collect();
    }
    config
}

/// `tailor demo`.
pub(crate) fn run(cli: &Cli, config: &Config, args: &DemoArgs) -> Result<()> {
    let config = preset(config);
    let params = tailor_ingest::demo::DemoParams {
        seed: args.seed.unwrap_or(config.demo.seed),
        users: args.users.unwrap_or(config.demo.users),
        items: args.items.unwrap_or(config.demo.items),
        days: args.days.unwrap_or(config.demo.days),
        anonymous_sessions: config.demo.anonymous_sessions,
        rec_traffic: !args.no_rec_traffic,
        // The history ends now (to the hour, so reruns within it are the same shop).
        end: Timestamp(Timestamp::now().0.div_euclid(3_600_000) * 3_600_000),
    };
    if params.users == 0 || params.items == 0 || params.days == 0 {
        return Err(usage("--users, --items and --days must be positive"));
    }
    // Bind before minutes of generating and training: a taken port is reported at once.
    let listener = if args.no_serve { None } else { Some(listen(&config, args.addr.as_deref())?) };
    let dir = &config.store.data_dir;
    if args.fresh {
        for path in [dir.join("tailor.redb"), dir.join("bandits.json")] {
            if path.exists() {
                fs_err::remove_file(&path)?;
            }
        }
        if dir.join("models").exists() {
            fs_err::remove_dir_all(dir.join("models"))?;
        }
    }
    let store = open_store(&config)?;
    let stored = store.counts()?.events;
    let summary = if stored > 0 {
        // Served as it is: regenerating would bring back erased users and lose what the
        // shop has recorded since.
        let summary = serde_json::json!({"data_dir": dir, "reused": true, "events": stored,
            "written": tailor_store::WriteReport::default(), "serving": !args.no_serve});
        if !cli.json {
            println!(
                "using the demo shop already in {} ({stored} events); `tailor demo --fresh` generates a new one",
                dir.display()
            );
        }
        drop(store);
        summary
    } else {
        let summary = generate(cli, &config, &params, args, &store)?;
        drop(store);
        demo_segments(&config)?;
        summary
    };
    if cli.json {
        println!("{summary}");
    }
    let Some(listener) = listener else { return Ok(()) };
    let addr = listener.local_addr()?;
    let user = shop_first_user(&config)?;
    println!("serving the demo shop on http://{addr}  (Ctrl-C stops)");
    println!("  open http://{addr}/demo        the storefront: switch shoppers, browse, buy");
    println!("  open http://{addr}/dashboard   the dashboard: traffic, segments, models, experiments");
    println!("  curl 'http://{addr}/v1/users/{user}/recommendations?k=5'");
    println!("  curl 'http://{addr}/v1/users/{user}/layout?slot=home'");
    println!(
        "  curl 'http://{addr}/v1/users/{user}/recommendations?k=5&slot=home'   # in the collaborative-vs-hybrid A/B test"
    );
    println!("  curl http://{addr}/v1/experiments/collaborative-vs-hybrid/report");
    println!("  curl 'http://{addr}/v1/popular?k=5'");
    println!(
        "  curl -X POST http://{addr}/v1/events -H 'Content-Type: application/json' -d '{{\"user\":\"{user}\",\"item\":\"<an item id>\",\"kind\":\"purchase\"}}'"
    );
    println!("  curl http://{addr}/openapi.json");
    serve(&config, listener)
}

/// Generates the shop with its simulated experiment and bandit history and stores it.
fn generate(
    cli: &Cli,
    config: &Config,
    params: &tailor_ingest::demo::DemoParams,
    args: &DemoArgs,
    store: &dyn Store,
) -> Result<serde_json::Value> {
    let start = Instant::now();
    let spinner = progress_bar(cli, 3);
    if let Some(s) = &spinner {
        s.set_message("generating the demo shop");
    }
    let mut shop = tailor_ingest::demo::generate(params);
    let generated = start.elapsed().as_secs_f64();
    if let Some(s) = &spinner {
        s.set_position(1);
        s.set_message("storing");
    }
    if let Some(path) = &args.truth_out {
        write_truth(path, &shop)?;
    }
    let history = if params.rec_traffic {
        super::demo_history::simulate(&mut shop.events, config, params.end)?
    } else {
        super::demo_history::History::default()
    };
    let (n_items, n_users, n_events) = (shop.items.len(), shop.users.len(), shop.events.len());
    let batch = WriteBatch { items: shop.items, users: shop.users, events: shop.events, ..WriteBatch::default() };
    let written = store.write(batch)?;
    history.store(store)?;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut shares = std::collections::BTreeMap::new();
    for a in &shop.archetypes {
        *shares.entry(a.as_str()).or_insert(0u64) += 1;
    }
    if !cli.json {
        println!(
            "demo shop (seed {}) in {}: {} items, {} users, {} events over the {} days to now; {} new events stored in {:.2} s",
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
        if !history.exposures.is_empty() {
            println!(
                "simulated history: {} lists in the {:?} A/B test, {} layout decisions of the home bandit",
                history.exposures.len(),
                history.experiment.as_ref().map_or("", |e| e.spec.name.as_str()),
                history.decisions
            );
        }
        println!("next: `tailor stats` for a summary; `tailor export events --out events.csv` for the raw data");
    }
    Ok(serde_json::json!({
        "data_dir": config.store.data_dir,
        "params": params,
        "items": n_items,
        "users": n_users,
        "events": n_events,
        "written": written,
        "archetypes": shares,
        "experiment_exposures": history.exposures.len(),
        "bandit_decisions": history.decisions,
        "generate_seconds": generated,
        "seconds": seconds,
        "serving": !args.no_serve,
    }))
}

/// The demo's rule segments (bargain hunters, trend followers, luxury), which its playbooks
/// use, and a k-means segmentation of behaviour.
pub(crate) fn demo_segments(config: &Config) -> Result<()> {
    let store = open_store(config)?;
    let rules = config.store.data_dir.join("demo-rules.toml");
    fs_err::write(&rules, include_str!("../../../../examples/demo-rules.toml"))?;
    let opts = segment::RunOptions {
        method: segment::SegmentMethod::Rules,
        rules: Some(rules),
        top_categories: config.segment.top_categories,
        ..segment::RunOptions::default()
    };
    let out = segment::run(&store, &opts)?;
    tracing::info!(segments = out.record.names.len(), "demo rule segments stored");
    // And a behavioural clustering (k-means over the default features), for the dashboard's
    // map and explanations.
    let opts = segment::RunOptions {
        method: segment::SegmentMethod::Kmeans,
        k: crate::cluster::K::N(5),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configures_every_alert_it_names() {
        let c = preset(&Config::default());
        let names: Vec<&str> = c.serve.alerts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["recommendation-ctr", "no-events", "fallback-lists", "p99-latency", "model-regression"]);
        assert_eq!(c.serve.validate(), Ok(()));
    }
}
