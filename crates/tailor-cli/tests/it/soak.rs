//! A bounded soak of one `tailor serve` (slow suite): mixed traffic for
//! `TAILOR_SOAK_SECONDS` (default 600) — recommendations, event batches, item upserts (80
//! new items during the warm-up, then updates of them) and patches, experiment reads, a retraining every 2 minutes, one erasure per second. After
//! a warm-up (a fifth of the run) the process's RSS grows by less than 10%, no request is
//! answered 5xx, and every acknowledged event is stored exactly once. The figures are
//! printed (`--nocapture`) for docs/benchmarks.md.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::serve::http;
use crate::{stderr, tailor};

fn rss_kib(pid: u32) -> u64 {
    fs_err::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn answer(&self, what: &str, r: std::io::Result<(u16, String)>) -> Option<(u16, String)> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok((st, body)) if st >= 500 || st == 0 => {
                self.server_errors.lock().expect("lock").push(format!("{what}: {st} {}", &body[..body.len().min(200)]));
                None
            }
            Ok(x) => Some(x),
            Err(e) => {
                self.server_errors.lock().expect("lock").push(format!("{what}: {e}"));
                None
            }
        }
    }
}

#[test]
#[ignore = "slow suite: a 10-minute soak of one server"]
fn soak_mixed_traffic_keeps_memory_flat_and_every_event() {
    let seconds: u64 = std::env::var("TAILOR_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(600);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["demo", "--no-serve", "--users", "2000", "--items", "400", "--days", "30"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    // TAILOR_SOAK_WRAPPER runs the server under a profiler (`heaptrack -o /tmp/soak`).
    let wrapper = std::env::var("TAILOR_SOAK_WRAPPER").unwrap_or_default();
    // TAILOR_SOAK_PAUSE_MS paces the two list readers (a pause after each request), so that
    // CI can compile beside the soak without the readers taking every core.
    let pause =
        Duration::from_millis(std::env::var("TAILOR_SOAK_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
    let mut words = wrapper.split_whitespace();
    let mut server = match words.next() {
        Some(w) => {
            let mut c = std::process::Command::new(w);
            c.args(words).arg(env!("CARGO_BIN_EXE_tailor"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_tailor")),
    };
    let mut server = server
        .arg("--data-dir")
        .arg(&data)
        .args(["--conf", &format!("serve.addr=127.0.0.1:{port}")])
        .args(["--conf", "serve.als_params=factors=16,iterations=5", "--conf", "serve.retrain_every=2m"])
        // Small bounded memories, so that they fill during the warm-up and any growth
        // after it is a leak: 16 MiB of store pages, an id window of 100 000 events (the
        // default million would fill only after ~30 minutes of this traffic), 50 events per
        // user, 20 000 lists.
        .args([
            "--conf",
            "store.cache_mb=16",
            "--conf",
            "store.recent_ids=100000",
            "--conf",
            "serve.history_per_user=50",
            "--conf",
            "serve.cache_entries=20000",
        ])
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let ready = Instant::now();
    while http(port, "GET", "/readyz", "").map(|r| r.0).unwrap_or(0) != 200 {
        assert!(ready.elapsed() < Duration::from_secs(120), "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = server.id();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let lists = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    // Two readers of recommendations (users the eraser never reaches, and anonymous sessions).
    for r in 0..2u64 {
        let (tally, stop, lists) = (tally.clone(), stop.clone(), lists.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = r;
            while !stop.load(Ordering::Relaxed) {
                n += 7;
                let path = if n.is_multiple_of(5) {
                    format!("/v1/sessions/s{}/recommendations?k=8", n % 300)
                } else {
                    format!("/v1/users/U{:05}/recommendations?k=8&slot=home", 1001 + n % 1000)
                };
                let method = if n.is_multiple_of(5) { "POST" } else { "GET" };
                if tally.answer(&path, http(port, method, &path, "")).is_some_and(|(st, _)| st == 200) {
                    lists.fetch_add(1, Ordering::Relaxed);
                }
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
        }));
    }
    // Event batches of 20, each event with its id, for users the eraser never touches.
    {
        let (tally, stop, acked) = (tally.clone(), stop.clone(), acked.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<String> = (0..20).map(|i| format!("soak-{n}-{i}")).collect();
                let rows: Vec<String> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let kind = ["view", "view", "add_to_cart", "purchase"][i % 4];
                        format!(
                            r#"{{"id":"{id}","user":"U{:05}","item":"SKU-{:05}","kind":"{kind}","unit_price":12.5}}"#,
                            1001 + (n * 20 + i as u64) % 1000,
                            1 + (n * 7 + i as u64) % 400
                        )
                    })
                    .collect();
                let body = format!("[{}]", rows.join(","));
                if let Some((st, b)) = tally.answer("POST /v1/events", http(port, "POST", "/v1/events", &body)) {
                    assert_eq!(st, 202, "{b}");
                    acked.lock().expect("lock").extend(ids);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    // Catalog upserts and patches, experiment reads, one erasure per second.
    {
        let (tally, stop) = (tally.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let item = format!("SKU-{:05}", 1 + n % 400);
                let patch =
                    format!(r#"[{{"id":"{item}","price":{}.0,"in_stock":{}}}]"#, 20 + n % 50, !n.is_multiple_of(7));
                tally.answer("PATCH /v1/items", http(port, "PATCH", "/v1/items", &patch));
                if n.is_multiple_of(5) {
                    // 80 new items during the warm-up, then upserts of the same ones (a
                    // catalog that doubled would be more data, not a leak).
                    let new = format!(
                        r#"[{{"id":"SOAK-{}","title":"Soak item {n}","category":["Soak"],"price":9.5}}]"#,
                        (n / 5) % 80
                    );
                    tally.answer("PUT /v1/items", http(port, "PUT", "/v1/items", &new));
                }
                if n.is_multiple_of(4) {
                    let path = "/v1/experiments/collaborative-vs-hybrid/report?bootstrap=0";
                    tally.answer(path, http(port, "GET", path, ""));
                    tally.answer("GET /v1/experiments", http(port, "GET", "/v1/experiments", ""));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }
    {
        let (tally, stop) = (tally.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut u = 1u64;
            while !stop.load(Ordering::Relaxed) && u <= 1000 {
                let path = format!("/v1/users/U{u:05}");
                tally.answer(&path, http(port, "DELETE", &path, ""));
                u += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        }));
    }
    let start = Instant::now();
    let warm = Duration::from_secs(seconds / 5);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push((start.elapsed().as_secs(), rss_kib(pid)));
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("worker");
    }
    // Reports and retrainings allocate for a moment, so RSS swings: compare the median of
    // the first fifth after the warm-up with the median of the last fifth.
    let after_warm: Vec<u64> = samples.iter().filter(|(t, _)| *t >= warm.as_secs()).map(|s| s.1).collect();
    let median = |w: &[u64]| {
        let mut w = w.to_vec();
        w.sort_unstable();
        w.get(w.len() / 2).copied().unwrap_or(0)
    };
    let fifth = (after_warm.len() / 5).max(1);
    let base = median(&after_warm[..fifth.min(after_warm.len())]);
    let end = median(&after_warm[after_warm.len().saturating_sub(fifth)..]);
    let growth = (end as f64 - base as f64) / base.max(1) as f64;
    let (_, models) = http(port, "GET", "/v1/admin/models", "").expect("models");
    let versions =
        serde_json::from_str::<serde_json::Value>(&models).ok().and_then(|v| v["versions"].as_array().map(Vec::len));
    let _ = server.kill();
    let _ = server.wait();
    let acked = acked.lock().expect("lock").clone();
    let errors = tally.server_errors.lock().expect("lock").clone();
    println!(
        "soak {seconds} s: {} requests, {} lists, {} acknowledged events, {} model versions; RSS median {} KiB after the warm-up ({} s) -> {} KiB in the last fifth ({:+.1}%); peak {} KiB; {} server errors",
        tally.requests.load(Ordering::Relaxed),
        lists.load(Ordering::Relaxed),
        acked.len(),
        versions.unwrap_or(0),
        base,
        warm.as_secs(),
        end,
        growth * 100.0,
        samples.iter().map(|s| s.1).max().unwrap_or(0),
        errors.len()
    );
    assert!(errors.is_empty(), "{} server errors, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert!(growth < 0.10, "RSS grew {:.1}% after warm-up: {samples:?}", growth * 100.0);
    // The first model and one per 2 minutes after it (the last may fall at the very end).
    assert!(versions.is_some_and(|v| v as u64 >= seconds / 120), "a retraining every 2 minutes: {versions:?}");
    // Every acknowledged event is stored, exactly once.
    use tailor_store::Store;
    let store = tailor_store::RedbStore::open(&data).expect("open");
    let mut seen: HashSet<u128> = HashSet::new();
    let mut twice = 0;
    store
        .scan_events(tailor_store::EventFilter::default(), &mut |id, _| {
            twice += usize::from(!seen.insert(id.0));
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(twice, 0, "events stored twice");
    let missing = acked.iter().filter(|id| !seen.contains(&tailor_core::EventId::from_given(id).0)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged events are missing", acked.len());
}
