//! The malformed-input catalogue: each bad input gets its exact message, and the store is
//! unchanged after every default-policy failure.

use std::io::Write;
use std::path::Path;

use tailor_ingest::import::ImportOptions;
use tailor_ingest::mapping::Target;
use tailor_store::{RedbStore, Store};

use crate::{import, text};

const HINT: &str =
    "\nfix the rows, or pass --skip-invalid to import the valid rows and write the invalid ones to a rejects file";

struct Case<'a> {
    name: &'a str,
    file: &'a str,
    content: Vec<u8>,
    target: Target,
    maps: &'a [&'a str],
    sets: &'a [&'a str],
    expect: String,
}

fn rejected(rows: &[&str]) -> String {
    let mut s = format!(
        "import of F rejected, nothing was written: {} invalid row{} (first {} shown)",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rows.len()
    );
    for r in rows {
        s.push_str("\nF:");
        s.push_str(r);
    }
    s.push_str(HINT);
    s
}

fn ev(body: &str) -> Vec<u8> {
    format!("user,item,ts,quantity,price\n{body}").into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn cases() -> Vec<Case<'static>> {
    let purchase: &[&str] = &["kind=purchase"];
    let mut big_line = b"user,item,ts\n".to_vec();
    big_line.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big_line.extend_from_slice(b",i1,2020-01-01\n");
    let mut bad_utf8 = b"user,item,ts,quantity,price\nu".to_vec();
    bad_utf8.extend_from_slice(&[0xE9, b'1']);
    bad_utf8.extend_from_slice(b",i1,2020-01-01,1,2\n");
    let mut truncated = gzip(&ev(&"u1,i1,2020-01-01,1,2\n".repeat(5000)));
    truncated.truncate(truncated.len() / 2);
    let many: String = (0..25).map(|k| format!("u{k},i1,2020-01-01,x{k},2\n")).collect();
    let many_expect = {
        let mut s = String::from("import of F rejected, nothing was written: 25 invalid rows (first 20 shown)");
        for k in 0..20 {
            s.push_str(&format!("\nF:{}: quantity: \"x{k}\" is not a number", k + 2));
        }
        s.push_str(HINT);
        s
    };
    let kinds = "view, click, add_to_cart, remove_from_cart, purchase, return, impression, search, rating, wishlist";
    vec![
        Case { name: "empty file", file: "e.csv", content: vec![], target: Target::Events, maps: &[], sets: purchase, expect: "F: the file is empty (expected a header row)".into() },
        Case { name: "header only", file: "h.csv", content: ev(""), target: Target::Events, maps: &[], sets: purchase, expect: "F: no data rows after the header".into() },
        Case { name: "duplicate header names", file: "d.csv", content: b"user,item,user,ts\nu,i,u,1\n".to_vec(), target: Target::Events, maps: &[], sets: purchase, expect: "F:1: duplicate column name \"user\" (columns 1 and 3)".into() },
        Case { name: "wrong delimiter", file: "w.csv", content: b"user;item;ts\nu1;i1;2020-01-01\n".to_vec(), target: Target::Events, maps: &[], sets: purchase, expect: "F:1: no column for the required field \"ts\" (pass --map FIELD=COLUMN) (the header is one column \"user;item;ts\"; is the delimiter ';'? pass --delimiter)".into() },
        Case { name: "missing mapped column", file: "m.csv", content: ev("u1,i1,2020-01-01,1,2\n"), target: Target::Events, maps: &["user=CustomerID"], sets: purchase, expect: "F:1: column \"CustomerID\" not found; the header has 5 columns: \"user\", \"item\", \"ts\", \"quantity\", \"price\"".into() },
        Case { name: "no kind", file: "k.csv", content: ev("u1,i1,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: &[], expect: "F:1: no column for the required field \"kind\" (pass --set kind=purchase or --map kind=COLUMN)".into() },
        Case { name: "unparsable number", file: "n.csv", content: ev("u1,i1,2020-01-01,abc,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: quantity: \"abc\" is not a number"]) },
        Case { name: "fractional quantity", file: "f.csv", content: ev("u1,i1,2020-01-01,1.5,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: quantity: \"1.5\" is not a whole number"]) },
        Case { name: "zero quantity", file: "z.csv", content: ev("u1,i1,2020-01-01,0,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: quantity: must be at least 1"]) },
        Case { name: "negative quantity", file: "q.csv", content: ev("u1,i1,2020-01-01,-2,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: quantity: -2 is negative (record returns as kind=return with a positive quantity)"]) },
        Case { name: "unparsable date", file: "t.csv", content: ev("u1,i1,yesterday,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: ts: \"yesterday\" is not a timestamp (expected Unix seconds or milliseconds, RFC 3339, or YYYY-MM-DD[ HH:MM:SS]; use --ts-format for others)"]) },
        Case { name: "impossible date", file: "t2.csv", content: ev("u1,i1,2021-02-30,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: ts: \"2021-02-30\" is not a timestamp (expected Unix seconds or milliseconds, RFC 3339, or YYYY-MM-DD[ HH:MM:SS]; use --ts-format for others)"]) },
        Case { name: "event before 1970", file: "t3.csv", content: ev("u1,i1,1960-05-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: ts: 1960-05-01T00:00:00Z is before 1970-01-01 (events must be from 1970 on)"]) },
        Case { name: "date not matching --ts-format", file: "t4.csv", content: ev("u1,i1,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: String::new() },
        Case { name: "NaN price", file: "p1.csv", content: ev("u1,i1,2020-01-01,1,NaN\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: unit_price: NaN is not a finite number"]) },
        Case { name: "infinite price", file: "p2.csv", content: ev("u1,i1,2020-01-01,1,inf\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: unit_price: inf is not a finite number"]) },
        Case { name: "negative price", file: "p3.csv", content: ev("u1,i1,2020-01-01,1,-3\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: unit_price: -3 is negative"]) },
        Case { name: "empty user id", file: "u.csv", content: ev(",i1,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: user: is missing (an event needs a user or a session id)"]) },
        Case { name: "empty item id", file: "i.csv", content: ev("u1,,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: item: is missing (a purchase event needs an item)"]) },
        Case { name: "bad UTF-8", file: "b.csv", content: bad_utf8, target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: user: invalid UTF-8 (byte 0xE9 at offset 1)"]) },
        Case { name: "10 MB single line", file: "l.csv", content: big_line, target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: row: the line is 10485775 bytes long (the limit is 1048576; raise import.max_line_bytes)"]) },
        Case { name: "wrong number of fields", file: "c.csv", content: ev("u1,i1,2020-01-01,1,2\nu2,i2\n"), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["3: row: the row has 2 fields, the header has 5"]) },
        Case { name: "unknown event kind", file: "kind.csv", content: b"user,item,ts,kind\nu1,i1,2020-01-01,teleport\n".to_vec(), target: Target::Events, maps: &[], sets: &[], expect: rejected(&[&format!("2: kind: unknown event kind \"teleport\" (expected one of {kinds})")]) },
        Case { name: "rating without value", file: "r.csv", content: b"user,item,ts\nu1,i1,2020-01-01\n".to_vec(), target: Target::Events, maps: &[], sets: &["kind=rating"], expect: rejected(&["2: rating: is missing (a rating event needs a value)"]) },
        Case { name: "truncated gzip", file: "g.csv.gz", content: truncated, target: Target::Events, maps: &[], sets: purchase, expect: "GZIP".into() },
        Case { name: "invalid JSON line", file: "j.jsonl", content: b"{\"user\":\"u1\",\"item\":\"i1\",\"ts\":\"2020-01-01\"}\n{\"user\": \n".to_vec(), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["2: row: invalid JSON: EOF while parsing a value at line 2 column 0"]) },
        Case { name: "JSON object where a value belongs", file: "o.jsonl", content: b"{\"user\":{\"id\":1},\"item\":\"i1\",\"ts\":\"2020-01-01\"}\n".to_vec(), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["1: user: expected a string or a number, found an object"]) },
        Case { name: "JSON line that is not an object", file: "a.jsonl", content: b"[1,2]\n".to_vec(), target: Target::Events, maps: &[], sets: purchase, expect: rejected(&["1: row: expected a JSON object"]) },
        Case { name: "not a Parquet file", file: "x.parquet", content: ev("u1,i1,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: "F: not a readable Parquet file: Parquet error: Invalid Parquet file. Corrupt footer".into() },
        Case { name: "unknown extension", file: "data.bin", content: ev("u1,i1,2020-01-01,1,2\n"), target: Target::Events, maps: &[], sets: purchase, expect: "F: cannot tell the format from the name; pass --format csv|tsv|jsonl|parquet".into() },
        Case { name: "item with bad currency", file: "items.csv", content: b"id,title,currency\nsku1,Shoe,eur\n".to_vec(), target: Target::Items, maps: &[], sets: &[], expect: rejected(&["2: currency: \"eur\" is not a 3-letter ISO 4217 code like EUR"]) },
        Case { name: "user with bad urbanicity", file: "users.csv", content: b"id,urbanicity,age\nu1,metropolis,30\n".to_vec(), target: Target::Users, maps: &[], sets: &[], expect: rejected(&["2: urbanicity: \"metropolis\" is not one of urban, suburban, rural"]) },
        Case { name: "user with a non-numeric age", file: "users2.csv", content: b"id,age\nu1,old\n".to_vec(), target: Target::Users, maps: &[], sets: &[], expect: rejected(&["2: age: \"old\" is not a number"]) },
        Case { name: "more errors than listed", file: "many.csv", content: ev(&many), target: Target::Events, maps: &[], sets: purchase, expect: many_expect },
    ]
}

#[test]
fn every_bad_input_gets_its_message_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("data")).expect("store");
    // An earlier, acknowledged import that must survive every failure below.
    let good = dir.path().join("good.csv");
    fs_err::write(&good, ev("u0,i0,2020-01-01,1,2\n")).expect("write");
    import(&store, Target::Events, &good, &[], &["kind=purchase"], &ImportOptions::default()).expect("good import");
    let before = store.counts().expect("counts");
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in cases {
        let path = dir.path().join(case.file);
        fs_err::write(&path, &case.content).expect("write case");
        let mut opts = ImportOptions::default();
        if case.name == "date not matching --ts-format" {
            let mut m =
                tailor_ingest::mapping::Mapping::parse(case.target, &[], &["kind=purchase".into()]).expect("mapping");
            m.ts_format = Some("%d/%m/%Y".into());
            let err = tailor_ingest::import::import_file(&path, &m, &opts, &store, &mut |_| {}).expect_err(case.name);
            assert_eq!(text(&err, &path), rejected(&["2: ts: \"2020-01-01\" does not match the format \"%d/%m/%Y\""]));
            continue;
        }
        opts.max_errors = 20;
        let got = match import(&store, case.target, &path, case.maps, case.sets, &opts) {
            Ok(r) => format!("unexpectedly imported: {r:?}"),
            Err(e) => text(&e, &path),
        };
        let ok = if case.expect == "GZIP" {
            got.starts_with("F: read failed after line ") && got.contains(": the gzip data is corrupt or truncated (")
        } else {
            got == case.expect
        };
        if !ok {
            failures.push(format!("{}:\n  got:    {got:?}\n  expect: {:?}", case.name, case.expect));
        }
        assert_eq!(store.counts().expect("counts"), before, "{}: the store changed", case.name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn skip_invalid_writes_good_rows_and_a_rejects_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("data")).expect("store");
    let path = dir.path().join("mixed.csv");
    fs_err::write(
        &path,
        ev("u1,i1,2020-01-01,1,2\nu2,i2,2020-01-02,x,2\nu3,i3,2020-01-03,1,-1\nu4,i4,2020-01-04,2,3\n"),
    )
    .expect("write");
    let opts = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report = import(&store, Target::Events, &path, &[], &["kind=purchase"], &opts).expect("imports");
    assert_eq!((report.rows, report.valid_rows, report.rejected_rows), (4, 2, 2));
    assert_eq!(report.written.events_added, 2);
    let rejects =
        fs_err::read_to_string(Path::new(report.rejects_file.as_deref().expect("rejects file"))).expect("read");
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,field,reason,user,item,ts,quantity,price");
    assert_eq!(lines[1], "3,quantity,\"\"\"x\"\" is not a number\",u2,i2,2020-01-02,x,2");
    assert_eq!(lines[2], "4,unit_price,-1 is negative,u3,i3,2020-01-03,1,-1");
    assert_eq!(store.counts().expect("counts").events, 2);
}
