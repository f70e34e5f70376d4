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
use tailor_core::{Event, EventId, Interactions, InteractionsBuilder, Item, ItemIdx, Timestamp, User, UserIdx};

pub use codec::ChunkView;
pub use error::{Result, StoreError};
pub use redb_store::{RedbStore, SCHEMA_VERSION};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReport {
    /// New events stored.
    pub events_added: u64,
    /// Events skipped because their id was already stored (or repeated in the batch).
    pub events_duplicate: u64,
    /// Items created.
    pub items_inserted: u64,
    /// Items updated.
    pub items_updated: u64,
    /// Users created.
    pub users_inserted: u64,
    /// Users updated.
    pub users_updated: u64,
}

impl WriteReport {
    /// Adds another report's counts.
    pub fn add(&mut self, o: &WriteReport) {
        self.events_added += o.events_added;
        self.events_duplicate += o.events_duplicate;
        self.items_inserted += o.items_inserted;
        self.items_updated += o.items_updated;
        self.users_inserted += o.users_inserted;
        self.users_updated += o.users_updated;
    }
}

/// A record with its bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored<T> {
    /// The record.
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
}

impl EventFilter {
    /// Whether `ts` passes.
    pub fn accepts(&self, ts: Timestamp) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }
}

/// Sizes of what is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Events.
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

    /// Visits events in insertion order, fully decoded, until `f` breaks.
    fn scan_events(&self, filter: EventFilter, f: &mut dyn FnMut(EventId, Event) -> ControlFlow<()>) -> Result<()>;

    /// Visits the raw column chunks in insertion order: the fast path for models.
    fn scan_chunks(&self, f: &mut dyn FnMut(ChunkView<'_>)) -> Result<()>;

    /// How much is stored.
    fn counts(&self) -> Result<Counts>;

    /// The schema version of the data.
    fn schema_version(&self) -> Result<u32>;
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
