//! Content-based recommendations: TF-IDF vectors of item features (category path, brand,
//! tags, title words, price tier, any tokens), a user profile as the weighted sum of the
//! vectors of the items they interacted with, scores by cosine. Items need no interactions,
//! so new items are recommended from the first minute.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tailor_core::Item;

use crate::{History, Model};

/// Fitted item vectors (sparse, L2-normalised TF-IDF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentModel {
    /// Vocabulary (`genre:Action`, `word:star`...).
    pub vocabulary: Vec<String>,
    indptr: Vec<usize>,
    terms: Vec<u32>,
    values: Vec<f32>,
}

/// The feature tokens of a catalog item: category path prefixes, brand, tags, title and
/// description words (lower case, 3+ letters), price tier (quartile of the catalog), and
/// attributes as `name:value`.
pub fn item_tokens(item: &Item, price_quartiles: &[f64; 3]) -> Vec<String> {
    let mut t = Vec::new();
    for depth in 1..=item.category.len() {
        t.push(format!("cat:{}", item.category[..depth].join(" > ").to_lowercase()));
    }
    if let Some(b) = &item.brand {
        t.push(format!("brand:{}", b.to_lowercase()));
    }
    t.extend(item.tags.iter().map(|g| format!("tag:{}", g.to_lowercase())));
    for text in [&item.title, &item.description].into_iter().flatten() {
        for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 3) {
            t.push(format!("word:{}", w.to_lowercase()));
        }
    }
    if let Some(p) = item.effective_price() {
        let tier = price_quartiles.iter().filter(|q| p > **q).count();
        t.push(format!("price_tier:{tier}"));
    }
    t.extend(item.attributes.iter().map(|(k, v)| format!("{}:{}", k.to_lowercase(), v.to_lowercase())));
    t
}

impl ContentModel {
    /// Fits TF-IDF over `tokens[i]`, the features of item `i` (term frequency × (ln(N / df) + 1),
    /// then L2-normalised).
    pub fn fit(tokens: &[Vec<String>]) -> Self {
        let mut vocab: HashMap<&str, u32> = HashMap::new();
        let mut names: Vec<String> = Vec::new();
        let mut df: Vec<u32> = Vec::new();
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::with_capacity(tokens.len());
        for toks in tokens {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            for t in toks {
                let id = *vocab.entry(t.as_str()).or_insert_with(|| {
                    names.push(t.clone());
                    df.push(0);
                    (names.len() - 1) as u32
                });
                *tf.entry(id).or_default() += 1.0;
            }
            for id in tf.keys() {
                df[*id as usize] += 1;
            }
            let mut row: Vec<(u32, f32)> = tf.into_iter().collect();
            row.sort_unstable_by_key(|e| e.0);
            rows.push(row);
        }
        let n = tokens.len().max(1) as f32;
        let mut indptr = vec![0];
        let (mut terms, mut values) = (Vec::new(), Vec::new());
        for row in rows {
            let weighted: Vec<(u32, f32)> =
                row.iter().map(|&(t, f)| (t, f * ((n / df[t as usize] as f32).ln() + 1.0))).collect();
            let norm = weighted.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            for (t, v) in weighted {
                terms.push(t);
                values.push(v / norm);
            }
            indptr.push(terms.len());
        }
        Self { vocabulary: names, indptr, terms, values }
    }

    fn row(&self, i: u32) -> (&[u32], &[f32]) {
        let i = i as usize;
        match (self.indptr.get(i), self.indptr.get(i + 1)) {
            (Some(&a), Some(&b)) => (&self.terms[a..b], &self.values[a..b]),
            _ => (&[], &[]),
        }
    }

    /// Cosine similarity of two items' feature vectors.
    pub fn similarity(&self, a: u32, b: u32) -> f32 {
        let ((ta, va), (tb, vb)) = (self.row(a), self.row(b));
        let (mut p, mut q, mut s) = (0, 0, 0.0);
        while p < ta.len() && q < tb.len() {
            match ta[p].cmp(&tb[q]) {
                std::cmp::Ordering::Less => p += 1,
                std::cmp::Ordering::Greater => q += 1,
                std::cmp::Ordering::Equal => {
                    s += va[p] * vb[q];
                    p += 1;
                    q += 1;
                }
            }
        }
        s
    }
}

/// Item feature vectors that take new and changed items one at a time: TF-IDF with the
/// document frequencies of the items indexed so far, for content "similar items" answers and
/// cold-item scores between trainings (an item listed after the model was trained has no
/// interactions, but it has a title, a category and a brand from its first minute).
///
/// The serving catalog is copied on every upsert: the parts are shared behind `Arc`s, so a
/// copy costs two pointers per item and term, and a change copies only what it touches.
#[derive(Debug, Clone, Default)]
pub struct ContentIndex {
    vocab: std::sync::Arc<HashMap<String, u32>>,
    df: Vec<u32>,
    /// Raw term frequencies per item, sorted by term.
    docs: Vec<std::sync::Arc<[(u32, f32)]>>,
    /// Items per term.
    postings: Vec<std::sync::Arc<Vec<u32>>>,
    /// Items with at least one token.
    n: usize,
}

impl ContentIndex {
    /// Indexes `tokens[i]` as item `i`'s features.
    pub fn new(tokens: &[Vec<String>]) -> Self {
        let mut c = Self::default();
        for (i, t) in tokens.iter().enumerate() {
            c.set(i, t);
        }
        c
    }

    /// Replaces item `i`'s features.
    pub fn set(&mut self, i: usize, tokens: &[String]) {
        if self.docs.len() <= i {
            self.docs.resize(i + 1, std::sync::Arc::from(Vec::new()));
        }
        let old = self.docs[i].clone();
        for &(t, _) in old.iter() {
            self.df[t as usize] -= 1;
            std::sync::Arc::make_mut(&mut self.postings[t as usize]).retain(|&j| j as usize != i);
        }
        if !old.is_empty() {
            self.n -= 1;
        }
        let mut tf: HashMap<u32, f32> = HashMap::new();
        for tok in tokens {
            let id = match self.vocab.get(tok.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.vocab.len() as u32;
                    std::sync::Arc::make_mut(&mut self.vocab).insert(tok.clone(), id);
                    self.df.push(0);
                    self.postings.push(Default::default());
                    id
                }
            };
            *tf.entry(id).or_default() += 1.0;
        }
        let mut doc: Vec<(u32, f32)> = tf.into_iter().collect();
        doc.sort_unstable_by_key(|e| e.0);
        for &(t, _) in &doc {
            self.df[t as usize] += 1;
            std::sync::Arc::make_mut(&mut self.postings[t as usize]).push(i as u32);
        }
        if !doc.is_empty() {
            self.n += 1;
        }
        self.docs[i] = std::sync::Arc::from(doc);
    }

    fn idf(&self, t: u32) -> f32 {
        (self.n.max(1) as f32 / self.df[t as usize].max(1) as f32).ln() + 1.0
    }

    fn norm(&self, i: usize) -> f32 {
        let doc: &[(u32, f32)] = self.docs.get(i).map_or(&[], |d| d);
        doc.iter().map(|&(t, f)| (f * self.idf(t)).powi(2)).sum::<f32>().sqrt()
    }

    /// Cosine of two items' TF-IDF vectors (0 when either has no features).
    pub fn similarity(&self, a: u32, b: u32) -> f32 {
        let (Some(da), Some(db)) = (self.docs.get(a as usize), self.docs.get(b as usize)) else { return 0.0 };
        let (mut p, mut q, mut dot) = (0, 0, 0f32);
        while p < da.len() && q < db.len() {
            match da[p].0.cmp(&db[q].0) {
                std::cmp::Ordering::Less => p += 1,
                std::cmp::Ordering::Greater => q += 1,
                std::cmp::Ordering::Equal => {
                    let idf = self.idf(da[p].0);
                    dot += da[p].1 * idf * db[q].1 * idf;
                    p += 1;
                    q += 1;
                }
            }
        }
        let n = self.norm(a as usize) * self.norm(b as usize);
        if n > 0.0 { dot / n } else { 0.0 }
    }

    /// The `k` items most like `item` by features, best first, among those `allow` lets
    /// through (never `item` itself), with their cosines.
    pub fn similar(&self, item: u32, k: usize, allow: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let Some(doc) = self.docs.get(item as usize) else { return Vec::new() };
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for &(t, f) in doc.iter() {
            let idf = self.idf(t);
            for &j in self.postings[t as usize].iter() {
                if j != item && allow(j) {
                    let fj = self.docs[j as usize]
                        .binary_search_by_key(&t, |e| e.0)
                        .map_or(0.0, |p| self.docs[j as usize][p].1);
                    *acc.entry(j).or_default() += f * idf * fj * idf;
                }
            }
        }
        let ni = self.norm(item as usize);
        let mut out: Vec<(u32, f32)> = acc
            .into_iter()
            .map(|(j, dot)| {
                let n = ni * self.norm(j as usize);
                (j, if n > 0.0 { dot / n } else { 0.0 })
            })
            .filter(|e| e.1 > 0.0)
            .collect();
        crate::topk::best_first(&mut out);
        out.truncate(k);
        out
    }

    /// How much `item` is like a weighted history: the weighted mean cosine to its items.
    pub fn affinity(&self, history: &[(u32, f32)], item: u32) -> f32 {
        let total: f32 = history.iter().map(|h| h.1).sum();
        if total <= 0.0 {
            return 0.0;
        }
        history.iter().map(|&(h, w)| w * self.similarity(h, item)).sum::<f32>() / total
    }

    /// Items indexed (with or without features).
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether no item is indexed.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

impl Model for ContentModel {
    fn name(&self) -> &'static str {
        "content"
    }

    fn n_items(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    fn score(&self, _user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        let mut profile = vec![0f32; self.vocabulary.len()];
        for (p, (&i, &w)) in history.items.iter().zip(history.weights).enumerate() {
            let (t, v) = self.row(i);
            let w = w * history.recency_at(p);
            for (&t, &v) in t.iter().zip(v) {
                profile[t as usize] += w * v;
            }
        }
        let norm = profile.iter().map(|v| v * v).sum::<f32>().sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        for (j, o) in out.iter_mut().enumerate() {
            let (t, v) = self.row(j as u32);
            *o = t.iter().zip(v).map(|(&t, &v)| profile[t as usize] * v).sum::<f32>() / norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_index_takes_items_one_at_a_time_and_agrees_with_the_fitted_model() {
        let tokens =
            vec![words("cat:shoes brand:a word:red"), words("cat:shoes brand:b word:blue"), words("cat:hats brand:a")];
        let mut index = ContentIndex::new(&tokens[..2]);
        index.set(2, &tokens[2]);
        let fitted = ContentModel::fit(&tokens);
        for a in 0..3u32 {
            for b in 0..3u32 {
                assert!((index.similarity(a, b) - fitted.similarity(a, b)).abs() < 1e-5, "{a} {b}");
            }
        }
        // A new item like item 0 is its nearest neighbour; replacing its features moves it.
        index.set(3, &words("cat:shoes brand:a word:red word:new"));
        assert_eq!(index.similar(0, 1, |_| true).first().map(|e| e.0), Some(3));
        assert!(index.affinity(&[(0, 1.0)], 3) > index.affinity(&[(2, 1.0)], 3));
        index.set(3, &words("cat:hats"));
        assert_eq!(index.similar(2, 1, |_| true).first().map(|e| e.0), Some(3));
        assert!(index.similar(3, 5, |j| j != 2).iter().all(|e| e.0 != 2));
    }

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn new_items_are_scored_by_their_features() {
        // Items 0, 1: action films; 2: a drama; 3: a new action film nobody has seen.
        let m = ContentModel::fit(&[
            toks(&["genre:action", "word:star"]),
            toks(&["genre:action", "word:wars"]),
            toks(&["genre:drama", "word:love"]),
            toks(&["genre:action", "word:return"]),
        ]);
        let h = History { items: &[0, 1], weights: &[1.0, 1.0], recency: None };
        let recs = m.recommend(None, h, 2, &crate::Filter::default());
        assert_eq!(recs[0].0, 3, "{recs:?}");
        assert!(m.similarity(0, 3) > m.similarity(0, 2));
        assert!((m.similarity(2, 2) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn catalog_items_become_tokens() {
        let mut it = Item::new("sku");
        it.category = vec!["Women".into(), "Shoes".into()];
        it.brand = Some("Acme".into());
        it.title = Some("Red running shoe".into());
        it.price = Some(80.0);
        let t = item_tokens(&it, &[10.0, 50.0, 100.0]);
        for want in ["cat:women", "cat:women > shoes", "brand:acme", "word:running", "price_tier:2"] {
            assert!(t.contains(&want.to_owned()), "{want} in {t:?}");
        }
    }
}
