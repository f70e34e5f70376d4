//! "Frequently bought together": items that appear in the same orders. Counted over baskets
//! (the distinct items of one order), scored by the cosine of the two items' basket sets,
//! `co(a, b) / √(n(a) · n(b))`, with a minimum support on `co` so that one shared order does
//! not make a pair, and the best `top_n` partners kept per item.

use serde::{Deserialize, Serialize};

use crate::topk::best_first;
use crate::{History, Model};

/// Bought-together partners per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoughtTogether {
    indptr: Vec<usize>,
    partners: Vec<u32>,
    scores: Vec<f32>,
}

impl BoughtTogether {
    /// Counts `baskets` (item indices below `n_items`; repeats within a basket count once).
    pub fn fit(baskets: &[Vec<u32>], n_items: usize, top_n: usize, min_support: u32) -> Self {
        let mut count = vec![0u32; n_items];
        let mut pairs: std::collections::HashMap<(u32, u32), u32> = std::collections::HashMap::new();
        for b in baskets {
            let mut items: Vec<u32> = b.iter().copied().filter(|&i| (i as usize) < n_items).collect();
            items.sort_unstable();
            items.dedup();
            for (x, &a) in items.iter().enumerate() {
                count[a as usize] += 1;
                for &c in &items[x + 1..] {
                    *pairs.entry((a, c)).or_default() += 1;
                }
            }
        }
        let mut lists: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
        for ((a, b), co) in pairs {
            if co < min_support.max(1) {
                continue;
            }
            let s = co as f32 / ((count[a as usize] as f32) * (count[b as usize] as f32)).sqrt();
            lists[a as usize].push((b, s));
            lists[b as usize].push((a, s));
        }
        let (mut indptr, mut partners, mut scores) = (vec![0], Vec::new(), Vec::new());
        for mut l in lists {
            best_first(&mut l);
            l.truncate(top_n);
            for (p, s) in l {
                partners.push(p);
                scores.push(s);
            }
            indptr.push(partners.len());
        }
        Self { indptr, partners, scores }
    }

    /// `item`'s partners, best first.
    pub fn of(&self, item: u32) -> Vec<(u32, f32)> {
        let i = item as usize;
        if i + 1 >= self.indptr.len() {
            return Vec::new();
        }
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        self.partners[a..b].iter().copied().zip(self.scores[a..b].iter().copied()).collect()
    }

    /// The history item whose partnership contributes most to `item`, if any.
    pub fn explain(&self, history: History<'_>, item: u32) -> Option<u32> {
        history
            .items
            .iter()
            .filter_map(|&h| self.of(h).into_iter().find(|p| p.0 == item).map(|p| (h, p.1)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(h, _)| h)
    }
}

impl Model for BoughtTogether {
    fn name(&self) -> &'static str {
        "together"
    }

    fn n_items(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    fn score(&self, _user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (p, &h) in history.items.iter().enumerate() {
            let w = history.recency_at(p);
            for (partner, s) in self.of(h) {
                if let Some(o) = out.get_mut(partner as usize) {
                    *o += w * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_bought_together_rank_first_and_single_coincidences_do_not_count() {
        // Phones (0) come with cases (1) and chargers (2); a lone order pairs 0 with 3.
        let mut baskets = vec![vec![0, 1], vec![0, 1, 2], vec![0, 2], vec![1, 0], vec![0, 3], vec![4, 5], vec![4, 5]];
        baskets.push(vec![0, 0, 1]);
        let t = BoughtTogether::fit(&baskets, 6, 10, 2);
        let p: Vec<u32> = t.of(0).into_iter().map(|x| x.0).collect();
        assert_eq!(p, vec![1, 2], "3 shares one order only");
        // co(0,1) = 4, n(0) = 6, n(1) = 4 → 4/√24.
        assert!((t.of(0)[0].1 - 4.0 / 24f32.sqrt()).abs() < 1e-6);
        assert_eq!(t.of(4), vec![(5, 1.0)]);
        assert!(t.of(3).is_empty() && t.of(99).is_empty());
        let h = History { items: &[0, 4], weights: &[1.0, 1.0], recency: None };
        let recs = t.recommend(None, h, 3, &crate::Filter::default());
        assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5, 1, 2]);
        assert_eq!(t.explain(h, 1), Some(0));
        assert_eq!(t.explain(h, 3), None);
    }
}
