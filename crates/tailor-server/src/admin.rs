//! The dashboard's admin API: time series, catalog health, the live feed, bandits and
//! segment insights. Everything here reads; nothing changes state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tailor_core::Timestamp;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::routes::{blocking, query_map};

type St = State<Arc<AppState>>;

fn time_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    q.get(key)
        .map(|v| {
            Timestamp::parse_auto(v)
                .map(|t| t.0)
                .map_err(|e| ApiError::invalid(key.to_string(), format!("{key}={v}: {e}")))
        })
        .transpose()
}

fn only(q: &HashMap<String, String>, allowed: &[&str]) -> ApiResult<()> {
    match q.keys().find(|k| !allowed.contains(&k.as_str()) && k.as_str() != "key") {
        Some(k) => Err(ApiError::invalid(k.clone(), format!("unknown query parameter {k:?}; see /openapi.json"))),
        None => Ok(()),
    }
}

/// `GET /v1/admin/timeseries`.
pub(crate) async fn timeseries(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    only(&q, &["bucket", "from", "to"])?;
    let hours = match q.get("bucket").map(String::as_str) {
        None | Some("day") => 24,
        Some("hour") => 1,
        Some(other) => return Err(ApiError::invalid("bucket", format!("bucket={other}: expected hour or day"))),
    };
    let (from, to) = (time_param(&q, "from")?, time_param(&q, "to")?);
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err(ApiError::invalid("from", "from is after to"));
    }
    Ok(Json(s.insights.timeseries(hours, from, to)).into_response())
}

/// `GET /v1/admin/catalog-health`.
pub(crate) async fn catalog_health(State(s): St) -> ApiResult<Response> {
    let catalog = s.snapshots.catalog();
    let live = s.snapshots.live();
    let n = catalog.len();
    let popular = live.as_ref().map(|l| l.popular.as_slice()).unwrap_or(&[]);
    let mut v = s.insights.exposure(n, popular, &catalog.names, &|i| catalog.title(i));
    let listed = catalog.items.iter().flatten().count();
    let in_stock = catalog.items.iter().flatten().filter(|i| i.in_stock).count();
    // Items the live model can recommend by collaborative filtering (it saw them in training).
    let modelled = live.as_ref().and_then(|l| match (l.als(), l.scorer()) {
        (Some(m), _) => Some((0..n as u32).filter(|&i| m.item(i).is_some()).count()),
        (None, m) => m.map(|m| m.n_items().min(n)),
    });
    v["listed_items"] = json!(listed);
    v["in_stock_items"] = json!(in_stock);
    v["model_items"] = json!(modelled);
    v["model_version"] = json!(live.as_ref().map(|l| l.version));
    Ok(Json(v).into_response())
}

/// `GET /v1/admin/feed`.
pub(crate) async fn feed(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    only(&q, &["after"])?;
    let after = match q.get("after") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| ApiError::invalid("after", format!("after={v}: expected a number")))?,
    };
    let entries = s.insights.feed(after);
    let last = entries.last().map_or(after, |e| e.seq);
    Ok(Json(json!({"entries": entries, "last": last})).into_response())
}

/// `GET /v1/admin/bandits`.
pub(crate) async fn bandits(State(s): St) -> ApiResult<Response> {
    let snapshot: BTreeMap<String, tailor_experiment::bandit::Bandit> =
        s.experiments.bandits.snapshot().into_iter().collect();
    let list: Vec<Value> = snapshot
        .iter()
        .map(|(slot, b)| {
            let mut total = vec![(0u64, 0f64); b.arms.len()];
            let contexts: Vec<Value> = b
                .contexts
                .iter()
                .map(|(ctx, stats)| {
                    for (t, a) in total.iter_mut().zip(stats) {
                        t.0 += a.pulls;
                        t.1 += a.reward;
                    }
                    json!({
                        "context": ctx,
                        "shares": b.shares(ctx),
                        "arms": stats.iter().map(|a| json!({"pulls": a.pulls, "rewards": a.reward, "mean": a.mean()})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let pulls: u64 = total.iter().map(|t| t.0).sum();
            json!({
                "slot": slot,
                "policy": b.policy,
                "arms": b.arms.iter().zip(&total).map(|(name, t)| json!({
                    "arm": name,
                    "pulls": t.0,
                    "rewards": t.1,
                    "mean": if t.0 > 0 { t.1 / t.0 as f64 } else { 0.0 },
                    "share": if pulls > 0 { t.0 as f64 / pulls as f64 } else { 0.0 },
                })).collect::<Vec<_>>(),
                "contexts": contexts,
            })
        })
        .collect();
    Ok(Json(json!({"bandits": list})).into_response())
}

/// `GET /v1/admin/segments`: per segmentation, its latest run's segments with their
/// profiles and explanation rules, the stored 2-D map, sizes over time and migrations.
pub(crate) async fn segment_insights(State(s): St) -> ApiResult<Response> {
    let state = s.clone();
    let v = blocking(move || {
        let runs = state.store.segmentation_runs()?;
        let mut by_name: BTreeMap<String, Vec<tailor_store::SegmentationRun>> = BTreeMap::new();
        for r in runs {
            by_name.entry(r.name.clone()).or_default().push(r);
        }
        let mut out = Vec::new();
        for (name, runs) in by_name {
            let history = state.store.membership_history(&name, None)?;
            out.push(segmentation_insight(&name, &runs, &history));
        }
        Ok(json!({"segmentations": out}))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `GET /v1/alerts`.
pub(crate) async fn alerts(State(s): St) -> ApiResult<Response> {
    let (alerts, history) = s.alerts.snapshot();
    Ok(Json(crate::api::AlertsOut { alerts, history }).into_response())
}

/// `GET /v1/admin/cohorts`.
pub(crate) async fn cohorts(State(s): St) -> ApiResult<Response> {
    let state = s.clone();
    let c = blocking(move || Ok(crate::lifetime::cohorts(state.store.as_ref())?)).await?;
    Ok(Json(c).into_response())
}

/// `GET /v1/admin/drift`.
pub(crate) async fn drift(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    only(&q, &["segmentation"])?;
    let segmentation = q.get("segmentation").cloned();
    let state = s.clone();
    let r = blocking(move || Ok(crate::drift::report(state.store.as_ref(), segmentation.as_deref())?)).await?;
    Ok(Json(r).into_response())
}

/// `GET /v1/admin/fairness`.
pub(crate) async fn fairness(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    only(&q, &["by", "segmentation"])?;
    let by = crate::fairness::GroupBy::parse(
        q.get("by").map_or("segment", String::as_str),
        q.get("segmentation").map(String::as_str),
    )
    .map_err(|e| ApiError::invalid("by", e.to_string()))?;
    let state = s.clone();
    let r = blocking(move || Ok(crate::fairness::served(state.store.as_ref(), &by)?)).await?;
    Ok(Json(r).into_response())
}

/// `GET /v1/admin/clv`.
pub(crate) async fn clv(State(s): St, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = query_map(raw.as_deref())?;
    only(&q, &["months", "discount", "top", "through"])?;
    let number = |key: &str, default: f64| -> ApiResult<f64> {
        q.get(key).map_or(Ok(default), |v| {
            v.parse::<f64>().map_err(|_| ApiError::invalid(key.to_string(), format!("{key}={v}: expected a number")))
        })
    };
    let o = crate::lifetime::ClvOptions {
        through: time_param(&q, "through")?.map(Timestamp),
        months: number("months", 3.0)? as u32,
        monthly_discount: number("discount", 0.0)?,
        top: number("top", 10.0)? as usize,
    };
    let state = s.clone();
    let r = blocking(move || Ok(crate::lifetime::clv_report(state.store.as_ref(), &o)?)).await?;
    Ok(Json(r).into_response())
}

/// The part of [`segment_insights`] for one segmentation (`runs` oldest first).
fn segmentation_insight(
    name: &str,
    runs: &[tailor_store::SegmentationRun],
    history: &[tailor_store::MembershipChange],
) -> Value {
    let Some(latest) = runs.last() else { return json!({"segmentation": name}) };
    let rec = &latest.record;
    let names: Vec<String> = latest.segments.iter().map(|d| d.name.clone()).collect();
    let rules = rec["rules"].as_array().cloned().unwrap_or_default();
    let segments: Vec<Value> = latest
        .segments
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let defined = rules.iter().find(|r| r["name"] == d.name.as_str()).map(|r| r["when"].clone());
            json!({
                "name": d.name,
                "description": d.description,
                "size": d.size,
                "defined_as": defined,
                "profile": rec["summaries"].get(k),
                "explanations": rec["explanations"].get(k),
            })
        })
        .collect();
    // Sizes over time: each run's sizes when it was made; after the latest run, its sizes
    // moved by every real-time change, one point per change day.
    let mut sizes: Vec<Value> = runs
        .iter()
        .map(|r| {
            let by: BTreeMap<&str, u64> = r.segments.iter().map(|d| (d.name.as_str(), d.size)).collect();
            json!({"t": r.created_at.0, "run": r.id, "sizes": by})
        })
        .collect();
    let mut current: BTreeMap<String, i64> = latest.segments.iter().map(|d| (d.name.clone(), d.size as i64)).collect();
    // Migrations: moves between primary segments ("(none)" when a user had none).
    let mut moves: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut day_of_last: Option<i64> = None;
    let primary = |v: &[String]| v.first().cloned().unwrap_or_else(|| "(none)".to_string());
    for c in history {
        let initial = c.from.is_empty() && c.run.is_some();
        if !initial {
            *moves.entry((primary(&c.from), primary(&c.to))).or_insert(0) += 1;
        }
        if c.run.is_none() && c.at >= latest.created_at {
            for s in &c.from {
                *current.entry(s.clone()).or_insert(0) -= 1;
            }
            for s in &c.to {
                *current.entry(s.clone()).or_insert(0) += 1;
            }
            let day = c.at.0.div_euclid(crate::insights::DAY_MS);
            let point = json!({"t": c.at.0, "run": Value::Null, "sizes": current});
            if day_of_last == Some(day) {
                sizes.pop();
            }
            sizes.push(point);
            day_of_last = Some(day);
        }
    }
    let migrations: Vec<Value> =
        moves.into_iter().map(|((from, to), n)| json!({"from": from, "to": to, "users": n})).collect();
    json!({
        "segmentation": name,
        "run": latest.id,
        "method": rec["method"],
        "created_at": latest.created_at,
        "users": rec["users"],
        "names": names,
        "segments": segments,
        "tree_accuracy": rec["tree_accuracy"],
        "map": rec.get("map"),
        "sizes_over_time": sizes,
        "migrations": migrations,
        "realtime_changes": history.iter().filter(|c| c.run.is_none()).count(),
    })
}
