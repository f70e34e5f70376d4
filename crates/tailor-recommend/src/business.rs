//! Business rules shared by every model: what may be shown (stock, exclusions, category,
//! brand, price), what a shop wants pushed (promotions, new arrivals, discounts), how varied
//! the list must be (MMR, per-category caps), and why each item is there.
//!
//! [`rank`] takes one user's scores from any [`crate::Model`] and returns the final list:
//!
//! 1. candidates = items the filters allow (in stock, not excluded, not already bought, in
//!    the wanted categories/brands/price range), the best `k × 5` by model score;
//! 2. scores normalised to `[0, 1]` over those candidates, then each boost that applies adds
//!    its weight (so a boost of 0.2 lifts an item past others up to 20% of the range better);
//! 3. calibration (Steck 2018, [`crate::calibration`]): with `calibration` = λ > 0 the
//!    candidates are re-ordered so that the list's categories (full paths, else top-level)
//!    follow the mix of `calibration_history`'s;
//! 4. diversity: MMR on item similarity (`diversity` = 1 − λ), then at most
//!    `max_per_category` items per top-level category;
//! 5. a [`Reason`] per item: the boost that moved it, else the history item that contributed
//!    most ("because you viewed X"), else the model's own kind of reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailor_core::{EventKind, Timestamp};

use crate::rerank::{cap_per_category, mmr};
use crate::topk::top_k;

/// What the business rules need to know about the catalog, indexed by item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogView {
    /// Top-level category id per item.
    pub category: Vec<Option<u32>>,
    /// Full category path id per item (what calibration follows; empty: the top level).
    #[serde(default)]
    pub path: Vec<Option<u32>>,
    /// Brand id per item.
    pub brand: Vec<Option<u32>>,
    /// Current (sale) price per item.
    pub price: Vec<Option<f32>>,
    /// Whether it can be bought now.
    pub in_stock: Vec<bool>,
    /// Listed recently.
    pub new_arrival: Vec<bool>,
    /// Sold below its list price.
    pub discounted: Vec<bool>,
    /// Free-form attributes per item (colour, size, material...); may be empty when no
    /// request filters on them.
    #[serde(default)]
    pub attributes: Vec<BTreeMap<String, String>>,
}

impl CatalogView {
    /// A catalog of `n` items, all in stock, with nothing else known.
    pub fn open(n: usize) -> Self {
        Self {
            category: vec![None; n],
            path: vec![None; n],
            brand: vec![None; n],
            price: vec![None; n],
            in_stock: vec![true; n],
            new_arrival: vec![false; n],
            discounted: vec![false; n],
            attributes: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.in_stock.len()
    }
}

/// A lift applied after retrieval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Boost {
    /// Items listed recently.
    NewArrivals(f32),
    /// Items on sale (e.g. for price-sensitive segments).
    Discounted(f32),
    /// Named items (a promotion).
    Items(Vec<u32>, f32),
}

/// Why an item is recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Similar to something in the user's history.
    BecauseYouViewed {
        /// The history item that contributed most.
        item: u32,
    },
    /// Bought together with an item in the user's history.
    AlsoBought {
        /// That item.
        item: u32,
    },
    /// The user's factors match it.
    Personalized,
    /// Popular in the user's segment.
    PopularInSegment,
    /// Popular in the category being browsed.
    PopularInCategory,
    /// Popular overall.
    Popular,
    /// Trending now.
    Trending,
    /// Listed recently (a boost).
    NewArrival,
    /// On sale (a boost).
    Discounted,
    /// A promotion (a boost).
    Promoted,
}

impl Reason {
    /// The line a shop shows, with `name(item)` for item titles.
    pub fn text(&self, name: impl Fn(u32) -> String) -> String {
        match self {
            Self::BecauseYouViewed { item } => format!("Because you viewed {}", name(*item)),
            Self::AlsoBought { item } => format!("People who bought {} also bought", name(*item)),
            Self::Personalized => "Recommended for you".into(),
            Self::PopularInSegment => "Popular with shoppers like you".into(),
            Self::PopularInCategory => "Popular in this category".into(),
            Self::Popular => "Popular right now".into(),
            Self::Trending => "Trending".into(),
            Self::NewArrival => "New arrival".into(),
            Self::Discounted => "On sale".into(),
            Self::Promoted => "Featured".into(),
        }
    }
}

/// What the caller asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// How many items.
    pub k: usize,
    /// Items never to show (already bought, explicit exclusions), any order.
    pub exclude: Vec<u32>,
    /// Only these top-level categories (empty: any).
    pub categories: Vec<u32>,
    /// Only these brands (empty: any).
    pub brands: Vec<u32>,
    /// Attribute filters: the item's value of each key must be one of the listed values
    /// (e.g. `("colour", ["red", "blue"])`); items without the key are filtered out.
    #[serde(default)]
    pub attributes: Vec<(String, Vec<String>)>,
    /// Price range (inclusive); items without a price pass only when no range is given.
    pub min_price: Option<f32>,
    /// Upper end of the range.
    pub max_price: Option<f32>,
    /// Score multipliers for items matching a field (applied before the ranking).
    pub boosts: Vec<Boost>,
    /// 0 (relevance only) to 1 (diversity only): MMR's `1 − λ`.
    pub diversity: f32,
    /// At most this many items per top-level category.
    pub max_per_category: Option<usize>,
    /// Calibration weight λ in [0, 1) (0: off): the list's categories follow those of
    /// `calibration_history`.
    #[serde(default)]
    pub calibration: f32,
    /// The items whose category mix the list is calibrated to (the user's history).
    #[serde(default)]
    pub calibration_history: Vec<u32>,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Item index.
    pub item: u32,
    /// Final score (normalised model score plus boosts).
    pub score: f32,
    /// Why the item is in the list (which rule or signal put it there).
    pub reason: Reason,
}

impl Request {
    /// Whether the filters let `item` through.
    pub fn allows(&self, c: &CatalogView, exclude: &[u32], item: u32) -> bool {
        let i = item as usize;
        if i >= c.len() || !c.in_stock[i] || exclude.binary_search(&item).is_ok() {
            return false;
        }
        if !self.categories.is_empty() && !c.category[i].is_some_and(|x| self.categories.contains(&x)) {
            return false;
        }
        if !self.brands.is_empty() && !c.brand[i].is_some_and(|x| self.brands.contains(&x)) {
            return false;
        }
        if !self.attributes.is_empty() {
            let Some(attrs) = c.attributes.get(i) else { return false };
            if !self.attributes.iter().all(|(k, vs)| attrs.get(k).is_some_and(|v| vs.contains(v))) {
                return false;
            }
        }
        if self.min_price.is_some() || self.max_price.is_some() {
            let Some(p) = c.price[i] else { return false };
            if self.min_price.is_some_and(|m| p < m) || self.max_price.is_some_and(|m| p > m) {
                return false;
            }
        }
        true
    }
}

/// One kind of past event that hides an item, for a while or for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusionRule {
    /// The event kind (e.g. purchase, add to cart).
    pub kind: EventKind,
    /// How long after the event the item stays hidden, in milliseconds (`None`: forever).
    pub window_ms: Option<i64>,
}

/// Which of a user's own events hide items from their recommendations: a shop selling
/// durable goods hides purchases for good, one selling consumables only for a few weeks,
/// and items in the cart for a day. Written `purchase, add_to_cart:1d, view:2h`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusionPolicy {
    /// One rule per kind.
    pub rules: Vec<ExclusionRule>,
}

impl Default for ExclusionPolicy {
    /// Purchases, for good.
    fn default() -> Self {
        Self { rules: vec![ExclusionRule { kind: EventKind::Purchase, window_ms: None }] }
    }
}

impl std::str::FromStr for ExclusionPolicy {
    type Err = String;

    /// `kind[:window], ...`; an empty string (or `none`) hides nothing.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut rules: Vec<ExclusionRule> = Vec::new();
        if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("none") {
            return Ok(Self { rules });
        }
        for (n, part) in s.split(',').enumerate() {
            let (kind, window) = match part.split_once(':') {
                Some((k, w)) => (k, Some(w)),
                None => (part, None),
            };
            let at = |e: String| format!("exclusion rule {} ({:?}): {e}", n + 1, part.trim());
            let kind: EventKind = kind.parse().map_err(at)?;
            let window_ms = window.map(tailor_core::time::parse_duration_millis).transpose().map_err(at)?;
            if rules.iter().any(|r| r.kind == kind) {
                return Err(at(format!("{kind} is listed twice")));
            }
            rules.push(ExclusionRule { kind, window_ms });
        }
        Ok(Self { rules })
    }
}

impl ExclusionPolicy {
    /// The items to hide at `now`, from a user's events `(item, kind, when)` in any order;
    /// sorted and without duplicates, ready for [`Request::exclude`].
    pub fn excluded(&self, events: impl IntoIterator<Item = (u32, EventKind, Timestamp)>, now: Timestamp) -> Vec<u32> {
        let mut out: Vec<u32> = events
            .into_iter()
            .filter(|(_, kind, ts)| {
                self.rules.iter().any(|r| r.kind == *kind && r.window_ms.is_none_or(|w| now.0.saturating_sub(ts.0) < w))
            })
            .map(|(item, _, _)| item)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The final list for one user: `scores` from any model (one per item), `catalog` facts,
/// `similarity(a, b)` in `[0, 1]` for diversity, `because(item)` the history item (and
/// whether it was bought) that contributed most to `item`'s score, if the model can say,
/// and `base` the reason to give otherwise.
pub fn rank(
    scores: &[f32],
    catalog: &CatalogView,
    request: &Request,
    similarity: impl Fn(u32, u32) -> f32,
    because: impl Fn(u32) -> Option<(u32, bool)>,
    base: Reason,
) -> Vec<Recommendation> {
    let mut exclude = request.exclude.clone();
    exclude.sort_unstable();
    exclude.dedup();
    let pool = request.k.saturating_mul(5).max(request.k);
    let candidates = top_k(scores, pool, |i| request.allows(catalog, &exclude, i));
    if candidates.is_empty() {
        return Vec::new();
    }
    let (lo, hi) = candidates.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), c| (a.min(c.1), b.max(c.1)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut boosted: Vec<(u32, f32, Option<Reason>)> = candidates
        .iter()
        .map(|&(i, s)| {
            let mut score = (s - lo) / span;
            let mut why = None;
            let mut best = 0f32;
            for b in &request.boosts {
                let (applies, w, r) = match b {
                    Boost::NewArrivals(w) => (catalog.new_arrival[i as usize], *w, Reason::NewArrival),
                    Boost::Discounted(w) => (catalog.discounted[i as usize], *w, Reason::Discounted),
                    Boost::Items(items, w) => (items.contains(&i), *w, Reason::Promoted),
                };
                if applies {
                    score += w;
                    if w > best {
                        best = w;
                        why = Some(r);
                    }
                }
            }
            (i, score, why)
        })
        .collect();
    boosted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut ranked: Vec<(u32, f32)> = boosted.iter().map(|&(i, s, _)| (i, s)).collect();
    if request.calibration > 0.0 && !request.calibration_history.is_empty() {
        use crate::calibration::{OneGenre, calibrate, distribution};
        let has_path = |i: &u32| catalog.path.get(*i as usize).copied().flatten().is_some();
        let ids = if request.calibration_history.iter().any(has_path) { &catalog.path } else { &catalog.category };
        let genres = OneGenre(ids);
        let n = request
            .calibration_history
            .iter()
            .filter_map(|&i| ids.get(i as usize).copied().flatten())
            .max()
            .map_or(0, |c| c as usize + 1);
        let p = distribution(&genres, n, request.calibration_history.iter().copied());
        ranked = calibrate(&ranked, ranked.len(), f64::from(request.calibration.min(0.999)), &genres, &p);
    }
    let diverse = if request.diversity > 0.0 {
        mmr(&ranked, ranked.len(), 1.0 - request.diversity.clamp(0.0, 1.0), &similarity)
    } else {
        ranked
    };
    let capped = match request.max_per_category {
        Some(cap) => cap_per_category(&diverse, request.k, cap, |i| catalog.category[i as usize]),
        None => diverse.into_iter().take(request.k).collect(),
    };
    capped
        .into_iter()
        .map(|(item, score)| {
            let boost = boosted.iter().find(|b| b.0 == item).and_then(|b| b.2.clone());
            let reason = boost.unwrap_or_else(|| match because(item) {
                Some((h, true)) => Reason::AlsoBought { item: h },
                Some((h, false)) => Reason::BecauseYouViewed { item: h },
                None => base.clone(),
            });
            Recommendation { item, score, reason }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn catalog() -> CatalogView {
        let mut c = CatalogView::open(8);
        c.category = (0..8).map(|i| Some(i % 2)).collect();
        c.brand = (0..8).map(|i| Some(i / 4)).collect();
        c.price = (0..8).map(|i| Some(10.0 * i as f32)).collect();
        c.in_stock[7] = false;
        c.new_arrival[1] = true;
        c.discounted[2] = true;
        let colours = ["red", "blue", "green"];
        c.attributes = (0..8).map(|i| BTreeMap::from([("colour".to_string(), colours[i % 3].to_string())])).collect();
        c.attributes[5].clear();
        c
    }

    const SCORES: [f32; 8] = [8.0, 1.0, 2.0, 7.0, 6.0, 5.0, 4.0, 9.0];

    fn run(r: &Request) -> Vec<u32> {
        rank(&SCORES, &catalog(), r, |_, _| 0.0, |_| None, Reason::Personalized).into_iter().map(|x| x.item).collect()
    }

    #[test]
    fn filters_boosts_caps_and_reasons() {
        let base = Request { k: 3, ..Request::default() };
        assert_eq!(run(&base), vec![0, 3, 4], "item 7 is out of stock");
        assert_eq!(run(&Request { exclude: vec![0], ..base.clone() }), vec![3, 4, 5]);
        assert_eq!(run(&Request { categories: vec![1], ..base.clone() }), vec![3, 5, 1]);
        assert_eq!(run(&Request { brands: vec![1], ..base.clone() }), vec![4, 5, 6]);
        assert_eq!(run(&Request { min_price: Some(15.0), max_price: Some(45.0), ..base.clone() }), vec![3, 4, 2]);
        // Colours: 0 red, 3 red, 4 blue, 5 none, 6 red (7 out of stock).
        let colour = |v: &[&str]| vec![("colour".to_string(), v.iter().map(|s| s.to_string()).collect())];
        assert_eq!(run(&Request { attributes: colour(&["red", "blue"]), ..base.clone() }), vec![0, 3, 4]);
        assert_eq!(run(&Request { attributes: colour(&["green"]), ..base.clone() }), vec![2]);
        assert_eq!(run(&Request { attributes: colour(&[]), ..base.clone() }), Vec::<u32>::new());
        // A new-arrival boost of 0.9 lifts item 1 (normalised score 0) to 0.9: second place.
        let boosted = Request { boosts: vec![Boost::NewArrivals(0.9)], ..base.clone() };
        assert_eq!(run(&boosted), vec![0, 1, 3]);
        let recs = rank(&SCORES, &catalog(), &boosted, |_, _| 0.0, |i| (i == 3).then_some((0, true)), Reason::Popular);
        assert_eq!(recs[1].reason, Reason::NewArrival);
        assert_eq!(recs[2].reason, Reason::AlsoBought { item: 0 });
        assert_eq!(recs[0].reason, Reason::Popular);
        assert_eq!(recs[1].reason.text(|i| format!("item {i}")), "New arrival");
        assert_eq!(recs[2].reason.text(|i| format!("item {i}")), "People who bought item 0 also bought");
        // One per category: 0 (cat 0), 3 (cat 1), nothing else.
        assert_eq!(run(&Request { max_per_category: Some(1), ..base.clone() }), vec![0, 3]);
        // Full diversity with items of one category identical: alternate categories.
        let same = |a: u32, b: u32| if a % 2 == b % 2 { 1.0 } else { 0.0 };
        let d =
            rank(&SCORES, &catalog(), &Request { k: 4, diversity: 0.9, ..base }, same, |_| None, Reason::Personalized);
        let cats: Vec<u32> = d.iter().map(|r| r.item % 2).collect();
        assert_ne!(cats[0], cats[1], "{d:?}");
    }

    #[test]
    fn calibration_follows_the_historys_categories() {
        // Base top 4: 0, 3, 4, 5 (categories 0, 1, 0, 1). A history all in category 0 pulls
        // category-0 items forward; without a history or at λ = 0 nothing changes.
        let base = Request { k: 4, ..Request::default() };
        assert_eq!(run(&base), vec![0, 3, 4, 5]);
        let to_zero = Request { calibration: 0.9, calibration_history: vec![2, 4, 6], ..base.clone() };
        let got = run(&to_zero);
        assert_eq!(got.iter().filter(|&&i| i % 2 == 0).count(), 4, "{got:?}");
        assert_eq!(run(&Request { calibration_history: vec![2, 4, 6], ..base.clone() }), vec![0, 3, 4, 5]);
        assert_eq!(run(&Request { calibration: 0.9, ..base.clone() }), vec![0, 3, 4, 5]);
        // A mixed history keeps a mixed list.
        let mixed = run(&Request { calibration: 0.9, calibration_history: vec![0, 1], ..base });
        assert_eq!(mixed.iter().filter(|&&i| i % 2 == 1).count(), 2, "{mixed:?}");
    }

    #[test]
    fn exclusions_by_event_kind_and_window() {
        let p: ExclusionPolicy = "purchase, add_to_cart:1d, view:2h".parse().expect("valid");
        let day = 86_400_000;
        let now = Timestamp(100 * day);
        let events = [
            (1, EventKind::Purchase, Timestamp(0)),                 // long ago: still hidden
            (2, EventKind::AddToCart, Timestamp(100 * day - 1000)), // cart a second ago
            (3, EventKind::AddToCart, Timestamp(98 * day)),         // cart two days ago: shown
            (4, EventKind::View, Timestamp(100 * day - 3_600_000)), // viewed an hour ago
            (5, EventKind::View, Timestamp(99 * day)),              // viewed yesterday: shown
            (6, EventKind::Click, Timestamp(100 * day)),            // kind not listed
            (2, EventKind::Purchase, Timestamp(99 * day)),          // duplicates collapse
        ];
        assert_eq!(p.excluded(events, now), vec![1, 2, 4]);
        assert_eq!(ExclusionPolicy::default().excluded(events, now), vec![1, 2]);
        assert_eq!("none".parse::<ExclusionPolicy>().map(|p| p.excluded(events, now)), Ok(vec![]));
        let err = "purchase, cart:soon".parse::<ExclusionPolicy>().unwrap_err();
        assert!(err.contains("rule 2") && err.contains("not a duration"), "{err}");
        let err = "purchase,buy".parse::<ExclusionPolicy>().unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
        assert!("purchased".parse::<ExclusionPolicy>().unwrap_err().contains("unknown event kind"));
    }

    proptest! {
        /// Whatever the request, no excluded, out-of-stock or filtered-out item comes back,
        /// and never more than k.
        #[test]
        fn filters_never_leak(
            scores in prop::collection::vec(-10f32..10.0, 8),
            exclude in prop::collection::vec(0u32..8, 0..5),
            cats in prop::collection::vec(0u32..2, 0..2),
            k in 0usize..10,
            diversity in 0f32..1.0,
            cap in prop::option::of(1usize..3),
            boost in 0f32..2.0,
        ) {
            let c = catalog();
            let r = Request {
                k,
                exclude: exclude.clone(),
                categories: cats.clone(),
                boosts: vec![Boost::Discounted(boost), Boost::Items(vec![7, 1], boost)],
                diversity,
                max_per_category: cap,
                ..Request::default()
            };
            let out = rank(&scores, &c, &r, |a, b| if a == b { 1.0 } else { 0.3 }, |_| None, Reason::Personalized);
            prop_assert!(out.len() <= k);
            let mut seen = std::collections::HashSet::new();
            for x in &out {
                prop_assert!(seen.insert(x.item), "duplicate {}", x.item);
                prop_assert!(!exclude.contains(&x.item));
                prop_assert!(c.in_stock[x.item as usize]);
                prop_assert!(cats.is_empty() || cats.contains(&c.category[x.item as usize].unwrap_or(99)));
            }
        }
    }
}
