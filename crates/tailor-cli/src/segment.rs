//! `tailor segment`'s printing and charts over [`tailor_server::segmentation`] (which runs,
//! stores and places): summary tables, explanations, the map and k-scan charts, the
//! assignment benchmark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use tailor_core::Timestamp;
use tailor_segment::features::FeatureTable;
pub use tailor_server::segmentation::{
    Record, RunOptions, SegmentMethod, assign, latest, pca_points, population, record_of, run,
};
use tailor_store::Store;

/// Prints the summary table of a run.
pub fn print_summary(name: &str, run_id: Option<u64>, rec: &Record) {
    let when = Timestamp(rec.as_of);
    println!(
        "segmentation {name:?}{} — {} on {} users, features as of {when}",
        run_id.map_or(" (dry run, not stored)".into(), |id| format!(" run {id}")),
        rec.method,
        rec.users
    );
    if let Some(c) = &rec.cluster {
        let sil = c.silhouette.map_or("-".into(), |s| format!("{s:.3}"));
        println!("k = {}, silhouette {sil}{}", c.k, if c.k_scan.is_empty() { "" } else { " (best of the k scan)" });
        for cand in &c.k_scan {
            println!("  k = {:>2}: silhouette {:.4}, inertia {:.1}", cand.k, cand.silhouette, cand.inertia);
        }
    }
    println!(
        "{:<36} {:>7} {:>6} {:>8} {:>6} {:>9} {:>8} {:>8} {:>5}  top categories",
        "segment", "users", "share", "recency", "orders", "monetary", "AOV", "device", "age"
    );
    for s in &rec.summaries {
        let cats: Vec<String> = s.top_categories.iter().map(|(c, v)| format!("{c} {:.0}%", v * 100.0)).collect();
        println!(
            "{:<36} {:>7} {:>5.1}% {:>7.1}d {:>6.2} {:>9.2} {:>8.2} {:>8} {:>5}  {}",
            truncate(&s.name, 36),
            s.size,
            s.share * 100.0,
            s.recency_days,
            s.frequency,
            s.monetary,
            s.aov,
            s.main_device.as_deref().unwrap_or("-"),
            s.age.map_or("-".into(), |a| format!("{a:.1}")),
            cats.join(", ")
        );
    }
    let t = &rec.timings;
    println!(
        "{:.2} s: features {:.2} s, segmentation {:.2} s, explanation {:.2} s, store {:.2} s",
        t.total, t.features, t.segment, t.explain, t.store
    );
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).collect::<String>() + "…" }
}

/// Prints the explanation rules of a run.
pub fn print_explanations(rec: &Record) {
    if let Some(a) = rec.tree_accuracy {
        println!("decision tree (depth <= 3) puts {:.1}% of users in their segment", a * 100.0);
    }
    for (k, name) in rec.names.iter().enumerate() {
        println!("{name}:");
        if let Some(r) = rec.rules.iter().find(|r| &r.name == name) {
            println!("  defined as: {}", r.when);
        }
        match rec.explanations.get(k) {
            Some(rules) if !rules.is_empty() => {
                for r in rules {
                    println!(
                        "  if {}  (precision {:.0}%, coverage {:.0}%, {} users)",
                        r.rule,
                        r.precision * 100.0,
                        r.coverage * 100.0,
                        r.support
                    );
                }
            }
            _ => println!("  (no leaf of the tree has a majority of this segment)"),
        }
    }
}

/// `tailor segment plot`: the PCA map coloured by segment, and the silhouette-by-k chart.
pub fn plot(store: &dyn Store, name: Option<&str>, out: &Path, k_chart: Option<&Path>) -> Result<Vec<PathBuf>> {
    let run = latest(store, name)?;
    let rec = record_of(&run)?;
    let pop = population(store, Some(Timestamp(rec.as_of + 1)), rec.top_categories.len())?;
    let t = &pop.table;
    // Coordinates: the clustering's encoded space, or z-scored raw features for RFM/rules.
    let (points, ratio) = pca_points(rec.encoder.as_ref(), t)?;
    let mut groups: Vec<Option<usize>> = vec![None; t.users.len()];
    let index: HashMap<&str, usize> = t.users.iter().enumerate().map(|(i, u)| (u.as_str(), i)).collect();
    for (k, seg) in rec.names.iter().enumerate() {
        for u in store.segment_members(&run.name, seg)? {
            if let Some(&i) = index.get(u.as_str()) {
                groups[i].get_or_insert(k);
            }
        }
    }
    let mut centres = vec![(0.0, 0.0); rec.names.len()];
    let mut counts = vec![0usize; rec.names.len()];
    for (p, g) in points.iter().zip(&groups) {
        if let Some(g) = g {
            centres[*g].0 += p.0;
            centres[*g].1 += p.1;
            counts[*g] += 1;
        }
    }
    for (c, n) in centres.iter_mut().zip(&counts) {
        c.0 /= (*n).max(1) as f64;
        c.1 /= (*n).max(1) as f64;
    }
    let pct = |i: usize| ratio.get(i).map_or(0.0, |r| r * 100.0);
    let title =
        format!("Segments \"{}\" ({}, run {}) — PCA map of {} users", run.name, rec.method, run.id, t.users.len());
    crate::plot::scatter(
        out,
        &crate::plot::Scatter {
            title: &title,
            x_label: format!("principal component 1 ({:.1}% of variance)", pct(0)),
            y_label: format!("principal component 2 ({:.1}% of variance)", pct(1)),
            points: &points,
            groups: &groups,
            names: &rec.names,
            centres: &centres,
        },
    )?;
    let mut written = vec![out.to_owned()];
    if let Some(c) = &rec.cluster
        && !c.k_scan.is_empty()
    {
        let path = match k_chart {
            Some(p) => p.to_owned(),
            None => {
                let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("map");
                let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("svg");
                out.with_file_name(format!("{stem}-silhouette-by-k.{ext}"))
            }
        };
        let pts: Vec<(f64, f64)> = c.k_scan.iter().map(|s| (s.k as f64, s.silhouette)).collect();
        let best =
            c.k_scan.iter().find(|s| s.k == c.k).map(|s| ((s.k as f64, s.silhouette), format!("  chosen k = {}", s.k)));
        crate::plot::line(
            &path,
            &crate::plot::Line {
                title: "Mean silhouette by number of segments k",
                x_label: "k (number of segments)",
                y_label: "mean silhouette (-1 to 1, higher is better)",
                points: &pts,
                highlight: best,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Times the online assignment of `n` users (cycling over the table) with the run's encoder
/// and centres: encode the feature row, then the nearest centre. Median over 5 rounds, in
/// nanoseconds per user, and a checksum of the labels.
pub fn bench_assign(t: &FeatureTable, rec: &Record, n: usize) -> Result<(f64, usize)> {
    let enc = rec.encoder.as_ref().context("the run has no encoder (not a clustering)")?;
    let b = enc.bind(t)?;
    let d = enc.width();
    let centres: Vec<f64> = rec.centroids.iter().flatten().copied().collect();
    let online = tailor_segment::online::OnlineKMeans::from_centroids(d, centres, 0.0)?;
    let users = t.users.len().max(1);
    let cats: Vec<Vec<Option<&str>>> =
        (0..users).map(|i| t.categorical.iter().map(|c| c.get(i).and_then(|v| v.as_deref())).collect()).collect();
    let mut row = Vec::with_capacity(d);
    let mut checksum = 0usize;
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for i in 0..n {
            let u = i % users;
            row.clear();
            enc.encode_row(&b, t.row(u), &cats[u], &mut row);
            checksum = checksum.wrapping_add(online.assign(std::hint::black_box(&row)));
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e9 / n.max(1) as f64);
    }
    rounds.sort_by(f64::total_cmp);
    Ok((rounds[rounds.len() / 2], checksum))
}
