//! `tailor recommend`: the batch interface for external harnesses and batch jobs. Trains a
//! model on a `user item timestamp weight` TSV (what `../shared/bench/split.py` writes) and
//! writes `user\titem\trank` for the listed users, excluding their train items.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tailor_core::{Interactions, Interner};
use tailor_recommend::als::AlsParams;
use tailor_recommend::file::{AnyModel, ModelFile};
use tailor_recommend::popularity::Popularity;
use tailor_recommend::zoo::{self, ModelKind};
use tailor_recommend::{Filter, History, Model, RecommendError};

/// A training file read into a matrix.
pub struct TrainSet {
    /// User ids ↔ rows.
    pub users: Interner,
    /// Item ids ↔ columns.
    pub items: Interner,
    /// The matrix (weights summed over repeated pairs).
    pub matrix: Interactions,
    /// Earliest timestamp of each stored pair (aligned with the matrix values).
    pub times: Vec<f64>,
}

/// Reads `user item timestamp weight` rows (tab-separated, header optional; a missing
/// weight is 1, a missing timestamp 0; rows with a weight <= 0 are dropped).
pub fn read_rows(path: &Path) -> Result<Vec<tailor_eval::split::Row>> {
    let file = fs_err::File::open(path)?;
    let reader = std::io::BufReader::new(file);
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if n == 0 && f.first().is_some_and(|h| h.eq_ignore_ascii_case("user")) {
            continue;
        }
        if f.len() < 2 || f[0].is_empty() || f[1].is_empty() {
            bail!("{}:{}: expected user<TAB>item[<TAB>timestamp<TAB>weight]", path.display(), n + 1);
        }
        let num = |k: usize, what: &str, default: f64| -> Result<f64> {
            match f.get(k).map(|v| v.trim()) {
                Some(v) if !v.is_empty() => v
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite())
                    .with_context(|| format!("{}:{}: {what}: {v:?} is not a number", path.display(), n + 1)),
                _ => Ok(default),
            }
        };
        let weight = num(3, "weight", 1.0)?;
        let ts = num(2, "timestamp", 0.0)?;
        if weight > 0.0 {
            out.push(tailor_eval::split::Row { user: f[0].to_owned(), item: f[1].to_owned(), ts, weight });
        }
    }
    Ok(out)
}

impl TrainSet {
    /// The matrix of `rows`: ids interned in row order, repeated pairs summed (earliest time).
    pub fn from_rows(rows: &[tailor_eval::split::Row]) -> Result<Self> {
        Self::with_ids(rows, Vec::new(), Vec::new())
    }

    /// Like [`TrainSet::from_rows`], with `users` and `items` keeping their positions (a loaded
    /// model's ids); new ids follow them.
    pub fn with_ids(rows: &[tailor_eval::split::Row], users: Vec<String>, items: Vec<String>) -> Result<Self> {
        let mut users = Interner::from_names(users);
        let mut items = Interner::from_names(items);
        let mut pairs: HashMap<(u32, u32), (f32, f64)> = HashMap::new();
        for r in rows {
            let (u, i) = (users.intern(&r.user), items.intern(&r.item));
            let e = pairs.entry((u, i)).or_insert((0.0, f64::INFINITY));
            e.0 += r.weight as f32;
            e.1 = e.1.min(r.ts);
        }
        let mut cells: Vec<((u32, u32), (f32, f64))> = pairs.into_iter().collect();
        cells.sort_unstable_by_key(|r| r.0);
        let mut indptr = vec![0usize; users.len() + 1];
        for ((u, _), _) in &cells {
            indptr[*u as usize + 1] += 1;
        }
        for u in 0..users.len() {
            indptr[u + 1] += indptr[u];
        }
        let indices = cells.iter().map(|r| r.0.1).collect();
        let data = cells.iter().map(|r| r.1.0).collect();
        let times = cells.iter().map(|r| r.1.1).collect();
        let matrix = Interactions::from_csr(users.len(), items.len(), indptr, indices, data)?;
        Ok(TrainSet { users, items, matrix, times })
    }

    /// Top-`k` item ids for each of `wanted` (users unknown in training get popular items),
    /// with a flag for those cold users.
    pub fn recommend(
        &self,
        model: &dyn Model,
        recency_half_life: Option<f32>,
        wanted: &[String],
        k: usize,
    ) -> Vec<(Vec<String>, bool)> {
        self.recommend_filtered(model, recency_half_life, wanted, k, &Filter::default())
    }

    /// [`TrainSet::recommend`] with a filter.
    pub fn recommend_filtered(
        &self,
        model: &dyn Model,
        recency_half_life: Option<f32>,
        wanted: &[String],
        k: usize,
        filter: &Filter,
    ) -> Vec<(Vec<String>, bool)> {
        use rayon::prelude::*;
        let popular = Popularity::fit(&self.matrix);
        let recency: Vec<f32> = match recency_half_life {
            None => Vec::new(),
            Some(h) => tailor_recommend::recency_weights(&self.matrix, &self.times, h),
        };
        let ip = self.matrix.indptr();
        let history = |row: u32| {
            let mut h = History::of(&self.matrix, tailor_core::UserIdx(row));
            if !recency.is_empty() {
                h.recency = Some(&recency[ip[row as usize]..ip[row as usize + 1]]);
            }
            h
        };
        // Chunks of users in parallel; inside a chunk the model may batch (GEMM for factor
        // models).
        wanted
            .par_chunks(256)
            .flat_map_iter(|chunk| {
                let rows: Vec<Option<u32>> = chunk.iter().map(|u| self.users.get(u)).collect();
                let known: Vec<(Option<u32>, History<'_>)> =
                    rows.iter().flatten().map(|&row| (Some(row), history(row))).collect();
                let mut batch = model.recommend_batch(&known, k, filter).into_iter();
                rows.into_iter()
                    .map(|row| {
                        let (recs, cold) = match row {
                            Some(_) => (batch.next().unwrap_or_default(), false),
                            None => (popular.recommend(None, History::empty(), k, filter), true),
                        };
                        (recs.iter().map(|(i, _)| self.items.name(*i).unwrap_or_default().to_owned()).collect(), cold)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// The `recency` parameter of a model spec, if any.
pub fn recency_of(spec: Option<&str>) -> Result<Option<f32>> {
    params(spec)?
        .get("recency")
        .map(|v| v.parse())
        .transpose()
        .map_err(|_| crate::usage("--params recency: expected a half-life in interactions"))
}

/// `key=value` pairs.
pub fn params(spec: Option<&str>) -> Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    for part in spec.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) =
            part.split_once('=').ok_or_else(|| crate::usage(format!("--params {part:?}: expected key=value")))?;
        m.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(m)
}

/// ALS parameters from `key=value` pairs (factors, regularization, alpha, iterations,
/// solver=cg|cholesky, cg_steps, seed), removing the keys it uses.
pub fn als_params(p: &mut HashMap<String, String>) -> Result<AlsParams> {
    AlsParams::from_pairs(p).map_err(|e| crate::usage(format!("--params {e}")))
}

/// BPR parameters from `key=value` pairs (factors, learning_rate, regularization, epochs,
/// negatives=uniform|popularity, loss=bpr|warp, max_trials, seed), removing the keys it uses.
pub fn bpr_params(p: &mut HashMap<String, String>) -> Result<tailor_recommend::bpr::BprParams> {
    tailor_recommend::bpr::BprParams::from_pairs(p).map_err(|e| crate::usage(format!("--params {e}")))
}

/// Trains the named model with `key=value` parameters (see [`tailor_recommend::zoo`]).
pub fn train(
    name: &str,
    spec: Option<&str>,
    m: &Interactions,
    times: &[f64],
    features: Option<&[Vec<String>]>,
) -> Result<AnyModel> {
    let kind: ModelKind = name.parse().map_err(|e| crate::usage(format!("--model {e}")))?;
    let mut p = params(spec)?;
    p.remove("recency");
    zoo::fit(kind, &mut p, zoo::Inputs { matrix: m, times, features }).map_err(|e| match e {
        RecommendError::InvalidSpec(why) if why.contains("needs item features") => {
            crate::usage(format!("--model {name} needs --item-features FILE"))
        }
        RecommendError::InvalidSpec(why) => crate::usage(format!("--params {why}")),
        other => other.into(),
    })
}

/// What `tailor recommend` prints.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    /// The model's name (`als`, `ease`...).
    pub model: String,
    /// Train users, items, pairs.
    pub train_users: usize,
    /// Items in the training matrix.
    pub train_items: usize,
    /// Distinct user-item pairs in the training matrix.
    pub train_pairs: usize,
    /// Users written.
    pub users: usize,
    /// Of which unknown in train (served by popularity).
    pub cold_users: usize,
    /// Building the interaction matrix from the rows (ids, CSR) and loading a saved model.
    pub prepare_seconds: f64,
    /// Training time (the model's fit on the built matrix: what implicit's `fit` times).
    pub train_seconds: f64,
    /// Scoring and writing time.
    pub recommend_seconds: f64,
}

/// Reads item features: `item<TAB>token token ...` per line (tokens separated by spaces or
/// `|`; `#` starts a comment line).
pub fn read_item_features(path: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let text = fs_err::read_to_string(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (item, toks) = line
            .split_once('\t')
            .with_context(|| format!("{}:{}: expected item<TAB>features", path.display(), n + 1))?;
        let toks =
            toks.split(|c: char| c == '|' || c.is_whitespace()).filter(|t| !t.is_empty()).map(str::to_owned).collect();
        out.push((item.trim().to_owned(), toks));
    }
    Ok(out)
}

/// Where the model comes from and goes.
pub struct ModelIo<'a> {
    /// Item features for content-based models (`item<TAB>tokens`).
    pub item_features: Option<&'a Path>,
    /// Recommend only items without training interactions (the cold-item protocol).
    pub cold_only: bool,
    /// Load this model file instead of training.
    pub load: Option<&'a Path>,
    /// Save the trained model here (`.gz`: gzip-compressed JSON).
    pub save: Option<&'a Path>,
}

/// Writes a model file (gzip when the name ends in `.gz`).
pub fn save_model(path: &Path, file: &ModelFile) -> Result<()> {
    let bytes = file.to_json()?;
    if path.extension().is_some_and(|e| e == "gz") {
        let f = fs_err::File::create(path)?;
        let mut gz = flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast());
        gz.write_all(&bytes)?;
        gz.finish()?.flush()?;
    } else {
        fs_err::write(path, bytes)?;
    }
    Ok(())
}

/// Reads a model file (gzip or plain JSON).
pub fn load_model(path: &Path) -> Result<ModelFile> {
    let raw = fs_err::read(path)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(raw.as_slice()), &mut out)
            .with_context(|| format!("{}: damaged gzip", path.display()))?;
        out
    } else {
        raw
    };
    ModelFile::from_json(&bytes).with_context(|| format!("{}", path.display()))
}

/// Runs the batch job.
pub fn batch(
    train_path: &Path,
    users_path: Option<&Path>,
    model: &str,
    spec: Option<&str>,
    k: usize,
    out: &Path,
    io: &ModelIo<'_>,
) -> Result<BatchReport> {
    let rows = read_rows(train_path)?;
    let t = Instant::now();
    let mut train_seconds = 0.0;
    let (set, trained) = match io.load {
        Some(p) => {
            let file = load_model(p)?;
            let set = TrainSet::with_ids(&rows, file.users.clone(), file.items.clone())?;
            (set, file.model)
        }
        None => {
            let named: Vec<(String, Vec<String>)> = match io.item_features {
                Some(p) => read_item_features(p)?,
                None => Vec::new(),
            };
            let set = TrainSet::with_ids(&rows, Vec::new(), named.iter().map(|(i, _)| i.clone()).collect())?;
            let features: Option<Vec<Vec<String>>> = io.item_features.map(|_| {
                let mut f = vec![Vec::new(); set.items.len()];
                for (i, t) in &named {
                    if let Some(k) = set.items.get(i) {
                        f[k as usize] = t.clone();
                    }
                }
                f
            });
            let fit = Instant::now();
            let trained = train(model, spec, &set.matrix, &set.times, features.as_deref())?;
            train_seconds = fit.elapsed().as_secs_f64();
            (set, trained)
        }
    };
    let prepare_seconds = t.elapsed().as_secs_f64() - train_seconds;
    if let Some(p) = io.save {
        let file = ModelFile::new(
            trained.clone(),
            &set.matrix,
            set.users.names().to_vec(),
            set.items.names().to_vec(),
            tailor_core::Timestamp::now().to_rfc3339(),
        );
        save_model(p, &file)?;
    }
    let t = Instant::now();
    let wanted: Vec<String> = match users_path {
        Some(p) => fs_err::read_to_string(p)?
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("user"))
            .collect(),
        None => set.users.names().to_vec(),
    };
    let mut filter = Filter::default();
    if io.cold_only {
        let mut seen = vec![false; set.items.len()];
        set.matrix.indices().iter().for_each(|&i| seen[i as usize] = true);
        filter.allow = Some(seen.iter().map(|s| !s).collect());
    }
    let results = set.recommend_filtered(trained.as_model(), recency_of(spec)?, &wanted, k, &filter);
    let file = fs_err::File::create(out)?;
    let mut w = BufWriter::new(file);
    writeln!(w, "user\titem\trank")?;
    let mut cold = 0;
    for (u, (recs, is_cold)) in wanted.iter().zip(&results) {
        cold += usize::from(*is_cold);
        for (rank, item) in recs.iter().enumerate() {
            writeln!(w, "{u}\t{item}\t{}", rank + 1)?;
        }
    }
    w.flush()?;
    Ok(BatchReport {
        model: trained.name().to_owned(),
        train_users: set.users.len(),
        train_items: set.items.len(),
        train_pairs: set.matrix.nnz(),
        users: wanted.len(),
        cold_users: cold,
        prepare_seconds,
        train_seconds,
        recommend_seconds: t.elapsed().as_secs_f64(),
    })
}
