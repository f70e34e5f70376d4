//! `tailor segment`: runs, stored segments, members, explanations, plots, assignment, history.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use tailor_core::Timestamp;
use tailor_store::Store;

use crate::config::Config;
use crate::{Cli, open_store, segment, usage};

#[derive(Subcommand, Debug)]
pub(crate) enum SegmentCmd {
    /// Compute user features, segment the users, explain and store the result.
    Run(SegmentRunArgs),
    /// List the stored segmentations, or describe one segment.
    Show {
        /// A segment name (default: list every segment of the segmentation).
        name: Option<String>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Print the members of a segment, one user id per line.
    Users {
        /// The segment's name in that segmentation.
        name: String,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Print each segment as readable rules (decision tree of depth <= 3) with precision and coverage.
    Explain {
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Draw the 2-D PCA map coloured by segment (.svg or .png), and the silhouette-by-k chart of `--k auto`.
    Plot {
        /// Output file (.svg or .png).
        #[arg(long)]
        out: PathBuf,
        /// Silhouette-by-k chart (default: next to --out, `<stem>-silhouette-by-k.<ext>`).
        #[arg(long)]
        k_chart: Option<PathBuf>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
    },
    /// Put one user in a segment of a stored run now (nearest centre, or the run's rules), from their events.
    Assign {
        /// User id.
        user: String,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// Features as of this time (default: now).
        #[arg(long)]
        as_of: Option<String>,
        /// Store the membership (recorded in the history when it changes).
        #[arg(long)]
        apply: bool,
    },
    /// Membership changes: who moved from which segment to which, when.
    History {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Segmentation (default: the most recent one).
        #[arg(long, short = 's')]
        segmentation: Option<String>,
        /// Print every change instead of the from → to counts.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct SegmentRunArgs {
    /// How to segment.
    #[arg(long, value_enum, default_value_t = segment::SegmentMethod::Kmeans)]
    pub(crate) method: segment::SegmentMethod,
    /// Number of segments for kmeans/minibatch/ward; `auto` (kmeans) picks the best silhouette in 2..=10.
    #[arg(long, default_value = "auto", value_parser = crate::cluster::parse_k)]
    pub(crate) k: crate::cluster::K,
    /// Features: `name[:zscore|robust|log1p|minmax|none][*weight]`, comma separated; categorical names are one-hot encoded
    /// (default: value, engagement, price sensitivity, novelty, brand loyalty, evening share, mobile share, age).
    #[arg(long)]
    pub(crate) features: Option<String>,
    /// Rule file (TOML, `[[segment]] name = "..." when = "..."`) for --method rules.
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Compute features from events before this time (backtests); default: all history.
    #[arg(long)]
    pub(crate) as_of: Option<String>,
    /// Name of the segmentation (default: the method).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Override automatic names: `0=VIP,2=Bargain hunters`.
    #[arg(long)]
    pub(crate) names: Option<String>,
    /// DBSCAN radius (default: suggested from the k-distance curve).
    #[arg(long)]
    pub(crate) eps: Option<f64>,
    /// DBSCAN core threshold.
    #[arg(long, default_value_t = 5)]
    pub(crate) min_samples: usize,
    /// k-means restarts.
    #[arg(long, default_value_t = 4)]
    pub(crate) n_init: usize,
    /// Seed of k-means++, samples and the silhouette (same seed, same segments).
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Categories whose shares become features [config: segment.top_categories].
    #[arg(long)]
    pub(crate) top_categories: Option<usize>,
    /// Compute and print, store nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run only when the last run of this segmentation is due for a recluster ([segment] recluster_* settings); for cron.
    #[arg(long)]
    pub(crate) if_due: bool,
}

pub(crate) fn parse_time(flag: &str, s: &str) -> Result<Timestamp> {
    Timestamp::parse_auto(s).map_err(|e| usage(format!("{flag} {s:?}: {e}")))
}

/// A membership as text: `a + b`, or `(none)`.
pub(crate) fn segments_text(v: &[String]) -> String {
    if v.is_empty() { "(none)".to_owned() } else { v.join(" + ") }
}

pub(crate) fn run(cli: &Cli, config: &Config, cmd: &SegmentCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        SegmentCmd::Run(a) => {
            if a.if_due {
                let name = a.name.clone().unwrap_or_else(|| a.method.as_str().to_string());
                if let Some(last) = store.segmentation(&name, None)? {
                    let since = store.membership_history(&name, None)?;
                    let updates = since.iter().filter(|c| c.run.is_none() && c.at >= last.created_at).count() as u64;
                    let due = config.segment.policy().due(last.created_at.0, Timestamp::now().0, updates, 0.0);
                    match due {
                        None => {
                            if cli.json {
                                println!("{}", serde_json::json!({"segmentation": name, "run": last.id, "due": false}));
                            } else {
                                println!("segmentation {name:?} run {} is not due for a recluster", last.id);
                            }
                            return Ok(());
                        }
                        Some(why) => tracing::info!("reclustering {name:?}: {why}"),
                    }
                }
            }
            let opts = segment::RunOptions {
                method: a.method,
                k: a.k,
                features: a.features.clone(),
                rules: a.rules.clone(),
                as_of: a.as_of.as_deref().map(|s| parse_time("--as-of", s)).transpose()?,
                name: a.name.clone(),
                names: a.names.clone(),
                eps: a.eps,
                min_samples: a.min_samples,
                n_init: a.n_init,
                seed: a.seed,
                top_categories: a.top_categories.unwrap_or(config.segment.top_categories),
                dry_run: a.dry_run,
            };
            let out = segment::run(&store, &opts)?;
            if cli.json {
                let v = serde_json::json!({"segmentation": out.name, "run": out.run_id, "record": out.record});
                println!("{}", serde_json::to_string(&v)?);
            } else {
                segment::print_summary(&out.name, out.run_id, &out.record);
            }
        }
        SegmentCmd::Show { name, segmentation } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let rec = segment::record_of(&run)?;
            match name {
                None if cli.json => println!("{}", serde_json::to_string(&run)?),
                None => {
                    let mut names: Vec<String> = store.segmentation_runs()?.into_iter().map(|r| r.name).collect();
                    names.sort();
                    names.dedup();
                    println!("segmentations: {}", names.join(", "));
                    segment::print_summary(&run.name, Some(run.id), &rec);
                }
                Some(n) => {
                    let k = rec.names.iter().position(|x| x == n).ok_or_else(|| {
                        usage(format!(
                            "no segment {n:?} in segmentation {:?}; it has: {}",
                            run.name,
                            rec.names.join(", ")
                        ))
                    })?;
                    let summary = rec.summaries.get(k);
                    let def = run.segments.get(k);
                    if cli.json {
                        let v = serde_json::json!({"segmentation": run.name, "run": run.id, "segment": def,
                            "summary": summary, "explanation": rec.explanations.get(k)});
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        println!("{n} (segmentation {:?}, run {})", run.name, run.id);
                        if let Some(d) = def.and_then(|d| d.description.as_deref()) {
                            println!("  {d}");
                        }
                        if let Some(s) = summary {
                            println!(
                                "  users {} ({:.1}%), mean recency {:.1} days, orders {:.2}, monetary {:.2}, AOV {:.2}",
                                s.size,
                                s.share * 100.0,
                                s.recency_days,
                                s.frequency,
                                s.monetary,
                                s.aov
                            );
                            let mix = |v: &[(String, f64)]| {
                                v.iter().map(|(k, p)| format!("{k} {:.0}%", p * 100.0)).collect::<Vec<_>>().join(", ")
                            };
                            println!("  top categories: {}", mix(&s.top_categories));
                            println!(
                                "  main device: {}, mean age {}",
                                s.main_device.as_deref().unwrap_or("-"),
                                s.age.map_or("unknown".into(), |a| format!("{a:.1}"))
                            );
                            println!("  gender: {}; urbanicity: {}", mix(&s.gender), mix(&s.urbanicity));
                        }
                        for r in rec.explanations.get(k).into_iter().flatten() {
                            println!(
                                "  rule: {} (precision {:.0}%, coverage {:.0}%)",
                                r.rule,
                                r.precision * 100.0,
                                r.coverage * 100.0
                            );
                        }
                    }
                }
            }
        }
        SegmentCmd::Users { name, segmentation, limit } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            if !run.segments.iter().any(|s| &s.name == name) {
                let have: Vec<&str> = run.segments.iter().map(|s| s.name.as_str()).collect();
                return Err(usage(format!(
                    "no segment {name:?} in segmentation {:?}; it has: {}",
                    run.name,
                    have.join(", ")
                )));
            }
            let mut users = store.segment_members(&run.name, name)?;
            if *limit > 0 {
                users.truncate(*limit);
            }
            if cli.json {
                println!("{}", serde_json::to_string(&users)?);
            } else {
                for u in users {
                    println!("{u}");
                }
            }
        }
        SegmentCmd::Explain { segmentation } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let rec = segment::record_of(&run)?;
            if cli.json {
                let v = serde_json::json!({"segmentation": run.name, "run": run.id, "tree_accuracy": rec.tree_accuracy,
                    "segments": rec.names.iter().zip(&rec.explanations).map(|(n, e)| serde_json::json!({"name": n, "rules": e})).collect::<Vec<_>>()});
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!("segmentation {:?} run {} ({})", run.name, run.id, rec.method);
                segment::print_explanations(&rec);
            }
        }
        SegmentCmd::Plot { out, k_chart, segmentation } => {
            let written = segment::plot(&store, segmentation.as_deref(), out, k_chart.as_deref())?;
            if cli.json {
                println!("{}", serde_json::to_string(&written)?);
            } else {
                for w in written {
                    println!("wrote {}", w.display());
                }
            }
        }
        SegmentCmd::Assign { user, segmentation, as_of, apply } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let as_of = as_of.as_deref().map(|s| parse_time("--as-of", s)).transpose()?;
            let a = segment::assign(&store, &run, user, as_of, *apply)?;
            if cli.json {
                println!("{}", serde_json::to_string(&a)?);
            } else {
                let segs = if a.segments.is_empty() { "(no segment)".to_owned() } else { a.segments.join(" + ") };
                let dist = a.distance.map_or(String::new(), |d| format!(", distance {d:.3}"));
                let stored = if *apply { if a.changed { ", stored (changed)" } else { ", unchanged" } } else { "" };
                println!(
                    "{user}: {segs} (segmentation {:?} run {}{dist}{stored}; assigned in {:.1} µs)",
                    a.segmentation, a.run, a.assign_micros
                );
            }
        }
        SegmentCmd::History { user, segmentation, all } => {
            let run = segment::latest(&store, segmentation.as_deref())?;
            let changes = store.membership_history(&run.name, user.as_deref())?;
            if *all || user.is_some() {
                if cli.json {
                    println!("{}", serde_json::to_string(&changes)?);
                } else {
                    for c in changes {
                        let how = c.run.map_or("real time".to_owned(), |r| format!("run {r}"));
                        println!("{} {}: {} -> {} ({how})", c.at, c.user, segments_text(&c.from), segments_text(&c.to));
                    }
                }
            } else {
                // From → to counts of the latest run.
                let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
                for c in changes.iter().filter(|c| c.run == Some(run.id)) {
                    *counts.entry((segments_text(&c.from), segments_text(&c.to))).or_default() += 1;
                }
                if cli.json {
                    let v: Vec<serde_json::Value> =
                        counts.iter().map(|((f, t), n)| serde_json::json!({"from": f, "to": t, "users": n})).collect();
                    println!("{}", serde_json::to_string(&v)?);
                } else {
                    println!("moves made by run {} of {:?}:", run.id, run.name);
                    let mut rows: Vec<_> = counts.into_iter().collect();
                    rows.sort_by_key(|b| std::cmp::Reverse(b.1));
                    for ((f, t), n) in rows {
                        println!("{n:>8}  {f} -> {t}");
                    }
                }
            }
        }
    }
    Ok(())
}
