//! `tailor experiment ...` and `tailor simulate` end to end.

use crate::{stderr, stdout, tailor};

#[test]
fn create_start_report_and_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let spec = dir.path().join("exp.toml");
    fs_err::write(
        &spec,
        "name = \"home-layout\"\nslots = [\"home\"]\nprimary_metric = \"ctr\"\n\n[[variants]]\nname = \"carousel\"\n\n[[variants]]\nname = \"grid\"\nlayout = \"grid\"\n",
    )
    .expect("spec");
    let o = tailor(&data, &["experiment", "create", spec.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("home-layout is running"), "{}", stdout(&o));
    // A bad definition names the file and the field.
    let bad = dir.path().join("bad.json");
    fs_err::write(&bad, r#"{"name": "x", "variants": [{"name": "a"}, {"name": "b", "weight": 0}]}"#).expect("bad");
    let o = tailor(&data, &["experiment", "create", bad.to_str().expect("path")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.json") && stderr(&o).contains("variants[1].weight"), "{}", stderr(&o));

    // Exposures as the server logs them, and the shoppers' clicks.
    {
        use tailor_store::Store;
        let store = tailor_store::RedbStore::open(&data).expect("store");
        let mut rows = Vec::new();
        let mut events = Vec::new();
        for u in 0..400 {
            let variant = u % 2;
            let rec = format!("r{u}.home-layout.{}", ["carousel", "grid"][variant]);
            let unit = format!("U{u:04}");
            let ts = 1_790_000_000_000_i64 + u as i64 * 600_000;
            let x = serde_json::json!({"rec_id": rec, "unit": unit, "variant": variant, "ts": ts, "items": ["SKU-1"]});
            rows.push(tailor_store::ExposureRow {
                experiment: "home-layout".into(),
                unit: unit.clone(),
                record: serde_json::to_vec(&x).expect("json"),
            });
            // Grid is clicked twice as often.
            if u % (if variant == 1 { 4 } else { 8 }) < 2 {
                let mut e = tailor_core::Event::new(
                    Some(&unit),
                    Some("SKU-1"),
                    tailor_core::EventKind::Click,
                    tailor_core::Timestamp(ts + 5_000),
                );
                e.rec_id = Some(rec);
                events.push(e);
            }
        }
        store.append_exposures(&rows).expect("exposures");
        store.write(tailor_store::WriteBatch { events, ..Default::default() }).expect("events");
    }
    let chart = dir.path().join("lift.svg");
    let o = tailor(&data, &["--json", "experiment", "report", "home-layout", "--chart", chart.to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report json");
    assert_eq!((r["variants"][0]["users"].as_u64(), r["variants"][1]["users"].as_u64()), (Some(200), Some(200)));
    assert_eq!((r["variants"][0]["clicks"].as_u64(), r["variants"][1]["clicks"].as_u64()), (Some(50), Some(100)));
    assert_eq!(r["primary"][0]["significant"], true, "{}", r["verdict"]);
    let svg = fs_err::read_to_string(&chart).expect("chart");
    assert!(svg.contains("<svg") && svg.contains("cumulative lift"), "chart drawn");
    let o = tailor(&data, &["experiment", "report", "home-layout"]);
    assert!(stdout(&o).contains("grid vs carousel: ctr +100.0%"), "{}", stdout(&o));

    let o = tailor(&data, &["experiment", "stop", "home-layout"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tailor(&data, &["experiment", "start", "home-layout"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot go from stopped to running"), "{}", stderr(&o));
    let o = tailor(&data, &["--json", "experiment", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("list");
    assert_eq!(list[0]["status"], "stopped");

    // The planner (no store needed), checked against the reference in the golden file.
    let o = tailor(&data, &["--json", "experiment", "plan", "--baseline", "0.04", "--mde", "0.1"]);
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).expect("plan");
    assert_eq!(p["plan"]["per_variant"], 39_475, "{p}");
    let o = tailor(&data, &["experiment", "plan", "--baseline", "1.5", "--mde", "0.1"]);
    assert!(!o.status.success() && stderr(&o).contains("baseline"), "{}", stderr(&o));
}

#[test]
fn simulate_reports_error_rates_and_regret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["--json", "simulate", "--scenario", "ab", "--experiments", "40", "--users", "2000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v["rejected_fixed"].as_f64().is_some_and(|r| r <= 0.25), "{v}");
    let o = tailor(&data, &["--json", "simulate", "--scenario", "bandit", "--decisions", "20000", "--runs", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let regret = |p: &str| {
        rows.as_array()
            .expect("rows")
            .iter()
            .find(|r| r["outcome"]["policy"] == p && r["outcome"]["per_segment"] == false)
            .and_then(|r| r["outcome"]["regret"].as_f64())
            .expect("policy")
    };
    assert!(regret("uniform") > 2.0 * regret("thompson"), "{rows}");
}
