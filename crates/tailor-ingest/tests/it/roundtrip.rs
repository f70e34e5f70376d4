//! Import → export → import gives identical data, in every format; re-imports add nothing.

use std::ops::ControlFlow;

use tailor_core::Event;
use tailor_ingest::demo::{DemoParams, generate};
use tailor_ingest::export::export_events;
use tailor_ingest::import::ImportOptions;
use tailor_ingest::mapping::Target;
use tailor_ingest::source::Format;
use tailor_store::{EventFilter, RedbStore, Store, WriteBatch};

use crate::import;

fn events(s: &dyn Store) -> Vec<Event> {
    let mut out = Vec::new();
    s.scan_events(EventFilter::default(), &mut |_, e| {
        out.push(e);
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

#[test]
fn export_import_round_trip_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop =
        generate(&DemoParams { users: 150, items: 120, days: 10, anonymous_sessions: 30, ..DemoParams::default() });
    let a = RedbStore::open(&dir.path().join("a")).expect("store a");
    let mut evs = shop.events.clone();
    // Cover the fields the demo does not use.
    evs[0].rec_id = Some("rec-1".into());
    evs[0].context.slot = Some("home, top".into());
    evs[0].context.referrer = Some("https://example.com/?q=\"shoes\"".into());
    evs[1].rating = Some(4.5);
    evs[1].kind = tailor_core::EventKind::Rating;
    evs[2].unit_price = Some(0.1 + 0.2);
    a.write(WriteBatch { events: evs, ..WriteBatch::default() }).expect("write");
    let original = events(&a);
    for (k, format) in [Format::Csv, Format::Tsv, Format::Jsonl, Format::Parquet].into_iter().enumerate() {
        let ext = ["csv", "tsv", "jsonl", "parquet"][k];
        let file = dir.path().join(format!("events.{ext}"));
        let rep = export_events(&a, format, &file, EventFilter::default()).expect("export");
        assert_eq!(rep.events as usize, original.len());
        let b = RedbStore::open(&dir.path().join(format!("b{k}"))).expect("store b");
        let r = import(&b, Target::Events, &file, &[], &[], &ImportOptions::default()).expect("import");
        assert_eq!(r.written.events_added as usize, original.len(), "{ext}");
        assert_eq!(events(&b), original, "{ext}: data differs after the round trip");
        // Re-importing the same file adds nothing.
        let again = import(&b, Target::Events, &file, &[], &[], &ImportOptions::default()).expect("reimport");
        assert_eq!((again.written.events_added, again.written.events_duplicate as usize), (0, original.len()), "{ext}");
        // And exporting the copy gives the same bytes.
        let file2 = dir.path().join(format!("again.{ext}"));
        export_events(&b, format, &file2, EventFilter::default()).expect("export again");
        if format != Format::Parquet {
            assert_eq!(fs_err::read(&file).expect("read"), fs_err::read(&file2).expect("read"), "{ext}");
        }
    }
}

#[test]
fn export_time_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = generate(&DemoParams { users: 50, items: 40, days: 10, anonymous_sessions: 0, ..DemoParams::default() });
    let s = RedbStore::open(&dir.path().join("s")).expect("store");
    s.write(WriteBatch { events: shop.events.clone(), ..WriteBatch::default() }).expect("write");
    let mid = shop.events[shop.events.len() / 2].ts;
    let file = dir.path().join("late.jsonl");
    let r = export_events(&s, Format::Jsonl, &file, EventFilter { since: Some(mid), until: None, kinds: None })
        .expect("export");
    assert_eq!(r.events as usize, shop.events.iter().filter(|e| e.ts >= mid).count());
}

#[test]
fn reimporting_a_csv_with_repeated_lines_keeps_them_and_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(&dir.path().join("s")).expect("store");
    let file = dir.path().join("dups.csv");
    // Two genuinely identical lines (same customer, item, minute), as in Online Retail.
    fs_err::write(&file, "user,item,ts\nu1,i1,2020-01-01 10:00\nu1,i1,2020-01-01 10:00\nu2,i1,2020-01-01 10:00\n")
        .expect("write");
    let first = import(&s, Target::Events, &file, &[], &["kind=view"], &ImportOptions::default()).expect("import");
    assert_eq!(first.written.events_added, 3);
    let second = import(&s, Target::Events, &file, &[], &["kind=view"], &ImportOptions::default()).expect("import");
    assert_eq!((second.written.events_added, second.written.events_duplicate), (0, 3));
}
