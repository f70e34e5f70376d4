//! Importing a file into the store under the bad-row policy.
//!
//! Default policy: any invalid row rejects the whole import; the error lists the first
//! `max_errors` rows as `path:line: field: reason` and nothing is written. With
//! `skip_invalid`, the valid rows are written and the invalid ones go to a rejects file.
//! The whole import is one store transaction: a crash leaves none or all of it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tailor_core::{Event, Item, User};
use tailor_store::{Store, UpsertMode, WriteBatch, WriteReport};

use crate::error::{IngestError, Result, RowError};
use crate::mapping::{Mapping, Target};
use crate::source::{self, ReadError, Row, SourceOptions};

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// How to read the file.
    pub source: SourceOptions,
    /// Write valid rows and send invalid ones to the rejects file instead of failing.
    pub skip_invalid: bool,
    /// Where rejected rows go (default `<file>.rejects.csv`).
    pub rejects_path: Option<PathBuf>,
    /// How many row errors an error message lists.
    pub max_errors: usize,
    /// Bounds on prices, quantities and event times (`[limits]`).
    pub limits: tailor_core::Limits,
    /// Accept events dated later than `limits.max_future_seconds` ahead of the clock (an
    /// import's own policy: a file may hold scheduled or shifted data on purpose).
    pub allow_future: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            source: SourceOptions::default(),
            skip_invalid: false,
            rejects_path: None,
            max_errors: 20,
            limits: tailor_core::Limits::default(),
            allow_future: false,
        }
    }
}

/// The `[limits]` checks of one parsed row, with the import's own future-date policy.
fn within_limits(
    opts: &ImportOptions,
    line: u64,
    now: tailor_core::Timestamp,
    e: Option<&Event>,
    item: Option<&Item>,
) -> std::result::Result<(), RowError> {
    let err = |field: &str, e: tailor_core::CoreError, hint: &str| {
        let tailor_core::CoreError::Invalid { reason, .. } = e;
        RowError::new(line, field, format!("{reason}{hint}"))
    };
    if let Some(e) = e {
        let l = &opts.limits;
        let limits = if opts.allow_future {
            tailor_core::Limits { max_future_seconds: 366 * 86_400 * 200, ..l.clone() }
        } else {
            l.clone()
        };
        limits.check_event(e, now).map_err(|x| {
            let hint = if x.field() == "ts" { "; pass --allow-future to import it anyway" } else { "" };
            err(x.field(), x, hint)
        })?;
    }
    if let Some(i) = item {
        opts.limits.check_item(i).map_err(|x| err(x.field(), x, ""))?;
    }
    Ok(())
}

/// Progress of an import, for bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rows read.
    pub rows: u64,
    /// Input bytes read.
    pub bytes: u64,
    /// Input size in bytes.
    pub total_bytes: u64,
    /// True once reading is done and the store write begins.
    pub writing: bool,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The input file.
    pub path: String,
    /// Rows read (header excluded).
    pub rows: u64,
    /// Rows that passed validation.
    pub valid_rows: u64,
    /// Rows written to the rejects file.
    pub rejected_rows: u64,
    /// Where rejected rows went.
    pub rejects_file: Option<String>,
    /// What the store did.
    pub written: WriteReport,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Time until the file was read and validated (the write overlaps with it).
    pub parse_seconds: f64,
    /// Time after parsing until the durable commit.
    pub write_seconds: f64,
    /// Rows read per second of wall time (parsing, validation and the write).
    pub rows_per_second: f64,
}

/// Parsed content of a file, before it is written.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Events with ids assigned.
    pub events: Vec<Event>,
    /// Items (merged per id, in first-seen order).
    pub items: Vec<Item>,
    /// Users (merged per id, in first-seen order).
    pub users: Vec<User>,
    /// Rows read.
    pub rows: u64,
    /// Invalid rows (all of them, in order).
    pub errors: Vec<RowError>,
    /// Raw selected values of each invalid row, for the rejects file.
    pub rejected_values: Vec<Vec<String>>,
    /// The selected columns.
    pub columns: Vec<String>,
}

/// A header read as one column that contains another common delimiter suggests the wrong one.
fn delimiter_hint(columns: &[String], delimiter: Option<u8>) -> String {
    let [only] = columns else { return String::new() };
    let used = delimiter.map_or(',', char::from);
    [';', '\t', '|', ','].into_iter().find(|&d| d != used && only.contains(d)).map_or(String::new(), |d| {
        format!(" (the header is one column {only:?}; is the delimiter {d:?}? pass --delimiter)")
    })
}

/// Keeps one merged record per id, in first-seen order.
struct Merged<T> {
    index: HashMap<String, usize>,
    list: Vec<T>,
}

impl<T> Merged<T> {
    fn new() -> Self {
        Self { index: HashMap::new(), list: Vec::new() }
    }

    fn put(&mut self, value: T, id: fn(&T) -> &str, merge: fn(&mut T, T)) {
        match self.index.get(id(&value)) {
            Some(&k) => merge(&mut self.list[k], value),
            None => {
                self.index.insert(id(&value).to_owned(), self.list.len());
                self.list.push(value);
            }
        }
    }
}

fn item_id(i: &Item) -> &str {
    &i.id.0
}

fn user_id(u: &User) -> &str {
    &u.id.0
}

fn replace<T>(a: &mut T, b: T) {
    *a = b;
}

/// Events handed to the sink at a time while parsing.
pub const STREAM_EVENTS: usize = 65_536;

/// Reads and validates a whole file, keeping every event in `Parsed::events`.
pub fn parse_file(
    path: &Path,
    mapping: &Mapping,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Parsed> {
    let mut events = Vec::new();
    let mut parsed = parse_streaming(path, mapping, opts, progress, &mut |batch| events.extend(batch))?;
    parsed.events = events;
    Ok(parsed)
}

/// Reads and validates a whole file, handing valid events to `sink` in batches of
/// [`STREAM_EVENTS`] as they are read (items and users are returned merged at the end).
pub fn parse_streaming(
    path: &Path,
    mapping: &Mapping,
    opts: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(Vec<Event>),
) -> Result<Parsed> {
    let mut src = source::open(path, &opts.source)?;
    let total_bytes = fs_err::metadata(path).map(|m| m.len()).unwrap_or(0);
    let shown = path.display().to_string();
    let hint = delimiter_hint(src.columns(), opts.source.delimiter);
    let header_error =
        |reason: String| IngestError::Header { path: shown.clone(), line: 1, reason: format!("{reason}{hint}") };
    let resolved = mapping.resolve(src.columns()).map_err(header_error)?;
    src.select(&resolved.columns).map_err(header_error)?;
    let mut out = Parsed { columns: resolved.columns.clone(), ..Parsed::default() };
    let mut items = Merged::new();
    let mut users = Merged::new();
    let mut ordinals: HashMap<u128, u32> = HashMap::new();
    let mut row = Row::default();
    let item_merge: fn(&mut Item, Item) = if mapping.target() == Target::Events { Item::merge_from } else { replace };
    let user_merge: fn(&mut User, User) = if mapping.target() == Target::Events { User::merge_from } else { replace };
    let now = tailor_core::Timestamp::now();
    loop {
        let got = match src.next_row(&mut row) {
            Ok(false) => break,
            Ok(true) => Ok(()),
            Err(ReadError::Fatal(e)) => return Err(e),
            Err(ReadError::Row(e)) => Err(e),
        };
        out.rows += 1;
        if out.rows.is_multiple_of(65_536) {
            progress(Progress { rows: out.rows, bytes: src.bytes_read(), total_bytes, writing: false });
        }
        let line = row.line;
        let result = got.and_then(|()| match mapping.target() {
            Target::Events => resolved
                .event(&row)
                .and_then(|(e, item, user)| {
                    within_limits(opts, line, now, Some(&e), item.as_ref()).map(|()| (e, item, user))
                })
                .map(|(mut e, item, user)| {
                    if e.id.is_none() {
                        let ord = ordinals.entry(e.content_hash()).or_insert(0);
                        e.id = Some(e.derive_id(*ord));
                        *ord += 1;
                    }
                    if let Some(i) = item {
                        items.put(i, item_id, item_merge);
                    }
                    if let Some(u) = user {
                        users.put(u, user_id, user_merge);
                    }
                    out.events.push(e);
                    if out.events.len() >= STREAM_EVENTS {
                        sink(std::mem::take(&mut out.events));
                    }
                }),
            Target::Items => resolved
                .item(&row)
                .and_then(|i| within_limits(opts, line, now, None, Some(&i)).map(|()| i))
                .map(|i| items.put(i, item_id, item_merge)),
            Target::Users => resolved.user(&row).map(|u| users.put(u, user_id, user_merge)),
        });
        if let Err(e) = result {
            if opts.skip_invalid {
                out.rejected_values.push(
                    (0..resolved.columns.len())
                        .map(|k| row.raw(k).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default())
                        .collect(),
                );
            }
            out.errors.push(e);
        }
    }
    if out.rows == 0 {
        return Err(IngestError::File { path: shown, reason: "no data rows after the header".into() });
    }
    if !out.events.is_empty() {
        sink(std::mem::take(&mut out.events));
    }
    out.items = items.list;
    out.users = users.list;
    progress(Progress { rows: out.rows, bytes: total_bytes, total_bytes, writing: true });
    Ok(out)
}

/// Imports `path` into `store` under the policy in `opts`.
pub fn import_file(
    path: &Path,
    mapping: &Mapping,
    opts: &ImportOptions,
    store: &dyn Store,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ImportReport> {
    let start = Instant::now();
    let shown = path.display().to_string();
    let mode = if mapping.target() == Target::Events { UpsertMode::Merge } else { UpsertMode::Replace };
    // Parsing runs on its own thread and streams events into one store transaction, so
    // reading and writing overlap; the transaction commits only if the policy allows.
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::result::Result<WriteBatch, String>>(2);
    let mut parse_seconds = 0.0;
    let (parsed, written) = std::thread::scope(|scope| {
        let parser = scope.spawn(move || {
            let mut failed = false;
            let result = parse_streaming(path, mapping, opts, progress, &mut |events| {
                if !failed && tx.send(Ok(WriteBatch { events, mode, ..WriteBatch::default() })).is_err() {
                    failed = true;
                }
            });
            match &result {
                Ok(p) if p.errors.is_empty() || opts.skip_invalid => {
                    let last = WriteBatch { items: p.items.clone(), users: p.users.clone(), events: Vec::new(), mode };
                    let _ = tx.send(Ok(last));
                }
                Ok(p) => {
                    let _ = tx.send(Err(format!("{} invalid rows", p.errors.len())));
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
            (result, start.elapsed().as_secs_f64())
        });
        let written = store.write_all(&mut rx.iter());
        let (parsed, secs) = parser.join().unwrap_or_else(|_| {
            (Err(IngestError::File { path: shown.clone(), reason: "the parser thread panicked".into() }), 0.0)
        });
        parse_seconds = secs;
        (parsed, written)
    });
    let parsed = parsed?;
    let invalid = parsed.errors.len() as u64;
    if invalid > 0 && !opts.skip_invalid {
        let mut errors = parsed.errors;
        errors.truncate(opts.max_errors);
        return Err(IngestError::Rejected { path: shown, errors, total: invalid });
    }
    let written = written?;
    let rejects_file = if invalid > 0 {
        let target = opts.rejects_path.clone().unwrap_or_else(|| {
            let mut p = path.as_os_str().to_owned();
            p.push(".rejects.csv");
            PathBuf::from(p)
        });
        write_rejects(&target, &parsed)?;
        Some(target.display().to_string())
    } else {
        None
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok(ImportReport {
        path: shown,
        rows: parsed.rows,
        valid_rows: parsed.rows - invalid,
        rejected_rows: invalid,
        rejects_file,
        written,
        seconds,
        parse_seconds,
        write_seconds: seconds - parse_seconds,
        rows_per_second: parsed.rows as f64 / seconds.max(1e-9),
    })
}

fn write_rejects(target: &Path, parsed: &Parsed) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| IngestError::Output { path: target.to_owned(), reason: e.to_string() };
    let file = fs_err::File::create(target).map_err(|e| fail(&e))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let mut header = vec!["line".to_owned(), "field".to_owned(), "reason".to_owned()];
    header.extend(parsed.columns.iter().cloned());
    w.write_record(&header).map_err(|e| fail(&e))?;
    for (e, values) in parsed.errors.iter().zip(&parsed.rejected_values) {
        let mut rec = vec![e.line.to_string(), e.field.clone(), e.reason.clone()];
        rec.extend(values.iter().cloned());
        w.write_record(&rec).map_err(|e| fail(&e))?;
    }
    let mut inner = w.into_inner().map_err(|e| fail(&e))?;
    inner.flush().map_err(|e| fail(&e))?;
    Ok(())
}
