//! Fairness of what was actually served, from the stored events: each served list is the
//! impressions that share a `rec_id` (in the order they were logged), its relevant items the
//! clicks and purchases carrying that `rec_id`, and its group the user's (segment, gender,
//! age band, region or country). [`tailor_eval::fairness::report`] then gives NDCG per
//! group and the gap, exposure by brand and popularity band (popularity from every other
//! item event) against catalog and interaction shares, ARP and APLT — the same figures as
//! `tailor eval --report fairness` offline.

use std::collections::HashMap;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use tailor_core::{EventKind, Timestamp, User};
use tailor_eval::fairness::{self, FairnessReport};
use tailor_store::{EventFilter, Store};

use crate::segmentation::{Error, Result};

/// Which user attribute groups the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The user's segments in a stored segmentation (the first by name when None); a user
    /// in several segments counts in the first.
    Segment(Option<String>),
    /// `gender`.
    Gender,
    /// Age bands: under 25, 25-34, 35-44, 45-54, 55 and over.
    Age,
    /// `region`.
    Region,
    /// `country`.
    Country,
}

impl GroupBy {
    /// From the `by` parameter and the optional segmentation name.
    pub fn parse(by: &str, segmentation: Option<&str>) -> Result<Self> {
        Ok(match by {
            "segment" => Self::Segment(segmentation.map(str::to_owned)),
            "gender" => Self::Gender,
            "age" => Self::Age,
            "region" => Self::Region,
            "country" => Self::Country,
            other => {
                return Err(Error::Usage(format!("by={other}: expected segment, gender, age, region or country")));
            }
        })
    }

    fn of(&self, u: &User, now: Timestamp) -> Option<String> {
        match self {
            Self::Segment(_) => None,
            Self::Gender => u.gender.clone(),
            Self::Region => u.region.clone(),
            Self::Country => u.country.clone(),
            Self::Age => tailor_segment::features::age_of(u, now.0).map(|a| {
                match a as u32 {
                    0..25 => "under 25",
                    25..35 => "25-34",
                    35..45 => "35-44",
                    45..55 => "45-54",
                    _ => "55 and over",
                }
                .to_owned()
            }),
        }
    }
}

/// The served-log report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServedFairness {
    /// How lists were grouped (`segment: NAME`, `gender`...).
    pub grouped_by: String,
    /// Served lists seen (distinct rec_ids with impressions).
    pub lists: usize,
    /// Impressions in them.
    pub impressions: usize,
    /// Lists with at least one click or purchase (the ones NDCG is computed over).
    pub lists_with_outcome: usize,
    /// The figures; NDCG per group is over lists with an outcome, at k = the longest list.
    #[schemars(with = "serde_json::Value")]
    pub report: FairnessReport,
    /// Seconds to read the events and compute.
    pub seconds: f64,
}

/// Reads every event and reports on the served lists.
pub fn served(store: &dyn Store, by: &GroupBy) -> Result<ServedFairness> {
    let started = Instant::now();
    let now = Timestamp::now();
    let mut catalog: Vec<String> = Vec::new();
    let mut providers: HashMap<String, String> = HashMap::new();
    store.for_each_item(&mut |_, s| {
        let it = s.value;
        if let Some(b) = &it.brand {
            providers.insert(it.id.0.clone(), b.clone());
        }
        catalog.push(it.id.0);
    })?;
    let mut group_of_user: HashMap<String, String> = HashMap::new();
    let label = match by {
        GroupBy::Segment(name) => {
            let mut runs = store.segmentation_runs()?;
            runs.sort_by(|a, b| a.name.cmp(&b.name));
            let name = match name {
                Some(n) => runs
                    .iter()
                    .find(|r| &r.name == n)
                    .map(|r| r.name.clone())
                    .ok_or_else(|| Error::NotFound(format!("no segmentation named {n:?}")))?,
                None => runs.first().map(|r| r.name.clone()).ok_or_else(|| {
                    Error::Data("no segmentation is stored; group by gender, age, region or country".into())
                })?,
            };
            let latest = runs.iter().rev().find(|r| r.name == name).map(|r| r.segments.clone()).unwrap_or_default();
            for seg in &latest {
                for u in store.segment_members(&name, &seg.name)? {
                    group_of_user.entry(u).or_insert_with(|| seg.name.clone());
                }
            }
            format!("segment: {name}")
        }
        other => {
            store.for_each_user(&mut |_, s| {
                if let Some(g) = other.of(&s.value, now) {
                    group_of_user.insert(s.value.id.0.clone(), g);
                }
            })?;
            format!("{other:?}").to_lowercase()
        }
    };
    // rec_id → (user, shown items); interactions for popularity; outcomes by rec_id.
    let mut lists: HashMap<String, (Option<String>, Vec<String>)> = HashMap::new();
    let mut interactions: HashMap<String, u64> = HashMap::new();
    let mut outcomes: Vec<(String, String)> = Vec::new();
    let mut impressions = 0usize;
    store.scan_events(EventFilter::default(), &mut |_, e| {
        if let Some(item) = &e.item {
            match (e.kind, &e.rec_id) {
                (EventKind::Impression, Some(r)) => {
                    impressions += 1;
                    let entry =
                        lists.entry(r.clone()).or_insert_with(|| (e.user.as_ref().map(|u| u.0.clone()), Vec::new()));
                    if !entry.1.contains(&item.0) {
                        entry.1.push(item.0.clone());
                    }
                }
                (EventKind::Impression, None) => {}
                (kind, rec) => {
                    if let (EventKind::Click | EventKind::Purchase, Some(r)) = (kind, rec) {
                        outcomes.push((r.clone(), item.0.clone()));
                    }
                    match interactions.get_mut(item.0.as_str()) {
                        Some(n) => *n += 1,
                        None => {
                            interactions.insert(item.0.clone(), 1);
                        }
                    }
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    })?;
    // Outcomes only of lists that were shown and of items they showed.
    outcomes.retain(|(r, i)| lists.get(r).is_some_and(|l| l.1.contains(i)));
    outcomes.sort();
    outcomes.dedup();
    let groups: HashMap<String, String> = lists
        .iter()
        .filter_map(|(r, (u, _))| u.as_ref().and_then(|u| group_of_user.get(u)).map(|g| (r.clone(), g.clone())))
        .collect();
    let k = lists.values().map(|l| l.1.len()).max().unwrap_or(1);
    let with_outcome: std::collections::HashSet<&str> = outcomes.iter().map(|(r, _)| r.as_str()).collect();
    let test: Vec<(&str, &str)> = outcomes.iter().map(|(r, i)| (r.as_str(), i.as_str())).collect();
    let served: Vec<(&str, Vec<&str>)> =
        lists.iter().map(|(r, (_, items))| (r.as_str(), items.iter().map(String::as_str).collect())).collect();
    let catalog: Vec<&str> = catalog.iter().map(String::as_str).collect();
    let report = fairness::report(&fairness::Input {
        train: &[],
        train_counts: Some(&interactions),
        test: &test,
        lists: &served,
        catalog: &catalog,
        groups: Some(&groups),
        providers: (!providers.is_empty()).then_some(&providers),
        k,
    });
    Ok(ServedFairness {
        grouped_by: label,
        lists: lists.len(),
        impressions,
        lists_with_outcome: with_outcome.len(),
        report,
        seconds: started.elapsed().as_secs_f64(),
    })
}
