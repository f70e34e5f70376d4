//! Cohorts by first-purchase month: how many of a month's new customers buy again in each
//! later month, and what they spend.
//!
//! Definitions (UTC calendar months): a customer's cohort is the month of their first
//! purchase; for cohort `c` and `m` months later, `active[m]` = customers of `c` with a
//! purchase in month `c + m` (so `active[0]` is the cohort's size), `revenue[m]` = the value
//! of those purchases, `retention[m] = active[m] / size`. Offsets run to the last month with
//! any purchase, so younger cohorts have shorter rows.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tailor_core::Timestamp;

use crate::clv::Purchase;

/// One cohort's row of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CohortRow {
    /// First-purchase month, `YYYY-MM`.
    pub month: String,
    /// Customers whose first purchase fell in this month.
    pub size: u32,
    /// Per month since: customers of the cohort who bought in that month.
    pub active: Vec<u32>,
    /// Per month since: share of the cohort who bought in that month.
    pub retention: Vec<f64>,
    /// Per month since: the cohort's revenue in that month.
    pub revenue: Vec<f64>,
    /// Per month since: the cohort's revenue so far, per customer of the cohort.
    pub cumulative_revenue_per_customer: Vec<f64>,
}

/// The cohort × months-since matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cohorts {
    /// Rows, oldest cohort first.
    pub rows: Vec<CohortRow>,
    /// Customers with a purchase.
    pub customers: u32,
    /// The last month with a purchase, `YYYY-MM` (None without purchases).
    pub last_month: Option<String>,
}

fn month_index(ts: i64) -> i64 {
    let (y, m) = Timestamp(ts).year_month();
    y * 12 + i64::from(m) - 1
}

fn month_name(index: i64) -> String {
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// The cohort matrix of `purchases` (any order; non-finite amounts count as 0).
pub fn cohorts(purchases: &[Purchase]) -> Cohorts {
    let mut first: HashMap<u32, i64> = HashMap::new();
    let mut last = None;
    let months: Vec<(u32, i64, f64)> = purchases
        .iter()
        .map(|p| {
            let m = month_index(p.ts);
            first.entry(p.user).and_modify(|f| *f = (*f).min(m)).or_insert(m);
            last = Some(last.map_or(m, |l: i64| l.max(m)));
            (p.user, m, if p.amount.is_finite() { p.amount } else { 0.0 })
        })
        .collect();
    let Some(last) = last else {
        return Cohorts { rows: Vec::new(), customers: 0, last_month: None };
    };
    let mut cohort_months: Vec<i64> = first.values().copied().collect();
    cohort_months.sort_unstable();
    cohort_months.dedup();
    let row_of: HashMap<i64, usize> = cohort_months.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut rows: Vec<CohortRow> = cohort_months
        .iter()
        .map(|&c| {
            let width = (last - c + 1) as usize;
            CohortRow {
                month: month_name(c),
                size: 0,
                active: vec![0; width],
                retention: vec![0.0; width],
                revenue: vec![0.0; width],
                cumulative_revenue_per_customer: vec![0.0; width],
            }
        })
        .collect();
    // Distinct (user, month) pairs count once each.
    let mut seen: Vec<(u32, i64)> = months.iter().map(|&(u, m, _)| (u, m)).collect();
    seen.sort_unstable();
    seen.dedup();
    for (u, m) in seen {
        let c = first[&u];
        rows[row_of[&c]].active[(m - c) as usize] += 1;
    }
    for (u, m, amount) in months {
        let c = first[&u];
        rows[row_of[&c]].revenue[(m - c) as usize] += amount;
    }
    for row in &mut rows {
        row.size = row.active[0];
        let size = f64::from(row.size);
        let mut total = 0.0;
        for k in 0..row.active.len() {
            row.retention[k] = f64::from(row.active[k]) / size;
            total += row.revenue[k];
            row.cumulative_revenue_per_customer[k] = total / size;
        }
    }
    Cohorts { rows, customers: first.len() as u32, last_month: Some(month_name(last)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32) -> i64 {
        tailor_core::Timestamp::parse_auto(&format!("{y:04}-{m:02}-{d:02}")).unwrap().0
    }

    #[test]
    fn a_small_shop_by_hand() {
        let p = |user, ts, amount| Purchase { user, ts, amount };
        let purchases = [
            // Cohort 2024-01: users 0 and 1. User 0 buys again in February (twice) and April.
            p(0, at(2024, 1, 5), 10.0),
            p(1, at(2024, 1, 31), 20.0),
            p(0, at(2024, 2, 1), 5.0),
            p(0, at(2024, 2, 20), 5.0),
            p(0, at(2024, 4, 2), 1.0),
            // Cohort 2024-03: user 2, again in April; user 3 in 2023-12 then March (cohort 2023-12).
            p(2, at(2024, 3, 3), 7.0),
            p(2, at(2024, 4, 9), 3.0),
            p(3, at(2024, 3, 1), 2.0),
            p(3, at(2023, 12, 31), 4.0),
        ];
        let c = cohorts(&purchases);
        assert_eq!(c.customers, 4);
        assert_eq!(c.last_month.as_deref(), Some("2024-04"));
        let months: Vec<&str> = c.rows.iter().map(|r| r.month.as_str()).collect();
        assert_eq!(months, ["2023-12", "2024-01", "2024-03"]);
        let dec = &c.rows[0];
        assert_eq!((dec.size, dec.active.clone()), (1, vec![1, 0, 0, 1, 0]));
        assert_eq!(dec.revenue, vec![4.0, 0.0, 0.0, 2.0, 0.0]);
        let jan = &c.rows[1];
        assert_eq!((jan.size, jan.active.clone()), (2, vec![2, 1, 0, 1]));
        assert_eq!(jan.retention, vec![1.0, 0.5, 0.0, 0.5]);
        assert_eq!(jan.revenue, vec![30.0, 10.0, 0.0, 1.0]);
        assert_eq!(jan.cumulative_revenue_per_customer, vec![15.0, 20.0, 20.0, 20.5]);
        let mar = &c.rows[2];
        assert_eq!((mar.size, mar.active.clone(), mar.revenue.clone()), (1, vec![1, 1], vec![7.0, 3.0]));
        assert_eq!(cohorts(&[]).rows.len(), 0);
    }
}
