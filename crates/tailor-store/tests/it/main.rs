//! Store contract tests (run on redb; other backends will run the same functions).

use std::ops::ControlFlow;

use tailor_core::{Event, EventKind, InteractionWeights, InteractionsBuilder, Item, ItemIdx, Timestamp, User, UserIdx};
use tailor_store::{EventFilter, RedbStore, Store, UpsertMode, WriteBatch, load_interactions};

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|k| {
            let mut e = Event::new(
                Some(&format!("u{}", k % 7)),
                Some(&format!("i{}", k % 11)),
                EventKind::View,
                Timestamp(k as i64 * 1000),
            );
            if k % 3 == 0 {
                e.kind = EventKind::Purchase;
                e.unit_price = Some(1.5);
                e.order_id = Some(format!("o{}", k / 3));
            }
            e.context.device = Some("mobile".into());
            e
        })
        .collect()
}

fn all_events(s: &dyn Store) -> Vec<Event> {
    let mut out = Vec::new();
    s.scan_events(EventFilter::default(), &mut |_, e| {
        out.push(e);
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

fn contract(s: &dyn Store) {
    let batch = WriteBatch { events: events(20_000), ..WriteBatch::default() };
    let r = s.write(batch.clone()).expect("write");
    assert_eq!((r.events_added, r.events_duplicate), (20_000, 0));
    // Idempotent: the same batch again adds nothing.
    let r = s.write(batch.clone()).expect("rewrite");
    assert_eq!((r.events_added, r.events_duplicate), (0, 20_000));
    let c = s.counts().expect("counts");
    assert_eq!((c.events, c.users, c.items), (20_000, 7, 11));
    let back = all_events(s);
    assert_eq!(back.len(), 20_000);
    for (a, b) in back.iter().zip(&batch.events) {
        let mut b = b.clone();
        b.id = a.id;
        assert_eq!(a, &b);
    }
    // Identical events inside one batch are kept (ordinals), and stay idempotent.
    let twice = vec![events(1)[0].clone(), events(1)[0].clone()];
    let twice = WriteBatch { events: twice, ..WriteBatch::default() };
    let r = s.write(twice.clone()).expect("dups");
    assert_eq!(r.events_added, 1, "ordinal 0 is the stored one, ordinal 1 is new");
    assert_eq!(s.write(twice.clone()).expect("again").events_added, 0);

    // Upserts: replace and merge, with bookkeeping.
    let mut it = Item::new("i1");
    it.title = Some("Shoe".into());
    it.brand = Some("Acme".into());
    let r = s.write(WriteBatch { items: vec![it], ..WriteBatch::default() }).expect("item");
    assert_eq!((r.items_inserted, r.items_updated), (1, 0));
    let mut patch = Item::new("i1");
    patch.price = Some(9.0);
    s.write(WriteBatch { items: vec![patch.clone()], mode: UpsertMode::Merge, ..WriteBatch::default() })
        .expect("merge");
    let got = s.item("i1").expect("get").expect("exists");
    assert_eq!((got.value.title.as_deref(), got.value.price, got.revision), (Some("Shoe"), Some(9.0), 2));
    s.write(WriteBatch { items: vec![patch], ..WriteBatch::default() }).expect("replace");
    let got = s.item("i1").expect("get").expect("exists");
    assert_eq!((got.value.title, got.revision), (None, 3));
    assert!(got.updated_at >= got.created_at);

    let mut u = User::new("new-user");
    u.age = Some(30);
    s.write(WriteBatch { users: vec![u], ..WriteBatch::default() }).expect("user");
    assert_eq!(s.user("new-user").expect("get").expect("exists").value.age, Some(30));
    assert_eq!(s.counts().expect("counts").users, 8);
    let mut seen = 0;
    s.for_each_user(&mut |idx, rec| {
        assert_eq!(s.user_names().expect("names")[idx.index()], rec.value.id.0);
        seen += 1;
    })
    .expect("users");
    assert_eq!(seen, 1);

    // One invalid record rejects the whole batch.
    let mut bad = events(3);
    bad[2].unit_price = Some(f64::INFINITY);
    bad[0].user = Some("brand-new".into());
    let err = s.write(WriteBatch { events: bad, ..WriteBatch::default() }).expect_err("invalid");
    assert_eq!(err.to_string(), "event #2: unit_price: inf is not a finite number");
    assert_eq!(s.counts().expect("counts").users, 8);

    // Time filter.
    let mut n = 0;
    s.scan_events(
        EventFilter { since: Some(Timestamp(5_000_000)), until: Some(Timestamp(6_000_000)), kinds: None },
        &mut |_, _| {
            n += 1;
            ControlFlow::Continue(())
        },
    )
    .expect("scan");
    assert_eq!(n, 1000);

    // Kind filter: the same events as filtering the decoded ones, intact.
    const KINDS: &[EventKind] = &[EventKind::Purchase, EventKind::Click];
    let wanted: Vec<Event> = all_events(s).into_iter().filter(|e| KINDS.contains(&e.kind)).collect();
    assert!(!wanted.is_empty() && wanted.len() < all_events(s).len());
    let mut got = Vec::new();
    s.scan_events(EventFilter { kinds: Some(KINDS), ..EventFilter::default() }, &mut |_, e| {
        got.push(e);
        ControlFlow::Continue(())
    })
    .expect("scan");
    assert_eq!(got, wanted);

    // CSR from the chunks equals one built from decoded events.
    let m = load_interactions(s, InteractionsBuilder::new(InteractionWeights::default())).expect("csr");
    let names_u = s.user_names().expect("u");
    let names_i = s.item_names().expect("i");
    let mut b = InteractionsBuilder::new(InteractionWeights::default());
    for e in all_events(s) {
        let u = names_u.iter().position(|x| Some(x.as_str()) == e.user.as_ref().map(|u| u.as_str())).expect("user");
        let i = names_i.iter().position(|x| Some(x.as_str()) == e.item.as_ref().map(|u| u.as_str())).expect("item");
        b.push(UserIdx(u as u32), ItemIdx(i as u32), e.kind, e.ts, e.quantity);
    }
    assert_eq!(m, b.build(names_u.len(), names_i.len()));
}

#[test]
fn redb_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path()).expect("open");
    contract(&s);
    drop(s);
    // Everything is still there after reopening.
    let s = RedbStore::open(dir.path()).expect("reopen");
    assert_eq!(s.counts().expect("counts").events, 20_001);
    assert_eq!(s.item("i1").expect("get").expect("exists").revision, 3);
}

#[test]
fn segment_runs_memberships_and_history() {
    use tailor_store::{SegmentDef, SegmentationRun};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path()).expect("open");
    let run = |segs: &[&str], at: i64| SegmentationRun {
        id: 0,
        name: "kmeans".into(),
        created_at: Timestamp(at),
        segments: segs.iter().map(|n| SegmentDef { name: (*n).into(), description: None, size: 0 }).collect(),
        record: serde_json::json!({"k": segs.len()}),
    };
    let m = |v: &[(&str, &[&str])]| -> Vec<(String, Vec<String>)> {
        v.iter().map(|(u, s)| ((*u).to_owned(), s.iter().map(|x| (*x).to_owned()).collect())).collect()
    };
    let first = m(&[("u1", &["a"]), ("u2", &["b"]), ("u3", &["a"])]);
    let id1 = s.save_segmentation(run(&["a", "b"], 1000), &mut first.into_iter()).expect("save");
    // Another segmentation does not disturb this one.
    let rfm = SegmentationRun { name: "rfm".into(), ..run(&["Champions"], 1500) };
    s.save_segmentation(rfm, &mut m(&[("u1", &["Champions"])]).into_iter()).expect("save rfm");
    let second = m(&[("u1", &["a"]), ("u2", &["a"]), ("u4", &["b"])]);
    let id2 = s.save_segmentation(run(&["a", "b"], 2000), &mut second.into_iter()).expect("save");
    assert!(id2 > id1);
    assert_eq!(s.segmentation("kmeans", None).expect("get").map(|r| r.id), Some(id2));
    assert_eq!(s.segmentation("kmeans", Some(id1)).expect("get").map(|r| r.created_at), Some(Timestamp(1000)));
    assert_eq!(s.segment_members("kmeans", "a").expect("members"), vec!["u1", "u2"]);
    assert_eq!(s.segment_members("kmeans", "b").expect("members"), vec!["u4"]);
    assert_eq!(
        s.user_segments("u1").expect("user"),
        vec![("kmeans".to_owned(), vec!["a".to_owned()]), ("rfm".to_owned(), vec!["Champions".to_owned()])]
    );
    type Move = (String, Vec<String>, Vec<String>, Option<u64>);
    let moves: Vec<Move> = s
        .membership_history("kmeans", None)
        .expect("history")
        .into_iter()
        .map(|c| (c.user, c.from, c.to, c.run))
        .collect();
    let v = |x: &[&str]| x.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        moves,
        vec![
            ("u1".into(), v(&[]), v(&["a"]), Some(id1)),
            ("u2".into(), v(&[]), v(&["b"]), Some(id1)),
            ("u3".into(), v(&[]), v(&["a"]), Some(id1)),
            ("u2".into(), v(&["b"]), v(&["a"]), Some(id2)),
            ("u4".into(), v(&[]), v(&["b"]), Some(id2)),
            ("u3".into(), v(&["a"]), v(&[]), Some(id2)),
        ]
    );
    // Real-time reassignment: recorded only when something changes.
    assert!(s.set_user_segments("kmeans", "u1", v(&["b"]), Timestamp(3000)).expect("set"));
    assert!(!s.set_user_segments("kmeans", "u1", v(&["b"]), Timestamp(3001)).expect("set"));
    let h = s.membership_history("kmeans", Some("u1")).expect("history");
    assert_eq!(h.last().map(|c| (c.to.clone(), c.run, c.at)), Some((v(&["b"]), None, Timestamp(3000))));
    drop(s);
    // Durable across reopening.
    let s = RedbStore::open(dir.path()).expect("reopen");
    assert_eq!(s.segment_members("kmeans", "b").expect("members"), vec!["u1", "u4"]);
    assert_eq!(s.segmentation_runs().expect("runs").len(), 3);
}

#[test]
fn group_commit_reports_each_batch_and_persists_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path()).expect("open");
    let ev = events(30);
    let a = WriteBatch { events: ev[..20].to_vec(), ..WriteBatch::default() };
    let b = WriteBatch { events: ev[10..].to_vec(), ..WriteBatch::default() };
    let c = WriteBatch { items: vec![Item::new("new-item")], ..WriteBatch::default() };
    let r = s.write_group(vec![a, b, c]).expect("group");
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].events_added, r[0].events_duplicate), (20, 0));
    assert_eq!((r[1].events_added, r[1].events_duplicate), (10, 10), "events 10..20 were in the first batch");
    assert_eq!((r[2].items_inserted, r[2].events_added), (1, 0));
    drop(s);
    let s = RedbStore::open(dir.path()).expect("reopen");
    assert_eq!(s.counts().expect("counts").events, 30);
    assert!(s.item("new-item").expect("get").is_some());
}

#[test]
fn erasure_removes_every_trace_of_a_user() {
    use tailor_store::{SegmentDef, SegmentationRun};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = RedbStore::open(dir.path()).expect("open");
    // 70 events over 7 users (u0..u6), spread over several chunks by writing in parts.
    let ev = events(70);
    for part in ev.chunks(9) {
        s.write(WriteBatch { events: part.to_vec(), ..WriteBatch::default() }).expect("write");
    }
    s.write(WriteBatch { users: vec![User::new("u3"), User::new("u4")], ..WriteBatch::default() }).expect("users");
    let run = SegmentationRun {
        id: 0,
        name: "rules".into(),
        created_at: Timestamp(1),
        segments: vec![SegmentDef { name: "a".into(), description: None, size: 2 }],
        record: serde_json::json!({}),
    };
    let members = vec![("u3".to_string(), vec!["a".to_string()]), ("u4".to_string(), vec!["a".to_string()])];
    s.save_segmentation(run, &mut members.into_iter()).expect("segments");
    s.set_user_segments("rules", "u3", vec![], Timestamp(2)).expect("move");
    let u3_events =
        all_events(&s).iter().filter(|e| e.user.as_ref().is_some_and(|u| u.as_str() == "u3")).count() as u64;
    assert_eq!(u3_events, 10);

    let e = s.erase_user("u3").expect("erase");
    assert_eq!((e.found, e.events), (true, 10));
    assert!(e.segment_entries >= 2, "{e:?}");
    let check = |s: &RedbStore| {
        let left = all_events(s);
        assert_eq!(left.len(), 60);
        assert!(left.iter().all(|e| e.user.as_ref().is_none_or(|u| u.as_str() != "u3")));
        assert_eq!(s.counts().expect("counts").events, 60);
        assert!(s.user("u3").expect("get").is_none());
        assert!(s.user("u4").expect("get").is_some());
        assert!(!s.user_names().expect("names").iter().any(|n| n == "u3"));
        assert!(s.user_segments("u3").expect("segments").iter().all(|(_, v)| v.is_empty()));
        assert!(s.membership_history("rules", Some("u3")).expect("history").is_empty());
        assert_eq!(s.segment_members("rules", "a").expect("members"), vec!["u4"]);
    };
    check(&s);
    drop(s);
    let s = RedbStore::open(dir.path()).expect("reopen");
    check(&s);
    // The erased history sent again (a re-import, a replay) stays erased (regression:
    // issue #18); the same id acting after the erasure is a new user.
    let again: Vec<Event> =
        ev.iter().filter(|e| e.user.as_ref().is_some_and(|u| u.as_str() == "u3")).cloned().collect();
    let r = s.write(WriteBatch { events: again.clone(), ..WriteBatch::default() }).expect("write");
    assert_eq!((r.events_added, r.events_erased), (0, 10));
    let later: Vec<Event> = again
        .into_iter()
        .map(|mut e| {
            e.ts = tailor_core::Timestamp::now();
            e.id = None;
            e
        })
        .collect();
    let r = s.write(WriteBatch { events: later, ..WriteBatch::default() }).expect("write");
    assert!(r.events_added > 0 && r.events_erased == 0, "{r:?}");
    assert_eq!(s.erase_user("nobody").expect("erase"), tailor_store::Erasure::default());
}
