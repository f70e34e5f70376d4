//! Imports of the real public datasets in ../shared/data.

use tailor_ingest::presets::{import_movielens, online_retail};
use tailor_store::{RedbStore, Store};

use crate::shared_data;

#[test]
fn movielens_100k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("store");
    let r = import_movielens(&shared_data().join("ml-100k"), &store, 20).expect("imports");
    assert_eq!((r.ratings, r.movies, r.users, r.genres), (100_000, 1682, 943, 19));
    let c = store.counts().expect("counts");
    assert_eq!((c.events, c.users, c.items, c.item_records, c.user_records), (100_000, 943, 1682, 1682, 943));
    let toy = store.item("1").expect("get").expect("Toy Story");
    assert_eq!(toy.value.title.as_deref(), Some("Toy Story (1995)"));
    assert_eq!(toy.value.tags, ["Animation", "Children's", "Comedy"]);
    assert_eq!(toy.value.category, ["Animation"]);
    let u = store.user("1").expect("get").expect("user 1");
    assert_eq!((u.value.age, u.value.gender.as_deref()), (Some(24), Some("M")));
    assert_eq!(u.value.attributes["occupation"], "technician");
    // Latin-1 titles decode.
    let mut found = false;
    store.for_each_item(&mut |_, i| found |= i.value.title.as_deref().is_some_and(|t| t.contains('é'))).expect("items");
    assert!(found);
    let again = import_movielens(&shared_data().join("ml-100k"), &store, 20).expect("again");
    assert_eq!(again.written.events_added, 0);
}

/// Slow in debug builds: run with `cargo test -- --ignored`.
#[test]
#[ignore = "slow: 541,909 rows"]
fn online_retail_counts_match_the_readme() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("store");
    let file = shared_data().join("online-retail/online_retail.csv.gz");
    let r = tailor_ingest::import::import_file(
        &file,
        &online_retail().expect("preset"),
        &Default::default(),
        &store,
        &mut |_| {},
    )
    .expect("imports");
    assert_eq!(r.rows, 541_909);
    let s = tailor_store::stats::compute(&store, 3).expect("stats");
    assert_eq!((s.events, s.users, s.items, s.orders, s.countries), (541_909, 4372, 4070, 25_900, 38));
    assert_eq!(s.anonymous_events, 135_080);
    assert_eq!(s.first_event.as_deref(), Some("2010-12-01T08:26:00Z"));
    assert_eq!(s.last_event.as_deref(), Some("2011-12-09T12:50:00Z"));
    // Quantity <= 0 lines (10,624) and the two negative "bad debt" prices are returns.
    assert_eq!(s.events_by_kind["return"], 10_626);
}

/// The raw Parquet file and the tidy CSV describe the same lines: importing both adds each
/// event once. Slow in debug builds.
#[test]
#[ignore = "slow: 2 x 541,909 rows"]
#[cfg(feature = "parquet")]
fn online_retail_parquet_and_csv_give_the_same_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path()).expect("store");
    let preset = online_retail().expect("preset");
    let pq = shared_data().join("online-retail/online_retail.raw.parquet");
    let r =
        tailor_ingest::import::import_file(&pq, &preset, &Default::default(), &store, &mut |_| {}).expect("parquet");
    assert_eq!(r.written.events_added, 541_909);
    let csv = shared_data().join("online-retail/online_retail.csv.gz");
    let r = tailor_ingest::import::import_file(&csv, &preset, &Default::default(), &store, &mut |_| {}).expect("csv");
    assert_eq!((r.written.events_added, r.written.events_duplicate), (0, 541_909));
}
