//! Every model by name: a [`ModelKind`] with `key=value` parameters is fitted into an
//! [`AnyModel`]. `tailor recommend`, `tailor eval` and the server's training share it, so a
//! name and its parameters mean the same everywhere.

use std::collections::HashMap;

use tailor_core::Interactions;

use crate::error::{RecommendError, Result, take_param as take};
use crate::file::AnyModel;

/// A model the zoo can fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Users per item.
    Popular,
    /// Time-decayed popularity (`half_life_days`).
    Trending,
    /// Item-item neighbours (`weighting=cosine|tfidf|bm25`, `k1`, `b`, `neighbours`, `shrink`).
    Itemknn,
    /// Implicit ALS (see [`crate::als::AlsParams::from_pairs`]).
    Als,
    /// BPR (see [`crate::bpr::BprParams::from_pairs`]; `patience` stops early).
    Bpr,
    /// BPR with the WARP loss (the same parameters, `loss=warp`).
    Warp,
    /// EASE (`lambda`, `binary`).
    Ease,
    /// TF-IDF over item tokens (needs item features).
    Content,
    /// EASE and content blended by item interaction count (`lambda`, `binary`, `beta`;
    /// needs item features).
    Hybrid,
    /// Baseline rating predictor (`reg_user`, `reg_item`, `iterations`).
    Biases,
}

impl ModelKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [ModelKind; 10] = [
        Self::Popular,
        Self::Trending,
        Self::Itemknn,
        Self::Als,
        Self::Bpr,
        Self::Warp,
        Self::Ease,
        Self::Content,
        Self::Hybrid,
        Self::Biases,
    ];

    /// The name in flags, configuration and model files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Popular => "popular",
            Self::Trending => "trending",
            Self::Itemknn => "itemknn",
            Self::Als => "als",
            Self::Bpr => "bpr",
            Self::Warp => "warp",
            Self::Ease => "ease",
            Self::Content => "content",
            Self::Hybrid => "hybrid",
            Self::Biases => "biases",
        }
    }

    /// Whether fitting needs item features (tokens per item).
    pub fn needs_features(self) -> bool {
        matches!(self, Self::Content | Self::Hybrid)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown model {s:?} (expected {})", names.join(", "))
        })
    }
}

/// `key=value, ...` into a map (empty: none); the error names the bad part.
pub fn parse_pairs(spec: &str) -> std::result::Result<HashMap<String, String>, String> {
    let mut m = HashMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected key=value"))?;
        m.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(m)
}

/// What a fit may read besides the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The user × item matrix.
    pub matrix: &'a Interactions,
    /// Earliest time (seconds) of each stored pair, aligned with the matrix values (trending,
    /// early stopping and the hybrid's validation carve read it).
    pub times: &'a [f64],
    /// Tokens per item (title words, category, brand, attributes), for content and hybrid.
    pub features: Option<&'a [Vec<String>]>,
}

fn spec_error(message: impl Into<String>) -> RecommendError {
    RecommendError::InvalidSpec(message.into())
}

/// Fits `kind` with parameters `p` (the keys it uses are removed; any left over is refused,
/// naming it).
pub fn fit(kind: ModelKind, p: &mut HashMap<String, String>, input: Inputs<'_>) -> Result<AnyModel> {
    let m = input.matrix;
    let features = || {
        input.features.ok_or_else(|| spec_error(format!("{kind} needs item features (titles, categories, attributes)")))
    };
    let model = match kind {
        ModelKind::Popular => AnyModel::Popular(crate::popularity::Popularity::fit(m)),
        ModelKind::Content => {
            let mut tokens = features()?.to_vec();
            tokens.resize(m.n_items(), Vec::new());
            AnyModel::Content(crate::content::ContentModel::fit(&tokens))
        }
        ModelKind::Trending => {
            let now = input.times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let days: f64 = take(p, "half_life_days", 7.0).map_err(spec_error)?;
            AnyModel::Trending(crate::popularity::Trending::fit(m, input.times, now, days * 86_400.0)?)
        }
        ModelKind::Als => AnyModel::Als(crate::als::AlsParams::from_pairs(p).map_err(spec_error)?.fit(m)?),
        ModelKind::Bpr | ModelKind::Warp => {
            if kind == ModelKind::Warp {
                p.entry("loss".into()).or_insert_with(|| "warp".into());
            }
            let patience: Option<usize> = p
                .remove("patience")
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| spec_error("patience: expected a number of epochs"))?;
            let mut params = crate::bpr::BprParams::from_pairs(p).map_err(spec_error)?;
            if let Some(patience) = patience {
                let stop = crate::validation::early_stopping(m, input.times, patience, 10, |fit, cb| {
                    params.fit_with(fit, |e, model| cb(e, model)).map(|_| ())
                })?;
                params.epochs = stop.best_epoch;
            }
            AnyModel::Bpr(params.fit(m)?)
        }
        ModelKind::Ease => AnyModel::Ease(ease_params(p)?.fit(m)?),
        ModelKind::Biases => {
            let d = crate::biases::BiasParams::default();
            let params = crate::biases::BiasParams {
                reg_user: take(p, "reg_user", d.reg_user).map_err(spec_error)?,
                reg_item: take(p, "reg_item", d.reg_item).map_err(spec_error)?,
                iterations: take(p, "iterations", d.iterations).map_err(spec_error)?,
            };
            AnyModel::Biases(params.fit(m)?)
        }
        ModelKind::Hybrid => {
            let f = features()?;
            let ease = ease_params(p)?;
            let beta = p
                .remove("beta")
                .map(|v| v.parse::<f32>())
                .transpose()
                .map_err(|_| spec_error("beta: expected a number >= 0 (or leave it out to learn it)"))?;
            AnyModel::Hybrid(crate::hybrid::HybridParams { ease, beta }.fit(m, input.times, f)?)
        }
        ModelKind::Itemknn => {
            use crate::knn::{KnnParams, Weighting};
            let d = KnnParams::default();
            let weighting = match p.remove("weighting").as_deref() {
                None | Some("cosine") => Weighting::Cosine,
                Some("tfidf") => Weighting::Tfidf,
                Some("bm25") => Weighting::Bm25 {
                    k1: take(p, "k1", 1.2).map_err(spec_error)?,
                    b: take(p, "b", 0.75).map_err(spec_error)?,
                },
                Some(other) => return Err(spec_error(format!("weighting={other}: expected cosine, tfidf or bm25"))),
            };
            let params = KnnParams {
                weighting,
                neighbours: take(p, "neighbours", d.neighbours).map_err(spec_error)?,
                shrink: take(p, "shrink", d.shrink).map_err(spec_error)?,
            };
            params.validate()?;
            AnyModel::Itemknn(params.fit(m)?)
        }
    };
    if let Some(k) = p.keys().next() {
        return Err(spec_error(format!("{k}: not a parameter of {kind}")));
    }
    Ok(model)
}

fn ease_params(p: &mut HashMap<String, String>) -> Result<crate::ease::EaseParams> {
    let d = crate::ease::EaseParams::default();
    Ok(crate::ease::EaseParams {
        lambda: take(p, "lambda", d.lambda).map_err(spec_error)?,
        binary: take(p, "binary", d.binary).map_err(spec_error)?,
    })
}

/// One searched parameter: name, low, high, log scale, integer.
pub type Range = (&'static str, f64, f64, bool, bool);

/// The ranges a random search draws `kind`'s parameters from (empty: nothing to tune).
pub fn search_space(kind: ModelKind) -> Vec<Range> {
    match kind {
        ModelKind::Als => vec![
            ("factors", 16.0, 128.0, true, true),
            ("regularization", 0.01, 50.0, true, false),
            ("alpha", 0.1, 20.0, true, false),
            ("iterations", 5.0, 20.0, false, true),
        ],
        ModelKind::Ease | ModelKind::Hybrid => vec![("lambda", 10.0, 5000.0, true, false)],
        ModelKind::Itemknn => vec![("neighbours", 10.0, 500.0, true, true), ("shrink", 0.0, 100.0, false, false)],
        ModelKind::Bpr | ModelKind::Warp => vec![
            ("factors", 16.0, 128.0, true, true),
            ("learning_rate", 0.01, 0.2, true, false),
            ("regularization", 0.0001, 0.1, true, false),
            ("epochs", 10.0, 60.0, false, true),
        ],
        ModelKind::Popular | ModelKind::Trending | ModelKind::Content | ModelKind::Biases => Vec::new(),
    }
}

/// A setting drawn from [`search_space`] over `base` (the configured parameters, which
/// the drawn ones replace).
pub fn sample(
    kind: ModelKind,
    base: &HashMap<String, String>,
    rng: &mut tailor_core::rng::Rng,
) -> HashMap<String, String> {
    let mut p = base.clone();
    for (name, lo, hi, log, int) in search_space(kind) {
        let u = rng.f64();
        let v = if log { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) };
        p.insert(name.to_string(), if int { format!("{}", v.round() as i64) } else { format!("{v:.4}") });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Interactions {
        let (mut indptr, mut indices) = (vec![0], Vec::new());
        for u in 0..6u32 {
            indices.extend((0..5u32).filter(|i| (u + i) % 2 == 0));
            indptr.push(indices.len());
        }
        let data = vec![1.0; indices.len()];
        Interactions::from_csr(6, 5, indptr, indices, data).expect("csr")
    }

    #[test]
    fn names_parse_and_print_back() {
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelKind>(), Ok(k));
        }
        assert!("lightfm".parse::<ModelKind>().unwrap_err().contains("expected popular, trending"));
    }

    #[test]
    fn fits_by_name_and_refuses_unknown_parameters() {
        let m = matrix();
        let times = vec![0.0; m.nnz()];
        let input = Inputs { matrix: &m, times: &times, features: None };
        for kind in [ModelKind::Popular, ModelKind::Itemknn, ModelKind::Als, ModelKind::Ease, ModelKind::Warp] {
            let model = fit(kind, &mut HashMap::new(), input).expect("fits");
            assert_eq!(model.as_model().n_items(), 5, "{kind}");
        }
        let mut p = parse_pairs("lambda=10, speed=3").expect("pairs");
        let err = fit(ModelKind::Ease, &mut p, input).expect_err("speed");
        assert_eq!(err.to_string(), "speed: not a parameter of ease");
        let err = fit(ModelKind::Hybrid, &mut HashMap::new(), input).expect_err("features");
        assert!(err.to_string().contains("needs item features"));
        assert!(parse_pairs("lambda").unwrap_err().contains("expected key=value"));
    }

    #[test]
    fn sampled_settings_fit_and_stay_in_their_ranges() {
        let m = matrix();
        let times = vec![0.0; m.nnz()];
        let input = Inputs { matrix: &m, times: &times, features: None };
        let mut rng = tailor_core::rng::Rng::new(7);
        for kind in [ModelKind::Als, ModelKind::Ease, ModelKind::Itemknn, ModelKind::Warp] {
            for _ in 0..5 {
                let mut p = sample(kind, &HashMap::new(), &mut rng);
                for (name, lo, hi, _, _) in search_space(kind) {
                    let v: f64 = p[name].parse().expect("number");
                    assert!(v >= lo - 0.5 && v <= hi + 0.5, "{kind} {name}={v}");
                }
                fit(kind, &mut p, input).unwrap_or_else(|e| panic!("{kind}: {e}"));
            }
        }
    }
}
