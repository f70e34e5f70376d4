//! `tailor export`: stored events in a form `tailor import events` reads back.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use tailor_core::Timestamp;
use tailor_ingest::source::Format;
use tailor_store::EventFilter;

use crate::config::Config;
use crate::{Cli, open_store, usage};

#[derive(Subcommand, Debug)]
pub(crate) enum ExportCmd {
    /// Events, with the columns `tailor import events` reads back unchanged.
    Events {
        /// csv, tsv, jsonl or parquet.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Only events at or after this time (RFC 3339, date, or Unix seconds).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time.
        #[arg(long)]
        until: Option<String>,
    },
}

/// `tailor export events`.
pub(crate) fn run(cli: &Cli, config: &Config, cmd: &ExportCmd) -> Result<()> {
    let ExportCmd::Events { format, out, since, until } = cmd;
    let format: Format = format.parse().map_err(usage)?;
    let parse_ts = |flag: &str, s: &Option<String>| -> Result<Option<Timestamp>> {
        s.as_deref().map(|v| Timestamp::parse_auto(v).map_err(|e| usage(format!("{flag}: {e}")))).transpose()
    };
    let filter = EventFilter { since: parse_ts("--since", since)?, until: parse_ts("--until", until)?, kinds: None };
    let store = open_store(config)?;
    let report = tailor_ingest::export::export_events(&store, format, out, filter)?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("exported {} events to {} in {:.2} s", report.events, report.path, report.seconds);
    }
    Ok(())
}
