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
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    /// Algorithm.
    pub method: String,
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// Clusters.
    pub k: usize,
    /// Sum of squared distances to the centres (in the scaled space).
    pub inertia: f64,
    /// Mean silhouette (exact up to 20,000 rows, else on a seeded sample of 20,000).
    pub silhouette: Option<f64>,
    /// Whether the silhouette was computed on a sample.
    pub silhouette_sampled: bool,
    /// Lloyd iterations.
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
}

/// Options of `tailor cluster`.
pub struct ClusterOptions {
    /// `none` or `zscore`.
    pub scale: String,
    /// k-means parameters.
    pub params: KMeansParams,
    /// Skip the silhouette (it is O(n²) up to 20,000 rows).
    pub no_silhouette: bool,
}

/// Runs k-means on a matrix.
pub fn run(m: &mut Matrix, opts: &ClusterOptions, started: Instant) -> Result<(ClusterReport, Vec<usize>)> {
    let t = Instant::now();
    match opts.scale.as_str() {
        "none" => {}
        "zscore" => ZScore::fit(&m.x, m.d)?.transform(&mut m.x),
        other => bail!("--scale {other}: expected none or zscore"),
    }
    let model = opts.params.fit(&m.x, m.d)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let n = m.x.len() / m.d;
    let (silhouette, sampled) = if opts.no_silhouette || model.k < 2 {
        (None, false)
    } else if n <= EXACT_SILHOUETTE_ROWS {
        (Some(silhouette::score(&m.x, m.d, &model.labels)?), false)
    } else {
        (Some(silhouette::sampled_score(&m.x, m.d, &model.labels, EXACT_SILHOUETTE_ROWS, opts.params.seed)?), true)
    };
    let mut sizes = vec![0; model.k];
    for &l in &model.labels {
        sizes[l] += 1;
    }
    let report = ClusterReport {
        method: "kmeans".into(),
        n,
        d: m.d,
        k: model.k,
        inertia: model.inertia,
        silhouette,
        silhouette_sampled: sampled,
        iterations: model.n_iter,
        fit_seconds,
        silhouette_seconds: t.elapsed().as_secs_f64(),
        seconds: started.elapsed().as_secs_f64(),
        sizes,
        columns: m.columns.clone(),
    };
    Ok((report, model.labels))
}
