//! `tailor cluster`: the segmentation algorithms on any numeric matrix (CSV/TSV with a
//! header row, or a NumPy `.npy` float64 file), for use on its own and for comparisons with
//! other tools.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tailor_segment::kmeans::KMeansParams;
use tailor_segment::scale::ZScore;
use tailor_segment::silhouette;

/// Rows up to which the silhouette is exact; above, a seeded sample of this size is used.
pub const EXACT_SILHOUETTE_ROWS: usize = 20_000;

/// A numeric matrix read from a file.
pub struct Matrix {
    /// Row-major values.
    pub x: Vec<f64>,
    /// Columns.
    pub d: usize,
    /// Column names.
    pub columns: Vec<String>,
}

/// Reads `.npy` (2-D little-endian float64, C order) or CSV/TSV with a header (or without,
/// with `no_header`). Errors name the file, line and column.
pub fn read_matrix(path: &Path, no_header: bool) -> Result<Matrix> {
    let name = path.display().to_string();
    if name.ends_with(".npy") {
        return read_npy(path);
    }
    let delim = if name.ends_with(".tsv") || name.ends_with(".tab") || name.ends_with(".txt") { b'\t' } else { b',' };
    let file = fs_err::File::open(path)?;
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(!no_header).delimiter(delim).from_reader(std::io::BufReader::new(file));
    let mut columns: Vec<String> = if no_header {
        Vec::new()
    } else {
        rdr.headers().with_context(|| format!("{name}:1: cannot read the header"))?.iter().map(str::to_owned).collect()
    };
    let mut x = Vec::new();
    let mut d = columns.len();
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => bail!("{name}: {e}"),
        }
        let line = rec.position().map_or(0, csv::Position::line);
        if d == 0 {
            d = rec.len();
            columns = (1..=d).map(|k| format!("x{k}")).collect();
        }
        if rec.len() != d {
            bail!("{name}:{line}: the row has {} fields, expected {d}", rec.len());
        }
        for (k, f) in rec.iter().enumerate() {
            let v: f64 = f
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}:{line}: {}: {f:?} is not a number", columns[k]))?;
            if !v.is_finite() {
                bail!("{name}:{line}: {}: {f} is not a finite number", columns[k]);
            }
            x.push(v);
        }
    }
    if x.is_empty() {
        bail!("{name}: no data rows");
    }
    Ok(Matrix { x, d, columns })
}

fn read_npy(path: &Path) -> Result<Matrix> {
    let name = path.display().to_string();
    let bytes = fs_err::read(path)?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("{name}: not a .npy file");
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => bail!("{name}: unsupported .npy version {v}"),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).unwrap_or_default())
        .context("the .npy header is not text")?;
    if !header.contains("'descr': '<f8'") || header.contains("'fortran_order': True") {
        bail!("{name}: expected a C-ordered little-endian float64 array, found {header}");
    }
    let shape =
        header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).context("no shape in the .npy header")?;
    let dims: Vec<usize> =
        shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let [n, d] = dims[..] else { bail!("{name}: expected a 2-D array, found shape ({shape})") };
    let data = &bytes[start + hlen..];
    if data.len() != n * d * 8 {
        bail!("{name}: {} data bytes for shape ({n}, {d})", data.len());
    }
    let x: Vec<f64> = data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        bail!("{name}: row {}, column {} is not a finite number", p / d, p % d);
    }
    Ok(Matrix { x, d, columns: (1..=d).map(|k| format!("x{k}")).collect() })
}

/// What `tailor cluster --json` prints.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClusterReport {
    /// Algorithm.
    pub method: String,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// Clusters.
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
    pub k_scan: Vec<tailor_segment::kmeans::KCandidate>,
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
    MiniBatch(tailor_segment::online::MiniBatchParams),
    /// Ward agglomerative clustering into `k` clusters.
    Ward {
        /// Clusters.
        k: usize,
    },
    /// DBSCAN; `eps = None` asks for a suggestion.
    Dbscan {
        /// Radius.
        eps: Option<f64>,
        /// Core threshold.
        min_samples: usize,
    },
}

/// `--k` of `cluster` and `segment run`: a number of clusters, or `auto`.
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

/// Parses `--k` (clap's value parser).
pub fn parse_k(v: &str) -> std::result::Result<K, String> {
    if v == "auto" {
        return Ok(K::Auto);
    }
    v.parse::<usize>().map(K::N).map_err(|_| format!("{v:?}: expected a number or auto"))
}

/// Column scaling before clustering (`tailor cluster --scale`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The columns as they are.
    None,
    /// Each column to mean 0, standard deviation 1.
    Zscore,
}

/// Options of `tailor cluster`.
pub struct ClusterOptions {
    /// Column scaling.
    pub scale: Scale,
    /// Algorithm.
    pub method: Method,
    /// Seed for the silhouette sample.
    pub seed: u64,
    /// Skip the silhouette (it is O(n²) up to 20,000 rows).
    pub no_silhouette: bool,
}

/// Runs the chosen algorithm on a matrix; labels are `None` for noise.
pub fn run(m: &mut Matrix, opts: &ClusterOptions, started: Instant) -> Result<(ClusterReport, Vec<Option<usize>>)> {
    let t = Instant::now();
    match opts.scale {
        Scale::None => {}
        Scale::Zscore => ZScore::fit(&m.x, m.d)?.transform(&mut m.x),
    }
    let mut k_scan = Vec::new();
    let (method, labels, k, inertia, iterations, eps) = match &opts.method {
        Method::KMeans { params, auto } => {
            let model = if *auto {
                let (model, scan) = tailor_segment::kmeans::auto_k(&m.x, m.d, 2..=10, params, EXACT_SILHOUETTE_ROWS)?;
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
            let r = tailor_segment::ward::WardParams { k: *k, seed: opts.seed }.fit(&m.x, m.d)?;
            ("ward", r.labels.iter().map(|&l| Some(l)).collect(), *k, None, 0, None)
        }
        Method::Dbscan { eps, min_samples } => {
            let eps = match eps {
                Some(e) => *e,
                None => tailor_segment::dbscan::suggest_eps(&m.x, m.d, *min_samples)?,
            };
            let r = tailor_segment::dbscan::DbscanParams { eps, min_samples: *min_samples }.fit(&m.x, m.d)?;
            ("dbscan", r.labels, r.n_clusters, None, 0, Some(eps))
        }
    };
    let fit_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    // The silhouette is taken over the clustered (non-noise) rows.
    let mut xs = Vec::new();
    let mut ls = Vec::new();
    for (row, l) in m.x.chunks_exact(m.d).zip(&labels) {
        if let Some(l) = l {
            xs.extend_from_slice(row);
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
