//! Routes and handlers. [`ROUTES`] is the one list of what exists: the router, the scope
//! check and the OpenAPI document are all made from it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use serde::Serialize;
use serde_json::{Value, json};
use tailor_core::{Event, EventKind, Item, Timestamp, User};
use tailor_recommend::business::{Reason, Request};
use tailor_store::{UpsertMode, WriteBatch};

use crate::AppState;
use crate::api;
use crate::error::{ApiError, ApiResult};
use crate::experiments::Assigned;
use crate::live::{Catalog, Live};
use crate::online::{Rec, session_key, user_key};
use crate::serving::Source;
use tailor_experiment::report::Exposure;

type St = State<Arc<AppState>>;

pub use crate::table::{Body, Kind, Param, ROUTES, Reply, RouteDoc};

/// The documented route `method path` (HEAD is GET without the body: axum answers HEAD
/// with the GET handler, so it must need what GET needs).
pub fn route_for(method: &Method, path: &str) -> Option<&'static RouteDoc> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|r| r.path == path && r.method == method)
}

/// The methods the routes matching a concrete `path` take (HEAD wherever GET is).
pub fn methods_of(path: &str) -> Vec<&'static str> {
    let matches = |template: &str| {
        let (mut t, mut p) = (template.split('/'), path.split('/'));
        loop {
            match (t.next(), p.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a.starts_with('{') && !b.is_empty() => {}
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    };
    let mut out: Vec<&'static str> = ROUTES.iter().filter(|r| matches(r.path)).map(|r| r.method).collect();
    if out.contains(&"GET") {
        out.push("HEAD");
    }
    out
}

/// Admin operations that last as long as a training does: exempt from `serve.timeout_ms`
/// (on a busy machine a retrain outlasts any request timeout, and a timed-out answer would
/// hide whether the new version went live).
pub const UNTIMED: &[&str] = &["/v1/admin/retrain", "/v1/admin/reload", "/v1/admin/rollback"];

/// The router, without state and middleware: (routes under the request timeout, with the
/// fallback; the [`UNTIMED`] ones).
pub fn routes() -> (axum::Router<Arc<AppState>>, axum::Router<Arc<AppState>>) {
    let (mut timed, mut untimed) = (axum::Router::new(), axum::Router::new());
    for doc in ROUTES {
        if UNTIMED.contains(&doc.path) {
            untimed = untimed.route(doc.path, handler(doc.method, doc.path));
        } else {
            timed = timed.route(doc.path, handler(doc.method, doc.path));
        }
    }
    (timed.fallback(|| async { ApiError::not_found("no such route; see /openapi.json") }), untimed)
}

fn handler(method: &str, path: &str) -> MethodRouter<Arc<AppState>> {
    match (method, path) {
        ("GET", "/healthz") => get(|| async { Json(api::Health { status: "ok", model_version: None }) }),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/openapi.json") => get(openapi_json),
        ("GET", "/widget.js") => get(crate::web::widget),
        ("GET", "/assets/lib.js") => get(crate::web::lib_js),
        ("GET", "/assets/charts.js") => get(crate::web::charts_js),
        ("GET", "/demo") => get(crate::web::demo),
        ("POST", "/v1/events") => post(post_events),
        ("PUT", "/v1/items") => put(put_items),
        ("PATCH", "/v1/items") => axum::routing::patch(patch_items),
        ("GET", "/v1/items/{id}") => get(get_item),
        ("GET", "/v1/items/{id}/similar") => get(similar),
        ("GET", "/v1/items/{id}/bought-together") => get(bought_together),
        ("PUT", "/v1/users") => put(put_users),
        ("PATCH", "/v1/users") => axum::routing::patch(patch_users),
        ("DELETE", "/v1/users/{id}") => axum::routing::delete(erase_user),
        ("GET", "/v1/users/{id}/profile") => get(profile),
        ("GET", "/v1/users/{id}/recommendations") => get(user_recommendations),
        ("POST", "/v1/sessions/{id}/recommendations") => post(session_recommendations),
        ("GET", "/v1/popular") => get(popular),
        ("GET", "/v1/trending") => get(trending),
        ("GET", "/v1/segments") => get(segments),
        ("GET", "/v1/segments/{name}/users") => get(segment_users),
        ("POST", "/v1/admin/reload") => post(reload),
        ("POST", "/v1/admin/retrain") => post(retrain),
        ("GET", "/v1/admin/models") => get(models),
        ("POST", "/v1/admin/rollback") => post(rollback),
        ("GET", "/dashboard") => get(crate::web::dashboard),
        ("GET", "/v1/admin/timeseries") => get(crate::admin::timeseries),
        ("GET", "/v1/admin/catalog-health") => get(crate::admin::catalog_health),
        ("GET", "/v1/admin/feed") => get(crate::admin::feed),
        ("GET", "/v1/admin/bandits") => get(crate::admin::bandits),
        ("GET", "/v1/admin/segments") => get(crate::admin::segment_insights),
        ("GET", "/v1/admin/cohorts") => get(crate::admin::cohorts),
        ("GET", "/v1/alerts") => get(crate::admin::alerts),
        ("GET", "/v1/admin/fairness") => get(crate::admin::fairness),
        ("GET", "/v1/admin/drift") => get(crate::admin::drift),
        ("GET", "/v1/admin/clv") => get(crate::admin::clv),
        ("GET", "/v1/experiments") => get(crate::experiments::list),
        ("POST", "/v1/experiments") => post(crate::experiments::create_route),
        ("GET", "/v1/experiments/{name}") => get(crate::experiments::show),
        ("POST", "/v1/experiments/{name}/start") => post(crate::experiments::start),
        ("POST", "/v1/experiments/{name}/pause") => post(crate::experiments::pause),
        ("POST", "/v1/experiments/{name}/stop") => post(crate::experiments::stop),
        ("GET", "/v1/experiments/{name}/report") => get(crate::experiments::report_route),
        ("GET", "/v1/users/{id}/layout") => get(crate::experiments::layout),
        _ => get(|| async { ApiError::internal("route without handler") }),
    }
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// `GET /openapi.json`: the document of this server (its limits, catalog and clock).
async fn openapi_json(State(s): St) -> Response {
    let catalog = s.snapshots.catalog();
    let ctx = crate::openapi::Context {
        config: &s.config,
        categories: Some(&catalog.categories),
        brands: Some(&catalog.brands),
        now: Some(Timestamp::now()),
    };
    Json(crate::openapi::document(&ctx)).into_response()
}

async fn readyz(State(s): St) -> Response {
    if s.models.is_ready() {
        let version = s.snapshots.live_version();
        Json(api::Health { status: "ready", model_version: version }).into_response()
    } else {
        ApiError::unavailable("no model loaded yet").into_response()
    }
}

async fn metrics(State(s): St) -> Response {
    if let Some(l) = s.snapshots.live().as_ref() {
        let age = (Timestamp::now().0 - l.trained_at.0) as f64 / 1000.0;
        metrics::gauge!("tailor_model_age_seconds").set(age);
    }
    for ((segmentation, segment), n) in s.segment_sizes() {
        metrics::gauge!("tailor_segment_size", "segmentation" => segmentation, "segment" => segment).set(n as f64);
    }
    metrics::gauge!("tailor_online_subjects").set(s.online.len() as f64);
    metrics::gauge!("tailor_cached_lists").set(s.cache.len() as f64);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

// ---------------------------------------------------------------- ingestion

pub use crate::api::RowError;

/// The rows of a batch body: an array, an object holding `key`, or one object.
fn rows(body: &Bytes, key: &str, max: usize) -> ApiResult<Vec<Value>> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("request body is not JSON: {e}")))?;
    let rows = match v {
        Value::Array(a) => a,
        Value::Object(mut o) if o.contains_key(key) => {
            if let Some(other) = o.keys().find(|k| *k != key) {
                return Err(ApiError::invalid(other.clone(), format!("unknown field {other:?} beside `{key}`")));
            }
            match o.remove(key) {
                Some(Value::Array(a)) => a,
                _ => return Err(ApiError::invalid(key, format!("`{key}` must be an array"))),
            }
        }
        Value::Object(o) => vec![Value::Object(o)],
        _ => return Err(ApiError::bad_request(format!("expected an object, an array or {{\"{key}\": [...]}}"))),
    };
    if rows.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} rows in one request; the limit is {max}", rows.len()),
        ));
    }
    Ok(rows)
}

/// Deserialises one row, naming the field at fault.
fn parse_row<T: serde::de::DeserializeOwned>(index: usize, row: Value) -> Result<T, RowError> {
    serde_path_to_error::deserialize(row).map_err(|e| {
        let path = e.path().to_string();
        RowError { index, field: (path != ".").then_some(path), message: e.into_inner().to_string() }
    })
}

fn rejected_response(what: &str, errors: Vec<RowError>) -> Response {
    let first = errors.first().cloned();
    let body = api::RejectedBody {
        error: api::ErrorDetail {
            code: "invalid_rows".into(),
            message: format!(
                "no {what} accepted: every row is invalid (first: row {}: {})",
                first.as_ref().map_or(0, |e| e.index),
                first.as_ref().map_or("", |e| e.message.as_str())
            ),
            field: first.and_then(|e| e.field),
        },
        rejected: errors,
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// The common case parsed in one pass: a JSON array of events in their stored form.
fn events_fast(body: &[u8], max: usize) -> Option<Vec<Event>> {
    let events: Vec<Event> = serde_json::from_slice(body).ok()?;
    (events.len() <= max).then_some(events)
}

async fn post_events(State(s): St, body: Bytes) -> ApiResult<Response> {
    let now = Timestamp::now();
    let mut errors = Vec::new();
    let mut ordinals: HashMap<u128, u32> = HashMap::new();
    let mut events = Vec::new();
    // Fast path: every row is a well-formed event; else row by row with errors per row.
    let limits = &s.config.limits;
    let check = |e: &Event| e.validate().and_then(|()| limits.check_event(e, now));
    let rows = match events_fast(&body, s.config.max_batch) {
        Some(parsed) => {
            for (index, e) in parsed.into_iter().enumerate() {
                match check(&e) {
                    Ok(()) => events.push(e),
                    Err(err) => {
                        errors.push(RowError { index, field: Some(err.field().to_string()), message: err.to_string() })
                    }
                }
            }
            Vec::new()
        }
        None => rows(&body, "events", s.config.max_batch)?,
    };
    for e in &mut events {
        if e.id.is_none() {
            let ord = ordinals.entry(e.content_hash()).or_insert(0);
            e.id = Some(e.derive_id(*ord));
            *ord += 1;
        }
    }
    for (index, mut row) in rows.into_iter().enumerate() {
        // A row without `ts` happened now (the server's clock).
        if let Some(o) = row.as_object_mut()
            && o.get("ts").is_none_or(Value::is_null)
        {
            o.insert("ts".into(), json!(now.0));
        }
        let mut e: Event = match parse_row(index, row) {
            Ok(e) => e,
            Err(err) => {
                errors.push(err);
                continue;
            }
        };
        if let Err(err) = check(&e) {
            errors.push(RowError { index, field: Some(err.field().to_string()), message: err.to_string() });
            continue;
        }
        if e.id.is_none() {
            let ord = ordinals.entry(e.content_hash()).or_insert(0);
            e.id = Some(e.derive_id(*ord));
            *ord += 1;
        }
        events.push(e);
    }
    if events.is_empty() && !errors.is_empty() {
        return Ok(rejected_response("events", errors));
    }
    let accepted = events.len();
    let (events, report) = s.store_events(events).await?;
    if s.experiments.bandits.active() {
        for e in &events {
            if matches!(e.kind, EventKind::Click | EventKind::AddToCart | EventKind::Purchase)
                && let Some(r) = &e.rec_id
            {
                s.experiments.bandits.reward(r);
            }
        }
    }
    // Committed: now the in-memory side. Items new to the catalog get their index first
    // (appended to it, not reloaded).
    let mut catalog = s.snapshots.catalog();
    let missing: Vec<String> = events
        .iter()
        .filter_map(|e| e.item.as_ref())
        .filter(|i| !catalog.index.contains_key(i.as_str()))
        .map(|i| i.as_str().to_string())
        .collect();
    let unknown_items = !missing.is_empty();
    if unknown_items {
        let state = s.clone();
        blocking(move || state.index_new_items(&missing)).await?;
        catalog = s.snapshots.catalog();
    }
    let mut touched: Vec<String> = Vec::new();
    let feed_from = events.len().saturating_sub(20);
    for (at, e) in events.iter().enumerate() {
        let key = match (&e.user, &e.session) {
            (Some(u), _) => user_key(u.as_str()),
            (None, Some(sid)) => session_key(sid),
            (None, None) => continue,
        };
        let rec = Rec::of(e, &catalog);
        let info = e.item.as_ref().and_then(|i| catalog.features.get(i.as_str()));
        let item = rec.item;
        s.online.push_event(&key, rec, true, Some((e, info)));
        {
            // The feed shows the last rows of a batch only.
            s.insights.event(e, item, at >= feed_from);
            s.alerts.event(e);
            s.cache.invalidate(&key);
            if let Some(u) = &e.user {
                touched.push(u.as_str().to_string());
            }
        }
    }
    // Their features changed: their segments follow before their next read.
    s.mark_dirty(touched);
    metrics::counter!("tailor_events_ingested_total").increment(report.events_added);
    metrics::counter!("tailor_events_duplicate_total").increment(report.events_duplicate);
    let body = api::EventsStored {
        accepted,
        stored: report.events_added,
        duplicates: report.events_duplicate,
        new_items: unknown_items,
        rejected: errors,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Parses and validates each row; the valid records, and the errors by row.
fn valid_rows<T: serde::de::DeserializeOwned>(
    rows: Vec<Value>,
    validate: impl Fn(&T) -> tailor_core::Result<()>,
) -> (Vec<T>, Vec<RowError>) {
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for (index, row) in rows.into_iter().enumerate() {
        match parse_row::<T>(index, row) {
            Ok(r) => match validate(&r) {
                Ok(()) => ok.push(r),
                Err(e) => errors.push(RowError { index, field: Some(e.field().into()), message: e.to_string() }),
            },
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

async fn put_items(State(s): St, body: Bytes) -> ApiResult<Response> {
    upsert_items(s, body, false).await
}

async fn patch_items(State(s): St, body: Bytes) -> ApiResult<Response> {
    upsert_items(s, body, true).await
}

/// PUT (each row replaces the stored item) or PATCH (each row is a JSON merge patch,
/// RFC 7396, of the stored item: given fields replace, `null` clears, absent ones stay).
async fn upsert_items(s: Arc<AppState>, body: Bytes, patch: bool) -> ApiResult<Response> {
    let rows = rows(&body, "items", s.config.max_batch)?;
    let state = s.clone();
    let outcome = blocking(move || {
        // Read-modify-write of records and of the catalog, one request at a time.
        let _writes = state.record_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let limits = &state.config.limits;
        let check = |i: &Item| i.validate().and_then(|()| limits.check_item(i));
        let (items, errors) = if patch {
            patched_rows(rows, |id| Ok(state.store.item(id)?.map(|r| r.value)), check)?
        } else {
            valid_rows(rows, check)
        };
        if items.is_empty() && !errors.is_empty() {
            return Ok(Err(errors));
        }
        let report = state.store.write(WriteBatch {
            items: items.clone(),
            mode: UpsertMode::Replace,
            ..WriteBatch::default()
        })?;
        state.refresh_catalog(items)?;
        Ok(Ok((report, errors)))
    })
    .await?;
    match outcome {
        Err(errors) => Ok(rejected_response("items", errors)),
        Ok((report, errors)) => {
            Ok(Json(api::Upserted { inserted: report.items_inserted, updated: report.items_updated, rejected: errors })
                .into_response())
        }
    }
}

/// Rows as JSON merge patches over the stored records (`stored(id)`), validated; a record
/// patched twice in one batch gets both patches in order.
fn patched_rows<T: serde::de::DeserializeOwned + Serialize>(
    rows: Vec<Value>,
    stored: impl Fn(&str) -> ApiResult<Option<T>>,
    validate: impl Fn(&T) -> tailor_core::Result<()>,
) -> ApiResult<(Vec<T>, Vec<RowError>)> {
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    let mut bases: HashMap<String, Value> = HashMap::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (index, row) in rows.into_iter().enumerate() {
        let Some(id) = row.get("id").and_then(Value::as_str).map(str::to_string) else {
            errors.push(RowError { index, field: Some("id".into()), message: "a patch needs the record's id".into() });
            continue;
        };
        let mut base = match bases.get(&id) {
            Some(b) => b.clone(),
            None => match stored(&id)? {
                Some(r) => serde_json::to_value(r).map_err(ApiError::internal)?,
                None => json!({}),
            },
        };
        merge_patch(&mut base, row);
        match parse_row::<T>(index, base.clone()) {
            Ok(r) => match validate(&r) {
                Ok(()) => {
                    bases.insert(id.clone(), base);
                    // The batch stores each record once, with every patch applied.
                    match at.get(&id) {
                        Some(&p) => ok[p] = r,
                        None => {
                            at.insert(id, ok.len());
                            ok.push(r);
                        }
                    }
                }
                Err(e) => errors.push(RowError { index, field: Some(e.field().into()), message: e.to_string() }),
            },
            Err(e) => errors.push(e),
        }
    }
    Ok((ok, errors))
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge_patch(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

async fn put_users(State(s): St, body: Bytes) -> ApiResult<Response> {
    upsert_users(s, body, false).await
}

async fn patch_users(State(s): St, body: Bytes) -> ApiResult<Response> {
    upsert_users(s, body, true).await
}

/// PUT or PATCH of users, as [`upsert_items`].
async fn upsert_users(s: Arc<AppState>, body: Bytes, patch: bool) -> ApiResult<Response> {
    let rows = rows(&body, "users", s.config.max_batch)?;
    let state = s.clone();
    let outcome = blocking(move || {
        let _writes = state.record_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (users, errors) = if patch {
            patched_rows(rows, |id| Ok(state.store.user(id)?.map(|r| r.value)), User::validate)?
        } else {
            valid_rows(rows, User::validate)
        };
        if users.is_empty() && !errors.is_empty() {
            return Ok(Err(errors));
        }
        let ids: Vec<String> = users.iter().map(|u| u.id.as_str().to_string()).collect();
        let report = state.store.write(WriteBatch { users, mode: UpsertMode::Replace, ..WriteBatch::default() })?;
        Ok(Ok((report, errors, ids)))
    })
    .await?;
    let (report, errors, ids) = match outcome {
        Err(errors) => return Ok(rejected_response("users", errors)),
        Ok(x) => x,
    };
    for id in &ids {
        s.cache.invalidate(&user_key(id));
    }
    // Attributes feed segment rules (age, country...): place them before their next read,
    // so a new user known only by attributes gets their segment's popular items.
    s.mark_dirty(ids);
    Ok(Json(api::Upserted { inserted: report.users_inserted, updated: report.users_updated, rejected: errors })
        .into_response())
}

// ---------------------------------------------------------------- reads

fn item_index(catalog: &Catalog, id: &str) -> ApiResult<u32> {
    catalog.index.get(id).copied().ok_or_else(|| ApiError::not_found(format!("item {id:?} is not in the catalog")))
}

fn item_json(catalog: &Catalog, i: u32, score: f32, reason: Option<&Reason>) -> api::ListedItem {
    let item = catalog.items.get(i as usize).and_then(Option::as_ref);
    api::ListedItem {
        id: catalog.id(i).map(str::to_string).unwrap_or_default(),
        title: catalog.title(i),
        score,
        price: item.and_then(|it| it.price),
        sale_price: item.and_then(|it| it.sale_price),
        category: item.map(|it| it.category_path()),
        brand: item.and_then(|it| it.brand.clone()),
        in_stock: item.map(|it| it.in_stock),
        image: item.and_then(|it| it.attributes.get("image").cloned()),
        reason: reason.map(|r| api::ReasonOut {
            kind: reason_kind(r),
            text: r.text(|x| catalog.title(x)),
            item: match r {
                Reason::BecauseYouViewed { item } | Reason::AlsoBought { item } => {
                    catalog.id(*item).map(str::to_string)
                }
                _ => None,
            },
        }),
    }
}

fn reason_kind(r: &Reason) -> &'static str {
    match r {
        Reason::BecauseYouViewed { .. } => "because_you_viewed",
        Reason::AlsoBought { .. } => "also_bought",
        Reason::Personalized => "personalized",
        Reason::PopularInSegment => "popular_in_segment",
        Reason::PopularInCategory => "popular_in_category",
        Reason::Popular => "popular",
        Reason::Trending => "trending",
        Reason::NewArrival => "new_arrival",
        Reason::Discounted => "discounted",
        Reason::Promoted => "promoted",
    }
}

async fn get_item(State(s): St, Path(id): Path<String>) -> ApiResult<Response> {
    let state = s.clone();
    let stored =
        blocking(move || state.store.item(&id)?.ok_or_else(|| ApiError::not_found(format!("item {id:?} not found"))))
            .await?;
    Ok(Json(api::StoredItem { item: stored.value, revision: stored.revision, updated_at: stored.updated_at })
        .into_response())
}

fn k_param(q: &HashMap<String, String>, default: usize) -> ApiResult<usize> {
    match q.get("k") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(k) if (1..=100).contains(&k) => Ok(k),
            _ => Err(ApiError::invalid("k", format!("k={v}: expected a whole number from 1 to 100"))),
        },
    }
}

pub(crate) fn query_map(raw: Option<&str>) -> ApiResult<HashMap<String, String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    Ok(pairs.into_iter().collect())
}

fn no_model() -> ApiError {
    ApiError::unavailable("no model trained yet; retry shortly")
}

/// The catalog and the models of one snapshot (503 before the first training).
fn catalog_and_live(s: &AppState) -> ApiResult<(Arc<Catalog>, Arc<Live>)> {
    let crate::snapshot::Pinned { catalog, live, .. } = s.snapshots.pin();
    Ok((catalog, live.ok_or_else(no_model)?))
}

fn live_or_503(s: &AppState) -> ApiResult<Arc<Live>> {
    s.snapshots.live().ok_or_else(no_model)
}

fn listing(catalog: &Catalog, list: &[(u32, f32)], reason: Option<&Reason>) -> Vec<api::ListedItem> {
    list.iter().map(|&(i, sc)| item_json(catalog, i, sc, reason)).collect()
}

/// Items related to item `id` by `related(live, item, k)`, in stock, with `reason(item)`.
fn related_items(
    s: &AppState,
    id: &str,
    raw: Option<&str>,
    related: impl Fn(&Live, &Catalog, u32, usize) -> Vec<(u32, f32)>,
    reason: impl Fn(u32) -> Reason,
) -> ApiResult<Response> {
    let k = k_param(&query_map(raw)?, 10)?;
    let (catalog, live) = catalog_and_live(s)?;
    let i = item_index(&catalog, id)?;
    let list: Vec<(u32, f32)> = related(&live, &catalog, i, k)
        .into_iter()
        .filter(|&(j, _)| catalog.view.in_stock.get(j as usize).copied().unwrap_or(false))
        .take(k)
        .collect();
    let items = listing(&catalog, &list, Some(&reason(i)));
    // A rec_id here too, so clicks on "similar items" are attributed to this list.
    let rec_id = s.next_rec_id(id);
    Ok(Json(api::Related { item: id.to_string(), items, model_version: live.version, rec_id }).into_response())
}

async fn similar(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let similar = |l: &Live, c: &Catalog, i: u32, k: usize| crate::serving::similar_items(l, c, i, k * 2);
    related_items(&s, &id, raw.as_deref(), similar, |item| Reason::BecauseYouViewed { item })
}

async fn bought_together(State(s): St, Path(id): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    related_items(&s, &id, raw.as_deref(), |l, _, i, _| l.together.of(i), |item| Reason::AlsoBought { item })
}

fn categories_param(catalog: &Catalog, q: &HashMap<String, String>) -> ApiResult<Vec<u32>> {
    let Some(v) = q.get("category") else { return Ok(Vec::new()) };
    // Exactly the names, comma-separated (the document's pattern says the same).
    v.split(',')
        .map(|c| {
            catalog.categories.iter().position(|x| x == c).map(|p| p as u32).ok_or_else(|| {
                ApiError::invalid(
                    "category",
                    format!("unknown category {c:?} (top-level names: {})", catalog.categories.join(", ")),
                )
            })
        })
        .collect()
}

async fn popular(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let k = k_param(&q, 10)?;
    let (catalog, live) = catalog_and_live(&s)?;
    let (scores, reason) = match q.get("segment") {
        Some(seg) => match live.segment_popular.get(seg) {
            Some(c) => (c, Reason::PopularInSegment),
            None => {
                return Err(
                    ApiError::not_found(format!("segment {seg:?} has no members in the live model")).field("segment")
                );
            }
        },
        None => (&live.popular, Reason::Popular),
    };
    let categories = categories_param(&catalog, &q)?;
    let reason = if categories.is_empty() { reason } else { Reason::PopularInCategory };
    let req = Request { k, categories, ..Request::default() };
    let list = ranked_plain(scores, &catalog, &req);
    Ok(Json(api::Listing { items: listing(&catalog, &list, Some(&reason)), model_version: live.version })
        .into_response())
}

async fn trending(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let k = k_param(&q, 10)?;
    let (catalog, live) = catalog_and_live(&s)?;
    let req = Request { k, categories: categories_param(&catalog, &q)?, ..Request::default() };
    let list = ranked_plain(&live.trending, &catalog, &req);
    Ok(Json(api::Listing { items: listing(&catalog, &list, Some(&Reason::Trending)), model_version: live.version })
        .into_response())
}

/// Top items by raw score among those the request allows (no normalisation or boosts).
fn ranked_plain(scores: &[f32], catalog: &Catalog, req: &Request) -> Vec<(u32, f32)> {
    tailor_recommend::top_k(scores, req.k, |i| req.allows(&catalog.view, &[], i))
        .into_iter()
        .filter(|x| x.1 > 0.0)
        .collect()
}

async fn segments(State(s): St) -> ApiResult<Response> {
    let state = s.clone();
    let runs = blocking(move || Ok(state.store.segmentation_runs()?)).await?;
    let mut latest: std::collections::BTreeMap<String, tailor_store::SegmentationRun> = Default::default();
    for r in runs {
        latest.insert(r.name.clone(), r);
    }
    // Sizes now (members move between runs in real time), from the same memberships that
    // `/v1/segments/{name}/users` lists, beside each segment's size when the run was made.
    let state = s.clone();
    let segmentations = blocking(move || {
        latest
            .into_values()
            .map(|r| {
                let segments = r
                    .segments
                    .iter()
                    .map(|d| {
                        let size = state.store.segment_members(&r.name, &d.name)?.len();
                        Ok(api::SegmentOut {
                            name: d.name.clone(),
                            description: d.description.clone(),
                            size,
                            size_at_run: d.size as usize,
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?;
                Ok(api::SegmentationOut { segmentation: r.name, run: r.id, created_at: r.created_at, segments })
            })
            .collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    Ok(Json(api::Segmentations { segmentations }).into_response())
}

async fn segment_users(State(s): St, Path(name): Path<String>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let num = |key: &str, default: usize, max: usize| -> ApiResult<usize> {
        match q.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::invalid(key.to_string(), format!("{key}={v}: expected 1 to {max}"))),
        }
    };
    let (page, per_page) = (num("page", 1, usize::MAX)?, num("per_page", 100, 1000)?);
    let wanted = q.get("segmentation").cloned();
    let state = s.clone();
    let seg = name.clone();
    let (segmentation, members) = blocking(move || {
        let runs = state.store.segmentation_runs()?;
        let holder = runs
            .iter()
            .rev()
            .find(|r| wanted.as_ref().is_none_or(|w| &r.name == w) && r.segments.iter().any(|d| d.name == seg))
            .map(|r| r.name.clone())
            .ok_or_else(|| ApiError::not_found(format!("no stored segment {seg:?}")))?;
        let members = state.store.segment_members(&holder, &seg)?;
        Ok((holder, members))
    })
    .await?;
    let total = members.len();
    let start = (page - 1).saturating_mul(per_page).min(total);
    let users = &members[start..(start + per_page).min(total)];
    Ok(Json(api::SegmentUsers { segment: name, segmentation, total, page, per_page, users: users.to_vec() })
        .into_response())
}

async fn profile(State(s): St, Path(id): Path<String>) -> ApiResult<Response> {
    let state = s.clone();
    let uid = id.clone();
    let record = blocking(move || {
        state.settle(&uid)?;
        Ok(state.store.user(&uid)?)
    })
    .await?;
    let segments = s.segments_by_segmentation(&id);
    let subject = s.online.get(&user_key(&id));
    if record.is_none() && subject.is_none() && segments.is_empty() {
        return Err(ApiError::not_found(format!("user {id:?} is not known")));
    }
    let crate::snapshot::Pinned { catalog, live, .. } = s.snapshots.pin();
    let mut activity = api::Activity::default();
    if let Some(sub) = &subject {
        let counts: std::collections::BTreeMap<String, u64> =
            sub.counts.iter().map(|(k, v)| (k.as_str().to_string(), *v)).collect();
        let revenue: f64 = sub
            .events
            .iter()
            .filter(|r| r.kind == EventKind::Purchase)
            .map(|r| r.price.unwrap_or(0.0) * f64::from(r.quantity))
            // A float sum starts at -0.0: + 0.0 keeps "no revenue" from showing as -0.
            .sum::<f64>()
            + 0.0;
        let recent: Vec<api::RecentEvent> = sub
            .events
            .iter()
            .rev()
            .take(20)
            .map(|r| api::RecentEvent {
                kind: r.kind,
                item: r.item.and_then(|i| catalog.id(i).map(str::to_string)),
                ts: r.ts,
            })
            .collect();
        activity = api::Activity {
            counts: Some(counts),
            last_seen: sub.last_seen,
            revenue_recent: Some(revenue),
            recent: Some(recent),
        };
    }
    let has_vector = live.as_ref().is_some_and(|l| s.user_row(l, &id).is_some() && l.model.is_some());
    // The behaviour and demographic features segment rules see, as of now.
    let features = {
        let record_ref = record.as_ref().map(|r| &r.value);
        let clv = s.memberships.clv_model();
        let table = |act: &tailor_segment::features::Activity| {
            let rows = vec![(id.clone(), record_ref, act)];
            tailor_segment::features::table(&rows, Timestamp::now().0, Vec::new(), clv)
        };
        let t = s.online.with(&user_key(&id), |sub| table(&sub.activity)).unwrap_or_else(|| table(&Default::default()));
        let mut f = std::collections::BTreeMap::new();
        for (n, v) in t.names.iter().zip(t.row(0)) {
            f.insert(n.clone(), if v.is_finite() { json!(v) } else { Value::Null });
        }
        for (n, col) in tailor_segment::features::CATEGORICAL.iter().zip(&t.categorical) {
            f.insert((*n).to_string(), json!(col.first().cloned().flatten()));
        }
        f
    };
    let segments =
        segments.into_iter().map(|(segmentation, segments)| api::Membership { segmentation, segments }).collect();
    Ok(Json(api::Profile {
        user: id,
        attributes: record.map(|r| r.value),
        segments,
        features,
        activity,
        model_vector: has_vector,
    })
    .into_response())
}

async fn erase_user(State(s): St, Path(id): Path<String>) -> ApiResult<Response> {
    let state = s.clone();
    let uid = id.clone();
    let erasure = blocking(move || state.erase_user(&uid)).await?;
    if !erasure.found {
        return Err(ApiError::not_found(format!("user {id:?} is not known")));
    }
    tracing::info!(events = erasure.events, "user erased");
    Ok(Json(api::Erased { erased: erasure.into() }).into_response())
}

/// A second retraining or reload while one runs is refused rather than queued behind it.
fn training_guard(s: &AppState) -> ApiResult<tokio::sync::MutexGuard<'_, ()>> {
    s.models
        .try_training()
        .ok_or_else(|| ApiError::conflict("a retraining or reload is already running; try again when it finishes"))
}

async fn reload(State(s): St) -> ApiResult<Response> {
    let _guard = training_guard(&s)?;
    let state = s.clone();
    let info = s.models.trainer.run(move || state.reload_blocking()).await??;
    Ok(Json(api::LiveVersion { live: info }).into_response())
}

async fn retrain(State(s): St) -> ApiResult<Response> {
    let _guard = training_guard(&s)?;
    let state = s.clone();
    let outcome = s.models.trainer.run(move || state.retrain_blocking()).await??;
    let live = s.snapshots.live().as_ref().map(|l| l.info.clone());
    Ok(Json(api::Retrained { candidate: outcome.candidate, promoted: outcome.promoted, reason: outcome.reason, live })
        .into_response())
}

async fn rollback(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    let to: u64 = q
        .get("to")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid("to", "to=VERSION is required (see GET /v1/admin/models)"))?;
    let _guard = training_guard(&s)?;
    let state = s.clone();
    let info = s
        .models
        .trainer
        .run(move || {
            let mut reg = state.models.registry.read()?;
            if !state.models.registry.has_model(to)? {
                return Err(ApiError::not_found(format!("version {to} has no kept model file")));
            }
            reg.live = Some(to);
            state.models.registry.write(&reg)?;
            state.reload_blocking()
        })
        .await??;
    tracing::info!(version = to, "rolled back");
    Ok(Json(api::LiveVersion { live: info }).into_response())
}

async fn models(State(s): St) -> ApiResult<Response> {
    let live = live_or_503(&s)?;
    let state = s.clone();
    let reg = blocking(move || Ok(state.models.registry.read()?)).await?;
    Ok(Json(api::Models { live: live.info.clone(), registered_live: reg.live, versions: reg.versions }).into_response())
}

// ---------------------------------------------------------------- recommendations

/// What a recommendation request asks for, parsed and checked.
struct RecQuery {
    request: Request,
    slot: Option<String>,
    /// A layout decision (from `/layout`) whose reward this list's clicks are.
    decision: Option<String>,
    context: Vec<(String, String)>,
    /// Canonical form for the cache key.
    canonical: String,
    /// Whether the list is shown (false for HEAD, which sends no body): only a shown list
    /// is an exposure, a bandit decision's list or a served list on the dashboard.
    shown: bool,
    /// Whether the request (or its variant) set `calibration` (else the slot's default).
    calibration_given: bool,
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn query_pairs(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
}

fn rec_query(catalog: &Catalog, raw: Option<&str>) -> ApiResult<RecQuery> {
    rec_query_pairs(catalog, query_pairs(raw)?)
}

/// The request with an experiment variant's parameters put over the caller's.
fn with_variant(catalog: &Catalog, raw: Option<&str>, a: &Assigned) -> ApiResult<RecQuery> {
    let params = &a.entry.exp.spec.variants[a.variant].params;
    let mut pairs: Vec<(String, String)> =
        query_pairs(raw)?.into_iter().filter(|(k, _)| !params.contains_key(k)).collect();
    pairs.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    rec_query_pairs(catalog, pairs).map_err(|mut e| {
        e.message = format!("experiment {:?} variant {:?}: {}", a.entry.exp.spec.name, a.variant_name(), e.message);
        e
    })
}

/// An experiment's variant parameters must be recommendation query parameters with valid
/// values for this catalog (else every list of the variant would fail): 422 naming
/// `variants[i].params.KEY` otherwise.
pub(crate) fn check_variant_params(catalog: &Catalog, spec: &tailor_experiment::ExperimentSpec) -> ApiResult<()> {
    let doc = crate::table::ROUTES
        .iter()
        .find(|r| r.path == "/v1/users/{id}/recommendations")
        .ok_or_else(|| ApiError::internal("the recommendations route is not in the table"))?;
    for (i, v) in spec.variants.iter().enumerate() {
        let field = |k: &str| format!("variants[{i}].params.{k}");
        for (k, value) in &v.params {
            let kind = match doc.query.iter().find(|p| p.name == k) {
                Some(p) => p.kind,
                None if k.starts_with("attr.") && k.len() > 5 => Kind::Text(4096),
                None => {
                    let known: Vec<&str> = doc.query.iter().map(|p| p.name).collect();
                    return Err(ApiError::invalid(
                        field(k),
                        format!("{k:?} is not a recommendation parameter (known: {}, attr.KEY)", known.join(", ")),
                    ));
                }
            };
            kind.check(value).map_err(|why| ApiError::invalid(field(k), why))?;
        }
        if let Some(m) = &v.model {
            crate::config::servable(m).map_err(|why| ApiError::invalid(format!("variants[{i}].model"), why))?;
        }
        let pairs: Vec<(String, String)> = v.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        rec_query_pairs(catalog, pairs).map_err(|e| {
            let f = e.field.clone().unwrap_or_default();
            ApiError::invalid(field(&f), e.message)
        })?;
    }
    Ok(())
}

fn rec_query_pairs(catalog: &Catalog, pairs: Vec<(String, String)>) -> ApiResult<RecQuery> {
    let mut req = Request { k: 10, ..Request::default() };
    let (mut slot, mut context, mut decision) = (None, Vec::new(), None);
    let mut calibration_given = false;
    let float = |k: &str, v: &str| -> ApiResult<f32> {
        v.parse::<f32>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ApiError::invalid(k.to_string(), format!("{k}={v}: not a number")))
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "k" => req.k = k_param(&HashMap::from([("k".to_string(), v.clone())]), 10)?,
            "slot" => slot = Some(v.clone()),
            "decision" => decision = Some(v.clone()),
            "category" => req.categories = categories_param(catalog, &HashMap::from([("category".into(), v.clone())]))?,
            "brand" => {
                req.brands = v
                    .split(',')
                    .map(|b| {
                        catalog
                            .brands
                            .iter()
                            .position(|x| x == b)
                            .map(|p| p as u32)
                            .ok_or_else(|| ApiError::invalid("brand", format!("unknown brand {b:?}")))
                    })
                    .collect::<ApiResult<_>>()?;
            }
            "min_price" => req.min_price = Some(float(k, v)?),
            "max_price" => req.max_price = Some(float(k, v)?),
            "exclude" => {
                req.exclude = split_list(v).iter().filter_map(|id| catalog.index.get(id.as_str()).copied()).collect()
            }
            "diversity" => {
                let d = float(k, v)?;
                if !(0.0..=1.0).contains(&d) {
                    return Err(ApiError::invalid("diversity", format!("diversity={v}: expected 0 to 1")));
                }
                req.diversity = d;
            }
            "calibration" => {
                let l = float(k, v)?;
                if !(0.0..1.0).contains(&l) {
                    return Err(ApiError::invalid("calibration", format!("calibration={v}: expected 0 to below 1")));
                }
                req.calibration = l;
                calibration_given = true;
            }
            "max_per_category" => {
                req.max_per_category = Some(v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::invalid("max_per_category", format!("max_per_category={v}: expected a whole number >= 1"))
                })?);
            }
            other => {
                if let Some(attr) = other.strip_prefix("attr.") {
                    req.attributes.push((attr.to_string(), split_list(v)));
                } else if let Some(c) = other.strip_prefix("context.") {
                    if !tailor_core::Context::FIELDS.contains(&c) {
                        return Err(ApiError::invalid(
                            other.to_string(),
                            format!("unknown context field {c:?}; known: {}", tailor_core::Context::FIELDS.join(", ")),
                        ));
                    }
                    context.push((c.to_string(), v.clone()));
                } else {
                    return Err(ApiError::invalid(
                        other.to_string(),
                        format!("unknown query parameter {other:?}; see /openapi.json"),
                    ));
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (req.min_price, req.max_price)
        && a > b
    {
        return Err(ApiError::invalid("min_price", "min_price is above max_price"));
    }
    let mut canon = pairs.clone();
    canon.sort();
    let canonical = serde_urlencoded::to_string(&canon).unwrap_or_default();
    Ok(RecQuery { request: req, slot, decision, context, canonical, shown: true, calibration_given })
}

async fn user_recommendations(
    State(s): St,
    method: Method,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let start = Instant::now();
    // One view for the whole request; its generation keys the cache.
    let pin = s.snapshots.pin();
    let catalog = &pin.catalog;
    let mut q = rec_query(catalog, raw.as_deref())?;
    q.shown = method != Method::HEAD;
    let key = user_key(&id);
    if let Some(hit) = s.cache.get(&key, &q.canonical, pin.generation) {
        metrics::counter!("tailor_recommendation_cache_total", "result" => "hit").increment(1);
        if q.shown {
            served_from_cache(&s, catalog, &key, &hit, q.slot.as_deref(), start);
        }
        // The cached list as it was, marked: serialised with one field changed, no deep copy.
        return Ok(Json(CachedList(&hit)).into_response());
    }
    metrics::counter!("tailor_recommendation_cache_total", "result" => if s.cache.enabled() { "miss" } else { "off" })
        .increment(1);
    // Segments from memory, re-placed first if the user's features changed.
    s.settle(&id)?;
    let segments = s.segments_of(&id);
    let assigned = s.experiments.assign(&id, q.slot.as_deref(), &segments, Timestamp::now());
    let q = match &assigned {
        Some(a) if !a.entry.exp.spec.variants[a.variant].params.is_empty() => {
            RecQuery { shown: q.shown, ..with_variant(catalog, raw.as_deref(), a)? }
        }
        _ => q,
    };
    let body = Arc::new(recommend(&s, &pin, &key, Some(&id), &[], &segments, &q, assigned.as_ref(), start)?);
    // A HEAD's list was never shown: cached, a GET would reuse it without an exposure.
    if q.shown {
        s.cache.put(&key, &q.canonical, pin.generation, body.clone());
    }
    Ok(Json((*body).clone()).into_response())
}

/// A cached list answered again, with `cached: true`.
struct CachedList<'a>(&'a api::Recommendations);

impl Serialize for CachedList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        api::RecommendationsRef { cached: true, ..api::RecommendationsRef::of(r) }.serialize(s)
    }
}

/// Records a list answered from the cache (the dashboard counts it as served).
fn served_from_cache(
    s: &AppState,
    catalog: &Catalog,
    key: &str,
    v: &api::Recommendations,
    slot: Option<&str>,
    start: Instant,
) {
    let ids: Vec<&str> = v.items.iter().map(|x| x.id.as_str()).collect();
    let indices: Vec<u32> = ids.iter().filter_map(|i| catalog.index.get(*i).copied()).collect();
    s.alerts.list_served(v.strategy != Source::Personalized.as_str(), ids.is_empty());
    s.insights.served(&crate::insights::Served {
        subject: key,
        items: &indices,
        ids: &ids,
        strategy: &v.strategy,
        rec_id: &v.rec_id,
        slot,
        latency_us: start.elapsed().as_micros() as u64,
        cached: true,
    });
}

async fn session_recommendations(
    State(s): St,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let start = Instant::now();
    let pin = s.snapshots.pin();
    let catalog = &pin.catalog;
    let q = rec_query(catalog, raw.as_deref())?;
    let extra: Vec<u32> = if body.is_empty() {
        Vec::new()
    } else {
        // Malformed JSON is 400; JSON of the wrong shape names the field (422).
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("request body is not JSON: {e}")))?;
        let parsed: api::SessionItems = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            ApiError::invalid(if path == "." { "body".to_string() } else { path }, e.inner().to_string())
        })?;
        if let Some(bad) =
            parsed.items.iter().flatten().position(|i| i.as_str().is_empty() || i.as_str().chars().count() > 256)
        {
            return Err(ApiError::invalid(format!("items[{bad}]"), "an item id has 1 to 256 characters"));
        }
        if parsed.items.as_ref().is_some_and(|i| i.len() > 1000) {
            return Err(ApiError::invalid("items", "at most 1000 items"));
        }
        parsed.items.iter().flatten().filter_map(|i| catalog.index.get(i.as_str()).copied()).collect()
    };
    let assigned = s.experiments.assign(&id, q.slot.as_deref(), &[], Timestamp::now());
    let q = match &assigned {
        Some(a) if !a.entry.exp.spec.variants[a.variant].params.is_empty() => with_variant(catalog, raw.as_deref(), a)?,
        _ => q,
    };
    let body = recommend(&s, &pin, &session_key(&id), None, &extra, &[], &q, assigned.as_ref(), start)?;
    Ok(Json(body).into_response())
}

/// The cold-start chain, business rules and response for one subject.
#[allow(clippy::too_many_arguments)]
fn recommend(
    s: &AppState,
    pin: &crate::snapshot::Pinned,
    key: &str,
    user: Option<&str>,
    extra: &[u32],
    segments: &[String],
    q: &RecQuery,
    assigned: Option<&Assigned>,
    start: Instant,
) -> ApiResult<api::Recommendations> {
    let variant = assigned.map(|a| &a.entry.exp.spec.variants[a.variant]);
    let catalog = &*pin.catalog;
    let live = pin.live.as_ref().ok_or_else(no_model)?;
    let (model, recency) = crate::serving::model_of(live, variant);
    let n_model = model.map_or(0, |m| m.as_model().n_items());
    let now = Timestamp::now();
    // What the list needs of the subject, copied out under the shard lock.
    let (history, hidden, bought, updated_at) = s
        .online
        .with(key, |sub| {
            let h = sub.history(&s.weights, n_model, recency);
            // The user's own events hide items (purchases, by default) at once.
            let hidden =
                s.config.exclude.excluded(sub.events.iter().filter_map(|r| r.item.map(|i| (i, r.kind, r.ts))), now);
            let bought: Vec<u32> =
                sub.events.iter().filter(|r| r.kind == EventKind::Purchase).filter_map(|r| r.item).collect();
            (h, hidden, bought, sub.updated_at)
        })
        .unwrap_or_default();
    let subject = crate::serving::Subject {
        history,
        hidden,
        bought,
        // A row trained before the user's latest events arrived is stale: fold in instead.
        row: user.and_then(|u| s.user_row(live, u)).filter(|_| updated_at.is_none_or(|t| t < live.snapshot_at)),
        segments: segments.to_vec(),
        extra: extra.to_vec(),
    };
    let snapshot = crate::serving::Snapshot { live, catalog };
    let slot_default = (!q.calibration_given)
        .then(|| q.slot.as_ref().and_then(|slot| s.config.calibration.get(slot)))
        .flatten()
        .copied();
    let with_default;
    let request = match slot_default {
        Some(l) => {
            with_default = Request { calibration: l, ..q.request.clone() };
            &with_default
        }
        None => &q.request,
    };
    let served = crate::serving::recommend(snapshot, &subject, request, &q.context, variant, &s.config);
    let (out, strategy, model_name) = (&served.items, served.source.as_str(), served.model);
    let (playbooks, context_applied) = (served.playbooks.clone(), served.context.clone());
    let mut rec_id = s.next_rec_id(key);
    if let Some(a) = assigned {
        rec_id.push_str(&a.tag());
    }
    if let Some(d) = q.decision.as_ref().filter(|_| q.shown) {
        s.experiments.bandits.link(&rec_id, d);
    }
    let items_json: Vec<api::ListedItem> =
        out.iter().map(|r| item_json(catalog, r.item, r.score, Some(&r.reason))).collect();
    let latency_us = start.elapsed().as_micros() as u64;
    let ids: Vec<&str> = out.iter().filter_map(|r| catalog.id(r.item)).collect();
    tracing::info!(
        target: "tailor::served",
        rec_id = %rec_id,
        subject = %key,
        items = ?ids,
        model_version = live.version,
        experiment = assigned.map(|a| a.entry.exp.spec.name.as_str()),
        variant = assigned.map(Assigned::variant_name),
        strategy,
        slot = q.slot.as_deref().unwrap_or(""),
        context = ?q.context,
        latency_us,
        "recommendations served"
    );
    metrics::counter!("tailor_recommendations_served_total", "strategy" => strategy).increment(1);
    let indices: Vec<u32> = out.iter().map(|r| r.item).collect();
    if q.shown {
        s.alerts.list_served(served.source != Source::Personalized, out.is_empty());
        s.insights.served(&crate::insights::Served {
            subject: key,
            items: &indices,
            ids: &ids,
            strategy,
            rec_id: &rec_id,
            slot: q.slot.as_deref(),
            latency_us,
            cached: false,
        });
    }
    let variant_json = match assigned {
        Some(a) => {
            let unit = user.unwrap_or_else(|| key.trim_start_matches("s:"));
            let exposure = Exposure {
                rec_id: rec_id.clone(),
                unit: unit.to_string(),
                variant: a.variant,
                ts: now,
                items: ids.iter().map(|i| (*i).to_string()).collect(),
                segment: segments.first().cloned(),
            };
            if q.shown {
                s.experiments.log_exposure(a, &exposure);
            }
            Some(api::VariantOut {
                experiment: a.entry.exp.spec.name.clone(),
                variant: a.variant_name().to_string(),
                layout: variant.and_then(|v| v.layout),
            })
        }
        None => None,
    };
    Ok(api::Recommendations {
        user: user.map(str::to_string),
        session: user.is_none().then(|| key.trim_start_matches("s:").to_string()),
        items: items_json,
        strategy: strategy.to_string(),
        model_version: live.version,
        model: model_name.to_string(),
        rec_id,
        variant: variant_json,
        playbooks,
        context: context_applied,
        cached: false,
    })
}
