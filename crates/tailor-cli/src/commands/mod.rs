//! One module per command: its clap arguments and its `run`. `main` only dispatches.

pub(crate) mod bench;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod demo_history;
pub(crate) mod eval;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod model;
pub(crate) mod recommend;
pub(crate) mod report;
pub(crate) mod segment;
pub(crate) mod serve;
pub(crate) mod stats;
