//! End-to-end tests of the `tailor` binary.

mod alerts;
mod calibration;
mod cli;
mod crash;
mod dashboard;
mod experiment;
mod recommend;
mod report;
mod segment;
mod serve;
mod served;
mod soak;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tailor` with `args` against `data_dir`, with a clean environment for config.
pub fn tailor(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tailor"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TAILOR_LOG")
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .output()
        .expect("runs tailor")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tailor --json ARGS` as JSON (the command must succeed).
pub fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tailor(data, &all);
    assert!(o.status.success(), "tailor {args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("tailor {args:?}: {e}: {}", stdout(&o)))
}

/// `tailor stats --json` as JSON.
pub fn stats(data_dir: &Path) -> serde_json::Value {
    let o = tailor(data_dir, &["stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("stats JSON")
}
