//! `tailor recommend`: batch recommendations in `user item rank` form.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::recommend;

#[derive(Args, Debug)]
pub(crate) struct RecommendArgs {
    /// Training interactions (TSV with header `user item timestamp weight`, as split.py writes).
    #[arg(long)]
    pub(crate) train: PathBuf,
    /// Users to recommend for, one id per line (default: every train user).
    #[arg(long)]
    pub(crate) users: Option<PathBuf>,
    /// Model: popular, trending, itemknn, als, bpr, ease, content (needs --item-features) or hybrid (EASE + content
    /// blended by item interaction count, β learned on a validation split; needs --item-features).
    #[arg(long, default_value = "als")]
    pub(crate) model: String,
    /// Model parameters `key=value,...` (als: factors, regularization, alpha, iterations, solver=cg|cholesky, cg_steps,
    /// seed; ease: lambda, binary; hybrid: lambda, binary, beta; itemknn: weighting=cosine|tfidf|bm25, neighbours,
    /// shrink, k1, b).
    #[arg(long)]
    pub(crate) params: Option<String>,
    /// Recommendations per user.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// Output TSV `user item rank`.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Save the trained model to this file (versioned JSON; `.gz` compresses).
    #[arg(long)]
    pub(crate) save: Option<PathBuf>,
    /// Use this saved model instead of training (`--model` is ignored; `--params recency=H` still applies).
    #[arg(long, conflicts_with = "save")]
    pub(crate) load: Option<PathBuf>,
    /// Item features for `--model content`: `item<TAB>token token ...` per line.
    #[arg(long)]
    pub(crate) item_features: Option<PathBuf>,
    /// Recommend only items without training interactions (cold-item evaluation).
    #[arg(long)]
    pub(crate) cold_items_only: bool,
}

/// `tailor recommend`.
pub(crate) fn run(a: &RecommendArgs) -> Result<()> {
    let io = recommend::ModelIo {
        load: a.load.as_deref(),
        save: a.save.as_deref(),
        item_features: a.item_features.as_deref(),
        cold_only: a.cold_items_only,
    };
    let r = recommend::batch(&a.train, a.users.as_deref(), &a.model, a.params.as_deref(), a.k, &a.out, &io)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
