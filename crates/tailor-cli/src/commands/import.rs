//! `tailor import`: events, items and users from CSV/TSV, JSON Lines or Parquet; MovieLens.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use tailor_ingest::import::{ImportOptions, Progress, import_file};
use tailor_ingest::mapping::{Mapping, Target};
use tailor_ingest::source::{Encoding, SourceOptions};

use crate::config::Config;
use crate::{Cli, open_store, progress_bar, usage};

#[derive(Subcommand, Debug)]
pub(crate) enum ImportCmd {
    /// Events (may also create the items and users they mention via item.* / user.* fields).
    Events(ImportArgs),
    /// Catalog items (upsert: a row replaces the stored item).
    Items(ImportArgs),
    /// Users (upsert: a row replaces the stored user).
    Users(ImportArgs),
    /// A MovieLens-100K directory (u.data, u.item, u.user, u.genre).
    Movielens {
        /// The directory holding those files.
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// Input file (.csv, .tsv, .jsonl, .parquet, optionally .gz).
    pub(crate) file: PathBuf,
    /// Format, when the file name does not tell.
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Field delimiter for CSV (one character, e.g. ';').
    #[arg(long)]
    pub(crate) delimiter: Option<char>,
    /// Map fields to columns: `--map user=CustomerID,item=StockCode` (repeatable).
    #[arg(long, value_name = "FIELD=COLUMN")]
    pub(crate) map: Vec<String>,
    /// Set fields to constants: `--set kind=purchase` (repeatable).
    #[arg(long, value_name = "FIELD=VALUE")]
    pub(crate) set: Vec<String>,
    /// strftime format of timestamps, e.g. `%d/%m/%Y %H:%M` (default: auto-detect).
    #[arg(long)]
    pub(crate) ts_format: Option<String>,
    /// A known layout: online-retail.
    #[arg(long)]
    pub(crate) preset: Option<String>,
    /// Import the valid rows and write the invalid ones to a rejects file.
    #[arg(long)]
    pub(crate) skip_invalid: bool,
    /// Where rejected rows go (default: FILE.rejects.csv).
    #[arg(long)]
    pub(crate) rejects: Option<PathBuf>,
    /// Read the input as ISO-8859-1 instead of UTF-8.
    #[arg(long)]
    latin1: bool,
    /// Accept events dated more than limits.max_future_seconds ahead of this machine's
    /// clock (refused by default: one mistyped date would become "now" for the shop).
    #[arg(long)]
    pub(crate) allow_future: bool,
}

pub(crate) fn run(cli: &Cli, config: &Config, cmd: &ImportCmd) -> Result<()> {
    let store = open_store(config)?;
    let (target, args) = match cmd {
        ImportCmd::Events(a) => (Target::Events, a),
        ImportCmd::Items(a) => (Target::Items, a),
        ImportCmd::Users(a) => (Target::Users, a),
        ImportCmd::Movielens { dir } => {
            let report = tailor_ingest::presets::import_movielens(dir, &store, config.import.max_errors)?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "imported MovieLens from {}: {} ratings, {} movies ({} genres), {} users; {} new events in {:.2} s",
                    dir.display(),
                    report.ratings,
                    report.movies,
                    report.genres,
                    report.users,
                    report.written.events_added,
                    report.seconds
                );
            }
            return Ok(());
        }
    };
    let mut mapping = match &args.preset {
        Some(p) if target == Target::Events => {
            if !args.map.is_empty() || !args.set.is_empty() {
                return Err(usage("--preset cannot be combined with --map/--set"));
            }
            tailor_ingest::presets::by_name(p)?
        }
        Some(_) => return Err(usage("--preset applies to `tailor import events`")),
        None => Mapping::parse(target, &args.map, &args.set)?,
    };
    mapping.ts_format = args.ts_format.clone();
    if args.latin1 {
        mapping.encoding = Encoding::Latin1;
    }
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => return Err(usage(format!("--delimiter {c:?}: must be one ASCII character"))),
        None => None,
    };
    let opts = ImportOptions {
        source: SourceOptions {
            format: args.format.as_deref().map(str::parse).transpose().map_err(usage)?,
            delimiter,
            max_line_bytes: config.import.max_line_bytes,
            encoding: mapping.encoding,
            columns: None,
        },
        skip_invalid: args.skip_invalid,
        rejects_path: args.rejects.clone(),
        max_errors: config.import.max_errors,
        limits: config.limits.clone(),
        allow_future: args.allow_future,
    };
    let total = fs_err::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(cli, total);
    let started = Instant::now();
    let mut on_progress = |p: Progress| {
        if let Some(b) = &bar {
            b.set_position(p.bytes);
            let rate = p.rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(if p.writing {
                format!("{} rows, writing…", p.rows)
            } else {
                format!("{} rows ({rate:.0} rows/s)", p.rows)
            });
        }
    };
    let result = import_file(&args.file, &mapping, &opts, &store, &mut on_progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result?;
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let w = &report.written;
        println!(
            "imported {}: {} rows ({} rejected) in {:.2} s ({:.0} rows/s)\n  events: {} new, {} already stored\n  items: {} new, {} updated; users: {} new, {} updated",
            report.path,
            report.rows,
            report.rejected_rows,
            report.seconds,
            report.rows_per_second,
            w.events_added,
            w.events_duplicate,
            w.items_inserted,
            w.items_updated,
            w.users_inserted,
            w.users_updated
        );
        if let Some(r) = &report.rejects_file {
            println!("  rejected rows written to {r}");
        }
    }
    Ok(())
}
