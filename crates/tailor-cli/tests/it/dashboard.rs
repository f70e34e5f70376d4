//! The dashboard of `tailor demo` (the README's first command, on the default demo shop)
//! in headless Chromium: every page renders its charts from the demo's data without script
//! errors, and loads (navigation plus data) within 500 ms. Screenshots go to
//! `target/browser/demo-dashboard-*.png`. Slow suite (needs `chromium` and
//! `chromium-driver`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::http;

#[path = "../../../tailor-server/tests/support/browser.rs"]
mod kit;

fn get(port: u16, path: &str) -> Value {
    let (st, body) = http(port, "GET", path, "").expect("request");
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// Kills the demo server when the test ends, passing or not.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow suite: needs chromium and chromium-driver"]
async fn demo_dashboard_pages_render_the_demo_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = kit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tailor"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--conf", &format!("serve.addr=127.0.0.1:{port}"), "demo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut server = Server(child);
    let started = Instant::now();
    while !http(port, "GET", "/readyz", "").is_ok_and(|(st, _)| st == 200) {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("tailor demo exited early: {status}");
        }
        assert!(started.elapsed() < Duration::from_secs(300), "tailor demo was not ready within 300 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Shoppers on the home page: a layout from the bandit, the list, impressions of it, a
    // click on every fourth list and a purchase on every eighth.
    let mut events = Vec::new();
    for u in 1..=40 {
        let user = format!("U{u:05}");
        let layout = get(port, &format!("/v1/users/{user}/layout?slot=home"));
        let decision = layout["decision_id"].as_str().unwrap_or("");
        let list = get(port, &format!("/v1/users/{user}/recommendations?slot=home&k=8&decision={decision}"));
        let rec = list["rec_id"].as_str().expect("rec_id");
        let items: Vec<&str> =
            list["items"].as_array().expect("items").iter().filter_map(|i| i["id"].as_str()).collect();
        for i in &items {
            events.push(json!({"user": user, "item": i, "kind": "impression", "rec_id": rec}));
        }
        if u % 4 == 0 {
            events.push(json!({"user": user, "item": items[0], "kind": "click", "rec_id": rec}));
        }
        if u % 8 == 0 {
            events.push(json!({"user": user, "item": items[0], "kind": "purchase", "rec_id": rec, "unit_price": 20.0}));
        }
    }
    let (st, body) = http(port, "POST", "/v1/events", &json!(events).to_string()).expect("post");
    assert_eq!(st, 202, "{body}");

    let b = kit::browser().await;
    let c = b.client();
    let shots = kit::screenshot_dir();
    let base = format!("http://127.0.0.1:{port}");
    let mut timings = Vec::new();
    for (view, check) in [
        (
            // Eight charts, each with data: events, CTR/conversion, revenue and AOV from the
            // demo's 60 days (its history has recommendation traffic), lists, cache and
            // latency from the requests above, and the strategy bars.
            "overview",
            "return document.querySelectorAll('#overview-charts svg').length === 8 && document.querySelectorAll('#overview-charts svg polyline').length >= 12 && document.querySelectorAll('#overview-charts p.note').length === 0 && document.querySelectorAll('#alerts tr').length === 6",
        ),
        (
            // Both stored segmentations; the k-means one first: sizes, five profiles, the
            // map with its points, explanation rules.
            "segments",
            "return document.querySelectorAll('.tabs a').length === 2 && document.querySelectorAll('#profiles tr').length === 6 && document.querySelectorAll('#segment-map circle.pt').length > 1000 && document.querySelectorAll('.panel code').length >= 5",
        ),
        (
            "segments/rules",
            "return document.querySelectorAll('#profiles tr').length === 4 && document.querySelectorAll('#segment-map circle.pt').length > 1000",
        ),
        (
            "models",
            "return document.querySelectorAll('#versions tr').length >= 2 && document.querySelectorAll('svg circle').length >= 3",
        ),
        (
            "experiments",
            "var p=document.getElementById('report-panel'); var b=document.querySelector('.bandit'); return !!p && p.textContent.indexOf('collaborative-vs-hybrid') >= 0 && !!b && b.querySelectorAll('svg rect').length === 3 && b.querySelectorAll('svg circle').length >= 1",
        ),
        (
            // The demo's cohorts as a heat map, lifetime value per segment of both
            // segmentations, the ten most valuable customers.
            "customers",
            "return document.querySelectorAll('#cohorts svg.heat rect.cell').length >= 3 && document.querySelectorAll('#cohorts svg polyline').length >= 2 && document.querySelectorAll('#top-customers tr').length === 11 && document.querySelectorAll('#clv svg rect').length >= 5 && document.querySelectorAll('#fairness svg rect').length >= 5 && document.querySelectorAll('#bands tr').length === 4",
        ),
        (
            // The served lists by gender: two groups.
            "customers/gender",
            "return document.querySelectorAll('#fairness .tabs a.on').length === 1 && document.querySelectorAll('#fairness svg rect').length >= 2",
        ),
        (
            "catalog",
            "return document.querySelectorAll('#exposure tr').length === 8 && document.querySelectorAll('svg polyline').length === 3 && document.querySelectorAll('svg rect').length >= 10",
        ),
        (
            "live",
            "return document.querySelectorAll('#feed tr.served').length >= 40 && document.querySelectorAll('#feed tr.event').length >= 20",
        ),
    ] {
        // A distinct query string makes every page a full load, timed by the browser.
        let name = view.replace('/', "-");
        c.goto(&format!("{base}/dashboard?page={name}#/{view}")).await.expect("open");
        let tab = view.split('/').next().unwrap_or(view);
        kit::until(c, &format!("return document.body.dataset.view === '{tab}'"), 20).await;
        if tab == "customers" {
            // The served-log fairness panel fills in after the page is drawn.
            kit::until(c, "return !!document.body.dataset.fairnessAt", 20).await;
            let at = kit::js(c, "return parseFloat(document.body.dataset.fairnessAt)").await;
            println!("demo dashboard {view}: fairness panel drawn at {at} ms");
        }
        let ok = kit::js(c, check).await;
        assert_eq!(
            ok,
            json!(true),
            "{view}: {}",
            kit::js(c, "return document.getElementById('main').innerHTML.slice(0, 800)").await
        );
        assert_eq!(kit::js(c, "return window.tailorErrors").await, json!([]), "{view}: script errors");
        assert_eq!(
            kit::js(c, "return document.querySelectorAll('.err').length").await,
            json!(0),
            "{view} shows an error"
        );
        // From the start of navigation to the data drawn (the page stamps it when done; a
        // full load's time origin is the navigation start).
        let ms = kit::js(c, "return parseFloat(document.body.dataset.doneAt)").await.as_f64().expect("ms");
        timings.push((view, ms));
        c.set_window_size(1280, 2400).await.expect("size");
        fs_err::write(shots.join(format!("demo-dashboard-{name}.png")), c.screenshot().await.expect("shot"))
            .expect("save");
        c.set_window_size(1200, 900).await.expect("size");
    }
    for (view, ms) in &timings {
        println!("demo dashboard {view}: {ms:.1} ms from navigation start to data drawn");
    }
    for (view, ms) in &timings {
        assert!(*ms <= 500.0, "{view} took {ms:.1} ms");
    }
    b.close().await;
}
