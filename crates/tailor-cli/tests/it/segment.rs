//! `tailor segment`: the demo's hidden archetypes are recovered, rule segments hold exactly
//! the users their rules describe, errors point at the rule, runs are stored with history.

use std::collections::HashMap;
use std::path::Path;

use crate::{json, stderr, stdout, tailor};

fn members(data: &Path, seg: &str, segmentation: &str) -> Vec<String> {
    let v = json(data, &["segment", "users", seg, "-s", segmentation]);
    v.as_array().expect("array").iter().map(|u| u.as_str().expect("id").to_owned()).collect()
}

/// Adjusted Rand index (Hubert & Arabie), as `sklearn.metrics.adjusted_rand_score`.
fn ari(a: &[usize], b: &[usize]) -> f64 {
    let c2 = |n: f64| n * (n - 1.0) / 2.0;
    let mut cells: HashMap<(usize, usize), f64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<usize, f64>, HashMap<usize, f64>) = (HashMap::new(), HashMap::new());
    for (x, y) in a.iter().zip(b) {
        *cells.entry((*x, *y)).or_default() += 1.0;
        *ra.entry(*x).or_default() += 1.0;
        *rb.entry(*y).or_default() += 1.0;
    }
    let index: f64 = cells.values().map(|n| c2(*n)).sum();
    let (sa, sb): (f64, f64) = (ra.values().map(|n| c2(*n)).sum(), rb.values().map(|n| c2(*n)).sum());
    let expected = sa * sb / c2(a.len() as f64);
    (index - expected) / ((sa + sb) / 2.0 - expected)
}

#[test]
fn adjusted_rand_index_matches_its_definition() {
    // sklearn.metrics.adjusted_rand_score([0, 0, 1, 1, 2, 2], [0, 0, 1, 2, 2, 2]) = 0.4444...
    assert!((ari(&[0, 0, 1, 1, 2, 2], &[0, 0, 1, 2, 2, 2]) - 4.0 / 9.0).abs() < 1e-12);
    assert!((ari(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
}

#[test]
fn demo_segments_recover_the_hidden_archetypes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let truth = dir.path().join("truth.csv");
    let t = truth.to_str().expect("utf8");
    let o = tailor(&data, &["demo", "--no-serve", "--users", "2000", "--items", "800", "--truth-out", t]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = json(&data, &["segment", "run", "--k", "5"]);
    let rec = &run["record"];
    let names: Vec<String> =
        rec["names"].as_array().expect("names").iter().map(|n| n.as_str().expect("name").to_owned()).collect();
    assert_eq!(names.len(), 5);
    let mut label: HashMap<String, usize> = HashMap::new();
    for (k, n) in names.iter().enumerate() {
        for u in members(&data, n, "kmeans") {
            assert!(label.insert(u, k).is_none(), "a k-means user is in one segment");
        }
    }
    assert_eq!(label.len() as u64, rec["users"].as_u64().expect("users"));
    let text = fs_err::read_to_string(&truth).expect("truth");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut kinds: Vec<String> = Vec::new();
    for line in text.lines().skip(1) {
        let (u, a) = line.split_once(',').expect("user,archetype");
        if let Some(l) = label.get(u) {
            ours.push(*l);
            let k = kinds.iter().position(|x| x == a).unwrap_or_else(|| {
                kinds.push(a.to_owned());
                kinds.len() - 1
            });
            theirs.push(k);
        }
    }
    let score = ari(&ours, &theirs);
    eprintln!("adjusted Rand index of the 5 k-means segments vs the hidden archetypes: {score:.3}");
    assert!(score >= 0.6, "ARI {score}");
    // Every segment is explained and summarised; names are readable words.
    assert!(rec["tree_accuracy"].as_f64().expect("accuracy") > 0.6);
    assert_eq!(rec["summaries"].as_array().expect("summaries").len(), 5);
    assert!(names.iter().all(|n| n.contains(" · ") || n == "average"), "{names:?}");
    // The stored 2-D map (for the dashboard): every user (at most 2,000 are kept), labelled
    // with their segment, on two components explaining a share of the variance each.
    let map = &rec["map"];
    let points = map["points"].as_array().expect("map points");
    let users = rec["users"].as_u64().expect("users") as usize;
    assert_eq!(points.len(), users.min(2000));
    let explained: Vec<f64> =
        map["explained"].as_array().expect("explained").iter().filter_map(serde_json::Value::as_f64).collect();
    assert!(
        explained.len() == 2 && explained[0] >= explained[1] && explained.iter().sum::<f64>() <= 1.0,
        "{explained:?}"
    );
    if users <= 2000 {
        for (k, seg) in rec["summaries"].as_array().expect("summaries").iter().enumerate() {
            let on_map = points.iter().filter(|p| p[2].as_i64() == Some(k as i64)).count() as u64;
            assert_eq!(Some(on_map), seg["size"].as_u64(), "segment {k}");
        }
    }

    // Rename, auto k with its chart, map, history.
    let o = tailor(&data, &["segment", "run", "--k", "auto", "--names", "0=First"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("First") && out.contains("k =  2: silhouette") && out.contains("k = 10"), "{out}");
    let map = dir.path().join("map.svg");
    let written = json(&data, &["segment", "plot", "--out", map.to_str().expect("utf8")]);
    assert_eq!(written.as_array().map(Vec::len), Some(2), "map and silhouette-by-k chart");
    let svg = fs_err::read_to_string(&map).expect("map");
    assert!(svg.contains("principal component 1 (") && svg.contains("First ("), "axis titles and legend");
    let chart = fs_err::read_to_string(dir.path().join("map-silhouette-by-k.svg")).expect("k chart");
    assert!(chart.contains("chosen k ="));
    let moves = json(&data, &["segment", "history"]);
    let moved: u64 = moves.as_array().expect("moves").iter().map(|m| m["users"].as_u64().expect("n")).sum();
    assert!(moved > 0, "the second run moved users: {moves}");
    let shown = stdout(&tailor(&data, &["segment", "show", "First"]));
    assert!(shown.contains("users ") && shown.contains("main device:"), "{shown}");

    // Rule segments describe the shoppers they name: each rule's members are mostly of the
    // archetype whose behaviour the rule spells out.
    let archetype: HashMap<String, String> =
        text.lines().skip(1).filter_map(|l| l.split_once(',')).map(|(u, a)| (u.to_owned(), a.to_owned())).collect();
    let rules = dir.path().join("demo-rules.toml");
    fs_err::write(
        &rules,
        r#"[[segment]]
name = "Bargain hunters"
when = "discount_share >= 0.6 and price_percentile < 0.4"

[[segment]]
name = "Trend followers"
when = "new_item_share >= p75(new_item_share) and age < 35"

[[segment]]
name = "Luxury"
when = "price_percentile >= 0.7 and aov >= p75(aov)"
"#,
    )
    .expect("write");
    let _ = json(&data, &["segment", "run", "--method", "rules", "--rules", rules.to_str().expect("utf8")]);
    for (seg, want) in
        [("Bargain hunters", "price_sensitive"), ("Trend followers", "trend_conscious"), ("Luxury", "luxury_seeker")]
    {
        let users = members(&data, seg, "rules");
        let hits = users.iter().filter(|u| archetype.get(*u).is_some_and(|a| a == want)).count();
        let precision = hits as f64 / users.len().max(1) as f64;
        eprintln!("rule segment {seg:?}: {} users, {:.1}% {want}", users.len(), precision * 100.0);
        assert!(users.len() >= 50 && precision >= 0.85, "{seg}: {hits} of {} are {want}", users.len());
    }

    // RFM segments of the same users: Champions spent more than Hibernating.
    let rfm = json(&data, &["segment", "run", "--method", "rfm"]);
    let sums = rfm["record"]["summaries"].as_array().expect("summaries");
    let monetary =
        |n: &str| sums.iter().find(|s| s["name"] == n).and_then(|s| s["monetary"].as_f64()).expect("segment present");
    assert!(monetary("Champions") > 2.0 * monetary("Hibernating"));
    assert_eq!(sums.len(), 11);
}

const EVENTS: &str = "user,item,kind,ts,price,quantity,order,device
a,i1,purchase,2024-01-10 10:00,100,1,o1,mobile
a,i2,purchase,2024-01-20 10:00,50,2,o2,mobile
a,i1,view,2024-01-20 09:50,,1,,mobile
b,i2,purchase,2024-01-05 12:00,50,1,o3,desktop
b,i2,view,2024-01-29 20:00,,1,,desktop
c,i1,view,2024-01-30 21:00,,1,,mobile
c,i2,view,2024-01-30 21:10,,1,,mobile
d,i1,purchase,2024-01-31 08:00,100,5,o4,tablet
e,i1,purchase,2024-02-10 08:00,1000,1,o5,mobile
";

const USERS: &str = "id,age,urbanicity
a,30,urban
b,45,rural
c,22,urban
d,60,urban
";

fn small_shop(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let ev = dir.join("events.csv");
    let us = dir.join("users.csv");
    fs_err::write(&ev, EVENTS).expect("write");
    fs_err::write(&us, USERS).expect("write");
    let o = tailor(
        &data,
        &[
            "import",
            "events",
            ev.to_str().expect("utf8"),
            "--map",
            "unit_price=price,order_id=order,context.device=device",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tailor(&data, &["import", "users", us.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    data
}

#[test]
fn rule_segments_hold_exactly_the_users_their_rules_describe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_shop(dir.path());
    let rules = dir.path().join("segments.toml");
    fs_err::write(
        &rules,
        r#"# As of 2024-02-01: a spent 200, b 50, d 500; e's purchase is later and does not count.
[[segment]]
name = "Big spenders"
when = "monetary >= p75(monetary) and frequency >= 1"

[[segment]]
name = "Urban mobile"
when = "urbanicity == 'urban' and main_device in ['mobile', 'app']"
priority = 1

[[segment]]
name = "Browsers"
when = "frequency == 0 and views_per_session >= 2"

[[segment]]
name = "Not urban"
when = "not (urbanicity == 'urban')"
"#,
    )
    .expect("write");
    let r = rules.to_str().expect("utf8");
    let run = json(&data, &["segment", "run", "--method", "rules", "--rules", r, "--as-of", "2024-02-01"]);
    // Percentile over the 4 users seen before the as-of date: monetary [200, 50, 0, 500],
    // p75 = 275 (numpy's linear interpolation) → only d.
    assert_eq!(members(&data, "Big spenders", "rules"), vec!["d"]);
    assert_eq!(members(&data, "Urban mobile", "rules"), vec!["a", "c"]);
    assert_eq!(members(&data, "Browsers", "rules"), vec!["c"]);
    // A missing attribute is not 'urban': e has no user record... and no events before the date.
    assert_eq!(members(&data, "Not urban", "rules"), vec!["b"]);
    assert_eq!(run["record"]["users"].as_u64(), Some(4), "e only bought after the as-of date");
    let names = run["record"]["names"].as_array().expect("names");
    assert_eq!(names[0], "Urban mobile", "priority 1 comes first");
    // The same run assigns a user later exactly as the run did.
    let a = json(&data, &["segment", "assign", "a", "-s", "rules", "--as-of", "2024-02-01", "--apply"]);
    assert_eq!(a["segments"], serde_json::json!(["Urban mobile"]));
    assert_eq!(a["changed"], false);
    // With e's later purchase counted, e is now a (mobile, unknown-urbanicity) big spender.
    let e = json(&data, &["segment", "assign", "e", "-s", "rules", "--apply"]);
    assert_eq!(e["segments"], serde_json::json!(["Big spenders", "Not urban"]));
    assert_eq!(e["changed"], true);
    let h = json(&data, &["segment", "history", "-s", "rules", "--user", "e"]);
    assert_eq!(h[0]["to"], serde_json::json!(["Big spenders", "Not urban"]));
    assert!(h[0].get("run").is_none(), "a real-time change has no run");

    // Errors name the file, line and column, and draw a caret under the mistake.
    let bad = dir.path().join("bad.toml");
    fs_err::write(&bad, "[[segment]]\nname = \"x\"\nwhen = \"monetary >= p80(monetry) and recency_days <= 30\"\n")
        .expect("write");
    let o = tailor(&data, &["segment", "run", "--method", "rules", "--rules", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:3:21: segment \"x\": unknown feature \"monetry\" (did you mean \"monetary\"?)\n\
             monetary >= p80(monetry) and recency_days <= 30\n            ^^^^^^^^^^^^ unknown feature",
            bad.display()
        )),
        "{err}"
    );
    fs_err::write(&bad, "[[segment]]\nname = \"x\"\nwhen = \"monetary >\"\n").expect("write");
    let err = stderr(&tailor(&data, &["segment", "run", "--method", "rules", "--rules", bad.to_str().expect("utf8")]));
    assert!(err.contains(":3:19: segment \"x\": expected a value, found the end"), "{err}");
    fs_err::write(&bad, "[[segment]]\nname = \"x\"\nwehn = \"monetary > 1\"\n").expect("write");
    let err = stderr(&tailor(&data, &["segment", "run", "--method", "rules", "--rules", bad.to_str().expect("utf8")]));
    assert!(err.contains(":3:1: unknown field `wehn`"), "{err}");
    // A failed run stores nothing: the earlier run is still the latest.
    let shown = json(&data, &["segment", "show", "-s", "rules"]);
    assert_eq!(shown["id"], run["run"]);
}

#[test]
fn unknown_names_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_shop(dir.path());
    let o = tailor(&data, &["segment", "show"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no segmentation is stored yet"), "{}", stderr(&o));
    let o = tailor(&data, &["segment", "run", "--features", "monetary,monetry", "--k", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown feature \"monetry\""), "{}", stderr(&o));
    let o = tailor(&data, &["segment", "run", "--k", "2", "--features", "monetary:log1p,frequency,urbanicity"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tailor(&data, &["segment", "users", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no segment \"nope\""), "{}", stderr(&o));
}

#[test]
fn if_due_reruns_only_when_the_policy_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_shop(dir.path());
    let first = json(&data, &["segment", "run", "--k", "2", "--if-due"]);
    assert!(first["run"].as_u64().is_some(), "no run yet: runs");
    let again = json(&data, &["segment", "run", "--k", "2", "--if-due"]);
    assert_eq!(again["due"], false, "{again}");
    assert_eq!(again["run"], first["run"]);
    // Older than the age limit (a few milliseconds here): due.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let due =
        json(&data, &["--conf", "segment.recluster_every_hours=0.000001", "segment", "run", "--k", "2", "--if-due"]);
    assert!(due["run"].as_u64() > first["run"].as_u64(), "{due}");
    let o = tailor(&data, &["--conf", "segment.learning_rate=2", "segment", "show"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("segment.learning_rate = 2 (--conf segment.learning_rate): must be in [0, 1]"),
        "{}",
        stderr(&o)
    );
}

// Regression: issue #18 (`segment assign` used today as --as-of while the stored run used
// its data's end, so on a historical shop it contradicted the run and --apply wrote it).
#[test]
fn assign_without_as_of_agrees_with_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_shop(dir.path());
    let rules = dir.path().join("recency.toml");
    fs_err::write(
        &rules,
        "[[segment]]\nname = \"Recent\"\nwhen = \"recency_days <= 20\"\n\n\
         [[segment]]\nname = \"Lapsed\"\nwhen = \"recency_days > 20\"\n",
    )
    .expect("write");
    json(&data, &["segment", "run", "--method", "rules", "--rules", rules.to_str().expect("utf8")]);
    let (recent, lapsed) = (members(&data, "Recent", "rules"), members(&data, "Lapsed", "rules"));
    assert!(!recent.is_empty() && !lapsed.is_empty(), "{recent:?} {lapsed:?}");
    for (segment, users) in [("Recent", &recent), ("Lapsed", &lapsed)] {
        for u in users {
            let a = json(&data, &["segment", "assign", u, "-s", "rules", "--apply"]);
            assert_eq!(a["segments"], serde_json::json!([segment]), "{u}: {a}");
            assert_eq!(a["changed"], false, "{u}");
        }
    }
}
