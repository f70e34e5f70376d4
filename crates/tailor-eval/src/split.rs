//! The temporal split of `split.py`: repeated (user, item) pairs collapsed (earliest
//! timestamp, summed weight), rows with an empty id or a weight <= 0 dropped; per user, rows
//! sorted by (timestamp, item id as a string); a user with `n >= min_user` rows puts the last
//! `max(1, ceil(frac · n))` in test (the ceiling computed exactly on the decimal fraction).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One interaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// User id.
    pub user: String,
    /// Item id.
    pub item: String,
    /// Timestamp (seconds).
    pub ts: f64,
    /// Weight (the rating for ml-100k).
    pub weight: f64,
}

/// The test fraction as an exact decimal: `frac = num / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    num: u64,
    den: u64,
}

impl Fraction {
    /// Parses a decimal like `0.2`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 12 || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let den = 10u64.pow(frac.len() as u32);
        let num = format!("{int}{frac}").parse().ok()?;
        (num <= den).then_some(Self { num, den })
    }

    /// The fraction as a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// `ceil(self · n)`.
    pub fn ceil_times(self, n: usize) -> usize {
        (u128::from(self.num) * n as u128).div_ceil(u128::from(self.den)) as usize
    }
}

/// MovieLens-100K's `u.data` (user, item, rating, timestamp; tab-separated) as rows whose
/// weight is the rating, as `split.py --format ml100k` reads it. The error names the file
/// and line.
pub fn read_ml100k(path: &std::path::Path) -> Result<Vec<Row>, String> {
    let text = fs_err::read_to_string(path).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
        let f: Vec<&str> = line.split('\t').collect();
        let [user, item, rating, ts] = f[..] else { return Err(bad("expected user, item, rating, timestamp")) };
        rows.push(Row {
            user: user.into(),
            item: item.into(),
            ts: ts.parse().map_err(|_| bad("timestamp is not a number"))?,
            weight: rating.parse().map_err(|_| bad("rating is not a number"))?,
        });
    }
    Ok(rows)
}

/// Merges repeated pairs and drops invalid rows, as `split.py`'s `collapse`.
pub fn collapse(rows: impl IntoIterator<Item = Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let mut at: HashMap<(String, String), usize> = HashMap::new();
    for r in rows {
        if r.user.is_empty() || r.item.is_empty() || r.weight.is_nan() || r.weight <= 0.0 {
            continue;
        }
        match at.get(&(r.user.clone(), r.item.clone())) {
            Some(&p) => {
                let o = &mut out[p];
                if r.ts < o.ts {
                    o.ts = r.ts;
                }
                o.weight += r.weight;
            }
            None => {
                at.insert((r.user.clone(), r.item.clone()), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Splits collapsed rows into (train, test), both sorted by user id, then (timestamp, item).
pub fn temporal(mut rows: Vec<Row>, frac: Fraction, min_user: usize) -> (Vec<Row>, Vec<Row>) {
    rows.sort_by(|a, b| a.user.cmp(&b.user).then(a.ts.total_cmp(&b.ts)).then(a.item.cmp(&b.item)));
    let (mut train, mut test) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        while end < rows.len() && rows[end].user == rows[start].user {
            end += 1;
        }
        let n = end - start;
        let n_test = if n >= min_user { frac.ceil_times(n).max(1) } else { 0 };
        for (k, r) in rows[start..end].iter().enumerate() {
            if k >= n - n_test { test.push(r.clone()) } else { train.push(r.clone()) }
        }
        start = end;
    }
    (train, test)
}

/// How test interactions are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Per user, the last `frac` of their rows (split.py's protocol).
    Temporal,
    /// Everything after one time cut-off (the `1 − frac` quantile of all timestamps) for
    /// users who also have rows before it: what a model trained "as of" a date would face.
    Global,
    /// Per user (at least `min_user` rows), the last row only.
    LeaveLastOut,
    /// Per user, a seeded random `frac` of their rows.
    Random,
    /// A seeded random `frac` of the users, all their rows in test (they are unknown to the
    /// model: cold-start users).
    ColdUser,
    /// A seeded random `frac` of the items, all their rows in test (new items).
    ColdItem,
}

impl Strategy {
    /// Every strategy with its command-line name.
    pub const ALL: [(&'static str, Strategy); 6] = [
        ("temporal", Self::Temporal),
        ("global", Self::Global),
        ("leave-last-out", Self::LeaveLastOut),
        ("random", Self::Random),
        ("cold-user", Self::ColdUser),
        ("cold-item", Self::ColdItem),
    ];

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }
}

/// Splits collapsed rows with `strategy`; results are sorted like [`temporal`]'s. `seed`
/// drives the random strategies (a hash of the id, so the split does not depend on row order).
pub fn split(rows: Vec<Row>, strategy: Strategy, frac: Fraction, min_user: usize, seed: u64) -> (Vec<Row>, Vec<Row>) {
    let chosen = |id: &str| {
        // Deterministic per id and seed: the first 53 bits of xxh3 as a uniform in [0, 1).
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed);
        ((h >> 11) as f64 / (1u64 << 53) as f64) < frac.as_f64()
    };
    match strategy {
        Strategy::Temporal => temporal(rows, frac, min_user),
        Strategy::LeaveLastOut => {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user(rows) {
                let n = group.len();
                for (k, r) in group.into_iter().enumerate() {
                    if n >= min_user && k == n - 1 { test.push(r) } else { train.push(r) }
                }
            }
            (train, test)
        }
        Strategy::Random => {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user(rows) {
                let n = group.len();
                let n_test = if n >= min_user { frac.ceil_times(n).max(1) } else { 0 };
                // Seeded order by hash of (user, item); the first n_test go to test.
                let mut keyed: Vec<(u64, Row)> = group
                    .into_iter()
                    .map(|r| {
                        let key = format!("{}\u{1f}{}", r.user, r.item);
                        (xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), seed), r)
                    })
                    .collect();
                keyed.sort_by_key(|(h, _)| *h);
                let (mut a, mut b): (Vec<Row>, Vec<Row>) = (Vec::new(), Vec::new());
                for (k, (_, r)) in keyed.into_iter().enumerate() {
                    if k < n_test { b.push(r) } else { a.push(r) }
                }
                let order = |v: &mut Vec<Row>| v.sort_by(|x, y| x.ts.total_cmp(&y.ts).then(x.item.cmp(&y.item)));
                order(&mut a);
                order(&mut b);
                train.extend(a);
                test.extend(b);
            }
            (train, test)
        }
        Strategy::Global => {
            let mut ts: Vec<f64> = rows.iter().map(|r| r.ts).collect();
            ts.sort_by(f64::total_cmp);
            let Some(&cut) = ts.get(((1.0 - frac.as_f64()) * ts.len() as f64) as usize) else {
                return (rows, Vec::new());
            };
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user(rows) {
                let has_past = group.iter().any(|r| r.ts < cut);
                for r in group {
                    if r.ts >= cut && has_past {
                        test.push(r)
                    } else if r.ts < cut {
                        train.push(r)
                    }
                }
            }
            (train, test)
        }
        Strategy::ColdUser => {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user(rows) {
                let cold = group.first().is_some_and(|r| chosen(&r.user));
                if cold { test.extend(group) } else { train.extend(group) }
            }
            (train, test)
        }
        Strategy::ColdItem => {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for group in by_user(rows) {
                for r in group {
                    if chosen(&r.item) { test.push(r) } else { train.push(r) }
                }
            }
            (train, test)
        }
    }
}

/// Rows grouped by user (sorted by user, then time and item).
fn by_user(mut rows: Vec<Row>) -> Vec<Vec<Row>> {
    rows.sort_by(|a, b| a.user.cmp(&b.user).then(a.ts.total_cmp(&b.ts)).then(a.item.cmp(&b.item)));
    let mut out: Vec<Vec<Row>> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(g) if g[0].user == r.user => g.push(r),
            _ => out.push(vec![r]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(u: &str, i: &str, ts: f64) -> Row {
        Row { user: u.into(), item: i.into(), ts, weight: 1.0 }
    }

    #[test]
    fn exact_ceiling_and_order() {
        let f = Fraction::parse("0.2").expect("parses");
        assert_eq!((f.ceil_times(15), f.ceil_times(16), f.ceil_times(5)), (3, 4, 1));
        assert!(Fraction::parse("1.5").is_none() && Fraction::parse("x").is_none());
        // Items compare as strings: "10" < "9" at equal timestamps.
        let rows =
            vec![row("a", "9", 1.0), row("a", "10", 1.0), row("a", "1", 0.0), row("a", "2", 5.0), row("a", "3", 4.0)];
        let (train, test) = temporal(collapse(rows), f, 5);
        let ids = |v: &[Row]| v.iter().map(|r| r.item.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&train), vec!["1", "10", "9", "3"]);
        assert_eq!(ids(&test), vec!["2"]);
        let short = vec![row("b", "1", 0.0), row("b", "2", 1.0)];
        assert_eq!(temporal(short, f, 5).1.len(), 0, "fewer than 5 rows: all train");
    }

    #[test]
    fn collapse_keeps_the_earliest_time_and_sums() {
        let mut r = vec![row("a", "x", 5.0), row("a", "x", 3.0), row("a", "", 1.0)];
        r[1].weight = 2.0;
        r.push(Row { weight: -1.0, ..row("a", "y", 1.0) });
        let c = collapse(r);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].ts, c[0].weight), (3.0, 3.0));
    }

    fn rows() -> Vec<Row> {
        let mut v = Vec::new();
        for u in 0..40 {
            for i in 0..10 {
                v.push(row(&format!("u{u}"), &format!("i{i}"), f64::from(i * 1000 + u)));
            }
        }
        v
    }

    #[test]
    fn every_strategy_partitions_the_rows_without_loss_or_overlap() {
        let f = Fraction::parse("0.2").expect("parses");
        for (name, s) in Strategy::ALL {
            let all = collapse(rows());
            let (train, test) = split(all.clone(), s, f, 5, 3);
            let key = |r: &Row| (r.user.clone(), r.item.clone());
            let mut seen: Vec<_> = train.iter().chain(&test).map(key).collect();
            seen.sort();
            let before = seen.len();
            seen.dedup();
            assert_eq!(seen.len(), before, "{name}: overlap");
            if s != Strategy::Global {
                assert_eq!(seen.len(), all.len(), "{name}: rows lost");
            }
            assert!(!test.is_empty() && !train.is_empty(), "{name}");
            assert_eq!(split(all, s, f, 5, 3), (train.clone(), test.clone()), "{name}: deterministic");
            match s {
                Strategy::LeaveLastOut => assert_eq!(test.len(), 40),
                Strategy::Random | Strategy::Temporal => assert_eq!(test.len(), 80),
                Strategy::ColdUser => {
                    let train_users: std::collections::HashSet<_> = train.iter().map(|r| &r.user).collect();
                    assert!(test.iter().all(|r| !train_users.contains(&r.user)));
                }
                Strategy::ColdItem => {
                    let train_items: std::collections::HashSet<_> = train.iter().map(|r| &r.item).collect();
                    assert!(test.iter().all(|r| !train_items.contains(&r.item)));
                }
                Strategy::Global => {
                    let last_train = train.iter().map(|r| r.ts).fold(f64::MIN, f64::max);
                    assert!(test.iter().all(|r| r.ts > last_train));
                }
            }
        }
    }
}
