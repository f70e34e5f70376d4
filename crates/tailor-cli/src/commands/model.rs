//! `tailor train` and `tailor model list|rollback`: model versions.

use anyhow::Context as _;
use anyhow::Result;
use clap::Subcommand;

use crate::commands::serve::server_state;
use crate::config::Config;
use crate::{Cli, open_store, progress_bar, usage};

#[derive(Subcommand, Debug)]
pub(crate) enum ModelCmd {
    /// Every registered version with its training facts; `*` marks the live one.
    List,
    /// Make an earlier version live (default: the promoted version before the live one);
    /// running servers switch on `POST /v1/admin/reload`.
    Rollback {
        /// The version to serve.
        #[arg(long)]
        to: Option<u64>,
    },
}

/// `tailor train`: one retraining with the promotion check.
pub(crate) fn train(cli: &Cli, config: &Config) -> Result<()> {
    let store: std::sync::Arc<dyn tailor_store::Store> = std::sync::Arc::new(open_store(config)?);
    let state = server_state(config, store)?;
    // Load the live version first so the candidate is compared with it.
    let reg = state.models.registry.read()?;
    if let Some(v) = reg.live
        && state.models.registry.has_model(v)?
    {
        state.reload_blocking().context("loading the live version")?;
    }
    let spinner = progress_bar(cli, 1);
    if let Some(s) = &spinner {
        s.set_message("training and measuring the candidate");
    }
    let r = state.retrain_blocking().context("training")?;
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    if cli.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "version {}: {} ({}) in {:.2} s, holdout NDCG@10 {} — {}",
            r.candidate.version,
            if r.promoted { "promoted" } else { "rejected" },
            r.candidate.model,
            r.candidate.train_seconds,
            r.candidate.holdout_ndcg.map_or("-".into(), |n| format!("{n:.4}")),
            r.reason
        );
        if r.candidate.candidates.len() > 1 {
            println!(
                "{:<10} {:>9} {:>7} {:>9} {:>8} {:>7} {:>8}",
                "model", "NDCG@10", "recall", "coverage", "novelty", "fit s", "recency"
            );
            for c in &r.candidate.candidates {
                let h = c.holdout.unwrap_or_default();
                let cell = |v: f64, d: usize| if c.holdout.is_some() { format!("{v:.d$}") } else { "-".into() };
                println!(
                    "{:<10} {:>9} {:>7} {:>9} {:>8} {:>7.2} {:>8}{}",
                    c.model,
                    cell(h.ndcg, 4),
                    cell(h.recall, 4),
                    cell(h.coverage, 3),
                    cell(h.novelty, 2),
                    c.fit_seconds,
                    c.recency_half_life.map_or("-".into(), |h| h.to_string()),
                    if c.chosen {
                        "  served".to_string()
                    } else {
                        c.error.as_deref().map_or(String::new(), |e| format!("  {e}"))
                    }
                );
            }
        }
    }
    Ok(())
}

/// `tailor model list|rollback`.
pub(crate) fn run(cli: &Cli, config: &Config, cmd: &ModelCmd) -> Result<()> {
    let registry = tailor_server::registry::Registry::new(config.store.data_dir.join("models"));
    let mut reg = registry.read()?;
    // Which versions still have their model file.
    let kept: std::collections::HashSet<u64> = reg
        .versions
        .iter()
        .map(|v| Ok(registry.has_model(v.version)?.then_some(v.version)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    match cmd {
        ModelCmd::List => {
            if cli.json {
                println!("{}", serde_json::to_string(&reg)?);
            } else {
                println!(
                    "{:>2} {:>7}  {:<9}  {:<20}  {:>8}  {:>9}  {:>8}  kept",
                    "", "version", "model", "trained at", "seconds", "NDCG@10", "promoted"
                );
                for v in &reg.versions {
                    println!(
                        "{:>2} {:>7}  {:<9}  {:<20}  {:>8.2}  {:>9}  {:>8}  {}",
                        if reg.live == Some(v.version) { "*" } else { "" },
                        v.version,
                        v.model,
                        v.trained_at,
                        v.train_seconds,
                        v.holdout_ndcg.map_or("-".into(), |n| format!("{n:.4}")),
                        v.promoted,
                        if kept.contains(&v.version) { "yes" } else { "no" }
                    );
                }
            }
        }
        ModelCmd::Rollback { to } => {
            let target = match to {
                Some(v) => *v,
                None => reg
                    .versions
                    .iter()
                    .rev()
                    .filter(|v| v.promoted && Some(v.version) < reg.live && kept.contains(&v.version))
                    .map(|v| v.version)
                    .next()
                    .ok_or_else(|| usage("no earlier version with a kept model file to roll back to"))?,
            };
            if !registry.has_model(target)? {
                return Err(usage(format!("version {target} has no kept model file (see `tailor model list`)")));
            }
            let from = reg.live;
            reg.live = Some(target);
            registry.write(&reg)?;
            if cli.json {
                println!("{}", serde_json::json!({"from": from, "live": target}));
            } else {
                println!(
                    "live version: {} → {target}; running servers switch on POST /v1/admin/reload (a restart serves it too)",
                    from.map_or("none".into(), |v| v.to_string())
                );
            }
        }
    }
    Ok(())
}
