//! Experiments: sticky assignment of users to variants, attribution of what they did to
//! the recommendations they saw, the statistics that say whether a variant won, always-valid
//! sequential p-values, multi-armed bandits, and a simulator that checks all of it against
//! known truths. Pure: no I/O; the server and the CLI feed it exposures and events.

pub mod assign;
pub mod bandit;
pub mod error;
pub mod monitor;
pub mod report;
pub mod sequential;
pub mod simulate;
pub mod spec;
pub mod stats;

pub use assign::Assigner;
pub use bandit::{Bandit, Policy};
pub use error::{ExperimentError, Result};
pub use report::{Attribution, Exposure, Report, analyse};
pub use spec::{Experiment, ExperimentSpec, Layout, Metric, Status, Variant};

/// Marks every number of a report's schema as possibly null: a statistic without data (no
/// impressions, one variant empty) is NaN, which JSON writes as `null`.
pub fn nullable_numbers(schema: &mut schemars::Schema) {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if o.get("type").and_then(|t| t.as_str()) == Some("number") {
                    o.insert("type".into(), serde_json::json!(["number", "null"]));
                }
                for (_, x) in o.iter_mut() {
                    walk(x);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Some(props) = schema.get_mut("properties") {
        walk(props);
    }
}
