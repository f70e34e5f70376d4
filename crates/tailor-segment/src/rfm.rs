//! RFM: recency, frequency and monetary value per customer, quintile scores 1–5 and the
//! standard named RFM segments.
//!
//! Definitions (as of a date `T`, events strictly before `T`):
//! - recency_days = days from the customer's last purchase to `T`,
//! - frequency = number of distinct orders with a purchase (purchases without an order id
//!   count as one order each),
//! - monetary = purchase revenue minus returned value (currency units).
//!
//! Scores: a customer's score for a measure is `1 + floor(5 × p)`, capped at 5, where `p` is
//! the share of scored customers with a strictly worse value (more recent is better for
//! recency, larger is better for frequency and monetary); equal values share a score.
//!
//! Named segments use R and FM = round((F + M) / 2):
//!
//! | segment | R | FM |
//! |---|---|---|
//! | Champions | 5 | 4–5 |
//! | Loyal Customers | 3–4 | 4–5 |
//! | Potential Loyalists | 4–5 | 2–3 |
//! | New Customers | 5 | 1 |
//! | Promising | 4 | 1 |
//! | Need Attention | 3 | 3 |
//! | About to Sleep | 3 | 1–2 |
//! | Can't Lose Them | 1–2 | 5 |
//! | At Risk | 1–2 | 3–4 |
//! | Hibernating | 1–2 | 1–2, except Lost |
//! | Lost | 1 | 1 |

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One purchase or return line, already reduced to what RFM needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Dense customer index.
    pub user: u32,
    /// Milliseconds since the epoch.
    pub ts: i64,
    /// `true` for a return (its amount is subtracted).
    pub is_return: bool,
    /// Order id (hashed or interned), if any.
    pub order: Option<u64>,
    /// Quantity × unit price, non-negative.
    pub amount: f64,
}

/// RFM measures and scores of one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rfm {
    /// Dense customer index.
    pub user: u32,
    /// Days since the last purchase.
    pub recency_days: f64,
    /// Distinct orders.
    pub frequency: u32,
    /// Revenue net of returns.
    pub monetary: f64,
    /// Recency score 1–5 (5 = most recent).
    pub r: u8,
    /// Frequency score 1–5.
    pub f: u8,
    /// Monetary score 1–5.
    pub m: u8,
    /// Named segment.
    pub segment: RfmSegment,
}

/// The standard named RFM segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RfmSegment {
    /// Bought recently, buy often and spend the most.
    Champions,
    /// Buy often and spend well, a little less recently.
    LoyalCustomers,
    /// Recent customers with average frequency.
    PotentialLoyalists,
    /// Bought very recently, once.
    NewCustomers,
    /// Recent, few purchases.
    Promising,
    /// Middling on everything.
    NeedAttention,
    /// Below-average recency and frequency.
    AboutToSleep,
    /// Used to buy a lot, long ago.
    CantLoseThem,
    /// Spent well, not seen for a while.
    AtRisk,
    /// Long ago, little.
    Hibernating,
    /// Lowest on every count.
    Lost,
}

impl RfmSegment {
    /// Every segment, in table order.
    pub const ALL: [RfmSegment; 11] = [
        Self::Champions,
        Self::LoyalCustomers,
        Self::PotentialLoyalists,
        Self::NewCustomers,
        Self::Promising,
        Self::NeedAttention,
        Self::AboutToSleep,
        Self::CantLoseThem,
        Self::AtRisk,
        Self::Hibernating,
        Self::Lost,
    ];

    /// The score rule, as in the module table (FM = round((F + M) / 2)).
    pub fn definition(self) -> &'static str {
        match self {
            Self::Champions => "R = 5 and FM 4-5: bought recently, buy often and spend the most",
            Self::LoyalCustomers => "R 3-4 and FM 4-5: buy often and spend well",
            Self::PotentialLoyalists => "R 4-5 and FM 2-3: recent, average frequency",
            Self::NewCustomers => "R = 5 and FM = 1: bought very recently, once",
            Self::Promising => "R = 4 and FM = 1: recent, few purchases",
            Self::NeedAttention => "R = 3 and FM = 3: middling on everything",
            Self::AboutToSleep => "R = 3 and FM 1-2: fading",
            Self::CantLoseThem => "R 1-2 and FM = 5: used to buy a lot, long ago",
            Self::AtRisk => "R 1-2 and FM 3-4: spent well, not seen for a while",
            Self::Hibernating => "R 1-2 and FM 1-2 (except Lost): long ago, little",
            Self::Lost => "R = 1 and FM = 1: lowest on every count",
        }
    }

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Champions => "Champions",
            Self::LoyalCustomers => "Loyal Customers",
            Self::PotentialLoyalists => "Potential Loyalists",
            Self::NewCustomers => "New Customers",
            Self::Promising => "Promising",
            Self::NeedAttention => "Need Attention",
            Self::AboutToSleep => "About to Sleep",
            Self::CantLoseThem => "Can't Lose Them",
            Self::AtRisk => "At Risk",
            Self::Hibernating => "Hibernating",
            Self::Lost => "Lost",
        }
    }

    /// The segment of R and FM scores (see the module table).
    pub fn of(r: u8, fm: u8) -> Self {
        let fm = fm.clamp(1, 5);
        match r {
            5 if fm >= 4 => Self::Champions,
            3 | 4 if fm >= 4 => Self::LoyalCustomers,
            4 | 5 if fm >= 2 => Self::PotentialLoyalists,
            5 => Self::NewCustomers,
            4 => Self::Promising,
            3 if fm == 3 => Self::NeedAttention,
            3 => Self::AboutToSleep,
            _ if fm == 5 => Self::CantLoseThem,
            _ if fm >= 3 => Self::AtRisk,
            1 if fm == 1 => Self::Lost,
            _ => Self::Hibernating,
        }
    }
}

/// Scores where larger values are better; equal values share a score.
fn quintile_scores(values: &[f64]) -> Vec<u8> {
    let n = values.len();
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    values
        .iter()
        .map(|v| {
            let below = sorted.partition_point(|x| x < v);
            (1 + (5 * below) / n.max(1)).min(5) as u8
        })
        .collect()
}

/// RFM of every customer with at least one purchase before `as_of_ms`.
pub fn compute(lines: &[Line], as_of_ms: i64) -> Vec<Rfm> {
    #[derive(Default)]
    struct Acc {
        last: Option<i64>,
        orders: HashSet<u64>,
        loose: u32,
        money: f64,
    }
    let mut acc: HashMap<u32, Acc> = HashMap::new();
    for l in lines.iter().filter(|l| l.ts < as_of_ms) {
        let a = acc.entry(l.user).or_default();
        if l.is_return {
            a.money -= l.amount;
        } else {
            a.money += l.amount;
            a.last = Some(a.last.map_or(l.ts, |t| t.max(l.ts)));
            match l.order {
                Some(o) => {
                    a.orders.insert(o);
                }
                None => a.loose += 1,
            }
        }
    }
    let mut users: Vec<(u32, f64, u32, f64)> = acc
        .into_iter()
        .filter_map(|(u, a)| {
            let last = a.last?;
            Some((u, (as_of_ms - last) as f64 / 86_400_000.0, a.orders.len() as u32 + a.loose, a.money))
        })
        .collect();
    users.sort_by_key(|u| u.0);
    let measures: Vec<(f64, u32, f64)> = users.iter().map(|u| (u.1, u.2, u.3)).collect();
    users
        .into_iter()
        .zip(score(&measures))
        .map(|((user, recency_days, frequency, monetary), (r, f, m, segment))| Rfm {
            user,
            recency_days,
            frequency,
            monetary,
            r,
            f,
            m,
            segment,
        })
        .collect()
}

/// Scores (R, F, M) and the named segment of each customer's (recency in days, orders,
/// net revenue), relative to the customers given.
pub fn score(measures: &[(f64, u32, f64)]) -> Vec<(u8, u8, u8, RfmSegment)> {
    let r = quintile_scores(&measures.iter().map(|u| -u.0).collect::<Vec<_>>());
    let f = quintile_scores(&measures.iter().map(|u| f64::from(u.1)).collect::<Vec<_>>());
    let m = quintile_scores(&measures.iter().map(|u| u.2).collect::<Vec<_>>());
    (0..measures.len())
        .map(|k| {
            let fm = ((f64::from(f[k]) + f64::from(m[k])) / 2.0).round() as u8;
            (r[k], f[k], m[k], RfmSegment::of(r[k], fm))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn measures_and_scores() {
        let mut lines = Vec::new();
        // User u bought u+1 orders of 10 each, the last one u+1 days before the cutoff.
        for u in 0..10u32 {
            for o in 0..=u {
                lines.push(Line {
                    user: u,
                    ts: 99 * DAY - i64::from(u) * DAY - i64::from(o),
                    is_return: false,
                    order: Some(u64::from(u * 100 + o)),
                    amount: 10.0,
                });
            }
        }
        lines.push(Line { user: 9, ts: 99 * DAY, is_return: true, order: Some(1), amount: 5.0 });
        lines.push(Line { user: 3, ts: 200 * DAY, is_return: false, order: Some(7), amount: 99.0 }); // after the cutoff
        let r = compute(&lines, 100 * DAY);
        assert_eq!(r.len(), 10);
        assert_eq!((r[3].frequency, r[3].monetary, r[3].recency_days), (4, 40.0, 4.0));
        assert_eq!(r[9].monetary, 95.0);
        assert_eq!((r[0].r, r[0].f), (5, 1));
        assert_eq!((r[9].r, r[9].f, r[9].m), (1, 5, 5));
        assert_eq!(r[9].segment, RfmSegment::CantLoseThem);
        assert_eq!(r[0].segment, RfmSegment::NewCustomers);
    }

    #[test]
    fn ties_share_a_score_and_the_map_is_total() {
        assert_eq!(quintile_scores(&[1.0, 1.0, 1.0, 2.0, 3.0]), vec![1, 1, 1, 4, 5]);
        let mut seen = HashSet::new();
        for r in 1..=5 {
            for fm in 1..=5 {
                seen.insert(RfmSegment::of(r, fm));
            }
        }
        assert_eq!(seen.len(), 11, "every named segment is reachable");
    }
}
