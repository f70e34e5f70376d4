//! Crash safety: SIGKILL a running import; the store opens cleanly and holds none or all of
//! that import, and every earlier acknowledged import is intact.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{stats, stderr, tailor};

#[test]
fn sigkill_mid_import_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // An acknowledged import first.
    let small = dir.path().join("small.csv");
    fs_err::write(&small, "user,item,ts\nu1,i1,2020-01-01\nu2,i2,2020-01-02\n").expect("write");
    let o = tailor(&data, &["import", "events", small.to_str().expect("utf8"), "--set", "kind=view"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A large import to interrupt.
    let big = dir.path().join("big.csv");
    let rows = 300_000u64;
    {
        let mut w = std::io::BufWriter::new(fs_err::File::create(&big).expect("create"));
        writeln!(w, "user,item,ts,quantity,price").expect("write");
        for k in 0..rows {
            writeln!(w, "c{},sku{},{},{},{}.5", k % 5000, k % 3000, 1_600_000_000 + k, 1 + k % 3, k % 90)
                .expect("write");
        }
    }
    let mut outcomes = Vec::new();
    for delay_ms in [150u64, 600, 1200, 2500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailor"))
            .arg("--data-dir")
            .arg(&data)
            .args(["import", "events", big.to_str().expect("utf8"), "--set", "kind=purchase"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().expect("wait").is_some();
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let s = stats(&data);
        let events = s["events"].as_u64().expect("events");
        assert!(events == 2 || events == 2 + rows, "after a kill at {delay_ms} ms the store holds {events} events");
        outcomes.push((delay_ms, finished, events));
        if events == 2 + rows {
            break;
        }
    }
    // The earliest kill must have interrupted a running import (nothing of it stored).
    assert_eq!(outcomes[0].2, 2, "{outcomes:?}");
    // The first import is intact; a complete run now adds exactly the missing rows.
    let o = tailor(&data, &["import", "events", big.to_str().expect("utf8"), "--set", "kind=purchase", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stats(&data);
    assert_eq!(s["events"].as_u64(), Some(2 + rows));
    let o = tailor(&data, &["import", "events", small.to_str().expect("utf8"), "--set", "kind=view", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(r["written"]["events_duplicate"].as_u64(), Some(2));
}
