//! Top-K metrics exactly as `evaluate.py` computes them: per user with at least one test
//! item, recommendations ordered by (rank, item id), a repeated item keeps its best rank, the
//! first K scored; precision, recall, NDCG (binary gains), MAP (divided by min(|test|, K)),
//! hit rate averaged over those users; coverage, novelty and sanity counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// The metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Mean hits / K.
    pub precision: f64,
    /// Mean hits / |test|.
    pub recall: f64,
    /// Mean NDCG@K.
    pub ndcg: f64,
    /// Mean average precision@K.
    pub map: f64,
    /// Share of users with a hit.
    pub hit_rate: f64,
    /// Mean reciprocal rank of the first hit within K (0 without one).
    #[serde(default)]
    pub mrr: f64,
    /// Intra-list diversity: mean over users of the mean `1 − cosine` between the train
    /// audiences (sets of users) of each pair of recommended items known in train; 0 for
    /// lists of near-duplicates, 1 for items nobody has used together.
    #[serde(default)]
    pub diversity: Option<f64>,
    /// List length the metrics are cut at (NDCG@k, recall@k).
    pub k: usize,
    /// Users scored (with a test item).
    pub n_users: usize,
    /// Of which without any recommendation.
    pub users_without_recs: usize,
    /// Distinct recommended items / distinct train items.
    pub coverage: f64,
    /// Mean −log2(train count / train rows) of recommended items known in train.
    pub novelty: Option<f64>,
    /// Gini coefficient of how often each train item was recommended (0: every item equally
    /// exposed; 1: one item gets all exposure).
    pub gini_exposure: f64,
    /// Mean train count of recommended items / mean train count of train items (1: no bias
    /// towards popular items; above 1: favours them).
    pub popularity_bias: Option<f64>,
    /// Recommended items in the user's train set.
    pub train_leaks: usize,
    /// Recommended items absent from train.
    pub rec_items_not_in_train: usize,
    /// Repeated (user, item) rows in the recommendations.
    pub duplicate_recs: usize,
}

/// Scores `recs` (user, item, rank) against `test` (user, item) pairs, with `train` pairs
/// for leaks, coverage and novelty.
pub fn evaluate<'a>(
    train: impl IntoIterator<Item = (&'a str, &'a str)>,
    test: impl IntoIterator<Item = (&'a str, &'a str)>,
    recs: impl IntoIterator<Item = (&'a str, &'a str, f64)>,
    k: usize,
) -> Report {
    let mut seen: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut pop: HashMap<&str, usize> = HashMap::new();
    for (u, i) in train {
        seen.entry(u).or_default().insert(i);
        *pop.entry(i).or_default() += 1;
    }
    let mut relevant: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (u, i) in test {
        relevant.entry(u).or_default().insert(i);
    }
    let mut ranked: HashMap<&str, Vec<(f64, &str)>> = HashMap::new();
    for (u, i, r) in recs {
        if relevant.contains_key(u) {
            ranked.entry(u).or_default().push((r, i));
        }
    }
    let n_train: usize = pop.values().sum();
    let discount: Vec<f64> = (0..k).map(|p| 1.0 / ((p + 2) as f64).log2()).collect();
    let mut sums = [0f64; 6];
    let mut audience: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (u, items) in &seen {
        for i in items {
            audience.entry(i).or_default().insert(u);
        }
    }
    let mut diversity = Vec::new();
    let mut rec_items: HashSet<&str> = HashSet::new();
    let mut exposure: HashMap<&str, usize> = HashMap::new();
    let mut rec_pop = Vec::new();
    let mut novelty = Vec::new();
    let (mut leaks, mut unknown, mut dups, mut no_recs) = (0, 0, 0, 0);
    let empty = HashSet::new();
    for (u, rel) in &relevant {
        let mut list = ranked.remove(u).unwrap_or_default();
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        let mut used = HashSet::new();
        let mut top = Vec::new();
        for (_, i) in list {
            if used.insert(i) {
                top.push(i);
            } else {
                dups += 1;
            }
        }
        top.truncate(k);
        no_recs += usize::from(top.is_empty());
        let user_seen = seen.get(u).unwrap_or(&empty);
        let (mut hits, mut dcg, mut ap, mut rr) = (0f64, 0f64, 0f64, 0f64);
        for (p, i) in top.iter().enumerate() {
            rec_items.insert(i);
            if let Some(&c) = pop.get(i) {
                *exposure.entry(i).or_default() += 1;
                rec_pop.push(c as f64);
            }
            leaks += usize::from(user_seen.contains(i));
            match pop.get(i) {
                Some(&c) => novelty.push(-(c as f64 / n_train as f64).log2()),
                None => unknown += 1,
            }
            if rel.contains(i) {
                if hits == 0.0 {
                    rr = 1.0 / (p + 1) as f64;
                }
                hits += 1.0;
                dcg += discount[p];
                ap += hits / (p + 1) as f64;
            }
        }
        let ideal = rel.len().min(k);
        let idcg: f64 = discount[..ideal].iter().sum();
        sums[0] += hits / k as f64;
        sums[1] += hits / rel.len() as f64;
        sums[2] += if idcg > 0.0 { dcg / idcg } else { 0.0 };
        sums[3] += if ideal > 0 { ap / ideal as f64 } else { 0.0 };
        sums[4] += f64::from(u8::from(hits > 0.0));
        sums[5] += rr;
        if let Some(d) = intra_list_diversity(&top, &audience) {
            diversity.push(d);
        }
    }
    let n = relevant.len();
    let mean = |s: f64| if n > 0 { s / n as f64 } else { 0.0 };
    // Gini over all train items (unrecommended ones count as zero exposure).
    let mut counts: Vec<f64> = pop.keys().map(|i| exposure.get(i).copied().unwrap_or(0) as f64).collect();
    let gini_exposure = gini(&mut counts);
    let catalog_mean = n_train as f64 / pop.len().max(1) as f64;
    let popularity_bias =
        (!rec_pop.is_empty()).then(|| rec_pop.iter().sum::<f64>() / rec_pop.len() as f64 / catalog_mean);
    Report {
        precision: mean(sums[0]),
        recall: mean(sums[1]),
        ndcg: mean(sums[2]),
        map: mean(sums[3]),
        hit_rate: mean(sums[4]),
        mrr: mean(sums[5]),
        diversity: (!diversity.is_empty()).then(|| diversity.iter().sum::<f64>() / diversity.len() as f64),
        k,
        n_users: n,
        users_without_recs: no_recs,
        coverage: if pop.is_empty() { 0.0 } else { rec_items.len() as f64 / pop.len() as f64 },
        novelty: (!novelty.is_empty()).then(|| novelty.iter().sum::<f64>() / novelty.len() as f64),
        gini_exposure,
        popularity_bias,
        train_leaks: leaks,
        rec_items_not_in_train: unknown,
        duplicate_recs: dups,
    }
}

/// Gini coefficient of exposure counts (sorted in place): 0 when every item is exposed
/// equally, (m − 1)/m when one of m items takes everything; 0 without exposure.
pub fn gini(counts: &mut [f64]) -> f64 {
    counts.sort_by(f64::total_cmp);
    let total: f64 = counts.iter().sum();
    let m = counts.len() as f64;
    if total > 0.0 && m > 1.0 {
        let weighted: f64 = counts.iter().enumerate().map(|(r, c)| (2.0 * (r as f64 + 1.0) - m - 1.0) * c).sum();
        weighted / (m * total)
    } else {
        0.0
    }
}

/// Root mean squared error of (predicted, actual) pairs; `None` without pairs.
pub fn rmse(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for (p, a) in pairs {
        sum += (p - a) * (p - a);
        n += 1;
    }
    (n > 0).then(|| (sum / n as f64).sqrt())
}

/// Mean `1 − cosine` of the audiences of every pair of listed items known in train.
fn intra_list_diversity(top: &[&str], audience: &HashMap<&str, HashSet<&str>>) -> Option<f64> {
    let known: Vec<&HashSet<&str>> = top.iter().filter_map(|i| audience.get(i)).collect();
    let (mut sum, mut pairs) = (0f64, 0usize);
    for (a, x) in known.iter().enumerate() {
        for y in &known[a + 1..] {
            let (small, large) = if x.len() <= y.len() { (x, y) } else { (y, x) };
            let common = small.iter().filter(|u| large.contains(*u)).count() as f64;
            sum += 1.0 - common / ((x.len() * y.len()) as f64).sqrt();
            pairs += 1;
        }
    }
    (pairs > 0).then(|| sum / pairs as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed_case() {
        // u1: test {a, b}; recs c, a, b → hits at 2 and 3.
        let train = [("u1", "c"), ("u2", "a")];
        let test = [("u1", "a"), ("u1", "b"), ("u2", "b")];
        let recs = [("u1", "c", 1.0), ("u1", "a", 2.0), ("u1", "b", 3.0), ("u1", "a", 4.0)];
        let r = evaluate(train, test, recs, 3);
        let d = |p: f64| 1.0 / (p + 1.0).log2();
        let ndcg_u1 = (d(2.0) + d(3.0)) / (d(1.0) + d(2.0));
        assert!((r.ndcg - ndcg_u1 / 2.0).abs() < 1e-12);
        assert!((r.map - (1.0 / 2.0 + 2.0 / 3.0) / 2.0 / 2.0).abs() < 1e-12);
        assert_eq!((r.train_leaks, r.duplicate_recs, r.users_without_recs, r.n_users), (1, 1, 1, 2));
        assert_eq!(r.rec_items_not_in_train, 1, "b is not in train");
        // Train items a, c; exposure a: 1, c: 1 → equal → Gini 0; both have count 1 → bias 1.
        assert_eq!((r.gini_exposure, r.popularity_bias), (0.0, Some(1.0)));
        assert_eq!(rmse([(3.0, 5.0), (4.0, 4.0)]), Some(2f64.sqrt()));
        assert_eq!(rmse(std::iter::empty()), None);
        // u1's first hit at rank 2; u2 has no recommendation.
        assert!((r.mrr - 0.5 / 2.0).abs() < 1e-12);
        // u1's list: c (audience {u1}), a ({u2}), b (not in train): one pair, disjoint.
        assert_eq!(r.diversity, Some(1.0));
    }

    #[test]
    fn gini_of_concentrated_exposure() {
        // Four train items; every user is recommended item "a" only.
        let train = [("x", "a"), ("x", "b"), ("y", "c"), ("y", "d"), ("z", "a")];
        let test = [("u1", "q"), ("u2", "q")];
        let recs = [("u1", "a", 1.0), ("u2", "a", 1.0)];
        let r = evaluate(train, test, recs, 1);
        // Sorted exposure [0, 0, 0, 2]: Gini = (2·4 − 4 − 1)·2 / (4·2) = 0.75 (the maximum for 4 items).
        assert!((r.gini_exposure - 0.75).abs() < 1e-12);
        // "a" has 2 train rows; the catalog mean is 5/4 → bias 1.6.
        assert_eq!(r.popularity_bias, Some(1.6));
    }

    /// A naive reimplementation (positions via index lookups, nothing shared).
    /// (NDCG, MRR) computed the obvious way.
    fn naive_ndcg(test: &[(u8, u8)], recs: &[(u8, u8, u8)], k: usize) -> (f64, f64) {
        let mut users: Vec<u8> = test.iter().map(|t| t.0).collect();
        users.sort_unstable();
        users.dedup();
        let (mut total, mut total_rr) = (0.0, 0.0);
        for u in &users {
            let rel: Vec<u8> = test.iter().filter(|t| t.0 == *u).map(|t| t.1).collect();
            let mut mine: Vec<(u8, String)> =
                recs.iter().filter(|r| r.0 == *u).map(|r| (r.2, r.1.to_string())).collect();
            mine.sort();
            let mut top: Vec<String> = Vec::new();
            for (_, i) in mine {
                if !top.contains(&i) {
                    top.push(i);
                }
            }
            top.truncate(k);
            let mut dcg = 0.0;
            for (p, i) in top.iter().enumerate() {
                if rel.iter().any(|x| x.to_string() == *i) {
                    dcg += 1.0 / ((p + 2) as f64).log2();
                }
            }
            if let Some(p) = top.iter().position(|i| rel.iter().any(|x| x.to_string() == *i)) {
                total_rr += 1.0 / (p + 1) as f64;
            }
            let mut rel_u = rel.clone();
            rel_u.sort_unstable();
            rel_u.dedup();
            let idcg: f64 = (0..rel_u.len().min(k)).map(|p| 1.0 / ((p + 2) as f64).log2()).sum();
            total += dcg / idcg;
        }
        if users.is_empty() { (0.0, 0.0) } else { (total / users.len() as f64, total_rr / users.len() as f64) }
    }

    proptest! {
        #[test]
        fn ndcg_equals_a_naive_implementation(
            test in prop::collection::vec((0u8..5, 0u8..12), 0..30),
            recs in prop::collection::vec((0u8..6, 0u8..12, 1u8..15), 0..80),
            k in 1usize..10,
        ) {
            let test_s: Vec<(String, String)> = test.iter().map(|t| (t.0.to_string(), t.1.to_string())).collect();
            let recs_s: Vec<(String, String, f64)> = recs.iter().map(|r| (r.0.to_string(), r.1.to_string(), f64::from(r.2))).collect();
            let r = evaluate(
                std::iter::empty(),
                test_s.iter().map(|(u, i)| (u.as_str(), i.as_str())),
                recs_s.iter().map(|(u, i, r)| (u.as_str(), i.as_str(), *r)),
                k,
            );
            let (ndcg, mrr) = naive_ndcg(&test, &recs, k);
            prop_assert!((r.ndcg - ndcg).abs() < 1e-12);
            prop_assert!((r.mrr - mrr).abs() < 1e-12);
        }
    }
}
