//! `tailor experiment ...` and `tailor simulate`: experiments over the store (the server's
//! own functions, so the CLI and the API agree), the sample-size planner, and simulations
//! with known truths.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use tailor_experiment::report::{Options, Report};
use tailor_experiment::simulate::{self, AbScenario, BanditScenario};
use tailor_experiment::{ExperimentSpec, Policy, Status, stats};
use tailor_server::experiments as server;

use crate::plot;

/// `tailor experiment ...`
#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Create an experiment from a JSON or TOML file holding its definition (name, slots,
    /// traffic, variants, segments, start_at/stop_at, primary_metric, guardrails).
    Create {
        /// The definition file (TOML or JSON; see docs/experiments.md).
        file: PathBuf,
        /// Start it at once.
        #[arg(long)]
        start: bool,
    },
    /// Every experiment with its status.
    List,
    /// Start (or resume) an experiment.
    Start {
        /// The experiment's name (see `tailor experiment list`).
        name: String,
    },
    /// Pause an experiment (assignments are kept for the resume).
    Pause {
        /// The experiment's name (see `tailor experiment list`).
        name: String,
    },
    /// Stop an experiment for good.
    Stop {
        /// The experiment's name (see `tailor experiment list`).
        name: String,
    },
    /// The report: metrics per variant and segment, tests, warnings, a verdict; `--chart`
    /// draws the cumulative lift with its interval per day (.svg or .png).
    Report {
        /// The experiment's name (see `tailor experiment list`).
        name: String,
        /// Write the cumulative-lift chart here (`.svg` or `.png`, by the extension).
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Bootstrap resamples for the money metrics (0: none).
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
    },
    /// Users needed per variant to detect a relative lift `--mde` over `--baseline`.
    Plan {
        /// Baseline rate (e.g. 0.04 for 4% conversion).
        #[arg(long)]
        baseline: f64,
        /// Minimum detectable effect, relative (0.1 = +10%).
        #[arg(long)]
        mde: f64,
        /// Significance level (two-sided).
        #[arg(long, default_value_t = 0.05)]
        alpha: f64,
        /// Chance of detecting the effect when it is real (0.8 is usual).
        #[arg(long, default_value_t = 0.8)]
        power: f64,
        /// Variants including the control (the level is Holm/Bonferroni-split over the
        /// treatments).
        #[arg(long, default_value_t = 2)]
        variants: usize,
    },
}

/// `tailor simulate`
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// `ab`: many A/B tests over fresh synthetic populations; `bandit`: layout bandits.
    #[arg(long, value_parser = ["ab", "bandit"])]
    scenario: String,
    /// A/B: simulated experiments.
    #[arg(long, default_value_t = 2000)]
    experiments: usize,
    /// A/B: shoppers per experiment.
    #[arg(long, default_value_t = 4000)]
    users: usize,
    /// A/B: true relative lift of the click rate under the treatment (0: no effect).
    #[arg(long, default_value_t = 0.0)]
    effect: f64,
    /// Bandit: decisions per run.
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// Bandit: runs averaged.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A/B: the report chart (cumulative lift per day) of the first simulated experiment;
    /// bandit: the cumulative regret chart (.svg or .png).
    #[arg(long)]
    chart: Option<PathBuf>,
}

fn bar(json: bool, len: u64, what: &str) -> Option<ProgressBar> {
    if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    Some(b)
}

fn read_spec(path: &Path) -> Result<ExperimentSpec> {
    let text = fs_err::read_to_string(path)?;
    let spec: ExperimentSpec = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("{}: not an experiment definition", path.display()))?
    } else {
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?
    };
    spec.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(spec)
}

/// Runs an experiment command over the store.
/// Prints on stderr where `e` and another running experiment compete for a slot.
fn warn_shadowing(store: &dyn tailor_store::Store, e: &tailor_experiment::Experiment) -> Result<()> {
    let all = server::load(store)?;
    for w in server::shadowing(e, &all, tailor_core::Timestamp::now()) {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// `tailor experiment ...`: `plan` needs no store, the others open it.
pub fn run_cmd(cli: &crate::Cli, config: &crate::config::Config, cmd: &ExperimentCmd) -> Result<()> {
    if matches!(cmd, ExperimentCmd::Plan { .. }) {
        run(cli.json, None, cmd)
    } else {
        let store = crate::open_store(config)?;
        run(cli.json, Some(&store), cmd)
    }
}

/// Runs an experiment command over `store`.
pub fn run(json: bool, store: Option<&dyn tailor_store::Store>, cmd: &ExperimentCmd) -> Result<()> {
    if let ExperimentCmd::Plan { baseline, mde, alpha, power, variants } = cmd {
        return plan(json, *baseline, *mde, *alpha, *power, *variants);
    }
    let store = store.context("this command needs the store")?;
    let by = Some("cli".to_string());
    let show = |e: &tailor_experiment::Experiment| -> Result<()> {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!("{} is {}", e.spec.name, e.status.name());
        }
        Ok(())
    };
    match cmd {
        ExperimentCmd::Create { file, start } => {
            let spec = read_spec(file)?;
            let mut e = server::create(store, spec, by.clone())?;
            if *start {
                e = server::transition(store, &e.spec.name, Status::Running, by)?;
            }
            warn_shadowing(store, &e)?;
            show(&e)
        }
        ExperimentCmd::Start { name } => {
            let e = server::transition(store, name, Status::Running, by)?;
            warn_shadowing(store, &e)?;
            show(&e)
        }
        ExperimentCmd::Pause { name } => show(&server::transition(store, name, Status::Paused, by)?),
        ExperimentCmd::Stop { name } => show(&server::transition(store, name, Status::Stopped, by)?),
        ExperimentCmd::List => {
            let list = server::load(store)?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            println!("{:<24} {:<8} {:>7}  {:<24} {:<12} variants", "name", "status", "traffic", "primary", "slots");
            for e in &list {
                let variants: Vec<String> =
                    e.spec.variants.iter().map(|v| format!("{}:{}", v.name, v.weight)).collect();
                println!(
                    "{:<24} {:<8} {:>6.0}%  {:<24} {:<12} {}",
                    e.spec.name,
                    e.status.name(),
                    100.0 * e.spec.traffic,
                    e.spec.primary_metric.name(),
                    if e.spec.slots.is_empty() { "all".to_string() } else { e.spec.slots.join(",") },
                    variants.join(" ")
                );
            }
            Ok(())
        }
        ExperimentCmd::Report { name, chart, bootstrap } => {
            let exp = server::load(store)?
                .into_iter()
                .find(|e| e.spec.name == *name)
                .with_context(|| format!("experiment {name:?} not found (see `tailor experiment list`)"))?;
            let started = Instant::now();
            let report = server::report(store, &exp, Options { bootstrap: *bootstrap, ..Options::default() })?;
            if let Some(path) = chart {
                lift_chart(path, &report)?;
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
                eprintln!("computed in {:.2} s", started.elapsed().as_secs_f64());
            }
            Ok(())
        }
        ExperimentCmd::Plan { .. } => Ok(()),
    }
}

fn plan(json: bool, baseline: f64, mde: f64, alpha: f64, power: f64, variants: usize) -> Result<()> {
    if variants < 2 {
        return Err(anyhow::anyhow!("--variants: at least 2 (the control and one treatment)"));
    }
    // Several treatments share the level (Bonferroni, which Holm's first step equals).
    let level = alpha / (variants - 1) as f64;
    let p = stats::plan(baseline, mde, level, power)?;
    if json {
        println!(
            "{}",
            serde_json::to_string(
                &serde_json::json!({"plan": p, "variants": variants, "total": p.per_variant * variants as u64})
            )?
        );
    } else {
        println!(
            "baseline {:.2}% → {:.2}% ({:+.1}% relative), α = {} two-sided{}, power {:.0}%",
            100.0 * p.baseline,
            100.0 * p.target,
            100.0 * p.mde,
            alpha,
            if variants > 2 { format!(" ({level:.4} per comparison)") } else { String::new() },
            100.0 * power
        );
        println!(
            "{} users per variant, {} in all (power reached: {:.1}%)",
            p.per_variant,
            p.per_variant * variants as u64,
            100.0 * p.achieved_power
        );
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn print_report(r: &Report) {
    println!("experiment {} ({}), primary metric {}, α = {}", r.experiment, r.status, r.primary_metric.name(), r.alpha);
    println!(
        "{:<14} {:>8} {:>9} {:>11} {:>7} {:>8} {:>10} {:>8} {:>9} {:>10}",
        "variant", "users", "exposures", "impressions", "clicks", "CTR", "conversion", "orders", "AOV", "rev/user"
    );
    for v in &r.variants {
        println!(
            "{:<14} {:>8} {:>9} {:>11} {:>7} {:>8} {:>10} {:>8} {:>9.2} {:>10.3}",
            v.name,
            v.users,
            v.exposures,
            v.impressions,
            v.clicks,
            pct(v.ctr),
            pct(v.conversion),
            v.orders,
            v.aov,
            v.revenue_per_user
        );
    }
    for c in r.primary.iter().chain(&r.guardrails) {
        let lift_ci =
            c.lift_ci.map_or_else(String::new, |(lo, hi)| format!(" [{:+.1}%, {:+.1}%]", 100.0 * lo, 100.0 * hi));
        println!(
            "  {} {}: {} → {}, lift {}{}, p {:.4} (Holm {:.4}, always-valid {:.4}){}",
            c.variant,
            c.metric.name(),
            c.control,
            c.treatment,
            c.lift.map_or("n/a".to_string(), |l| format!("{:+.1}%", 100.0 * l)),
            lift_ci,
            c.p_value,
            c.p_holm,
            c.p_always_valid,
            c.bootstrap_ci.map_or_else(String::new, |(lo, hi)| format!(", bootstrap diff [{lo:.3}, {hi:.3}]"))
        );
    }
    if let Some(c) = r.chi_square {
        println!("  chi-square {:.3} (df {}), p {:.4}", c.statistic, c.dof, c.p_value);
    }
    for line in &r.verdict {
        println!("{line}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
}

fn lift_chart(path: &Path, r: &Report) -> Result<()> {
    let mut series: Vec<plot::BandSeries> = Vec::new();
    let first = r.daily.first().map_or(0, |d| d.day.0);
    for d in &r.daily {
        let (Some(l), Some((lo, hi))) = (d.lift, d.lift_ci) else { continue };
        let day = ((d.day.0 - first) / 86_400_000 + 1) as f64;
        match series.iter_mut().find(|(n, _)| *n == d.variant) {
            Some((_, pts)) => pts.push((day, 100.0 * l, 100.0 * lo, 100.0 * hi)),
            None => series.push((d.variant.clone(), vec![(day, 100.0 * l, 100.0 * lo, 100.0 * hi)])),
        }
    }
    if series.is_empty() {
        return Err(anyhow::anyhow!("no day has enough data for a lift yet; no chart drawn"));
    }
    plot::bands(
        path,
        &plot::Bands {
            title: &format!("{}: cumulative lift of {} vs control", r.experiment, r.primary_metric.name()),
            x_label: "day",
            y_label: "lift (%) with 95% CI",
            series: &series,
        },
    )
}

/// `tailor simulate`
pub fn simulate_cmd(json: bool, a: &SimulateArgs) -> Result<()> {
    let started = Instant::now();
    if a.scenario == "ab" {
        let s = AbScenario::standard(a.experiments, a.users, a.effect, a.seed);
        let progress = bar(json, a.experiments as u64, "experiments");
        let runs: Vec<simulate::AbRun> = (0..a.experiments)
            .into_par_iter()
            .map(|i| {
                let r = simulate::ab_run(&s, i);
                if let Some(b) = &progress {
                    b.inc(1);
                }
                r
            })
            .collect::<Result<_, _>>()?;
        if let Some(b) = progress {
            b.finish_and_clear();
        }
        let o = simulate::ab_outcome(&s, &runs);
        if let Some(path) = &a.chart {
            lift_chart(path, &simulate::ab_report(&s, 0)?)?;
        }
        if json {
            println!("{}", serde_json::to_string(&o)?);
        } else {
            let what = if a.effect == 0.0 { "false-positive rate" } else { "power" };
            println!(
                "{} simulated A/B tests, {} shoppers each over {} days, true lift {:+.0}%, metric {}, α = {}:",
                a.experiments,
                a.users,
                s.days,
                100.0 * a.effect,
                s.metric.name(),
                s.alpha
            );
            println!("  fixed-horizon z-test at the end:     {what} {} (± {})", pct(o.rejected_fixed), pct(o.margin));
            println!("  naive z-test looked at every day:     {}", pct(o.rejected_naive_peeking));
            println!("  always-valid (mSPRT) every day:       {}", pct(o.rejected_msprt_peeking));
            println!("  sample-ratio-mismatch warnings:       {}", pct(o.srm_warnings));
            eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
        }
        return Ok(());
    }
    let plain = BanditScenario::standard(a.decisions, a.runs, a.seed);
    let segmented = BanditScenario::segmented(a.decisions, a.runs, a.seed);
    let policies = [Policy::Uniform, Policy::EpsilonGreedy { epsilon: 0.1 }, Policy::Ucb1, Policy::Thompson];
    let mut outcomes: Vec<(String, simulate::BanditOutcome)> = policies
        .par_iter()
        .map(|&p| simulate::bandit_run(&plain, p, false).map(|o| ("same best arm everywhere".to_string(), o)))
        .collect::<Result<_, _>>()?;
    for per_segment in [false, true] {
        let o = simulate::bandit_run(&segmented, Policy::Thompson, per_segment)?;
        outcomes.push(("best arm differs by segment".to_string(), o));
    }
    if let Some(path) = &a.chart {
        let series: Vec<(String, Vec<(f64, f64)>)> = outcomes
            .iter()
            .take(policies.len())
            .map(|(_, o)| {
                let curve = std::iter::once((0.0, 0.0)).chain(o.curve.iter().map(|&(d, r)| (d as f64, r)));
                (o.policy.clone(), curve.collect())
            })
            .collect();
        plot::lines(
            path,
            &plot::Lines {
                title: "Cumulative regret: 3 layouts, best 20% better",
                x_label: "decisions",
                y_label: "expected clicks lost",
                series: &series,
            },
        )?;
    }
    if json {
        let rows: Vec<serde_json::Value> =
            outcomes.iter().map(|(s, o)| serde_json::json!({"scenario": s, "outcome": o})).collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!("{} decisions per run, mean of {} runs:", a.decisions, a.runs);
    println!("{:<28} {:<20} {:>12} {:>9} {:>10} {:>10}", "scenario", "policy", "regret", "± se", "reward", "best arm");
    let uniform = outcomes.first().map_or(1.0, |(_, o)| o.regret);
    for (s, o) in &outcomes {
        println!(
            "{:<28} {:<20} {:>12.1} {:>9.1} {:>10} {:>10}{}",
            s,
            format!("{}{}", o.policy, if o.per_segment { " per segment" } else { "" }),
            o.regret,
            o.regret_se,
            pct(o.reward_rate),
            pct(o.best_arm_share),
            if s.starts_with("same") && o.policy != "uniform" {
                format!("  ({:.1}x less regret than uniform)", uniform / o.regret.max(1e-9))
            } else {
                String::new()
            }
        );
    }
    eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `tailor bench experiment`
pub fn bench(json: bool, n: usize, exposures: usize) -> Result<()> {
    use tailor_core::rng::Rng;
    use tailor_core::{Event, EventKind, Timestamp};
    use tailor_experiment::Assigner;
    use tailor_experiment::report::Exposure;

    // Assignment: 1M distinct ids, cycled to n assignments, one thread.
    let ids: Vec<String> = (0..1_000_000).map(|i| format!("U{i:07}")).collect();
    let split = Assigner::from_parts("bench-layout", 1.0, &[0.5, 0.3, 0.2]);
    let mut counts = [0u64; 3];
    for id in &ids {
        if let Some(v) = split.variant(id) {
            counts[v] += 1;
        }
    }
    let worst_share_error =
        counts.iter().zip([0.5, 0.3, 0.2]).map(|(c, w)| (*c as f64 / ids.len() as f64 - w).abs()).fold(0.0, f64::max);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        let mut sum = 0usize;
        for i in 0..n {
            sum += split.variant(std::hint::black_box(&ids[i % ids.len()])).unwrap_or(0);
        }
        std::hint::black_box(sum);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let rate = n as f64 / best;

    // A report over `exposures` served lists: 4 per user, an impression each, 5% clicked,
    // a fifth of clicks bought; the treatment clicks 10% more.
    let mut spec = ExperimentSpec::new("bench-report", &["control", "treatment"]);
    spec.guardrails = vec![tailor_experiment::Metric::RevenuePerUser, tailor_experiment::Metric::Aov];
    let exp = tailor_experiment::Experiment::create(spec, Timestamp(0), None)?;
    let assign = Assigner::from_parts("bench-report", 1.0, &[1.0, 1.0]);
    let mut rng = Rng::new(42);
    let t0 = 1_790_000_000_000i64;
    let mut xs = Vec::with_capacity(exposures);
    let mut events = Vec::with_capacity(exposures + exposures / 10);
    for i in 0..exposures {
        let unit = format!("U{:07}", i / 4);
        let variant = assign.variant(&unit).unwrap_or(0);
        let ts = Timestamp(t0 + (i as i64) * 1_200);
        let rec = format!("r{i:x}");
        let item = format!("SKU-{:05}", rng.below(2000));
        let mut e = Event::new(Some(&unit), Some(&item), EventKind::Impression, Timestamp(ts.0 + 10));
        e.rec_id = Some(rec.clone());
        events.push(e);
        if rng.chance(if variant == 1 { 0.055 } else { 0.05 }) {
            let mut c = Event::new(Some(&unit), Some(&item), EventKind::Click, Timestamp(ts.0 + 20));
            c.rec_id = Some(rec.clone());
            events.push(c);
            if rng.chance(0.2) {
                let mut b = Event::new(Some(&unit), Some(&item), EventKind::Purchase, Timestamp(ts.0 + 60_000));
                b.unit_price = Some(20.0 + 10.0 * rng.f64());
                events.push(b);
            }
        }
        xs.push(Exposure { rec_id: rec, unit, variant, ts, items: vec![item], segment: None });
    }
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..3 {
        let t = Instant::now();
        report = Some(tailor_experiment::analyse(&exp, &xs, &events, Options::default())?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let verdict = report.and_then(|r| r.verdict.first().cloned()).unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "assignments": n, "assign_seconds": best, "assignments_per_second": rate,
                "shares": counts, "worst_share_error": worst_share_error,
                "report_exposures": exposures, "report_events": events.len(), "report_seconds_median": median,
                "report_seconds": times, "verdict": verdict,
            })
        );
    } else {
        println!(
            "assignment: {:.1} M/s on one thread ({n} in {:.3} s); 50/30/20 split over 1M users: {:?}, worst share error {:.3}%",
            rate / 1e6,
            best,
            counts,
            100.0 * worst_share_error
        );
        println!(
            "report over {exposures} exposures and {} events: {:.3} s median of 3 ({:?})",
            events.len(),
            median,
            times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
        );
        println!("{verdict}");
    }
    Ok(())
}
