//! `tailor cluster`: the segmentation algorithms on any numeric matrix (CSV/TSV with a
//! header row, or a NumPy `.npy` float64 file), for use on its own and for comparisons with
//! other tools.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
pub use tailor_segment::cluster::{ClusterOptions, K, Matrix, Method, parse_k, run};

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

/// Column scaling before clustering (`tailor cluster --scale`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// The columns as they are.
    None,
    /// Each column to mean 0, standard deviation 1.
    Zscore,
}
