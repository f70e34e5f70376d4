//! `tailor report clv|cohorts` on the shared CDNOW and Online Retail files, imported through
//! the CLI, against `lifetimes` (scripts/golden_clv.py) and pandas (scripts/golden_cohorts.py).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{json, stderr, stdout, tailor};

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel);
    p.exists().then_some(p)
}

fn golden_clv() -> Value {
    serde_json::from_str(include_str!("../../../tailor-segment/tests/golden/clv_cdnow.json")).expect("golden")
}

fn golden_cohorts() -> Value {
    serde_json::from_str(include_str!("../golden/cohorts.json")).expect("golden")
}

/// CDNOW's master file in a fresh store: a line's `amount` is its total, so the unit price
/// is amount / quantity; there are no product ids, so every line is item `cd`.
fn cdnow_store(dir: &Path) -> Option<PathBuf> {
    let file = shared("cdnow/cdnow_master.csv")?;
    let data = dir.join("data");
    let f = file.to_str().expect("utf8");
    let o = tailor(
        &data,
        &["import", "events", f, "--map", "user=customer_id,ts=date", "--set", "kind=purchase", "--set", "item=cd"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    Some(data)
}

fn close(got: &Value, want: &Value, rel: f64, what: &str) {
    let (g, w) = (got.as_f64().expect("number"), want.as_f64().expect("number"));
    assert!((g - w).abs() <= rel * w.abs().max(1e-12), "{what}: {g} vs {w}");
}

#[test]
fn clv_of_the_cdnow_customers_equals_lifetimes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(data) = cdnow_store(dir.path()) else {
        eprintln!("skipped: ../shared/data is missing");
        return;
    };
    let g = &golden_clv()["master"];
    // RFM segments first, so the report has segments to value.
    let _ = json(&data, &["segment", "run", "--method", "rfm"]);
    let out = dir.path().join("clv.tsv");
    let chart = dir.path().join("clv.svg");
    let r = json(
        &data,
        &[
            "report",
            "clv",
            "--top",
            "5",
            "--out",
            out.to_str().expect("utf8"),
            "--chart",
            chart.to_str().expect("utf8"),
        ],
    );
    assert_eq!(r["customers"], g["customers"]);
    assert_eq!(r["through"], "1998-06-30");
    for p in ["r", "alpha", "a", "b"] {
        close(&r["bg_nbd"][p], &g["bg_nbd"][p], 1e-4, p);
    }
    for p in ["p", "q", "v"] {
        close(&r["gamma_gamma"][p], &g["gamma_gamma"][p], 1e-4, p);
    }
    assert!(r["fit_seconds"].as_f64().expect("seconds") < 5.0);
    // Every customer's row; the checked ones equal lifetimes' 3-month CLV.
    let text = fs_err::read_to_string(&out).expect("tsv");
    let rows: std::collections::HashMap<&str, Vec<&str>> =
        text.lines().skip(1).map(|l| l.split('\t').collect::<Vec<_>>()).map(|f| (f[0], f)).collect();
    assert_eq!(rows.len() as u64, g["customers"].as_u64().expect("n"));
    for c in g["customers_checked"].as_array().expect("rows") {
        let id = c["customer"].to_string();
        let f = &rows[id.as_str()];
        let num = |k: usize| Value::from(f[k].parse::<f64>().expect("number"));
        close(&num(5), &c["p_alive"], 1e-4, &format!("{id} p_alive"));
        close(&num(6), &c["purchases_90d"], 1e-4, &format!("{id} purchases"));
        close(&num(8), &c["clv_3m"], 2e-4, &format!("{id} clv"));
    }
    let top = r["top"].as_array().expect("top");
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|w| w[0]["clv"].as_f64() >= w[1]["clv"].as_f64()));
    // RFM segments cover every buyer once; Champions are worth more than Lost customers.
    let segs = r["segments"].as_array().expect("segments");
    let covered: u64 = segs.iter().map(|s| s["customers"].as_u64().expect("n")).sum();
    assert_eq!(covered, g["customers"].as_u64().expect("n"));
    let mean = |n: &str| segs.iter().find(|s| s["segment"] == n).and_then(|s| s["mean_clv"].as_f64()).expect(n);
    assert!(mean("Champions") > 10.0 * mean("Lost"), "{segs:?}");
    assert!(fs_err::read_to_string(&chart).expect("chart").contains("lifetime value per segment"));

    // The calibration period of the paper: every customer's first purchase is in it.
    let r = json(&data, &["report", "clv", "--through", "1997-09-30", "--top", "0"]);
    assert_eq!((r["customers"].as_u64(), r["through"].as_str()), (Some(23_570), Some("1997-09-30")));
    // Bad options are usage errors naming the flag.
    let o = tailor(&data, &["report", "clv", "--discount", "1.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("discount = 1.5"), "{}", stderr(&o));
    let o = tailor(&data, &["report", "clv", "--through", "someday"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // Lifetime value is a feature rules can use: the top decile by clv_90d.
    let rules = dir.path().join("rules.toml");
    fs_err::write(&rules, "[[segment]]\nname = \"High value\"\nwhen = \"clv_90d >= p90(clv_90d) and p_alive > 0.5\"\n")
        .expect("write");
    let run = json(&data, &["segment", "run", "--method", "rules", "--rules", rules.to_str().expect("utf8")]);
    let s = &run["record"]["summaries"][0];
    let n = s["size"].as_u64().expect("size");
    assert!((1_000..=2_400).contains(&n), "{s}");
    assert!(s["clv_90d"].as_f64().expect("clv") > 5.0 * r["total_clv"].as_f64().expect("total") / 23_570.0, "{s}");
}

#[test]
fn an_empty_store_has_no_lifetime_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = tailor(&data, &["report", "clv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no purchase is stored"), "{}", stderr(&o));
    let c = json(&data, &["report", "cohorts"]);
    assert_eq!(c["customers"], 0);
    let f = json(&data, &["report", "fairness", "--by", "gender"]);
    assert_eq!((f["lists"].as_u64(), f["grouped_by"].as_str()), (Some(0), Some("gender")));
    let o = tailor(&data, &["report", "fairness", "--by", "shoe_size"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = tailor(&data, &["report", "fairness"]);
    assert!(stderr(&o).contains("no segmentation is stored"), "{}", stderr(&o));
}

fn same_cohorts(got: &Value, want: &Value, what: &str) {
    assert_eq!(got["customers"], want["customers"], "{what}");
    assert_eq!(got["last_month"], want["last_month"], "{what}");
    let (g, w) = (got["rows"].as_array().expect("rows"), want["rows"].as_array().expect("rows"));
    assert_eq!(g.len(), w.len(), "{what}");
    for (a, b) in g.iter().zip(w) {
        assert_eq!((&a["month"], &a["size"], &a["active"]), (&b["month"], &b["size"], &b["active"]), "{what}");
        let (ra, rb) = (a["revenue"].as_array().expect("revenue"), b["revenue"].as_array().expect("revenue"));
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(rb) {
            close(x, y, 1e-9, &format!("{what} {} revenue", a["month"]));
        }
    }
}

#[test]
fn cohorts_equal_an_independent_pandas_computation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(data) = cdnow_store(dir.path()) else {
        eprintln!("skipped: ../shared/data is missing");
        return;
    };
    let chart = dir.path().join("cohorts.svg");
    let c = json(&data, &["report", "cohorts", "--chart", chart.to_str().expect("utf8")]);
    same_cohorts(&c, &golden_cohorts()["cdnow"], "cdnow");
    let svg = fs_err::read_to_string(&chart).expect("chart");
    assert!(svg.contains("Retention by first-purchase month") && svg.contains("1997-02 (8476)"));
    let table = stdout(&tailor(&data, &["report", "cohorts"]));
    assert!(table.contains("1997-01     7846  100.0%   14.7%"), "{table}");

    let Some(retail) = shared("online-retail/online_retail.csv.gz") else { return };
    let data = dir.path().join("retail");
    let o = tailor(&data, &["import", "events", retail.to_str().expect("utf8"), "--preset", "online-retail"]);
    assert!(o.status.success(), "{}", stderr(&o));
    same_cohorts(&json(&data, &["report", "cohorts"]), &golden_cohorts()["online_retail"], "online retail");
}
