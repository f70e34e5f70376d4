//! RFM on the UCI Online Retail customers as of 2011-09-01 against what they spent in the
//! following three months.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;

use tailor_core::{EventKind, Timestamp};
use tailor_segment::rfm::{Line, RfmSegment, compute};
use tailor_store::{RedbStore, Store};

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

#[test]
#[ignore = "slow: imports 541,909 rows"]
fn rfm_as_of_september_ranks_future_spend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("store");
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/online-retail/online_retail.csv.gz");
    let preset = tailor_ingest::presets::online_retail().expect("preset");
    tailor_ingest::import::import_file(&file, &preset, &Default::default(), &store, &mut |_| {}).expect("import");
    let users = store.user_names().expect("users");
    let index: HashMap<&str, u32> = users.iter().enumerate().map(|(k, u)| (u.as_str(), k as u32)).collect();
    let mut lines = Vec::new();
    store
        .scan_events(Default::default(), &mut |_, e| {
            if let (Some(u), EventKind::Purchase | EventKind::Return) = (&e.user, e.kind) {
                let order = e.order_id.as_deref().map(order_key);
                lines.push(Line {
                    user: index[u.as_str()],
                    ts: e.ts.0,
                    is_return: e.kind == EventKind::Return,
                    order,
                    amount: e.amount(),
                });
            }
            ControlFlow::Continue(())
        })
        .expect("scan");
    let cutoff = Timestamp::parse_auto("2011-09-01").expect("date").0;
    let end = Timestamp::parse_auto("2011-12-01").expect("date").0;
    let rfm = compute(&lines, cutoff);
    let mut future: HashMap<u32, f64> = HashMap::new();
    for l in lines.iter().filter(|l| l.ts >= cutoff && l.ts < end) {
        *future.entry(l.user).or_default() += if l.is_return { -l.amount } else { l.amount };
    }
    let score: Vec<f64> = rfm.iter().map(|c| f64::from(c.r + c.f + c.m)).collect();
    let spend: Vec<f64> = rfm.iter().map(|c| future.get(&c.user).copied().unwrap_or(0.0)).collect();
    let rho = spearman(&score, &spend);
    let mean_spend = |s: RfmSegment| {
        let v: Vec<f64> = rfm.iter().zip(&spend).filter(|(c, _)| c.segment == s).map(|(_, x)| *x).collect();
        (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
    };
    let (champ, n_champ) = mean_spend(RfmSegment::Champions);
    let (hib, n_hib) = mean_spend(RfmSegment::Hibernating);
    println!("customers scored: {}, Spearman(R+F+M, spend in the next 3 months) = {rho:.3}", rfm.len());
    println!("Champions: {n_champ} customers, mean future spend {champ:.2}; Hibernating: {n_hib}, {hib:.2}");
    assert!(rfm.len() > 3000, "{}", rfm.len());
    assert!(rho > 0.4, "Spearman {rho}");
    assert!(champ > 3.0 * hib, "Champions {champ} vs Hibernating {hib}");
}

fn order_key(o: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.hash(&mut h);
    h.finish()
}
