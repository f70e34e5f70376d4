//! What requests read, swapped atomically: the catalog (refreshed on upserts) and the
//! trained models of one version (refreshed on retraining).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tailor_core::{EventKind, InteractionWeights, InteractionsBuilder, Item, Timestamp};
use tailor_recommend::als::{AlsModel, AlsParams};
use tailor_recommend::business::CatalogView;
use tailor_recommend::content;
use tailor_recommend::file::AnyModel;
use tailor_recommend::popularity::Popularity;
use tailor_recommend::together::BoughtTogether;
use tailor_recommend::validation;
use tailor_recommend::zoo::{self, ModelKind};
use tailor_store::{EventFilter, Store, load_interactions};

use crate::error::ServerResult;

/// Items listed within this many days of the latest event are new arrivals.
const NEW_ARRIVAL_DAYS: i64 = 30;

/// The catalog as requests see it, indexed by the store's dense item index.
///
/// Copied whenever items are added or changed ([`Catalog::updated`]), so what it holds per
/// item is shared rather than owned (ids as `Arc<str>`, records behind `Arc`): a copy is a
/// few pointer-sized words per item, with no allocation per item. Owned strings made every
/// batch of events naming new items deep-copy the catalog (3.4 GB of RSS after 146,000
/// new items; docs/benchmarks.md, "Hardening").
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// External id per index.
    pub names: Vec<Arc<str>>,
    /// Index per external id.
    pub index: HashMap<Arc<str>, u32>,
    /// The stored record per index (`None` for items only mentioned by events).
    pub items: Vec<Option<Arc<Item>>>,
    /// Filters and boosts' view of it.
    pub view: CatalogView,
    /// Top-level category names; `view.category` holds indices into this.
    pub categories: Vec<String>,
    /// Brand names; `view.brand` holds indices into this.
    pub brands: Vec<String>,
    category_index: HashMap<String, u32>,
    brand_index: HashMap<String, u32>,
    /// Full category paths (`Women > Shoes`); `view.path` holds indices into this.
    paths: Vec<String>,
    path_index: HashMap<String, u32>,
    /// In the top fifth of its category's prices (the premium tier).
    pub premium: Vec<bool>,
    /// What user features need to know of items (category, brand, price percentile...).
    pub features: Arc<tailor_segment::features::ItemTable>,
    /// The premium tier's lowest price per top-level category (as of the last full load).
    premium_cut: HashMap<Option<u32>, f32>,
    /// Items listed at or after this time are new arrivals.
    new_after: i64,
    /// Item features (title words, categories, brand, tags, price tier, attributes) as
    /// TF-IDF vectors, updated with every upsert: content likeness for items the model has
    /// not seen.
    pub content: Arc<tailor_recommend::content::ContentIndex>,
    /// The price tiers' bounds (quartiles of the catalog's prices at the last full load).
    price_quartiles: [f64; 3],
}

/// Quartiles of the items' prices (the content tokens' price tiers).
fn price_quartiles<'a>(items: impl Iterator<Item = &'a Item>) -> [f64; 3] {
    let mut prices: Vec<f64> = items.filter_map(Item::effective_price).collect();
    prices.sort_by(f64::total_cmp);
    let at = |q: f64| prices.get(((prices.len() as f64 * q) as usize).min(prices.len().saturating_sub(1))).copied();
    [at(0.25).unwrap_or(0.0), at(0.5).unwrap_or(0.0), at(0.75).unwrap_or(0.0)]
}

fn intern(names: &mut Vec<String>, index: &mut HashMap<String, u32>, s: &str) -> u32 {
    if let Some(&i) = index.get(s) {
        return i;
    }
    let i = names.len() as u32;
    names.push(s.to_string());
    index.insert(s.to_string(), i);
    i
}

impl Catalog {
    /// Reads every item from the store; `now` decides what counts as a new arrival.
    pub fn load(store: &dyn Store, now: Timestamp) -> ServerResult<Self> {
        let names: Vec<Arc<str>> = store.item_names()?.into_iter().map(Arc::from).collect();
        let n = names.len();
        let mut items: Vec<Option<Item>> = vec![None; n];
        store.for_each_item(&mut |idx, stored| {
            if let Some(slot) = items.get_mut(idx.0 as usize) {
                *slot = Some(stored.value);
            }
        })?;
        let mut c = Self {
            index: names.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect(),
            names,
            items: vec![None; n],
            view: CatalogView::open(n),
            new_after: now.0 - NEW_ARRIVAL_DAYS * 86_400_000,
            ..Self::default()
        };
        c.view.attributes = vec![Default::default(); n];
        c.premium = vec![false; n];
        for (i, item) in items.iter().enumerate() {
            if let Some(item) = item {
                c.describe(i, item);
            }
        }
        // Premium tier: at or above the 80th percentile of prices within the category.
        let mut by_cat: HashMap<Option<u32>, Vec<f32>> = HashMap::new();
        for i in 0..n {
            if let Some(p) = c.view.price[i] {
                by_cat.entry(c.view.category[i]).or_default().push(p);
            }
        }
        c.premium_cut = by_cat
            .into_iter()
            .map(|(cat, mut ps)| {
                ps.sort_by(f32::total_cmp);
                let at = ((ps.len() as f64 * 0.8).floor() as usize).min(ps.len().saturating_sub(1));
                (cat, ps[at])
            })
            .collect();
        for i in 0..n {
            c.premium[i] = c.is_premium(i);
        }
        c.features = Arc::new(tailor_segment::features::ItemTable::new(items.iter().flatten()));
        c.price_quartiles = price_quartiles(items.iter().flatten());
        let tokens: Vec<Vec<String>> = items
            .iter()
            .map(|i| i.as_ref().map(|i| content::item_tokens(i, &c.price_quartiles)).unwrap_or_default())
            .collect();
        c.content = Arc::new(content::ContentIndex::new(&tokens));
        c.items = items.into_iter().map(|i| i.map(Arc::new)).collect();
        Ok(c)
    }

    /// Sets item `i`'s filter and boost columns from its record.
    fn describe(&mut self, i: usize, item: &Item) {
        let v = &mut self.view;
        v.category[i] = item.category.first().map(|c| intern(&mut self.categories, &mut self.category_index, c));
        v.path[i] = (!item.category.is_empty())
            .then(|| intern(&mut self.paths, &mut self.path_index, &item.category.join(" > ")));
        v.brand[i] = item.brand.as_deref().map(|b| intern(&mut self.brands, &mut self.brand_index, b));
        v.price[i] = item.effective_price().map(|p| p as f32);
        v.in_stock[i] = item.in_stock;
        v.new_arrival[i] = item.created_at.is_some_and(|t| t.0 >= self.new_after);
        v.discounted[i] = item.on_sale();
        v.attributes[i] = item.attributes.clone();
    }

    fn is_premium(&self, i: usize) -> bool {
        self.view.price[i].is_some_and(|p| self.premium_cut.get(&self.view.category[i]).is_some_and(|&c| p >= c))
    }

    /// This catalog with the items the store added since it was loaded (`fresh`: their ids,
    /// in index order, from [`Store::item_names_from`] at [`Catalog::len`]) and the records
    /// `items` replaced (by id): an upsert or an event naming a new item costs a
    /// copy of the catalog, not a reload from the store. The premium tier's price cuts stay
    /// those of the last full load (the next model version reloads everything).
    pub fn updated(&self, fresh: Vec<String>, items: Vec<Item>) -> Self {
        let mut c = self.clone();
        for name in fresh {
            let i = c.names.len();
            let name: Arc<str> = Arc::from(name);
            c.index.insert(name.clone(), i as u32);
            c.names.push(name);
            c.items.push(None);
            c.premium.push(false);
            let v = &mut c.view;
            v.category.push(None);
            v.path.push(None);
            v.brand.push(None);
            v.price.push(None);
            v.in_stock.push(true);
            v.new_arrival.push(false);
            v.discounted.push(false);
            v.attributes.push(Default::default());
        }
        for item in items {
            let Some(&idx) = c.index.get(item.id.as_str()) else { continue };
            let i = idx as usize;
            c.describe(i, &item);
            c.premium[i] = c.is_premium(i);
            Arc::make_mut(&mut c.features).upsert(&item);
            let tokens = content::item_tokens(&item, &c.price_quartiles);
            Arc::make_mut(&mut c.content).set(i, &tokens);
            c.items[i] = Some(Arc::new(item));
        }
        c
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The display title of item `i` (its id when it has none).
    pub fn title(&self, i: u32) -> String {
        let item = self.items.get(i as usize).and_then(Option::as_ref);
        match item.and_then(|it| it.title.clone()) {
            Some(t) => t,
            None => self.id(i).map(str::to_string).unwrap_or_default(),
        }
    }

    /// The external id of item `i`.
    pub fn id(&self, i: u32) -> Option<&str> {
        self.names.get(i as usize).map(|n| &**n)
    }
}

/// One trained version of the models.
pub struct Live {
    /// Increasing version number.
    pub version: u64,
    /// Wall-clock time the training finished.
    pub trained_at: Timestamp,
    /// Wall-clock time training started reading the store: events received later are not in
    /// this version.
    pub snapshot_at: Timestamp,
    /// Latest event time in the training data ("now" for trending and new arrivals).
    pub data_until: Timestamp,
    /// Seconds the training took.
    pub train_seconds: f64,
    /// The personalised model (`None` before any interaction exists): the one configured, or
    /// the best candidate of `auto`.
    pub model: Option<AnyModel>,
    /// Half-life (in interactions) of the query-side recency multipliers the model is
    /// served with, when its holdout was better with them.
    pub recency: Option<f32>,
    /// Models kept beside the served one for experiment variants that name them.
    pub others: Vec<Other>,
    /// Model row per user id.
    pub user_rows: HashMap<String, u32>,
    /// Users per item.
    pub popular: Vec<f32>,
    /// Time-decayed counts per item.
    pub trending: Vec<f32>,
    /// Users per item within each segment (segment name → counts).
    pub segment_popular: HashMap<String, Vec<f32>>,
    /// Frequently bought together.
    pub together: BoughtTogether,
    /// The context-aware model (iTALS over user × item × context) and its context values
    /// (`value|value` of the configured fields → index), when context fields are configured.
    pub context: Option<ContextPart>,
    /// Training facts shown by `/v1/admin/models` and `/metrics`.
    pub info: LiveInfo,
    /// Fingerprint of the interaction matrix it was built from.
    pub fingerprint: String,
}

impl Live {
    /// The personalised model as a trait object.
    pub fn scorer(&self) -> Option<&dyn tailor_recommend::Model> {
        self.model.as_ref().map(AnyModel::as_model)
    }

    /// The ALS model, when ALS is the served one (fold-in explanations, item vectors).
    pub fn als(&self) -> Option<&AlsModel> {
        match &self.model {
            Some(AnyModel::Als(m)) => Some(m),
            _ => None,
        }
    }

    /// Item `i`'s latent vector, for factor models (ALS, BPR).
    pub fn item_vector(&self, i: u32) -> Option<&[f32]> {
        self.model.as_ref().and_then(|m| item_vector(m, i))
    }

    /// The model that serves a list: the one an experiment variant names when this version
    /// keeps it, else the served one; with its recency half-life.
    pub fn model_for(&self, name: Option<&str>) -> Option<(&AnyModel, Option<f32>)> {
        if let Some(o) = name.and_then(|n| self.others.iter().find(|o| o.kind.as_str() == n)) {
            return Some((&o.model, o.recency));
        }
        self.model.as_ref().map(|m| (m, self.recency))
    }

    /// "Now" for trending and new arrivals: the latest event time of its data (historical
    /// data keeps its own present), the wall clock when it had none.
    pub fn reference_time(&self) -> Timestamp {
        if self.data_until.0 > 0 { Timestamp::reference(self.data_until) } else { Timestamp::now() }
    }
}

/// Item `i`'s latent vector in a factor model (ALS, BPR).
pub fn item_vector(m: &AnyModel, i: u32) -> Option<&[f32]> {
    match m {
        AnyModel::Als(m) => m.item(i),
        AnyModel::Bpr(m) => m.item_factors.get(i as usize * m.k..(i as usize + 1) * m.k),
        _ => None,
    }
}

/// What is known about a trained version.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LiveInfo {
    /// Version number.
    pub version: u64,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// Training time, seconds.
    pub train_seconds: f64,
    /// Users and items and pairs it was trained on.
    pub users: usize,
    /// Items the model was trained on.
    pub items: usize,
    /// Stored (user, item) pairs.
    pub pairs: usize,
    /// Segments with their own popular list.
    pub segments: usize,
    /// NDCG@10 of the model's parameters on a holdout of each user's latest 20%.
    pub holdout_ndcg: Option<f64>,
    /// Coverage, novelty and diversity of the same holdout lists (versions trained before
    /// these were recorded have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<tailor_recommend::validation::Holdout>,
    /// Whether it passed the promotion check (see [`crate::AppState::retrain_blocking`]).
    pub promoted: bool,
    /// The personalised model's name (`als`, `ease`...; versions trained before other
    /// models were served were ALS).
    #[serde(default = "als_name")]
    pub model: String,
    /// Every model `auto` compared on the holdout, the served one marked (one entry for a
    /// configured model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateInfo>,
}

fn one() -> usize {
    1
}

fn als_name() -> String {
    "als".into()
}

/// One model compared on a version's holdout.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct CandidateInfo {
    /// Its name (`ease`, `itemknn`...).
    pub model: String,
    /// Its parameters as `key=value` pairs (empty: the defaults).
    pub params: String,
    /// NDCG@10, recall, coverage, novelty and diversity of its holdout lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<tailor_recommend::validation::Holdout>,
    /// Seconds its fit on the holdout's training part took.
    pub fit_seconds: f64,
    /// Whether it is the served model.
    pub chosen: bool,
    /// Settings measured (1: the configured one; more: a random search ran, and `params`
    /// is the best found).
    #[serde(default = "one")]
    pub trials: usize,
    /// Whether it is kept beside the served model for experiment variants that name it.
    #[serde(default)]
    pub kept: bool,
    /// The recency half-life its holdout was better with (none: better without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency_half_life: Option<f32>,
    /// Why it could not be fitted, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The context value of an event or request: the configured fields' values joined by `|`
/// (missing ones empty).
pub fn context_key(c: &tailor_core::Context, fields: &[usize]) -> String {
    let all = c.fields();
    fields.iter().map(|&f| all[f].as_deref().unwrap_or("")).collect::<Vec<_>>().join("|")
}

/// A context model with its context values (`value|value` → index).
pub type ContextPart = (tailor_recommend::context::ContextModel, HashMap<String, u32>);

/// What to fit as a version's personalised model.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    /// One model, or `auto` over `candidates`.
    pub choice: crate::config::ModelChoice,
    /// The models `auto` compares.
    pub candidates: Vec<ModelKind>,
    /// ALS's parameters as written (`serve.als_params`).
    pub als_params: String,
    /// The other models' parameters.
    pub params: crate::config::ModelParams,
    /// Recency half-life to try on the holdout (0: none).
    pub recency_half_life: f32,
    /// Models to keep beside the served one (experiment variants name them).
    pub keep: Vec<ModelKind>,
    /// Most wall time a random search of the candidates' parameters may take after their
    /// configured settings were measured (it also stops once it has taken as long again as
    /// those fits did); `None`: no search.
    pub tune_budget: Option<std::time::Duration>,
}

impl ModelPlan {
    /// The plan of a `[serve]` configuration.
    pub fn of(config: &crate::config::ServeConfig) -> Self {
        Self {
            choice: *config.model,
            candidates: config.candidates.0.clone(),
            als_params: config.als_params.text().to_string(),
            params: config.model_params.value().clone(),
            recency_half_life: config.recency_half_life as f32,
            keep: Vec::new(),
            tune_budget: config.tune_budget.0,
        }
    }

    fn params_of(&self, kind: ModelKind) -> ServerResult<HashMap<String, String>> {
        if kind == ModelKind::Als {
            Ok(zoo::parse_pairs(&self.als_params).map_err(tailor_recommend::RecommendError::InvalidSpec)?)
        } else {
            Ok(self.params.of(kind))
        }
    }
}

/// `key=value` pairs in key order.
fn pairs_text(p: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// What a registered version kept: its model, the figures recorded when it was trained,
/// and its context model.
pub struct Recorded {
    /// The personalised model.
    pub model: AnyModel,
    /// Its holdout NDCG@10.
    pub holdout_ndcg: Option<f64>,
    /// Its holdout figures.
    pub holdout: Option<validation::Holdout>,
    /// The candidates compared when it was trained.
    pub candidates: Vec<CandidateInfo>,
    /// The context model, when one was kept.
    pub context: Option<ContextPart>,
    /// The models kept beside it.
    pub others: Vec<Other>,
}

/// Where the personalised model of a version comes from.
pub enum ModelSource<'a> {
    /// Fit it (and measure it on a holdout of each user's latest 20%).
    Fit(&'a ModelPlan),
    /// A registered version's.
    Loaded(Box<Recorded>),
}

/// Tokens of each item for the content side ([`content::item_tokens`], as the serving
/// catalog's index has them), `None` when no item has any.
fn item_tokens(store: &dyn Store, n_items: usize) -> ServerResult<Option<Vec<Vec<String>>>> {
    let mut items: Vec<Option<Item>> = vec![None; n_items];
    store.for_each_item(&mut |idx, stored| {
        if let Some(slot) = items.get_mut(idx.0 as usize) {
            *slot = Some(stored.value);
        }
    })?;
    let q = price_quartiles(items.iter().flatten());
    let tokens: Vec<Vec<String>> =
        items.iter().map(|i| i.as_ref().map(|i| content::item_tokens(i, &q)).unwrap_or_default()).collect();
    Ok(tokens.iter().any(|t| !t.is_empty()).then_some(tokens))
}

fn plan_needs_features(plan: &ModelPlan) -> bool {
    plan.keep.iter().any(|k| k.needs_features())
        || match plan.choice {
            crate::config::ModelChoice::One(k) => k.needs_features(),
            crate::config::ModelChoice::Auto => plan.candidates.iter().any(|k| k.needs_features()),
        }
}

/// A model kept beside the served one, for experiment variants that name it.
#[derive(Clone)]
pub struct Other {
    /// Which model.
    pub kind: ModelKind,
    /// The fitted model.
    pub model: AnyModel,
    /// The recency half-life it is served with (as measured on the holdout).
    pub recency: Option<f32>,
}

/// What [`fit_plan`] fitted.
struct Fitted {
    model: AnyModel,
    holdout: validation::Holdout,
    candidates: Vec<CandidateInfo>,
    others: Vec<Other>,
}

/// Fits the plan's model(s): with `auto` every candidate on the carve, the best by holdout
/// NDCG@10 refitted on everything; models experiments name (`plan.keep`) are measured the
/// same way and refitted too, but never chosen unless they are candidates.
fn fit_plan(
    plan: &ModelPlan,
    m: &tailor_core::Interactions,
    times: &[f64],
    features: Option<&[Vec<String>]>,
) -> ServerResult<Fitted> {
    let fits = |k: &ModelKind| !k.needs_features() || features.is_some();
    let choosable: Vec<ModelKind> = match plan.choice {
        crate::config::ModelChoice::One(k) => vec![k],
        crate::config::ModelChoice::Auto => plan.candidates.iter().copied().filter(fits).collect(),
    };
    let mut kinds = choosable.clone();
    for k in plan.keep.iter().filter(|k| fits(k)) {
        if !kinds.contains(k) {
            kinds.push(*k);
        }
    }
    let (fit, fit_times, held) = validation::carve_with_times(m, times, 0.2)?;
    let h = plan.recency_half_life;
    let recency = (h > 0.0).then(|| tailor_recommend::recency_weights(&fit, &fit_times, h));
    // Fits `kind` with `p` on the carve and measures it, with and without recency.
    let measure =
        |kind: ModelKind, p: &HashMap<String, String>| -> (f64, Result<(validation::Holdout, Option<f32>), String>) {
            let started = Instant::now();
            let probe = zoo::fit(kind, &mut p.clone(), zoo::Inputs { matrix: &fit, times: &fit_times, features });
            let fit_seconds = started.elapsed().as_secs_f64();
            let outcome = probe.map_err(|e| e.to_string()).map(|model| {
                let plain = validation::holdout(model.as_model(), &fit, &held, 10);
                let recent = recency
                    .as_deref()
                    .map(|r| validation::holdout_with_recency(model.as_model(), &fit, &held, 10, Some(r)));
                match recent {
                    Some(r) if r.ndcg > plain.ndcg => (r, Some(h)),
                    _ => (plain, None),
                }
            });
            (fit_seconds, outcome)
        };
    let started = Instant::now();
    let mut params: Vec<HashMap<String, String>> = Vec::new();
    let mut candidates = Vec::new();
    for &kind in &kinds {
        let p = plan.params_of(kind)?;
        let (fit_seconds, outcome) = measure(kind, &p);
        let (holdout, recency_half_life, error) = match outcome {
            Ok((h, r)) => (Some(h), r, None),
            // One model failing (a configured parameter it refuses) must not stop the
            // others; a single configured model's failure is the training's.
            Err(e) if kinds.len() > 1 => (None, None, Some(e)),
            Err(e) => return Err(tailor_recommend::RecommendError::InvalidSpec(e).into()),
        };
        tracing::info!(model = %kind, ndcg = holdout.map(|h| h.ndcg), fit_seconds, error = error.as_deref(), "candidate");
        candidates.push(CandidateInfo {
            model: kind.to_string(),
            params: pairs_text(&p),
            holdout,
            fit_seconds,
            chosen: false,
            trials: 1,
            kept: false,
            recency_half_life,
            error,
        });
        params.push(p);
    }
    // A seeded random search around the configured settings, round-robin over the models
    // that have parameters to tune, for as long again as the configured fits took (at most
    // the budget); a model whose one fit takes over a quarter of it sits out.
    if let Some(budget) = plan.tune_budget {
        let budget = budget.as_secs_f64().min(started.elapsed().as_secs_f64());
        let deadline = Instant::now() + std::time::Duration::from_secs_f64(budget);
        let tunable: Vec<usize> = (0..kinds.len())
            .filter(|&i| {
                candidates[i].error.is_none()
                    && !zoo::search_space(kinds[i]).is_empty()
                    && candidates[i].fit_seconds <= budget / 4.0
            })
            .collect();
        let mut rng = tailor_core::rng::Rng::new(0x007A_110E);
        'search: while !tunable.is_empty() {
            for &i in &tunable {
                if Instant::now() >= deadline {
                    break 'search;
                }
                let p = zoo::sample(kinds[i], &params[i], &mut rng);
                let (fit_seconds, outcome) = measure(kinds[i], &p);
                let c = &mut candidates[i];
                c.trials += 1;
                if let Ok((h, r)) = outcome
                    && c.holdout.is_none_or(|b| h.ndcg > b.ndcg)
                {
                    (c.holdout, c.recency_half_life, c.params, c.fit_seconds) =
                        (Some(h), r, pairs_text(&p), fit_seconds);
                    params[i] = p;
                }
            }
        }
    }
    let best = (0..choosable.len()).filter_map(|i| candidates[i].holdout.map(|h| (i, h))).fold(
        None::<(usize, validation::Holdout)>,
        |b, (i, h)| match b {
            Some((_, bh)) if bh.ndcg >= h.ndcg => b,
            _ => Some((i, h)),
        },
    );
    let Some((at, holdout)) = best else {
        let why: Vec<String> =
            candidates.iter().filter_map(|c| c.error.clone().map(|e| format!("{}: {e}", c.model))).collect();
        return Err(tailor_recommend::RecommendError::InvalidSpec(format!(
            "no candidate model could be fitted ({})",
            why.join("; ")
        ))
        .into());
    };
    candidates[at].chosen = true;
    let kind = kinds[at];
    let model = zoo::fit(kind, &mut params[at].clone(), zoo::Inputs { matrix: m, times, features })?;
    let mut others = Vec::new();
    for (i, &k) in kinds.iter().enumerate() {
        if k == kind || !plan.keep.contains(&k) || candidates[i].error.is_some() {
            continue;
        }
        let model = zoo::fit(k, &mut params[i].clone(), zoo::Inputs { matrix: m, times, features })?;
        candidates[i].kept = true;
        others.push(Other { kind: k, model, recency: candidates[i].recency_half_life });
    }
    Ok(Fitted { model, holdout, candidates, others })
}

/// Builds a version of every served model from the store (blocking; run it off the
/// request threads): popular, trending, per-segment popular and bought-together lists from
/// the current data, and the ALS model fitted or loaded.
pub fn train(
    store: &dyn Store,
    weights: &InteractionWeights,
    source: ModelSource<'_>,
    half_life_days: f64,
    version: u64,
    context_fields: &[usize],
    context_params: &AlsParams,
) -> ServerResult<Live> {
    let start = Instant::now();
    let snapshot_at = Timestamp::now();
    let m = load_interactions(store, InteractionsBuilder::new(weights.clone()))?;
    let user_names = store.user_names()?;
    let item_names = store.item_names()?;
    // Baskets (purchases per order) and trending, from one pass over the events.
    let mut data_until = Timestamp(0);
    let mut baskets: HashMap<String, Vec<u32>> = HashMap::new();
    let mut stamps: Vec<(u32, i64)> = Vec::new();
    let item_index: HashMap<&str, u32> = item_names.iter().enumerate().map(|(i, s)| (s.as_str(), i as u32)).collect();
    let user_index: HashMap<&str, u32> = user_names.iter().enumerate().map(|(i, s)| (s.as_str(), i as u32)).collect();
    // Only a fit needs the holdout's pair times, and only a context model not kept with a
    // loaded version needs the (user, item, context) observations.
    let need_times = matches!(source, ModelSource::Fit(_));
    let need_context = !context_fields.is_empty() && !matches!(&source, ModelSource::Loaded(r) if r.context.is_some());
    // Latest time of every stored (user, item) pair, for the holdout of the latest 20%.
    let mut pair_times = vec![f64::NEG_INFINITY; if need_times { m.nnz() } else { 0 }];
    let ip = m.indptr();
    let field_at = context_fields;
    let mut observed: HashMap<(u32, u32, u32), f32> = HashMap::new();
    let mut context_index: HashMap<String, u32> = HashMap::new();
    store.scan_events(EventFilter::default(), &mut |_, e| {
        data_until = data_until.max(e.ts);
        if let Some(i) = e.item.as_ref().and_then(|it| item_index.get(it.as_str())) {
            if weights.weight(e.kind) > 0.0 {
                stamps.push((*i, e.ts.0));
                if (need_times || need_context)
                    && let Some(&u) = e.user.as_ref().and_then(|u| user_index.get(u.as_str()))
                    && (u as usize) < m.n_users()
                    && let Ok(p) = m.row(tailor_core::UserIdx(u)).0.binary_search(i)
                {
                    if let Some(t) = pair_times.get_mut(ip[u as usize] + p) {
                        // Seconds, as the models' fits read pair times.
                        *t = t.max(e.ts.0 as f64 / 1000.0);
                    }
                    if need_context {
                        let key = context_key(&e.context, field_at);
                        let n = context_index.len() as u32;
                        let c = *context_index.entry(key).or_insert(n);
                        *observed.entry((u, *i, c)).or_insert(0.0) += weights.weight(e.kind);
                    }
                }
            }
            if e.kind == EventKind::Purchase
                && let Some(o) = &e.order_id
            {
                baskets.entry(o.clone()).or_default().push(*i);
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    // Never later than the wall clock: a future-dated row cannot become "now".
    let data_until = Timestamp::reference(data_until);
    let half_life_ms = half_life_days * 86_400_000.0;
    let mut trending = vec![0f32; item_names.len()];
    for (i, ts) in stamps {
        let age = (data_until.0 - ts).max(0) as f64;
        trending[i as usize] += 0.5f64.powf(age / half_life_ms) as f32;
    }
    let baskets: Vec<Vec<u32>> = baskets.into_values().collect();
    let together = BoughtTogether::fit(&baskets, item_names.len(), 20, 2);
    let popular = Popularity::fit(&m).counts;
    // Only users with training interactions have a meaningful vector.
    let user_rows: HashMap<String, u32> = user_names
        .iter()
        .enumerate()
        .filter(|&(i, _)| i + 1 < ip.len() && ip[i + 1] > ip[i])
        .map(|(i, s)| (s.clone(), i as u32))
        .collect();
    // Popular items within each segment of every stored segmentation's latest run.
    let mut segment_popular = HashMap::new();
    let mut latest: HashMap<String, tailor_store::SegmentationRun> = HashMap::new();
    for run in store.segmentation_runs()? {
        latest.insert(run.name.clone(), run);
    }
    for run in latest.values() {
        for seg in &run.segments {
            let members: std::collections::HashSet<u32> =
                store.segment_members(&run.name, &seg.name)?.iter().filter_map(|u| user_rows.get(u).copied()).collect();
            if !members.is_empty() {
                segment_popular.insert(seg.name.clone(), Popularity::fit_users(&m, |u| members.contains(&u)).counts);
            }
        }
    }
    // The context model uses the ALS parameters, with at most 8 sweeps (its three factor
    // matrices make each sweep dearer than ALS's).
    let params = AlsParams { iterations: context_params.iterations.min(8), ..context_params.clone() };
    let (model, holdout, candidates, kept_context, others) = match source {
        ModelSource::Loaded(r) => {
            let r = *r;
            let holdout = r.holdout.or(r.holdout_ndcg.map(|ndcg| validation::Holdout { ndcg, ..Default::default() }));
            (Some(r.model), holdout, r.candidates, r.context, r.others)
        }
        ModelSource::Fit(_) if m.nnz() == 0 => (None, None, Vec::new(), None, Vec::new()),
        ModelSource::Fit(plan) => {
            let features = if plan_needs_features(plan) { item_tokens(store, m.n_items())? } else { None };
            let f = fit_plan(plan, &m, &pair_times, features.as_deref())?;
            (Some(f.model), Some(f.holdout), f.candidates, None, f.others)
        }
    };
    let holdout_ndcg = holdout.map(|h| h.ndcg);
    let recency = candidates.iter().find(|c| c.chosen).and_then(|c| c.recency_half_life);
    // Summed per (user, item, context) like the matrix, in a deterministic order.
    let mut cells: Vec<((u32, u32, u32), f32)> = observed.into_iter().filter(|(_, w)| *w > 0.0).collect();
    cells.sort_unstable_by_key(|c| c.0);
    let mut triples = tailor_recommend::context::Triples::default();
    for ((u, i, c), w) in cells {
        triples.push(u, i, c, w);
    }
    let context = if let Some(kept) = kept_context {
        Some(kept)
    } else if triples.is_empty() {
        None
    } else {
        triples.n_users = triples.n_users.max(m.n_users());
        triples.n_items = triples.n_items.max(m.n_items());
        let model = tailor_recommend::context::fit(&params, &triples)?;
        Some((model, context_index))
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let trained_at = Timestamp::now();
    let info = LiveInfo {
        version,
        trained_at: trained_at.to_rfc3339(),
        train_seconds,
        users: m.n_users(),
        items: m.n_items(),
        pairs: m.nnz(),
        segments: segment_popular.len(),
        holdout_ndcg,
        holdout: holdout.filter(|h| h.coverage > 0.0 || h.recall > 0.0 || h.novelty > 0.0),
        promoted: true,
        model: model.as_ref().map_or_else(|| "none".into(), |m| m.as_model().name().to_string()),
        candidates,
    };
    Ok(Live {
        version,
        trained_at,
        snapshot_at,
        data_until,
        train_seconds,
        model,
        recency,
        others,
        user_rows,
        popular,
        trending,
        segment_popular,
        together,
        context,
        info,
        fingerprint: tailor_recommend::file::fingerprint(&m),
    })
}
