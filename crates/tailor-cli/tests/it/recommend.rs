//! `tailor recommend`, `tailor eval` and `tailor tune` on a small generated data set.

use std::fmt::Write as _;
use std::path::Path;

use crate::{stderr, stdout, tailor};

/// Two taste groups of 30 users over 40 items, 12 interactions each over time.
fn data(dir: &Path) -> std::path::PathBuf {
    let mut s = String::from("user\titem\ttimestamp\tweight\n");
    for u in 0..60u32 {
        let group = u % 2;
        for t in 0..12u32 {
            let item = group * 20 + (u * 7 + t * 3) % 20;
            let _ = writeln!(s, "u{u}\ti{item}\t{}\t1", 1000 + t * 10);
        }
    }
    let p = dir.join("data.tsv");
    fs_err::write(&p, s).expect("write");
    p
}

#[test]
fn batch_eval_and_tune() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("store");
    let input = data(dir.path());
    let i = input.to_str().expect("utf8");
    // Batch: one line per (user, rank), no train item recommended.
    let out = dir.path().join("recs.tsv");
    let o = tailor(
        &data_dir,
        &["recommend", "--train", i, "--model", "ease", "--k", "5", "--out", out.to_str().expect("utf8")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["users"], 60);
    assert!(report["train_seconds"].as_f64().is_some());
    let recs = fs_err::read_to_string(&out).expect("recs");
    let train = fs_err::read_to_string(&input).expect("train");
    assert_eq!(recs.lines().count(), 1 + 60 * 5);
    for line in recs.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert!(!train.contains(&format!("{}\t{}\t", f[0], f[1])), "recommended a train item: {line}");
        // Users keep to their taste group.
        let group = f[0][1..].parse::<u32>().expect("id") % 2;
        let item: u32 = f[1][1..].parse().expect("item");
        assert_eq!(item / 20, group, "{line}");
    }
    // A saved model answers like the trained one.
    let saved = dir.path().join("ease.json.gz");
    let again = dir.path().join("recs2.tsv");
    let o = tailor(
        &data_dir,
        &[
            "recommend",
            "--train",
            i,
            "--model",
            "ease",
            "--k",
            "5",
            "--out",
            out.to_str().expect("utf8"),
            "--save",
            saved.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tailor(
        &data_dir,
        &[
            "recommend",
            "--train",
            i,
            "--k",
            "5",
            "--out",
            again.to_str().expect("utf8"),
            "--load",
            saved.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs_err::read_to_string(&out).expect("a"), fs_err::read_to_string(&again).expect("b"));
    fs_err::write(&saved, b"not a model").expect("write");
    let o = tailor(
        &data_dir,
        &["recommend", "--train", i, "--out", again.to_str().expect("utf8"), "--load", saved.to_str().expect("utf8")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a tailor model file"), "{}", stderr(&o));

    // Content-based on item features, recommending only items nobody has touched yet: the
    // new item of each taste group goes to that group.
    let features = dir.path().join("items.tsv");
    let mut f = String::new();
    for item in 0..40u32 {
        let _ = writeln!(f, "i{item}\tgroup:{} word:w{item}", item / 20);
    }
    f.push_str("new0\tgroup:0 word:fresh\nnew1\tgroup:1 word:fresh\n");
    fs_err::write(&features, f).expect("write");
    let cold = dir.path().join("cold.tsv");
    let o = tailor(
        &data_dir,
        &[
            "recommend",
            "--train",
            i,
            "--model",
            "content",
            "--item-features",
            features.to_str().expect("utf8"),
            "--cold-items-only",
            "--k",
            "1",
            "--out",
            cold.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for line in fs_err::read_to_string(&cold).expect("cold").lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let group = f[0][1..].parse::<u32>().expect("id") % 2;
        assert_eq!(f[1], format!("new{group}"), "{line}");
    }
    let o =
        tailor(&data_dir, &["recommend", "--train", i, "--model", "content", "--out", cold.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2), "content needs features");

    // Eval: a table of models, JSON and a chart.
    let chart = dir.path().join("ndcg.svg");
    let json = dir.path().join("eval.json");
    let o = tailor(
        &data_dir,
        &[
            "eval",
            "--input",
            i,
            "--models",
            "popular,itemknn,als:factors=8;iterations=5,bpr:factors=8;epochs=20,ease:lambda=10",
            "--chart",
            chart.to_str().expect("utf8"),
            "--out",
            json.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("NDCG") && table.contains("lambda=10"), "{table}");
    let results: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&json).expect("json")).expect("json");
    let ndcg = |k: usize| results[k]["metrics"]["ndcg"].as_f64().expect("ndcg");
    assert_eq!(results.as_array().map(Vec::len), Some(5));
    assert!(ndcg(4) > ndcg(0), "EASE beats popularity on taste groups: {results}");
    assert_eq!(results[4]["metrics"]["train_leaks"], 0);
    assert!(fs_err::read_to_string(&chart).expect("chart").contains("NDCG@10 by model"));
    // Tune: seeded, so two runs agree.
    let run = || {
        let o = tailor(&data_dir, &["--json", "tune", "--input", i, "--model", "ease", "--budget", "3", "--seed", "4"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        (v["best"]["params"].clone(), v["trials"].as_array().map(Vec::len))
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.1, Some(3));
    // Other splits, AUC and a per-group breakdown (the taste groups as user groups).
    let groups = dir.path().join("groups.tsv");
    let g: String = (0..60u32).map(|u| format!("u{u}\tgroup{}\n", u % 2)).collect();
    fs_err::write(&groups, g).expect("write");
    for split in ["leave-last-out", "random", "global", "cold-item"] {
        let o = tailor(
            &data_dir,
            &[
                "--json",
                "eval",
                "--input",
                i,
                "--split",
                split,
                "--models",
                "popular,ease:lambda=10",
                "--groups",
                groups.to_str().expect("utf8"),
            ],
        );
        assert!(o.status.success(), "{split}: {}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(r[1]["groups"].as_array().map(Vec::len), Some(2), "{split}: {r}");
        if split != "cold-item" {
            let auc = |k: usize| r[k]["auc"].as_f64().unwrap_or_else(|| panic!("{split}: no AUC in {r}"));
            assert!(auc(1) > auc(0) && auc(1) > 0.5, "{split}: {r}");
        }
    }
    // Training curves of the iterative models; WARP and early stopping run.
    let curves = dir.path().join("curves.svg");
    let o = tailor(
        &data_dir,
        &[
            "--json",
            "eval",
            "--input",
            i,
            "--models",
            "als:factors=8;iterations=4,bpr:factors=8;epochs=30;patience=3,bpr:factors=8;epochs=5;loss=warp,ease",
            "--curves",
            curves.to_str().expect("utf8"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r[0]["curve"].as_array().map(Vec::len), Some(4), "{r}");
    assert_eq!(r[2]["curve"].as_array().map(Vec::len), Some(5), "{r}");
    assert!(r[3]["curve"].is_null(), "EASE is not iterative: {r}");
    assert!(fs_err::read_to_string(&curves).expect("svg").contains("NDCG@10 during training"));
    // The rating baseline reports RMSE (every rating here is 1: near zero error).
    let o = tailor(&data_dir, &["--json", "eval", "--input", i, "--models", "biases,popular"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(r[0]["rmse"].as_f64().is_some_and(|e| e < 0.05), "{r}");
    assert!(r[1]["rmse"].is_null(), "implicit models have no RMSE: {r}");
    let o = tailor(&data_dir, &["eval", "--input", i, "--models", "bpr:loss=hinge"]);
    assert!(stderr(&o).contains("loss=hinge: expected bpr or warp"), "{}", stderr(&o));
    let o = tailor(&data_dir, &["eval", "--input", i, "--split", "sideways"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected one of temporal, global, leave-last-out"), "{}", stderr(&o));
    // Mistakes are usage errors.
    let o = tailor(&data_dir, &["eval", "--input", i, "--models", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = tailor(&data_dir, &["eval", "--input", i, "--models", "als:factorz=3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("factorz: not a parameter of als"), "{}", stderr(&o));
}

/// Usage that depends on the time of day: every user opens "morning" apps in the morning and
/// "evening" apps in the evening. iTALS must beat the same model without context; bad input
/// names the file, line and field.
#[test]
fn eval_context_beats_the_model_without_context_where_context_matters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("store");
    let mut s = String::from("user,item,cnt,ts\n");
    for u in 0..80u32 {
        for j in 0..8u32 {
            // Each user has their own 8 morning apps out of 0..20 and 8 evening apps out of 20..40.
            let morning = (u * 3 + j * 5) % 20;
            let evening = 20 + (u * 7 + j * 3) % 20;
            let _ = writeln!(s, "u{u},a{morning},{},2026-01-0{}T08:00:00Z", 1 + j % 3, 1 + j % 5);
            let _ = writeln!(s, "u{u},a{evening},{},2026-01-0{}T20:00:00Z", 1 + j % 3, 1 + j % 5);
        }
    }
    let input = dir.path().join("usage.csv");
    fs_err::write(&input, &s).expect("write");
    let i = input.to_str().expect("utf8");
    let o = tailor(
        &data_dir,
        &[
            "--json",
            "eval-context",
            "--input",
            i,
            "--weight",
            "cnt",
            "--context",
            "daypart(ts)",
            "--params",
            "factors=8,regularization=1,alpha=5",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let ndcg = |name: &str| {
        r.as_array()
            .and_then(|a| a.iter().find(|m| m["model"] == name))
            .and_then(|m| m["ndcg"].as_f64())
            .unwrap_or_else(|| panic!("no {name} in {r}"))
    };
    assert!(ndcg("itals (context)") > ndcg("als (no context)") + 0.05, "{r}");

    s.push_str("u1,a1,many,2026-01-01T08:00:00Z\n");
    fs_err::write(&input, &s).expect("write");
    let o = tailor(&data_dir, &["eval-context", "--input", i, "--weight", "cnt", "--context", "daypart(ts)"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&format!("{i}:1282: field \"cnt\": \"many\" is not a number")), "{}", stderr(&o));
    let o = tailor(&data_dir, &["eval-context", "--input", i, "--context", "device"]);
    assert!(stderr(&o).contains("no column \"device\" (columns: user, item, cnt, ts)"), "{}", stderr(&o));
}
