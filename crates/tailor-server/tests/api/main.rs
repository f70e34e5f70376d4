//! HTTP tests of every route, in process (the router as a tower service): status codes,
//! error bodies, auth scopes, CORS, limits, real-time updates, the cold-start chain and hot
//! swaps under concurrent load.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tailor_server::AppState;
use tailor_server::config::{ApiKey, Playbook, Scope, ServeConfig, Strategy};
use tailor_store::{RedbStore, SegmentDef, SegmentationRun, Store, WriteBatch};
use tower::ServiceExt;

mod hardening;

const READ: &str = "read-key-0123456789";
const WRITE: &str = "write-key-0123456789";
const ADMIN: &str = "admin-key-0123456789";

struct Shop {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    app: axum::Router,
    store: Arc<RedbStore>,
}

fn keys() -> Vec<ApiKey> {
    let k = |name: &str, key: &str, scopes: Vec<Scope>| ApiKey { name: name.into(), key: key.into(), scopes };
    vec![
        k("site", READ, vec![Scope::Read]),
        k("backend", WRITE, vec![Scope::Write]),
        k("ops", ADMIN, vec![Scope::Admin]),
    ]
}

/// A small demo shop with a stored rule segmentation, trained and ready.
fn shop_with(config: ServeConfig) -> Shop {
    let s = unstarted(config);
    s.state.start_blocking().expect("train");
    s
}

/// The same shop before its first training (no model yet: 503 where one is needed).
fn unstarted(config: ServeConfig) -> Shop {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("store"));
    let params = tailor_ingest::demo::DemoParams {
        users: 300,
        items: 200,
        days: 14,
        anonymous_sessions: 50,
        ..Default::default()
    };
    let demo = tailor_ingest::demo::generate(&params);
    store
        .write(WriteBatch { items: demo.items, users: demo.users, events: demo.events, ..WriteBatch::default() })
        .expect("write");
    // A segmentation: the first 40 users are "Bargain hunters"; "Quiet" holds one user
    // without any events (for the segment step of the cold-start chain).
    let names = store.user_names().expect("names");
    store
        .write(WriteBatch { users: vec![tailor_core::User::new("quiet-user")], ..WriteBatch::default() })
        .expect("user");
    let run = SegmentationRun {
        id: 0,
        name: "rules".into(),
        created_at: tailor_core::Timestamp::now(),
        segments: vec![
            SegmentDef { name: "Bargain hunters".into(), description: None, size: 40 },
            SegmentDef { name: "Quiet".into(), description: None, size: 1 },
        ],
        record: json!({}),
    };
    let mut members: Vec<(String, Vec<String>)> =
        names.iter().take(40).map(|u| (u.clone(), vec!["Bargain hunters".to_string()])).collect();
    members.push(("quiet-user".into(), vec!["Quiet".into(), "Bargain hunters".into()]));
    store.save_segmentation(run, &mut members.into_iter()).expect("segments");
    let dyn_store: Arc<dyn Store> = store.clone();
    let models = dir.path().join("models");
    let state = Arc::new(AppState::open(config, dyn_store, Default::default(), models).expect("state"));
    let app = tailor_server::router(state.clone());
    Shop { _dir: dir, state, app, store }
}

fn config() -> ServeConfig {
    ServeConfig {
        api_keys: keys(),
        cors_origins: vec!["https://shop.example".into()],
        als_params: "factors=16,iterations=5".parse().expect("ALS parameters"),
        ..ServeConfig::default()
    }
}

fn shop() -> Shop {
    shop_with(config())
}

/// The shop with a Thompson layout bandit (carousel or grid) on the home slot.
fn shop_with_home_bandit() -> Shop {
    let mut cfg = config();
    cfg.bandits = vec![tailor_server::experiments::BanditConfig {
        slot: "home".into(),
        arms: vec!["carousel".into(), "grid".into()],
        policy: "thompson".into(),
        per_segment: false,
    }];
    shop_with(cfg)
}

/// A report read as a client that waits for its own writes reads it: computed now
/// (`Cache-Control: no-cache`), so `Age: 0`.
async fn fresh_report(app: &axum::Router, uri: &str, key: Option<&str>) -> Value {
    let mut req = Request::get(uri).header("cache-control", "no-cache");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    assert_eq!(resp.headers().get("age").and_then(|v| v.to_str().ok()), Some("0"), "{uri}");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.expect("body");
    serde_json::from_slice(&bytes).expect("report JSON")
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).expect("request")).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn public_routes_and_error_shape() {
    let s = shop();
    let (st, v) = call(&s.app, "GET", "/healthz", None, None).await;
    assert_eq!((st, v), (StatusCode::OK, json!({"status": "ok"})));
    let (st, v) = call(&s.app, "GET", "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["model_version"], 1);
    let (st, v) = call(&s.app, "GET", "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["paths"]["/v1/users/{id}/recommendations"]["get"].is_object());
    let (st, v) = call(&s.app, "GET", "/nope", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v, json!({"error": {"code": "not_found", "message": "no such route; see /openapi.json"}}));
    let (st, v) = call(&s.app, "GET", "/widget.js", None, None).await;
    assert!(st == StatusCode::OK && v.as_str().is_some_and(|t| t.contains("window.tailor")), "{st}");
    let (st, v) = call(&s.app, "GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v.as_str().is_some_and(|t| t.contains("tailor_model_version")), "{v}");
}

#[tokio::test]
async fn auth_scopes() {
    let s = shop();
    let uri = "/v1/popular?k=3";
    let (st, v) = call(&s.app, "GET", uri, None, None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (st, _) = call(&s.app, "GET", uri, Some("read-key-0123456780"), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a near miss is still unknown");
    assert_eq!(call(&s.app, "GET", uri, Some(READ), None).await.0, StatusCode::OK);
    assert_eq!(call(&s.app, "GET", uri, Some(ADMIN), None).await.0, StatusCode::OK, "admin implies read");
    let (st, v) = call(&s.app, "GET", uri, Some(WRITE), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let ev = json!({"user": "u", "item": "SKU-00001", "kind": "view"});
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(READ), Some(ev.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(WRITE), Some(ev)).await.0, StatusCode::ACCEPTED);
    assert_eq!(call(&s.app, "POST", "/v1/admin/retrain", Some(WRITE), None).await.0, StatusCode::FORBIDDEN);
    let (st, v) = call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["live"]["version"].clone(), v["promoted"].clone()), (json!(2), json!(true)), "{v}");
    let (st, v) = call(&s.app, "GET", "/v1/admin/models", Some(ADMIN), None).await;
    assert_eq!((st, v["live"]["version"].clone()), (StatusCode::OK, json!(2)));
}

#[tokio::test]
async fn events_are_validated_per_row_stored_and_idempotent() {
    let s = shop();
    let before = s.store.counts().expect("counts").events;
    let batch = json!([
        {"id": "e-1", "user": "new-user", "item": "SKU-00003", "kind": "view", "ts": "2026-11-01T10:00:00Z"},
        {"user": "new-user", "kind": "purchase"},
        {"user": "new-user", "item": "SKU-00004", "kind": "teleport"},
        {"user": "new-user", "item": "SKU-00005", "kind": "view", "colour": "red"},
        {"user": "new-user", "item": "SKU-00006", "kind": "add_to_cart", "ts": "yesterday"},
        {"session": "anon-1", "item": "SKU-00007", "kind": "view", "ts": tailor_core::Timestamp::now().0}
    ]);
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(batch.clone())).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    assert_eq!((v["accepted"].clone(), v["stored"].clone()), (json!(2), json!(2)));
    let rejected = v["rejected"].as_array().expect("rejected");
    let got: Vec<(u64, &str)> =
        rejected.iter().map(|r| (r["index"].as_u64().unwrap_or(99), r["field"].as_str().unwrap_or(""))).collect();
    assert_eq!(got, vec![(1, "item"), (2, "kind"), (3, "colour"), (4, "ts")], "{v}");
    assert_eq!(s.store.counts().expect("counts").events, before + 2);
    // The same batch again: nothing new (ids given or derived the same way).
    let (_, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(batch)).await;
    assert_eq!((v["stored"].clone(), v["duplicates"].clone()), (json!(0), json!(2)));
    assert_eq!(s.store.counts().expect("counts").events, before + 2);
    // Every row invalid: 422 with the first error's field.
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!([{"kind": "view"}]))).await;
    assert_eq!(
        (st, error_code(&v), v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_rows", json!("user"))
    );
    // Malformed JSON and oversized batches.
    let req = Request::post("/v1/events")
        .header("x-api-key", WRITE)
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .expect("req");
    let resp = s.app.clone().oneshot(req).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let many: Vec<Value> =
        (0..10_001).map(|i| json!({"user": "u", "item": "SKU-00001", "kind": "view", "ts": i})).collect();
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!({"events": many}))).await;
    assert_eq!((st, error_code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"));
}

#[tokio::test]
async fn read_your_writes_and_purchases_disappear() {
    let s = shop();
    let uri = "/v1/users/U00001/recommendations?k=5";
    let (st, first) = call(&s.app, "GET", uri, Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    assert_eq!(first["strategy"], "personalized");
    assert!(first["rec_id"].as_str().is_some_and(|r| r.starts_with('r')));
    let top = ids(&first)[0].clone();
    // Cached until an event arrives.
    let (_, again) = call(&s.app, "GET", uri, Some(READ), None).await;
    assert_eq!((again["cached"].clone(), ids(&again)), (json!(true), ids(&first)));
    let ev = json!({"user": "U00001", "item": top, "kind": "purchase", "unit_price": 10.0});
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(WRITE), Some(ev)).await.0, StatusCode::ACCEPTED);
    let (_, after) = call(&s.app, "GET", uri, Some(READ), None).await;
    assert_eq!(after["cached"], false);
    assert!(!ids(&after).contains(&top), "the purchased item {top} is still recommended: {after}");
    // Views of one category move a fresh user's list towards it at once (fold-in).
    let cat_items: Vec<String> = {
        let (_, v) = call(&s.app, "GET", "/v1/popular?k=100", Some(READ), None).await;
        let first_cat = v["items"][0]["category"].as_str().unwrap_or("").to_string();
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["category"] == first_cat.as_str())
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .take(4)
            .collect()
    };
    assert!(cat_items.len() >= 2);
    let (_, cold) = call(&s.app, "GET", "/v1/users/fresh/recommendations?k=5", Some(READ), None).await;
    assert_eq!(cold["strategy"], "popular");
    let views: Vec<Value> = cat_items.iter().map(|i| json!({"user": "fresh", "item": i, "kind": "view"})).collect();
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(views))).await.0, StatusCode::ACCEPTED);
    let (_, warm) = call(&s.app, "GET", "/v1/users/fresh/recommendations?k=5", Some(READ), None).await;
    assert_eq!(warm["strategy"], "personalized", "{warm}");
    assert_ne!(ids(&warm), ids(&cold));
    for item in &cat_items {
        assert!(!ids(&warm).contains(item), "viewed items are not recommended back");
    }
    let reason = &warm["items"][0]["reason"];
    assert_eq!(reason["kind"], "because_you_viewed", "{warm}");
    assert!(cat_items.contains(&reason["item"].as_str().unwrap_or("").to_string()));
}

#[tokio::test]
async fn cold_start_chain_and_playbooks() {
    let mut cfg = config();
    cfg.playbooks = vec![Playbook { segment: "Quiet".into(), strategy: Strategy::PremiumOnly, weight: 0.0 }];
    let s = shop_with(cfg);
    // A stored user without events but with segments: the segment's popular items, premium only.
    let (st, v) = call(&s.app, "GET", "/v1/users/quiet-user/recommendations?k=5", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["strategy"], "segment_popular", "{v}");
    assert_eq!(v["items"][0]["reason"]["kind"], "popular_in_segment");
    assert_eq!(v["playbooks"][0]["strategy"], "premium_only");
    let catalog = s.state.snapshots.catalog();
    for id in ids(&v) {
        let i = catalog.index[id.as_str()] as usize;
        assert!(catalog.premium[i], "{id} is not in the premium tier");
    }
    // Nobody known: global popular; never empty while items are in stock.
    let (_, v) = call(&s.app, "GET", "/v1/users/nobody/recommendations?k=5", Some(READ), None).await;
    assert_eq!((v["strategy"].clone(), ids(&v).len()), (json!("popular"), 5));
    // Filters that leave nothing popular still answer from the catalog when items pass them.
    let (_, v) =
        call(&s.app, "GET", "/v1/users/nobody/recommendations?k=3&min_price=0&max_price=1000000", Some(READ), None)
            .await;
    assert_eq!(ids(&v).len(), 3);
    // An anonymous session with items in the body.
    let item = ids(&call(&s.app, "GET", "/v1/popular?k=1", Some(READ), None).await.1)[0].clone();
    let (st, v) =
        call(&s.app, "POST", "/v1/sessions/sess-9/recommendations?k=4", Some(READ), Some(json!({"items": [item]})))
            .await;
    assert_eq!((st, v["strategy"].clone()), (StatusCode::OK, json!("personalized")), "{v}");
    assert!(!ids(&v).contains(&item));
}

#[tokio::test]
async fn filters_and_query_errors() {
    let s = shop();
    let catalog = s.state.snapshots.catalog();
    let cat = catalog.categories[0].clone();
    let uri = format!("/v1/users/U00002/recommendations?k=6&category={cat}&diversity=0.5&max_per_category=6");
    let (st, v) = call(&s.app, "GET", &uri, Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for it in v["items"].as_array().expect("items") {
        assert!(it["category"].as_str().is_some_and(|c| c.starts_with(&cat)), "{it}");
    }
    let excluded = ids(&v)[0].clone();
    let (_, v2) = call(&s.app, "GET", &format!("{uri}&exclude={excluded}"), Some(READ), None).await;
    assert!(!ids(&v2).contains(&excluded));
    for (q, field) in [
        ("k=500", "k"),
        ("diversity=2", "diversity"),
        ("category=Nope", "category"),
        ("min_price=abc", "min_price"),
        ("min_price=10&max_price=5", "min_price"),
        ("colour=red", "colour"),
    ] {
        let (st, v) = call(&s.app, "GET", &format!("/v1/users/U00002/recommendations?{q}"), Some(READ), None).await;
        assert_eq!((st, v["error"]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(field)), "{q}: {v}");
    }
}

#[tokio::test]
async fn catalog_users_items_segments() {
    let s = shop();
    // An item put out of stock never comes back.
    let (_, v) = call(&s.app, "GET", "/v1/popular?k=1", Some(READ), None).await;
    let top = ids(&v)[0].clone();
    let (st, item) = call(&s.app, "GET", &format!("/v1/items/{top}"), Some(READ), None).await;
    assert_eq!(st, StatusCode::OK);
    let mut record = item["item"].clone();
    record["in_stock"] = json!(false);
    let (st, v) = call(&s.app, "PUT", "/v1/items", Some(WRITE), Some(json!([record, {"id": ""}]))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["updated"].clone(), v["rejected"][0]["index"].clone()), (json!(1), json!(1)));
    let (_, v) = call(&s.app, "GET", "/v1/popular?k=10", Some(READ), None).await;
    assert!(!ids(&v).contains(&top));
    let (_, v) = call(&s.app, "GET", "/v1/users/nobody/recommendations?k=10", Some(READ), None).await;
    assert!(!ids(&v).contains(&top));
    let (st, v) = call(&s.app, "GET", "/v1/items/no-such-item", Some(READ), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    // Similar and bought together.
    let (st, v) = call(&s.app, "GET", "/v1/items/SKU-00010/similar?k=4", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&v).len(), 4);
    assert!(!ids(&v).contains(&"SKU-00010".to_string()));
    let (st, _) = call(&s.app, "GET", "/v1/items/SKU-00010/bought-together", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(call(&s.app, "GET", "/v1/items/zzz/similar", Some(READ), None).await.0, StatusCode::NOT_FOUND);
    // Users and profiles.
    let (st, v) =
        call(&s.app, "PUT", "/v1/users", Some(WRITE), Some(json!({"users": [{"id": "p1", "country": "DE"}]}))).await;
    assert_eq!((st, v["inserted"].clone()), (StatusCode::OK, json!(1)));
    let (st, v) = call(&s.app, "GET", "/v1/users/p1/profile", Some(READ), None).await;
    assert_eq!((st, v["attributes"]["country"].clone()), (StatusCode::OK, json!("DE")));
    let (st, v) = call(&s.app, "GET", "/v1/users/U00001/profile", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["activity"]["counts"]["view"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["features"]["frequency"].as_f64().is_some(), "{v}");
    assert!(v["features"].get("main_device").is_some(), "{v}");
    assert_eq!(call(&s.app, "GET", "/v1/users/ghost/profile", Some(READ), None).await.0, StatusCode::NOT_FOUND);
    // Segments.
    let (_, v) = call(&s.app, "GET", "/v1/segments", Some(READ), None).await;
    assert_eq!(v["segmentations"][0]["segments"][0]["name"], "Bargain hunters");
    let (st, v) =
        call(&s.app, "GET", "/v1/segments/Bargain%20hunters/users?per_page=15&page=3", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["total"].clone(), v["users"].as_array().map(Vec::len)), (json!(41), Some(11)));
    assert_eq!(call(&s.app, "GET", "/v1/segments/None/users", Some(READ), None).await.0, StatusCode::NOT_FOUND);
    let (st, v) = call(&s.app, "GET", "/v1/popular?segment=Bargain%20hunters&k=3", Some(READ), None).await;
    assert_eq!((st, v["items"][0]["reason"]["kind"].clone()), (StatusCode::OK, json!("popular_in_segment")));
    let (st, v) = call(&s.app, "GET", "/v1/trending?k=3", Some(READ), None).await;
    assert_eq!((st, ids(&v).len()), (StatusCode::OK, 3));
}

#[tokio::test]
async fn cors_rate_and_body_limits() {
    let mut cfg = config();
    cfg.rate_limit_per_second = 0.5;
    cfg.rate_limit_burst = 2.0;
    cfg.body_limit_bytes = 2048;
    let s = shop_with(cfg);
    let req = |origin: &str| {
        Request::get("/v1/popular").header("x-api-key", READ).header("origin", origin).body(Body::empty()).expect("req")
    };
    let ok = s.app.clone().oneshot(req("https://shop.example")).await.expect("resp");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://shop.example"[..])
    );
    let other = s.app.clone().oneshot(req("https://evil.example")).await.expect("resp");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // Two tokens were spent above; the third request of the key is refused with Retry-After.
    let resp = s.app.clone().oneshot(req("https://shop.example")).await.expect("resp");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    // Other keys have their own bucket; bodies over the limit are refused.
    let big: Vec<Value> = (0..100).map(|_| json!({"user": "u", "item": "SKU-00001", "kind": "view"})).collect();
    let (st, _) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(big))).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_under_concurrent_requests() {
    let s = shop();
    let mut clients = Vec::new();
    for c in 0..8 {
        let app = s.app.clone();
        clients.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for r in 0..40 {
                let uri = format!("/v1/users/U{:05}/recommendations?k=5&slot=c{c}r{r}", 1 + (c * 40 + r) % 300);
                let (st, v) = call(&app, "GET", &uri, Some(READ), None).await;
                assert_eq!(st, StatusCode::OK, "{v}");
                assert_eq!(ids(&v).len(), 5);
                versions.push(v["model_version"].as_u64().unwrap_or(0));
            }
            versions
        }));
    }
    for _ in 0..3 {
        let (st, v) = call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await;
        assert_eq!((st, v["promoted"].clone()), (StatusCode::OK, json!(true)), "{v}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        let versions = c.await.expect("client");
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "a client went back to an older model: {versions:?}");
        seen.extend(versions);
    }
    assert!(seen.iter().all(|v| (1..=4).contains(v)), "{seen:?}");
    assert_eq!(s.state.snapshots.live_version(), Some(4));
}

#[tokio::test]
async fn erasure_forgets_the_user_everywhere() {
    let s = shop();
    let user = "U00003";
    let (_, before) = call(&s.app, "GET", &format!("/v1/users/{user}/recommendations?k=5"), Some(READ), None).await;
    assert_eq!(before["strategy"], "personalized");
    let (_, v) = call(&s.app, "GET", "/v1/segments/Bargain%20hunters/users?per_page=1000", Some(READ), None).await;
    assert!(v["users"].as_array().is_some_and(|u| u.iter().any(|x| x == user)));
    assert_eq!(call(&s.app, "DELETE", &format!("/v1/users/{user}"), Some(WRITE), None).await.0, StatusCode::FORBIDDEN);
    let (_, feed) = call(&s.app, "GET", "/v1/admin/feed", Some(ADMIN), None).await;
    assert!(feed["entries"].as_array().is_some_and(|e| e.iter().any(|x| x["subject"] == user)));
    let (st, v) = call(&s.app, "DELETE", &format!("/v1/users/{user}"), Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["erased"]["events"].as_u64().is_some_and(|n| n > 0), "{v}");
    let (_, feed) = call(&s.app, "GET", "/v1/admin/feed", Some(ADMIN), None).await;
    assert!(!feed["entries"].as_array().is_some_and(|e| e.iter().any(|x| x["subject"] == user)), "{feed}");
    // Nothing of the user comes back: no profile, no personal list, no segment membership,
    // no stored event.
    assert_eq!(
        call(&s.app, "GET", &format!("/v1/users/{user}/profile"), Some(READ), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, after) = call(&s.app, "GET", &format!("/v1/users/{user}/recommendations?k=5"), Some(READ), None).await;
    assert_eq!(after["strategy"], "popular", "{after}");
    let (_, v) = call(&s.app, "GET", "/v1/segments/Bargain%20hunters/users?per_page=1000", Some(READ), None).await;
    assert!(!v["users"].as_array().is_some_and(|u| u.iter().any(|x| x == user)));
    let mut left = 0;
    s.store
        .scan_events(tailor_store::EventFilter::default(), &mut |_, e| {
            left += usize::from(e.user.as_ref().is_some_and(|u| u.as_str() == user));
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(left, 0);
    // The next training does not know them; erasing again finds nothing.
    assert_eq!(call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await.0, StatusCode::OK);
    assert!(s.state.snapshots.live().as_ref().is_some_and(|l| !l.user_rows.contains_key(user)));
    let (_, after) = call(&s.app, "GET", &format!("/v1/users/{user}/recommendations?k=5"), Some(READ), None).await;
    assert_eq!(after["strategy"], "popular");
    assert_eq!(call(&s.app, "DELETE", &format!("/v1/users/{user}"), Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn versions_promotion_rollback_and_restart() {
    let s = shop();
    let (_, v) = call(&s.app, "GET", "/v1/admin/models", Some(ADMIN), None).await;
    assert_eq!((v["registered_live"].clone(), v["versions"].as_array().map(Vec::len)), (json!(1), Some(1)));
    let ndcg = v["live"]["holdout_ndcg"].as_f64().expect("holdout measured");
    assert!(ndcg > 0.0 && ndcg < 1.0);
    // A retrain on the same data is as good: promoted.
    let (_, v) = call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await;
    assert_eq!((v["promoted"].clone(), v["live"]["version"].clone()), (json!(true), json!(2)), "{v}");
    // A candidate made worse (1 factor, 1 iteration) with no tolerance is rejected; the live
    // version stays.
    let mut worse = config();
    worse.model = "als".parse().expect("model");
    worse.als_params = "factors=1,iterations=1".parse().expect("ALS parameters");
    worse.promote_tolerance = 0.0;
    let dyn_store: Arc<dyn Store> = s.store.clone();
    let models = s._dir.path().join("models");
    let other = AppState::open(worse, dyn_store, Default::default(), models).expect("state");
    other.start_blocking().expect("serves the registered version");
    assert_eq!(other.snapshots.live_version(), Some(2), "a restart serves the registered version");
    let r = other.retrain_blocking().expect("retrain");
    assert!(!r.promoted, "{r:?}");
    assert_eq!(other.snapshots.live_version(), Some(2));
    let reg = s.state.models.registry.read().expect("registry");
    assert_eq!((reg.live, reg.versions.len()), (Some(2), 3));
    // Rollback: the registry names version 1 again; reload swaps it in.
    let mut reg = reg;
    reg.live = Some(1);
    s.state.models.registry.write(&reg).expect("write");
    let (st, v) = call(&s.app, "POST", "/v1/admin/reload", Some(ADMIN), None).await;
    assert_eq!((st, v["live"]["version"].clone()), (StatusCode::OK, json!(1)), "{v}");
    let (_, v) = call(&s.app, "GET", "/v1/users/U00001/recommendations?k=3", Some(READ), None).await;
    assert_eq!(v["model_version"], 1);
    // The version's context model was kept with it and reloaded, not refitted.
    assert!(s.state.models.registry.load_context(1).expect("read").is_some());
    assert!(s.state.snapshots.live().as_ref().is_some_and(|l| l.context.is_some()));
}

#[tokio::test]
async fn context_conditions_the_list() {
    let s = shop();
    let devices: Vec<String> = {
        let live = s.state.snapshots.live();
        let (_, index) = live.as_ref().and_then(|l| l.context.as_ref()).expect("a context model");
        let mut v: Vec<String> = index.keys().filter(|k| !k.is_empty()).cloned().collect();
        v.sort();
        v
    };
    assert!(devices.len() >= 2, "{devices:?}");
    let mut differ = 0;
    for u in 1..=10 {
        let uri = |d: &str| format!("/v1/users/U{u:05}/recommendations?k=10&context.device={d}");
        let (_, a) = call(&s.app, "GET", &uri(&devices[0]), Some(READ), None).await;
        let (_, b) = call(&s.app, "GET", &uri(&devices[1]), Some(READ), None).await;
        assert_eq!((a["context"].clone(), b["context"].clone()), (json!(devices[0]), json!(devices[1])));
        differ += usize::from(ids(&a) != ids(&b));
    }
    assert!(differ >= 3, "the device changed only {differ} of 10 lists");
    // An unknown context value falls back to the plain model.
    let (st, v) =
        call(&s.app, "GET", "/v1/users/U00001/recommendations?context.device=toaster", Some(READ), None).await;
    assert_eq!((st, v["context"].clone(), v["strategy"].clone()), (StatusCode::OK, Value::Null, json!("personalized")));
}

#[test]
fn committed_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let config = ServeConfig::default();
    let doc = tailor_server::openapi::document(&tailor_server::openapi::Context::offline(&config));
    let want = serde_json::to_string_pretty(&doc).expect("json") + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        fs_err::write(&path, &want).expect("write");
    }
    let got = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p tailor-server --test api committed_openapi`"
    );
}

/// Every error status the API answers, with its exact body, against
/// `tests/snapshots/errors.json` (`UPDATE_SNAPSHOTS=1` rewrites it after a deliberate change).
#[tokio::test]
async fn error_bodies_match_their_snapshots() {
    let s = shop();
    let mut got: Vec<Value> = Vec::new();
    let mut record = |request: &str, (status, body): (StatusCode, Value)| {
        got.push(json!({"request": request, "status": status.as_u16(), "body": body}));
    };
    let bad_rows = json!([{"user": "u", "item": "SKU-00001", "kind": "teleport"}, {"kind": "view"}]);
    let too_many: Vec<Value> = (0..10_001).map(|i| json!({"user": "u", "kind": "view", "ts": i})).collect();
    for (method, uri, key, body) in [
        ("GET", "/nope", None, None),
        ("GET", "/v1/popular", None, None),
        ("GET", "/v1/popular", Some("read-key-0123456780"), None),
        ("GET", "/v1/popular", Some(WRITE), None),
        ("POST", "/v1/admin/retrain", Some(READ), None),
        ("GET", "/v1/items/NOPE", Some(READ), None),
        ("GET", "/v1/items/NOPE/similar", Some(READ), None),
        ("GET", "/v1/users/U00002/recommendations?k=0", Some(READ), None),
        ("GET", "/v1/users/U00002/recommendations?k=ten", Some(READ), None),
        ("GET", "/v1/users/U00002/recommendations?diversity=2", Some(READ), None),
        ("GET", "/v1/users/U00002/recommendations?context.weather=rain", Some(READ), None),
        ("GET", "/v1/segments/Nope/users", Some(READ), None),
        ("POST", "/v1/events", Some(WRITE), Some(bad_rows)),
        ("POST", "/v1/events", Some(WRITE), Some(json!({"events": too_many}))),
        ("PUT", "/v1/items", Some(WRITE), Some(json!([{"id": "X", "price": -3}]))),
        ("DELETE", "/v1/users/nobody-at-all", Some(ADMIN), None),
        ("PATCH", "/v1/events", Some(WRITE), None),
        ("HEAD", "/v1/admin/models", None, None),
        ("POST", "/v1/events", Some(WRITE), Some(json!([{"user": "u", "kind": "view", "ts": "2199-01-01"}]))),
        (
            "POST",
            "/v1/events",
            Some(WRITE),
            Some(json!([{"user": "u", "item": "i", "kind": "purchase", "unit_price": 1e308}])),
        ),
    ] {
        record(&format!("{method} {uri}"), call(&s.app, method, uri, key, body).await);
    }
    for (what, content_type, origin) in [
        ("text/plain body", Some("text/plain"), None),
        ("no content type", None, None),
        ("from another site", Some("application/json"), Some("https://evil.example")),
    ] {
        let mut req = Request::post("/v1/events").header("x-api-key", WRITE);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let body = Body::from(json!({"user": "u", "item": "SKU-00001", "kind": "view"}).to_string());
        let resp = s.app.clone().oneshot(req.body(body).expect("req")).await.expect("resp");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        record(&format!("POST /v1/events ({what})"), (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
    }
    let req = Request::post("/v1/events")
        .header("x-api-key", WRITE)
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .expect("req");
    let resp = s.app.clone().oneshot(req).await.expect("resp");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    record("POST /v1/events (malformed JSON)", (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
    {
        // A retraining already running: a second one is refused, not queued.
        let _running = s.state.models.training().await;
        record(
            "POST /v1/admin/retrain (while one runs)",
            call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await,
        );
    }
    // Before the first training, and a key over its rate or body limit.
    let mut cfg = config();
    cfg.rate_limit_per_second = 0.5;
    cfg.rate_limit_burst = 2.0;
    cfg.body_limit_bytes = 2048;
    let cold = unstarted(cfg);
    record(
        "GET /v1/users/U00002/recommendations (no model yet)",
        call(&cold.app, "GET", "/v1/users/U00002/recommendations", Some(READ), None).await,
    );
    record("GET /readyz (no model yet)", call(&cold.app, "GET", "/readyz", None, None).await);
    call(&cold.app, "GET", "/v1/popular", Some(READ), None).await;
    record("GET /v1/popular (third request, burst 2)", call(&cold.app, "GET", "/v1/popular", Some(READ), None).await);
    let big: Vec<Value> = (0..100).map(|_| json!({"user": "u", "item": "SKU-00001", "kind": "view"})).collect();
    record(
        "POST /v1/events (body over 2048 bytes)",
        call(&cold.app, "POST", "/v1/events", Some(WRITE), Some(json!(big))).await,
    );

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/errors.json");
    let want = serde_json::to_string_pretty(&got).expect("json") + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        fs_err::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        fs_err::write(&path, &want).expect("write");
    }
    let stored = fs_err::read_to_string(&path).unwrap_or_default();
    if stored != want {
        let old: Vec<Value> = serde_json::from_str(&stored).unwrap_or_default();
        for (i, case) in got.iter().enumerate() {
            assert_eq!(old.get(i), Some(case), "case {i} differs from tests/snapshots/errors.json");
        }
        panic!("tests/snapshots/errors.json is stale: rerun with UPDATE_SNAPSHOTS=1 after checking the change");
    }
    let statuses: std::collections::BTreeSet<u64> = got.iter().filter_map(|c| c["status"].as_u64()).collect();
    for code in [400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503] {
        assert!(statuses.contains(&code), "no snapshot answers {code}");
    }
}

/// Two recommender variants served through the API; clicks and purchases posted with the
/// served rec_ids; the report counts them per variant.
#[tokio::test]
async fn experiment_variants_are_served_logged_and_reported() {
    let s = shop();
    let spec = json!({
        "name": "home-algo",
        "slots": ["home"],
        "variants": [{"name": "control"}, {"name": "popular", "strategy": "popular", "layout": "grid"}],
        "primary_metric": "ctr",
        "guardrails": ["revenue_per_user"]
    });
    let (st, v) = call(&s.app, "POST", "/v1/experiments?start=true", Some(WRITE), Some(spec.clone())).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "creating needs admin: {v}");
    let (st, v) = call(&s.app, "POST", "/v1/experiments?start=true", Some(ADMIN), Some(spec.clone())).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "running");
    let (st, v) = call(&s.app, "POST", "/v1/experiments", Some(ADMIN), Some(spec)).await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");
    let bad = json!({"name": "x", "variants": [{"name": "a"}, {"name": "b", "weight": -1}]});
    let (st, v) = call(&s.app, "POST", "/v1/experiments", Some(ADMIN), Some(bad)).await;
    assert_eq!(
        (st, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("variants[1].weight")),
        "{v}"
    );

    // Another slot is outside the experiment.
    let (_, v) = call(&s.app, "GET", "/v1/users/U00001/recommendations?slot=cart", Some(READ), None).await;
    assert_eq!(v["variant"], Value::Null);
    let names = s.store.user_names().expect("names");
    let mut served: Vec<(String, String, String, Vec<String>)> = Vec::new();
    for u in names.iter().take(60) {
        let (st, v) =
            call(&s.app, "GET", &format!("/v1/users/{u}/recommendations?slot=home&k=5"), Some(READ), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let variant = v["variant"]["variant"].as_str().expect("variant").to_string();
        let rec_id = v["rec_id"].as_str().expect("rec_id").to_string();
        assert!(rec_id.ends_with(&format!(".home-algo.{variant}")), "{rec_id}");
        if variant == "popular" {
            assert_eq!((v["strategy"].as_str(), v["variant"]["layout"].as_str()), (Some("popular"), Some("grid")));
        }
        served.push((u.clone(), variant, rec_id, ids(&v)));
    }
    let per = |name: &str| served.iter().filter(|x| x.1 == name).count() as u64;
    assert!(per("control") > 10 && per("popular") > 10, "both variants served");
    // The same user keeps the variant.
    let (_, again) = call(
        &s.app,
        "GET",
        &format!("/v1/users/{}/recommendations?slot=home&k=5&diversity=0.1", served[0].0),
        Some(READ),
        None,
    )
    .await;
    assert_eq!(again["variant"]["variant"].as_str(), Some(served[0].1.as_str()));
    // Every third user clicks the first item; every sixth buys it.
    let mut events = Vec::new();
    let (mut clicks, mut buys) = ([0u64; 2], [0u64; 2]);
    for (i, (u, variant, rec, items)) in served.iter().enumerate() {
        let v = usize::from(variant == "popular");
        events.push(
            json!({"user": u, "item": items[0], "kind": "impression", "rec_id": rec, "ts": tailor_core::Timestamp::now().0}),
        );
        if i % 3 == 0 {
            events.push(json!({"user": u, "item": items[0], "kind": "click", "rec_id": rec}));
            clicks[v] += 1;
        }
        if i % 6 == 0 {
            events.push(json!({"user": u, "item": items[0], "kind": "purchase", "rec_id": rec, "unit_price": 10.0}));
            buys[v] += 1;
        }
    }
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(events))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    // The exposure writer runs beside the requests: wait until it has caught up.
    let mut report = Value::Null;
    for _ in 0..200 {
        report = fresh_report(&s.app, "/v1/experiments/home-algo/report?bootstrap=200", Some(READ)).await;
        let exposures: u64 =
            report["variants"].as_array().expect("variants").iter().filter_map(|v| v["exposures"].as_u64()).sum();
        if exposures >= 61 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for (i, name) in ["control", "popular"].iter().enumerate() {
        let v = &report["variants"][i];
        assert_eq!(v["name"], *name);
        assert_eq!(v["users"].as_u64(), Some(per(name)), "users of {name}: {v}");
        assert_eq!(v["impressions"].as_u64(), Some(per(name)), "impressions of {name}: {v}");
        assert_eq!(v["clicks"].as_u64(), Some(clicks[i]), "clicks of {name}: {v}");
        assert_eq!(v["click_through_purchases"].as_u64(), Some(buys[i]), "purchases of {name}: {v}");
        assert_eq!(v["revenue"].as_f64(), Some(10.0 * buys[i] as f64), "revenue of {name}: {v}");
    }
    assert_eq!(report["primary"][0]["variant"], "popular");
    assert!(report["verdict"][0].as_str().is_some_and(|t| t.starts_with("popular vs control: ctr")), "{report}");
    // Lifecycle: pause, stop, and no way back.
    let (st, v) = call(&s.app, "POST", "/v1/experiments/home-algo/pause", Some(ADMIN), None).await;
    assert_eq!((st, v["status"].clone()), (StatusCode::OK, json!("paused")));
    let (_, v) = call(&s.app, "GET", "/v1/users/U00001/recommendations?slot=home", Some(READ), None).await;
    assert_eq!(v["variant"], Value::Null, "a paused experiment assigns nobody");
    assert_eq!(call(&s.app, "POST", "/v1/experiments/home-algo/stop", Some(ADMIN), None).await.0, StatusCode::OK);
    // The kept report is not answered across a status change.
    let (st, v) = call(&s.app, "GET", "/v1/experiments/home-algo/report?bootstrap=200", Some(READ), None).await;
    assert_eq!((st, v["status"].clone()), (StatusCode::OK, json!("stopped")), "{v}");
    let (st, v) = call(&s.app, "POST", "/v1/experiments/home-algo/start", Some(ADMIN), None).await;
    assert_eq!((st, error_code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");
    let (_, v) = call(&s.app, "GET", "/v1/experiments", Some(READ), None).await;
    let history: Vec<&str> = v["experiments"][0]["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["draft", "running", "paused", "stopped"]);
    assert_eq!(call(&s.app, "GET", "/v1/experiments/nope/report", Some(READ), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn layout_bandit_decides_and_learns_from_clicks() {
    let s = shop_with_home_bandit();
    let (st, v) = call(&s.app, "GET", "/v1/users/U00001/layout?slot=home", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["source"], "bandit");
    let decision = v["decision_id"].as_str().expect("decision").to_string();
    let arm = v["layout"].as_str().expect("layout").to_string();
    // The list shown in that layout carries the decision; its click rewards it, once.
    let (_, recs) = call(
        &s.app,
        "GET",
        &format!("/v1/users/U00001/recommendations?slot=home&decision={decision}"),
        Some(READ),
        None,
    )
    .await;
    let rec = recs["rec_id"].as_str().expect("rec_id");
    let click = json!({"user": "U00001", "item": ids(&recs)[0], "kind": "click", "rec_id": rec});
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(WRITE), Some(click.clone())).await.0, StatusCode::ACCEPTED);
    let mut second = click.clone();
    second["ts"] = json!(tailor_core::Timestamp::now().0 + 1);
    assert_eq!(call(&s.app, "POST", "/v1/events", Some(WRITE), Some(second)).await.0, StatusCode::ACCEPTED);
    let state = s.state.experiments.bandits.snapshot();
    let arms = &state["home"];
    let i = arms.arms.iter().position(|a| *a == arm).expect("arm");
    let stats = &arms.contexts[""];
    assert_eq!((stats[i].pulls, stats[i].reward), (1, 1.0), "{stats:?}");
    // A slot without a bandit gets the default; a missing slot is an error.
    let (_, v) = call(&s.app, "GET", "/v1/users/U00001/layout?slot=cart", Some(READ), None).await;
    assert_eq!((v["source"].clone(), v["layout"].clone()), (json!("default"), json!("carousel")));
    let (st, v) = call(&s.app, "GET", "/v1/users/U00001/layout", Some(READ), None).await;
    assert_eq!((st, v["error"]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("slot")));
    // The state reaches the disk (atomically), where the next start reads it.
    s.state.experiments.bandits.persist().expect("persist");
    let text = fs_err::read_to_string(s._dir.path().join("bandits.json")).expect("bandits.json");
    let saved: std::collections::HashMap<String, tailor_experiment::Bandit> =
        serde_json::from_str(&text).expect("json");
    assert_eq!(saved["home"].contexts[""][i].pulls, 1);
}

#[tokio::test]
async fn experiments_target_segments_and_split_traffic() {
    let s = shop();
    let spec = json!({
        "name": "bargains-only",
        "segments": ["Bargain hunters"],
        "variants": [{"name": "a"}, {"name": "b", "playbook": "none"}]
    });
    let (st, v) = call(&s.app, "POST", "/v1/experiments?start=true", Some(ADMIN), Some(spec)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let names = s.store.user_names().expect("names");
    let (mut inside, mut outside) = (0, 0);
    for (i, u) in names.iter().take(80).enumerate() {
        let (_, v) = call(&s.app, "GET", &format!("/v1/users/{u}/recommendations?k=3"), Some(READ), None).await;
        // The first 40 users are the stored "Bargain hunters" (see `shop_with`).
        if i < 40 {
            assert_eq!(v["variant"]["experiment"], "bargains-only", "{u}: {v}");
            inside += 1;
            if v["variant"]["variant"] == "b" {
                assert_eq!(v["playbooks"], json!([]), "variant b switches the playbooks off");
            }
        } else if v["variant"].is_null() {
            outside += 1;
        }
    }
    assert_eq!((inside, outside), (40, 40));
    // A half-traffic experiment leaves about half of everyone out.
    let half = json!({"name": "half", "traffic": 0.5, "variants": [{"name": "x"}, {"name": "y"}]});
    assert_eq!(
        call(&s.app, "POST", "/v1/experiments?start=true", Some(ADMIN), Some(half)).await.0,
        StatusCode::CREATED
    );
    let mut in_half = 0;
    for u in names.iter().skip(40).take(200) {
        let (_, v) = call(&s.app, "GET", &format!("/v1/users/{u}/recommendations?k=3&slot=x"), Some(READ), None).await;
        in_half += usize::from(v["variant"]["experiment"] == "half");
    }
    assert!((60..=140).contains(&in_half), "{in_half} of 200 in a 50% experiment");
}

/// Sums a numeric field over the points of a timeseries answer.
fn total(ts: &Value, field: &str) -> f64 {
    ts["points"].as_array().map_or(0.0, |p| p.iter().filter_map(|x| x[field].as_f64()).sum())
}

#[tokio::test]
async fn dashboard_api_counts_what_was_served_and_done() {
    let s = shop_with_home_bandit();
    // Three lists computed and one from the cache.
    let mut lists = Vec::new();
    for u in ["U00001", "U00002", "U00003", "U00001"] {
        let (st, v) =
            call(&s.app, "GET", &format!("/v1/users/{u}/recommendations?k=4&slot=home"), Some(READ), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        lists.push(v);
    }
    assert_eq!(lists[3]["cached"], true);
    let (_, layout) = call(&s.app, "GET", "/v1/users/U00002/layout?slot=home", Some(READ), None).await;
    let arm = layout["layout"].as_str().expect("arm").to_string();
    // The first list shown (4 impressions), one click, and an order of two lines of which
    // one came from the list.
    let rec = lists[0]["rec_id"].as_str().expect("rec_id");
    let items = ids(&lists[0]);
    let mut events: Vec<Value> =
        items.iter().map(|i| json!({"user": "U00001", "item": i, "kind": "impression", "rec_id": rec})).collect();
    events.push(json!({"user": "U00001", "item": items[0], "kind": "click", "rec_id": rec}));
    events.push(json!({"user": "U00001", "item": items[0], "kind": "purchase", "rec_id": rec, "quantity": 2, "unit_price": 10.0, "order_id": "o-1"}));
    events.push(json!({"user": "U00001", "item": items[1], "kind": "purchase", "unit_price": 5.0, "order_id": "o-1"}));
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(events))).await;
    assert_eq!((st, v["stored"].clone()), (StatusCode::ACCEPTED, json!(7)), "{v}");

    let since = tailor_core::Timestamp::now().0 - 3_600_000;
    let (st, ts) =
        call(&s.app, "GET", &format!("/v1/admin/timeseries?bucket=hour&from={since}"), Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{ts}");
    assert_eq!(ts["bucket"], "hour");
    assert_eq!(total(&ts, "lists"), 4.0);
    assert_eq!(total(&ts, "cache_hits"), 1.0);
    assert_eq!(total(&ts, "rec_impressions"), 4.0);
    assert_eq!(total(&ts, "rec_clicks"), 1.0);
    assert_eq!(total(&ts, "rec_purchases"), 1.0);
    assert_eq!(total(&ts, "rec_revenue"), 20.0);
    assert_eq!(total(&ts, "revenue"), 25.0);
    assert_eq!(total(&ts, "orders"), 1.0);
    let busy: Vec<&Value> = ts["points"].as_array().expect("points").iter().filter(|p| p["lists"] != 0).collect();
    assert!(busy.iter().all(|p| p["latency_ms"]["p50"].as_f64().is_some_and(|ms| ms > 0.0)), "{ts}");
    let decided: f64 = ts["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["decisions"]["home"][arm.as_str()].as_f64())
        .sum();
    assert_eq!(decided, 1.0);
    // Daily buckets over the whole history include the stored demo events.
    let (_, days) = call(&s.app, "GET", "/v1/admin/timeseries", Some(ADMIN), None).await;
    assert_eq!(days["bucket"], "day");
    let stored = s.store.counts().expect("counts").events as f64;
    assert_eq!(total(&days, "events"), stored);

    // The feed: every list served and the events, in order; nothing after the last seq.
    let (_, feed) = call(&s.app, "GET", "/v1/admin/feed", Some(ADMIN), None).await;
    let entries = feed["entries"].as_array().expect("entries");
    assert_eq!(entries.iter().filter(|e| e["kind"] == "served").count(), 4);
    assert_eq!(entries.iter().filter(|e| e["kind"] == "event").count(), 7);
    assert_eq!(entries[0]["subject"], "U00001");
    assert!(entries.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    let (_, after) = call(&s.app, "GET", &format!("/v1/admin/feed?after={}", feed["last"]), Some(ADMIN), None).await;
    assert_eq!(after["entries"], json!([]));

    // Catalog health: every served item counted; impressions include the stored history.
    let (_, health) = call(&s.app, "GET", "/v1/admin/catalog-health", Some(ADMIN), None).await;
    let served_items: usize = lists.iter().map(|l| ids(l).len()).sum();
    assert_eq!(health["served"]["exposures"], served_items);
    let coverage = health["served"]["coverage"].as_f64().expect("coverage");
    assert!(coverage > 0.0 && coverage <= 16.0 / 200.0, "{health}");
    let mut stored_impressions = 0u64;
    s.store
        .scan_events(tailor_store::EventFilter::default(), &mut |_, e| {
            stored_impressions += u64::from(e.kind == tailor_core::EventKind::Impression);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(health["shown"]["exposures"], stored_impressions);
    let gini = health["shown"]["gini"].as_f64().expect("gini");
    assert!((0.0..1.0).contains(&gini));

    // Bandits: the one decision.
    let (_, b) = call(&s.app, "GET", "/v1/admin/bandits", Some(ADMIN), None).await;
    let pulls: u64 = b["bandits"][0]["arms"].as_array().expect("arms").iter().filter_map(|a| a["pulls"].as_u64()).sum();
    assert_eq!((b["bandits"][0]["slot"].clone(), pulls), (json!("home"), 1));

    // Segments: a real-time move shows in the migrations and the sizes over time.
    let moved = s
        .store
        .set_user_segments("rules", "U00005", vec!["Quiet".into()], tailor_core::Timestamp::now())
        .expect("move");
    assert!(moved);
    let (_, seg) = call(&s.app, "GET", "/v1/admin/segments", Some(ADMIN), None).await;
    let rules = &seg["segmentations"][0];
    assert_eq!(rules["segmentation"], "rules");
    assert_eq!(rules["realtime_changes"], 1);
    let migrations = rules["migrations"].as_array().expect("migrations");
    assert!(migrations.iter().any(|m| m["to"] == "Quiet" && m["users"] == 1), "{migrations:?}");
    let sizes = rules["sizes_over_time"].as_array().expect("sizes");
    assert_eq!(sizes.first().map(|p| p["sizes"]["Quiet"].clone()), Some(json!(1)));
    assert_eq!(sizes.last().map(|p| p["sizes"]["Quiet"].clone()), Some(json!(2)));

    // Errors and scopes.
    for (uri, field) in [
        ("/v1/admin/timeseries?bucket=week", "bucket"),
        ("/v1/admin/timeseries?from=yesterday", "from"),
        ("/v1/admin/timeseries?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("/v1/admin/timeseries?window=3", "window"),
        ("/v1/admin/feed?after=-1", "after"),
    ] {
        let (st, v) = call(&s.app, "GET", uri, Some(ADMIN), None).await;
        assert_eq!((st, v["error"]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(field)), "{uri}: {v}");
    }
    for uri in [
        "/v1/admin/timeseries",
        "/v1/admin/catalog-health",
        "/v1/admin/feed",
        "/v1/admin/bandits",
        "/v1/admin/segments",
    ] {
        assert_eq!(call(&s.app, "GET", uri, Some(READ), None).await.0, StatusCode::FORBIDDEN, "{uri}");
    }
}

#[tokio::test]
async fn retraining_is_not_cut_by_the_request_timeout() {
    // A 1 ms timeout: any training outlasts it, and the answer still says what happened.
    let s = shop_with(ServeConfig { timeout_ms: 1, ..config() });
    let (st, v) = call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["candidate"]["version"], 2, "{v}");
    assert!(v["candidate"]["train_seconds"].as_f64().is_some_and(|t| t > 0.001), "{v}");
    let (st, v) = call(&s.app, "POST", "/v1/admin/reload", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// An experiment whose variants name models (ALS against EASE): the next training keeps
/// both, each variant's lists come from its model, and the report counts them per variant.
#[tokio::test]
async fn model_variants_are_trained_served_and_reported() {
    let s = shop();
    let bad = json!({"name": "m", "variants": [{"name": "a"}, {"name": "b", "model": "biases"}]});
    let (st, v) = call(&s.app, "POST", "/v1/experiments", Some(ADMIN), Some(bad)).await;
    assert_eq!(
        (st, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("variants[1].model")),
        "{v}"
    );
    let spec = json!({
        "name": "als-vs-ease",
        "slots": ["home"],
        "variants": [{"name": "als", "model": "als"}, {"name": "ease", "model": "ease"}],
        "primary_metric": "ctr"
    });
    let (st, v) = call(&s.app, "POST", "/v1/experiments?start=true", Some(ADMIN), Some(spec)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, v) = call(&s.app, "POST", "/v1/admin/retrain", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let live = s.state.snapshots.live().expect("live");
    let served = live.info.model.clone();
    let mut kept: Vec<&str> = live.others.iter().map(|o| o.kind.as_str()).collect();
    kept.sort_unstable();
    let mut want: Vec<&str> = ["als", "ease"].into_iter().filter(|m| *m != served).collect();
    want.sort_unstable();
    assert_eq!(kept, want, "the version keeps the variants' models beside {served}");
    let names = s.store.user_names().expect("names");
    let mut per = std::collections::HashMap::<String, u64>::new();
    let mut events = Vec::new();
    for u in names.iter().take(60) {
        let (st, v) =
            call(&s.app, "GET", &format!("/v1/users/{u}/recommendations?slot=home&k=5"), Some(READ), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let variant = v["variant"]["variant"].as_str().expect("variant").to_string();
        if v["strategy"] == "personalized" {
            assert_eq!(v["model"].as_str(), Some(variant.as_str()), "{v}");
        }
        let first = ids(&v).into_iter().next().expect("an item");
        events.push(json!({"user": u, "item": first, "kind": "click", "rec_id": v["rec_id"]}));
        *per.entry(variant).or_default() += 1;
    }
    assert!(per.get("als").is_some_and(|n| *n > 10) && per.get("ease").is_some_and(|n| *n > 10), "{per:?}");
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(events))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let mut report = Value::Null;
    for _ in 0..200 {
        report = fresh_report(&s.app, "/v1/experiments/als-vs-ease/report?bootstrap=0", Some(READ)).await;
        let n: u64 =
            report["variants"].as_array().expect("variants").iter().filter_map(|v| v["exposures"].as_u64()).sum();
        if n >= 60 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    for (i, name) in ["als", "ease"].iter().enumerate() {
        let v = &report["variants"][i];
        assert_eq!((v["name"].as_str(), v["users"].as_u64()), (Some(*name), per.get(*name).copied()), "{v}");
        assert_eq!(v["clicks"].as_u64(), per.get(*name).copied(), "{v}");
    }
    // A restart serves the kept models too.
    s.state.reload_blocking().expect("reload");
    let again = s.state.snapshots.live().expect("live");
    assert_eq!(again.others.len(), want.len());
}

/// An item listed after training is recommendable at once (issue #14): it is among the
/// `similar` items of its kin and enters the list of a user whose history is like it,
/// without a retraining.
#[tokio::test]
async fn new_items_are_similar_and_recommended_before_any_retraining() {
    let s = shop();
    let (_, kin) = call(&s.app, "GET", "/v1/items/SKU-00010", Some(READ), None).await;
    let mut record = kin["item"].clone();
    if record.is_null() {
        record = kin.clone();
    }
    record["id"] = json!("SKU-NEW-1");
    record["title"] = json!(format!("{} II", record["title"].as_str().unwrap_or("item")));
    record["created_at"] = json!(tailor_core::Timestamp::now().0);
    let trained = s.state.snapshots.live().expect("live").version;
    let (st, v) = call(&s.app, "PUT", "/v1/items", Some(WRITE), Some(json!([record]))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = call(&s.app, "GET", "/v1/items/SKU-00010/similar?k=10", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(ids(&v).contains(&"SKU-NEW-1".to_string()), "{v}");
    let (_, v) = call(&s.app, "GET", "/v1/items/SKU-NEW-1/similar?k=5", Some(READ), None).await;
    assert_eq!(ids(&v).first().map(String::as_str), Some("SKU-00010"), "a new item's nearest kin: {v}");
    // A shopper who looked at its kin three times gets it in their list.
    let views: Vec<Value> = (0..3).map(|_| json!({"user": "fan-1", "item": "SKU-00010", "kind": "view"})).collect();
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(views))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (_, v) = call(&s.app, "GET", "/v1/users/fan-1/recommendations?k=10", Some(READ), None).await;
    assert_eq!(v["strategy"], "personalized", "{v}");
    assert!(ids(&v).contains(&"SKU-NEW-1".to_string()), "{v}");
    assert_eq!(s.state.snapshots.live().expect("live").version, trained, "no retraining happened");
}

/// Cohorts and lifetime value as the dashboard reads them; a segmentation run carries its
/// lifetime-value models, and profiles show a user's value once it is loaded.
#[tokio::test]
async fn cohorts_and_lifetime_value_over_the_admin_api() {
    let s = shop();
    let (st, c) = call(&s.app, "GET", "/v1/admin/cohorts", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    let want = tailor_server::lifetime::cohorts(s.store.as_ref()).expect("cohorts");
    assert_eq!(c, serde_json::to_value(&want).expect("json"));
    let rows = c["rows"].as_array().expect("rows");
    let sizes: u64 = rows.iter().map(|r| r["size"].as_u64().expect("size")).sum();
    assert!(sizes > 50 && sizes == c["customers"].as_u64().expect("customers"), "{c}");
    assert!(rows.iter().all(|r| r["retention"][0] == 1.0), "{c}");

    let (st, v) = call(&s.app, "GET", "/v1/admin/clv?top=3", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["customers"].as_u64(), Some(sizes));
    assert_eq!(v["top"].as_array().map(Vec::len), Some(3));
    assert!(v["bg_nbd"]["r"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    let bargain = v["segments"].as_array().expect("segments").iter().find(|s| s["segment"] == "Bargain hunters");
    assert!(bargain.is_some_and(|b| b["customers"].as_u64().is_some_and(|n| n > 0 && n <= 41)), "{v}");
    let (_, six) = call(&s.app, "GET", "/v1/admin/clv?months=6&discount=0.01", Some(ADMIN), None).await;
    assert!(six["total_clv"].as_f64() > v["total_clv"].as_f64(), "{six}");
    for (uri, field) in [
        ("/v1/admin/clv?months=0", "months"),
        ("/v1/admin/clv?discount=2", "discount"),
        ("/v1/admin/clv?through=someday", "through"),
        ("/v1/admin/clv?horizon=3", "horizon"),
        ("/v1/admin/cohorts?x=1", "x"),
    ] {
        let (st, v) = call(&s.app, "GET", uri, Some(ADMIN), None).await;
        assert_eq!((st, v["error"]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(field)), "{uri}: {v}");
    }
    let (st, v) = call(&s.app, "GET", "/v1/admin/clv?discount=1", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    for uri in ["/v1/admin/cohorts", "/v1/admin/clv"] {
        assert_eq!(call(&s.app, "GET", uri, Some(READ), None).await.0, StatusCode::FORBIDDEN, "{uri}");
    }

    // An RFM run stores the population's models; the profile scores the user with them.
    let (_, before) = call(&s.app, "GET", "/v1/users/U00001/profile", Some(READ), None).await;
    assert_eq!(
        (before["features"]["clv_90d"].clone(), before["features"]["p_alive"].clone()),
        (json!(0.0), json!(1.0))
    );
    let o = tailor_server::segmentation::RunOptions {
        method: tailor_server::segmentation::SegmentMethod::Rfm,
        ..Default::default()
    };
    let run = tailor_server::segmentation::run(s.store.as_ref(), &o).expect("rfm");
    assert!(run.record.clv.is_some());
    s.state.memberships.load(s.store.as_ref()).expect("load");
    let buyer = six["top"][0]["user"].as_str().expect("a top customer");
    let (_, after) = call(&s.app, "GET", &format!("/v1/users/{buyer}/profile"), Some(READ), None).await;
    assert!(after["features"]["clv_90d"].as_f64().is_some_and(|x| x > 0.0), "{after}");
}

/// `calibration=λ` (or the slot's `serve.calibration`) makes a list's categories follow the
/// mix of the user's history: a shopper who viewed two categories gets a list no further
/// from that mix than the plain one, and mostly of those two.
#[tokio::test]
async fn calibrated_lists_follow_the_historys_categories() {
    let mut cfg = config();
    cfg.calibration = std::collections::BTreeMap::from([("home".to_string(), 0.95)]);
    let s = shop_with(cfg);
    let mut by_cat: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    s.store
        .for_each_item(&mut |_, it| {
            if !it.value.category.is_empty() {
                by_cat.entry(it.value.category.join(" > ")).or_default().push(it.value.id.0.clone());
            }
        })
        .expect("items");
    let mut cats: Vec<(&String, &Vec<String>)> = by_cat.iter().collect();
    cats.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let (a, b) = (cats[0].0.clone(), cats[1].0.clone());
    let viewed: Vec<&String> = cats[0].1.iter().take(3).chain(cats[1].1.iter().take(3)).collect();
    let events: Vec<Value> = viewed.iter().map(|i| json!({"user": "calibrated", "item": i, "kind": "view"})).collect();
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(events))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let list = |v: &Value| -> Vec<String> {
        v["items"].as_array().expect("items").iter().map(|i| i["category"].as_str().unwrap_or("").to_string()).collect()
    };
    let miscalibration = |l: &[String]| {
        // History: half a, half b; KL with Steck's α = 0.01.
        let q = |c: &str| l.iter().filter(|x| *x == c).count() as f64 / l.len() as f64;
        [&a, &b].iter().map(|c| 0.5 * (0.5 / (0.99 * q(c) + 0.01 * 0.5)).ln()).sum::<f64>()
    };
    let (_, plain) = call(&s.app, "GET", "/v1/users/calibrated/recommendations?k=10", Some(READ), None).await;
    let (st, calibrated) =
        call(&s.app, "GET", "/v1/users/calibrated/recommendations?k=10&calibration=0.95", Some(READ), None).await;
    assert_eq!(st, StatusCode::OK, "{calibrated}");
    let (p, c) = (list(&plain), list(&calibrated));
    assert_eq!(c.len(), 10);
    assert!(miscalibration(&c) <= miscalibration(&p) + 1e-12, "plain {p:?}, calibrated {c:?}");
    // The candidate pool (5 × k by score) bounds how many of the mix it can find.
    let in_mix = |l: &[String]| l.iter().filter(|x| **x == a || **x == b).count();
    assert!(in_mix(&c) >= in_mix(&p).max(6) && c.contains(&a) && c.contains(&b), "plain {p:?}, calibrated {c:?}");
    // The home slot's default is the same calibration; an explicit 0 turns it off.
    let (_, home) = call(&s.app, "GET", "/v1/users/calibrated/recommendations?k=10&slot=home", Some(READ), None).await;
    assert_eq!(list(&home), c);
    let (_, off) =
        call(&s.app, "GET", "/v1/users/calibrated/recommendations?k=10&slot=home&calibration=0", Some(READ), None)
            .await;
    assert_eq!(list(&off), p);
    let (st, v) = call(&s.app, "GET", "/v1/users/calibrated/recommendations?calibration=1", Some(READ), None).await;
    assert_eq!((st, v["error"]["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("calibration")), "{v}");
}

/// The served log's fairness: lists are the impressions sharing a rec_id; groups by
/// segment, gender or age band.
#[tokio::test]
async fn fairness_of_the_served_lists() {
    let s = shop();
    let mut rec_ids = std::collections::HashSet::new();
    s.store
        .scan_events(tailor_store::EventFilter::default(), &mut |_, e| {
            if e.kind == tailor_core::EventKind::Impression
                && e.item.is_some()
                && let Some(r) = &e.rec_id
            {
                rec_ids.insert(r.clone());
            }
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert!(!rec_ids.is_empty(), "the demo history has recommendation traffic");
    let (st, v) = call(&s.app, "GET", "/v1/admin/fairness", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["lists"].as_u64(), Some(rec_ids.len() as u64));
    assert_eq!(v["grouped_by"], "segment: rules");
    let groups = v["report"]["groups"].as_array().expect("groups");
    assert!(groups.iter().all(|g| g["group"] == "Bargain hunters" || g["group"] == "Quiet"), "{v}");
    let bands: Vec<&str> =
        v["report"]["popularity_bands"].as_array().expect("bands").iter().filter_map(|b| b["name"].as_str()).collect();
    assert_eq!(bands, ["head", "middle", "tail"]);
    let share: f64 = v["report"]["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| p["exposure_share"].as_f64().expect("share"))
        .sum();
    assert!((share - 1.0).abs() < 1e-9, "brand exposure shares add up to 1: {share}");
    let (st, g) = call(&s.app, "GET", "/v1/admin/fairness?by=gender", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{g}");
    assert!(g["report"]["groups"].as_array().is_some_and(|a| a.len() >= 2), "{g}");
    assert!(g["report"]["user_mad_ranking"].as_f64().is_some(), "{g}");
    for (uri, status) in [
        ("/v1/admin/fairness?by=shoe_size", StatusCode::UNPROCESSABLE_ENTITY),
        ("/v1/admin/fairness?segmentation=nope", StatusCode::NOT_FOUND),
        ("/v1/admin/fairness?k=3", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        assert_eq!(call(&s.app, "GET", uri, Some(ADMIN), None).await.0, status, "{uri}");
    }
    assert_eq!(call(&s.app, "GET", "/v1/admin/fairness", Some(READ), None).await.0, StatusCode::FORBIDDEN);
}

/// Drift from a segmentation's snapshot: none right after the run; buyers appearing out of
/// nowhere shift the purchase features.
#[tokio::test]
async fn drift_from_the_runs_snapshot() {
    let s = shop();
    let o = tailor_server::segmentation::RunOptions {
        method: tailor_server::segmentation::SegmentMethod::Rfm,
        ..Default::default()
    };
    tailor_server::segmentation::run(s.store.as_ref(), &o).expect("rfm");
    let (st, before) = call(&s.app, "GET", "/v1/admin/drift?segmentation=rfm", Some(ADMIN), None).await;
    assert_eq!(st, StatusCode::OK, "{before}");
    assert!(before["max_psi"].as_f64().is_some_and(|p| p < 0.05), "{before}");
    // 150 new customers, each buying on three days.
    let mut events = Vec::new();
    for u in 0..150 {
        for d in 0..3 {
            events
                .push(json!({"user": format!("drifter-{u}"), "item": "P0001", "kind": "purchase", "unit_price": 500.0,
                "ts": format!("2026-11-{:02}T10:00:00Z", 20 + d)}));
        }
    }
    let (st, v) = call(&s.app, "POST", "/v1/events", Some(WRITE), Some(json!(events))).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (_, after) = call(&s.app, "GET", "/v1/admin/drift?segmentation=rfm", Some(ADMIN), None).await;
    let psi = |v: &Value, f: &str| {
        v["features"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["feature"] == f))
            .and_then(|x| x["psi"].as_f64())
            .expect(f)
    };
    assert!(psi(&after, "monetary") > psi(&before, "monetary") + 0.05, "{after}");
    assert!(after["users_now"].as_u64() > before["users_now"].as_u64());
    assert_eq!(
        call(&s.app, "GET", "/v1/admin/drift?segmentation=nope", Some(ADMIN), None).await.0,
        StatusCode::NOT_FOUND
    );
}
