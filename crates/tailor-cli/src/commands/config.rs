//! `tailor config`: every setting and where it came from.

use anyhow::Result;
use clap::Subcommand;

use crate::Cli;
use crate::config::{Config, Sources};

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCmd {
    /// Every configuration value and where it came from.
    Show,
}

/// `tailor config show`.
pub(crate) fn run(cli: &Cli, config: &Config, sources: &Sources, cmd: &ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Show => {
            let rows = config.show(sources).map_err(anyhow::Error::msg)?;
            if cli.json {
                let obj: serde_json::Map<String, serde_json::Value> =
                    rows.into_iter().map(|(k, v, s)| (k, serde_json::json!({ "value": v, "source": s }))).collect();
                println!("{}", serde_json::to_string_pretty(&obj)?);
            } else {
                let width = rows.iter().map(|r| r.0.len() + r.1.len() + 3).max().unwrap_or(0);
                for (k, v, s) in rows {
                    let kv = format!("{k} = {v}");
                    println!("{kv:<width$}  # {s}");
                }
            }
            Ok(())
        }
    }
}
