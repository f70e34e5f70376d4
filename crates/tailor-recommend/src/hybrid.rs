//! Hybrid for cold start: collaborative filtering (EASE) and content (TF-IDF over item
//! features) blended per item by how much the item has been seen.
//!
//! For user `u` and item `i` with `n_i` training interactions:
//!
//! ```text
//! score(u, i) = w_i · cf(u, i) / max_j |cf(u, j)|  +  (1 − w_i) · content(u, i) / max_j |content(u, j)|
//! w_i = n_i / (n_i + β)
//! ```
//!
//! so an item nobody has interacted with is ranked by its features alone, a popular item
//! mostly by co-occurrence, and items in between by both. β is *learned*: [`HybridParams::fit`]
//! holds out the most recent 20% of each user's interactions, fits both parts on the rest,
//! picks the β of a grid with the best validation NDCG@10, and refits on everything. This is
//! the "learned blend of CF and content scores by interaction count" of the design; a
//! LightFM-style model (feature embeddings trained by WARP) is the alternative it is
//! measured against in `docs/benchmarks.md`.

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::content::ContentModel;
use crate::ease::{EaseModel, EaseParams};
use crate::error::Result;
use crate::popularity::Popularity;
use crate::{History, Model};

/// The β values tried when none is given; the last one is content only in practice (β is
/// finite so that model files, which are JSON, keep it).
pub const BETA_GRID: [f32; 9] = [0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 1e9];

/// Parameters of [`HybridModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridParams {
    /// The collaborative part.
    pub ease: EaseParams,
    /// Blend constant; `None` learns it on a validation split.
    pub beta: Option<f32>,
}

/// A fitted hybrid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HybridModel {
    /// Collaborative part.
    pub cf: EaseModel,
    /// Content part.
    pub content: ContentModel,
    /// Training interactions per item.
    pub counts: Vec<f32>,
    /// Blend constant (0: CF wherever an item has interactions; very large: content only).
    pub beta: f32,
    /// Validation NDCG@10 per tried β (empty when β was given).
    pub validation: Vec<(f32, f64)>,
}

/// Divides by the largest magnitude (no-op when all are zero).
fn normalise(v: &mut [f32]) {
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if m > 0.0 {
        v.iter_mut().for_each(|x| *x /= m);
    }
}

fn weight(n: f32, beta: f32) -> f32 {
    if n + beta > 0.0 { n / (n + beta) } else { 0.0 }
}

fn blend(cf: &[f32], content: &[f32], counts: &[f32], beta: f32, out: &mut [f32]) {
    for (((o, &a), &b), &n) in out.iter_mut().zip(cf).zip(content).zip(counts) {
        let w = weight(n, beta);
        *o = w * a + (1.0 - w) * b;
    }
}

impl HybridParams {
    /// Fits the hybrid: `tokens[i]` are item `i`'s feature tokens (items beyond `tokens` have
    /// none), `times` the interaction times (CSR order) used to carve the validation split.
    pub fn fit(&self, m: &Interactions, times: &[f64], tokens: &[Vec<String>]) -> Result<HybridModel> {
        let mut tokens = tokens.to_vec();
        tokens.resize(m.n_items(), Vec::new());
        let content = ContentModel::fit(&tokens);
        let (beta, validation) = match self.beta {
            Some(b) => {
                crate::error::check(b >= 0.0 && b.is_finite(), "beta", b, "must be finite and >= 0")?;
                (b, Vec::new())
            }
            None => self.learn_beta(m, times, &content)?,
        };
        let cf = self.ease.fit(m)?;
        Ok(HybridModel { cf, content, counts: Popularity::fit(m).counts, beta, validation })
    }

    fn learn_beta(&self, m: &Interactions, times: &[f64], content: &ContentModel) -> Result<(f32, Vec<(f32, f64)>)> {
        let (fit, held) = crate::validation::carve(m, times, 0.2)?;
        let cf = self.ease.fit(&fit)?;
        let n = Popularity::fit(&fit).counts;
        let k = 10;
        let mut total = vec![0f64; BETA_GRID.len()];
        let mut users = 0usize;
        let (mut a, mut b, mut s) = (vec![0f32; m.n_items()], vec![0f32; m.n_items()], vec![0f32; m.n_items()]);
        for (u, relevant) in held.iter().enumerate() {
            if relevant.is_empty() {
                continue;
            }
            users += 1;
            let h = History::of(&fit, tailor_core::UserIdx(u as u32));
            cf.score(Some(u as u32), h, &mut a);
            content.score(Some(u as u32), h, &mut b);
            normalise(&mut a);
            normalise(&mut b);
            for (t, &beta) in total.iter_mut().zip(&BETA_GRID) {
                blend(&a, &b, &n, beta, &mut s);
                *t += crate::validation::ndcg_of(&s, h.items, relevant, k);
            }
        }
        let scores: Vec<(f32, f64)> =
            BETA_GRID.iter().zip(&total).map(|(&b, &t)| (b, t / users.max(1) as f64)).collect();
        // The best β; ties go to the smaller one (more CF where there is evidence).
        let best = scores
            .iter()
            .fold((BETA_GRID[0], f64::NEG_INFINITY), |best, &(b, s)| if s > best.1 { (b, s) } else { best });
        Ok((best.0, scores))
    }
}

impl Model for HybridModel {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score(&self, user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        let n = self.counts.len();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        self.cf.score(user, history, &mut a);
        self.content.score(user, history, &mut b);
        normalise(&mut a);
        normalise(&mut b);
        blend(&a, &b, &self.counts, self.beta, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Six users like action films 0..3; item 4 is a new action film (no interactions), item
    /// 5 a new drama. The hybrid ranks the new action film above the new drama (content) and
    /// keeps CF's order among seen items.
    #[test]
    fn new_items_get_content_scores_and_seen_items_keep_cf() {
        let mut indptr = vec![0];
        let mut indices = Vec::new();
        for u in 0..6u32 {
            for i in 0..4u32 {
                if (u + i) % 4 != 0 {
                    indices.push(i);
                }
            }
            indptr.push(indices.len());
        }
        let data = vec![1.0; indices.len()];
        let m = Interactions::from_csr(6, 6, indptr, indices, data).expect("csr");
        let tokens = vec![
            toks(&["genre:action"]),
            toks(&["genre:action"]),
            toks(&["genre:action", "word:space"]),
            toks(&["genre:action"]),
            toks(&["genre:action", "word:space"]),
            toks(&["genre:drama"]),
        ];
        let times: Vec<f64> = (0..m.nnz()).map(|p| p as f64).collect();
        let p = HybridParams { ease: EaseParams { lambda: 1.0, binary: true }, beta: Some(5.0) };
        let h = p.fit(&m, &times, &tokens).expect("fits");
        let mut s = vec![0f32; 6];
        h.score(Some(0), History::of(&m, tailor_core::UserIdx(0)), &mut s);
        assert!(s[4] > s[5], "new action film above new drama: {s:?}");
        assert!(s[5].abs() < 1e-6, "{s:?}");
        // Learned β: every grid value scored, the chosen one among them.
        let learned = HybridParams { beta: None, ..p }.fit(&m, &times, &tokens).expect("fits");
        assert_eq!(learned.validation.len(), BETA_GRID.len());
        assert!(BETA_GRID.contains(&learned.beta));
    }
}
