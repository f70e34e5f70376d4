//! The serving core: one list for one subject from an immutable snapshot, with no HTTP in
//! sight. A handler loads the snapshot (the live model version and the catalog), copies
//! what it needs of the subject out of the real-time state ([`Subject`]), calls
//! [`recommend`] and serialises the [`Served`] answer; the cold-start chain, playbooks,
//! experiment variants, filters, new items and explanations are all here, and tested here.

use serde_json::json;
use tailor_experiment::Variant;
use tailor_recommend::business::{Boost, Reason, Recommendation, Request, rank};
use tailor_recommend::file::AnyModel;

use crate::api;
use crate::config::{Playbook, ServeConfig, Strategy};
use crate::live::{Catalog, Live};
use crate::online::HistoryBuf;

/// What a list is ranked from: one model version and one catalog, loaded once per request.
#[derive(Clone, Copy)]
pub struct Snapshot<'a> {
    /// The model version.
    pub live: &'a Live,
    /// The catalog.
    pub catalog: &'a Catalog,
}

/// What a list needs of its subject (a user or a session), copied out of the real-time
/// state so no lock is held while it is ranked.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Items, weights and recency for the list's model ([`model_of`]): built with its
    /// catalog size and recency half-life.
    pub history: HistoryBuf,
    /// Items the subject's own events hide (`serve.exclude`).
    pub hidden: Vec<u32>,
    /// Items the subject bought (for "also bought" reasons).
    pub bought: Vec<u32>,
    /// The subject's row in the model, when trained and still current.
    pub row: Option<u32>,
    /// Segments the subject is in.
    pub segments: Vec<String>,
    /// Items the request itself names (a session's basket): the newest touches.
    pub extra: Vec<u32>,
}

/// Which step of the cold-start chain answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The personalised model (or the context model) from the subject's history.
    Personalized,
    /// Popular among the subject's segment.
    SegmentPopular,
    /// Popular overall (or within the requested categories).
    Popular,
    /// Trending (an experiment variant's strategy).
    Trending,
    /// Any in-stock item the filters allow (nothing else passed them).
    Catalog,
    /// Nothing passes the filters.
    None,
}

impl Source {
    /// The name in answers, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personalized => "personalized",
            Self::SegmentPopular => "segment_popular",
            Self::Popular => "popular",
            Self::Trending => "trending",
            Self::Catalog => "catalog",
            Self::None => "none",
        }
    }
}

/// A ranked list with what made it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The items, best first, each with its score and reason.
    pub items: Vec<Recommendation>,
    /// Which step of the chain answered.
    pub source: Source,
    /// The personalised model's name (`none` before any training).
    pub model: &'static str,
    /// Playbooks applied.
    pub playbooks: Vec<api::PlaybookOut>,
    /// The context key the context model conditioned the list on, when it did.
    pub context: Option<String>,
}

/// The model a list is ranked with: the one a variant names when the version keeps it,
/// else the served one; with its recency half-life.
pub fn model_of<'a>(live: &'a Live, variant: Option<&Variant>) -> (Option<&'a AnyModel>, Option<f32>) {
    let chosen = live.model_for(variant.and_then(|v| v.model.as_deref()));
    (chosen.map(|c| c.0), chosen.and_then(|c| c.1))
}

/// One list: playbooks, the subject's exclusions, the personalised (or context-aware)
/// scores with items listed since training scored by content, the cold-start chain
/// (personalised → segment popular → popular → catalog, or the variant's strategy),
/// business rules and diversification, then "because you viewed" reasons.
pub fn recommend(
    snap: Snapshot<'_>,
    subject: &Subject,
    request: &Request,
    context: &[(String, String)],
    variant: Option<&Variant>,
    config: &ServeConfig,
) -> Served {
    let (live, catalog) = (snap.live, snap.catalog);
    let variant_model = variant.and_then(|v| v.model.as_deref());
    let (any_model, _) = model_of(live, variant);
    let scorer = any_model.map(AnyModel::as_model);
    let als = match any_model {
        Some(AnyModel::Als(m)) => Some(m),
        _ => None,
    };
    let n_model = scorer.map_or(0, |m| m.n_items());
    let mut request = request.clone();
    request.exclude.extend_from_slice(&subject.hidden);
    let mut h = subject.history.clone();
    let extra = &subject.extra;
    let row = subject.row;
    // Playbooks of the user's segments, or the one an experiment variant imposes.
    let mut playbooks = Vec::new();
    let override_name = variant.and_then(|v| v.playbook.as_deref());
    // `none` parses to no strategy: the variant switches the playbooks off.
    let imposed: Option<Playbook> = override_name
        .and_then(|name| serde_json::from_value::<Strategy>(json!(name)).ok())
        .map(|strategy| Playbook { segment: "(experiment)".into(), strategy, weight: 0.3 });
    let configured: &[Playbook] = if override_name.is_some() { imposed.as_slice() } else { &config.playbooks };
    for p in configured {
        if subject.segments.contains(&p.segment) || imposed.is_some() {
            match p.strategy {
                Strategy::BoostDiscounted => request.boosts.push(Boost::Discounted(p.weight)),
                Strategy::BoostNewArrivals => request.boosts.push(Boost::NewArrivals(p.weight)),
                Strategy::PremiumOnly => {
                    request.exclude.extend((0..catalog.len() as u32).filter(|&i| !catalog.premium[i as usize]));
                }
            }
            playbooks.push(api::PlaybookOut { segment: p.segment.clone(), strategy: p.strategy });
        }
    }
    // Items the request names (a session's basket) count as the newest touches.
    for &i in extra {
        if (i as usize) < n_model {
            match h.items.binary_search(&i) {
                Ok(p) => h.weights[p] += 1.0,
                Err(p) => {
                    h.items.insert(p, i);
                    h.weights.insert(p, 1.0);
                    if !h.recency.is_empty() {
                        h.recency.insert(p, 1.0);
                    }
                }
            }
        }
    }
    let items = &h.items;
    let history = tailor_recommend::History {
        items,
        weights: &h.weights,
        recency: (!h.recency.is_empty()).then_some(h.recency.as_slice()),
    };
    // History items are never recommended back; calibration follows their categories.
    request.exclude.extend_from_slice(items);
    if request.calibration > 0.0 {
        request.calibration_history.clone_from(items);
    }
    // The request's context, when the context model knows it and the user's trained row is
    // current: the list is conditioned on it (iTALS).
    let context = request_context(config, live, context);
    let mut context_applied: Option<String> = None;
    let mut personal: Option<Vec<f32>> = None;
    if let (None, Some((cm, _)), Some((key, c)), Some(r)) = (variant_model, &live.context, &context, row)
        && (r as usize) < cm.users.len() / cm.k.max(1)
    {
        let mut scores = vec![0f32; cm.n_items()];
        cm.score(r, Some(*c), &mut scores);
        personal = Some(scores);
        context_applied = Some(key.clone());
    } else if let Some(model) = scorer {
        // ALS keeps no vector for users whose rows were empty at training: they fold in.
        let row = row.filter(|&r| als.is_none_or(|m| m.user(r).is_some()));
        if row.is_some() || !items.is_empty() {
            let mut scores = vec![0f32; model.n_items()];
            model.score(row, history, &mut scores);
            personal = Some(scores);
        }
    }
    // Items listed since training (beyond the model's columns) enter the personal list by
    // their content affinity to the history, scaled so one as like the history as the
    // model's own top items are scores like them (the hybrid's cold path, between trainings).
    if let Some(p) = personal.as_mut()
        && catalog.len() > p.len()
        && !items.is_empty()
    {
        let weighted: Vec<(u32, f32)> =
            items.iter().enumerate().map(|(at, &i)| (i, history.weights[at] * history.recency_at(at))).collect();
        let top = tailor_recommend::top_k(p, 10, |i| items.binary_search(&i).is_err());
        let reference =
            top.iter().map(|&(i, _)| catalog.content.affinity(&weighted, i)).sum::<f32>() / top.len().max(1) as f32;
        let hi = top.first().map_or(0.0, |e| e.1);
        let n = p.len();
        p.extend((n as u32..catalog.len() as u32).map(|j| {
            let a = catalog.content.affinity(&weighted, j);
            if a <= 0.0 || hi <= 0.0 {
                f32::NAN
            } else if reference > 0.0 {
                hi * (a / reference).min(1.0)
            } else {
                hi * a
            }
        }));
    }
    let popular_reason = if request.categories.is_empty() { Reason::Popular } else { Reason::PopularInCategory };
    // The cold-start chain, first list that passes the filters wins (borrowed, not copied).
    let mut sources: Vec<(Source, &[f32], Reason)> = Vec::new();
    // An experiment variant may replace the personalised part of the chain.
    match variant.and_then(|v| v.strategy.as_deref()) {
        Some("popular") => {}
        Some("trending") => sources.push((Source::Trending, &live.trending, Reason::Trending)),
        _ => {
            if let Some(p) = &personal {
                sources.push((Source::Personalized, p, Reason::Personalized));
            }
            if let Some(c) = subject.segments.iter().find_map(|seg| live.segment_popular.get(seg)) {
                sources.push((Source::SegmentPopular, c, Reason::PopularInSegment));
            }
        }
    }
    sources.push((Source::Popular, &live.popular, popular_reason.clone()));
    // Likeness for diversification: item vectors of factor models, else the category.
    let vector = |i: u32| any_model.and_then(|m| crate::live::item_vector(m, i));
    let vectors = vector(0).is_some();
    let similarity = |a: u32, b: u32| {
        if vectors {
            match (vector(a), vector(b)) {
                (Some(x), Some(y)) => cosine(x, y),
                _ => 0.0,
            }
        } else {
            f32::from(u8::from(catalog.view.category.get(a as usize) == catalog.view.category.get(b as usize)))
        }
    };
    let mut out: Vec<Recommendation> = Vec::new();
    let mut source = Source::None;
    for (name, scores, base) in sources {
        out = rank(scores, &catalog.view, &request, similarity, |_| None, base);
        if !out.is_empty() {
            source = name;
            break;
        }
    }
    if out.is_empty() {
        // Last resort: any in-stock item the filters allow (never empty while there is one),
        // items added since training included.
        out = rank(&vec![0f32; catalog.len()], &catalog.view, &request, similarity, |_| None, popular_reason);
        if !out.is_empty() {
            source = Source::Catalog;
        }
    }
    // "Because you viewed X": the history item contributing most to each personalised item
    // (ALS: all from one factorisation of the user's system; item-to-item models: each
    // history item's own contribution).
    if source == Source::Personalized
        && !items.is_empty()
        && let Some(m) = scorer
    {
        let plain: Vec<usize> = (0..out.len()).filter(|&p| out[p].reason == Reason::Personalized).collect();
        let targets: Vec<u32> = plain.iter().map(|&p| out[p].item).collect();
        let reasons: Vec<Option<(u32, f32)>> = match als {
            Some(als) => als.best_reasons(history, &targets),
            None => targets.iter().map(|&t| m.explain(history, t).first().copied()).collect(),
        };
        for (p, why) in plain.into_iter().zip(reasons) {
            if let Some((h, _)) = why {
                out[p].reason = if subject.bought.contains(&h) {
                    Reason::AlsoBought { item: h }
                } else {
                    Reason::BecauseYouViewed { item: h }
                };
            }
        }
    }
    Served { items: out, source, model: scorer.map_or("none", |m| m.name()), playbooks, context: context_applied }
}

/// Items like `item`: the model's neighbours (scores scaled to the best one), merged with
/// the items the model has not seen (listed since it was trained) by their content cosine,
/// so a new item is similar to its kin from its first minute; an item the model has not
/// seen gets content neighbours only.
pub fn similar_items(live: &Live, catalog: &Catalog, item: u32, k: usize) -> Vec<(u32, f32)> {
    let n_model = live.scorer().map_or(0, |m| m.n_items()) as u32;
    if item >= n_model {
        return catalog.content.similar(item, k, |_| true);
    }
    let mut out = live.scorer().map(|m| m.similar_items(item, k)).unwrap_or_default();
    let cold =
        if (catalog.len() as u32) > n_model { catalog.content.similar(item, k, |j| j >= n_model) } else { Vec::new() };
    if cold.is_empty() {
        return out;
    }
    // Model neighbours keep their order; each gets the key of half its scaled model score
    // and half its content cosine (never above the one before it), and the new items, by
    // content alone, go where their cosine ranks among those keys.
    let best = out.iter().map(|e| e.1).fold(0f32, f32::max).max(f32::MIN_POSITIVE);
    let mut ceiling = f32::INFINITY;
    for e in out.iter_mut() {
        let key = 0.5 * e.1 / best + 0.5 * catalog.content.similarity(item, e.0);
        ceiling = ceiling.min(key);
        e.1 = ceiling;
    }
    out.extend(cold);
    tailor_recommend::topk::best_first(&mut out);
    out.truncate(k);
    out
}

/// The context model's index of the request's `context.<field>` values, with its key, when
/// the request names at least one configured field and the value was seen in training.
fn request_context(config: &ServeConfig, live: &Live, given: &[(String, String)]) -> Option<(String, u32)> {
    let (_, index) = live.context.as_ref()?;
    let at = &config.context_fields.0;
    let mut ctx = tailor_core::Context::default();
    let mut any = false;
    for (name, value) in given {
        if let Some(p) = tailor_core::Context::FIELDS.iter().position(|x| x == name)
            && at.contains(&p)
        {
            *ctx.fields_mut()[p] = Some(value.clone());
            any = true;
        }
    }
    if !any {
        return None;
    }
    let key = crate::live::context_key(&ctx, at);
    index.get(&key).map(|&c| (key, c))
}

fn cosine(x: &[f32], y: &[f32]) -> f32 {
    let (mut d, mut a, mut b) = (0f32, 0f32, 0f32);
    for (p, q) in x.iter().zip(y) {
        d += p * q;
        a += p * p;
        b += q * q;
    }
    if a == 0.0 || b == 0.0 { 0.0 } else { (d / (a.sqrt() * b.sqrt())).clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelChoice;
    use crate::live::{ModelPlan, ModelSource};
    use tailor_core::Timestamp;
    use tailor_recommend::zoo::ModelKind;
    use tailor_store::{RedbStore, SegmentDef, SegmentationRun, Store, WriteBatch};

    struct Shop {
        _dir: tempfile::TempDir,
        live: Live,
        catalog: Catalog,
        config: ServeConfig,
    }

    /// A small demo shop trained with item-kNN; the first 30 users are "Bargain hunters".
    fn shop() -> Shop {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("store");
        let params = tailor_ingest::demo::DemoParams { users: 200, items: 120, days: 10, ..Default::default() };
        let demo = tailor_ingest::demo::generate(&params);
        store
            .write(WriteBatch { items: demo.items, users: demo.users, events: demo.events, ..WriteBatch::default() })
            .expect("write");
        let run = SegmentationRun {
            id: 0,
            name: "rules".into(),
            created_at: Timestamp::now(),
            segments: vec![SegmentDef { name: "Bargain hunters".into(), description: None, size: 30 }],
            record: json!({}),
        };
        let names = store.user_names().expect("names");
        let mut members = names.iter().take(30).map(|u| (u.clone(), vec!["Bargain hunters".to_string()]));
        store.save_segmentation(run, &mut members).expect("segments");
        let config = ServeConfig::default();
        let plan = ModelPlan {
            choice: ModelChoice::One(ModelKind::Itemknn),
            keep: vec![ModelKind::Ease],
            tune_budget: None,
            ..ModelPlan::of(&config)
        };
        let live =
            crate::live::train(&store, &Default::default(), ModelSource::Fit(&plan), 7.0, 1, &[], &Default::default())
                .expect("train");
        let catalog = Catalog::load(&store, live.reference_time()).expect("catalog");
        Shop { _dir: dir, live, catalog, config }
    }

    fn request(k: usize) -> Request {
        Request { k, ..Request::default() }
    }

    fn history(items: &[u32]) -> HistoryBuf {
        HistoryBuf { items: items.to_vec(), weights: vec![1.0; items.len()], recency: Vec::new() }
    }

    fn ids(served: &Served) -> Vec<u32> {
        served.items.iter().map(|r| r.item).collect()
    }

    #[test]
    fn the_cold_start_chain_answers_from_the_first_list_that_passes() {
        let s = shop();
        let snap = Snapshot { live: &s.live, catalog: &s.catalog };
        let serve = |subject: &Subject, req: &Request| recommend(snap, subject, req, &[], None, &s.config);
        // A history: personalised, by the served model, never its own items.
        let known = Subject { history: history(&[3, 7]), ..Subject::default() };
        let served = serve(&known, &request(10));
        assert_eq!((served.source, served.model), (Source::Personalized, "itemknn"));
        assert_eq!(served.items.len(), 10);
        assert!(ids(&served).iter().all(|i| ![3, 7].contains(i)));
        assert!(served.items.windows(2).all(|w| w[0].score >= w[1].score));
        // No history, a segment with its own list: the segment's popular items.
        let member = Subject { segments: vec!["Bargain hunters".into()], ..Subject::default() };
        assert_eq!(serve(&member, &request(5)).source, Source::SegmentPopular);
        // Neither: popular; what the subject's events hide stays hidden.
        let stranger = Subject::default();
        let popular = serve(&stranger, &request(5));
        assert_eq!(popular.source, Source::Popular);
        let top = popular.items[0].item;
        let hiding = Subject { hidden: vec![top], ..Subject::default() };
        assert!(!ids(&serve(&hiding, &request(5))).contains(&top));
        // A category filter: every item in it.
        let cat = s.catalog.view.category[top as usize].expect("a category");
        let only = Request { categories: vec![cat], ..request(5) };
        let served = serve(&stranger, &only);
        assert!(ids(&served).iter().all(|&i| s.catalog.view.category[i as usize] == Some(cat)), "{served:?}");
    }

    #[test]
    fn items_no_list_knows_come_from_the_catalog_and_new_items_by_content() {
        let s = shop();
        // A new item with its own brand, like item 3 otherwise.
        let mut item = (*s.catalog.items[3].clone().expect("record")).clone();
        item.id = tailor_core::ItemId("SKU-NEW".into());
        item.brand = Some("Only-New".into());
        item.in_stock = true;
        let catalog = s.catalog.updated(vec!["SKU-NEW".into()], vec![item]);
        let new = catalog.index["SKU-NEW"];
        let snap = Snapshot { live: &s.live, catalog: &catalog };
        let brand = catalog.view.brand[new as usize].expect("brand");
        let only_new = Request { brands: vec![brand], ..request(5) };
        let served = recommend(snap, &Subject::default(), &only_new, &[], None, &s.config);
        assert_eq!((served.source, ids(&served)), (Source::Catalog, vec![new]));
        // A history of its kin lists it (content affinity), without a retraining.
        let fan = Subject { history: history(&[3]), ..Subject::default() };
        let served = recommend(snap, &fan, &request(10), &[], None, &s.config);
        assert_eq!(served.source, Source::Personalized);
        assert!(ids(&served).contains(&new), "{served:?}");
        // Filters that nothing passes: an empty list, said so.
        let none = Request { min_price: Some(1e12), ..request(5) };
        assert_eq!(recommend(snap, &fan, &none, &[], None, &s.config).source, Source::None);
    }

    #[test]
    fn variants_switch_the_strategy_the_playbook_and_the_model() {
        let s = shop();
        let snap = Snapshot { live: &s.live, catalog: &s.catalog };
        let known = Subject { history: history(&[3, 7]), ..Subject::default() };
        let mut v = Variant::named("t");
        v.strategy = Some("trending".into());
        assert_eq!(recommend(snap, &known, &request(5), &[], Some(&v), &s.config).source, Source::Trending);
        let mut v = Variant::named("premium");
        v.playbook = Some("premium_only".into());
        let served = recommend(snap, &known, &request(5), &[], Some(&v), &s.config);
        assert!(!served.items.is_empty() && ids(&served).iter().all(|&i| s.catalog.premium[i as usize]), "{served:?}");
        assert_eq!(served.playbooks.len(), 1);
        // A model the version keeps serves the variant's lists; one it does not, the served one.
        let mut v = Variant::named("ease");
        v.model = Some("ease".into());
        assert_eq!(recommend(snap, &known, &request(5), &[], Some(&v), &s.config).model, "ease");
        v.model = Some("als".into());
        assert_eq!(recommend(snap, &known, &request(5), &[], Some(&v), &s.config).model, "itemknn");
        // Session items the request names count as history.
        let basket = Subject { extra: vec![3, 7], ..Subject::default() };
        let served = recommend(snap, &basket, &request(5), &[], None, &s.config);
        assert_eq!(served.source, Source::Personalized);
        assert!(ids(&served).iter().all(|i| ![3, 7].contains(i)));
    }
}
