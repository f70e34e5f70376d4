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

    /// `ceil(self · n)`.
    pub fn ceil_times(self, n: usize) -> usize {
        (u128::from(self.num) * n as u128).div_ceil(u128::from(self.den)) as usize
    }
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
}
