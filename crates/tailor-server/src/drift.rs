//! Drift of the users against a segmentation run's snapshot: the population stability
//! index of each numeric feature (the run's decile bins against the features computed from
//! the store now) and of the segment shares (the run's sizes against today's members, who
//! moved in real time). `tailor report drift`, `GET /v1/admin/drift` and `feature_drift`
//! alerts read it.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use tailor_segment::drift::{Bins, psi};
use tailor_store::Store;

use crate::segmentation::{Error, Record, Result, population};

/// One feature's drift.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FeatureDrift {
    /// Feature name.
    pub feature: String,
    /// PSI against the run.
    pub psi: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DriftReport {
    /// The segmentation.
    pub segmentation: String,
    /// When its latest run was made (RFC 3339).
    pub run_at: String,
    /// Users the run segmented and users now.
    pub users_then: usize,
    /// Users with features now.
    pub users_now: usize,
    /// Per feature, largest PSI first.
    pub features: Vec<FeatureDrift>,
    /// PSI of the segment shares (run sizes against current members).
    pub segment_psi: f64,
    /// The largest of them all.
    pub max_psi: f64,
    /// Seconds taken.
    pub seconds: f64,
}

/// Drift of the latest run of `segmentation` (the first by name when None).
pub fn report(store: &dyn Store, segmentation: Option<&str>) -> Result<DriftReport> {
    let started = Instant::now();
    let mut runs = store.segmentation_runs()?;
    runs.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let name = match segmentation {
        Some(n) => n.to_owned(),
        None => runs.first().map(|r| r.name.clone()).ok_or_else(|| Error::Data("no segmentation is stored".into()))?,
    };
    let run = runs
        .iter()
        .rev()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::NotFound(format!("no segmentation named {name:?}")))?;
    let rec: Record = serde_json::from_value(run.record.clone())
        .map_err(|e| Error::Corrupt(format!("segmentation {name:?}: its record cannot be read: {e}")))?;
    if rec.feature_bins.is_empty() {
        return Err(Error::Data(format!(
            "segmentation {name:?} was run before feature snapshots were kept; run it again (`tailor segment run`)"
        )));
    }
    let pop = population(store, None, rec.top_categories.len())?;
    let t = &pop.table;
    let mut features: Vec<FeatureDrift> = rec
        .feature_bins
        .iter()
        .filter_map(|b: &Bins| {
            t.column(&b.name).map(|c| FeatureDrift { feature: b.name.clone(), psi: b.psi(&t.select(&[c])) })
        })
        .collect();
    features.sort_by(|a, b| b.psi.total_cmp(&a.psi).then(a.feature.cmp(&b.feature)));
    let then: Vec<f64> = run.segments.iter().map(|s| s.size as f64).collect();
    let mut now = Vec::with_capacity(then.len());
    for s in &run.segments {
        now.push(store.segment_members(&name, &s.name)?.len() as f64);
    }
    let share = |v: &[f64]| {
        let total: f64 = v.iter().sum();
        v.iter().map(|x| if total > 0.0 { x / total } else { 0.0 }).collect::<Vec<f64>>()
    };
    let segment_psi = psi(&share(&then), &share(&now));
    let max_psi = features.iter().map(|f| f.psi).fold(segment_psi, f64::max);
    Ok(DriftReport {
        segmentation: name,
        run_at: run.created_at.to_rfc3339(),
        users_then: rec.users,
        users_now: t.users.len(),
        features,
        segment_psi,
        max_psi,
        seconds: started.elapsed().as_secs_f64(),
    })
}
