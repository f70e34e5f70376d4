//! `tailor report cohorts|clv`: retention and revenue by first-purchase month, and customer
//! lifetime value (BG/NBD + Gamma-Gamma) per customer and per segment.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tailor_segment::cohort::Cohorts;
use tailor_server::lifetime::{self, ClvOptions, ClvReport};

use crate::commands::segment::parse_time;
use crate::config::Config;
use crate::{Cli, open_store, plot};

#[derive(Subcommand, Debug)]
pub(crate) enum ReportCmd {
    /// Retention and revenue by first-purchase month (cohort × months since), with a
    /// retention chart (--chart).
    Cohorts(CohortArgs),
    /// Customer lifetime value: BG/NBD purchases × Gamma-Gamma value, fitted on the stored
    /// purchases; per customer (--out), the most valuable (--top) and per stored segment.
    Clv(ClvArgs),
    /// Fairness of the served lists (impressions by rec_id, clicks and purchases as
    /// outcomes): NDCG per user group and the gap, exposure by brand and popularity band,
    /// ARP, APLT.
    Fairness(FairnessArgs),
    /// Drift of the users from a segmentation's latest run: PSI of every feature and of the
    /// segment shares.
    Drift {
        /// The segmentation (default: the first by name).
        #[arg(long)]
        segmentation: Option<String>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct FairnessArgs {
    /// Group users by: segment, gender, age, region or country.
    #[arg(long, default_value = "segment")]
    by: String,
    /// With --by segment: which stored segmentation (default: the first by name).
    #[arg(long)]
    segmentation: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct CohortArgs {
    /// Retention curves, one per cohort (.svg or .png).
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Print revenue per customer (cumulative) instead of retention.
    #[arg(long)]
    revenue: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ClvArgs {
    /// Last day of the observation, e.g. 1997-09-30 (default: the day of the latest purchase).
    #[arg(long, value_name = "DATE")]
    through: Option<String>,
    /// Months (of 30 days) of future value to add up.
    #[arg(long, default_value_t = 3)]
    months: u32,
    /// Discount rate per month (0.01 = 1%).
    #[arg(long, default_value_t = 0.0)]
    discount: f64,
    /// How many of the most valuable customers to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Write every customer's figures to this TSV file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Bar chart of the mean lifetime value per segment (.svg or .png).
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

pub(crate) fn run(cli: &Cli, config: &Config, cmd: &ReportCmd) -> Result<()> {
    let store = open_store(config)?;
    match cmd {
        ReportCmd::Cohorts(a) => {
            let c = lifetime::cohorts(&store)?;
            if let Some(p) = &a.chart {
                cohort_chart(p, &c)?;
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print_cohorts(&c, a.revenue);
            }
        }
        ReportCmd::Drift { segmentation } => {
            let r = tailor_server::drift::report(&store, segmentation.as_deref())?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: run at {} over {} users; {} users now; segment shares PSI {:.4}; max PSI {:.4} ({:.3} s)",
                    r.segmentation, r.run_at, r.users_then, r.users_now, r.segment_psi, r.max_psi, r.seconds
                );
                println!("{:<28}{:>10}", "feature", "PSI");
                for f in &r.features {
                    let flag = if f.psi > 0.25 {
                        "  major shift"
                    } else if f.psi > 0.1 {
                        "  moderate"
                    } else {
                        ""
                    };
                    println!("{:<28}{:>10.4}{flag}", f.feature, f.psi);
                }
            }
        }
        ReportCmd::Fairness(a) => {
            let by = tailor_server::fairness::GroupBy::parse(&a.by, a.segmentation.as_deref())?;
            let r = tailor_server::fairness::served(&store, &by)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} served lists ({} impressions, {} with a click or purchase), grouped by {}; {:.3} s",
                    r.lists, r.impressions, r.lists_with_outcome, r.grouped_by, r.seconds
                );
                crate::eval::print_fairness_of("the served lists", &r.report);
            }
        }
        ReportCmd::Clv(a) => {
            let o = ClvOptions {
                through: a.through.as_deref().map(|s| parse_time("--through", s)).transpose()?,
                months: a.months,
                monthly_discount: a.discount,
                top: a.top,
            };
            let r = lifetime::clv_report(&store, &o)?;
            if let Some(why) = &r.reason {
                anyhow::bail!("{why}");
            }
            if let Some(p) = &a.out {
                write_customers(p, &r)?;
            }
            if let Some(p) = &a.chart {
                let bars: Vec<(String, f64)> =
                    r.segments.iter().map(|s| (format!("{}: {}", s.segmentation, s.segment), s.mean_clv)).collect();
                let title = format!("Mean {}-month lifetime value per segment", r.months);
                plot::bars(p, &title, "expected value (currency)", &bars)?;
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_clv(&r);
            }
        }
    }
    Ok(())
}

fn print_cohorts(c: &Cohorts, revenue: bool) {
    let width = c.rows.first().map_or(0, |r| r.active.len());
    println!(
        "{} customers; {} by first-purchase month, months since →",
        c.customers,
        if revenue { "cumulative revenue per customer" } else { "share still buying" }
    );
    print!("{:<8}{:>8}", "cohort", "size");
    for m in 0..width {
        print!("{m:>8}");
    }
    println!();
    for r in &c.rows {
        print!("{:<8}{:>8}", r.month, r.size);
        let cells = if revenue { &r.cumulative_revenue_per_customer } else { &r.retention };
        for v in cells {
            if revenue {
                print!("{v:>8.1}");
            } else {
                print!("{:>7.1}%", v * 100.0);
            }
        }
        println!();
    }
}

fn cohort_chart(path: &std::path::Path, c: &Cohorts) -> Result<()> {
    let series: Vec<(String, Vec<(f64, f64)>)> = c
        .rows
        .iter()
        .map(|r| {
            // Month 0 is 100% by definition; the curve starts at month 1.
            let pts = r.retention.iter().enumerate().skip(1).map(|(m, v)| (m as f64, v * 100.0)).collect();
            (format!("{} ({})", r.month, r.size), pts)
        })
        .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    plot::lines(
        path,
        &plot::Lines {
            title: "Retention by first-purchase month",
            x_label: "months since the first purchase",
            y_label: "customers buying that month (%)",
            series: &series,
        },
    )
}

fn print_clv(r: &ClvReport) {
    let (Some(b), Some(g)) = (&r.bg_nbd, &r.gamma_gamma) else { return };
    println!(
        "{} customers ({} repeat) through {}; fitted in {:.3} s",
        r.customers, r.repeat_customers, r.through, r.fit_seconds
    );
    println!("BG/NBD (days)  r {:.4}  alpha {:.4}  a {:.4}  b {:.4}", b.r, b.alpha, b.a, b.b);
    println!("Gamma-Gamma    p {:.4}  q {:.4}  v {:.4}", g.p, g.q, g.v);
    println!(
        "next {} months: {:.1} purchase days expected, value {:.2} (discount {}/month)",
        r.months, r.total_expected_purchases, r.total_clv, r.monthly_discount
    );
    if !r.top.is_empty() {
        println!(
            "{:<20}{:>6}{:>9}{:>9}{:>10}{:>9}{:>9}{:>11}",
            "top customers", "freq", "recency", "age", "monetary", "p_alive", "E[buys]", "clv"
        );
        for c in &r.top {
            println!(
                "{:<20}{:>6}{:>9.0}{:>9.0}{:>10.2}{:>9.3}{:>9.2}{:>11.2}",
                c.user, c.frequency, c.recency_days, c.age_days, c.monetary, c.p_alive, c.expected_purchases, c.clv
            );
        }
    }
    if !r.segments.is_empty() {
        println!("{:<36}{:>10}{:>12}{:>14}{:>9}", "segment", "customers", "mean clv", "total clv", "p_alive");
        for s in &r.segments {
            let name = format!("{}: {}", s.segmentation, s.segment);
            println!("{name:<36}{:>10}{:>12.2}{:>14.2}{:>9.3}", s.customers, s.mean_clv, s.total_clv, s.mean_p_alive);
        }
    }
}

fn write_customers(path: &std::path::Path, r: &ClvReport) -> Result<()> {
    let file = fs_err::File::create(path)?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "user\tfrequency\trecency_days\tage_days\tmonetary\tp_alive\texpected_purchases\texpected_value\tclv")?;
    for c in &r.all {
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            c.user,
            c.frequency,
            c.recency_days,
            c.age_days,
            c.monetary,
            c.p_alive,
            c.expected_purchases,
            c.expected_value,
            c.clv
        )?;
    }
    w.flush().with_context(|| format!("writing {}", path.display()))
}
