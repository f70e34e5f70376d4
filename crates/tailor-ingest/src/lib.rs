//! Getting data into and out of tailor.
//!
//! - [`source`]: CSV/TSV (optionally gzip), JSON Lines and Parquet readers with line
//!   numbers, size limits and UTF-8 checks,
//! - [`mapping`]: file columns → event / item / user fields (`--map`, `--set`),
//! - [`import`]: validation with `path:line: field: reason` errors, the all-or-nothing
//!   default policy and `--skip-invalid` with a rejects file,
//! - [`presets`]: MovieLens-100K and UCI Online Retail layouts,
//! - [`export`]: events to CSV / JSON Lines / Parquet,
//! - [`demo`]: the synthetic demo shop with hidden shopper archetypes.
//!
//! ```no_run
//! use tailor_ingest::import::{ImportOptions, import_file};
//! use tailor_ingest::mapping::{Mapping, Target};
//! let store = tailor_store::RedbStore::open("./tailor-data".as_ref())?;
//! let mapping = Mapping::parse(Target::Events, &["user=CustomerID".into(), "item=StockCode".into()], &[])?;
//! let opts = ImportOptions::default();
//! let report = import_file("orders.csv".as_ref(), &mapping, &opts, &store, &mut |_| {})?;
//! println!("{} events added", report.written.events_added);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod demo;
pub mod error;
pub mod export;
pub mod import;
pub mod mapping;
pub mod presets;
pub mod source;

pub use error::{IngestError, Result, RowError};
