//! Popularity: items ranked by how many users interacted with them (weights ignored), the
//! fallback that answers for anyone.

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;

use crate::{History, Model};

/// Item popularity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Popularity {
    /// Users per item.
    pub counts: Vec<f32>,
}

impl Popularity {
    /// Counts the users of every item.
    pub fn fit(m: &Interactions) -> Self {
        let mut counts = vec![0f32; m.n_items()];
        for &i in m.indices() {
            counts[i as usize] += 1.0;
        }
        Self { counts }
    }
}

impl Model for Popularity {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score(&self, _user: Option<u32>, _history: History<'_>, out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}
