//! Fairness and popularity bias of recommendation lists, user side and item side.
//!
//! Definitions (lists cut at k; `exposure` of a slot at rank r is 1 / log2(r + 1), the
//! position weight of NDCG, so a first place counts more than a tenth):
//!
//! - **User groups**: per group the mean NDCG@k and recall@k of its users (those with a test
//!   item), the gap max − min, and *UserMADranking* (Elliot; Deldjoo et al. 2020): the mean
//!   absolute difference of the groups' mean NDCG over all pairs of groups.
//! - **Providers** (e.g. brands) and **popularity bands**: each one's share of the exposure
//!   against its share of the catalog (items), of the training interactions and of the
//!   test interactions. *Statistical parity* of exposure is exposure share − catalog share;
//!   *equal opportunity* is exposure share / test share (1: exposed as much as it is
//!   relevant).
//! - **Popularity bands** from the training counts: items sorted by popularity, the head
//!   holds the first 20% of the interactions, the tail the last 20%, the middle the rest
//!   (items never seen in training are tail).
//! - **Popularity bias**: ARP, the mean over users of the mean training count of their
//!   listed items, and APLT, the mean over users of the share of their list in the long
//!   tail (every item outside the head) (Abdollahpouri et al. 2019).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

/// Metrics of one user group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupQuality {
    /// Group name.
    pub group: String,
    /// Users of the group with a test item.
    pub users: usize,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Mean recall@k.
    pub recall: f64,
}

/// Exposure of one provider or popularity band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure {
    /// Provider (brand) or band name.
    pub name: String,
    /// Share of the position-weighted exposure.
    pub exposure_share: f64,
    /// Share of the catalog's items.
    pub catalog_share: f64,
    /// Share of the training interactions.
    pub interaction_share: f64,
    /// Share of the test interactions.
    pub test_share: f64,
    /// exposure share − catalog share.
    pub statistical_parity: f64,
    /// exposure share / test share (None without test interactions).
    pub equal_opportunity: Option<f64>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    /// Cut-off.
    pub k: usize,
    /// Per user group (when groups are given), by name.
    pub groups: Vec<GroupQuality>,
    /// Max − min of the groups' mean NDCG.
    pub ndcg_gap: Option<f64>,
    /// Mean absolute pairwise difference of the groups' mean NDCG.
    pub user_mad_ranking: Option<f64>,
    /// Per provider (when providers are given), by exposure share.
    pub providers: Vec<Exposure>,
    /// Head, middle and tail.
    pub popularity_bands: Vec<Exposure>,
    /// Average recommendation popularity (mean training count of listed items).
    pub arp: f64,
    /// Average share of long-tail items in a list.
    pub aplt: f64,
}

/// What the report is computed from (external ids; lists best first).
pub struct Input<'a> {
    /// Training interactions (user, item).
    pub train: &'a [(&'a str, &'a str)],
    /// Or, instead, their count per item (what the report reads of them).
    pub train_counts: Option<&'a HashMap<String, u64>>,
    /// Test interactions (user, item).
    pub test: &'a [(&'a str, &'a str)],
    /// Each user's list, best first.
    pub lists: &'a [(&'a str, Vec<&'a str>)],
    /// The catalog's items (for catalog shares; the train and test items when empty).
    pub catalog: &'a [&'a str],
    /// User → group.
    pub groups: Option<&'a HashMap<String, String>>,
    /// Item → provider.
    pub providers: Option<&'a HashMap<String, String>>,
    /// Cut-off.
    pub k: usize,
}

fn position_weight(rank: usize) -> f64 {
    1.0 / ((rank + 2) as f64).log2()
}

/// Computes the report.
pub fn report(inp: &Input<'_>) -> FairnessReport {
    let k = inp.k.max(1);
    let mut pop: HashMap<&str, u64> = HashMap::new();
    for &(_, i) in inp.train {
        *pop.entry(i).or_default() += 1;
    }
    for (i, &n) in inp.train_counts.into_iter().flatten() {
        *pop.entry(i.as_str()).or_default() += n;
    }
    let mut relevant: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut test_count: HashMap<&str, u64> = HashMap::new();
    for &(u, i) in inp.test {
        relevant.entry(u).or_default().insert(i);
        *test_count.entry(i).or_default() += 1;
    }
    let mut catalog: Vec<&str> = if inp.catalog.is_empty() {
        pop.keys().chain(test_count.keys()).copied().collect()
    } else {
        inp.catalog.to_vec()
    };
    catalog.sort_unstable();
    catalog.dedup();

    // User side.
    let mut per_group: BTreeMap<&str, (usize, f64, f64)> = BTreeMap::new();
    if let Some(groups) = inp.groups {
        for (u, list) in inp.lists {
            let (Some(rel), Some(g)) = (relevant.get(u), groups.get(*u)) else { continue };
            let list = &list[..list.len().min(k)];
            let dcg: f64 =
                list.iter().enumerate().filter(|(_, i)| rel.contains(*i)).map(|(r, _)| position_weight(r)).sum();
            let ideal: f64 = (0..rel.len().min(k)).map(position_weight).sum();
            let hits = list.iter().filter(|i| rel.contains(*i)).count();
            let e = per_group.entry(g.as_str()).or_default();
            e.0 += 1;
            e.1 += dcg / ideal;
            e.2 += hits as f64 / rel.len() as f64;
        }
    }
    let groups: Vec<GroupQuality> = per_group
        .into_iter()
        .map(|(g, (n, ndcg, recall))| GroupQuality {
            group: g.to_owned(),
            users: n,
            ndcg: ndcg / n as f64,
            recall: recall / n as f64,
        })
        .collect();
    let (ndcg_gap, user_mad_ranking) = if groups.len() >= 2 {
        let v: Vec<f64> = groups.iter().map(|g| g.ndcg).collect();
        let gap = v.iter().copied().fold(f64::NEG_INFINITY, f64::max) - v.iter().copied().fold(f64::INFINITY, f64::min);
        let mut sum = 0.0;
        let mut pairs = 0usize;
        for a in 0..v.len() {
            for b in a + 1..v.len() {
                sum += (v[a] - v[b]).abs();
                pairs += 1;
            }
        }
        (Some(gap), Some(sum / pairs as f64))
    } else {
        (None, None)
    };

    // Popularity bands over the catalog, by training count (ties by id).
    let mut by_pop: Vec<(&str, u64)> = catalog.iter().map(|&i| (i, pop.get(i).copied().unwrap_or(0))).collect();
    by_pop.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total: u64 = by_pop.iter().map(|p| p.1).sum();
    let mut band: HashMap<&str, &'static str> = HashMap::new();
    let mut before = 0u64;
    for &(i, n) in &by_pop {
        // An item belongs to the band its first interaction falls in.
        let at = before as f64 / total.max(1) as f64;
        let b = if n == 0 || at >= 0.8 {
            "tail"
        } else if at < 0.2 {
            "head"
        } else {
            "middle"
        };
        band.insert(i, b);
        before += n;
    }

    // Item side.
    let mut exposure: HashMap<&str, f64> = HashMap::new();
    let (mut arp, mut aplt, mut users) = (0.0, 0.0, 0usize);
    for (_, list) in inp.lists {
        let list = &list[..list.len().min(k)];
        if list.is_empty() {
            continue;
        }
        users += 1;
        for (r, i) in list.iter().enumerate() {
            *exposure.entry(i).or_default() += position_weight(r);
        }
        arp += list.iter().map(|i| pop.get(i).copied().unwrap_or(0) as f64).sum::<f64>() / list.len() as f64;
        aplt += list.iter().filter(|i| band.get(*i).copied().unwrap_or("tail") != "head").count() as f64
            / list.len() as f64;
    }
    let shares = |key: &dyn Fn(&str) -> Option<String>| -> Vec<Exposure> {
        let mut acc: BTreeMap<String, [f64; 4]> = BTreeMap::new();
        let mut add = |item: &str, slot: usize, v: f64| {
            if let Some(name) = key(item) {
                acc.entry(name).or_default()[slot] += v;
            }
        };
        for (&i, &e) in &exposure {
            add(i, 0, e);
        }
        for &i in &catalog {
            add(i, 1, 1.0);
        }
        for (&i, &n) in &pop {
            add(i, 2, n as f64);
        }
        for (&i, &n) in &test_count {
            add(i, 3, n as f64);
        }
        let totals: [f64; 4] = std::array::from_fn(|s| acc.values().map(|v| v[s]).sum::<f64>());
        let share = |v: f64, t: f64| if t > 0.0 { v / t } else { 0.0 };
        let mut out: Vec<Exposure> = acc
            .into_iter()
            .map(|(name, v)| {
                let (e, c, n, t) =
                    (share(v[0], totals[0]), share(v[1], totals[1]), share(v[2], totals[2]), share(v[3], totals[3]));
                Exposure {
                    name,
                    exposure_share: e,
                    catalog_share: c,
                    interaction_share: n,
                    test_share: t,
                    statistical_parity: e - c,
                    equal_opportunity: (t > 0.0).then(|| e / t),
                }
            })
            .collect();
        out.sort_by(|a, b| b.exposure_share.total_cmp(&a.exposure_share).then(a.name.cmp(&b.name)));
        out
    };
    let providers = match inp.providers {
        Some(p) => shares(&|i| p.get(i).cloned()),
        None => Vec::new(),
    };
    let mut popularity_bands = shares(&|i| Some(band.get(i).copied().unwrap_or("tail").to_owned()));
    let order = |n: &str| ["head", "middle", "tail"].iter().position(|b| *b == n).unwrap_or(3);
    popularity_bands.sort_by_key(|b| order(&b.name));
    let n = users.max(1) as f64;
    FairnessReport { k, groups, ndcg_gap, user_mad_ranking, providers, popularity_bands, arp: arp / n, aplt: aplt / n }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two users, three groups of nothing but arithmetic: every figure by hand.
    #[test]
    fn a_small_fixture_by_hand() {
        // Train counts: a 6, b 2, c 1, d 1 (10). Head: a (its first interaction is at 0%);
        // b starts at 60% (middle), c at 80% and d at 90% (tail); e unseen (tail).
        let mut train = Vec::new();
        for (i, n) in [("a", 6), ("b", 2), ("c", 1), ("d", 1)] {
            for _ in 0..n {
                train.push(("x", i));
            }
        }
        let test = vec![("u1", "b"), ("u2", "a"), ("u2", "e")];
        let lists = vec![("u1", vec!["a", "b"]), ("u2", vec!["e", "c"])];
        let groups: HashMap<String, String> =
            [("u1", "young"), ("u2", "old")].iter().map(|(u, g)| (u.to_string(), g.to_string())).collect();
        let providers: HashMap<String, String> = [("a", "P"), ("b", "P"), ("c", "Q"), ("d", "Q"), ("e", "Q")]
            .iter()
            .map(|(i, p)| (i.to_string(), p.to_string()))
            .collect();
        let catalog = ["a", "b", "c", "d", "e"];
        let r = report(&Input {
            train: &train,
            train_counts: None,
            test: &test,
            lists: &lists,
            catalog: &catalog,
            groups: Some(&groups),
            providers: Some(&providers),
            k: 2,
        });
        let w1 = 1.0 / 3f64.log2();
        // u1: hit at rank 2 of 1 relevant: NDCG = w1 / 1, recall 1. u2: hit at rank 1 of 2
        // relevant: NDCG = 1 / (1 + w1), recall 0.5.
        let young = r.groups.iter().find(|g| g.group == "young").expect("young");
        let old = r.groups.iter().find(|g| g.group == "old").expect("old");
        assert!((young.ndcg - w1).abs() < 1e-12 && young.recall == 1.0);
        assert!((old.ndcg - 1.0 / (1.0 + w1)).abs() < 1e-12 && old.recall == 0.5);
        assert!((r.ndcg_gap.expect("gap") - (1.0 / (1.0 + w1) - w1).abs()).abs() < 1e-12);
        assert_eq!(r.ndcg_gap, r.user_mad_ranking, "two groups: one pair");
        // Exposure: a 1, b w1, e 1, c w1; total 2 + 2 w1. P: a + b.
        let total = 2.0 + 2.0 * w1;
        let p = r.providers.iter().find(|x| x.name == "P").expect("P");
        assert!((p.exposure_share - (1.0 + w1) / total).abs() < 1e-12);
        assert!((p.catalog_share - 0.4).abs() < 1e-12 && (p.interaction_share - 0.8).abs() < 1e-12);
        assert!((p.test_share - 2.0 / 3.0).abs() < 1e-12);
        assert!((p.statistical_parity - (p.exposure_share - 0.4)).abs() < 1e-12);
        assert!((p.equal_opportunity.expect("eo") - p.exposure_share * 1.5).abs() < 1e-12);
        let bands: Vec<&str> = r.popularity_bands.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(bands, ["head", "middle", "tail"]);
        let head = &r.popularity_bands[0];
        assert!((head.exposure_share - 1.0 / total).abs() < 1e-12 && (head.catalog_share - 0.2).abs() < 1e-12);
        // ARP: u1 (6 + 2) / 2 = 4, u2 (0 + 1) / 2 = 0.5 → 2.25. APLT: u1 1/2, u2 2/2 → 0.75.
        assert!((r.arp - 2.25).abs() < 1e-12 && (r.aplt - 0.75).abs() < 1e-12);
    }
}
