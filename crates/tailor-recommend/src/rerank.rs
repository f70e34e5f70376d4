//! Re-ranking a candidate list after retrieval: maximal marginal relevance (Carbonell &
//! Goldstein 1998) for diversity, and a cap per category.

/// Maximal marginal relevance: repeatedly picks the candidate maximising
/// `λ · relevance − (1 − λ) · max similarity to the items already picked`. `candidates` are
/// (item, relevance) best first; `similarity(a, b)` in [0, 1]. `lambda = 1` keeps the order.
pub fn mmr(candidates: &[(u32, f32)], k: usize, lambda: f32, similarity: impl Fn(u32, u32) -> f32) -> Vec<(u32, f32)> {
    let mut left: Vec<(u32, f32)> = candidates.to_vec();
    let mut picked: Vec<(u32, f32)> = Vec::with_capacity(k.min(left.len()));
    // Running max similarity of each remaining candidate to the picked set.
    let mut max_sim = vec![0f32; left.len()];
    while picked.len() < k && !left.is_empty() {
        let mut best = 0;
        let mut best_value = f32::NEG_INFINITY;
        for (p, (_, rel)) in left.iter().enumerate() {
            let v = lambda * rel - (1.0 - lambda) * max_sim[p];
            if v > best_value {
                best_value = v;
                best = p;
            }
        }
        let chosen = left.remove(best);
        max_sim.remove(best);
        for (p, (item, _)) in left.iter().enumerate() {
            max_sim[p] = max_sim[p].max(similarity(chosen.0, *item));
        }
        picked.push(chosen);
    }
    picked
}

/// Keeps candidates in order but at most `cap` per category (`category(item)`; items without
/// one are not capped).
pub fn cap_per_category(
    candidates: &[(u32, f32)],
    k: usize,
    cap: usize,
    category: impl Fn(u32) -> Option<u32>,
) -> Vec<(u32, f32)> {
    let mut counts: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(k);
    for &(item, s) in candidates {
        if out.len() == k {
            break;
        }
        if let Some(c) = category(item) {
            let n = counts.entry(c).or_default();
            if *n >= cap {
                continue;
            }
            *n += 1;
        }
        out.push((item, s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mmr_trades_relevance_for_variety() {
        // Items 0 and 1 are near duplicates; 2 is different but a little less relevant.
        let cands = [(0, 1.0), (1, 0.99), (2, 0.9)];
        let sim = |a: u32, b: u32| if a.min(b) == 0 && a.max(b) == 1 { 1.0 } else { 0.0 };
        let order = |v: Vec<(u32, f32)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(order(mmr(&cands, 3, 1.0, sim)), vec![0, 1, 2]);
        assert_eq!(order(mmr(&cands, 3, 0.5, sim)), vec![0, 2, 1]);
    }

    #[test]
    fn category_cap() {
        let cands = [(0, 5.0), (1, 4.0), (2, 3.0), (3, 2.0)];
        let cat = |i: u32| if i < 3 { Some(7) } else { None };
        assert_eq!(cap_per_category(&cands, 3, 2, cat), vec![(0, 5.0), (1, 4.0), (3, 2.0)]);
    }

    proptest! {
        /// Re-ranking returns distinct candidates only, at most k.
        #[test]
        fn reranking_is_a_selection(rel in prop::collection::vec(0f32..1.0, 0..30), k in 0usize..10, lambda in 0f32..1.0) {
            let cands: Vec<(u32, f32)> = rel.iter().enumerate().map(|(i, r)| (i as u32, *r)).collect();
            let out = mmr(&cands, k, lambda, |a, b| if (a + b) % 3 == 0 { 0.8 } else { 0.1 });
            prop_assert_eq!(out.len(), k.min(cands.len()));
            let mut ids: Vec<u32> = out.iter().map(|e| e.0).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), out.len());
            let capped = cap_per_category(&cands, k, 2, |i| Some(i % 3));
            prop_assert!(capped.len() <= k);
            for c in 0..3 {
                prop_assert!(capped.iter().filter(|e| e.0 % 3 == c).count() <= 2);
            }
        }
    }
}
