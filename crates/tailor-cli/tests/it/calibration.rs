//! Calibrated re-ranking (Steck 2018) on MovieLens-100K with its genres, through `tailor
//! eval --genres`: miscalibration falls with λ at every step, and λ = 0 is the model's own
//! list.

use std::path::Path;

use crate::{json, stderr, tailor};

#[test]
#[ignore = "slow: evaluates on MovieLens-100K from ../shared/data (run with --ignored; CI does)"]
fn calibration_lowers_miscalibration_monotonically_on_ml100k() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ml-100k");
    let (Ok(data), Ok(items)) = (fs_err::read_to_string(base.join("u.data")), fs_err::read(base.join("u.item"))) else {
        eprintln!("skipped: ../shared/data/ml-100k is missing");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tsv = String::from("user\titem\ttimestamp\tweight\n");
    for l in data.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        tsv.push_str(&format!("{}\t{}\t{}\t{}\n", f[0], f[1], f[3], f[2]));
    }
    let input = dir.path().join("ml.tsv");
    fs_err::write(&input, tsv).expect("tsv");
    // u.item is latin-1: id|title|date|video date|url|19 genre flags.
    let text: String = items.iter().map(|&b| char::from(b)).collect();
    let mut genres = String::new();
    for l in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = l.split('|').collect();
        let g: Vec<String> = (0..19).filter(|k| f.get(5 + k) == Some(&"1")).map(|k| format!("g{k}")).collect();
        genres.push_str(&format!("{}\t{}\n", f[0], g.join("|")));
    }
    let genre_file = dir.path().join("genres.tsv");
    fs_err::write(&genre_file, genres).expect("genres");
    let (i, g) = (input.to_str().expect("utf8"), genre_file.to_str().expect("utf8"));
    let r = json(
        dir.path(),
        &["eval", "--input", i, "--models", "als", "--genres", g, "--calibration", "0,0.25,0.5,0.75,0.99"],
    );
    let als = &r[0];
    let sweep = als["calibration"].as_array().expect("calibration");
    assert_eq!(sweep.len(), 5);
    let mis: Vec<f64> = sweep.iter().map(|c| c["miscalibration"].as_f64().expect("number")).collect();
    eprintln!("miscalibration by λ: {mis:?}");
    assert!(mis.windows(2).all(|w| w[1] < w[0]), "not monotone: {mis:?}");
    assert!(mis[4] < 0.25 * mis[0], "{mis:?}");
    assert_eq!(sweep[0]["metrics"]["ndcg"], als["metrics"]["ndcg"], "λ = 0 is the model's list");
    let ndcg = |k: usize| sweep[k]["metrics"]["ndcg"].as_f64().expect("ndcg");
    assert!(ndcg(1) > 0.95 * ndcg(0), "a little calibration costs little accuracy");

    // The fairness report on the same split, by gender (u.user: id|age|gender|...).
    let users = fs_err::read_to_string(base.join("u.user")).expect("u.user");
    let groups: String = users
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() > 2).then(|| format!("{}\t{}\n", f[0], f[2]))
        })
        .collect();
    let group_file = dir.path().join("gender.tsv");
    fs_err::write(&group_file, groups).expect("groups");
    let r = json(
        dir.path(),
        &[
            "eval",
            "--input",
            i,
            "--models",
            "popular",
            "--report",
            "fairness",
            "--groups",
            group_file.to_str().expect("utf8"),
        ],
    );
    let f = &r[0]["fairness"];
    let names: Vec<&str> = f["groups"].as_array().expect("groups").iter().filter_map(|g| g["group"].as_str()).collect();
    assert_eq!(names, ["F", "M"]);
    // Popularity recommends the head: no list is mostly long tail.
    assert!(f["aplt"].as_f64().is_some_and(|a| a < 0.5), "{f}");
    assert!(f["popularity_bands"][0]["statistical_parity"].as_f64().is_some_and(|p| p > 0.0), "{f}");

    let o = tailor(dir.path(), &["eval", "--input", i, "--models", "als", "--genres", g, "--calibration", "1.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--calibration 1.5"), "{}", stderr(&o));
}
