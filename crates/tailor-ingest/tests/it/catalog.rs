//! Catalog and user imports.

use tailor_core::Urbanicity;
use tailor_ingest::import::ImportOptions;
use tailor_ingest::mapping::Target;
use tailor_store::{RedbStore, Store};

use crate::import;

#[test]
fn items_and_users_with_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s")).expect("store");
    let items = dir.path().join("items.csv");
    fs_err::write(
        &items,
        "sku,name,description,category,brand,price,sale_price,currency,tags,stock,created_at,colour\n\
         A1,Runner,Light shoe,Women > Shoes > Sneakers,Acme,80,60,EUR,sport|new,12,2026-01-05,red\n\
         A2,Boot,,Women > Shoes > Boots,Acme,120,,EUR,,0,2025-10-01,black\n",
    )
    .expect("write");
    let r =
        import(&store, Target::Items, &items, &["id=sku,title=name,attr.color=colour"], &[], &ImportOptions::default())
            .expect("items");
    assert_eq!(r.written.items_inserted, 2);
    let a1 = store.item("A1").expect("get").expect("A1").value;
    assert_eq!(a1.category, ["Women", "Shoes", "Sneakers"]);
    assert_eq!((a1.price, a1.sale_price, a1.on_sale()), (Some(80.0), Some(60.0), true));
    assert_eq!(a1.tags, ["sport", "new"]);
    assert_eq!(a1.attributes["color"], "red");
    assert_eq!(a1.created_at.map(|t| t.to_rfc3339()).as_deref(), Some("2026-01-05T00:00:00Z"));
    let a2 = store.item("A2").expect("get").expect("A2").value;
    assert_eq!((a2.stock, a2.in_stock, a2.description), (Some(0), false, None));
    // A second feed replaces the record and bumps the revision.
    fs_err::write(&items, "id,title,price\nA1,Runner 2,85\n").expect("write");
    let r = import(&store, Target::Items, &items, &[], &[], &ImportOptions::default()).expect("items");
    assert_eq!(r.written.items_updated, 1);
    let a1 = store.item("A1").expect("get").expect("A1");
    assert_eq!((a1.value.title.as_deref(), a1.value.brand, a1.revision), (Some("Runner 2"), None, 2));

    let users = dir.path().join("users.jsonl");
    fs_err::write(
        &users,
        "{\"id\":\"u1\",\"age\":31,\"gender\":\"F\",\"country\":\"DE\",\"region\":\"Bavaria\",\"city\":\"Munich\",\"urbanicity\":\"urban\",\"signup_at\":\"2024-03-01T10:00:00Z\",\"preferred_device\":\"mobile\",\"consent_email\":true,\"consent_push\":false,\"attr\":{\"tier\":\"gold\"}}\n",
    )
    .expect("write");
    let r =
        import(&store, Target::Users, &users, &["attr.tier=attr.tier"], &[], &ImportOptions::default()).expect("users");
    assert_eq!(r.written.users_inserted, 1);
    let u = store.user("u1").expect("get").expect("u1").value;
    assert_eq!(
        (u.age, u.urbanicity, u.consent_email, u.consent_push),
        (Some(31), Some(Urbanicity::Urban), true, false)
    );
    assert_eq!((u.city.as_deref(), u.preferred_device.as_deref()), (Some("Munich"), Some("mobile")));
    assert_eq!(u.attributes["tier"], "gold");
}

#[test]
fn events_create_the_items_and_users_they_mention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s")).expect("store");
    let file = dir.path().join("ev.tsv");
    fs_err::write(
        &file,
        "cust\tsku\tdesc\twhen\tcountry\tq\nc1\ts1\tMug\t1300000000\tFR\tred mug\nc1\ts2\tCup\t1300000100\tFR\t\n",
    )
    .expect("write");
    let r = import(
        &store,
        Target::Events,
        &file,
        &["user=cust,item=sku,item.title=desc,ts=when,user.country=country,context.country=country,value=q"],
        &["kind=search"],
        &ImportOptions::default(),
    )
    .expect("imports");
    assert_eq!((r.written.events_added, r.written.items_inserted, r.written.users_inserted), (2, 2, 1));
    assert_eq!(store.item("s1").expect("get").expect("s1").value.title.as_deref(), Some("Mug"));
    assert_eq!(store.user("c1").expect("get").expect("c1").value.country.as_deref(), Some("FR"));
    let mut queries = Vec::new();
    store
        .scan_events(Default::default(), &mut |_, e| {
            queries.push(e.query);
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(queries, [Some("red mug".to_owned()), None]);
}
