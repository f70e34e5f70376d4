//! Model versions on disk (`DATA_DIR/models/`): one gzip'd model file per registered version
//! and `registry.json` naming the live one, so a restart serves the same version, a retrain
//! can be rejected, and `tailor model rollback` can go back. Writes go through a temporary
//! file and a rename, so a crash never leaves a half-written registry.

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

/// The model directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    /// Serialises rewrites of model files (saves, pruning, erasure scrubs), so a scrub
    /// never brings back a file pruning just deleted.
    files: std::sync::Arc<std::sync::Mutex<()>>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::File { path: path.to_path_buf(), reason: e.to_string() }
}

impl Registry {
    /// The registry in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, files: Default::default() }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, ()> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("registry.json")
    }

    fn model_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version:06}.json.gz"))
    }

    /// The registry (empty when none was written yet).
    pub fn read(&self) -> ServerResult<RegistryFile> {
        let path = self.file();
        match fs_err::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io(&path, format!("corrupt registry: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RegistryFile::default()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> ServerResult<()> {
        fs_err::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let tmp = path.with_extension("tmp");
        let mut f = fs_err::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io(&tmp, e))?;
        fs_err::rename(&tmp, path).map_err(|e| io(path, e))
    }

    /// Replaces the registry.
    pub fn write(&self, r: &RegistryFile) -> ServerResult<()> {
        let path = self.file();
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| io(&path, e))?;
        self.write_atomic(&path, &bytes)
    }

    fn write_gz(&self, path: &Path, json: &[u8]) -> ServerResult<()> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(json).map_err(|e| io(path, e))?;
        let bytes = gz.finish().map_err(|e| io(path, e))?;
        self.write_atomic(path, &bytes)
    }

    fn read_gz(path: &Path) -> ServerResult<Vec<u8>> {
        let f = fs_err::File::open(path).map_err(|e| io(path, e))?;
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(f).read_to_end(&mut json).map_err(|e| io(path, e))?;
        Ok(json)
    }

    /// Stores a version's model.
    pub fn save_model(&self, version: u64, file: &ModelFile) -> ServerResult<()> {
        let _files = self.lock_files();
        let path = self.model_path(version);
        self.write_gz(&path, &file.to_json().map_err(|e| io(&path, e))?)
    }

    /// Forgets erased users in the kept files of version `v` (its model and its context
    /// model): a row whose user id is no longer the store's id at that dense index
    /// (`current`, the store's user names now) belongs to an erased user; its id becomes a
    /// tombstone and its factors zeros, and the files are rewritten. Returns the rows
    /// forgotten.
    pub fn scrub(&self, v: u64, current: &[String]) -> ServerResult<usize> {
        let _files = self.lock_files();
        let path = self.model_path(v);
        if !path.exists() {
            return Ok(0);
        }
        let mut file = ModelFile::from_json(&Self::read_gz(&path)?).map_err(|e| io(&path, e))?;
        let rows = file.forget_users_at(|r, id| current.get(r).is_none_or(|now| now != id));
        if rows.is_empty() {
            return Ok(0);
        }
        self.write_gz(&path, &file.to_json().map_err(|e| io(&path, e))?)?;
        for other in self.other_paths(v) {
            let mut file = ModelFile::from_json(&Self::read_gz(&other)?).map_err(|e| io(&other, e))?;
            if !file.forget_users_at(|r, id| current.get(r).is_none_or(|now| now != id)).is_empty() {
                self.write_gz(&other, &file.to_json().map_err(|e| io(&other, e))?)?;
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
            let path = self.context_path(v);
            self.write_gz(&path, &serde_json::to_vec(&part).map_err(|e| io(&path, e))?)?;
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

    fn context_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("v{version:06}-context.json.gz"))
    }

    /// Stores a version's context model.
    pub fn save_context(&self, version: u64, part: &crate::live::ContextPart) -> ServerResult<()> {
        let _files = self.lock_files();
        let path = self.context_path(version);
        self.write_gz(&path, &serde_json::to_vec(part).map_err(|e| io(&path, e))?)
    }

    /// A version's context model, if one was kept.
    pub fn load_context(&self, version: u64) -> ServerResult<Option<crate::live::ContextPart>> {
        let path = self.context_path(version);
        if !path.exists() {
            return Ok(None);
        }
        let json = Self::read_gz(&path)?;
        serde_json::from_slice(&json).map(Some).map_err(|e| io(&path, format!("corrupt context model: {e}")))
    }

    /// A version's personalised model.
    pub fn load_model(&self, version: u64) -> ServerResult<AnyModel> {
        let path = self.model_path(version);
        let json = Self::read_gz(&path)?;
        Ok(ModelFile::from_json(&json).map_err(|e| io(&path, e))?.model)
    }

    /// Deletes model files of all but the newest `keep` promoted versions (never the live
    /// one), so rollback has `keep - 1` versions to go back to.
    pub fn prune(&self, r: &RegistryFile, keep: usize) -> ServerResult<()> {
        let _files = self.lock_files();
        let promoted: Vec<u64> = r.versions.iter().filter(|v| v.promoted).map(|v| v.version).collect();
        let cut = promoted.len().saturating_sub(keep.max(1));
        for &v in &promoted[..cut] {
            if Some(v) != r.live {
                for path in [self.model_path(v), self.context_path(v)].into_iter().chain(self.other_paths(v)) {
                    if path.exists() {
                        fs_err::remove_file(&path).map_err(|e| io(&path, e))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn other_path(&self, version: u64, kind: ModelKind) -> PathBuf {
        self.dir.join(format!("v{version:06}-{kind}.json.gz"))
    }

    /// The files of the models version `v` keeps beside its served one.
    fn other_paths(&self, v: u64) -> Vec<PathBuf> {
        ModelKind::ALL.iter().map(|&k| self.other_path(v, k)).filter(|p| p.exists()).collect()
    }

    /// Stores a model version `version` keeps beside its served one.
    pub fn save_other(&self, version: u64, kind: ModelKind, file: &ModelFile) -> ServerResult<()> {
        let _files = self.lock_files();
        let path = self.other_path(version, kind);
        self.write_gz(&path, &file.to_json().map_err(|e| io(&path, e))?)
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
            let kind: ModelKind = c.model.parse().map_err(|e| io(&self.dir, e))?;
            let path = self.other_path(v, kind);
            let json = Self::read_gz(&path)?;
            let model = ModelFile::from_json(&json).map_err(|e| io(&path, e))?.model;
            out.push(crate::live::Other { kind, model, recency: c.recency_half_life });
        }
        Ok(out)
    }

    /// Whether version `v`'s model file is on disk.
    pub fn has_model(&self, v: u64) -> bool {
        self.model_path(v).exists()
    }
}
