//! tailor's HTTP API (`tailor serve`): thin axum handlers over the library crates.
//!
//! - [`AppState`]: the store; the catalog and the trained models ([`snapshot::Snapshots`],
//!   each swapped whole, so a retrain or a catalog upsert swaps them atomically while
//!   in-flight requests finish on the old ones); the real-time state
//!   ([`online::Subjects`]) and the list cache ([`online::ListCache`]); the model
//!   lifecycle ([`models::Models`]); keys and rate limits ([`guard::Guard`]).
//! - [`router`]: `/v1` routes (see [`routes::ROUTES`], which also generates the OpenAPI
//!   document), with auth by API key and scope, rate limits, body limits, CORS, timeouts
//!   and per-route latency metrics.
//! - [`serve`]: binds, serves and shuts down gracefully (draining in-flight requests).
//!
//! **Invariants:** an event is answered `202` only after the store committed it (fsync);
//! the same event id is never counted twice (store and memory); a request reads one model
//! version from start to end; a purchase hides the item from that user's next list.

pub mod admin;
pub mod alerts;
pub mod api;
pub mod config;
pub mod drift;
pub mod error;
pub mod experiments;
pub mod fairness;
pub mod guard;
pub mod insights;
pub mod lifetime;
pub mod live;
pub mod memberships;
pub mod models;
pub mod online;
pub mod openapi;
pub mod registry;
pub mod routes;
pub mod segmentation;
pub mod serving;
pub mod snapshot;
pub mod table;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tailor_core::{Event, InteractionWeights, Timestamp};
use tailor_store::{Store, WriteBatch, WriteReport};

use crate::config::ServeConfig;
use crate::error::{ApiError, ApiResult};
use crate::live::{Catalog, Live};
use crate::online::{Cache, Online, Rec, Subjects};

/// Everything the handlers share.
pub struct AppState {
    /// The `[serve]` settings, validated; read-only while serving.
    pub config: ServeConfig,
    /// The system of record.
    pub store: Arc<dyn Store>,
    /// The catalog (swapped on upserts) and the trained models (swapped on retraining),
    /// with the generation that names them.
    pub snapshots: snapshot::Snapshots,
    /// Recent events per user and session (in memory; a shared profile store plugs in
    /// behind [`online::Subjects`]).
    pub online: Box<dyn online::Subjects>,
    /// Served lists (in process; a shared cache plugs in behind [`online::ListCache`]).
    pub cache: Box<dyn online::ListCache>,
    /// Event weights (as in training).
    pub weights: InteractionWeights,
    /// Serialises read-modify-writes of item and user records and of the catalog (PATCH,
    /// and catalog updates after upserts or events naming new items).
    record_writes: Mutex<()>,
    /// Registered model versions, the training lock, erasures since the live version.
    pub models: models::Models,
    /// Real-time segment memberships: the segmentations that can place one user, every
    /// user's current segments, who needs re-placing, the queue to the store.
    pub memberships: memberships::Memberships,
    /// The configured alerts, the counters events feed them, their history.
    pub alerts: alerts::Alerts,
    /// Who may call what, and how often: API keys with scopes and the per-key rate limit.
    pub guard: guard::Guard,
    /// Counter mixed into recommendation ids.
    rec_counter: AtomicU64,
    /// The group committer's queue (see [`group_writer`]).
    writer: std::sync::mpsc::SyncSender<WriteJob>,
    /// Prometheus exposition.
    pub metrics: PrometheusHandle,
    /// Experiments, exposures and layout bandits.
    pub experiments: experiments::Experiments,
    /// The dashboard's rollups and live feed.
    pub insights: insights::Insights,
}

fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]);
            // Buckets are constants, so this cannot fail; fall back to summaries if it does.
            let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests, embedding): then ours only renders.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe_metrics();
                // Histogram samples wait in buckets until drained: without upkeep (or a
                // scrape) they would grow with every request.
                let upkeep = handle.clone();
                let _ = std::thread::Builder::new().name("tailor-metrics-upkeep".into()).spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// HELP text and units of every metric (`promtool check metrics` requires them).
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "tailor_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route, method and status"
    );
    describe_counter!("tailor_events_ingested_total", "Events stored (durably) through the API");
    describe_counter!("tailor_events_duplicate_total", "Events received again (same id) and not stored twice");
    describe_counter!("tailor_recommendations_served_total", "Recommendation lists computed, by cold-start strategy");
    describe_counter!("tailor_recommendation_cache_total", "Recommendation requests by cache result (hit, miss, off)");
    describe_counter!("tailor_bandit_decisions_total", "Layout bandit decisions, by slot and arm");
    describe_counter!(
        "tailor_experiment_exposures_total",
        "Served lists logged as experiment exposures, by experiment and variant"
    );
    describe_counter!(
        "tailor_model_candidates_rejected_total",
        "Retrained candidates not promoted (holdout NDCG@10 too low)"
    );
    describe_counter!("tailor_segment_reassignments_total", "Users placed in other segments in real time");
    describe_counter!("tailor_rec_impressions_total", "Impression events carrying a rec_id (recommendations shown)");
    describe_counter!("tailor_rec_clicks_total", "Click events carrying a rec_id (recommendations clicked)");
    describe_counter!("tailor_rec_purchases_total", "Purchase events carrying a rec_id (recommendations bought)");
    describe_gauge!("tailor_alert_firing", "1 while the server's own alert fires, by alertname");
    describe_gauge!("tailor_model_version", "The served model version");
    describe_gauge!("tailor_model_train_seconds", Unit::Seconds, "Training time of the served model version");
    describe_gauge!("tailor_model_holdout_ndcg_at_10", "Holdout NDCG@10 of the served model version");
    describe_gauge!("tailor_model_age_seconds", Unit::Seconds, "Time since the served model version was trained");
    describe_gauge!("tailor_online_subjects", "Users and sessions with recent events in memory");
    describe_gauge!("tailor_cached_lists", "Recommendation lists in the cache (at most serve.cache_entries)");
    describe_gauge!("tailor_segment_size", "Members of a segment now, by segmentation and segment");
}

impl AppState {
    /// Opens the state over a store: loads the catalog and every stored event into the
    /// real-time state (blocking; call before serving). Models come from [`AppState::start_blocking`].
    pub fn open(
        config: ServeConfig,
        store: Arc<dyn Store>,
        weights: InteractionWeights,
        models_dir: std::path::PathBuf,
    ) -> Result<Self, String> {
        config.validate()?;
        let online = Online::new(config.history_per_user, config.max_sessions);
        // The catalog once: its index and item features serve the scan below. New-arrival
        // flags use the wall clock until the first model version swaps in a catalog dated
        // by its data.
        let catalog = Catalog::load(store.as_ref(), Timestamp::now()).map_err(|e| e.to_string())?;
        let insights = insights::Insights::default();
        store
            .scan_events(tailor_store::EventFilter::default(), &mut |_, e| {
                let rec = Rec::of(&e, &catalog);
                insights.event(&e, rec.item, false);
                if let Some(u) = &e.user {
                    let info = e.item.as_ref().and_then(|i| catalog.features.get(i.as_str()));
                    online.push_event(&online::user_key(u.as_str()), rec, false, Some((&e, info)));
                } else if let Some(s) = &e.session {
                    online.push(&online::session_key(s), rec, false);
                }
                std::ops::ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
        let ttl = Duration::from_secs(config.cache_ttl_seconds);
        let (segment_changes, changes_rx) = std::sync::mpsc::channel();
        let seg_store = store.clone();
        std::thread::Builder::new()
            .name("tailor-segment-writer".into())
            .spawn(move || memberships::segment_writer(seg_store.as_ref(), &changes_rx))
            .map_err(|e| format!("starting the segment writer: {e}"))?;
        let data_dir = models_dir.parent().map_or_else(|| models_dir.clone(), std::path::Path::to_path_buf);
        let experiments = experiments::Experiments::open(store.clone(), &config.experiments, &config.bandits, data_dir)
            .map_err(|e| e.to_string())?;
        let (writer, jobs) = std::sync::mpsc::sync_channel(1024);
        let writer_store = store.clone();
        std::thread::Builder::new()
            .name("tailor-event-writer".into())
            .spawn(move || group_writer(writer_store.as_ref(), &jobs))
            .map_err(|e| format!("starting the event writer: {e}"))?;
        let models = models::Models::open(store.clone(), registry::Registry::new(models_dir))?;
        let alerts = alerts::Alerts::new(&config.alerts, Timestamp::now());
        Ok(Self {
            alerts,
            models,
            writer,
            cache: Box::new(Cache::new(ttl, config.cache_entries)),
            guard: guard::Guard::new(&config),
            config,
            store,
            snapshots: snapshot::Snapshots::new(catalog),
            online: Box::new(online),
            weights,
            record_writes: Mutex::new(()),
            memberships: memberships::Memberships::new(segment_changes),
            rec_counter: AtomicU64::new(0),
            metrics: metrics_handle(),
            experiments,
            insights,
        })
    }

    /// Serves the registered live version when there is one (a restart keeps serving what
    /// was promoted), else trains the first version. Blocking.
    pub fn start_blocking(&self) -> ApiResult<live::LiveInfo> {
        let reg = self.models.registry.read()?;
        let registered = match reg.live {
            Some(v) if self.models.registry.has_model(v)? => Some(v),
            _ => None,
        };
        match registered {
            Some(v) => {
                tracing::info!(version = v, "serving the registered model version");
                self.reload_blocking()
            }
            None => Ok(self.retrain_blocking()?.candidate),
        }
    }

    /// Makes the registry's live version the served one (after `tailor model rollback`, or
    /// another node's promotion): loads its model, rebuilds the lists from current data and
    /// swaps. Blocking.
    pub fn reload_blocking(&self) -> ApiResult<live::LiveInfo> {
        let reg = self.models.registry.read()?;
        let Some(v) = reg.live else {
            return Err(ApiError::unavailable("no model version is registered yet; retrain first"));
        };
        // Users erased since this version was trained are forgotten before it loads.
        self.models.registry.scrub(v, &self.store.user_names()?)?;
        let model = self.models.registry.load_model(v)?;
        let context = self.models.registry.load_context(v)?;
        let info = reg.get(v);
        let candidates = info.map(|i| i.candidates.clone()).unwrap_or_default();
        let recorded = live::Recorded {
            model,
            holdout_ndcg: info.and_then(|i| i.holdout_ndcg),
            holdout: info.and_then(|i| i.holdout),
            others: self.models.registry.load_others(v, &candidates)?,
            candidates,
            context,
        };
        let live = live::train(
            self.store.as_ref(),
            &self.weights,
            live::ModelSource::Loaded(Box::new(recorded)),
            self.config.trending_half_life_days,
            v,
            &self.config.context_fields.0,
            &self.config.als_params,
        )?;
        let info = live.info.clone();
        self.swap(live)?;
        Ok(info)
    }

    /// The models experiment variants name (experiments not stopped, stored or configured),
    /// which a version keeps beside its served one.
    fn experiment_models(&self) -> ApiResult<Vec<tailor_recommend::zoo::ModelKind>> {
        let stored = experiments::load(self.store.as_ref())?;
        let specs = stored
            .iter()
            .filter(|e| e.status != tailor_experiment::Status::Stopped)
            .map(|e| &e.spec)
            .chain(self.config.experiments.iter());
        let mut out = Vec::new();
        for spec in specs {
            for name in spec.variants.iter().filter_map(|v| v.model.as_deref()) {
                let kind = crate::config::servable(name).map_err(|e| ApiError::invalid("model", e))?;
                if !out.contains(&kind) {
                    out.push(kind);
                }
            }
        }
        Ok(out)
    }

    /// Trains a candidate version from the store, measures it on a holdout, and promotes
    /// it (registers, keeps the last `keep_versions`, swaps it in while requests in flight
    /// finish on the old one) unless its holdout NDCG@10 is worse than the live version's
    /// by more than `promote_tolerance`. Blocking.
    pub fn retrain_blocking(&self) -> ApiResult<Retrain> {
        let mut reg = self.models.registry.read()?;
        let version = reg.next_version().max(self.snapshots.live().as_ref().map_or(1, |l| l.version + 1));
        let mut live = live::train(
            self.store.as_ref(),
            &self.weights,
            live::ModelSource::Fit(&live::ModelPlan {
                keep: self.experiment_models()?,
                ..live::ModelPlan::of(&self.config)
            }),
            self.config.trending_half_life_days,
            version,
            &self.config.context_fields.0,
            &self.config.als_params,
        )?;
        let current = self.snapshots.live().as_ref().and_then(|l| l.info.holdout_ndcg);
        let candidate = live.info.holdout_ndcg;
        self.alerts.model_judged(candidate, current, Timestamp::now());
        let (promote, reason) = match (candidate, current) {
            (_, None) => (true, "no live version to compare with".to_string()),
            (Some(c), Some(l)) if c + self.config.promote_tolerance >= l => {
                (true, format!("holdout NDCG@10 {c:.4} vs live {l:.4} (tolerance {})", self.config.promote_tolerance))
            }
            (Some(c), Some(l)) => (
                false,
                format!("holdout NDCG@10 {c:.4} is below live {l:.4} by more than {}", self.config.promote_tolerance),
            ),
            (None, Some(_)) => (false, "the candidate has no holdout score (no interactions)".to_string()),
        };
        live.info.promoted = promote;
        let info = live.info.clone();
        if promote {
            if let Some(m) = &live.model {
                let mut file = tailor_recommend::file::ModelFile::with_fingerprint(
                    m.clone(),
                    live.fingerprint.clone(),
                    self.store.user_names()?,
                    self.store.item_names()?,
                    info.trained_at.clone(),
                );
                file.metrics.extend(info.holdout_ndcg.map(|n| ("holdout_ndcg_at_10".to_string(), n)));
                self.models.registry.save_model(version, &file)?;
                for o in &live.others {
                    let file = tailor_recommend::file::ModelFile::with_fingerprint(
                        o.model.clone(),
                        live.fingerprint.clone(),
                        file.users.clone(),
                        file.items.clone(),
                        info.trained_at.clone(),
                    );
                    self.models.registry.save_other(version, o.kind, &file)?;
                }
                if let Some(part) = &live.context {
                    self.models.registry.save_context(version, part)?;
                }
                reg.live = Some(version);
            }
            reg.versions.push(info.clone());
            self.models.registry.write(&reg)?;
            self.models.registry.prune(&reg, self.config.keep_versions)?;
            self.swap(live)?;
        } else {
            reg.versions.push(info.clone());
            self.models.registry.write(&reg)?;
            metrics::counter!("tailor_model_candidates_rejected_total").increment(1);
        }
        tracing::info!(version, promote, %reason, "retrained");
        Ok(Retrain { candidate: info, promoted: promote, reason })
    }

    /// Stores events durably through the group committer: concurrent requests share one
    /// transaction and one fsync. Returns the events (for the in-memory side) and this
    /// request's own counts once committed.
    pub async fn store_events(&self, events: Vec<Event>) -> ApiResult<(Vec<Event>, WriteReport)> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer
            .send(WriteJob { events, reply })
            .map_err(|_| ApiError::unavailable("the event writer has stopped; the server is shutting down"))?;
        let (events, report) = answer.await.map_err(|_| ApiError::internal("the event writer dropped a request"))?;
        Ok((events, report?))
    }

    /// Brings the served catalog up to date after a write: items the store added since it
    /// was loaded (named by events or upserted) get their index, and `items` their records.
    /// The caller holds the record-write lock (`record_writes`). Blocking.
    pub fn refresh_catalog(&self, items: Vec<tailor_core::Item>) -> ApiResult<()> {
        let current = self.snapshots.catalog();
        let fresh = self.store.item_names_from(current.len())?;
        if fresh.is_empty() && items.is_empty() {
            return Ok(());
        }
        self.snapshots.set_catalog(current.updated(fresh, items));
        Ok(())
    }

    /// Indexes the stored items `ids` that events named and the served catalog lacks. A
    /// batch that refreshed while this one waited for the record-write lock took in every
    /// item stored so far, these included: then no second copy of the catalog. Blocking.
    pub fn index_new_items(&self, ids: &[String]) -> ApiResult<()> {
        let _writes = self.record_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.snapshots.catalog();
        if ids.iter().any(|i| !current.index.contains_key(i.as_str())) {
            self.refresh_catalog(Vec::new())?;
        }
        Ok(())
    }

    /// Reloads the segmentations used for real-time reassignment and their memberships.
    pub fn load_segmenters(&self) -> ApiResult<()> {
        self.memberships.load(self.store.as_ref())
    }

    /// Notes that these users' features changed: they are re-placed in segments before their
    /// next read ([`AppState::settle`]) or by the background sweep, whichever comes first, so
    /// ingestion does not wait for it.
    pub fn mark_dirty(&self, users: impl IntoIterator<Item = String>) {
        self.memberships.mark_dirty(users);
    }

    /// Re-places a user whose features changed, before their data is read (read-your-writes
    /// for segments). Cheap when nothing changed.
    pub fn settle(&self, user: &str) -> ApiResult<()> {
        if self.memberships.take_dirty(user) {
            self.reassign_blocking(&[user.to_string()])?;
        }
        Ok(())
    }

    /// Re-places every user marked dirty (the background sweep). Returns the changes.
    pub fn settle_all(&self) -> ApiResult<usize> {
        let users = self.memberships.take_all_dirty();
        if users.is_empty() { Ok(0) } else { self.reassign_blocking(&users) }
    }

    /// Members per (segmentation, segment), from memory (for `/metrics`).
    pub fn segment_sizes(&self) -> HashMap<(String, String), usize> {
        self.memberships.sizes()
    }

    /// A user's current segments per segmentation (from memory), by segmentation name.
    pub fn segments_by_segmentation(&self, user: &str) -> Vec<(String, Vec<String>)> {
        self.memberships.by_segmentation(user)
    }

    /// A user's current segments in every segmentation (from memory).
    pub fn segments_of(&self, user: &str) -> Vec<String> {
        self.memberships.of(user)
    }

    /// Re-places `users` with every real-time segmentation from their updated features;
    /// changed memberships are stored (with history) and mirrored. Blocking. Returns the
    /// number of changes.
    pub fn reassign_blocking(&self, users: &[String]) -> ApiResult<usize> {
        let changed = self.memberships.reassign(self.store.as_ref(), self.online.as_ref(), users)?;
        for user in &changed {
            self.cache.invalidate(&online::user_key(user));
        }
        Ok(changed.len())
    }

    fn swap(&self, live: Live) -> ApiResult<()> {
        self.load_segmenters()?;
        let info = live.info.clone();
        let catalog = Catalog::load(self.store.as_ref(), live.reference_time())?;
        let snapshot_at = live.snapshot_at;
        self.snapshots.go_live(live, catalog);
        self.models.went_live(snapshot_at);
        metrics::gauge!("tailor_model_version").set(info.version as f64);
        metrics::gauge!("tailor_model_train_seconds").set(info.train_seconds);
        if let Some(n) = info.holdout_ndcg {
            metrics::gauge!("tailor_model_holdout_ndcg_at_10").set(n);
        }
        tracing::info!(version = info.version, seconds = info.train_seconds, pairs = info.pairs, "model version live");
        Ok(())
    }

    /// The model row of user `id` in `live`, unless the user was erased since.
    pub fn user_row(&self, live: &Live, id: &str) -> Option<u32> {
        let row = live.user_rows.get(id).copied()?;
        (!self.models.is_erased(id)).then_some(row)
    }

    /// Erases a user everywhere at once: the store (events, record, segments), the real-time
    /// state, cached lists and the live model's row; the next training does not see them.
    pub fn erase_user(&self, id: &str) -> ApiResult<tailor_store::Erasure> {
        let mut erasure = self.store.erase_user(id)?;
        self.models.erased_now(id);
        let key = online::user_key(id);
        self.memberships.forget(id);
        erasure.found |= self.online.remove(&key);
        self.cache.invalidate(&key);
        self.insights.forget(id);
        erasure.found |= self.snapshots.live().as_ref().is_some_and(|l| l.user_rows.contains_key(id));
        // Kept model versions forget the user too, in the background; a reload scrubs its
        // version first.
        Ok(erasure)
    }

    /// A fresh recommendation id.
    pub fn next_rec_id(&self, subject: &str) -> String {
        let n = self.rec_counter.fetch_add(1, Ordering::Relaxed);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(subject.as_bytes());
        h.update(&n.to_le_bytes());
        h.update(&Timestamp::now().0.to_le_bytes());
        format!("r{:016x}", h.digest())
    }
}

/// What a retraining did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retrain {
    /// The candidate version's facts.
    pub candidate: live::LiveInfo,
    /// Whether it went live.
    pub promoted: bool,
    /// Why (or why not).
    pub reason: String,
}

/// One request's events waiting for the group committer.
struct WriteJob {
    events: Vec<Event>,
    reply: tokio::sync::oneshot::Sender<(Vec<Event>, ApiResult<WriteReport>)>,
}

/// Most events merged into one transaction.
const GROUP_MAX_EVENTS: usize = 100_000;

/// The group committer: takes the first waiting request, adds every request queued behind
/// it (up to [`GROUP_MAX_EVENTS`]), stores them in one transaction and answers each with
/// its own counts. Under load this turns one fsync per request into one per group; alone,
/// a request is written at once. Ends when the state is dropped.
fn group_writer(store: &dyn Store, jobs: &std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let mut n = group[0].events.len();
        while n < GROUP_MAX_EVENTS {
            match jobs.try_recv() {
                Ok(j) => {
                    n += j.events.len();
                    group.push(j);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<WriteBatch> = group
            .iter_mut()
            .map(|j| WriteBatch { events: std::mem::take(&mut j.events), ..WriteBatch::default() })
            .collect();
        // The batches go to the store; keep copies to hand back (cheap next to the fsync).
        let copies: Vec<Vec<Event>> = batches.iter().map(|b| b.events.clone()).collect();
        match store.write_group(batches) {
            Ok(reports) => {
                for ((job, mut events), report) in group.into_iter().zip(copies).zip(reports) {
                    // Only what was stored reaches memory (not duplicates, not the history of
                    // an erased user).
                    if !report.skipped.is_empty() {
                        let skip: std::collections::HashSet<u32> = report.skipped.iter().copied().collect();
                        let mut at = 0u32;
                        events.retain(|_| {
                            at += 1;
                            !skip.contains(&(at - 1))
                        });
                    }
                    let _ = job.reply.send((events, Ok(report)));
                }
            }
            Err(e) => {
                let err = ApiError::from(e);
                for (job, events) in group.into_iter().zip(copies) {
                    let _ = job.reply.send((events, Err(err.clone())));
                }
            }
        }
    }
}

/// The application: every route with its middleware.
pub fn router(state: Arc<AppState>) -> axum::Router {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    // Origins were checked by `ServeConfig::validate`; `*` (only with API keys) allows any,
    // without credentials.
    let origins = if state.config.any_origin() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(state.config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let cors = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::HeaderName::from_static("x-api-key")]);
    let (timed, untimed) = routes::routes();
    timed
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(state.config.timeout_ms.max(1)),
        ))
        .merge(untimed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(axum::extract::DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), json_errors))
        .layer(cors)
        .layer(axum::middleware::from_fn(options_only_preflight))
        .with_state(state)
}

/// OPTIONS is answered only as a CORS preflight (by the CORS layer inside this one); any
/// other OPTIONS request is 405 with the path's methods in `Allow`, like every method a
/// route does not take.
async fn options_only_preflight(req: Request, next: Next) -> Response {
    if req.method() != Method::OPTIONS || req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return next.run(req).await;
    }
    let methods = routes::methods_of(req.uri().path());
    if methods.is_empty() {
        return ApiError::not_found("no such route; see /openapi.json").into_response();
    }
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&methods.join(", ")) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// Errors made outside our handlers (axum's extractor rejections, the body limit, the
/// timeout) come as plain text or empty bodies: this gives them the API's error shape, so
/// every error a client sees is `{"error": {"code", "message"}}`.
async fn json_errors(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("request body over the limit of {} bytes (serve.body_limit_bytes)", state.config.body_limit_bytes),
        ),
        StatusCode::SERVICE_UNAVAILABLE if text.is_empty() => {
            ("timeout", format!("the request took longer than {} ms (serve.timeout_ms)", state.config.timeout_ms))
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not take that method; see /openapi.json".into())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text),
        s if s.is_server_error() => {
            ("internal", if text.is_empty() { "internal error; see the server log".into() } else { text })
        }
        _ => (
            "bad_request",
            if text.is_empty() { status.canonical_reason().unwrap_or("bad request").into() } else { text },
        ),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Binds the listening socket before anything slow happens (a taken port or a refused
/// address is reported at once, not after training), and refuses to expose a server
/// without API keys on anything but loopback. `setting` names where `addr` came from
/// (`--addr`, `serve.addr`) for the message.
pub fn bind(config: &ServeConfig, addr: SocketAddr, setting: &str) -> Result<std::net::TcpListener, String> {
    if config.api_keys.is_empty() && !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to serve {addr} ({setting}) without API keys: configure [[serve.api_keys]] or listen on 127.0.0.1"
        ));
    }
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => " (another process listens there; pick another port)",
            std::io::ErrorKind::AddrNotAvailable => " (no interface of this machine has that address)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        format!("cannot listen on {addr} ({setting}): {e}{hint}")
    })?;
    listener.set_nonblocking(true).map_err(|e| format!("{addr}: {e}"))?;
    Ok(listener)
}

/// Serves on a listener from [`bind`] until Ctrl-C or SIGTERM, then stops accepting and
/// drains in-flight requests (every accepted event has been committed before its answer,
/// so nothing is pending).
pub async fn serve(state: Arc<AppState>, listener: std::net::TcpListener) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving");
    state.experiments.warm_reports(&state.store);
    {
        // Segment sweep: users marked dirty by events are re-placed within a moment even if
        // nothing reads them.
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                let s = state.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.settle_all()).await {
                    tracing::error!(error = %e, "segment sweep failed");
                }
                // Bandit state reaches the disk every 10 s (and at shutdown).
                if n.is_multiple_of(10)
                    && let Err(e) = state.experiments.bandits.persist()
                {
                    tracing::error!(error = %e, "saving the bandit state failed");
                }
            }
        });
    }
    if !state.alerts.is_empty() {
        // Alerts are judged every second (each at its own `every`); webhooks go out beside.
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for (mut event, payload) in state.alerts.tick(Timestamp::now()) {
                    tracing::warn!(alert = %event.name, status = %event.status, detail = %event.detail, "alert");
                    if let Some(d) = payload {
                        let ok = alerts::deliver(&d).await;
                        if !ok {
                            tracing::error!(alert = %event.name, url = %d.url, "the alert webhook did not take the alert");
                        }
                        event.delivered = Some(ok);
                    }
                    state.alerts.record(event);
                }
                for (name, segmentation) in state.alerts.due_drift(Timestamp::now()) {
                    let s = state.clone();
                    let report =
                        tokio::task::spawn_blocking(move || drift::report(s.store.as_ref(), segmentation.as_deref()))
                            .await;
                    let (psi, detail) = match report {
                        Ok(Ok(r)) => {
                            let top =
                                r.features.first().map_or(String::new(), |f| format!("; {} {:.3}", f.feature, f.psi));
                            (
                                r.max_psi,
                                format!(
                                    "{}: max PSI {:.3} (segments {:.3}{top})",
                                    r.segmentation, r.max_psi, r.segment_psi
                                ),
                            )
                        }
                        Ok(Err(e)) => {
                            tracing::error!(alert = %name, error = %e, "measuring drift failed");
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(alert = %name, error = %e, "measuring drift panicked");
                            continue;
                        }
                    };
                    if let Some((mut event, payload)) = state.alerts.judge_drift(&name, psi, detail, Timestamp::now()) {
                        tracing::warn!(alert = %event.name, status = %event.status, detail = %event.detail, "alert");
                        if let Some(d) = payload {
                            event.delivered = Some(alerts::deliver(&d).await);
                        }
                        state.alerts.record(event);
                    }
                }
            }
        });
    }
    if let Some(period) = state.config.retrain_every.0 {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _guard = state.models.training().await;
                let s = state.clone();
                match state
                    .models
                    .trainer
                    .run(move || s.retrain_blocking())
                    .await
                    .map_err(ApiError::from)
                    .and_then(|r| r)
                {
                    Ok(r) => {
                        tracing::info!(version = r.candidate.version, promoted = r.promoted, reason = %r.reason, "scheduled retrain")
                    }
                    Err(e) => tracing::error!(error = %e, "scheduled retrain failed; the live model stays"),
                }
            }
        });
    }
    let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown_signal()).await;
    if let Err(e) = state.experiments.bandits.persist() {
        tracing::error!(error = %e, "saving the bandit state at shutdown failed");
    }
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: draining in-flight requests");
}
