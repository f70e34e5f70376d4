//! Commands, output and exit codes.

use crate::{stats, stderr, stdout, tailor};

#[test]
fn demo_recommendation_traffic_is_impressions_on_top_of_the_same_behaviour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["demo", "--users", "300", "--items", "200", "--days", "14", "--no-serve", "--json"];
    let (with, without) = (dir.path().join("with"), dir.path().join("without"));
    assert!(tailor(&with, &args).status.success());
    let mut plain = args.to_vec();
    plain.push("--no-rec-traffic");
    assert!(tailor(&without, &plain).status.success());
    let (a, b) = (stats(&with), stats(&without));
    let impressions = a["events_by_kind"]["impression"].as_u64().expect("impressions");
    assert!(impressions > 1000, "{a}");
    assert_eq!(b["events_by_kind"].get("impression"), None, "{b}");
    // The simulated A/B test's click-throughs add a click before each attributed view.
    let clicks = a["events_by_kind"]["click"].as_u64().unwrap_or(0);
    assert!(clicks > 0, "{a}");
    assert_eq!(b["events_by_kind"].get("click"), None, "{b}");
    assert_eq!(a["events"].as_u64(), b["events"].as_u64().map(|n| n + impressions + clicks));
    for k in ["view", "add_to_cart", "purchase", "return"] {
        assert_eq!(a["events_by_kind"][k], b["events_by_kind"][k], "{k}");
    }
    assert_eq!(a["revenue"], b["revenue"]);
}

#[test]
fn demo_stats_export_import_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["demo", "--users", "300", "--items", "200", "--days", "14", "--no-serve", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let n = summary["events"].as_u64().expect("events");
    assert!(n > 5_000, "{summary}");
    let s = stats(&data);
    assert_eq!(s["events"].as_u64(), Some(n));
    assert_eq!((s["users"].as_u64(), s["items"].as_u64()), (Some(300), Some(200)));
    assert!(s["funnel"]["view_to_cart"].as_f64().is_some_and(|r| r > 0.0 && r < 1.0));
    // Same seed again: nothing new.
    let o = tailor(&data, &["demo", "--users", "300", "--items", "200", "--days", "14", "--no-serve", "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(again["written"]["events_added"].as_u64(), Some(0));

    let out = dir.path().join("events.parquet");
    let o = tailor(&data, &["export", "events", "--format", "parquet", "--out", out.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let copy = dir.path().join("copy");
    let o = tailor(&copy, &["import", "events", out.to_str().expect("utf8"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut a = stats(&data);
    let mut b = stats(&copy);
    // The copy has no catalog or user records, and knows only the users and items that
    // events mention (some demo users never visit, some items are never seen).
    assert!(b["users"].as_u64() <= a["users"].as_u64() && b["items"].as_u64() <= a["items"].as_u64());
    for s in [&mut a, &mut b] {
        let obj = s.as_object_mut().expect("object");
        for k in ["item_records", "user_records", "users", "items"] {
            obj.remove(k);
        }
    }
    assert_eq!(a, b);
}

#[test]
fn import_with_mapping_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("orders.csv");
    fs_err::write(
        &file,
        "Customer;Sku;When;Qty;Name\nc1;s1;01/02/2024 10:00;2;Red shoe\nc2;s1;02/02/2024 11:30;1;Red shoe\n",
    )
    .expect("write");
    let f = file.to_str().expect("utf8");
    let o = tailor(
        &data,
        &[
            "import",
            "events",
            f,
            "--delimiter",
            ";",
            "--map",
            "user=Customer,item=Sku,ts=When,quantity=Qty,item.title=Name",
            "--set",
            "kind=purchase",
            "--ts-format",
            "%d/%m/%Y %H:%M",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["written"]["events_added"].as_u64(), Some(2));
    assert_eq!(r["written"]["items_inserted"].as_u64(), Some(1));
    let s = stats(&data);
    assert_eq!(s["first_event"].as_str(), Some("2024-02-01T10:00:00Z"));

    // Usage mistakes exit with 2, bad data with 1.
    let o = tailor(&data, &["import", "events", f, "--map", "usr=Customer"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown field \"usr\""));
    let o = tailor(&data, &["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = tailor(
        &data,
        &[
            "import",
            "events",
            f,
            "--delimiter",
            ";",
            "--map",
            "user=Customer,item=Sku,ts=When,quantity=Name",
            "--set",
            "kind=purchase",
            "--ts-format",
            "%d/%m/%Y %H:%M",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(":2: quantity: \"Red shoe\" is not a number"), "{}", stderr(&o));
    let o = tailor(&data, &["import", "events", "/nonexistent.csv", "--set", "kind=view"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent.csv"), "{}", stderr(&o));
}

#[test]
fn config_show_names_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    fs_err::write(dir.path().join("tailor.toml"), "[demo]\nseed = 9\n").expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tailor"))
        .args(["config", "show", "--conf", "demo.users=77"])
        .env("TAILOR__DEMO__DAYS", "12")
        .env("TAILOR__STORE__DATA_DIR", &data)
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = |key: &str| out.lines().find(|l| l.starts_with(&format!("{key} ="))).unwrap_or_default().to_owned();
    assert!(line("demo.seed").ends_with("# file tailor.toml"), "{out}");
    assert!(line("demo.days").ends_with("# env TAILOR__DEMO__DAYS"), "{out}");
    assert!(line("demo.users").ends_with("# --conf demo.users"), "{out}");
    assert!(line("demo.items").ends_with("# default"), "{out}");
    assert!(line("store.data_dir").contains("env TAILOR__STORE__DATA_DIR"), "{out}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tailor"))
        .args(["config", "show"])
        .env("TAILOR__DEMO__DAYS", "soon")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("env TAILOR__DEMO__DAYS=soon: expected an integer"), "{}", stderr(&o));
}

#[test]
fn cluster_a_numeric_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let input = dir.path().join("x.csv");
    let mut text = String::from("a,b\n");
    for k in 0..60 {
        let (cx, cy) = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)][k % 3];
        text.push_str(&format!("{},{}\n", cx + (k as f64 * 0.37).sin(), cy + (k as f64 * 0.11).cos()));
    }
    fs_err::write(&input, text).expect("write");
    let out = dir.path().join("labels.csv");
    let o = tailor(
        &data,
        &[
            "cluster",
            "--input",
            input.to_str().expect("utf8"),
            "--k",
            "3",
            "--n-init",
            "3",
            "--scale",
            "zscore",
            "--out",
            out.to_str().expect("utf8"),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((r["k"].as_u64(), r["n"].as_u64(), r["d"].as_u64()), (Some(3), Some(60), Some(2)));
    assert!(r["silhouette"].as_f64().is_some_and(|s| s > 0.8), "{r}");
    assert_eq!(r["sizes"], serde_json::json!([20, 20, 20]));
    let labels = fs_err::read_to_string(&out).expect("labels");
    assert_eq!(labels.lines().count(), 61);
    let o = tailor(
        &data,
        &["cluster", "--input", input.to_str().expect("utf8"), "--method", "minibatch", "--k", "3", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["sizes"], serde_json::json!([20, 20, 20]), "{r}");
    // k = auto picks 3 by the silhouette.
    let o = tailor(&data, &["cluster", "--input", input.to_str().expect("utf8"), "--k", "auto", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((r["k"].as_u64(), r["k_scan"].as_array().map(Vec::len)), (Some(3), Some(9)), "{r}");
    // DBSCAN finds the three blobs.
    let o = tailor(
        &data,
        &[
            "cluster",
            "--input",
            input.to_str().expect("utf8"),
            "--method",
            "dbscan",
            "--eps",
            "3",
            "--min-samples",
            "4",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((r["k"].as_u64(), r["noise"].as_u64()), (Some(3), Some(0)), "{r}");
    assert_eq!(r["eps"].as_f64(), Some(3.0));
    let o =
        tailor(&data, &["cluster", "--input", input.to_str().expect("utf8"), "--method", "ward", "--k", "3", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["sizes"], serde_json::json!([20, 20, 20]), "{r}");
    // Bad input names the file, line and column; bad parameters are usage errors.
    fs_err::write(&input, "a,b\n1,2\n3,x\n").expect("write");
    let o = tailor(&data, &["cluster", "--input", input.to_str().expect("utf8"), "--k", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("x.csv:3: b: \"x\" is not a number"), "{}", stderr(&o));
    let o = tailor(&data, &["cluster", "--input", input.to_str().expect("utf8"), "--k", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Methods, scalings and k are parsed by clap into types: a bad one is refused before
    // the file is read, naming the flag and what it accepts.
    for (flag, bad, says) in [
        ("--method", "kmedoids", "possible values: kmeans, minibatch, dbscan, ward"),
        ("--scale", "minmax", "possible values: none, zscore"),
        ("--k", "many", "expected a number or auto"),
    ] {
        let o = tailor(&data, &["cluster", "--input", "/nonexistent.csv", flag, bad]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(flag) && err.contains(bad) && err.contains(says), "{flag}: {err}");
    }
    for (flag, bad, says) in [
        ("--method", "kmedoids", "possible values: kmeans, minibatch, dbscan, ward, rfm, rules"),
        ("--k", "three", "expected a number or auto"),
    ] {
        let o = tailor(&data, &["segment", "run", flag, bad]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(flag) && err.contains(bad) && err.contains(says), "segment run {flag}: {err}");
    }
}

// Regression: issue #18 (`tailor segment users NAME | head` panicked on the broken pipe,
// exit 101 with a backtrace).
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(tailor(&data, &["demo", "--users", "300", "--items", "100", "--days", "7", "--no-serve"]).status.success());
    for args in [&["config", "show"][..], &["segment", "users", "Bargain hunters", "-s", "rules"][..], &["stats"][..]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tailor"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader goes away before the first line is written (as `head` does after its lines).
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {:?} {err}", out.status);
    }
}

// Regression: issue #18 (no address flag; a taken port was reported only after training,
// naming neither the address nor the setting).
#[test]
fn demo_binds_first_and_names_the_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    for flag in ["--addr", "--listen"] {
        let o = tailor(&data, &["demo", "--users", "200", "--items", "100", "--days", "7", flag, &addr]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("cannot listen on {addr} (--addr)")), "{}", stderr(&o));
        assert!(!data.join("tailor.redb").exists(), "nothing was generated before the bind failed");
    }
    let o = tailor(&data, &["--conf", &format!("serve.addr={addr}"), "demo", "--users", "200", "--items", "100"]);
    assert!(stderr(&o).contains(&format!("cannot listen on {addr} (serve.addr)")), "{}", stderr(&o));
    let o = tailor(&data, &["demo", "--addr", "0.0.0.0:0", "--users", "200", "--items", "100"]);
    assert!(stderr(&o).contains("refusing to serve 0.0.0.0:0 (--addr) without API keys"), "{}", stderr(&o));
}

// Regression: issue #18 (the demo's history ended on a fixed date and its A/B test and
// layout bandit started without data; a rerun regenerated the shop).
#[test]
fn demo_history_ends_now_with_experiment_data_and_reruns_reuse_the_shop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["demo", "--users", "400", "--items", "200", "--days", "21", "--no-serve", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(summary["experiment_exposures"].as_u64().is_some_and(|n| n > 100), "{summary}");
    assert!(summary["bandit_decisions"].as_u64().is_some_and(|n| n > 100), "{summary}");
    let last = stats(&data)["last_event"].as_str().expect("last").to_string();
    let last = tailor_core::Timestamp::parse_auto(&last).expect("time");
    let age_h = (tailor_core::Timestamp::now().0 - last.0) as f64 / 3.6e6;
    assert!((0.0..3.0).contains(&age_h), "the history ends {age_h:.1} h ago");
    let o = tailor(&data, &["experiment", "report", "collaborative-vs-hybrid", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    for v in r["variants"].as_array().expect("variants") {
        assert!(v["exposures"].as_u64().is_some_and(|n| n > 50) && v["clicks"].as_u64().is_some_and(|n| n > 5), "{v}");
    }
    let bandits: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(data.join("bandits.json")).expect("bandits")).expect("json");
    assert!(bandits["home"].is_object(), "{bandits}");
    let before = stats(&data)["events"].clone();
    let o = tailor(&data, &["demo", "--users", "400", "--items", "200", "--days", "21", "--no-serve"]);
    assert!(stdout(&o).contains("using the demo shop already in"), "{}", stdout(&o));
    // Regression: issue #18 (log lines carried colour codes when stderr was not a terminal).
    let o = tailor(&data, &["train"]);
    let log = stderr(&o);
    assert!(o.status.success() && log.contains("INFO") && !log.contains('\u{1b}'), "{log}");
    assert_eq!(stats(&data)["events"], before);
}

/// `tailor bench alerts` for each watched shape: every injected change is found, false
/// alarms stay within the stated one per 30 days, and a change out of range is a usage error.
#[test]
fn bench_alerts_simulates_drops_rises_and_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for (shape, drop) in [("drop", "0.2"), ("rise", "1.0"), ("volume", "0.5")] {
        let args = ["bench", "alerts", "--runs", "5", "--shape", shape, "--drop", drop, "--impressions", "500"];
        let v = crate::json(&data, &args);
        let o = &v["outcomes"][0];
        assert_eq!(o["detected"], o["drops"], "{shape}: {v}");
        assert!(o["false_alarms_per_30_days"].as_f64().is_some_and(|f| f <= 1.0), "{shape}: {v}");
    }
    let o = tailor(&data, &["bench", "alerts", "--shape", "drop", "--drop", "1.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--drop: drop = 1.5"), "{}", stderr(&o));
    assert!(tailor(&data, &["bench", "alerts", "--shape", "rise", "--drop", "1.5", "--runs", "1"]).status.success());
}
