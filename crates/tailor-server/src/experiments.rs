//! Experiments and bandits in the server: definitions kept in the store, sticky assignment
//! per request, exposures logged off the request path, reports computed from stored
//! exposures and events, and layout bandits rewarded by attributed clicks.
//!
//! A request takes part in at most one experiment: the first live one (by name) that covers
//! its slot, targets one of the unit's segments (or everyone) and has the unit in its
//! traffic share. Its `rec_id` then ends in `.{experiment}.{variant}`.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tailor_core::Timestamp;
use tailor_core::rng::Rng;
use tailor_experiment::report::{Attribution, Exposure, Options, Report};
use tailor_experiment::{Assigner, Bandit, Experiment, ExperimentSpec, Policy, Status};
use tailor_store::{EventFilter, ExposureRow, Store};

use crate::error::{ApiError, ApiResult};

/// An experiment with its precomputed split.
pub struct Entry {
    /// Definition and lifecycle.
    pub exp: Experiment,
    /// The split.
    pub assigner: Assigner,
    /// Exposure counters per variant (registered once, not per request).
    exposures: Vec<metrics::Counter>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("exp", &self.exp).finish_non_exhaustive()
    }
}

/// The variant a request got.
#[derive(Debug, Clone)]
pub struct Assigned {
    /// The experiment.
    pub entry: Arc<Entry>,
    /// Variant index.
    pub variant: usize,
}

impl Assigned {
    /// The variant's name.
    pub fn variant_name(&self) -> &str {
        &self.entry.exp.spec.variants[self.variant].name
    }

    /// The suffix that tags a rec_id with the experiment and variant.
    pub fn tag(&self) -> String {
        format!(".{}.{}", self.entry.exp.spec.name, self.variant_name())
    }
}

/// A layout bandit of one slot (`[[serve.bandits]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditConfig {
    /// The slot it lays out.
    pub slot: String,
    /// Arms: layouts (`carousel`, `grid`, `list`) or strategy names.
    pub arms: Vec<String>,
    /// `thompson`, `ucb1`, `epsilon-greedy[:EPS]` or `uniform`.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// A separate posterior per user segment.
    #[serde(default)]
    pub per_segment: bool,
}

fn default_policy() -> String {
    "thompson".into()
}

/// One layout decision, kept until rewarded or evicted.
#[derive(Debug, Clone)]
struct Decision {
    slot: String,
    context: String,
    arm: usize,
    rewarded: bool,
}

/// Decisions remembered for rewards (the oldest are forgotten beyond this).
const MAX_DECISIONS: usize = 1_000_000;

#[derive(Debug, Default)]
struct Decisions {
    by_id: HashMap<String, Decision>,
    order: VecDeque<String>,
    /// rec_id → decision id, for lists served with `decision=`.
    by_rec: HashMap<String, String>,
}

/// Bandit state: the bandits of every slot, their open decisions, and where they persist.
#[derive(Debug)]
pub struct Bandits {
    configs: Vec<BanditConfig>,
    state: Mutex<(HashMap<String, Bandit>, Rng, u64)>,
    decisions: Mutex<Decisions>,
    path: PathBuf,
}

/// Everything experiment-related the server holds.
pub struct Experiments {
    /// Every stored experiment, by name.
    pub list: ArcSwap<Vec<Arc<Entry>>>,
    exposures: std::sync::mpsc::Sender<ExposureRow>,
    /// Layout bandits.
    pub bandits: Bandits,
    /// Computed reports.
    pub reports: Arc<Reports>,
}

/// How long a computed report is answered as it is. An older one is still answered at once
/// (with its `Age`) while a fresh one is computed in the background, so a dashboard that
/// polls never waits on a scan of every exposure, and at most one computation per report
/// runs at a time, however many ask.
pub const REPORT_FRESH: std::time::Duration = std::time::Duration::from_secs(10);
/// Most reports (experiment and bootstrap) kept.
const REPORT_KEYS: usize = 64;

type ReportKey = (String, usize);
type Waiter = tokio::sync::oneshot::Sender<ApiResult<Arc<Report>>>;

#[derive(Default)]
struct ReportSlot {
    done: Option<(std::time::Instant, Arc<Report>)>,
    computing: bool,
    /// Bumped when the experiment changes: a computation started before is not kept.
    generation: u64,
    waiters: Vec<Waiter>,
}

/// Reports computed once and shared (see [`REPORT_FRESH`]).
#[derive(Default)]
pub struct Reports {
    slots: Mutex<HashMap<ReportKey, ReportSlot>>,
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ReportKey, ReportSlot>> {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The report of `key` and its age: the kept one (refreshed in the background when
    /// older than [`REPORT_FRESH`]), else the one `compute` makes now. `fresh` (the
    /// request said `Cache-Control: no-cache`) computes a new one whatever is kept.
    pub async fn get(
        self: &Arc<Self>,
        key: (String, usize),
        fresh: bool,
        compute: impl FnOnce() -> ApiResult<Report> + Send + 'static,
    ) -> ApiResult<(Arc<Report>, std::time::Duration)> {
        if fresh {
            let generation = self.lock().get(&key).map_or(0, |s| s.generation);
            let report = Arc::new(tokio::task::spawn_blocking(compute).await.map_err(ApiError::internal)??);
            if let Some(slot) = self.lock().get_mut(&key)
                && slot.generation == generation
            {
                slot.done = Some((std::time::Instant::now(), report.clone()));
            }
            return Ok((report, std::time::Duration::ZERO));
        }
        let rx = {
            let mut slots = self.lock();
            if !slots.contains_key(&key) && slots.len() >= REPORT_KEYS {
                let oldest = slots
                    .iter()
                    .filter(|(_, s)| !s.computing)
                    .min_by_key(|(_, s)| s.done.as_ref().map(|d| d.0))
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    slots.remove(&k);
                }
            }
            let slot = slots.entry(key.clone()).or_default();
            let start = !slot.computing;
            if let Some((at, report)) = &slot.done {
                let (report, age) = (report.clone(), at.elapsed());
                if age >= REPORT_FRESH && start {
                    slot.computing = true;
                    self.spawn(key, slot.generation, compute);
                }
                return Ok((report, age));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            slot.waiters.push(tx);
            if start {
                slot.computing = true;
                self.spawn(key, slot.generation, compute);
            }
            rx
        };
        // The computation goes on if this request gives up (timeout): the next one gets it.
        let report = rx.await.map_err(ApiError::internal)??;
        Ok((report, std::time::Duration::ZERO))
    }

    /// Starts computing the report of `key` in the background unless one is kept or
    /// being computed (the server warms its running experiments' reports at start, so the
    /// dashboard's first look does not wait on a scan).
    pub fn warm(self: &Arc<Self>, key: (String, usize), compute: impl FnOnce() -> ApiResult<Report> + Send + 'static) {
        let mut slots = self.lock();
        if slots.len() >= REPORT_KEYS && !slots.contains_key(&key) {
            return;
        }
        let slot = slots.entry(key.clone()).or_default();
        if slot.done.is_none() && !slot.computing {
            slot.computing = true;
            self.spawn(key, slot.generation, compute);
        }
    }

    fn spawn(
        self: &Arc<Self>,
        key: ReportKey,
        generation: u64,
        compute: impl FnOnce() -> ApiResult<Report> + Send + 'static,
    ) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = compute().map(Arc::new);
            let mut slots = this.lock();
            let Some(slot) = slots.get_mut(&key) else { return };
            slot.computing = false;
            if let Ok(r) = &result
                && slot.generation == generation
            {
                slot.done = Some((std::time::Instant::now(), r.clone()));
            }
            for w in slot.waiters.drain(..) {
                let _ = w.send(result.clone());
            }
        });
    }

    /// Forgets the reports of experiment `name` (it changed).
    pub fn invalidate(&self, name: &str) {
        for (k, slot) in self.lock().iter_mut() {
            if k.0 == name {
                slot.done = None;
                slot.generation += 1;
            }
        }
    }
}

fn entry(exp: Experiment) -> ApiResult<Arc<Entry>> {
    let assigner = Assigner::new(&exp.spec)?;
    let exposures = exp
        .spec
        .variants
        .iter()
        .map(|v| {
            metrics::counter!("tailor_experiment_exposures_total", "experiment" => exp.spec.name.clone(), "variant" => v.name.clone())
        })
        .collect();
    Ok(Arc::new(Entry { exp, assigner, exposures }))
}

/// Reads the stored experiments.
pub fn load(store: &dyn Store) -> ApiResult<Vec<Experiment>> {
    store
        .experiments()?
        .into_iter()
        .map(|(name, bytes)| {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::internal(format!("stored experiment {name:?} cannot be read: {e}")))
        })
        .collect()
}

/// Stores an experiment (replacing its previous record).
pub fn save(store: &dyn Store, exp: &Experiment) -> ApiResult<()> {
    let bytes = serde_json::to_vec(exp).map_err(|e| ApiError::internal(format!("encoding an experiment: {e}")))?;
    store.put_experiment(&exp.spec.name, &bytes)?;
    Ok(())
}

/// Creates a stored draft; 409 when the name is taken.
pub fn create(store: &dyn Store, spec: ExperimentSpec, by: Option<String>) -> ApiResult<Experiment> {
    if load(store)?.iter().any(|e| e.spec.name == spec.name) {
        return Err(ApiError::conflict(format!("an experiment named {:?} already exists", spec.name)));
    }
    let exp = Experiment::create(spec, Timestamp::now(), by)?;
    save(store, &exp)?;
    Ok(exp)
}

/// Moves a stored experiment to `to`; 404 when unknown, 409 when the move is not allowed.
pub fn transition(store: &dyn Store, name: &str, to: Status, by: Option<String>) -> ApiResult<Experiment> {
    let mut exp = load(store)?
        .into_iter()
        .find(|e| e.spec.name == name)
        .ok_or_else(|| ApiError::not_found(format!("experiment {name:?} not found")))?;
    exp.transition(to, Timestamp::now(), by)?;
    save(store, &exp)?;
    Ok(exp)
}

/// What starting (or having created) `exp` does to the other live experiments: a request
/// takes part in the first live experiment by name that covers its slot, so where two
/// share a slot one of them gets no new traffic there. One warning per pair.
pub fn shadowing(exp: &Experiment, others: &[Experiment], now: Timestamp) -> Vec<String> {
    let mut out = Vec::new();
    for other in others.iter().filter(|o| o.spec.name != exp.spec.name && o.is_live(now)) {
        let shared = exp.spec.shared_slots(&other.spec);
        if shared.is_empty() {
            continue;
        }
        let slots = if shared == ["*"] { "every slot".to_string() } else { format!("slot {}", shared.join(", ")) };
        let (first, second) = if exp.spec.name < other.spec.name { (exp, other) } else { (other, exp) };
        out.push(format!(
            "{:?} and the running {:?} share {slots}: a request takes part in the first live experiment by name, \
             so {:?} gets no new users there while {:?} runs",
            exp.spec.name, other.spec.name, second.spec.name, first.spec.name
        ));
    }
    out
}

/// The experiment as JSON with the [`shadowing`] warnings of running it now.
fn with_warnings(store: &dyn Store, exp: Experiment) -> ApiResult<crate::api::ExperimentChanged> {
    let warnings = shadowing(&exp, &load(store)?, Timestamp::now());
    Ok(crate::api::ExperimentChanged { experiment: exp, warnings })
}

/// Computes a report from the stored exposures and the events since the first of them,
/// read without holding the exposures ([`Attribution`]).
pub fn report(store: &dyn Store, exp: &Experiment, opts: Options) -> ApiResult<Report> {
    let name = &exp.spec.name;
    let unreadable =
        |e: serde_json::Error| ApiError::internal(format!("a stored exposure of {name:?} cannot be read: {e}"));
    let mut failed = None;
    // Events before the first exposure attribute nothing: a first pass reads only the
    // exposures' times (exposures may be backfilled, so the status history is not enough).
    let mut since: Option<Timestamp> = None;
    store.scan_exposures(name, &mut |_, record| {
        let ts = Exposure::ts_from_json(record).map_err(unreadable);
        visit(&mut failed, ts.map(|ts| since = Some(since.map_or(ts, |s| s.min(ts)))))
    })?;
    failed.take().map_or(Ok(()), Err)?;
    let mut input = Attribution::new(exp)?;
    if since.is_some() {
        let filter = EventFilter { since, until: None, kinds: Some(Attribution::KINDS) };
        store.scan_events(filter, &mut |_, e| visit(&mut failed, input.event(&e).map_err(ApiError::from)))?;
        failed.take().map_or(Ok(()), Err)?;
    }
    let mut input = input.exposures();
    if since.is_some() {
        store.scan_exposures(name, &mut |_, record| {
            let read = Exposure::from_json(record)
                .map_err(unreadable)
                .and_then(|x| input.exposure(&x).map_err(ApiError::from));
            visit(&mut failed, read)
        })?;
        failed.take().map_or(Ok(()), Err)?;
    }
    Ok(input.finish(opts)?)
}

/// A store scan's step that can fail: the first failure is kept and stops the scan.
fn visit(failed: &mut Option<ApiError>, step: ApiResult<()>) -> ControlFlow<()> {
    match step {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            *failed = Some(e);
            ControlFlow::Break(())
        }
    }
}

impl Experiments {
    /// Loads the stored experiments, creates and starts the configured ones that are not
    /// stored yet, and starts the exposure writer.
    pub fn open(
        store: Arc<dyn Store>,
        configured: &[ExperimentSpec],
        bandits: &[BanditConfig],
        data_dir: PathBuf,
    ) -> ApiResult<Self> {
        let mut stored = load(store.as_ref())?;
        for spec in configured {
            if !stored.iter().any(|e| e.spec.name == spec.name) {
                let mut exp = Experiment::create(spec.clone(), Timestamp::now(), Some("config".into()))?;
                exp.transition(Status::Running, Timestamp::now(), Some("config".into()))?;
                save(store.as_ref(), &exp)?;
                stored.push(exp);
            }
        }
        let list = stored.into_iter().map(entry).collect::<ApiResult<Vec<_>>>()?;
        let (tx, rx) = std::sync::mpsc::channel::<ExposureRow>();
        std::thread::Builder::new()
            .name("tailor-exposures".into())
            .spawn(move || exposure_writer(store, rx))
            .map_err(|e| ApiError::internal(format!("cannot start the exposure writer: {e}")))?;
        Ok(Self {
            list: ArcSwap::from_pointee(sorted(list)),
            exposures: tx,
            bandits: Bandits::open(bandits, data_dir.join("bandits.json"))?,
            reports: Arc::default(),
        })
    }

    /// Warms the reports the dashboard opens on (those of the running experiments, without
    /// bootstrap); call from within the runtime.
    pub fn warm_reports(&self, store: &Arc<dyn Store>) {
        for e in self.list.load().iter().filter(|e| e.exp.status == Status::Running) {
            let (store, exp) = (store.clone(), e.exp.clone());
            self.reports.warm((exp.spec.name.clone(), 0), move || {
                report(store.as_ref(), &exp, Options { bootstrap: 0, ..Options::default() })
            });
        }
    }

    /// Re-reads the stored experiments (after a create or a status change).
    pub fn refresh(&self, store: &dyn Store) -> ApiResult<()> {
        let list = load(store)?.into_iter().map(entry).collect::<ApiResult<Vec<_>>>()?;
        let old = self.list.load_full();
        for e in &list {
            if !old.iter().any(|o| o.exp == e.exp) {
                self.reports.invalidate(&e.exp.spec.name);
            }
        }
        self.list.store(Arc::new(sorted(list)));
        Ok(())
    }

    /// The experiment and variant of a unit on a slot, if any applies now.
    pub fn assign(&self, unit: &str, slot: Option<&str>, segments: &[String], now: Timestamp) -> Option<Assigned> {
        let list = self.list.load();
        for e in list.iter() {
            let spec = &e.exp.spec;
            if !e.exp.is_live(now) || !spec.covers_slot(slot) {
                continue;
            }
            if !spec.segments.is_empty() && !spec.segments.iter().any(|s| segments.contains(s)) {
                continue;
            }
            if let Some(variant) = e.assigner.variant(unit) {
                return Some(Assigned { entry: e.clone(), variant });
            }
        }
        None
    }

    /// Queues an exposure for the writer (never blocks the request).
    pub fn log_exposure(&self, a: &Assigned, x: &Exposure) {
        let Ok(record) = serde_json::to_vec(x) else { return };
        let row = ExposureRow { experiment: a.entry.exp.spec.name.clone(), unit: x.unit.clone(), record };
        if self.exposures.send(row).is_err() {
            tracing::error!("the exposure writer has stopped; exposures are not logged");
        }
        if let Some(c) = a.entry.exposures.get(a.variant) {
            c.increment(1);
        }
    }
}

fn sorted(mut list: Vec<Arc<Entry>>) -> Vec<Arc<Entry>> {
    list.sort_by(|a, b| a.exp.spec.name.cmp(&b.exp.spec.name));
    list
}

/// How long queued exposures wait to share one transaction.
const EXPOSURE_FLUSH: std::time::Duration = std::time::Duration::from_millis(250);

/// Stores queued exposures in one durable transaction per quarter second (or per 50,000):
/// one commit per served list cost a sixth of the server's CPU under load. An exposure is a
/// log line, so a crash may lose the last quarter second of them, never an event.
fn exposure_writer(store: Arc<dyn Store>, rx: std::sync::mpsc::Receiver<ExposureRow>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Ok(first) = rx.recv() {
        let deadline = std::time::Instant::now() + EXPOSURE_FLUSH;
        let mut batch = vec![first];
        let mut open = true;
        while batch.len() < 50_000 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) => batch.push(r),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Err(e) = store.append_exposures(&batch) {
            tracing::error!(error = %e, lost = batch.len(), "storing exposures failed");
        }
        if !open {
            break;
        }
    }
}

/// What `GET /v1/users/{id}/layout` answers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LayoutDecision {
    /// The slot.
    pub slot: String,
    /// The chosen arm (layout).
    pub layout: String,
    /// Send it back as `decision=` with the recommendations request (or as an event's
    /// `rec_id`) so clicks reward this choice.
    pub decision_id: Option<String>,
    /// `bandit`, `experiment` or `default`.
    pub source: &'static str,
    /// The experiment whose variant sets the layout (source `experiment`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// That variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Bandits {
    /// The bandits of `configs`, with the state persisted at `path` when it matches them.
    pub fn open(configs: &[BanditConfig], path: PathBuf) -> ApiResult<Self> {
        let mut bandits: HashMap<String, Bandit> = if path.exists() {
            let text = fs_err::read_to_string(&path).map_err(|e| ApiError::internal(e.to_string()))?;
            serde_json::from_str(&text)
                .map_err(|e| ApiError::internal(format!("{} cannot be read: {e}", path.display())))?
        } else {
            HashMap::new()
        };
        for (i, c) in configs.iter().enumerate() {
            let policy = Policy::parse(&c.policy)
                .map_err(|e| ApiError::invalid(format!("serve.bandits[{i}].policy"), e.to_string()))?;
            let keep = bandits.get(&c.slot).is_some_and(|b| b.arms == c.arms && b.policy == policy);
            if !keep {
                let b = Bandit::new(c.arms.clone(), policy)
                    .map_err(|e| ApiError::invalid(format!("serve.bandits[{i}].arms"), e.to_string()))?;
                bandits.insert(c.slot.clone(), b);
            }
        }
        bandits.retain(|slot, _| configs.iter().any(|c| &c.slot == slot));
        Ok(Self {
            configs: configs.to_vec(),
            state: Mutex::new((bandits, Rng::new(Timestamp::now().0 as u64), 0)),
            decisions: Mutex::new(Decisions::default()),
            path,
        })
    }

    /// True when some slot has a bandit.
    pub fn active(&self) -> bool {
        !self.configs.is_empty()
    }

    /// Chooses a layout for a slot (`None` when no bandit lays it out).
    pub fn decide(&self, slot: &str, segments: &[String]) -> Option<LayoutDecision> {
        let config = self.configs.iter().find(|c| c.slot == slot)?;
        let context = if config.per_segment { segments.first().cloned().unwrap_or_default() } else { String::new() };
        let (arm, layout, id) = {
            let mut guard = self.state.lock().ok()?;
            let (bandits, rng, counter) = &mut *guard;
            let bandit = bandits.get_mut(slot)?;
            let arm = bandit.choose(&context, rng);
            *counter += 1;
            let id = format!("d{:x}{:08x}", *counter, rng.next_u64() as u32);
            (arm, bandit.arms[arm].clone(), id)
        };
        if let Ok(mut d) = self.decisions.lock() {
            d.by_id.insert(id.clone(), Decision { slot: slot.to_string(), context, arm, rewarded: false });
            d.order.push_back(id.clone());
            while d.order.len() > MAX_DECISIONS {
                if let Some(old) = d.order.pop_front() {
                    d.by_id.remove(&old);
                }
            }
        }
        metrics::counter!("tailor_bandit_decisions_total", "slot" => slot.to_string(), "arm" => layout.clone())
            .increment(1);
        Some(LayoutDecision {
            slot: slot.to_string(),
            layout,
            decision_id: Some(id),
            source: "bandit",
            experiment: None,
            variant: None,
        })
    }

    /// Remembers that a served list belongs to a decision (its clicks reward it).
    pub fn link(&self, rec_id: &str, decision: &str) {
        if let Ok(mut d) = self.decisions.lock()
            && d.by_id.contains_key(decision)
        {
            if d.by_rec.len() > MAX_DECISIONS {
                d.by_rec.clear();
            }
            d.by_rec.insert(rec_id.to_string(), decision.to_string());
        }
    }

    /// Rewards the decision behind a clicked or bought `rec_id` (once per decision).
    pub fn reward(&self, rec_id: &str) -> bool {
        let target = {
            let Ok(mut d) = self.decisions.lock() else { return false };
            let id = d.by_rec.get(rec_id).cloned().unwrap_or_else(|| rec_id.to_string());
            match d.by_id.get_mut(&id) {
                Some(dec) if !dec.rewarded => {
                    dec.rewarded = true;
                    Some(dec.clone())
                }
                _ => None,
            }
        };
        let Some(dec) = target else { return false };
        if let Ok(mut guard) = self.state.lock()
            && let Some(b) = guard.0.get_mut(&dec.slot)
        {
            return b.reward(&dec.context, dec.arm, 1.0).is_ok();
        }
        false
    }

    /// A copy of every bandit's state.
    pub fn snapshot(&self) -> HashMap<String, Bandit> {
        self.state.lock().map(|g| g.0.clone()).unwrap_or_default()
    }

    /// Writes the state atomically (temporary file, then rename).
    pub fn persist(&self) -> ApiResult<()> {
        if self.configs.is_empty() {
            return Ok(());
        }
        let text = serde_json::to_string(&self.snapshot()).map_err(|e| ApiError::internal(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        if let Some(dir) = self.path.parent() {
            fs_err::create_dir_all(dir).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        fs_err::write(&tmp, text).map_err(|e| ApiError::internal(e.to_string()))?;
        fs_err::rename(&tmp, &self.path).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(())
    }
}

// HTTP handlers.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::routes::{blocking, query_map};

type St = State<Arc<AppState>>;

fn find(s: &AppState, name: &str) -> ApiResult<Arc<Entry>> {
    s.experiments
        .list
        .load()
        .iter()
        .find(|e| e.exp.spec.name == name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("experiment {name:?} not found")))
}

/// The list changed: reload it and drop cached lists (they may carry old variants).
fn changed(s: &AppState) -> ApiResult<()> {
    s.experiments.refresh(s.store.as_ref())?;
    s.snapshots.bump();
    Ok(())
}

pub(crate) async fn list(State(s): St) -> ApiResult<Response> {
    let loaded = s.experiments.list.load();
    let list: Vec<&Experiment> = loaded.iter().map(|e| &e.exp).collect();
    Ok(Json(crate::api::ExperimentListRef { experiments: list }).into_response())
}

pub(crate) async fn show(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(Json(&find(&s, &name)?.exp).into_response())
}

pub(crate) async fn create_route(
    State(s): St,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let start = match q.get("start").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(ApiError::invalid("start", format!("start={v}: expected true or false"))),
    };
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let spec: ExperimentSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(if path == "." { "body".to_string() } else { path }, e.inner().to_string())
    })?;
    crate::routes::check_variant_params(&s.snapshots.catalog(), &spec)?;
    let state = s.clone();
    let exp = blocking(move || {
        let mut exp = create(state.store.as_ref(), spec, Some("api".into()))?;
        if start {
            exp = transition(state.store.as_ref(), &exp.spec.name, Status::Running, Some("api".into()))?;
        }
        changed(&state)?;
        with_warnings(state.store.as_ref(), exp)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(exp)).into_response())
}

async fn move_to(s: Arc<AppState>, name: String, to: Status) -> ApiResult<Response> {
    let state = s.clone();
    let exp = blocking(move || {
        let exp = transition(state.store.as_ref(), &name, to, Some("api".into()))?;
        changed(&state)?;
        with_warnings(state.store.as_ref(), exp)
    })
    .await?;
    Ok(Json(exp).into_response())
}

pub(crate) async fn start(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    move_to(s, name, Status::Running).await
}

pub(crate) async fn pause(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    move_to(s, name, Status::Paused).await
}

pub(crate) async fn stop(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    move_to(s, name, Status::Stopped).await
}

pub(crate) async fn report_route(
    State(s): St,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let bootstrap = match q.get("bootstrap") {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n == 0 || (100..=100_000).contains(n))
            .ok_or_else(|| ApiError::invalid("bootstrap", format!("bootstrap={v}: expected 0 or 100 to 100000")))?,
    };
    let entry = find(&s, &name)?;
    let state = s.clone();
    let fresh = headers
        .get(axum::http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|d| matches!(d.trim(), "no-cache" | "max-age=0")));
    let (report, age) = s
        .experiments
        .reports
        .get((name, bootstrap), fresh, move || {
            report(state.store.as_ref(), &entry.exp, Options { bootstrap, ..Options::default() })
        })
        .await?;
    let mut response = Json(report.as_ref()).into_response();
    response.headers_mut().insert(axum::http::header::AGE, axum::http::HeaderValue::from(age.as_secs()));
    Ok(response)
}

pub(crate) async fn layout(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let slot =
        q.get("slot").filter(|v| !v.trim().is_empty()).ok_or_else(|| ApiError::invalid("slot", "slot is required"))?;
    s.settle(&id)?;
    let segments = s.segments_of(&id);
    if let Some(a) = s.experiments.assign(&id, Some(slot), &segments, Timestamp::now())
        && let Some(layout) = a.entry.exp.spec.variants[a.variant].layout
    {
        return Ok(Json(LayoutDecision {
            slot: slot.clone(),
            layout: layout.name().to_string(),
            decision_id: None,
            source: "experiment",
            experiment: Some(a.entry.exp.spec.name.clone()),
            variant: Some(a.variant_name().to_string()),
        })
        .into_response());
    }
    let decision = s.experiments.bandits.decide(slot, &segments).unwrap_or_else(|| LayoutDecision {
        slot: slot.clone(),
        layout: "carousel".into(),
        decision_id: None,
        source: "default",
        experiment: None,
        variant: None,
    });
    if decision.source == "bandit" {
        s.insights.decision(slot, &decision.layout);
    }
    Ok(Json(decision).into_response())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn sample() -> Report {
        let spec: ExperimentSpec = serde_json::from_value(serde_json::json!({
            "name": "x", "variants": [{"name": "a"}, {"name": "b"}]
        }))
        .expect("spec");
        let exp = Experiment::create(spec, Timestamp(0), None).expect("create");
        tailor_experiment::analyse(&exp, &[], &[], Options::default()).expect("report")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_report_is_computed_once_for_concurrent_readers_and_again_after_a_change() {
        let reports = Arc::new(Reports::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = |runs: Arc<AtomicUsize>| {
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(sample())
            }
        };
        // Eight readers at once: one computation, everyone gets its result.
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (reports, c) = (reports.clone(), compute(runs.clone()));
                tokio::spawn(async move { reports.get(("x".into(), 0), false, c).await })
            })
            .collect();
        let mut first = None;
        for r in readers {
            let (report, age) = r.await.expect("join").expect("report");
            assert_eq!(age, std::time::Duration::ZERO);
            let first = first.get_or_insert_with(|| report.clone());
            assert!(Arc::ptr_eq(first, &report));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // A fresh one is answered as it is, with its age.
        let (again, _) = reports.get(("x".into(), 0), false, compute(runs.clone())).await.expect("kept");
        assert!(Arc::ptr_eq(first.as_ref().expect("first"), &again));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Another bootstrap is another report; warming a kept one does nothing.
        reports.get(("x".into(), 100), false, compute(runs.clone())).await.expect("other");
        reports.warm(("x".into(), 0), compute(runs.clone()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // The experiment changed: computed again, and a computation that started before the
        // change is not kept.
        reports.invalidate("x");
        let (fresh, _) = reports.get(("x".into(), 0), false, compute(runs.clone())).await.expect("fresh");
        assert!(!Arc::ptr_eq(first.as_ref().expect("first"), &fresh));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        reports.invalidate("y");
        reports.get(("x".into(), 0), false, compute(runs.clone())).await.expect("kept");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // Asked fresh (Cache-Control: no-cache): computed whatever is kept, and kept.
        let (forced, age) = reports.get(("x".into(), 0), true, compute(runs.clone())).await.expect("forced");
        assert_eq!((runs.load(Ordering::SeqCst), age), (4, std::time::Duration::ZERO));
        let (kept, _) = reports.get(("x".into(), 0), false, compute(runs.clone())).await.expect("kept");
        assert!(Arc::ptr_eq(&forced, &kept));
        // A failure reaches every waiter and is not kept.
        reports.invalidate("x");
        let failed = reports.get(("x".into(), 0), false, || Err(ApiError::internal("scan failed"))).await;
        assert!(failed.is_err());
        reports.get(("x".into(), 0), false, compute(runs.clone())).await.expect("after failure");
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }
}
