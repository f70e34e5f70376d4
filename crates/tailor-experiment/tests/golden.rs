//! The statistics against scipy's values (`scripts/stats_reference.py` wrote the file).

use serde_json::Value;
use tailor_experiment::stats;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/scipy_stats.json");
    let text = fs_err::read_to_string(path).expect("reference file");
    serde_json::from_str(&text).expect("reference json")
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1e-300);
    assert!((got - want).abs() <= tol, "{what}: got {got:e}, scipy {want:e} (rel {:e})", ((got - want) / want).abs());
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().expect("array")
}

#[test]
fn golden_statistics_match_scipy() {
    let r = reference();
    let mut checked = 0;
    for c in list(&r["chi2_independence"]) {
        let table: Vec<[u64; 2]> = list(&c["table"])
            .iter()
            .map(|row| [row[0].as_u64().expect("count"), row[1].as_u64().expect("count")])
            .collect();
        let yates = c["yates"].as_bool().expect("yates");
        let got = stats::chi2_independence(&table, yates).expect("chi2");
        close(got.statistic, f(c, "statistic"), &format!("chi2 {table:?} yates {yates}"));
        close(got.p_value, f(c, "p_value"), &format!("chi2 p {table:?} yates {yates}"));
        assert_eq!(u64::from(got.dof), c["dof"].as_u64().expect("dof"));
        checked += 1;
    }
    for c in list(&r["goodness_of_fit"]) {
        let obs: Vec<u64> = list(&c["observed"]).iter().map(|v| v.as_u64().expect("n")).collect();
        let w: Vec<f64> = list(&c["weights"]).iter().map(|v| v.as_f64().expect("w")).collect();
        let got = stats::goodness_of_fit(&obs, &w).expect("gof");
        close(got.statistic, f(c, "statistic"), &format!("gof {obs:?}"));
        close(got.p_value, f(c, "p_value"), &format!("gof p {obs:?}"));
        checked += 1;
    }
    for c in list(&r["z_test"]) {
        let n = |k: &str| c[k].as_u64().expect("count");
        let got = stats::two_proportion_z(n("x1"), n("n1"), n("x2"), n("n2"), f(c, "alpha")).expect("z");
        let what = format!("z-test {c}");
        close(got.z, f(c, "z"), &what);
        close(got.p_value, f(c, "p_value"), &what);
        close(got.diff, f(c, "diff"), &what);
        close(got.diff_ci.0, f(c, "diff_lo"), &what);
        close(got.diff_ci.1, f(c, "diff_hi"), &what);
        close(got.lift.expect("lift"), f(c, "lift"), &what);
        let (lo, hi) = got.lift_ci.expect("lift ci");
        close(lo, f(c, "lift_lo"), &what);
        close(hi, f(c, "lift_hi"), &what);
        checked += 1;
    }
    for c in list(&r["welch"]) {
        let xs = |k: &str| list(&c[k]).iter().map(|v| v.as_f64().expect("x")).collect::<Vec<f64>>();
        let (a, b) = (xs("a"), xs("b"));
        let got = stats::welch(&stats::Summary::of(&a), &stats::Summary::of(&b), 0.05).expect("welch");
        let what = format!("welch n {} / {}", a.len(), b.len());
        close(got.t, f(c, "t"), &what);
        close(got.df, f(c, "df"), &what);
        close(got.p_value, f(c, "p_value"), &what);
        close(got.diff_ci.0, f(c, "diff_lo"), &what);
        close(got.diff_ci.1, f(c, "diff_hi"), &what);
        checked += 1;
    }
    for c in list(&r["power"]) {
        let got = stats::plan(f(c, "baseline"), f(c, "mde"), f(c, "alpha"), f(c, "power")).expect("plan");
        let what = format!("plan {c}");
        close(got.exact, f(c, "n_exact"), &what);
        assert_eq!(got.per_variant, c["n"].as_u64().expect("n"), "{what}");
        close(got.achieved_power, f(c, "power_at_n"), &what);
        checked += 1;
    }
    for c in list(&r["holm"]) {
        let p: Vec<f64> = list(&c["p"]).iter().map(|v| v.as_f64().expect("p")).collect();
        let want: Vec<f64> = list(&c["adjusted"]).iter().map(|v| v.as_f64().expect("p")).collect();
        for (g, w) in stats::holm(&p).iter().zip(&want) {
            close(*g, *w, &format!("holm {p:?}"));
        }
        checked += 1;
    }
    for c in list(&r["normal"]) {
        if let Some(q) = c["q"].as_f64() {
            close(stats::normal_ppf(q), f(c, "ppf"), &format!("ppf {q}"));
        } else {
            let x = f(c, "x");
            close(stats::normal_cdf(x), f(c, "cdf"), &format!("cdf {x}"));
            close(stats::normal_sf(x), f(c, "sf"), &format!("sf {x}"));
        }
        checked += 1;
    }
    for c in list(&r["chi2_sf"]) {
        let dof = c["dof"].as_u64().expect("dof") as u32;
        close(stats::chi2_sf(f(c, "x"), dof), f(c, "sf"), &format!("chi2 sf {c}"));
        checked += 1;
    }
    for c in list(&r["t_sf"]) {
        close(stats::t_sf(f(c, "x"), f(c, "df")), f(c, "sf"), &format!("t sf {c}"));
        close(stats::t_ppf(0.975, f(c, "df")), f(c, "ppf975"), &format!("t ppf {c}"));
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} reference cases");
}
