//! Real-time segment memberships: the segmentations whose stored runs can place one user
//! (nearest centre, or compiled rules), every user's current segments (authoritative for
//! serving), the users whose features changed since they were last placed, and the queue
//! that persists changes to the store in batches. One lock per part.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tailor_core::Timestamp;
use tailor_segment::features::ClvModel;
use tailor_store::Store;

use crate::error::ApiResult;
use crate::online::{self, Subjects};

/// Membership changes `(segmentation, user, segments)` found at one time.
pub type MembershipBatch = (Vec<(String, String, Vec<String>)>, Timestamp);

/// Persists membership changes: drains every queued change and stores them in one
/// transaction (with history). Ends when the state is dropped.
pub fn segment_writer(store: &dyn Store, rx: &std::sync::mpsc::Receiver<MembershipBatch>) {
    while let Ok((mut changes, at)) = rx.recv() {
        let mut last = at;
        while let Ok((more, t)) = rx.try_recv() {
            changes.extend(more);
            last = t;
        }
        if let Err(e) = store.set_many_user_segments(changes, last) {
            tracing::error!(error = %e, "persisting segment memberships failed");
        }
    }
}

/// A segmentation placing users in real time.
struct Segmenter {
    name: String,
    assigner: tailor_segment::assign::Assigner,
}

/// See the module documentation.
pub struct Memberships {
    segmenters: ArcSwap<Vec<Segmenter>>,
    /// Segments per user and segmentation.
    current: Mutex<HashMap<String, HashMap<String, Vec<String>>>>,
    dirty: Mutex<HashSet<String>>,
    changes: std::sync::mpsc::Sender<MembershipBatch>,
    /// The lifetime-value models of the newest run that has them (profiles show them).
    clv: ArcSwap<Option<ClvModel>>,
}

impl Memberships {
    /// Empty; changes go to `changes` (drained by [`segment_writer`]).
    pub fn new(changes: std::sync::mpsc::Sender<MembershipBatch>) -> Self {
        Self {
            segmenters: ArcSwap::from_pointee(Vec::new()),
            current: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
            changes,
            clv: ArcSwap::from_pointee(None),
        }
    }

    /// Reloads the segmentations (the latest run of each) and every stored membership.
    pub fn load(&self, store: &dyn Store) -> ApiResult<()> {
        let mut latest: HashMap<String, tailor_store::SegmentationRun> = HashMap::new();
        for run in store.segmentation_runs()? {
            latest.insert(run.name.clone(), run);
        }
        let mut segmenters = Vec::new();
        let mut clv: Option<(i64, ClvModel)> = None;
        let mut members: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
        for run in latest.into_values() {
            for seg in &run.segments {
                for u in store.segment_members(&run.name, &seg.name)? {
                    members.entry(u).or_default().entry(run.name.clone()).or_default().push(seg.name.clone());
                }
            }
            let as_of = run.record.get("as_of").and_then(serde_json::Value::as_i64).unwrap_or(i64::MIN);
            if let Some(Ok(m)) = run.record.get("clv").map(|v| serde_json::from_value::<ClvModel>(v.clone()))
                && clv.is_none_or(|(t, _)| as_of > t)
            {
                clv = Some((as_of, m));
            }
            match serde_json::from_value::<tailor_segment::assign::Assigner>(run.record.clone()) {
                Ok(a) if a.can_assign() => segmenters.push(Segmenter { name: run.name.clone(), assigner: a }),
                _ => {
                    tracing::info!(segmentation = %run.name, "not reassigned in real time (its method cannot place single users)")
                }
            }
        }
        self.segmenters.store(Arc::new(segmenters));
        self.clv.store(Arc::new(clv.map(|(_, m)| m)));
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = members;
        Ok(())
    }

    /// The lifetime-value models of the newest segmentation run that has them.
    pub fn clv_model(&self) -> Option<ClvModel> {
        **self.clv.load()
    }

    /// Notes that these users' features changed (nothing to note without a segmentation
    /// that can place them).
    pub fn mark_dirty(&self, users: impl IntoIterator<Item = String>) {
        if self.segmenters.load().is_empty() {
            return;
        }
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).extend(users);
    }

    /// Whether `user` was marked, unmarking them.
    pub fn take_dirty(&self, user: &str) -> bool {
        self.dirty.lock().unwrap_or_else(PoisonError::into_inner).remove(user)
    }

    /// Every marked user, unmarking them.
    pub fn take_all_dirty(&self) -> Vec<String> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect()
    }

    /// Members per (segmentation, segment).
    pub fn sizes(&self) -> HashMap<(String, String), usize> {
        let m = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: HashMap<(String, String), usize> = HashMap::new();
        for by in m.values() {
            for (segmentation, segs) in by {
                for seg in segs {
                    *out.entry((segmentation.clone(), seg.clone())).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// A user's current segments per segmentation, by segmentation name.
    pub fn by_segmentation(&self, user: &str) -> Vec<(String, Vec<String>)> {
        let m = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<(String, Vec<String>)> =
            m.get(user).map(|by| by.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        out.sort();
        out
    }

    /// A user's current segments in every segmentation.
    pub fn of(&self, user: &str) -> Vec<String> {
        let m = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<String> = m.get(user).map(|by| by.values().flatten().cloned().collect()).unwrap_or_default();
        out.sort();
        out.dedup();
        out
    }

    /// Forgets an erased user.
    pub fn forget(&self, user: &str) {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).remove(user);
    }

    /// Re-places `users` with every real-time segmentation from their current features
    /// (their record in the store, their activity in `online`); changed memberships are
    /// mirrored here and queued for the store. Returns the user of each change (one per
    /// segmentation whose segments for them changed).
    pub fn reassign(&self, store: &dyn Store, online: &dyn Subjects, users: &[String]) -> ApiResult<Vec<String>> {
        let segmenters = self.segmenters.load_full();
        if segmenters.is_empty() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        let mut changed: Vec<(String, String, Vec<String>)> = Vec::new();
        for user in users {
            let record = store.user(user)?.map(|s| s.value);
            let key = online::user_key(user);
            for seg in segmenters.iter() {
                // Users without events (known by their attributes only) have empty activity.
                let place = |act: &tailor_segment::features::Activity| {
                    seg.assigner.place(&seg.assigner.features(user, record.as_ref(), act, now.0))
                };
                let placed =
                    online.with(&key, |sub| place(&sub.activity)).unwrap_or_else(|| place(&Default::default()));
                let Ok(placement) = placed else { continue };
                let mut m = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                let by = m.entry(user.clone()).or_default();
                if by.get(&seg.name).map_or(&[][..], Vec::as_slice) != placement.segments.as_slice() {
                    by.insert(seg.name.clone(), placement.segments.clone());
                    changed.push((seg.name.clone(), user.clone(), placement.segments));
                }
            }
        }
        let users: Vec<String> = changed.iter().map(|c| c.1.clone()).collect();
        if !changed.is_empty() {
            metrics::counter!("tailor_segment_reassignments_total").increment(changed.len() as u64);
            // Persisted in the background, many requests' changes per transaction: serving
            // reads the memory, which is already current.
            if self.changes.send((changed, now)).is_err() {
                tracing::error!("the segment writer has stopped; membership changes are not persisted");
            }
        }
        Ok(users)
    }
}
