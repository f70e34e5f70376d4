//! Domain model of tailor: the nouns every other crate speaks.
//!
//! - [`Item`], [`User`] and [`Event`] as a shop sends them (external string ids),
//! - dense interned ids ([`UserIdx`], [`ItemIdx`]) and the [`Interner`] that maps them,
//! - [`Interactions`], the CSR user × item matrix models train on, built by
//!   [`InteractionsBuilder`] with per-kind weights and time decay,
//! - [`Timestamp`] parsing shared by importers and the HTTP API,
//! - a small deterministic [`rng::Rng`] so seeded results never change with a dependency bump.
//!
//! No I/O and no async here.
//!
//! ```
//! use tailor_core::{EventKind, InteractionWeights, InteractionsBuilder, ItemIdx, Timestamp, UserIdx};
//! let mut b = InteractionsBuilder::new(InteractionWeights::default());
//! b.push(UserIdx(0), ItemIdx(3), EventKind::Purchase, Timestamp::from_secs(0), 1);
//! let m = b.build(1, 4);
//! assert_eq!(m.row(UserIdx(0)).0, &[3]);
//! ```

pub mod error;
pub mod event;
pub mod ids;
pub mod interactions;
pub mod item;
pub mod limits;
pub mod parsed;
pub mod rng;
pub mod schema;
pub mod time;
pub mod user;

pub use error::{Classified, CoreError, ErrorKind, Result};
pub use event::{Context, Event, EventId, EventKind};
pub use ids::{Interner, ItemId, ItemIdx, UserId, UserIdx};
pub use interactions::{InteractionWeights, Interactions, InteractionsBuilder};
pub use item::Item;
pub use limits::Limits;
pub use parsed::Parsed;
pub use time::Timestamp;
pub use user::{Urbanicity, User};
