//! Model versions (`DATA_DIR/models/` by default): one gzip'd model file per registered
//! version and `registry.json` naming the live one, so a restart serves the same version, a
//! retrain can be rejected, and `tailor model rollback` can go back. They are kept in
//! [`Blobs`], each written whole, so a crash never leaves a half-written registry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tailor_recommend::file::{AnyModel, ModelFile};

use crate::error::{ServerError, ServerResult};
use crate::live::LiveInfo;
use tailor_recommend::zoo::ModelKind;

/// `registry.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryFile {
    /// The version to serve.
    pub live: Option<u64>,
    /// Every version trained, oldest first (rejected candidates included, with `promoted`
    /// false and no model file).
    pub versions: Vec<LiveInfo>,
}

impl RegistryFile {
    /// The next version number.
    pub fn next_version(&self) -> u64 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1
    }

    /// Facts of version `v`.
    pub fn get(&self, v: u64) -> Option<&LiveInfo> {
        self.versions.iter().find(|x| x.version == v)
    }
}

/// Where model versions are kept: named byte blobs, each written whole (a reader sees the
/// old bytes or the new ones, never a mix). A directory on one node ([`DirBlobs`]); an
/// object store (S3) plugs in here so that several nodes share the versions.
pub trait Blobs: Send + Sync + std::fmt::Debug {
    /// The bytes stored under `name`, `None` when there are none.
    fn get(&self, name: &str) -> ServerResult<Option<Vec<u8>>>;
    /// Stores `bytes` under `name`, replacing what was there.
    fn put(&self, name: &str, bytes: &[u8]) -> ServerResult<()>;
    /// Deletes `name` (nothing when absent).
    fn delete(&self, name: &str) -> ServerResult<()>;
    /// Whether `name` is stored.
    fn exists(&self, name: &str) -> ServerResult<bool>;
    /// Where `name` is, for messages (a path or a URL).
    fn locate(&self, name: &str) -> PathBuf;
}

/// Blobs as files of one directory (created on first write); writes go through a
/// temporary file, an fsync and a rename.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    dir: PathBuf,
}

impl DirBlobs {
    /// The blobs in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

impl Blobs for DirBlobs {
    fn get(&self, name: &str) -> ServerResult<Option<Vec<u8>>> {
        let path = self.dir.join(name);
        match fs_err::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> ServerResult<()> {
        fs_err::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = fs_err::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io(&tmp, e))?;
        fs_err::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    fn delete(&self, name: &str) -> ServerResult<()> {
        let path = self.dir.join(name);
        match fs_err::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn exists(&self, name: &str) -> ServerResult<bool> {
        let path = self.dir.join(name);
        path.try_exists().map_err(|e| io(&path, e))
    }

    fn locate(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The model versions: `registry.json` and the gzip'd model files, over [`Blobs`].
#[derive(Debug, Clone)]
pub struct Registry {
    blobs: std::sync::Arc<dyn Blobs>,
    /// Serialises rewrites of model files (saves, pruning, erasure scrubs), so a scrub
    /// never brings back a file pruning just deleted.
    files: std::sync::Arc<std::sync::Mutex<()>>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::File { path: path.to_path_buf(), reason: e.to_string() }
}

const REGISTRY: &str = "registry.json";

fn model_name(version: u64) -> String {
    format!("v{version:06}.json.gz")
}

fn context_name(version: u64) -> String {
    format!("v{version:06}-context.json.gz")
}

fn other_name(version: u64, kind: ModelKind) -> String {
    format!("v{version:06}-{kind}.json.gz")
}

impl Registry {
    /// The registry in directory `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self::over(std::sync::Arc::new(DirBlobs::new(dir)))
    }

    /// The registry kept in `blobs`.
    pub fn over(blobs: std::sync::Arc<dyn Blobs>) -> Self {
        Self { blobs, files: Default::default() }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, ()> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where a version's model file is (for messages and tests).
    pub fn model_location(&self, version: u64) -> PathBuf {
        self.blobs.locate(&model_name(version))
    }

    /// The registry (empty when none was written yet).
    pub fn read(&self) -> ServerResult<RegistryFile> {
        match self.blobs.get(REGISTRY)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io(&self.blobs.locate(REGISTRY), format!("corrupt registry: {e}"))),
            None => Ok(RegistryFile::default()),
        }
    }

    /// Replaces the registry.
    pub fn write(&self, r: &RegistryFile) -> ServerResult<()> {
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| io(&self.blobs.locate(REGISTRY), e))?;
        self.blobs.put(REGISTRY, &bytes)
    }

    fn write_gz(&self, name: &str, json: &[u8]) -> ServerResult<()> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json).map_err(|e| io(&self.blobs.locate(name), e))?;
        let bytes = gz.finish().map_err(|e| io(&self.blobs.locate(name), e))?;
        self.blobs.put(name, &bytes)
    }

    /// The unzipped bytes of `name`, `None` when it is not stored.
    fn read_gz(&self, name: &str) -> ServerResult<Option<Vec<u8>>> {
        let Some(bytes) = self.blobs.get(name)? else { return Ok(None) };
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut json)
            .map_err(|e| io(&self.blobs.locate(name), e))?;
        Ok(Some(json))
    }

    fn read_model(&self, name: &str) -> ServerResult<Option<ModelFile>> {
        let Some(json) = self.read_gz(name)? else { return Ok(None) };
        ModelFile::from_json(&json).map(Some).map_err(|e| io(&self.blobs.locate(name), e))
    }

    /// [`Registry::read_model`] of a file that must be there.
    fn required_model(&self, name: &str) -> ServerResult<ModelFile> {
        self.read_model(name)?.ok_or_else(|| io(&self.blobs.locate(name), "no such model file"))
    }

    fn write_model(&self, name: &str, file: &ModelFile) -> ServerResult<()> {
        self.write_gz(name, &file.to_json().map_err(|e| io(&self.blobs.locate(name), e))?)
    }

    /// Stores a version's model.
    pub fn save_model(&self, version: u64, file: &ModelFile) -> ServerResult<()> {
        let _files = self.lock_files();
        self.write_model(&model_name(version), file)
    }

    /// Forgets erased users in the kept files of version `v` (its model, the models kept
    /// beside it and its context model): a row whose user id is no longer the store's id
    /// at that dense index (`current`, the store's user names now) belongs to an erased
    /// user; its id becomes a tombstone and its factors zeros, and the files are
    /// rewritten. Returns the rows forgotten.
    pub fn scrub(&self, v: u64, current: &[String]) -> ServerResult<usize> {
        let _files = self.lock_files();
        let name = model_name(v);
        let Some(mut file) = self.read_model(&name)? else { return Ok(0) };
        let gone = |r: usize, id: &str| current.get(r).is_none_or(|now| now != id);
        let rows = file.forget_users_at(gone);
        if rows.is_empty() {
            return Ok(0);
        }
        self.write_model(&name, &file)?;
        for other in ModelKind::ALL.iter().map(|&k| other_name(v, k)) {
            if let Some(mut file) = self.read_model(&other)?
                && !file.forget_users_at(gone).is_empty()
            {
                self.write_model(&other, &file)?;
            }
        }
        if let Some((mut cm, index)) = self.load_context(v)? {
            let k = cm.k;
            for &r in &rows {
                if let Some(row) = cm.users.get_mut(r * k..(r + 1) * k) {
                    row.fill(0.0);
                }
            }
            let part = (cm, index);
            let name = context_name(v);
            self.write_gz(&name, &serde_json::to_vec(&part).map_err(|e| io(&self.blobs.locate(&name), e))?)?;
        }
        Ok(rows.len())
    }

    /// [`Registry::scrub`] of every version with a kept model file.
    pub fn scrub_all(&self, current: &[String]) -> ServerResult<usize> {
        let reg = self.read()?;
        let mut n = 0;
        for v in reg.versions.iter().map(|v| v.version) {
            n += self.scrub(v, current)?;
        }
        Ok(n)
    }

    /// Stores a version's context model.
    pub fn save_context(&self, version: u64, part: &crate::live::ContextPart) -> ServerResult<()> {
        let _files = self.lock_files();
        let name = context_name(version);
        self.write_gz(&name, &serde_json::to_vec(part).map_err(|e| io(&self.blobs.locate(&name), e))?)
    }

    /// A version's context model, if one was kept.
    pub fn load_context(&self, version: u64) -> ServerResult<Option<crate::live::ContextPart>> {
        let name = context_name(version);
        let Some(json) = self.read_gz(&name)? else { return Ok(None) };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| io(&self.blobs.locate(&name), format!("corrupt context model: {e}")))
    }

    /// A version's personalised model.
    pub fn load_model(&self, version: u64) -> ServerResult<AnyModel> {
        Ok(self.required_model(&model_name(version))?.model)
    }

    /// Deletes model files of all but the newest `keep` promoted versions (never the live
    /// one), so rollback has `keep - 1` versions to go back to.
    pub fn prune(&self, r: &RegistryFile, keep: usize) -> ServerResult<()> {
        let _files = self.lock_files();
        let promoted: Vec<u64> = r.versions.iter().filter(|v| v.promoted).map(|v| v.version).collect();
        let cut = promoted.len().saturating_sub(keep.max(1));
        for &v in &promoted[..cut] {
            if Some(v) != r.live {
                let others = ModelKind::ALL.iter().map(|&k| other_name(v, k));
                for name in [model_name(v), context_name(v)].into_iter().chain(others) {
                    self.blobs.delete(&name)?;
                }
            }
        }
        Ok(())
    }

    /// Stores a model version `version` keeps beside its served one.
    pub fn save_other(&self, version: u64, kind: ModelKind, file: &ModelFile) -> ServerResult<()> {
        let _files = self.lock_files();
        self.write_model(&other_name(version, kind), file)
    }

    /// The models version `v` keeps beside its served one (the candidates marked kept),
    /// each with the recency it was measured with.
    pub fn load_others(
        &self,
        v: u64,
        candidates: &[crate::live::CandidateInfo],
    ) -> ServerResult<Vec<crate::live::Other>> {
        let mut out = Vec::new();
        for c in candidates.iter().filter(|c| c.kept) {
            let kind: ModelKind = c.model.parse().map_err(|e| io(&self.blobs.locate(REGISTRY), e))?;
            let model = self.required_model(&other_name(v, kind))?.model;
            out.push(crate::live::Other { kind, model, recency: c.recency_half_life });
        }
        Ok(out)
    }

    /// Whether version `v`'s model file is stored.
    pub fn has_model(&self, v: u64) -> ServerResult<bool> {
        self.blobs.exists(&model_name(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_blobs_replace_whole_and_forget_what_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = DirBlobs::new(dir.path().join("models"));
        assert_eq!(b.get("a").expect("get"), None, "nothing before the first write (no directory yet)");
        assert!(!b.exists("a").expect("exists"));
        b.put("a", b"one").expect("put");
        b.put("a", b"two").expect("put");
        assert_eq!(b.get("a").expect("get").as_deref(), Some(&b"two"[..]));
        assert!(b.exists("a").expect("exists"));
        assert!(!dir.path().join("models/a.tmp").exists(), "no temporary file left");
        b.delete("a").expect("delete");
        b.delete("a").expect("deleting twice is no error");
        assert_eq!(b.get("a").expect("get"), None);
    }

    #[test]
    fn a_corrupt_registry_is_named_with_its_location() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = DirBlobs::new(dir.path().to_path_buf());
        blobs.put(REGISTRY, b"{not json").expect("put");
        let r = Registry::new(dir.path().to_path_buf());
        let err = r.read().expect_err("corrupt").to_string();
        assert!(err.contains("registry.json") && err.contains("corrupt registry"), "{err}");
        assert!(r.load_model(7).expect_err("missing").to_string().contains("v000007.json.gz"));
        assert!(!r.has_model(7).expect("has"));
    }
}
