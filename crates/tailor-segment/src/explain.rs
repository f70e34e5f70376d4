//! Explaining segments: a shallow decision tree (CART, Gini) from raw features to segment
//! labels, read back as plain rules with precision and coverage; automatic names from the
//! most distinctive standardised centroid features; per-segment summaries.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError, check_matrix};

/// Decision tree parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeParams {
    /// Maximum depth (the issue asks for ≤ 3 so that rules stay readable).
    pub max_depth: usize,
    /// Fewest rows in a leaf.
    pub min_leaf: usize,
}

impl Default for TreeParams {
    fn default() -> Self {
        Self { max_depth: 3, min_leaf: 5 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    Split { feature: usize, threshold: f64, left: usize, right: usize },
    Leaf { counts: Vec<usize> },
}

/// A fitted classification tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    nodes: Vec<Node>,
    k: usize,
}

/// One condition of a rule: `feature <= threshold` or `feature > threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Index of the feature column the condition tests.
    pub feature: usize,
    /// `true` for `<=`, `false` for `>`.
    pub le: bool,
    /// Threshold (midpoint between two observed values).
    pub threshold: f64,
}

/// A leaf read as a rule for one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafRule {
    /// Conditions, at most one `<=` and one `>` per feature.
    pub conditions: Vec<Condition>,
    /// The segment the leaf predicts (its majority).
    pub class: usize,
    /// Share of the leaf's rows that are in the segment.
    pub precision: f64,
    /// Share of the segment's rows that fall in the leaf.
    pub coverage: f64,
    /// Rows in the leaf.
    pub support: usize,
}

fn gini(counts: &[usize], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let nf = n as f64;
    1.0 - counts.iter().map(|&c| (c as f64 / nf).powi(2)).sum::<f64>()
}

impl TreeParams {
    /// Fits a tree on the `d` columns of `x` to `labels` (each `< k`).
    pub fn fit(&self, x: &[f64], d: usize, labels: &[usize], k: usize) -> Result<Tree> {
        let n = check_matrix(x, d)?;
        if labels.len() != n {
            return Err(SegmentError::InvalidData(format!("{} labels for {n} rows", labels.len())));
        }
        if let Some(l) = labels.iter().find(|l| **l >= k) {
            return Err(SegmentError::InvalidData(format!("label {l} is not below k = {k}")));
        }
        let mut tree = Tree { nodes: Vec::new(), k };
        let rows: Vec<usize> = (0..n).collect();
        self.grow(x, d, labels, rows, 0, &mut tree);
        Ok(tree)
    }

    fn grow(&self, x: &[f64], d: usize, labels: &[usize], rows: Vec<usize>, depth: usize, tree: &mut Tree) -> usize {
        let k = tree.k;
        let mut counts = vec![0usize; k];
        rows.iter().for_each(|&r| counts[labels[r]] += 1);
        let id = tree.nodes.len();
        tree.nodes.push(Node::Leaf { counts: counts.clone() });
        let n = rows.len();
        let pure = counts.iter().filter(|c| **c > 0).count() <= 1;
        if depth >= self.max_depth || pure || n < 2 * self.min_leaf.max(1) {
            return id;
        }
        let parent = gini(&counts, n);
        let mut best: Option<(f64, usize, f64)> = None;
        let mut order = rows.clone();
        let mut left = vec![0usize; k];
        for f in 0..d {
            order.sort_by(|&a, &b| x[a * d + f].total_cmp(&x[b * d + f]));
            left.iter_mut().for_each(|c| *c = 0);
            for i in 0..n - 1 {
                left[labels[order[i]]] += 1;
                let (v, next) = (x[order[i] * d + f], x[order[i + 1] * d + f]);
                let nl = i + 1;
                if v == next || nl < self.min_leaf.max(1) || n - nl < self.min_leaf.max(1) {
                    continue;
                }
                let gl = gini(&left, nl);
                let right: Vec<usize> = counts.iter().zip(&left).map(|(c, l)| c - l).collect();
                let gr = gini(&right, n - nl);
                let w = (nl as f64 * gl + (n - nl) as f64 * gr) / n as f64;
                if parent - w > 1e-12 && best.is_none_or(|(b, _, _)| w < b - 1e-15) {
                    best = Some((w, f, v + (next - v) / 2.0));
                }
            }
        }
        let Some((_, feature, threshold)) = best else {
            return id;
        };
        let (l, r): (Vec<usize>, Vec<usize>) = rows.into_iter().partition(|&i| x[i * d + feature] <= threshold);
        let left_id = self.grow(x, d, labels, l, depth + 1, tree);
        let right_id = self.grow(x, d, labels, r, depth + 1, tree);
        tree.nodes[id] = Node::Split { feature, threshold, left: left_id, right: right_id };
        id
    }
}

impl Tree {
    /// The predicted segment of a row.
    pub fn predict(&self, row: &[f64]) -> usize {
        let mut id = 0;
        loop {
            match self.nodes.get(id) {
                Some(Node::Split { feature, threshold, left, right }) => {
                    id = if row.get(*feature).is_some_and(|v| v <= threshold) { *left } else { *right };
                }
                Some(Node::Leaf { counts }) => return argmax(counts),
                None => return 0,
            }
        }
    }

    /// Every leaf as a rule for its majority segment, best (most covering) first per segment.
    pub fn rules(&self) -> Vec<LeafRule> {
        let mut sizes = vec![0usize; self.k];
        let mut out = Vec::new();
        self.walk(0, &mut Vec::new(), &mut out);
        for r in &out {
            if let Some(Node::Leaf { counts }) = self.nodes.get(r.1) {
                sizes.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
            }
        }
        let mut rules: Vec<LeafRule> = out
            .into_iter()
            .filter_map(|(conds, id)| {
                let Some(Node::Leaf { counts }) = self.nodes.get(id) else { return None };
                let support: usize = counts.iter().sum();
                let class = argmax(counts);
                (support > 0).then(|| LeafRule {
                    conditions: simplify(&conds),
                    class,
                    precision: counts[class] as f64 / support as f64,
                    coverage: counts[class] as f64 / sizes[class].max(1) as f64,
                    support,
                })
            })
            .collect();
        rules.sort_by(|a, b| a.class.cmp(&b.class).then(b.coverage.total_cmp(&a.coverage)));
        rules
    }

    fn walk(&self, id: usize, path: &mut Vec<Condition>, out: &mut Vec<(Vec<Condition>, usize)>) {
        match self.nodes.get(id) {
            Some(Node::Split { feature, threshold, left, right }) => {
                path.push(Condition { feature: *feature, le: true, threshold: *threshold });
                self.walk(*left, path, out);
                path.pop();
                path.push(Condition { feature: *feature, le: false, threshold: *threshold });
                self.walk(*right, path, out);
                path.pop();
            }
            Some(Node::Leaf { .. }) => out.push((path.clone(), id)),
            None => {}
        }
    }

    /// Share of rows whose predicted segment is their label.
    pub fn accuracy(&self, x: &[f64], d: usize, labels: &[usize]) -> f64 {
        let hits = x.chunks_exact(d).zip(labels).filter(|(r, l)| self.predict(r) == **l).count();
        hits as f64 / labels.len().max(1) as f64
    }
}

fn argmax(counts: &[usize]) -> usize {
    let mut best = 0;
    for (i, c) in counts.iter().enumerate() {
        if *c > counts[best] {
            best = i;
        }
    }
    best
}

/// Keeps the tightest `<=` and `>` per feature, in first-appearance order.
fn simplify(conds: &[Condition]) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::new();
    for c in conds {
        if let Some(o) = out.iter_mut().find(|o| o.feature == c.feature && o.le == c.le) {
            o.threshold = if c.le { o.threshold.min(c.threshold) } else { o.threshold.max(c.threshold) };
        } else {
            out.push(*c);
        }
    }
    out
}

/// A number for people: few significant digits, no trailing zeros.
pub fn pretty(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// `monetary > 512 and recency_days <= 20.5`.
pub fn render(conds: &[Condition], names: &[String]) -> String {
    if conds.is_empty() {
        return "everyone".into();
    }
    conds
        .iter()
        .map(|c| {
            let name = names.get(c.feature).map_or("?", String::as_str);
            format!("{name} {} {}", if c.le { "<=" } else { ">" }, pretty(c.threshold))
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Words for a feature's high and low side, for automatic names.
fn words(feature: &str) -> (String, String) {
    let pair = |h: &str, l: &str| (h.to_owned(), l.to_owned());
    match feature {
        "recency_days" => pair("lapsed", "recent"),
        "frequency" => pair("frequent buyer", "rare buyer"),
        "monetary" => pair("high spend", "low spend"),
        "aov" => pair("high AOV", "low AOV"),
        "sessions" => pair("many visits", "few visits"),
        "visit_frequency" => pair("frequent visitor", "rare visitor"),
        "session_duration_s" => pair("long sessions", "short sessions"),
        "views_per_session" => pair("deep browser", "quick look"),
        "cart_rate" => pair("carts a lot", "rarely carts"),
        "cart_to_purchase" => pair("converts", "abandons carts"),
        "return_rate" => pair("returns often", "keeps purchases"),
        "discount_share" => pair("discount hunter", "pays full price"),
        "price_percentile" => pair("premium", "budget"),
        "new_item_share" => pair("new arrivals", "established items"),
        "brand_concentration" => pair("brand-loyal", "brand-agnostic"),
        "tod_night" => pair("night owl", "not at night"),
        "tod_morning" => pair("mornings", "not mornings"),
        "tod_afternoon" => pair("afternoons", "not afternoons"),
        "tod_evening" => pair("evenings", "not evenings"),
        "weekend_share" => pair("weekends", "weekdays"),
        "device_mobile" => pair("mobile", "not mobile"),
        "device_desktop" => pair("desktop", "not desktop"),
        "device_tablet" => pair("tablet", "not tablet"),
        "age" => pair("older", "younger"),
        other => match other.strip_prefix("cat_") {
            Some(c) => (format!("{} fan", c.replace('_', " ")), format!("little {}", c.replace('_', " "))),
            None => (format!("high {other}"), format!("low {other}")),
        },
    }
}

/// A name from the `parts` most distinctive standardised centroid coordinates (|z| ≥ 0.25):
/// `"high AOV · frequent buyer · recent"`. `names[j]` names coordinate `j`.
pub fn auto_name(centroid_z: &[f64], names: &[String], parts: usize) -> String {
    let mut idx: Vec<usize> = (0..centroid_z.len().min(names.len())).collect();
    idx.sort_by(|&a, &b| centroid_z[b].abs().total_cmp(&centroid_z[a].abs()).then(a.cmp(&b)));
    let words: Vec<String> = idx
        .into_iter()
        .filter(|&j| centroid_z[j].abs() >= 0.25)
        .take(parts)
        .map(|j| {
            let (h, l) = words(&names[j]);
            if centroid_z[j] > 0.0 { h } else { l }
        })
        .collect();
    if words.is_empty() { "average".into() } else { words.join(" · ") }
}

/// Mean of the standardised (population z-score) features of each segment's members.
pub fn standardized_centroids(x: &[f64], d: usize, labels: &[usize], k: usize) -> Result<Vec<Vec<f64>>> {
    let n = check_matrix(x, d)?;
    let z = crate::scale::ZScore::fit(x, d)?;
    let mut sums = vec![vec![0.0; d]; k];
    let mut counts = vec![0usize; k];
    let mut row = vec![0.0; d];
    for i in 0..n {
        let Some(l) = labels.get(i).filter(|l| **l < k) else { continue };
        row.copy_from_slice(&x[i * d..(i + 1) * d]);
        z.transform(&mut row);
        sums[*l].iter_mut().zip(&row).for_each(|(s, v)| *s += v);
        counts[*l] += 1;
    }
    for (s, c) in sums.iter_mut().zip(&counts) {
        s.iter_mut().for_each(|v| *v /= (*c).max(1) as f64);
    }
    Ok(sums)
}

/// What a segment looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSummary {
    /// The segment summarised.
    pub name: String,
    /// How many users are in the segment.
    pub size: usize,
    /// Members / population.
    pub share: f64,
    /// Mean days since the last purchase.
    pub recency_days: f64,
    /// Mean orders.
    pub frequency: f64,
    /// Mean revenue net of returns.
    pub monetary: f64,
    /// Mean order value over the members' orders (Σ revenue / Σ orders).
    pub aov: f64,
    /// The three categories with the largest mean share.
    pub top_categories: Vec<(String, f64)>,
    /// Most common main device.
    pub main_device: Option<String>,
    /// Mean age of the members whose age is known.
    pub age: Option<f64>,
    /// Mean value expected from a member in the next 90 days (BG/NBD × Gamma-Gamma; 0 when
    /// the population had no models).
    #[serde(default)]
    pub clv_90d: f64,
    /// Mean probability that a member is still active.
    #[serde(default)]
    pub p_alive: f64,
    /// Gender mix (share per value, largest first).
    pub gender: Vec<(String, f64)>,
    /// Urban/suburban/rural mix.
    pub urbanicity: Vec<(String, f64)>,
}

fn mix(values: &[Option<String>], rows: &[usize]) -> Vec<(String, f64)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for &r in rows {
        if let Some(Some(v)) = values.get(r) {
            *counts.entry(v.as_str()).or_default() += 1;
        }
    }
    let total: usize = counts.values().sum();
    let mut v: Vec<(String, f64)> =
        counts.into_iter().map(|(k, c)| (k.to_owned(), c as f64 / total.max(1) as f64)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Summaries of segments given as (name, member rows of `t`).
pub fn summarize(t: &crate::features::FeatureTable, segments: &[(String, Vec<usize>)]) -> Vec<SegmentSummary> {
    let n = t.users.len().max(1) as f64;
    let col = |name: &str| t.column(name);
    let mean = |rows: &[usize], c: Option<usize>| -> f64 {
        let Some(c) = c else { return 0.0 };
        rows.iter().map(|&r| t.row(r)[c]).sum::<f64>() / rows.len().max(1) as f64
    };
    let cat = |name: &str| t.categorical_column(name).and_then(|c| t.categorical.get(c));
    segments
        .iter()
        .map(|(name, rows)| {
            let orders: f64 = col("frequency").map_or(0.0, |c| rows.iter().map(|&r| t.row(r)[c]).sum());
            let gross: f64 = match (col("aov"), col("frequency")) {
                (Some(a), Some(f)) => rows.iter().map(|&r| t.row(r)[a] * t.row(r)[f]).sum(),
                _ => 0.0,
            };
            let mut cats: Vec<(String, f64)> = t
                .top_categories
                .iter()
                .map(|c| (c.clone(), mean(rows, col(&format!("cat_{}", crate::features::slug(c))))))
                .collect();
            cats.sort_by(|a, b| b.1.total_cmp(&a.1));
            cats.truncate(3);
            SegmentSummary {
                name: name.clone(),
                size: rows.len(),
                share: rows.len() as f64 / n,
                recency_days: mean(rows, col("recency_days")),
                frequency: mean(rows, col("frequency")),
                monetary: mean(rows, col("monetary")),
                clv_90d: mean(rows, col("clv_90d")),
                p_alive: mean(rows, col("p_alive")),
                aov: if orders > 0.0 { gross / orders } else { 0.0 },
                top_categories: cats,
                main_device: cat("main_device").and_then(|v| mix(v, rows).into_iter().next().map(|(k, _)| k)),
                age: col("age").and_then(|c| {
                    let known: Vec<f64> = rows
                        .iter()
                        .filter(|&&r| t.age_known.get(r).copied().unwrap_or(false))
                        .map(|&r| t.row(r)[c])
                        .collect();
                    (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
                }),
                gender: cat("gender").map(|v| mix(v, rows)).unwrap_or_default(),
                urbanicity: cat("urbanicity").map(|v| mix(v, rows)).unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_finds_the_separating_rules() {
        // Three groups: spend > 100 → 0; otherwise recency <= 30 → 1, else 2.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..300 {
            let spend = f64::from(i % 200);
            let recency = f64::from((i * 7) % 90);
            x.extend([spend, recency, f64::from(i % 5)]);
            y.push(if spend > 100.0 {
                0
            } else if recency <= 30.0 {
                1
            } else {
                2
            });
        }
        let t = TreeParams::default().fit(&x, 3, &y, 3).expect("fits");
        assert_eq!(t.accuracy(&x, 3, &y), 1.0);
        let names: Vec<String> = ["monetary", "recency_days", "noise"].map(String::from).to_vec();
        let rules = t.rules();
        let text: Vec<String> = rules
            .iter()
            .map(|r| format!("{} -> {} {:.2} {:.2}", render(&r.conditions, &names), r.class, r.precision, r.coverage))
            .collect();
        assert_eq!(
            text,
            vec![
                "monetary > 100.5 -> 0 1.00 1.00",
                "monetary <= 100.5 and recency_days <= 30.5 -> 1 1.00 1.00",
                "monetary <= 100.5 and recency_days > 30.5 -> 2 1.00 1.00",
            ]
        );
    }

    #[test]
    fn depth_is_bounded_and_conditions_merge() {
        // Labels depend on x alone through 8 thresholds: a depth-3 tree must stop at 8 leaves.
        let x: Vec<f64> = (0..800).map(f64::from).collect();
        let y: Vec<usize> = (0..800).map(|i| (i / 100) % 2).collect();
        let t = TreeParams::default().fit(&x, 1, &y, 2).expect("fits");
        let rules = t.rules();
        assert!(rules.len() <= 8);
        for r in &rules {
            assert!(r.conditions.len() <= 2, "one <= and one > per feature after merging: {r:?}");
        }
        assert!(t.accuracy(&x, 1, &y) >= 0.7, "{}", t.accuracy(&x, 1, &y));
    }

    #[test]
    fn names_and_numbers() {
        let names: Vec<String> = ["aov", "recency_days", "frequency", "cat_home_garden"].map(String::from).to_vec();
        assert_eq!(auto_name(&[1.2, -0.8, 0.6, 0.1], &names, 3), "high AOV · recent · frequent buyer");
        assert_eq!(auto_name(&[0.0, 0.1, 0.0, 0.9], &names, 3), "home garden fan");
        assert_eq!(auto_name(&[0.0; 4], &names, 3), "average");
        assert_eq!(
            (pretty(512.26), pretty(20.5), pretty(0.1234), pretty(3.0)),
            ("512.3".into(), "20.5".into(), "0.123".into(), "3".into())
        );
    }
}
