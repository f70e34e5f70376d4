//! Integration tests of importers and exporters against a real redb store.

mod catalog;
mod malformed;
mod roundtrip;
mod shared_data;

use std::path::{Path, PathBuf};

use tailor_ingest::import::{ImportOptions, ImportReport, import_file};
use tailor_ingest::mapping::{Mapping, Target};
use tailor_ingest::{IngestError, Result};
use tailor_store::RedbStore;

/// `../shared/data` seen from this crate.
pub fn shared_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// Imports `path` with `--map`/`--set` style pairs.
pub fn import(
    store: &RedbStore,
    target: Target,
    path: &Path,
    maps: &[&str],
    sets: &[&str],
    opts: &ImportOptions,
) -> Result<ImportReport> {
    let maps: Vec<String> = maps.iter().map(|s| (*s).to_owned()).collect();
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    let mapping = Mapping::parse(target, &maps, &sets)?;
    import_file(path, &mapping, opts, store, &mut |_| {})
}

/// The error text with the file path replaced by `F`.
pub fn text(err: &IngestError, path: &Path) -> String {
    err.to_string().replace(&path.display().to_string(), "F")
}
