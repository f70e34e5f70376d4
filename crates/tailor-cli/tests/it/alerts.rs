//! An alert end to end: `tailor serve` with a `ctr_drop` alert judged every second, shoppers'
//! impressions and clicks (with rec_ids) at a steady CTR, then a drop, then recovery. The
//! loopback receiver gets exactly one `firing` Alertmanager payload after the drop (none
//! before) and one `resolved` after the recovery; `GET /v1/alerts` shows both, delivered.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{free_port, http, start_with};
use crate::{stderr, tailor};

/// Accepts HTTP requests on `listener`, answers 200, and sends each body to `tx`.
fn receiver(listener: std::net::TcpListener, tx: mpsc::Sender<Value>) {
    for stream in listener.incoming().flatten() {
        let mut reader = BufReader::new(stream);
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_ok() {
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    }
}

/// One second of traffic: 10 lists of 20 impressions, `clicks_per_list` clicks each.
fn second_of_traffic(port: u16, items: &[String], n: &mut u64, clicks_per_list: usize) {
    for _ in 0..10 {
        *n += 1;
        let rec = format!("r-alert-{n}");
        let mut events = Vec::new();
        for (k, i) in items.iter().take(20).enumerate() {
            events.push(json!({"user": "U00001", "item": i, "kind": "impression", "rec_id": rec}));
            if k < clicks_per_list {
                events.push(json!({"user": "U00001", "item": i, "kind": "click", "rec_id": rec}));
            }
        }
        let (st, body) = http(port, "POST", "/v1/events", &json!(events).to_string()).expect("post");
        assert_eq!(st, 202, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "slow: 25 s of live traffic against a server (run with --ignored; CI does)"]
fn a_ctr_drop_fires_one_webhook_and_recovery_resolves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["demo", "--no-serve", "--users", "300", "--items", "200", "--days", "14"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, tx));
    let port = free_port();
    let config = dir.path().join("tailor.toml");
    fs_err::write(
        &config,
        format!(
            "[serve]\naddr = \"127.0.0.1:{port}\"\nals_params = \"factors=8,iterations=3\"\n\n\
             [[serve.alerts]]\nname = \"rec-ctr\"\nkind = \"ctr_drop\"\ndrop = 0.5\nevery = \"1s\"\n\
             warm_up = \"4s\"\nwebhook = \"http://127.0.0.1:{hook}/hook\"\n"
        ),
    )
    .expect("config");
    let mut server = start_with(&data, port, &["--config", config.to_str().expect("utf8")]);
    let (_, body) = http(port, "GET", "/v1/popular?k=20", "").expect("popular");
    let items: Vec<String> = serde_json::from_str::<Value>(&body).expect("json")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(items.len(), 20);
    let mut n = 0;
    // Steady: CTR 0.5 for 8 s (the warm-up and then some); nothing may fire.
    for _ in 0..8 {
        second_of_traffic(port, &items, &mut n, 10);
    }
    assert!(rx.try_recv().is_err(), "an alert fired on steady traffic");
    // The drop: CTR 0.1 until the webhook says firing.
    let t = Instant::now();
    let fired = loop {
        second_of_traffic(port, &items, &mut n, 2);
        if let Ok(v) = rx.try_recv() {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no alert within 30 s of the drop");
    };
    eprintln!("fired {:.1} s after the drop", t.elapsed().as_secs_f64());
    assert_eq!(fired["version"], "4");
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["alerts"][0]["labels"]["alertname"], "rec-ctr");
    assert_eq!(fired["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        fired["alerts"][0]["annotations"]["description"].as_str().is_some_and(|d| d.starts_with("CTR ")),
        "{fired}"
    );
    // Recovery: back to 0.5 until resolved.
    let t = Instant::now();
    let resolved = loop {
        second_of_traffic(port, &items, &mut n, 10);
        if let Ok(v) = rx.try_recv() {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not resolved within 30 s of the recovery");
    };
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["startsAt"], fired["alerts"][0]["startsAt"]);
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(rx.try_recv().is_err(), "one firing, one resolved: nothing more");
    let (st, body) = http(port, "GET", "/v1/alerts", "").expect("alerts");
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    let statuses: Vec<&str> =
        v["history"].as_array().expect("history").iter().filter_map(|h| h["status"].as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert!(v["history"].as_array().expect("history").iter().all(|h| h["delivered"] == true), "{v}");
    assert_eq!(v["alerts"][0]["state"], "ok");
    let _ = server.kill();
    let _ = server.wait();
}

/// The serving hooks end to end: a `fallback_rate` alert against an objective of 20%
/// fallback lists, judged every second. Lists for known users (personalised) keep it quiet;
/// a burst of lists for unknown users (popular fallbacks) fires one webhook; personalised
/// lists again resolve it. A `latency` alert on the same server stays `ok` (every answer is
/// far below 10 s) and shows its objective as the baseline.
#[test]
#[ignore = "slow: 15 s of live traffic against a server (run with --ignored; CI does)"]
fn a_burst_of_fallback_lists_fires_and_personal_lists_resolve_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["demo", "--no-serve", "--users", "300", "--items", "200", "--days", "14"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hook = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || receiver(listener, tx));
    let port = free_port();
    let config = dir.path().join("tailor.toml");
    fs_err::write(
        &config,
        format!(
            "[serve]\naddr = \"127.0.0.1:{port}\"\nals_params = \"factors=8,iterations=3\"\n\n\
             [[serve.alerts]]\nname = \"fallbacks\"\nkind = \"fallback_rate\"\nexpected = 0.2\nevery = \"1s\"\n\
             webhook = \"http://127.0.0.1:{hook}/hook\"\n\n\
             [[serve.alerts]]\nname = \"p99\"\nkind = \"latency\"\nlatency_ms = 10000\nevery = \"1s\"\n"
        ),
    )
    .expect("config");
    let mut server = start_with(&data, port, &["--config", config.to_str().expect("utf8")]);
    let strategy = |path: &str| -> String {
        let (st, body) = http(port, "GET", path, "").expect("list");
        assert_eq!(st, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("json")["strategy"].as_str().unwrap_or("").to_owned()
    };
    let known: Vec<String> = (1..=300)
        .map(|u| format!("/v1/users/U{u:05}/recommendations?k=5"))
        .filter(|p| strategy(p) == "personalized")
        .take(20)
        .collect();
    assert_eq!(known.len(), 20, "demo users with personalised lists");
    let personal_second = || {
        for p in &known {
            assert_eq!(strategy(p), "personalized");
        }
        std::thread::sleep(Duration::from_millis(1_000));
    };
    for _ in 0..3 {
        personal_second();
    }
    assert!(rx.try_recv().is_err(), "an alert fired on personalised lists");
    let t = Instant::now();
    let mut n = 0;
    let fired = loop {
        for _ in 0..20 {
            n += 1;
            assert_ne!(strategy(&format!("/v1/users/new-shopper-{n}/recommendations?k=5")), "personalized");
        }
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(v) = rx.try_recv() {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no alert within 20 s of the fallbacks");
    };
    assert_eq!(
        (fired["status"].as_str(), fired["alerts"][0]["labels"]["alertname"].as_str()),
        (Some("firing"), Some("fallbacks"))
    );
    let description = fired["alerts"][0]["annotations"]["description"].as_str().unwrap_or("");
    assert!(description.starts_with("fallback share "), "{fired}");
    let t = Instant::now();
    let resolved = loop {
        personal_second();
        if let Ok(v) = rx.try_recv() {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not resolved within 30 s of personalised lists");
    };
    assert_eq!(resolved["status"], "resolved");
    let (_, body) = http(port, "GET", "/v1/alerts", "").expect("alerts");
    let v: Value = serde_json::from_str(&body).expect("json");
    let p99 = v["alerts"].as_array().expect("alerts").iter().find(|a| a["config"]["name"] == "p99").cloned();
    let p99 = p99.expect("the latency alert");
    assert_eq!(p99["state"], "ok", "{p99}");
    assert!(p99["baseline"].as_f64().is_some_and(|b| (b - 0.01).abs() < 1e-9), "{p99}");
    let _ = server.kill();
    let _ = server.wait();
}
