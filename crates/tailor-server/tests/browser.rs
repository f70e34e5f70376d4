//! The widget in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) against `tailor serve`'s router on 127.0.0.1, with the host
//! page served from another origin (so CORS is exercised too). Slow suite: `cargo test --
//! --ignored` (CI installs `chromium` and `chromium-driver`). Screenshots go to
//! `target/browser/`.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};
use tailor_core::EventKind;
use tailor_server::AppState;
use tailor_server::config::{ApiKey, Scope, ServeConfig};
use tailor_store::{EventFilter, RedbStore, Store, WriteBatch};

#[path = "support/browser.rs"]
mod kit;
use kit::{browser, free_port, js, screenshot_dir, until};

const KEY: &str = "site-key-0123456789";
const ADMIN: &str = "admin-key-0123456789";

struct Api {
    _dir: tempfile::TempDir,
    store: Arc<RedbStore>,
    addr: SocketAddr,
}

/// The demo shop served on a free loopback port; `origin` may call it from a browser.
async fn api(origin: &str) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RedbStore::open(dir.path()).expect("store"));
    let demo = tailor_ingest::demo::generate(&tailor_ingest::demo::DemoParams {
        users: 200,
        items: 150,
        days: 14,
        anonymous_sessions: 20,
        ..Default::default()
    });
    store
        .write(WriteBatch { items: demo.items, users: demo.users, events: demo.events, ..WriteBatch::default() })
        .expect("write");
    let config = ServeConfig {
        api_keys: vec![
            ApiKey { name: "site".into(), key: KEY.into(), scopes: vec![Scope::Read, Scope::Write] },
            ApiKey { name: "ops".into(), key: ADMIN.into(), scopes: vec![Scope::Admin] },
        ],
        cors_origins: vec![origin.to_string()],
        als_params: "factors=16,iterations=5".parse().expect("ALS parameters"),
        // A layout bandit on a slot no widget test uses, for the dashboard's bandit view.
        bandits: vec![tailor_server::experiments::BanditConfig {
            slot: "sidebar".into(),
            arms: vec!["carousel".into(), "grid".into(), "list".into()],
            policy: "thompson".into(),
            per_segment: false,
        }],
        ..ServeConfig::default()
    };
    // A stored segmentation, for the storefront's "view the shop as" switcher.
    let names = store.user_names().expect("names");
    let run = tailor_store::SegmentationRun {
        id: 0,
        name: "rules".into(),
        created_at: tailor_core::Timestamp::now(),
        segments: vec![
            tailor_store::SegmentDef { name: "Loyal".into(), description: None, size: 20 },
            tailor_store::SegmentDef { name: "Others".into(), description: None, size: 20 },
        ],
        record: json!({}),
    };
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for (i, u) in names.iter().take(40).enumerate() {
        members.push((u.clone(), vec![if i < 20 { "Loyal" } else { "Others" }.to_string()]));
    }
    store.save_segmentation(run, &mut members.into_iter()).expect("segments");
    let dyn_store: Arc<dyn Store> = store.clone();
    let state =
        Arc::new(AppState::open(config, dyn_store, Default::default(), dir.path().join("models")).expect("state"));
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.start_blocking()).await.expect("join").expect("train");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = tailor_server::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Api { _dir: dir, store, addr }
}

/// Serves fixed HTML pages (path → body) from another origin.
async fn host(pages: Vec<(&'static str, String)>) -> SocketAddr {
    let mut router = axum::Router::new();
    for (path, body) in pages {
        router = router.route(path, axum::routing::get(move || async move { axum::response::Html(body) }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Events of `kind` stored with `rec_id`, as (user or session, item).
fn stored(store: &RedbStore, kind: EventKind, rec_id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    store
        .scan_events(EventFilter::default(), &mut |_, e| {
            if e.kind == kind && e.rec_id.as_deref() == Some(rec_id) {
                let who = e.user.as_ref().map(|u| u.as_str().to_string()).or(e.session.clone()).unwrap_or_default();
                out.push((who, e.item.as_ref().map(|i| i.as_str().to_string()).unwrap_or_default()));
            }
            ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

/// A plain HTTP/1.1 request with the admin key (blocking; `Connection: close`).
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let payload = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(payload).unwrap_or(Value::Null))
}

const ERRORS: &str =
    "<script>window.__errors=[];addEventListener('error',function(e){__errors.push(String(e.message))});</script>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow suite: needs chromium and chromium-driver"]
async fn widget_loads_when_visible_and_reports_impressions_and_clicks() {
    let host_port = free_port();
    let origin = format!("http://127.0.0.1:{host_port}");
    let api = api(&origin).await;
    let page = format!(
        r##"<!doctype html><html><head><meta charset="utf-8">{ERRORS}</head><body>
<h1 id="host">The host page</h1><p id="text">Content the widget must not disturb.</p>
<div id="similar" data-tailor-slot="product" data-tailor-item="SKU-00010" data-tailor-k="4" data-tailor-layout="grid"></div>
<div style="height:2500px"></div>
<div id="slot" data-tailor-slot="home" data-tailor-k="6" data-tailor-title="Picked for you"></div>
<div style="height:1500px"></div>
<script async src="http://{api}/widget.js" data-api-key="{KEY}" data-user="U00001" data-href="#product-{{id}}"></script>
</body></html>"##,
        api = api.addr
    );
    // The host origin must be the one allowed: bind the page server on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", host_port)).await.expect("bind host");
    let router = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let b = browser().await;
    let c = b.client();
    c.goto(&format!("{origin}/")).await.expect("open page");
    until(c, "return !!window.tailor", 10).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let state = js(c, "return document.getElementById('slot').dataset.tailorState || 'idle'").await;
    assert_eq!(state, json!("idle"), "the slot below the fold must not load before it is scrolled to");
    // The product slot at the top loaded at once: similar items, as a grid, with a rec_id.
    until(c, "return document.getElementById('similar').dataset.tailorState === 'loaded'", 10).await;
    let similar = js(c, "var s=document.getElementById('similar'); return [s.dataset.tailorLayout, s.querySelectorAll('.tailor-card').length, !!s.dataset.tailorRecId]").await;
    assert_eq!(similar, json!(["grid", 4, true]));
    let shot = c.screenshot().await.expect("screenshot");
    fs_err::write(screenshot_dir().join("widget-product-grid.png"), shot).expect("save screenshot");

    js(c, "document.getElementById('slot').scrollIntoView(); return null").await;
    let state = until(
        c,
        "var s=document.getElementById('slot').dataset.tailorState; return s==='loaded'||s==='failed' ? s : null",
        10,
    )
    .await;
    assert_eq!(state, json!("loaded"));
    let cards = js(c, "return document.querySelectorAll('#slot .tailor-card').length").await;
    assert_eq!(cards, json!(6));
    let rec_id = js(c, "return document.getElementById('slot').dataset.tailorRecId").await;
    let rec_id = rec_id.as_str().expect("rec_id").to_string();
    assert!(rec_id.starts_with('r'), "{rec_id}");
    let paint = until(c, "return document.getElementById('slot').dataset.tailorPaintMs || null", 5).await;
    let paint_ms: f64 = paint.as_str().and_then(|s| s.parse().ok()).expect("paint ms");
    println!("visible → painted: {paint_ms:.1} ms");
    assert!(paint_ms <= 150.0, "{paint_ms} ms from visible to painted");
    let labels = js(c, "return [document.querySelector('#slot section').getAttribute('aria-label'), document.querySelector('#slot .tailor-next').getAttribute('aria-label')]").await;
    assert_eq!(labels, json!(["Picked for you", "Next items"]));
    let reason = js(c, "return document.querySelector('#slot .tailor-reason').textContent").await;
    assert!(reason.as_str().is_some_and(|r| !r.is_empty()), "every item shows its reason");

    // Impressions of the visible items arrive (batched within a second) with the rec_id.
    let start = Instant::now();
    let impressions = loop {
        let got = stored(&api.store, EventKind::Impression, &rec_id);
        if !got.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!impressions.is_empty(), "no impression stored for {rec_id}");
    assert!(impressions.iter().all(|(who, _)| who == "U00001"));
    let first = js(c, "return document.querySelector('#slot .tailor-card').dataset.tailorItem").await;
    let first = first.as_str().expect("item").to_string();
    let shot = c.screenshot().await.expect("screenshot");
    fs_err::write(screenshot_dir().join("widget.png"), shot).expect("save screenshot");

    // A click is sent at once (sendBeacon), with the list's rec_id and the item.
    c.find(Locator::Css("#slot .tailor-card a")).await.expect("card").click().await.expect("click");
    let start = Instant::now();
    let clicks = loop {
        let got = stored(&api.store, EventKind::Click, &rec_id);
        if !got.is_empty() || start.elapsed() > Duration::from_secs(10) {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(clicks, vec![("U00001".to_string(), first.clone())]);
    let url = c.current_url().await.expect("url");
    assert!(url.as_str().ends_with(&format!("#product-{first}")), "{url}");
    assert_eq!(
        js(c, "return document.getElementById('text').textContent").await,
        json!("Content the widget must not disturb.")
    );
    assert_eq!(js(c, "return window.__errors").await, json!([]));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow suite: needs chromium and chromium-driver"]
async fn api_down_leaves_the_host_page_intact() {
    let dead = free_port();
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8">{ERRORS}</head><body>
<h1 id="host">Still here</h1>
<div id="slot" data-tailor-slot="home"><template data-tailor-fallback><p id="fallback">Our bestsellers</p></template></div>
<div id="plain" data-tailor-slot="cart"></div>
<p id="after">After the slots</p>
<script>document.getElementById('after').dataset.ran = 'yes';</script>
</body></html>"#
    );
    // The widget is served as usual, but its API endpoint is a closed port.
    let widget = tailor_server::web::WIDGET_JS.to_string();
    let host = host(vec![("/", page)]).await;
    let js_host = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new().route(
            "/widget.js",
            axum::routing::get(move || async move { ([("content-type", "application/javascript")], widget) }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    };
    let b = browser().await;
    let c = b.client();
    c.goto(&format!("http://{host}/")).await.expect("open page");
    // Load the widget from its own host (as a shop would from tailor's address).
    js(c, &format!("var s=document.createElement('script');s.src='http://{js_host}/widget.js';s.dataset.endpoint='http://127.0.0.1:{dead}';s.dataset.timeout='800';document.body.appendChild(s);return null")).await;
    let state = until(
        c,
        "var s=document.getElementById('slot').dataset.tailorState; return s==='failed'||s==='loaded' ? s : null",
        10,
    )
    .await;
    assert_eq!(state, json!("failed"));
    assert_eq!(
        js(c, "return document.getElementById('fallback') && document.getElementById('fallback').textContent").await,
        json!("Our bestsellers")
    );
    until(c, "return document.getElementById('plain').dataset.tailorState === 'failed'", 10).await;
    assert_eq!(
        js(c, "return document.getElementById('plain').children.length").await,
        json!(0),
        "no fallback: the slot stays empty"
    );
    assert_eq!(js(c, "return document.getElementById('host').textContent").await, json!("Still here"));
    assert_eq!(js(c, "return document.getElementById('after').dataset.ran").await, json!("yes"));
    // tailor.track and flush with the API down throw nothing into the page.
    js(c, "tailor.track('view', 'SKU-00001'); tailor.flush(); return null").await;
    assert_eq!(js(c, "return window.__errors").await, json!([]));
    let shot = c.screenshot().await.expect("screenshot");
    fs_err::write(screenshot_dir().join("widget-api-down.png"), shot).expect("save screenshot");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow suite: needs chromium and chromium-driver"]
async fn storefront_personalises_by_shopper_and_checkout_stores_purchases() {
    let api = api("http://127.0.0.1:1").await;
    let b = browser().await;
    let c = b.client();
    let shots = screenshot_dir();
    c.goto(&format!("http://{}/demo?key={KEY}", api.addr)).await.expect("open the shop");
    js(c, "localStorage.clear(); return null").await;
    c.goto(&format!("http://{}/demo?key={KEY}", api.addr)).await.expect("reload");
    // A new visitor: the popular grid.
    let persona = until(c, "var p=document.getElementById('persona'); return p && p.dataset.persona", 10).await;
    assert_eq!(persona, json!("new"));
    until(
        c,
        "var s=document.querySelector('[data-tailor-slot=home]'); return s && s.dataset.tailorState === 'loaded'",
        10,
    )
    .await;
    fs_err::write(shots.join("demo-home-new-visitor.png"), c.screenshot().await.expect("shot")).expect("save");

    // View the shop as a member of a segment: the home page changes to a personal one.
    let user =
        until(c, "var o=document.querySelectorAll('#as option'); return o.length > 1 ? o[1].value : null", 10).await;
    let user = user.as_str().expect("user").to_string();
    c.find(Locator::Css("#as")).await.expect("switcher").select_by_value(&user).await.expect("select");
    let text = until(
        c,
        &format!("var p=document.getElementById('persona'); return p && p.textContent.indexOf('{user}') >= 0 ? p.textContent : null"),
        10,
    )
    .await;
    assert!(text.as_str().is_some_and(|t| t.contains("segments: Loyal")), "{text}");
    // The page for a known shopper depends on their orders (new customer, returning, loyal).
    let persona = js(c, "return document.getElementById('persona').dataset.persona").await;
    let orders = api.store.user(&user).expect("user").map(|_| ()).is_some();
    assert!(orders && ["new", "returning", "loyal"].contains(&persona.as_str().unwrap_or("")), "{persona}");
    until(
        c,
        "var s=document.querySelector('[data-tailor-slot=home]'); return s && s.dataset.tailorState === 'loaded'",
        10,
    )
    .await;
    fs_err::write(shots.join("demo-home-as-user.png"), c.screenshot().await.expect("shot")).expect("save");

    // A product from the personal list: its page has the similar-items widget.
    c.find(Locator::Css("[data-tailor-slot=home] .tailor-card a")).await.expect("card").click().await.expect("click");
    let product = until(c, "var p=document.getElementById('product'); return p && p.dataset.id", 10).await;
    let product = product.as_str().expect("product").to_string();
    until(c, "var s=document.querySelector('[data-tailor-slot=product]'); return s && (s.dataset.tailorState === 'loaded' || s.dataset.tailorState === 'failed') && s.dataset.tailorState", 10).await;
    fs_err::write(shots.join("demo-product.png"), c.screenshot().await.expect("shot")).expect("save");
    c.find(Locator::Id("add")).await.expect("add").click().await.expect("add to cart");
    c.goto(&format!("http://{}/demo?key={KEY}#/cart", api.addr)).await.expect("cart");
    until(c, "return !!document.getElementById('checkout')", 10).await;
    fs_err::write(shots.join("demo-cart.png"), c.screenshot().await.expect("shot")).expect("save");
    c.find(Locator::Id("checkout")).await.expect("checkout").click().await.expect("checkout");
    let order = until(c, "var t=document.getElementById('thanks'); return t && t.dataset.order", 10).await;
    let order = order.as_str().expect("order").to_string();
    fs_err::write(shots.join("demo-thanks.png"), c.screenshot().await.expect("shot")).expect("save");

    // The checkout stored a purchase of the product for that user, in that order; the
    // page view and the cart were tracked by the widget too.
    let mut kinds: Vec<(EventKind, Option<String>)> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        kinds.clear();
        api.store
            .scan_events(EventFilter::default(), &mut |_, e| {
                if e.user.as_ref().is_some_and(|u| u.as_str() == user)
                    && e.item.as_ref().is_some_and(|i| i.as_str() == product)
                {
                    kinds.push((e.kind, e.order_id.clone()));
                }
                ControlFlow::Continue(())
            })
            .expect("scan");
        if [EventKind::View, EventKind::AddToCart, EventKind::Purchase]
            .iter()
            .all(|k| kinds.iter().any(|(x, _)| x == k))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(kinds.contains(&(EventKind::Purchase, Some(order.clone()))), "{kinds:?}");
    assert!(
        kinds.iter().any(|(k, _)| *k == EventKind::View) && kinds.iter().any(|(k, _)| *k == EventKind::AddToCart),
        "{kinds:?}"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow suite: needs chromium and chromium-driver"]
async fn dashboard_pages_render_their_data_and_charts() {
    let api = api("http://127.0.0.1:1").await;
    let base = format!("http://{}", api.addr);
    // Data for every page: a second model version, an experiment with traffic and clicks.
    let addr = api.addr;
    let http = move |method: &'static str, path: String, body: Option<Value>| async move {
        tokio::task::spawn_blocking(move || request(addr, method, &path, body)).await.expect("join")
    };
    let (st, v) = http("POST", "/v1/admin/retrain".into(), None).await;
    assert!((200..300).contains(&st), "{v}");
    let spec = json!({"name": "home-test", "slots": ["home"], "variants": [{"name": "control"}, {"name": "trend", "strategy": "trending"}]});
    assert_eq!(http("POST", "/v1/experiments?start=true".into(), Some(spec)).await.0, 201);
    // A draft whose name sorts first: the experiments view still opens on the running one
    // (regression: issue #18).
    let draft = json!({"name": "aaa-draft", "variants": [{"name": "a"}, {"name": "b"}]});
    assert_eq!(http("POST", "/v1/experiments".into(), Some(draft)).await.0, 201);
    let mut events = Vec::new();
    for u in 1..=60 {
        let (_, v) = http("GET", format!("/v1/users/U{u:05}/recommendations?slot=home&k=4"), None).await;
        let rec = v["rec_id"].as_str().expect("rec_id").to_string();
        let item = v["items"][0]["id"].as_str().expect("item").to_string();
        if u % 3 == 0 {
            events.push(json!({"user": format!("U{u:05}"), "item": item, "kind": "click", "rec_id": rec}));
        }
    }
    assert_eq!(http("POST", "/v1/events".into(), Some(json!(events))).await.0, 202);
    for u in 1..=10 {
        let (st, v) = http("GET", format!("/v1/users/U{u:05}/layout?slot=sidebar"), None).await;
        assert_eq!((st, v["source"].clone()), (200, json!("bandit")), "{v}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // exposures reach the store

    let b = browser().await;
    let c = b.client();
    let shots = screenshot_dir();
    // A first load warms the browser (process start, compiled scripts): the timings below are
    // of a dashboard the user already opened once.
    c.goto(&format!("{base}/dashboard?key={ADMIN}&page=warm-up#/models")).await.expect("open");
    until(c, "return document.body.dataset.view === 'models'", 10).await;
    let mut timings = Vec::new();
    for (view, check) in [
        (
            // Events per day, CTR/conversion, revenue, AOV from the stored history (with its
            // recommendation traffic); lists, cache and latency from the requests above.
            "overview",
            "return document.querySelectorAll('#kpis .kpi').length === 8 && document.querySelectorAll('#overview-charts svg').length === 8 && document.querySelectorAll('#overview-charts svg polyline').length >= 12 && document.querySelectorAll('#overview-charts p.note').length === 0",
        ),
        (
            "models",
            "return document.querySelectorAll('#versions tr').length >= 3 && document.querySelectorAll('#candidates tr').length >= 4 && !!document.querySelector('#candidates b.good') && document.querySelectorAll('svg polyline').length === 4",
        ),
        (
            "catalog",
            "return document.querySelectorAll('#exposure tr').length === 8 && document.querySelectorAll('svg polyline').length === 3 && document.querySelectorAll('svg rect').length >= 2",
        ),
        (
            "live",
            "return document.querySelectorAll('#feed tr.served').length >= 1 && document.querySelectorAll('#feed tr.event').length >= 1",
        ),
        (
            "experiments",
            // The report with its lift chart, and the layout bandit with its shares.
            "var p=document.getElementById('report-panel'); var b=document.querySelector('.bandit'); return !!p && p.querySelector('h2').textContent.indexOf('home-test (running)') === 0 && p.querySelectorAll('svg polyline').length >= 1 && p.textContent.indexOf('trend') >= 0 && !!b && b.querySelectorAll('svg rect').length === 3 && b.querySelectorAll('svg circle').length >= 1",
        ),
        ("segments", "return document.querySelectorAll('.segmentation svg rect').length === 2"),
    ] {
        // A distinct query string per page: each is a full load.
        c.goto(&format!("{base}/dashboard?key={ADMIN}&page={view}#/{view}")).await.expect("open");
        until(c, &format!("return document.body.dataset.view === '{view}'"), 10).await;
        let ok = js(c, check).await;
        assert_eq!(
            ok,
            json!(true),
            "{view}: {}",
            js(c, "return document.getElementById('main').innerHTML.slice(0, 600)").await
        );
        // Navigation start (the time origin of a full load) to the data drawn.
        let ms = js(c, "return parseFloat(document.body.dataset.doneAt)").await.as_f64().expect("ms");
        timings.push((view, ms));
        fs_err::write(shots.join(format!("dashboard-{view}.png")), c.screenshot().await.expect("shot")).expect("save");
        assert_eq!(js(c, "return document.querySelectorAll('.err').length").await, json!(0), "{view} shows an error");
        assert_eq!(js(c, "return window.tailorErrors").await, json!([]), "{view}: script errors");
    }
    for (view, ms) in &timings {
        println!("dashboard {view}: {ms:.1} ms from navigation start to data drawn");
        assert!(*ms <= 500.0, "{view} took {ms:.1} ms");
    }
    // The rollback button makes version 1 live again.
    c.goto(&format!("{base}/dashboard?key={ADMIN}#/models")).await.expect("open");
    until(c, "return document.body.dataset.view === 'models'", 10).await;
    c.find(Locator::Css("[data-rollback='1']")).await.expect("rollback button").click().await.expect("click");
    until(c, "var r=document.querySelector('#versions tr:nth-child(2)'); return r && !!r.querySelector('b.good')", 10)
        .await;
    let (_, models) = http("GET", "/v1/admin/models".into(), None).await;
    assert_eq!(models["live"]["version"], 1, "{models}");
    b.close().await;
}

/// The charts module (`web/charts.js`) on its own page: tick labels that differ, whole-number
/// axes, maps framed against outliers with small segments on top, labels that never
/// overlap, bar labels cut to their room. Regression: issue #18 (NDCG axis read "0.135"
/// four times, versions got ticks at 1.2, one user at y = -18 squashed the map, centre labels
/// overlapped, a 57-user segment was barely visible, catalog labels were cut off).
#[tokio::test]
#[ignore = "needs chromium and chromedriver (slow suite)"]
async fn charts_module_draws_readable_axes_maps_and_labels() {
    let page = format!(
        "<!doctype html><html><body><div id='out'></div><script>{}</script><script>{}</script></body></html>",
        tailor_server::web::LIB_JS,
        tailor_server::web::CHARTS_JS
    );
    let host = host(vec![("/charts", page)]).await;
    let b = browser().await;
    let c = b.client();
    c.goto(&format!("http://{host}/charts")).await.expect("open");
    until(c, "return !!window.tailorCharts", 10).await;
    let got = js(
        c,
        r#"
        var C = tailorCharts, out = document.getElementById('out'), r = {};
        var labels = function (sel) { return Array.prototype.map.call(out.querySelectorAll(sel), function (t) { return t.textContent; }); };
        // NDCG per version: close values, whole versions.
        out.innerHTML = C.lineChart({ title: 'NDCG', x: 'version', y: 'NDCG@10', integer: true,
          series: [{ name: 'ndcg', points: [[1, 0.13512], [2, 0.13534], [3, 0.13547], [4, 0.13529], [5, 0.13561]] }] });
        r.y = labels('text.ytick'); r.x = labels('text.xtick');
        // A map: 980 users in a blob, 20 in a small segment, one far outlier.
        var pts = [], seed = 1;
        var rnd = function () { seed = (seed * 16807) % 2147483647; return seed / 2147483647 - 0.5; };
        for (var i = 0; i < 980; i++) pts.push([rnd() * 4, rnd() * 4, i % 3]);
        for (var j = 0; j < 20; j++) pts.push([1.5 + rnd() * 0.3, 1.5 + rnd() * 0.3, 3]);
        pts.push([0.2, -18, 0]);
        out.innerHTML = C.scatter({ title: 'map', x: 'c1', y: 'c2', points: pts, names: ['Big A', 'Big B', 'Big C', 'Small'] });
        var circles = out.querySelectorAll('circle.pt');
        var ys = Array.prototype.filter.call(circles, function (e) { return !e.classList.contains('pinned'); }).map(function (e) { return +e.getAttribute('cy'); });
        r.pinned = out.querySelectorAll('circle.pinned').length;
        r.spread = Math.max.apply(null, ys) - Math.min.apply(null, ys);
        r.lastFill = circles[circles.length - 1].getAttribute('fill');
        r.smallFill = C.COLORS[3];
        r.lastR = +circles[circles.length - 1].getAttribute('r');
        var boxes = Array.prototype.map.call(out.querySelectorAll('text.centre-label'), function (t) { return t.getBBox(); });
        r.centreLabels = boxes.length;
        r.overlaps = 0;
        for (var a = 0; a < boxes.length; a++) for (var k = a + 1; k < boxes.length; k++) {
          var p = boxes[a], q = boxes[k];
          if (p.x < q.x + q.width && q.x < p.x + p.width && p.y < q.y + q.height && q.y < p.y + p.height) r.overlaps++;
        }
        // Five labels at one anchor.
        var placed = C.placeLabels([0, 1, 2, 3, 4].map(function () { return { x: 100, y: 100, w: 80, h: 20 }; }), 860, 480);
        r.placedOverlaps = 0;
        for (var m = 0; m < 5; m++) for (var n = m + 1; n < 5; n++)
          if (Math.abs(placed[m].x - placed[n].x) < 80 && Math.abs(placed[m].y - placed[n].y) < 20) r.placedOverlaps++;
        // A long product title in a bar chart.
        var long = 'Extremely long product title that goes on and on and on about the product (SKU-000123)';
        out.innerHTML = C.barChart('Most served', 'lists', [[long, 10], ['short', 5]]);
        var shown = out.querySelector('text.bar-label');
        r.barText = shown.lastChild.textContent; r.barTitle = shown.querySelector('title').textContent;
        r.barFits = shown.getBBox().x >= 0;
        return r;
        "#,
    )
    .await;
    let strs = |k: &str| -> Vec<String> {
        got[k].as_array().expect(k).iter().map(|v| v.as_str().unwrap_or("").to_string()).collect()
    };
    let y = strs("y");
    let mut distinct = y.clone();
    distinct.dedup();
    assert!(y.len() >= 3 && distinct.len() == y.len(), "y tick labels repeat: {y:?}");
    let x = strs("x");
    assert_eq!(x, ["1", "2", "3", "4", "5"], "version ticks are whole numbers");
    assert_eq!(got["pinned"], 1, "{got}");
    assert!(got["spread"].as_f64().unwrap_or(0.0) > 300.0, "the cloud fills the frame: {got}");
    assert_eq!(got["lastFill"], got["smallFill"], "the small segment is drawn on top");
    assert!(got["lastR"].as_f64().unwrap_or(0.0) >= 4.0, "{got}");
    assert_eq!((got["centreLabels"].clone(), got["overlaps"].clone()), (json!(4), json!(0)), "{got}");
    assert_eq!(got["placedOverlaps"], 0, "{got}");
    let text = got["barText"].as_str().unwrap_or("");
    assert!(text.ends_with('…') && text.len() < 60, "{text}");
    assert!(got["barTitle"].as_str().unwrap_or("").ends_with("(SKU-000123)") && got["barFits"] == true, "{got}");
    b.close().await;
}
