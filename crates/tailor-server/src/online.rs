//! The real-time side: each user's (and anonymous session's) recent events in memory,
//! updated as events arrive, so the next request sees them (read-your-writes); and the
//! per-subject cache of served lists, invalidated by those events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tailor_core::{EventKind, InteractionWeights, Timestamp};

const SHARDS: usize = 64;

fn shard_of(key: &str) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize) % SHARDS
}

/// The key of a known user.
pub fn user_key(id: &str) -> String {
    format!("u:{id}")
}

/// The key of an anonymous session.
pub fn session_key(id: &str) -> String {
    format!("s:{id}")
}

/// One remembered event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rec {
    /// Item index in the catalog.
    pub item: Option<u32>,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub ts: Timestamp,
    /// Units.
    pub quantity: u32,
    /// Unit price.
    pub price: Option<f64>,
}

/// A user's or session's recent events.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Oldest first, at most `history_per_user`.
    pub events: VecDeque<Rec>,
    /// Ids of the remembered events (duplicates are not counted twice).
    ids: HashSet<u128>,
    /// Events received through the API since the process started (0: only history).
    pub live_events: u64,
    /// Counts by kind over all remembered time.
    pub counts: HashMap<EventKind, u64>,
    /// Latest event time.
    pub last_seen: Option<Timestamp>,
    /// Wall-clock time the latest event was received through the API.
    pub updated_at: Option<Timestamp>,
    /// Behaviour features, updated one event at a time (users only).
    pub activity: tailor_segment::features::Activity,
}

impl Subject {
    /// Item history as sorted indices and summed positive weights, only items below `n`.
    pub fn history(&self, weights: &InteractionWeights, n: usize) -> (Vec<u32>, Vec<f32>) {
        let mut w: HashMap<u32, f32> = HashMap::new();
        for r in &self.events {
            if let Some(i) = r.item
                && (i as usize) < n
            {
                *w.entry(i).or_insert(0.0) += weights.weight(r.kind);
            }
        }
        let mut v: Vec<(u32, f32)> = w.into_iter().filter(|(_, x)| *x > 0.0).collect();
        v.sort_unstable_by_key(|p| p.0);
        v.into_iter().unzip()
    }

    /// Items the subject bought.
    pub fn bought(&self, item: u32) -> bool {
        self.events.iter().any(|r| r.item == Some(item) && r.kind == EventKind::Purchase)
    }
}

/// Every subject's recent events, sharded by key.
pub struct Online {
    shards: Vec<Mutex<HashMap<String, Subject>>>,
    cap: usize,
}

impl Online {
    /// Empty, keeping at most `cap` events per subject.
    pub fn new(cap: usize) -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), cap: cap.max(1) }
    }

    /// Records an event (by id: a repeat is ignored); `live` marks events received now.
    /// Returns whether it was new.
    pub fn push(&self, key: &str, id: u128, rec: Rec, live: bool) -> bool {
        self.push_event(key, id, rec, live, None)
    }

    /// [`Online::push`] that also folds the full event into the subject's behaviour features.
    pub fn push_event(
        &self,
        key: &str,
        id: u128,
        rec: Rec,
        live: bool,
        event: Option<(&tailor_core::Event, Option<&tailor_segment::features::ItemInfo>)>,
    ) -> bool {
        let mut shard = self.shards[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = shard.entry(key.to_string()).or_default();
        if !s.ids.insert(id) {
            return false;
        }
        if let Some((e, info)) = event {
            s.activity.push(e, info);
        }
        *s.counts.entry(rec.kind).or_insert(0) += 1;
        s.last_seen = Some(s.last_seen.map_or(rec.ts, |t| t.max(rec.ts)));
        if live {
            s.live_events += 1;
            s.updated_at = Some(Timestamp::now());
        }
        // Keep time order (imports may arrive out of order).
        let at = s.events.iter().rposition(|r| r.ts <= rec.ts).map_or(0, |p| p + 1);
        s.events.insert(at, rec);
        if s.events.len() > self.cap {
            s.events.pop_front();
        }
        true
    }

    /// Runs `f` on one subject's state under its shard's lock (no copy of the state).
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&Subject) -> R) -> Option<R> {
        let shard = self.shards[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.get(key).map(f)
    }

    /// A copy of one subject's state.
    pub fn get(&self, key: &str) -> Option<Subject> {
        let shard = self.shards[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.get(key).cloned()
    }

    /// Forgets a subject entirely (erasure). Returns whether it was known.
    pub fn remove(&self, key: &str) -> bool {
        let mut shard = self.shards[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.remove(key).is_some()
    }

    /// Number of subjects.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Entry {
    body: std::sync::Arc<crate::api::Recommendations>,
    at: Instant,
    generation: u64,
}

/// Served lists per subject and query, with a TTL; dropped when the subject's events change
/// or when the models or catalog change (a new generation).
pub struct Cache {
    shards: Vec<Mutex<HashMap<String, HashMap<String, Entry>>>>,
    ttl: Duration,
}

impl Cache {
    /// A cache whose entries live `ttl` (zero: disabled).
    pub fn new(ttl: Duration) -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), ttl }
    }

    /// Whether it stores anything.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// A fresh entry of the current generation.
    pub fn get(
        &self,
        subject: &str,
        query: &str,
        generation: u64,
    ) -> Option<std::sync::Arc<crate::api::Recommendations>> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shards[shard_of(subject)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = shard.get(subject)?.get(query)?;
        (e.generation == generation && e.at.elapsed() < self.ttl).then(|| e.body.clone())
    }

    /// Stores an entry.
    pub fn put(&self, subject: &str, query: &str, generation: u64, body: std::sync::Arc<crate::api::Recommendations>) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shards[shard_of(subject)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let per = shard.entry(subject.to_string()).or_default();
        if per.len() >= 32 {
            per.clear();
        }
        per.insert(query.to_string(), Entry { body, at: Instant::now(), generation });
    }

    /// Drops a subject's entries.
    pub fn invalidate(&self, subject: &str) {
        let mut shard = self.shards[shard_of(subject)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shard.remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(item: u32, kind: EventKind, ts: i64) -> Rec {
        Rec { item: Some(item), kind, ts: Timestamp(ts), quantity: 1, price: None }
    }

    #[test]
    fn events_are_deduplicated_ordered_and_capped() {
        let o = Online::new(3);
        assert!(o.push("u:a", 1, rec(5, EventKind::View, 20), true));
        assert!(!o.push("u:a", 1, rec(5, EventKind::View, 20), true), "same id twice");
        assert!(o.push("u:a", 2, rec(6, EventKind::Purchase, 10), false));
        assert!(o.push("u:a", 3, rec(5, EventKind::AddToCart, 30), true));
        assert!(o.push("u:a", 4, rec(7, EventKind::View, 40), true));
        let s = o.get("u:a").expect("known");
        assert_eq!(s.events.iter().map(|r| r.ts.0).collect::<Vec<_>>(), vec![20, 30, 40], "oldest dropped");
        assert_eq!(s.live_events, 3);
        let (items, weights) = s.history(&InteractionWeights::default(), 100);
        assert_eq!(items, vec![5, 7]);
        assert_eq!(weights, vec![4.0, 1.0]);
        assert_eq!(s.history(&InteractionWeights::default(), 6).0, vec![5], "items unknown to the model are left out");
        assert!(o.remove("u:a"));
        assert!(o.get("u:a").is_none());
    }

    #[test]
    fn cache_expires_by_generation_and_invalidation() {
        let c = Cache::new(Duration::from_secs(60));
        let v = std::sync::Arc::new(crate::api::Recommendations {
            user: Some("a".into()),
            session: None,
            items: Vec::new(),
            strategy: "popular".into(),
            model_version: 1,
            rec_id: "r1".into(),
            variant: None,
            playbooks: Vec::new(),
            context: None,
            cached: false,
        });
        c.put("u:a", "k=10", 1, v.clone());
        assert!(c.get("u:a", "k=10", 1).is_some_and(|h| std::sync::Arc::ptr_eq(&h, &v)));
        assert!(c.get("u:a", "k=10", 2).is_none(), "new generation");
        c.invalidate("u:a");
        assert!(c.get("u:a", "k=10", 1).is_none());
        let off = Cache::new(Duration::ZERO);
        off.put("u:a", "k", 1, v);
        assert!(off.get("u:a", "k", 1).is_none());
    }
}
