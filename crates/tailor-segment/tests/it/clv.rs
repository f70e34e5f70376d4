//! BG/NBD and Gamma-Gamma on CDNOW against the `lifetimes` package (values from
//! `scripts/golden_clv.py`), and the paper's published parameters.

use std::path::Path;

use serde_json::Value;
use tailor_segment::clv::{self, BgNbd, GammaGamma, Purchase, Summary};

const DAY_MS: i64 = 86_400_000;

fn golden() -> Value {
    serde_json::from_str(include_str!("../golden/clv_cdnow.json")).expect("golden JSON")
}

fn data(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/cdnow").join(name);
    path.exists().then(|| fs_err::read_to_string(&path).expect("readable"))
}

/// Days since 1970-01-01 of `YYYYMMDD`.
fn day(yyyymmdd: &str) -> i64 {
    let ts = tailor_core::Timestamp::parse_with_format(yyyymmdd, "%Y%m%d").expect("a date");
    ts.0.div_euclid(DAY_MS)
}

/// `customer date cds value` rows (whitespace-separated, the raw layout), customer in
/// column `id_col`.
fn purchases(text: &str, id_col: usize, skip_header: bool) -> Vec<Purchase> {
    text.lines()
        .skip(usize::from(skip_header))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let user: u32 = f[id_col].parse().expect("customer id");
            let d = day(f[id_col + 1]);
            Purchase { user, ts: d * DAY_MS + 12 * 3_600_000, amount: f[id_col + 3].parse().expect("value") }
        })
        .collect()
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got - want).abs() <= rel * want.abs(), "{what}: {got} vs lifetimes {want} (relative {rel})");
}

#[test]
fn bg_nbd_on_the_papers_sample_equals_lifetimes_and_the_paper() {
    let Some(text) = data("CDNOW_sample.txt") else {
        eprintln!("skipped: ../shared/data/cdnow is missing");
        return;
    };
    let g = &golden()["sample"];
    let all = purchases(&text, 1, false);
    let calibration = clv::summarize(&all, day("19970930"), 7.0).expect("summaries");
    assert_eq!(calibration.len() as u64, g["customers"].as_u64().expect("customers"));
    let m = BgNbd::fit(&calibration, 7.0).expect("fits");
    for (got, name) in [(m.r, "r"), (m.alpha, "alpha"), (m.a, "a"), (m.b, "b")] {
        close(got, g["bg_nbd"][name].as_f64().expect("param"), 1e-4, name);
    }
    // Fader, Hardie & Lee (2005), table 1: r = 0.243, α = 4.414, a = 0.793, b = 2.426.
    for (got, want) in [(m.r, 0.243), (m.alpha, 4.414), (m.a, 0.793), (m.b, 2.426)] {
        assert!((got - want).abs() < 6e-4, "{m:?}");
    }
    let full = clv::summarize(&all, day("19980630"), 1.0).expect("summaries");
    let gg = GammaGamma::fit(&full).expect("fits");
    assert_eq!(gg.fit.customers as u64, g["gamma_gamma_customers"].as_u64().expect("customers"));
    for (got, name) in [(gg.p, "p"), (gg.q, "q"), (gg.v, "v")] {
        close(got, g["gamma_gamma"][name].as_f64().expect("param"), 1e-4, name);
    }
}

#[test]
fn every_prediction_on_the_master_file_equals_lifetimes() {
    let Some(text) = data("CDNOW_master.txt") else {
        eprintln!("skipped: ../shared/data/cdnow is missing");
        return;
    };
    let g = &golden()["master"];
    let all = purchases(&text, 0, true);
    let s = clv::summarize(&all, day("19980630"), 1.0).expect("summaries");
    assert_eq!(s.len() as u64, g["customers"].as_u64().expect("customers"));
    let bg = BgNbd::fit(&s, 1.0).expect("fits");
    let gg = GammaGamma::fit(&s).expect("fits");
    for (got, name) in [(bg.r, "r"), (bg.alpha, "alpha"), (bg.a, "a"), (bg.b, "b")] {
        close(got, g["bg_nbd"][name].as_f64().expect("param"), 1e-4, name);
    }
    for (got, name) in [(gg.p, "p"), (gg.q, "q"), (gg.v, "v")] {
        close(got, g["gamma_gamma"][name].as_f64().expect("param"), 1e-4, name);
    }
    let by_user: std::collections::HashMap<u32, &Summary> = s.iter().map(|c| (c.user, c)).collect();
    let rows = g["customers_checked"].as_array().expect("rows");
    assert!(rows.len() > 200);
    for row in rows {
        let id = row["customer"].as_u64().expect("id") as u32;
        let c = by_user[&id];
        let num = |k: &str| row[k].as_f64().expect("number");
        assert_eq!(u64::from(c.frequency), row["frequency"].as_u64().expect("frequency"), "customer {id}");
        assert_eq!((c.recency, c.t), (num("recency"), num("t")), "customer {id}");
        assert!((c.monetary - num("monetary")).abs() <= 1e-9 * num("monetary").max(1.0), "customer {id}");
        // The parameters agree to ~1e-5, so predictions agree to about the same.
        let what = |k: &str| format!("customer {id}: {k}");
        close(bg.p_alive(c), num("p_alive"), 1e-4, &what("p_alive"));
        close(bg.expected_purchases(90.0, c), num("purchases_90d"), 1e-4, &what("purchases_90d"));
        close(gg.expected_value(c), num("expected_value"), 1e-4, &what("expected_value"));
        close(clv::clv(&bg, &gg, c, 3, 0.0), num("clv_3m"), 2e-4, &what("clv_3m"));
        close(clv::clv(&bg, &gg, c, 3, 0.01), num("clv_3m_discount_1pct"), 2e-4, &what("clv_3m_discount_1pct"));
    }
}
