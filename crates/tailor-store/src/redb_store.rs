//! The embedded default store: one redb file (`tailor.redb`) in the data directory.
//!
//! Tables: `meta` (schema version, counters), `{user,item}_ids` (external id → dense index),
//! `{user,item}_names` (index → id), `users` / `items` (index → JSON record),
//! `event_chunks` (sequence → column chunk, see [`crate::codec`]), since schema 3
//! `event_keys` ((ts, id) → (), the idempotency index; time first so that the keys of new
//! events land in the last few pages of the tree instead of dirtying pages all over it, which
//! made commits slower as the store grew; schema 1 and 2 had `event_ids`, id only), since schema 2 `segment_runs` (run id → JSON), `segment_members` ((segmentation, user) →
//! JSON list of segments) and `segment_history` ((segmentation, sequence) → JSON membership change).
//! redb commits with fsync (`Durability::Immediate`), so an acknowledged write survives
//! `kill -9` and power loss, and a crash mid-write leaves the previous commit intact.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tailor_core::{Event, EventId, Interner, Item, ItemIdx, Timestamp, User, UserIdx};

use crate::codec::{self, ChunkView, EncodedEvent};
use crate::error::{Result, StoreError};
use crate::{
    Counts, Erasure, EventFilter, ExposureRow, MembershipChange, SegmentationRun, Store, Stored, UpsertMode,
    WriteBatch, WriteReport,
};

/// Newest schema version this build writes.
pub const SCHEMA_VERSION: u32 = 5;
/// Events per stored chunk.
/// The page cache of a store opened with [`RedbStore::open`]: 64 MiB holds the interior
/// pages of every table many times over; reads of old events stream through it.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

const CHUNK_EVENTS: usize = 8192;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USER_IDS: TableDefinition<&str, u32> = TableDefinition::new("user_ids");
const USER_NAMES: TableDefinition<u32, &str> = TableDefinition::new("user_names");
const USERS: TableDefinition<u32, &[u8]> = TableDefinition::new("users");
const ITEM_IDS: TableDefinition<&str, u32> = TableDefinition::new("item_ids");
const ITEM_NAMES: TableDefinition<u32, &str> = TableDefinition::new("item_names");
const ITEMS: TableDefinition<u32, &[u8]> = TableDefinition::new("items");
const CHUNKS: TableDefinition<u64, &[u8]> = TableDefinition::new("event_chunks");
/// Schema 1-2 idempotency index, replaced by [`EVENT_KEYS`] in schema 3.
const EVENT_IDS: TableDefinition<u128, ()> = TableDefinition::new("event_ids");
const EVENT_KEYS: TableDefinition<(i64, u128), ()> = TableDefinition::new("event_keys");
const EXPERIMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("experiments");
const EXPOSURES: TableDefinition<(&str, u64), (&str, &[u8])> = TableDefinition::new("exposures");
const SEG_RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("segment_runs");
const SEG_MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("segment_members");
const SEG_HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("segment_history");
/// Erased user ids by [`crate::erasure_key`] → time of the (latest) erasure, ms.
const ERASED: TableDefinition<u128, i64> = TableDefinition::new("erased_users");

const K_SCHEMA: &str = "schema_version";
const K_EVENTS: &str = "events";
const K_NEXT_CHUNK: &str = "next_chunk";
const K_NEXT_RUN: &str = "next_segment_run";
const K_NEXT_CHANGE: &str = "next_segment_change";
const K_NEXT_EXPOSURE: &str = "next_exposure";

type Migration = fn(&WriteTransaction) -> std::result::Result<(), redb::Error>;

/// Each step brings the schema from `version - 1` to `version`, in its own transaction.
const MIGRATIONS: [(u32, Migration); 5] =
    [(1, migrate_v1), (2, migrate_v2), (3, migrate_v3), (4, migrate_v4), (5, migrate_v5)];

fn migrate_v1(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    txn.open_table(USER_IDS)?;
    txn.open_table(USER_NAMES)?;
    txn.open_table(USERS)?;
    txn.open_table(ITEM_IDS)?;
    txn.open_table(ITEM_NAMES)?;
    txn.open_table(ITEMS)?;
    txn.open_table(CHUNKS)?;
    txn.open_table(EVENT_IDS)?;
    meta.insert(K_EVENTS, 0)?;
    meta.insert(K_NEXT_CHUNK, 0)?;
    Ok(())
}

/// Schema 2: segmentation runs, current memberships and membership history.
fn migrate_v2(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    txn.open_table(SEG_RUNS)?;
    txn.open_table(SEG_MEMBERS)?;
    txn.open_table(SEG_HISTORY)?;
    meta.insert(K_NEXT_RUN, 1)?;
    meta.insert(K_NEXT_CHANGE, 1)?;
    Ok(())
}

/// Schema 3: the idempotency index keyed by (ts, id), rebuilt from the stored chunks.
fn migrate_v3(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    let mut keys: Vec<(i64, u128)> = Vec::new();
    {
        let chunks = txn.open_table(CHUNKS)?;
        for entry in chunks.iter()? {
            let (_, v) = entry?;
            let view = ChunkView::new(v.value()).map_err(|e| redb::Error::Corrupted(e.0.to_string()))?;
            keys.extend((0..view.len()).map(|i| (view.ts(i), view.id_bits(i))));
        }
    }
    keys.sort_unstable();
    let mut table = txn.open_table(EVENT_KEYS)?;
    for k in keys {
        table.insert(k, ())?;
    }
    txn.delete_table(EVENT_IDS)?;
    Ok(())
}

/// Schema 4: experiments (name → JSON) and their exposures ((experiment, sequence) →
/// (unit, JSON)).
fn migrate_v4(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    txn.open_table(EXPERIMENTS)?;
    txn.open_table(EXPOSURES)?;
    txn.open_table(META)?.insert(K_NEXT_EXPOSURE, 1)?;
    Ok(())
}

/// Schema 5: the erased-user table; and item and user records whose timestamps were
/// written as milliseconds that now read as seconds (1966-10-31 to 1973-03-03, see
/// [`Timestamp`]) rewritten in the form that reads back unchanged.
fn migrate_v5(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    txn.open_table(ERASED)?;
    for (def, fields) in [(ITEMS, &["created_at"][..]), (USERS, &["signup_at"][..])] {
        let mut table = txn.open_table(def)?;
        let mut rewrites: Vec<(u32, Vec<u8>)> = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let mut rec: serde_json::Value = serde_json::from_slice(v.value())
                .map_err(|e| redb::Error::Corrupted(format!("record {}: {e}", k.value())))?;
            // (The bookkeeping times are wall-clock times, far above the ambiguous range.)
            let mut changed = false;
            for f in fields {
                changed |= old_millis_to_text(rec.get_mut("value").and_then(|v| v.get_mut(*f)));
            }
            if changed {
                rewrites
                    .push((k.value(), serde_json::to_vec(&rec).map_err(|e| redb::Error::Corrupted(e.to_string()))?));
            }
        }
        for (k, bytes) in rewrites {
            table.insert(k, bytes.as_slice())?;
        }
    }
    Ok(())
}

/// A JSON integer written as milliseconds by schema 4 that the one timestamp rule would
/// read as seconds: rewritten as RFC 3339 text. Returns whether it changed.
fn old_millis_to_text(v: Option<&mut serde_json::Value>) -> bool {
    let Some(v) = v else { return false };
    match v.as_i64() {
        Some(ms) if ms.abs() < 100_000_000_000 => {
            *v = serde_json::Value::String(Timestamp(ms).to_rfc3339());
            true
        }
        _ => false,
    }
}

fn to_json<T: Serialize>(v: &T) -> std::result::Result<Vec<u8>, redb::Error> {
    serde_json::to_vec(v).map_err(|e| redb::Error::Corrupted(format!("cannot encode a segment record: {e}")))
}

fn next(meta: &mut redb::Table<&str, u64>, key: &str) -> std::result::Result<u64, redb::Error> {
    let v = meta.get(key)?.map_or(1, |v| v.value());
    meta.insert(key, v + 1)?;
    Ok(v)
}

/// Removes the point whose key is `key` from a segmentation record's map (`map.points`
/// and the parallel `map.keys`). Returns whether it was there.
fn drop_map_point(record: &mut serde_json::Value, key: u64) -> bool {
    let Some(map) = record.get_mut("map").and_then(serde_json::Value::as_object_mut) else { return false };
    let Some(at) = map
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .and_then(|keys| keys.iter().position(|k| k.as_u64() == Some(key)))
    else {
        return false;
    };
    for field in ["keys", "points"] {
        if let Some(list) = map.get_mut(field).and_then(serde_json::Value::as_array_mut)
            && at < list.len()
        {
            list.remove(at);
        }
    }
    true
}

/// Replaces one user's segments, appending a history entry when they change.
fn put_members(
    txn: &WriteTransaction,
    name: &str,
    user: &str,
    mut segments: Vec<String>,
    at: Timestamp,
    run: Option<u64>,
) -> std::result::Result<bool, redb::Error> {
    segments.sort();
    segments.dedup();
    let mut members = txn.open_table(SEG_MEMBERS)?;
    let before: Vec<String> = match members.get((name, user))? {
        Some(v) => serde_json::from_slice(v.value()).unwrap_or_default(),
        None => Vec::new(),
    };
    if before == segments {
        return Ok(false);
    }
    if segments.is_empty() {
        members.remove((name, user))?;
    } else {
        members.insert((name, user), to_json(&segments)?.as_slice())?;
    }
    let mut meta = txn.open_table(META)?;
    let seq = next(&mut meta, K_NEXT_CHANGE)?;
    let change = crate::MembershipChange { seq, user: user.to_owned(), from: before, to: segments, at, run };
    let mut hist = txn.open_table(SEG_HISTORY)?;
    hist.insert((name, seq), to_json(&change)?.as_slice())?;
    Ok(true)
}

/// Dense-id dictionaries, mirrored in memory (redb's file lock makes this process the only writer).
#[derive(Default)]
struct Names {
    users: Interner,
    items: Interner,
}

/// How many of the most recently stored events make a later event with the same id a
/// duplicate whatever its timestamp (a retried batch without timestamps gets new ones).
/// Older events are matched by (timestamp, id) in `event_keys`. Each id costs about 50
/// bytes of memory (the set and the queue), so the default window holds ~50 MB when full.
pub const DEFAULT_RECENT_IDS: usize = 1_000_000;

/// Memory bounds of an opened store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Page cache, bytes (at least 1 MiB is used).
    pub cache_bytes: usize,
    /// The duplicate window by id alone, events (at least 1 is kept).
    pub recent_ids: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { cache_bytes: DEFAULT_CACHE_BYTES, recent_ids: DEFAULT_RECENT_IDS }
    }
}

/// Ids of the last `cap` stored events, oldest first, with a set for lookups.
struct RecentIds {
    cap: usize,
    set: foldhash::HashSet<u128>,
    order: std::collections::VecDeque<u128>,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), set: foldhash::HashSet::default(), order: std::collections::VecDeque::new() }
    }

    fn push(&mut self, id: u128) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// The embedded redb store.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    names: RwLock<Names>,
    writer: Mutex<()>,
    /// Loaded at the first write (reads need none of it).
    recent: Mutex<Option<RecentIds>>,
    /// Length of the id window ([`Tuning::recent_ids`]).
    recent_cap: usize,
    /// The erased-user table in memory ([`crate::erasure_key`] → erased at, ms).
    erased: RwLock<HashMap<u128, i64>>,
}

trait Ctx<T> {
    fn ctx(self, path: &Path) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, path: &Path) -> Result<T> {
        self.map_err(|e| StoreError::Db { path: path.to_owned(), source: Box::new(e.into()) })
    }
}

impl RedbStore {
    /// Opens (creating if needed) the store in `data_dir`, migrating an older schema, with
    /// the default [`Tuning`].
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_tuned(data_dir, Tuning::default())
    }

    /// [`RedbStore::open`] with other memory bounds: a page cache of at most
    /// `tuning.cache_bytes` (redb's own default is 1 GiB, which a long-running server would
    /// fill with pages of old events) and an id window of `tuning.recent_ids` events.
    pub fn open_tuned(data_dir: &Path, tuning: Tuning) -> Result<Self> {
        fs_err::create_dir_all(data_dir).map_err(|e| StoreError::Io { path: data_dir.to_owned(), source: e })?;
        let path = data_dir.join("tailor.redb");
        let db = match Database::builder().set_cache_size(tuning.cache_bytes.max(1 << 20)).create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Locked { path }),
            Err(e) => return Err(e).ctx(&path),
        };
        let store = Self {
            db,
            path,
            names: RwLock::new(Names::default()),
            writer: Mutex::new(()),
            recent: Mutex::new(None),
            recent_cap: tuning.recent_ids.max(1),
            erased: RwLock::new(HashMap::new()),
        };
        store.migrate()?;
        store.load_names()?;
        store.load_erased()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_erased(&self) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let t = txn.open_table(ERASED).ctx(p)?;
        let mut map = HashMap::new();
        for row in t.iter().ctx(p)? {
            let (k, v) = row.ctx(p)?;
            map.insert(k.value(), v.value());
        }
        *self.erased.write().unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        Ok(())
    }

    /// The ids of the last [`Tuning::recent_ids`] stored events, read from the newest chunks.
    fn load_recent(&self) -> Result<RecentIds> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let chunks = txn.open_table(CHUNKS).ctx(p)?;
        let mut newest_first: Vec<u128> = Vec::new();
        for entry in chunks.iter().ctx(p)?.rev() {
            let (_, v) = entry.ctx(p)?;
            let view = ChunkView::new(v.value()).map_err(|e| self.corrupt(e.0))?;
            newest_first.extend((0..view.len()).rev().map(|i| view.id_bits(i)));
            if newest_first.len() >= self.recent_cap {
                break;
            }
        }
        newest_first.truncate(self.recent_cap);
        let mut recent = RecentIds::new(self.recent_cap);
        for id in newest_first.into_iter().rev() {
            recent.push(id);
        }
        Ok(recent)
    }

    fn migrate(&self) -> Result<()> {
        let p = &self.path;
        let current = {
            let txn = self.db.begin_read().ctx(p)?;
            match txn.open_table(META) {
                Ok(t) => t.get(K_SCHEMA).ctx(p)?.map_or(0, |v| v.value() as u32),
                Err(redb::TableError::TableDoesNotExist(_)) => 0,
                Err(e) => return Err(e).ctx(p),
            }
        };
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { path: p.clone(), found: current, supported: SCHEMA_VERSION });
        }
        for (version, step) in MIGRATIONS {
            if version <= current {
                continue;
            }
            let txn = self.db.begin_write().ctx(p)?;
            step(&txn).ctx(p)?;
            txn.open_table(META).ctx(p)?.insert(K_SCHEMA, u64::from(version)).ctx(p)?;
            txn.commit().ctx(p)?;
        }
        Ok(())
    }

    fn load_names(&self) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let read = |def: TableDefinition<u32, &str>| -> Result<Interner> {
            let t = txn.open_table(def).ctx(p)?;
            let mut names = Vec::with_capacity(t.len().ctx(p)? as usize);
            for (expect, row) in t.iter().ctx(p)?.enumerate() {
                let (k, v) = row.ctx(p)?;
                if k.value() as usize != expect {
                    return Err(StoreError::Corrupt { path: p.clone(), what: "gap in the id dictionary".into() });
                }
                names.push(v.value().to_owned());
            }
            Ok(Interner::from_names(names))
        };
        let names = Names { users: read(USER_NAMES)?, items: read(ITEM_NAMES)? };
        *self.names.write().unwrap_or_else(std::sync::PoisonError::into_inner) = names;
        Ok(())
    }

    fn names(&self) -> std::sync::RwLockReadGuard<'_, Names> {
        self.names.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what: what.into() }
    }

    fn get_record<T: DeserializeOwned>(&self, def: TableDefinition<u32, &[u8]>, idx: u32) -> Result<Option<Stored<T>>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let t = txn.open_table(def).ctx(p)?;
        let Some(v) = t.get(idx).ctx(p)? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(|e| self.corrupt(format!("record {idx}: {e}")))
    }

    fn for_each_record<T: DeserializeOwned>(
        &self,
        def: TableDefinition<u32, &[u8]>,
        f: &mut dyn FnMut(u32, Stored<T>),
    ) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let t = txn.open_table(def).ctx(p)?;
        for row in t.iter().ctx(p)? {
            let (k, v) = row.ctx(p)?;
            let rec =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("record {}: {e}", k.value())))?;
            f(k.value(), rec);
        }
        Ok(())
    }
}

/// Bookkeeping of one (possibly streamed) write transaction.
struct WriteState<'a> {
    users: PendingNames<'a>,
    items: PendingNames<'a>,
    report: WriteReport,
    /// Ids stored by this transaction so far (and ids of its duplicates).
    seen: foldhash::HashSet<u128>,
    /// Ids stored by this transaction, in the order stored (the id window's order).
    stored: Vec<u128>,
    recent: &'a RecentIds,
    now: Timestamp,
}

impl RedbStore {
    fn apply(&self, txn: &WriteTransaction, batch: &WriteBatch, st: &mut WriteState<'_>) -> Result<()> {
        for (index, e) in batch.events.iter().enumerate() {
            e.validate().map_err(|source| StoreError::Invalid { what: "event", index, source })?;
        }
        for (index, i) in batch.items.iter().enumerate() {
            i.validate().map_err(|source| StoreError::Invalid { what: "item", index, source })?;
        }
        for (index, u) in batch.users.iter().enumerate() {
            u.validate().map_err(|source| StoreError::Invalid { what: "user", index, source })?;
        }
        let p = &self.path;
        let report = &mut st.report;
        {
            let mut table = txn.open_table(ITEMS).ctx(p)?;
            for item in &batch.items {
                let (idx, _) = st.items.intern(item.id.as_str());
                let updated = upsert(&mut table, idx, item.clone(), batch.mode, Item::merge_from, st.now)
                    .map_err(|e| self.corrupt(format!("item {}: {e}", item.id)))?;
                if updated { report.items_updated += 1 } else { report.items_inserted += 1 }
            }
            let mut table = txn.open_table(USERS).ctx(p)?;
            let erased = self.erased.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            for user in &batch.users {
                // An erased user's record comes back only with the user: known again (an
                // event after the erasure), back in this batch, or signed up since.
                if let Some(&at) = erased.get(&crate::erasure_key(user.id.as_str()))
                    && st.users.known.get(user.id.as_str()).is_none()
                    && !st.users.lookup.contains_key(user.id.as_str())
                    && !batch.events.iter().any(|e| e.ts.0 >= at && e.user.as_ref() == Some(&user.id))
                    && user.signup_at.is_none_or(|t| t.0 < at)
                {
                    report.users_erased += 1;
                    continue;
                }
                let (idx, _) = st.users.intern(user.id.as_str());
                let updated = upsert(&mut table, idx, user.clone(), batch.mode, User::merge_from, st.now)
                    .map_err(|e| self.corrupt(format!("user {}: {e}", user.id)))?;
                if updated { report.users_updated += 1 } else { report.users_inserted += 1 }
            }
        }
        if batch.events.is_empty() {
            return Ok(());
        }
        let mut ids = txn.open_table(EVENT_KEYS).ctx(p)?;
        let mut meta = txn.open_table(META).ctx(p)?;
        let mut chunks = txn.open_table(CHUNKS).ctx(p)?;
        // Ordinals count identical events inside this batch (see `Event::derive_id`).
        let mut ordinals: HashMap<u128, u32> = HashMap::new();
        let mut fresh: Vec<EncodedEvent<'_>> = Vec::with_capacity(batch.events.len());
        let erased = self.erased.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (position, e) in batch.events.iter().enumerate() {
            // An erased history stays erased: its events (dated before the erasure) are not
            // stored again by a re-import or a replayed stream.
            if !erased.is_empty()
                && let Some(u) = &e.user
                && erased.get(&crate::erasure_key(u.as_str())).is_some_and(|&at| e.ts.0 < at)
            {
                report.events_erased += 1;
                report.skipped.push(position as u32);
                continue;
            }
            let id = match e.id {
                Some(id) => id,
                None => {
                    let ord = ordinals.entry(e.content_hash()).or_insert(0);
                    *ord += 1;
                    e.derive_id(*ord - 1)
                }
            };
            // A duplicate: the same id among recent events (whatever the timestamp), or the
            // same (timestamp, id) at any age.
            let key = (e.ts.0, id.0);
            if st.recent.set.contains(&id.0) || !st.seen.insert(id.0) || ids.get(key).ctx(p)?.is_some() {
                report.events_duplicate += 1;
                report.skipped.push(position as u32);
                continue;
            }
            let user = e.user.as_ref().map_or(codec::NONE, |u| st.users.intern(u.as_str()).0);
            let item = e.item.as_ref().map_or(codec::NONE, |i| st.items.intern(i.as_str()).0);
            st.stored.push(id.0);
            fresh.push(EncodedEvent { id, user, item, event: e });
        }
        let mut sorted: Vec<(i64, u128)> = fresh.iter().map(|e| (e.event.ts.0, e.id.0)).collect();
        sorted.sort_unstable();
        for id in sorted {
            ids.insert(id, ()).ctx(p)?;
        }
        let mut next = meta.get(K_NEXT_CHUNK).ctx(p)?.map_or(0, |v| v.value());
        for part in fresh.chunks(CHUNK_EVENTS) {
            chunks.insert(next, codec::encode(part).as_slice()).ctx(p)?;
            next += 1;
        }
        let total = meta.get(K_EVENTS).ctx(p)?.map_or(0, |v| v.value()) + fresh.len() as u64;
        meta.insert(K_NEXT_CHUNK, next).ctx(p)?;
        meta.insert(K_EVENTS, total).ctx(p)?;
        report.events_added += fresh.len() as u64;
        Ok(())
    }
}

/// Interning inside one write transaction: new names become visible in memory only after commit.
struct PendingNames<'a> {
    known: &'a Interner,
    added: Vec<String>,
    lookup: HashMap<String, u32>,
}

impl<'a> PendingNames<'a> {
    fn new(known: &'a Interner) -> Self {
        Self { known, added: Vec::new(), lookup: HashMap::new() }
    }

    /// Returns (index, is_new).
    fn intern(&mut self, name: &str) -> (u32, bool) {
        if let Some(i) = self.known.get(name) {
            return (i, false);
        }
        if let Some(&i) = self.lookup.get(name) {
            return (i, false);
        }
        let i = (self.known.len() + self.added.len()) as u32;
        self.added.push(name.to_owned());
        self.lookup.insert(name.to_owned(), i);
        (i, true)
    }

    fn persist(
        &self,
        txn: &WriteTransaction,
        ids: TableDefinition<&str, u32>,
        names: TableDefinition<u32, &str>,
    ) -> std::result::Result<(), redb::Error> {
        let mut ids = txn.open_table(ids)?;
        let mut names = txn.open_table(names)?;
        let base = self.known.len() as u32;
        for (k, name) in self.added.iter().enumerate() {
            ids.insert(name.as_str(), base + k as u32)?;
            names.insert(base + k as u32, name.as_str())?;
        }
        Ok(())
    }
}

fn upsert<T: Serialize + DeserializeOwned>(
    table: &mut redb::Table<'_, u32, &[u8]>,
    idx: u32,
    value: T,
    mode: UpsertMode,
    merge: fn(&mut T, T),
    now: Timestamp,
) -> std::result::Result<bool, String> {
    let existing: Option<Stored<T>> = match table.get(idx).map_err(|e| e.to_string())? {
        Some(v) => Some(serde_json::from_slice(v.value()).map_err(|e| format!("record {idx}: {e}"))?),
        None => None,
    };
    let (rec, updated) = match existing {
        Some(mut old) => {
            match mode {
                UpsertMode::Replace => old.value = value,
                UpsertMode::Merge => merge(&mut old.value, value),
            }
            old.updated_at = now;
            old.revision += 1;
            (old, true)
        }
        None => (Stored { value, created_at: now, updated_at: now, revision: 1 }, false),
    };
    let bytes = serde_json::to_vec(&rec).map_err(|e| e.to_string())?;
    table.insert(idx, bytes.as_slice()).map_err(|e| e.to_string())?;
    Ok(updated)
}

impl RedbStore {
    /// One transaction over `batches`; with `per_batch`, each batch's own counts are pushed.
    fn write_batches(
        &self,
        batches: &mut dyn Iterator<Item = std::result::Result<WriteBatch, String>>,
        mut per_batch: Option<&mut Vec<WriteReport>>,
    ) -> Result<WriteReport> {
        let p = &self.path;
        let _writer = self.writer();
        let names = self.names();
        let mut guard = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent: &RecentIds = match guard.take() {
            Some(r) => guard.insert(r),
            None => guard.insert(self.load_recent()?),
        };
        let mut state = WriteState {
            users: PendingNames::new(&names.users),
            items: PendingNames::new(&names.items),
            report: WriteReport::default(),
            seen: foldhash::HashSet::default(),
            stored: Vec::new(),
            recent,
            now: Timestamp::now(),
        };
        let txn = self.db.begin_write().ctx(p)?;
        let mut offset = 0u32;
        for batch in batches {
            let batch = batch.map_err(StoreError::Aborted)?;
            // Each batch's own counts and skipped positions; the total's positions count
            // across the whole stream.
            let total = std::mem::take(&mut state.report);
            self.apply(&txn, &batch, &mut state)?;
            let mine = std::mem::replace(&mut state.report, total);
            state.report.add(&mine);
            state.report.skipped.extend(mine.skipped.iter().map(|p| p + offset));
            offset += batch.events.len() as u32;
            if let Some(out) = per_batch.as_deref_mut() {
                out.push(mine);
            }
        }
        state.users.persist(&txn, USER_IDS, USER_NAMES).ctx(p)?;
        state.items.persist(&txn, ITEM_IDS, ITEM_NAMES).ctx(p)?;
        txn.commit().ctx(p)?;
        let WriteState { users, items, report, stored, .. } = state;
        let (new_users, new_items) = (users.added, items.added);
        if let Some(recent) = guard.as_mut() {
            for id in stored {
                recent.push(id);
            }
        }
        drop(guard);
        drop(names);
        let mut names = self.names.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for n in new_users {
            names.users.intern(&n);
        }
        for n in new_items {
            names.items.intern(&n);
        }
        Ok(report)
    }
}

impl Store for RedbStore {
    fn write_all(
        &self,
        batches: &mut dyn Iterator<Item = std::result::Result<WriteBatch, String>>,
    ) -> Result<WriteReport> {
        self.write_batches(batches, None)
    }

    fn write_group(&self, batches: Vec<WriteBatch>) -> Result<Vec<WriteReport>> {
        let mut reports = Vec::with_capacity(batches.len());
        self.write_batches(&mut batches.into_iter().map(Ok), Some(&mut reports))?;
        Ok(reports)
    }

    fn item(&self, id: &str) -> Result<Option<Stored<Item>>> {
        let Some(idx) = self.names().items.get(id) else { return Ok(None) };
        self.get_record(ITEMS, idx)
    }

    fn user(&self, id: &str) -> Result<Option<Stored<User>>> {
        let Some(idx) = self.names().users.get(id) else { return Ok(None) };
        self.get_record(USERS, idx)
    }

    fn for_each_item(&self, f: &mut dyn FnMut(ItemIdx, Stored<Item>)) -> Result<()> {
        self.for_each_record(ITEMS, &mut |i, r| f(ItemIdx(i), r))
    }

    fn for_each_user(&self, f: &mut dyn FnMut(UserIdx, Stored<User>)) -> Result<()> {
        self.for_each_record(USERS, &mut |i, r| f(UserIdx(i), r))
    }

    fn user_names(&self) -> Result<Vec<String>> {
        Ok(self.names().users.names().to_vec())
    }

    fn item_names(&self) -> Result<Vec<String>> {
        Ok(self.names().items.names().to_vec())
    }

    fn item_names_from(&self, from: usize) -> Result<Vec<String>> {
        let names = self.names();
        Ok(names.items.names().get(from..).map(<[String]>::to_vec).unwrap_or_default())
    }

    fn scan_events(&self, filter: EventFilter, f: &mut dyn FnMut(EventId, Event) -> ControlFlow<()>) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let t = txn.open_table(CHUNKS).ctx(p)?;
        let names = self.names();
        let user_name = |i: u32| names.users.name(i).map(str::to_owned);
        let item_name = |i: u32| names.items.name(i).map(str::to_owned);
        for row in t.iter().ctx(p)? {
            let (k, v) = row.ctx(p)?;
            let bytes = v.value();
            let view =
                ChunkView::new(bytes).map_err(|e| self.corrupt(format!("event chunk {}: {}", k.value(), e.0)))?;
            // The time column alone says whether a chunk holds anything the filter wants;
            // decoding (strings, names) is the expensive part.
            let keep = |i: usize| filter.accepts_event(Timestamp(view.ts(i)), view.kind(i));
            if filter != EventFilter::default() && !(0..view.len()).any(keep) {
                continue;
            }
            let events = view
                .decode_where(&keep, &user_name, &item_name)
                .map_err(|e| self.corrupt(format!("event chunk {}: {}", k.value(), e.0)))?;
            for (id, e) in events {
                if f(id, e).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn scan_chunks(&self, f: &mut dyn FnMut(ChunkView<'_>)) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let t = txn.open_table(CHUNKS).ctx(p)?;
        for row in t.iter().ctx(p)? {
            let (k, v) = row.ctx(p)?;
            let view =
                ChunkView::new(v.value()).map_err(|e| self.corrupt(format!("event chunk {}: {}", k.value(), e.0)))?;
            f(view);
        }
        Ok(())
    }

    fn counts(&self) -> Result<Counts> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let events = txn.open_table(META).ctx(p)?.get(K_EVENTS).ctx(p)?.map_or(0, |v| v.value());
        let user_records = txn.open_table(USERS).ctx(p)?.len().ctx(p)?;
        let item_records = txn.open_table(ITEMS).ctx(p)?.len().ctx(p)?;
        let names = self.names();
        Ok(Counts {
            events,
            users: names.users.len() as u64,
            items: names.items.len() as u64,
            user_records,
            item_records,
        })
    }

    fn schema_version(&self) -> Result<u32> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let v = txn.open_table(META).ctx(p)?.get(K_SCHEMA).ctx(p)?.map_or(0, |v| v.value());
        Ok(v as u32)
    }

    fn save_segmentation(
        &self,
        mut run: SegmentationRun,
        memberships: &mut dyn Iterator<Item = (String, Vec<String>)>,
    ) -> Result<u64> {
        let p = &self.path;
        let _writer = self.writer();
        let txn = self.db.begin_write().ctx(p)?;
        run.id = next(&mut txn.open_table(META).ctx(p)?, K_NEXT_RUN).ctx(p)?;
        let name = run.name.clone();
        let mut previous: HashSet<String> = HashSet::new();
        {
            let members = txn.open_table(SEG_MEMBERS).ctx(p)?;
            for entry in members.range((name.as_str(), "")..).ctx(p)? {
                let (k, _) = entry.ctx(p)?;
                let (seg, user) = k.value();
                if seg != name {
                    break;
                }
                previous.insert(user.to_owned());
            }
        }
        for (user, segments) in memberships {
            previous.remove(&user);
            put_members(&txn, &name, &user, segments, run.created_at, Some(run.id)).ctx(p)?;
        }
        let mut gone: Vec<String> = previous.into_iter().collect();
        gone.sort();
        for user in gone {
            put_members(&txn, &name, &user, Vec::new(), run.created_at, Some(run.id)).ctx(p)?;
        }
        txn.open_table(SEG_RUNS).ctx(p)?.insert(run.id, to_json(&run).ctx(p)?.as_slice()).ctx(p)?;
        txn.commit().ctx(p)?;
        Ok(run.id)
    }

    fn erase_user(&self, id: &str) -> Result<Erasure> {
        let p = &self.path;
        let _writer = self.writer();
        let mut out = Erasure::default();
        let idx = self.names().users.get(id);
        let mut erased_ids: Vec<u128> = Vec::new();
        let txn = self.db.begin_write().ctx(p)?;
        if let Some(idx) = idx {
            out.found = true;
            let names = self.names();
            let mut chunks = txn.open_table(CHUNKS).ctx(p)?;
            let mut ids = txn.open_table(EVENT_KEYS).ctx(p)?;
            // Chunks holding the user's events are re-encoded without them.
            let mut rewrites: Vec<(u64, Option<Vec<u8>>)> = Vec::new();
            for entry in chunks.iter().ctx(p)? {
                let (k, v) = entry.ctx(p)?;
                let view = ChunkView::new(v.value()).map_err(|e| self.corrupt(e.0))?;
                if !(0..view.len()).any(|i| view.user(i) == idx) {
                    continue;
                }
                let decoded = view
                    .decode_all(&|u| names.users.name(u).map(str::to_owned), &|i| {
                        names.items.name(i).map(str::to_owned)
                    })
                    .map_err(|e| self.corrupt(e.0))?;
                let mut keep = Vec::with_capacity(decoded.len());
                for (i, (eid, ev)) in decoded.iter().enumerate() {
                    if view.user(i) == idx {
                        // The id goes too: it is a hash of the event's content.
                        ids.remove((ev.ts.0, eid.0)).ctx(p)?;
                        erased_ids.push(eid.0);
                        out.events += 1;
                    } else {
                        keep.push(EncodedEvent { id: *eid, user: view.user(i), item: view.item(i), event: ev });
                    }
                }
                rewrites.push((k.value(), (!keep.is_empty()).then(|| codec::encode(&keep))));
            }
            for (k, bytes) in rewrites {
                match bytes {
                    Some(b) => chunks.insert(k, b.as_slice()).ctx(p)?,
                    None => chunks.remove(k).ctx(p)?,
                };
            }
            let mut meta = txn.open_table(META).ctx(p)?;
            let total = meta.get(K_EVENTS).ctx(p)?.map_or(0, |v| v.value());
            meta.insert(K_EVENTS, total.saturating_sub(out.events)).ctx(p)?;
            txn.open_table(USERS).ctx(p)?.remove(idx).ctx(p)?;
            txn.open_table(USER_IDS).ctx(p)?.remove(id).ctx(p)?;
            txn.open_table(USER_NAMES).ctx(p)?.insert(idx, format!("\u{0}erased-{idx}").as_str()).ctx(p)?;
        }
        // Segment memberships and history name the user by id.
        {
            let mut members = txn.open_table(SEG_MEMBERS).ctx(p)?;
            let keys: Vec<(String, String)> = members
                .iter()
                .ctx(p)?
                .filter_map(|e| e.ok())
                .map(|(k, _)| (k.value().0.to_owned(), k.value().1.to_owned()))
                .filter(|(_, u)| u == id)
                .collect();
            for (seg, u) in &keys {
                members.remove((seg.as_str(), u.as_str())).ctx(p)?;
            }
            out.segment_entries += keys.len() as u64;
            let mut history = txn.open_table(SEG_HISTORY).ctx(p)?;
            let mut drop_keys: Vec<(String, u64)> = Vec::new();
            for e in history.iter().ctx(p)? {
                let (k, v) = e.ctx(p)?;
                let change: MembershipChange =
                    serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment history: {e}")))?;
                if change.user == id {
                    drop_keys.push((k.value().0.to_owned(), k.value().1));
                }
            }
            for (seg, seq) in &drop_keys {
                history.remove((seg.as_str(), *seq)).ctx(p)?;
            }
            out.segment_entries += drop_keys.len() as u64;
            let mut exposures = txn.open_table(EXPOSURES).ctx(p)?;
            let mut drop_keys: Vec<(String, u64)> = Vec::new();
            for e in exposures.iter().ctx(p)? {
                let (k, v) = e.ctx(p)?;
                if v.value().0 == id {
                    drop_keys.push((k.value().0.to_owned(), k.value().1));
                }
            }
            for (exp, seq) in &drop_keys {
                exposures.remove((exp.as_str(), *seq)).ctx(p)?;
            }
            out.exposures += drop_keys.len() as u64;
        }
        // Points of the user on stored segment maps (`map.points` with parallel `map.keys`).
        {
            let mut runs = txn.open_table(SEG_RUNS).ctx(p)?;
            let key = crate::map_key(id);
            let mut rewrites: Vec<(u64, Vec<u8>)> = Vec::new();
            for e in runs.iter().ctx(p)? {
                let (k, v) = e.ctx(p)?;
                let mut run: SegmentationRun =
                    serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment run: {e}")))?;
                if drop_map_point(&mut run.record, key) {
                    rewrites.push((k.value(), to_json(&run).ctx(p)?));
                }
            }
            for (k, bytes) in rewrites {
                runs.insert(k, bytes.as_slice()).ctx(p)?;
                out.segment_entries += 1;
            }
        }
        out.found |= out.segment_entries > 0 || out.exposures > 0;
        // Remembered by a hash, so re-imports and replays of the erased history stay erased.
        let erased_at = Timestamp::now().0;
        if out.found {
            txn.open_table(ERASED).ctx(p)?.insert(crate::erasure_key(id), erased_at).ctx(p)?;
        }
        txn.commit().ctx(p)?;
        if out.found {
            self.erased
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(crate::erasure_key(id), erased_at);
        }
        if !erased_ids.is_empty() {
            // Forgotten entirely: the same event sent again is a new event.
            let mut guard = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(recent) = guard.as_mut() {
                let gone: HashSet<u128> = erased_ids.into_iter().collect();
                recent.order.retain(|id| !gone.contains(id));
                recent.set.retain(|id| !gone.contains(id));
            }
        }
        if idx.is_some() {
            self.load_names()?;
        }
        Ok(out)
    }

    fn erasures(&self) -> Result<HashMap<u128, Timestamp>> {
        let erased = self.erased.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(erased.iter().map(|(k, v)| (*k, Timestamp(*v))).collect())
    }

    fn set_user_segments(&self, name: &str, user: &str, segments: Vec<String>, at: Timestamp) -> Result<bool> {
        let p = &self.path;
        let _writer = self.writer();
        let txn = self.db.begin_write().ctx(p)?;
        let changed = put_members(&txn, name, user, segments, at, None).ctx(p)?;
        txn.commit().ctx(p)?;
        Ok(changed)
    }

    fn set_many_user_segments(&self, changes: Vec<(String, String, Vec<String>)>, at: Timestamp) -> Result<usize> {
        let p = &self.path;
        let _writer = self.writer();
        let txn = self.db.begin_write().ctx(p)?;
        let mut n = 0;
        for (name, user, segments) in changes {
            n += usize::from(put_members(&txn, &name, &user, segments, at, None).ctx(p)?);
        }
        txn.commit().ctx(p)?;
        Ok(n)
    }

    fn segmentation(&self, name: &str, id: Option<u64>) -> Result<Option<SegmentationRun>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(SEG_RUNS).ctx(p)?;
        // Newest first, decoding only until the run is found.
        for entry in table.iter().ctx(p)?.rev() {
            let (k, v) = entry.ctx(p)?;
            if id.is_some_and(|i| i != k.value()) {
                continue;
            }
            let run: SegmentationRun =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment run: {e}")))?;
            if run.name == name {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    fn segmentation_runs(&self) -> Result<Vec<SegmentationRun>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(SEG_RUNS).ctx(p)?;
        let mut out = Vec::new();
        for entry in table.iter().ctx(p)? {
            let (_, v) = entry.ctx(p)?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment run: {e}")))?);
        }
        Ok(out)
    }

    fn user_segments(&self, user: &str) -> Result<Vec<(String, Vec<String>)>> {
        let mut names: Vec<String> = self.segmentation_runs()?.into_iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(SEG_MEMBERS).ctx(p)?;
        let mut out = Vec::new();
        for name in names {
            if let Some(v) = table.get((name.as_str(), user)).ctx(p)? {
                let segs: Vec<String> =
                    serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment members: {e}")))?;
                out.push((name, segs));
            }
        }
        Ok(out)
    }

    fn segment_members(&self, name: &str, segment: &str) -> Result<Vec<String>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(SEG_MEMBERS).ctx(p)?;
        let mut out = Vec::new();
        for entry in table.range((name, "")..).ctx(p)? {
            let (k, v) = entry.ctx(p)?;
            let (seg, user) = k.value();
            if seg != name {
                break;
            }
            let segs: Vec<String> =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment members: {e}")))?;
            if segs.iter().any(|s| s == segment) {
                out.push(user.to_owned());
            }
        }
        Ok(out)
    }

    fn put_experiment(&self, name: &str, record: &[u8]) -> Result<()> {
        let p = &self.path;
        let _writer = self.writer();
        let txn = self.db.begin_write().ctx(p)?;
        txn.open_table(EXPERIMENTS).ctx(p)?.insert(name, record).ctx(p)?;
        txn.commit().ctx(p)?;
        Ok(())
    }

    fn experiments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(EXPERIMENTS).ctx(p)?;
        let mut out = Vec::new();
        for e in table.iter().ctx(p)? {
            let (k, v) = e.ctx(p)?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn append_exposures(&self, rows: &[ExposureRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let p = &self.path;
        let _writer = self.writer();
        let txn = self.db.begin_write().ctx(p)?;
        {
            let mut meta = txn.open_table(META).ctx(p)?;
            let mut table = txn.open_table(EXPOSURES).ctx(p)?;
            let first = meta.get(K_NEXT_EXPOSURE).ctx(p)?.map_or(1, |v| v.value());
            for (i, r) in rows.iter().enumerate() {
                table
                    .insert((r.experiment.as_str(), first + i as u64), (r.unit.as_str(), r.record.as_slice()))
                    .ctx(p)?;
            }
            meta.insert(K_NEXT_EXPOSURE, first + rows.len() as u64).ctx(p)?;
        }
        txn.commit().ctx(p)?;
        Ok(())
    }

    fn scan_exposures(&self, experiment: &str, f: &mut dyn FnMut(&str, &[u8]) -> ControlFlow<()>) -> Result<()> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(EXPOSURES).ctx(p)?;
        for e in table.range((experiment, 0)..=(experiment, u64::MAX)).ctx(p)? {
            let (_, v) = e.ctx(p)?;
            let (unit, record) = v.value();
            if f(unit, record).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn membership_history(&self, name: &str, user: Option<&str>) -> Result<Vec<MembershipChange>> {
        let p = &self.path;
        let txn = self.db.begin_read().ctx(p)?;
        let table = txn.open_table(SEG_HISTORY).ctx(p)?;
        let mut out = Vec::new();
        for entry in table.range((name, 0)..).ctx(p)? {
            let (k, v) = entry.ctx(p)?;
            if k.value().0 != name {
                break;
            }
            let change: MembershipChange =
                serde_json::from_slice(v.value()).map_err(|e| self.corrupt(format!("segment history: {e}")))?;
            if user.is_none_or(|u| u == change.user) {
                out.push(change);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_is_refused_and_older_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = RedbStore::open(dir.path()).expect("open");
            assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
            let txn = s.db.begin_write().expect("txn");
            txn.open_table(META).expect("meta").insert(K_SCHEMA, 99).expect("insert");
            txn.commit().expect("commit");
        }
        let err = RedbStore::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("schema version 99, newer than this tailor understands (5)"), "{err}");

        let old = tempfile::tempdir().expect("tempdir");
        {
            // A version-0 file: redb created, nothing of ours in it yet.
            let db = Database::create(old.path().join("tailor.redb")).expect("create");
            drop(db);
        }
        let s = RedbStore::open(old.path()).expect("migrates");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(s.counts().expect("counts").events, 0);
    }

    #[test]
    fn schema_4_timestamps_that_would_read_as_seconds_are_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A schema-4 file: an item released in 1971 (31,536,000,000 ms, below 1e11) and a
        // user who signed up in 2020, both written as milliseconds.
        {
            let db = Database::create(dir.path().join("tailor.redb")).expect("create");
            let txn = db.begin_write().expect("txn");
            for (_, step) in &MIGRATIONS[..4] {
                step(&txn).expect("migrate");
            }
            txn.open_table(META).expect("meta").insert(K_SCHEMA, 4).expect("schema");
            let stored = |value: serde_json::Value| {
                serde_json::json!({"value": value, "created_at": 1_700_000_000_000_i64,
                    "updated_at": 1_700_000_000_000_i64, "revision": 1})
                .to_string()
            };
            txn.open_table(ITEM_IDS).expect("t").insert("m", 0).expect("i");
            txn.open_table(ITEM_NAMES).expect("t").insert(0, "m").expect("i");
            let item = stored(serde_json::json!({"id": "m", "in_stock": true, "created_at": 31_536_000_000_i64}));
            txn.open_table(ITEMS).expect("t").insert(0, item.as_bytes()).expect("i");
            txn.open_table(USER_IDS).expect("t").insert("u", 0).expect("i");
            txn.open_table(USER_NAMES).expect("t").insert(0, "u").expect("i");
            let user = stored(serde_json::json!({"id": "u", "consent_email": false, "consent_push": false,
                "signup_at": 1_600_000_000_000_i64}));
            txn.open_table(USERS).expect("t").insert(0, user.as_bytes()).expect("i");
            txn.commit().expect("commit");
        }
        let s = RedbStore::open(dir.path()).expect("migrates");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        let item = s.item("m").expect("read").expect("item");
        assert_eq!(item.value.created_at, Some(Timestamp(31_536_000_000)), "1971-01-01, not 2969");
        let user = s.user("u").expect("read").expect("user");
        assert_eq!(user.value.signup_at, Some(Timestamp(1_600_000_000_000)));
    }

    #[test]
    fn schema_1_files_gain_the_segment_tables_and_keep_their_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // A schema-1 file with one event, as the previous release wrote it.
            let db = Database::create(dir.path().join("tailor.redb")).expect("create");
            let txn = db.begin_write().expect("txn");
            migrate_v1(&txn).expect("v1");
            txn.open_table(META).expect("meta").insert(K_SCHEMA, 1).expect("schema");
            txn.commit().expect("commit");
        }
        {
            let s = RedbStore::open(dir.path()).expect("open");
            let txn = s.db.begin_write().expect("txn");
            txn.open_table(META).expect("meta").insert(K_SCHEMA, 1).expect("back to 1");
            txn.delete_table(SEG_RUNS).expect("drop");
            txn.commit().expect("commit");
            let ev = Event::new(Some("u"), Some("i"), tailor_core::EventKind::View, Timestamp(1_000));
            s.write(WriteBatch { events: vec![ev], ..WriteBatch::default() }).expect("write");
        }
        let s = RedbStore::open(dir.path()).expect("migrates");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(s.counts().expect("counts").events, 1);
        assert!(s.segmentation_runs().expect("runs").is_empty());
    }

    #[test]
    fn schema_2_id_index_becomes_the_time_ordered_key_index_and_still_deduplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = Event::new(Some("u"), Some("i"), tailor_core::EventKind::View, Timestamp(5_000));
        let id = ev.derive_id(0);
        {
            // A schema-2 file holding `ev`, with its id in the old index.
            let db = Database::create(dir.path().join("tailor.redb")).expect("create");
            let txn = db.begin_write().expect("txn");
            migrate_v1(&txn).expect("v1");
            migrate_v2(&txn).expect("v2");
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert(K_SCHEMA, 2).expect("schema");
            meta.insert(K_EVENTS, 1).expect("events");
            meta.insert(K_NEXT_CHUNK, 1).expect("next");
            txn.open_table(USER_IDS).expect("t").insert("u", 0).expect("i");
            txn.open_table(USER_NAMES).expect("t").insert(0, "u").expect("i");
            txn.open_table(ITEM_IDS).expect("t").insert("i", 0).expect("i");
            txn.open_table(ITEM_NAMES).expect("t").insert(0, "i").expect("i");
            let chunk = codec::encode(&[EncodedEvent { id, user: 0, item: 0, event: &ev }]);
            txn.open_table(CHUNKS).expect("t").insert(0, chunk.as_slice()).expect("i");
            txn.open_table(EVENT_IDS).expect("t").insert(id.0, ()).expect("i");
            drop(meta);
            txn.commit().expect("commit");
        }
        let s = RedbStore::open(dir.path()).expect("migrates");
        assert_eq!(s.schema_version().expect("version"), SCHEMA_VERSION);
        let report = s.write(WriteBatch { events: vec![ev.clone()], ..WriteBatch::default() }).expect("write");
        assert_eq!((report.events_added, report.events_duplicate), (0, 1), "the old event is still known");
        let later = Event::new(Some("u"), Some("i"), tailor_core::EventKind::View, Timestamp(6_000));
        let report = s.write(WriteBatch { events: vec![later], ..WriteBatch::default() }).expect("write");
        assert_eq!(report.events_added, 1);
        assert_eq!(s.counts().expect("counts").events, 2);
        let txn = s.db.begin_read().expect("read");
        assert!(txn.open_table(EVENT_IDS).is_err(), "the old index is dropped");
        assert_eq!(txn.open_table(EVENT_KEYS).expect("keys").len().expect("len"), 2);
    }

    #[test]
    fn experiments_and_exposures_are_stored_and_erased_with_the_user() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = RedbStore::open(dir.path()).expect("open");
        s.put_experiment("b", b"{\"v\":1}").expect("put");
        s.put_experiment("a", b"{}").expect("put");
        s.put_experiment("b", b"{\"v\":2}").expect("replace");
        let names: Vec<(String, Vec<u8>)> = s.experiments().expect("list");
        assert_eq!(names, vec![("a".into(), b"{}".to_vec()), ("b".into(), b"{\"v\":2}".to_vec())]);
        let row = |e: &str, u: &str, r: &str| ExposureRow { experiment: e.into(), unit: u.into(), record: r.into() };
        s.append_exposures(&[row("a", "alice", "1"), row("b", "bob", "2"), row("a", "bob", "3")]).expect("append");
        s.append_exposures(&[row("a", "alice", "4")]).expect("append");
        let scan = |e: &str| {
            let mut out = Vec::new();
            s.scan_exposures(e, &mut |u, r| {
                out.push(format!("{u}:{}", String::from_utf8_lossy(r)));
                ControlFlow::Continue(())
            })
            .expect("scan");
            out
        };
        assert_eq!(scan("a"), ["alice:1", "bob:3", "alice:4"]);
        let ev = Event::new(Some("alice"), Some("i"), tailor_core::EventKind::View, Timestamp(5));
        s.write(WriteBatch { events: vec![ev], ..WriteBatch::default() }).expect("write");
        let erased = s.erase_user("alice").expect("erase");
        assert_eq!((erased.events, erased.exposures), (1, 2));
        assert_eq!(scan("a"), ["bob:3"]);
        assert_eq!(scan("b"), ["bob:2"]);
    }

    #[test]
    fn the_id_window_holds_the_configured_number_of_newest_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ev = |id: &str, ts: i64| {
            let mut e = Event::new(Some("u"), Some("i"), tailor_core::EventKind::View, Timestamp(ts));
            e.id = Some(tailor_core::EventId::from_given(id));
            e
        };
        let tuning = Tuning { recent_ids: 2, ..Tuning::default() };
        let write = |s: &RedbStore, events: Vec<Event>| {
            let r = s.write(WriteBatch { events, ..WriteBatch::default() }).expect("write");
            (r.events_added, r.events_duplicate)
        };
        {
            let s = RedbStore::open_tuned(dir.path(), tuning).expect("open");
            assert_eq!(write(&s, vec![ev("a", 1), ev("b", 2), ev("c", 3)]), (3, 0));
            // "a" left the two-event window: with another timestamp it is a new event; "c"
            // is still in it.
            assert_eq!(write(&s, vec![ev("c", 30)]), (0, 1));
            assert_eq!(write(&s, vec![ev("a", 10)]), (1, 0));
            // The same id and timestamp stays a duplicate outside the window.
            assert_eq!(write(&s, vec![ev("b", 2)]), (0, 1));
        }
        // Reopened, the window is the newest two stored events ("c", then "a" again).
        let s = RedbStore::open_tuned(dir.path(), tuning).expect("reopen");
        assert_eq!(write(&s, vec![ev("a", 11), ev("c", 31)]), (0, 2));
        assert_eq!(write(&s, vec![ev("b", 20)]), (1, 0));
        assert_eq!(s.counts().expect("counts").events, 5);
    }

    #[test]
    fn a_recent_id_is_a_duplicate_whatever_its_timestamp_also_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ev = Event::new(Some("u"), Some("i"), tailor_core::EventKind::View, Timestamp(1_000));
        ev.id = Some(tailor_core::EventId::from_given("order-7-line-1"));
        let mut retry = ev.clone();
        retry.ts = Timestamp(2_000);
        {
            let s = RedbStore::open(dir.path()).expect("open");
            s.write(WriteBatch { events: vec![ev.clone()], ..WriteBatch::default() }).expect("write");
            let r = s.write(WriteBatch { events: vec![retry.clone()], ..WriteBatch::default() }).expect("retry");
            assert_eq!((r.events_added, r.events_duplicate), (0, 1));
        }
        let s = RedbStore::open(dir.path()).expect("reopen");
        let r = s.write(WriteBatch { events: vec![retry], ..WriteBatch::default() }).expect("retry after restart");
        assert_eq!((r.events_added, r.events_duplicate), (0, 1), "the recent ids are reloaded at open");
        assert_eq!(s.counts().expect("counts").events, 1);
        // After an erasure the history stays erased (regression: issue #18): sending the
        // event again stores nothing, also after reopening; an event dated after the
        // erasure starts a new user.
        s.erase_user("u").expect("erase");
        let r = s.write(WriteBatch { events: vec![ev.clone()], ..WriteBatch::default() }).expect("after erasure");
        assert_eq!((r.events_added, r.events_erased, r.skipped.as_slice()), (0, 1, &[0][..]));
        drop(s);
        let s = RedbStore::open(dir.path()).expect("reopen");
        assert_eq!(
            s.write(WriteBatch { events: vec![ev.clone()], ..WriteBatch::default() }).expect("w").events_erased,
            1
        );
        let mut back = ev;
        back.ts = Timestamp::now();
        assert_eq!(s.write(WriteBatch { events: vec![back], ..WriteBatch::default() }).expect("w").events_added, 1);
        assert_eq!(s.erasures().expect("erasures").len(), 1);
    }

    #[test]
    fn second_open_is_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _a = RedbStore::open(dir.path()).expect("open");
        let err = RedbStore::open(dir.path()).err().expect("locked");
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }
}
