//! Errors of importers and exporters.

use std::path::PathBuf;

use tailor_core::{Classified, ErrorKind};
use tailor_store::StoreError;

/// One bad input row: `path:line: field: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line (1-based) where the row starts; 0 when unknown (Parquet rows count from 1 too).
    pub line: u64,
    /// The field the problem is in (`user`, `price`, `context.country`), or `row`.
    pub field: String,
    /// Why the row was refused.
    pub reason: String,
}

impl RowError {
    /// Shorthand constructor.
    pub fn new(line: u64, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { line, field: field.into(), reason: reason.into() }
    }

    /// `path:line: field: reason`.
    pub fn display(&self, path: &str) -> String {
        format!("{path}:{}: {}: {}", self.line, self.field, self.reason)
    }
}

/// What stopped an import or export.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file cannot be read at all (missing, empty, truncated, wrong format).
    #[error("{path}: {reason}")]
    File {
        /// The input file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The header or the column mapping is wrong (a problem with the whole file).
    #[error("{path}:{line}: {reason}")]
    Header {
        /// The input file.
        path: String,
        /// Line of the header (1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A command-line mapping is wrong (`--map`, `--set`).
    #[error("{0}")]
    Usage(String),
    /// Rows were invalid and the default policy rejects the whole import.
    #[error("{}", rejected_message(.path, .errors, *.total))]
    Rejected {
        /// The input file.
        path: String,
        /// The first errors (at most the configured cap).
        errors: Vec<RowError>,
        /// All invalid rows.
        total: u64,
    },
    /// The store refused the write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an output file failed.
    #[error("{path}: {reason}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

fn rejected_message(path: &str, errors: &[RowError], total: u64) -> String {
    let mut s = format!(
        "import of {path} rejected, nothing was written: {total} invalid row{} (first {} shown)",
        if total == 1 { "" } else { "s" },
        errors.len()
    );
    for e in errors {
        s.push('\n');
        s.push_str(&e.display(path));
    }
    s.push_str(
        "\nfix the rows, or pass --skip-invalid to import the valid rows and write the invalid ones to a rejects file",
    );
    s
}

impl Classified for IngestError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::File { .. } | Self::Header { .. } | Self::Usage(_) | Self::Rejected { .. } => ErrorKind::User,
            Self::Store(e) => e.kind(),
            Self::Output { .. } => ErrorKind::Internal,
        }
    }
}

/// Result with [`IngestError`].
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
