//! `tailor cluster`: k-means, mini-batch k-means, DBSCAN or Ward on any numeric matrix.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;

use crate::{Cli, cluster, usage};

#[derive(Args, Debug)]
pub(crate) struct ClusterArgs {
    /// Input matrix: .csv/.tsv with a header row of column names, or .npy (float64).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Which algorithm clusters the rows.
    #[arg(long, value_enum, default_value_t = ClusterMethod::Kmeans)]
    pub(crate) method: ClusterMethod,
    /// DBSCAN radius (default: suggested from the knee of the k-distance curve).
    #[arg(long)]
    pub(crate) eps: Option<f64>,
    /// DBSCAN: points within eps (the point included) that make a core point.
    #[arg(long, default_value_t = 5)]
    pub(crate) min_samples: usize,
    /// Number of clusters (k-means, ward); `auto` (k-means) scans 2..=10 and keeps the best
    /// silhouette.
    #[arg(long, default_value = "8", value_parser = cluster::parse_k)]
    pub(crate) k: cluster::K,
    /// Restarts (best inertia wins).
    #[arg(long, default_value_t = 1)]
    pub(crate) n_init: usize,
    /// Most Lloyd iterations per restart.
    #[arg(long, default_value_t = 300)]
    pub(crate) max_iter: usize,
    /// Convergence tolerance, relative to the mean column variance (as scikit-learn).
    #[arg(long, default_value_t = 1e-4)]
    pub(crate) tol: f64,
    /// Column scaling before clustering.
    #[arg(long, value_enum, default_value_t = cluster::Scale::None)]
    pub(crate) scale: cluster::Scale,
    /// Seed of k-means++ and the silhouette sample.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// The CSV/TSV has no header row.
    #[arg(long)]
    pub(crate) no_header: bool,
    /// Skip the silhouette.
    #[arg(long)]
    pub(crate) no_silhouette: bool,
    /// Write `row,label` here.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// `tailor cluster --method`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClusterMethod {
    /// k-means (Lloyd, k-means++ seeding).
    Kmeans,
    /// Mini-batch k-means.
    Minibatch,
    /// DBSCAN.
    Dbscan,
    /// Ward's agglomerative clustering.
    Ward,
}

pub(crate) fn run(cli: &Cli, a: &ClusterArgs) -> Result<()> {
    let started = Instant::now();
    let method = if a.method == ClusterMethod::Dbscan {
        let p = tailor_segment::dbscan::DbscanParams { eps: a.eps.unwrap_or(1.0), min_samples: a.min_samples };
        p.validate().map_err(|e| usage(e.to_string()))?;
        cluster::Method::Dbscan { eps: a.eps, min_samples: a.min_samples }
    } else {
        let k = a.k.fixed();
        if a.method == ClusterMethod::Minibatch {
            match k {
                Some(k) if k > 0 => cluster::Method::MiniBatch(tailor_segment::online::MiniBatchParams {
                    k,
                    seed: a.seed,
                    ..Default::default()
                }),
                _ => return Err(usage("--k must be a number of at least 1 for minibatch")),
            }
        } else if a.method == ClusterMethod::Ward {
            match k {
                Some(k) if k > 0 => cluster::Method::Ward { k },
                _ => return Err(usage("--k must be a number of at least 1 for ward")),
            }
        } else {
            let params = tailor_segment::kmeans::KMeansParams {
                k: k.unwrap_or(2),
                n_init: a.n_init,
                max_iter: a.max_iter,
                tol: a.tol,
                seed: a.seed,
            };
            params.validate().map_err(|e| usage(e.to_string()))?;
            cluster::Method::KMeans { params, auto: k.is_none() }
        }
    };
    let mut m = cluster::read_matrix(&a.input, a.no_header)?;
    let opts = cluster::ClusterOptions {
        standardize: a.scale == cluster::Scale::Zscore,
        method,
        seed: a.seed,
        no_silhouette: a.no_silhouette,
    };
    let (report, labels) = cluster::run(&mut m, &opts, started)?;
    if let Some(out) = &a.out {
        let mut w = csv::Writer::from_path(out).with_context(|| format!("writing {}", out.display()))?;
        w.write_record(["row", "label"])?;
        for (i, l) in labels.iter().enumerate() {
            // Noise is -1, as scikit-learn writes it.
            w.write_record([i.to_string(), l.map_or("-1".to_owned(), |l| l.to_string())])?;
        }
        w.flush()?;
    }
    if cli.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} on {} rows x {} columns: {} clusters, {} noise, inertia {}, silhouette {}, {} iterations, {:.3} s (fit {:.3} s)",
            report.method,
            report.n,
            report.d,
            report.k,
            report.noise,
            report.inertia.map_or("-".into(), |i| format!("{i:.6e}")),
            report
                .silhouette
                .map_or("-".into(), |s| format!("{s:.4}{}", if report.silhouette_sampled { " (sampled)" } else { "" })),
            report.iterations,
            report.seconds,
            report.fit_seconds
        );
        if let Some(eps) = report.eps {
            println!("eps = {eps}");
        }
        println!("cluster sizes: {:?}", report.sizes);
    }
    Ok(())
}
