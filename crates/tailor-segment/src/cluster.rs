//! One clustering run over a numeric matrix: optional z-scoring, the chosen algorithm
//! (k-means with an optional k scan, mini-batch k-means, Ward, DBSCAN with a suggested
//! radius), the silhouette (exact up to [`EXACT_SILHOUETTE_ROWS`], sampled above) and a
//! report. Shared by `tailor cluster` and the segmentation runs.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::kmeans::KMeansParams;
use crate::scale::ZScore;
use crate::silhouette;

/// Rows up to which the silhouette is exact; above, a seeded sample of this size is used.
pub const EXACT_SILHOUETTE_ROWS: usize = 20_000;

/// A row-major numeric matrix with column names.
pub struct Matrix {
    /// Row-major values.
    pub x: Vec<f64>,
    /// Columns of each row.
    pub d: usize,
    /// Column names.
    pub columns: Vec<String>,
}

/// What a clustering did (`tailor cluster --json` prints it; segmentation runs store it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    /// The algorithm (`kmeans`, `minibatch`, `ward`, `dbscan`).
    pub method: String,
    /// How many rows (users) were clustered.
    pub n: usize,
    /// Columns of each row.
    pub d: usize,
    /// Clusters found (DBSCAN) or asked for / chosen by the k scan.
    pub k: usize,
    /// Sum of squared distances to the centres (k-means, in the scaled space).
    pub inertia: Option<f64>,
    /// Rows labelled noise (DBSCAN).
    pub noise: usize,
    /// The `eps` used (DBSCAN; suggested from the k-distance knee when not given).
    pub eps: Option<f64>,
    /// Mean silhouette (exact up to 20,000 rows, else on a seeded sample of 20,000; DBSCAN:
    /// over the non-noise rows).
    pub silhouette: Option<f64>,
    /// Whether the silhouette was computed on a sample.
    pub silhouette_sampled: bool,
    /// Lloyd iterations (k-means).
    pub iterations: usize,
    /// Seconds spent clustering (scaling and fitting).
    pub fit_seconds: f64,
    /// Seconds spent on the silhouette.
    pub silhouette_seconds: f64,
    /// Whole command.
    pub seconds: f64,
    /// Rows per cluster.
    pub sizes: Vec<usize>,
    /// Input column names.
    pub columns: Vec<String>,
    /// With `--k auto`: inertia and silhouette of every k tried.
    pub k_scan: Vec<crate::kmeans::KCandidate>,
}

/// The algorithm and its parameters.
pub enum Method {
    /// k-means; with `auto`, k is chosen in 2..=10 by the best silhouette.
    KMeans {
        /// Parameters (`k` ignored with `auto`).
        params: KMeansParams,
        /// Choose k automatically.
        auto: bool,
    },
    /// Mini-batch k-means.
    MiniBatch(crate::online::MiniBatchParams),
    /// Ward agglomerative clustering into `k` clusters.
    Ward {
        /// Number of clusters to cut the dendrogram into.
        k: usize,
    },
    /// DBSCAN; `eps = None` asks for a suggestion.
    Dbscan {
        /// Neighbourhood radius in scaled feature units.
        eps: Option<f64>,
        /// Points within `eps` (itself included) that make a core point.
        min_samples: usize,
    },
}

/// How many clusters: a number, or `auto` (`--k` of `tailor cluster` and `segment run`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum K {
    /// Scan 2..=10 and keep the best silhouette (k-means).
    Auto,
    /// This many.
    N(usize),
}

impl K {
    /// The number asked for; `None` for `auto`.
    pub fn fixed(self) -> Option<usize> {
        match self {
            K::Auto => None,
            K::N(k) => Some(k),
        }
    }
}

/// Parses `auto` or a number (the CLI's value parser for `--k`).
pub fn parse_k(v: &str) -> std::result::Result<K, String> {
    if v == "auto" {
        return Ok(K::Auto);
    }
    v.parse::<usize>().map(K::N).map_err(|_| format!("{v:?}: expected a number or auto"))
}

/// How to cluster a matrix.
pub struct ClusterOptions {
    /// Scale each column to mean 0 and standard deviation 1 first.
    pub standardize: bool,
    /// The algorithm and its parameters.
    pub method: Method,
    /// Seed for the silhouette sample.
    pub seed: u64,
    /// Skip the silhouette (it is O(n²) up to 20,000 rows).
    pub no_silhouette: bool,
}

/// Runs the chosen algorithm on a matrix; labels are `None` for noise.
pub fn run(m: &mut Matrix, opts: &ClusterOptions, started: Instant) -> Result<(ClusterReport, Vec<Option<usize>>)> {
    let t = Instant::now();
    if opts.standardize {
        ZScore::fit(&m.x, m.d)?.transform(&mut m.x);
    }
    let mut k_scan = Vec::new();
    let (method, labels, k, inertia, iterations, eps) = match &opts.method {
        Method::KMeans { params, auto } => {
            let model = if *auto {
                let (model, scan) = crate::kmeans::auto_k(&m.x, m.d, 2..=10, params, EXACT_SILHOUETTE_ROWS)?;
                k_scan = scan;
                model
            } else {
                params.fit(&m.x, m.d)?
            };
            let labels = model.labels.iter().map(|&l| Some(l)).collect();
            ("kmeans", labels, model.k, Some(model.inertia), model.n_iter, None)
        }
        Method::MiniBatch(p) => {
            let model = p.fit(&m.x, m.d)?;
            let labels = model.labels.iter().map(|&l| Some(l)).collect();
            ("minibatch", labels, model.k, Some(model.inertia), model.n_iter, None)
        }
        Method::Ward { k } => {
            let r = crate::ward::WardParams { k: *k, seed: opts.seed }.fit(&m.x, m.d)?;
            ("ward", r.labels.iter().map(|&l| Some(l)).collect(), *k, None, 0, None)
        }
        Method::Dbscan { eps, min_samples } => {
            let eps = match eps {
                Some(e) => *e,
                None => crate::dbscan::suggest_eps(&m.x, m.d, *min_samples)?,
            };
            let r = crate::dbscan::DbscanParams { eps, min_samples: *min_samples }.fit(&m.x, m.d)?;
            ("dbscan", r.labels, r.n_clusters, None, 0, Some(eps))
        }
    };
    let fit_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    // The silhouette is taken over the clustered (non-noise) rows (copied only when it is
    // wanted: a copy of the whole matrix otherwise).
    let mut xs = Vec::new();
    let mut ls = Vec::new();
    for (row, l) in m.x.chunks_exact(m.d).zip(&labels) {
        if let Some(l) = l {
            if !opts.no_silhouette {
                xs.extend_from_slice(row);
            }
            ls.push(*l);
        }
    }
    let used = ls.iter().collect::<std::collections::HashSet<_>>().len();
    let (silhouette, sampled) = if opts.no_silhouette || used < 2 || used >= ls.len() {
        (None, false)
    } else if ls.len() <= EXACT_SILHOUETTE_ROWS {
        (Some(silhouette::score(&xs, m.d, &ls)?), false)
    } else {
        (Some(silhouette::sampled_score(&xs, m.d, &ls, EXACT_SILHOUETTE_ROWS, opts.seed)?), true)
    };
    let mut sizes = vec![0; k];
    for l in labels.iter().flatten() {
        sizes[*l] += 1;
    }
    let report = ClusterReport {
        method: method.into(),
        n: labels.len(),
        d: m.d,
        k,
        inertia,
        noise: labels.iter().filter(|l| l.is_none()).count(),
        eps,
        silhouette,
        silhouette_sampled: sampled,
        iterations,
        fit_seconds,
        silhouette_seconds: t.elapsed().as_secs_f64(),
        seconds: started.elapsed().as_secs_f64(),
        sizes,
        columns: m.columns.clone(),
        k_scan,
    };
    Ok((report, labels))
}
