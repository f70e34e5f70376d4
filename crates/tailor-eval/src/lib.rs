//! Offline evaluation with exactly the protocol of `../shared/bench`: [`split`] reproduces
//! `split.py`'s temporal split and [`metrics`] `evaluate.py`'s top-K metrics, so numbers
//! computed inside tailor (tuning, training curves, CI regressions) are the numbers peers
//! are compared on.

pub mod fairness;
pub mod metrics;
pub mod split;
