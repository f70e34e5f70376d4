//! Durable storage for tailor.
//!
//! [`Store`] is the narrow interface every caller uses: one atomic, idempotent
//! [`Store::write`] for events, items and users, point reads, and scans. [`RedbStore`] is
//! the embedded default (one ACID file under the data directory, fsync on commit). A
//! PostgreSQL implementation can follow without touching callers.
//!
//! ```no_run
//! use tailor_store::{RedbStore, Store, WriteBatch};
//! use tailor_core::{Event, EventKind, Timestamp};
//! let store = RedbStore::open("./tailor-data".as_ref())?;
//! let ev = Event::new(Some("u1"), Some("sku-1"), EventKind::View, Timestamp::now());
//! let report = store.write(WriteBatch { events: vec![ev], ..WriteBatch::default() })?;
//! assert!(report.events_added <= 1);
//! # Ok::<(), tailor_store::StoreError>(())
//! ```

pub mod codec;
pub mod error;
mod redb_store;
pub mod stats;

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use tailor_core::{
    Event, EventId, EventKind, Interactions, InteractionsBuilder, Item, ItemIdx, Timestamp, User, UserIdx,
};

pub use codec::ChunkView;
pub use error::{Result, StoreError};
pub use redb_store::{DEFAULT_CACHE_BYTES, DEFAULT_RECENT_IDS, RedbStore, SCHEMA_VERSION, Tuning};

/// How upserts treat an existing record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsertMode {
    /// The new record replaces the old one (catalog feeds).
    #[default]
    Replace,
    /// Fields the new record sets overwrite; the others are kept (items mentioned by events).
    Merge,
}

/// Everything one atomic write stores.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    /// Items to upsert.
    pub items: Vec<Item>,
    /// Users to upsert.
    pub users: Vec<User>,
    /// Events to append; those whose id is already stored are skipped.
    pub events: Vec<Event>,
    /// Upsert mode for items and users.
    pub mode: UpsertMode,
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// New events stored.
    pub events_added: u64,
    /// Events skipped because their id was already stored (or repeated in the batch).
    pub events_duplicate: u64,
    /// Events skipped because their user was erased after them (an erased history cannot
    /// come back through a re-import or a replayed stream).
    #[serde(default)]
    pub events_erased: u64,
    /// User records skipped because the user was erased and has not come back since.
    #[serde(default)]
    pub users_erased: u64,
    /// Positions (in the batch) of the events that were not stored, duplicates and erased
    /// alike, so a caller can mirror exactly what was stored.
    #[serde(skip)]
    pub skipped: Vec<u32>,
    /// Items created.
    pub items_inserted: u64,
    /// Items whose stored record was replaced by a newer one.
    pub items_updated: u64,
    /// Users created.
    pub users_inserted: u64,
    /// Users whose stored record was replaced by a newer one.
    pub users_updated: u64,
}

impl WriteReport {
    /// Adds another report's counts.
    pub fn add(&mut self, o: &WriteReport) {
        self.events_added += o.events_added;
        self.events_duplicate += o.events_duplicate;
        self.events_erased += o.events_erased;
        self.users_erased += o.users_erased;
        self.items_inserted += o.items_inserted;
        self.items_updated += o.items_updated;
        self.users_inserted += o.users_inserted;
        self.users_updated += o.users_updated;
    }
}

/// What [`Store::erase_user`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Whether anything of the user was stored.
    pub found: bool,
    /// Events removed.
    pub events: u64,
    /// Segment memberships and history entries removed.
    pub segment_entries: u64,
    /// Experiment exposures (served lists) removed.
    pub exposures: u64,
}

/// One logged exposure of an experiment: the unit (user or session id, kept apart so an
/// erasure can find it) and the record, JSON owned by the experiment crate.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureRow {
    /// The experiment the unit was exposed in (its unique name).
    pub experiment: String,
    /// User or session id.
    pub unit: String,
    /// The exposure record.
    pub record: Vec<u8>,
}

/// The key an erased user id is remembered by: a hash, so the store keeps no identifier
/// of a person it erased.
pub fn erasure_key(id: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"tailor-erased\0");
    h.update(id.as_bytes());
    h.digest128()
}

/// The short key of a user on a stored segment map (`map.keys` of a segmentation record,
/// parallel to `map.points`), by which an erasure finds the user's point.
pub fn map_key(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0x7a11_0e5e)
}

/// A record with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored<T> {
    /// The record as last written.
    pub value: T,
    /// When it was first stored (wall clock).
    pub created_at: Timestamp,
    /// When it was last changed (wall clock).
    pub updated_at: Timestamp,
    /// Number of upserts that changed it, starting at 1.
    pub revision: u64,
}

/// Which events a scan visits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// Only events of these kinds (all when `None`). The others are not decoded.
    pub kinds: Option<&'static [EventKind]>,
}

impl EventFilter {
    /// Whether `ts` passes.
    pub fn accepts(&self, ts: Timestamp) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }

    /// Whether an event of `kind` at `ts` passes.
    pub fn accepts_event(&self, ts: Timestamp, kind: EventKind) -> bool {
        self.accepts(ts) && self.kinds.is_none_or(|k| k.contains(&kind))
    }
}

/// Sizes of what is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events stored (all kinds, erased users excluded).
    pub events: u64,
    /// Distinct users (mentioned by events or upserted).
    pub users: u64,
    /// Distinct items (mentioned by events or upserted).
    pub items: u64,
    /// Users with a stored record.
    pub user_records: u64,
    /// Items with a stored record.
    pub item_records: u64,
}

/// The storage interface. Implementations are safe to share between threads.
///
/// **Invariants:** a `write` is atomic (all of it or none of it is visible, also after a
/// crash) and durable when it returns `Ok`; event ids are unique, so writing the same events
/// again adds nothing; dense indices never change once assigned.
pub trait Store: Send + Sync {
    /// Stores a batch atomically and durably. Every record is validated first; one invalid
    /// record rejects the whole batch with its index.
    fn write(&self, batch: WriteBatch) -> Result<WriteReport> {
        self.write_all(&mut std::iter::once(Ok(batch)))
    }

    /// Stores a stream of batches as ONE atomic, durable transaction, so a producer (an
    /// importer parsing a file) can overlap with the write. An `Err` item aborts: nothing of
    /// the stream is stored and [`StoreError::Aborted`] is returned.
    fn write_all(
        &self,
        batches: &mut dyn Iterator<Item = std::result::Result<WriteBatch, String>>,
    ) -> Result<WriteReport>;

    /// Group commit: stores several independent batches in one atomic, durable transaction
    /// (one fsync for all of them) and reports each batch's own counts, in order. A server
    /// uses it to merge concurrent requests. The default writes them one by one.
    fn write_group(&self, batches: Vec<WriteBatch>) -> Result<Vec<WriteReport>> {
        batches.into_iter().map(|b| self.write(b)).collect()
    }

    /// Erases a user (right to erasure), atomically: their events (and those events' ids),
    /// their record, their segment memberships and membership history, their exposures and
    /// their points on stored segment maps. The external id is replaced by a tombstone in
    /// the dictionary (dense indices never change) and remembered by its [`erasure_key`]
    /// with the time: events of the id dated before the erasure are never stored again
    /// (re-imports and replays stay erased), a later event starts a new user. Unknown
    /// users erase nothing.
    fn erase_user(&self, id: &str) -> Result<Erasure>;

    /// When the user with this [`erasure_key`] was last erased, for every erased id.
    fn erasures(&self) -> Result<std::collections::HashMap<u128, Timestamp>>;

    /// The item with external id `id`.
    fn item(&self, id: &str) -> Result<Option<Stored<Item>>>;

    /// The user with external id `id`.
    fn user(&self, id: &str) -> Result<Option<Stored<User>>>;

    /// Visits every stored item record in index order.
    fn for_each_item(&self, f: &mut dyn FnMut(ItemIdx, Stored<Item>)) -> Result<()>;

    /// Visits every stored user record in index order.
    fn for_each_user(&self, f: &mut dyn FnMut(UserIdx, Stored<User>)) -> Result<()>;

    /// External user ids in dense-index order.
    fn user_names(&self) -> Result<Vec<String>>;

    /// External item ids in dense-index order.
    fn item_names(&self) -> Result<Vec<String>>;

    /// External item ids from dense index `from` on (the items added since a caller last
    /// looked), without copying the whole dictionary.
    fn item_names_from(&self, from: usize) -> Result<Vec<String>> {
        let mut all = self.item_names()?;
        Ok(all.split_off(from.min(all.len())))
    }

    /// Visits events in insertion order, fully decoded, until `f` breaks.
    fn scan_events(&self, filter: EventFilter, f: &mut dyn FnMut(EventId, Event) -> ControlFlow<()>) -> Result<()>;

    /// Visits the raw column chunks in insertion order: the fast path for models.
    fn scan_chunks(&self, f: &mut dyn FnMut(ChunkView<'_>)) -> Result<()>;

    /// How much is stored.
    fn counts(&self) -> Result<Counts>;

    /// The schema version of the data.
    fn schema_version(&self) -> Result<u32>;

    /// Stores a segmentation run and makes `memberships` (user → segment names) the current
    /// memberships of segmentation `run.name`, atomically: users not listed leave all its
    /// segments, and every user whose segments change gets a [`MembershipChange`]. Returns
    /// the run id (increasing, assigned by the store).
    fn save_segmentation(
        &self,
        run: SegmentationRun,
        memberships: &mut dyn Iterator<Item = (String, Vec<String>)>,
    ) -> Result<u64>;

    /// Sets one user's segments in segmentation `name` (real-time reassignment), recording
    /// the change in the history when they differ. Returns whether they changed.
    fn set_user_segments(&self, name: &str, user: &str, segments: Vec<String>, at: Timestamp) -> Result<bool>;

    /// [`Store::set_user_segments`] for many (segmentation, user, segments) at once, in one
    /// transaction. Returns how many changed.
    fn set_many_user_segments(&self, changes: Vec<(String, String, Vec<String>)>, at: Timestamp) -> Result<usize> {
        let mut n = 0;
        for (name, user, segments) in changes {
            n += usize::from(self.set_user_segments(&name, &user, segments, at)?);
        }
        Ok(n)
    }

    /// The latest run of segmentation `name`, or run `id`.
    fn segmentation(&self, name: &str, id: Option<u64>) -> Result<Option<SegmentationRun>>;

    /// Every stored run, oldest first.
    fn segmentation_runs(&self) -> Result<Vec<SegmentationRun>>;

    /// A user's current segments in every segmentation (segmentation name, segments).
    fn user_segments(&self, user: &str) -> Result<Vec<(String, Vec<String>)>>;

    /// Current members of `segment` in segmentation `name`, in user-id order.
    fn segment_members(&self, name: &str, segment: &str) -> Result<Vec<String>>;

    /// Membership changes of segmentation `name` (of one user, if given), oldest first.
    fn membership_history(&self, name: &str, user: Option<&str>) -> Result<Vec<MembershipChange>>;

    /// Stores (replaces) an experiment's record, durably.
    fn put_experiment(&self, name: &str, record: &[u8]) -> Result<()>;

    /// Every stored experiment (name, record), by name.
    fn experiments(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Appends exposures in one durable transaction.
    fn append_exposures(&self, rows: &[ExposureRow]) -> Result<()>;

    /// An experiment's exposures (unit, record) in logging order.
    fn scan_exposures(&self, experiment: &str, f: &mut dyn FnMut(&str, &[u8]) -> ControlFlow<()>) -> Result<()>;
}

/// A named segment of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDef {
    /// Segment name (unique within the run).
    pub name: String,
    /// What it is (rules, auto-name, RFM definition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Members when the run was stored.
    pub size: u64,
}

/// One stored segmentation run: which segments exist and how they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationRun {
    /// Assigned by the store (0 before saving).
    pub id: u64,
    /// The segmentation (`kmeans`, `rfm`, `rules`... or a name the user gives).
    pub name: String,
    /// When the run was made.
    pub created_at: Timestamp,
    /// Its segments.
    pub segments: Vec<SegmentDef>,
    /// Everything needed to reuse the run (method, parameters, transforms, centroids,
    /// rules, explanations, summaries) as JSON; opaque to the store.
    pub record: serde_json::Value,
}

/// A user's segments changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// Increasing sequence number.
    pub seq: u64,
    /// User id.
    pub user: String,
    /// Segments before (empty: none).
    pub from: Vec<String>,
    /// Segments after (empty: none).
    pub to: Vec<String>,
    /// When the membership changed (server clock, ms).
    pub at: Timestamp,
    /// The run that moved them (`None` for real-time reassignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
}

/// Reads every event with a user and an item into a CSR matrix (the batch path of training).
pub fn load_interactions(store: &dyn Store, builder: InteractionsBuilder) -> Result<Interactions> {
    let mut builder = builder;
    let counts = store.counts()?;
    builder.reserve(counts.events as usize);
    store.scan_chunks(&mut |c| {
        for i in 0..c.len() {
            let (u, it) = (c.user(i), c.item(i));
            if u == codec::NONE || it == codec::NONE {
                continue;
            }
            let rating = c.rating(i);
            builder.push_rated(
                UserIdx(u),
                ItemIdx(it),
                c.kind(i),
                Timestamp(c.ts(i)),
                c.quantity(i),
                if rating.is_nan() { 1.0 } else { rating },
            );
        }
    })?;
    Ok(builder.build(counts.users as usize, counts.items as usize))
}
