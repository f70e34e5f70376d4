//! Assigning one user with a stored segmentation run, from their [`Activity`]: the nearest
//! centre of a clustering (through the run's fitted encoder) or the run's compiled rules.
//! The CLI (`tailor segment assign`) and the server (real-time reassignment as events
//! arrive) share it, so both give the answer the run itself would.

use serde::Deserialize;
use tailor_core::User;

use crate::error::{Result, SegmentError};
use crate::features::{self, Activity, FeatureTable};
use crate::pipeline::Encoder;
use crate::rules;

/// The parts of a run's record that assignment needs (the record is a superset; other
/// fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct Assigner {
    /// Method (`kmeans`, `rules`...).
    pub method: String,
    /// Top categories whose shares are features.
    pub top_categories: Vec<String>,
    /// The fitted encoder (clustering methods).
    pub encoder: Option<Encoder>,
    /// Centre of each segment in the encoded space (clustering methods).
    #[serde(default)]
    pub centroids: Vec<Vec<f64>>,
    /// Rules compiled against the run's population (rules methods).
    #[serde(default)]
    pub compiled_rules: Vec<rules::Rule>,
    /// Segment names in label order.
    pub names: Vec<String>,
    /// The population's lifetime-value models (runs stored before they existed have none).
    #[serde(default)]
    pub clv: Option<features::ClvModel>,
}

/// Where one user belongs.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Segments (several for rule segmentations, none when no rule matches).
    pub segments: Vec<String>,
    /// Distance to the chosen centre (clusterings).
    pub distance: Option<f64>,
}

impl Assigner {
    /// Whether single users can be assigned (clusterings with centres, and rules).
    pub fn can_assign(&self) -> bool {
        (self.encoder.is_some() && !self.centroids.is_empty()) || !self.compiled_rules.is_empty()
    }

    /// One user's feature table (a single row) as of `as_of` (ms), laid out like the run's.
    pub fn features(&self, user: &str, record: Option<&User>, act: &Activity, as_of: i64) -> FeatureTable {
        let rows = vec![(user.to_owned(), record, act)];
        let mut t = features::table(&rows, as_of, self.top_categories.clone(), self.clv);
        // A lone user has no population median for a missing age: use the run's population
        // centre of the age transform when there is one.
        if record.and_then(|u| features::age_of(u, as_of)).is_none()
            && let (Some(enc), Some(c)) = (&self.encoder, t.column("age"))
            && let Some((_, tr)) = enc.column_transforms().find(|(n, _)| *n == "age")
        {
            t.values[c] = tr.center;
        }
        t
    }

    /// The segments of the first row of `t`.
    pub fn place(&self, t: &FeatureTable) -> Result<Placement> {
        let cats: Vec<Option<&str>> = t.categorical.iter().map(|c| c.first().and_then(|v| v.as_deref())).collect();
        if let Some(enc) = &self.encoder {
            let b = enc.bind(t)?;
            let mut row = Vec::with_capacity(enc.width());
            enc.encode_row(&b, t.row(0), &cats, &mut row);
            let best = self
                .centroids
                .iter()
                .enumerate()
                .map(|(k, c)| (k, c.iter().zip(&row).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            return Ok(match best {
                Some((k, d2)) => {
                    Placement { segments: self.names.get(k).cloned().into_iter().collect(), distance: Some(d2.sqrt()) }
                }
                None => Placement { segments: Vec::new(), distance: None },
            });
        }
        if !self.compiled_rules.is_empty() {
            let segments = self
                .compiled_rules
                .iter()
                .zip(&self.names)
                .filter(|(r, _)| r.eval(t.row(0), &cats))
                .map(|(_, n)| n.clone())
                .collect();
            return Ok(Placement { segments, distance: None });
        }
        Err(SegmentError::InvalidData(format!(
            "a {} segmentation cannot assign single users; rerun it with `tailor segment run --method {}`",
            self.method, self.method
        )))
    }
}
