//! Experiments: sticky assignment of users to variants, attribution of what they did to
//! the recommendations they saw, the statistics that say whether a variant won, always-valid
//! sequential p-values, multi-armed bandits, and a simulator that checks all of it against
//! known truths. Pure: no I/O; the server and the CLI feed it exposures and events.

pub mod assign;
pub mod bandit;
pub mod error;
pub mod report;
pub mod sequential;
pub mod simulate;
pub mod spec;
pub mod stats;

pub use assign::Assigner;
pub use bandit::{Bandit, Policy};
pub use error::{ExperimentError, Result};
pub use report::{Exposure, Report, analyse};
pub use spec::{Experiment, ExperimentSpec, Layout, Metric, Status, Variant};
