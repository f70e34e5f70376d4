//! Errors of the store.

use std::path::PathBuf;

use tailor_core::{Classified, CoreError, ErrorKind};

/// What went wrong while reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or opened.
    #[error("cannot open the data directory {path}: {source}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database engine failed.
    #[error("store {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// The engine's error.
        source: Box<redb::Error>,
    },
    /// Another process holds the database.
    #[error("the data directory {path} is in use by another tailor process (stop it, or pass another --data-dir)")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The data was written by a newer tailor.
    #[error(
        "the data directory {path} has schema version {found}, newer than this tailor understands ({supported}); upgrade tailor"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version on disk.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// Stored bytes do not decode.
    #[error("store {path} is corrupt: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What failed to decode.
        what: String,
    },
    /// The producer of a streamed write gave up; nothing was stored.
    #[error("write aborted, nothing was stored: {0}")]
    Aborted(String),
    /// A record in a write batch is invalid.
    #[error("{what} #{index}: {source}")]
    Invalid {
        /// `event`, `item` or `user`.
        what: &'static str,
        /// Position in the batch (0-based).
        index: usize,
        /// The rule it broke.
        source: CoreError,
    },
}

impl Classified for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } | Self::Aborted(_) => ErrorKind::User,
            Self::Locked { .. } => ErrorKind::Unavailable,
            Self::SchemaTooNew { .. } => ErrorKind::Conflict,
            Self::Io { .. } | Self::Db { .. } | Self::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
