//! MovieLens-100K user features: computed by tailor from the imported ratings, equal to the
//! features `scripts/golden_clustering.py` computes independently in Python, and clustered
//! like scikit-learn clusters them (k-means inertia, silhouette, DBSCAN, Ward).

use std::collections::HashMap;
use std::path::Path;

use tailor_core::User;
use tailor_segment::features::{ItemTable, Population};
use tailor_segment::scale::ZScore;
use tailor_store::{RedbStore, Store};

use crate::{floats, golden, labels, same_partition};

fn features() -> (Vec<String>, Vec<f64>, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ml-100k");
    assert!(dir.join("u.data").exists(), "{} is missing (the shared data sets)", dir.display());
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(tmp.path()).expect("store");
    tailor_ingest::presets::import_movielens(&dir, &store, 20).expect("imports");
    let mut items = Vec::new();
    store.for_each_item(&mut |_, s| items.push(s.value)).expect("items");
    let mut users: HashMap<String, User> = HashMap::new();
    store
        .for_each_user(&mut |_, s| {
            users.insert(s.value.id.0.clone(), s.value);
        })
        .expect("users");
    let mut pop = Population::new(ItemTable::new(&items));
    store
        .scan_events(Default::default(), &mut |_, e| {
            pop.push(&e);
            std::ops::ControlFlow::Continue(())
        })
        .expect("events");
    let t = pop.table(&users, None, 3);
    let g = golden();
    let names: Vec<String> = g["ml100k_users"]["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect();
    let cols: Vec<usize> = names.iter().map(|n| t.column(n).unwrap_or_else(|| panic!("no column {n}"))).collect();
    // Rows in the script's order (first appearance in u.data).
    let want_users: Vec<String> = g["ml100k_users"]["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    let row_of: HashMap<&str, usize> = t.users.iter().enumerate().map(|(i, u)| (u.as_str(), i)).collect();
    let x: Vec<f64> = want_users
        .iter()
        .flat_map(|u| {
            let r = row_of[u.as_str()];
            cols.iter().map(move |&c| (r, c))
        })
        .map(|(r, c)| t.row(r)[c])
        .collect();
    (names, x, cols.len())
}

#[test]
#[ignore = "slow: imports MovieLens-100K from ../shared/data (run with --ignored; CI does)"]
fn ml100k_user_features_and_clusters_equal_the_reference() {
    let (names, raw, d) = features();
    let g = golden();
    let case = &g["ml100k_users"];
    let n = raw.len() / d;
    assert_eq!(n, case["n"].as_u64().expect("n") as usize);
    // The features themselves.
    let stats = &case["feature_stats"];
    for (j, name) in names.iter().enumerate() {
        let col: Vec<f64> = raw.chunks_exact(d).map(|r| r[j]).collect();
        let mean = col.iter().sum::<f64>() / n as f64;
        let std = (col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt();
        let min = col.iter().copied().fold(f64::INFINITY, f64::min);
        let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (what, got, want) in [
            ("mean", mean, stats["mean"][j].as_f64().expect("mean")),
            ("std", std, stats["std"][j].as_f64().expect("std")),
            ("min", min, stats["min"][j].as_f64().expect("min")),
            ("max", max, stats["max"][j].as_f64().expect("max")),
        ] {
            assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{name} {what}: {got} vs {want}");
        }
    }
    for (i, want) in floats(&stats["sum_first_10_rows"]).iter().enumerate() {
        let got: f64 = raw[i * d..(i + 1) * d].iter().sum();
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "row {i}: {got} vs {want}");
    }
    // Standardised like StandardScaler, then the clusterings.
    let mut x = raw.clone();
    ZScore::fit(&x, d).expect("fits").transform(&mut x);
    for run in case["kmeans"].as_array().expect("kmeans") {
        let k = run["k"].as_u64().expect("k") as usize;
        let l = labels(&run["labels"]);
        let want = run["silhouette"].as_f64().expect("silhouette");
        let got = tailor_segment::silhouette::score(&x, d, &l).expect("silhouette");
        assert!((got - want).abs() <= 1e-9, "k={k}: silhouette {got} vs {want}");
        let theirs = run["inertia"].as_f64().expect("inertia");
        let ours = tailor_segment::kmeans::KMeansParams { k, n_init: 10, seed: 0, ..Default::default() }
            .fit(&x, d)
            .expect("fits")
            .inertia;
        assert!(ours <= theirs * 1.001, "k={k}: inertia {ours} vs scikit-learn's {theirs}");
    }
    for run in case["dbscan"].as_array().expect("dbscan") {
        let eps = run["eps"].as_f64().expect("eps");
        let min_samples = run["min_samples"].as_u64().expect("min_samples") as usize;
        let want: Vec<i64> = run["labels"].as_array().expect("labels").iter().map(|v| v.as_i64().expect("l")).collect();
        let got = tailor_segment::dbscan::DbscanParams { eps, min_samples }.fit(&x, d).expect("fits");
        let got: Vec<usize> = got.labels.iter().map(|l| l.map_or(usize::MAX, |c| c)).collect();
        let want: Vec<usize> = want.iter().map(|&w| if w < 0 { usize::MAX } else { w as usize }).collect();
        let noise = |v: &[usize]| v.iter().map(|l| *l == usize::MAX).collect::<Vec<_>>();
        assert_eq!(noise(&got), noise(&want), "eps={eps}: noise differs");
        assert!(same_partition(&got, &want), "eps={eps}: DBSCAN labels differ from scikit-learn's");
    }
    let merges = tailor_segment::ward::linkage(&x, d).expect("linkage");
    for run in case["ward"].as_array().expect("ward") {
        let k = run["k"].as_u64().expect("k") as usize;
        let want = labels(&run["labels"]);
        let got = tailor_segment::ward::cut(&merges, n, k);
        assert!(same_partition(&got, &want), "k={k}: Ward labels differ from scikit-learn's");
    }
}
