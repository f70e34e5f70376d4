//! The real-time side: each user's (and anonymous session's) recent events in memory,
//! updated as events arrive, so the next request sees them (read-your-writes); and the
//! per-subject cache of served lists, invalidated by those events.

use std::collections::{HashMap, VecDeque};
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
    /// The event's kind.
    pub kind: EventKind,
    /// Event time (ms since the epoch).
    pub ts: Timestamp,
    /// Units bought, carted or returned (1 for views and clicks).
    pub quantity: u32,
    /// Unit price.
    pub price: Option<f64>,
}

impl Rec {
    /// The event as remembered, its item as a catalog index (`None` when the catalog does
    /// not know it yet).
    pub fn of(e: &tailor_core::Event, catalog: &crate::live::Catalog) -> Self {
        Rec {
            item: e.item.as_ref().and_then(|i| catalog.index.get(i.as_str()).copied()),
            kind: e.kind,
            ts: e.ts,
            quantity: e.quantity,
            price: e.unit_price,
        }
    }
}

/// A subject's history as a model reads it (see [`Subject::history`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryBuf {
    /// Item indices, ascending.
    pub items: Vec<u32>,
    /// Summed event weights per item.
    pub weights: Vec<f32>,
    /// Recency multipliers per item (empty: none).
    pub recency: Vec<f32>,
}

/// A user's or session's recent events.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Oldest first, at most `history_per_user`.
    pub events: VecDeque<Rec>,
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
    /// Item history as sorted indices and summed positive weights, only items below `n`;
    /// with a recency half-life `h` (in interactions), also each item's multiplier
    /// `0.5^(age / h)`, where `age` counts the items the subject touched more recently (as
    /// [`tailor_recommend::recency_weights`] does for training rows).
    pub fn history(&self, weights: &InteractionWeights, n: usize, half_life: Option<f32>) -> HistoryBuf {
        // (item, weight, latest time), merged per item after one sort: no map per request.
        let mut v: Vec<(u32, f32, i64)> = self
            .events
            .iter()
            .filter_map(|r| r.item.filter(|&i| (i as usize) < n).map(|i| (i, weights.weight(r.kind), r.ts.0)))
            .collect();
        v.sort_unstable_by_key(|p| p.0);
        let mut merged: Vec<(u32, f32, i64)> = Vec::with_capacity(v.len());
        for (i, w, t) in v {
            match merged.last_mut() {
                Some(last) if last.0 == i => {
                    last.1 += w;
                    last.2 = last.2.max(t);
                }
                _ => merged.push((i, w, t)),
            }
        }
        merged.retain(|p| p.1 > 0.0);
        let recency = match half_life {
            Some(h) if h > 0.0 => {
                let mut order: Vec<usize> = (0..merged.len()).collect();
                order.sort_by(|&a, &b| merged[b].2.cmp(&merged[a].2).then(a.cmp(&b)));
                let mut r = vec![1f32; merged.len()];
                for (age, &p) in order.iter().enumerate() {
                    r[p] = 0.5f32.powf(age as f32 / h);
                }
                r
            }
            _ => Vec::new(),
        };
        HistoryBuf {
            items: merged.iter().map(|p| p.0).collect(),
            weights: merged.iter().map(|p| p.1).collect(),
            recency,
        }
    }

    /// Items the subject bought.
    pub fn bought(&self, item: u32) -> bool {
        self.events.iter().any(|r| r.item == Some(item) && r.kind == EventKind::Purchase)
    }
}

/// One shard: known users, and anonymous sessions (bounded in number; the least recently
/// seen are forgotten first — their events stay in the store).
#[derive(Default)]
struct Shard {
    users: HashMap<String, Subject>,
    sessions: HashMap<String, Subject>,
}

impl Shard {
    fn map(&mut self, key: &str) -> &mut HashMap<String, Subject> {
        if key.starts_with("s:") { &mut self.sessions } else { &mut self.users }
    }

    fn get(&self, key: &str) -> Option<&Subject> {
        if key.starts_with("s:") { self.sessions.get(key) } else { self.users.get(key) }
    }

    /// Forgets the least recently seen eighth of the sessions.
    fn evict_sessions(&mut self) {
        let mut seen: Vec<(Option<Timestamp>, Option<Timestamp>)> =
            self.sessions.values().map(|s| (s.updated_at, s.last_seen)).collect();
        let drop = (seen.len() / 8).max(1);
        let (_, cut, _) = seen.select_nth_unstable(drop - 1);
        let cut = *cut;
        let mut left = drop;
        self.sessions.retain(|_, s| {
            if left > 0 && (s.updated_at, s.last_seen) <= cut {
                left -= 1;
                return false;
            }
            true
        });
    }
}

/// Every subject's recent events, sharded by key.
pub struct Online {
    shards: Vec<Mutex<Shard>>,
    cap: usize,
    sessions_per_shard: usize,
}

impl Online {
    /// Empty, keeping at most `cap` events per subject and about `max_sessions` anonymous
    /// sessions (the least recently seen are forgotten beyond that).
    pub fn new(cap: usize, max_sessions: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            cap: cap.max(1),
            sessions_per_shard: max_sessions.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The real-time state of every user and session: their recent events and behaviour
/// features. In memory on one node ([`Online`]); a shared profile store (Redis) plugs in
/// here so that several nodes see the same subjects.
pub trait Subjects: Send + Sync {
    /// Records an event; `live` marks events received now, `event` the full event (with
    /// its item's features) to fold into the behaviour features. Events come from the
    /// store (the start-up scan, or a write's report of what it stored), so each arrives
    /// once and the state per subject stays bounded.
    fn push_event(
        &self,
        key: &str,
        rec: Rec,
        live: bool,
        event: Option<(&tailor_core::Event, Option<&tailor_segment::features::ItemInfo>)>,
    );

    /// Calls `f` once with the subject's state if it is known (under whatever lock or
    /// read the implementation needs; no copy in memory).
    fn visit(&self, key: &str, f: &mut dyn FnMut(&Subject));

    /// Forgets a subject entirely (erasure). Returns whether it was known.
    fn remove(&self, key: &str) -> bool;

    /// Number of subjects (users and sessions).
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Subjects::push_event`] without behaviour features (sessions).
    fn push(&self, key: &str, rec: Rec, live: bool) {
        self.push_event(key, rec, live, None)
    }
}

impl dyn Subjects + '_ {
    /// Runs `f` on one subject's state, if known.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&Subject) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.visit(key, &mut |s| {
            if let Some(f) = f.take() {
                out = Some(f(s));
            }
        });
        out
    }

    /// A copy of one subject's state.
    pub fn get(&self, key: &str) -> Option<Subject> {
        self.with(key, Subject::clone)
    }
}

impl Subjects for Online {
    fn push_event(
        &self,
        key: &str,
        rec: Rec,
        live: bool,
        event: Option<(&tailor_core::Event, Option<&tailor_segment::features::ItemInfo>)>,
    ) {
        let mut shard = self.shard(key);
        if key.starts_with("s:") && !shard.sessions.contains_key(key) && shard.sessions.len() >= self.sessions_per_shard
        {
            shard.evict_sessions();
        }
        let s = shard.map(key).entry(key.to_string()).or_default();
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
    }

    fn visit(&self, key: &str, f: &mut dyn FnMut(&Subject)) {
        if let Some(s) = self.shard(key).get(key) {
            f(s);
        }
    }

    fn remove(&self, key: &str) -> bool {
        self.shard(key).map(key).remove(key).is_some()
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                s.users.len() + s.sessions.len()
            })
            .sum()
    }
}

struct Entry {
    body: std::sync::Arc<crate::api::Recommendations>,
    at: Instant,
    generation: u64,
}

/// Served lists per subject and query, with a TTL; dropped when the subject's events change
/// or when the models or catalog change (a new generation).
/// At most `max_entries` lists in all: a full shard first drops what has expired, then
/// half of its subjects.
/// Served lists by subject and canonical query, valid for one generation of models and
/// catalog. In this process's memory ([`Cache`]) today; several nodes will share one
/// (Redis, the cluster issue) behind this trait.
pub trait ListCache: Send + Sync {
    /// Whether it stores anything (a TTL of 0 turns it off).
    fn enabled(&self) -> bool;
    /// A fresh entry of the current generation.
    fn get(&self, subject: &str, query: &str, generation: u64) -> Option<std::sync::Arc<crate::api::Recommendations>>;
    /// Stores an entry.
    fn put(&self, subject: &str, query: &str, generation: u64, body: std::sync::Arc<crate::api::Recommendations>);
    /// Drops a subject's entries (their events changed what they should see).
    fn invalidate(&self, subject: &str);
    /// Lists held now.
    fn len(&self) -> usize;
    /// Whether it holds none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ListCache for Cache {
    fn enabled(&self) -> bool {
        Cache::enabled(self)
    }

    fn get(&self, subject: &str, query: &str, generation: u64) -> Option<std::sync::Arc<crate::api::Recommendations>> {
        Cache::get(self, subject, query, generation)
    }

    fn put(&self, subject: &str, query: &str, generation: u64, body: std::sync::Arc<crate::api::Recommendations>) {
        Cache::put(self, subject, query, generation, body);
    }

    fn invalidate(&self, subject: &str) {
        Cache::invalidate(self, subject);
    }

    fn len(&self) -> usize {
        Cache::len(self)
    }
}

/// The in-process [`ListCache`]: sharded maps with a TTL and a bound on entries.
pub struct Cache {
    shards: Vec<Mutex<CacheShard>>,
    ttl: Duration,
    per_shard: usize,
}

#[derive(Default)]
struct CacheShard {
    subjects: HashMap<String, HashMap<String, Entry>>,
    entries: usize,
}

/// Most lists cached for one subject (different queries); more clear its lists.
const PER_SUBJECT: usize = 32;

impl Cache {
    /// A cache whose entries live `ttl` (zero: disabled), holding at most about
    /// `max_entries` lists.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(CacheShard::default())).collect(),
            ttl,
            per_shard: max_entries.div_ceil(SHARDS).max(1),
        }
    }

    /// Lists held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entries).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let e = shard.subjects.get(subject)?.get(query)?;
        (e.generation == generation && e.at.elapsed() < self.ttl).then(|| e.body.clone())
    }

    /// Stores an entry.
    pub fn put(&self, subject: &str, query: &str, generation: u64, body: std::sync::Arc<crate::api::Recommendations>) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shards[shard_of(subject)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if shard.entries >= self.per_shard {
            let ttl = self.ttl;
            shard
                .subjects
                .values_mut()
                .for_each(|per| per.retain(|_, e| e.generation == generation && e.at.elapsed() < ttl));
            shard.subjects.retain(|_, per| !per.is_empty());
            if shard.subjects.values().map(HashMap::len).sum::<usize>() >= self.per_shard {
                let half = shard.subjects.len() / 2;
                let drop: Vec<String> = shard.subjects.keys().take(half.max(1)).cloned().collect();
                drop.iter().for_each(|k| {
                    shard.subjects.remove(k);
                });
            }
            shard.entries = shard.subjects.values().map(HashMap::len).sum();
        }
        let CacheShard { subjects, entries } = &mut *shard;
        let per = subjects.entry(subject.to_string()).or_default();
        if per.len() >= PER_SUBJECT {
            *entries -= per.len();
            per.clear();
        }
        *entries +=
            usize::from(per.insert(query.to_string(), Entry { body, at: Instant::now(), generation }).is_none());
    }

    /// Drops a subject's entries.
    pub fn invalidate(&self, subject: &str) {
        let mut shard = self.shards[shard_of(subject)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(per) = shard.subjects.remove(subject) {
            shard.entries -= per.len();
        }
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
        let online = Online::new(3, 100);
        let o: &dyn Subjects = &online;
        o.push("u:a", rec(5, EventKind::View, 20), true);
        o.push("u:a", rec(6, EventKind::Purchase, 10), false);
        o.push("u:a", rec(5, EventKind::AddToCart, 30), true);
        o.push("u:a", rec(7, EventKind::View, 40), true);
        let s = o.get("u:a").expect("known");
        assert_eq!(s.events.iter().map(|r| r.ts.0).collect::<Vec<_>>(), vec![20, 30, 40], "oldest dropped");
        assert_eq!(s.live_events, 3);
        let h = s.history(&InteractionWeights::default(), 100, None);
        let (items, weights) = (h.items, h.weights);
        assert_eq!(items, vec![5, 7]);
        assert_eq!(weights, vec![4.0, 1.0]);
        assert_eq!(
            s.history(&InteractionWeights::default(), 6, None).items,
            vec![5],
            "items unknown to the model are left out"
        );
        // Recency by order of the latest touch: 7 (ts 40) is newest, then 5 (ts 30).
        assert_eq!(s.history(&InteractionWeights::default(), 100, Some(1.0)).recency, vec![0.5, 1.0]);
        assert!(o.remove("u:a"));
        assert!(o.get("u:a").is_none());
    }

    #[test]
    fn cache_expires_by_generation_and_invalidation() {
        let c = Cache::new(Duration::from_secs(60), 1000);
        let v = std::sync::Arc::new(crate::api::Recommendations {
            user: Some("a".into()),
            session: None,
            items: Vec::new(),
            strategy: "popular".into(),
            model_version: 1,
            model: "als".into(),
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
        let off = Cache::new(Duration::ZERO, 1000);
        off.put("u:a", "k", 1, v);
        assert!(off.get("u:a", "k", 1).is_none());
    }

    #[test]
    fn sessions_are_bounded_least_recently_seen_first_and_users_are_not() {
        let online = Online::new(3, SHARDS * 4);
        let o: &dyn Subjects = &online;
        for i in 0..(SHARDS * 40) as i64 {
            o.push(&session_key(&format!("s{i}")), rec(1, EventKind::View, i), false);
            o.push(&user_key(&format!("u{i}")), rec(1, EventKind::View, i), false);
        }
        let sessions = o.len() - SHARDS * 40;
        assert!(sessions <= SHARDS * 4, "{sessions} sessions kept");
        assert!(sessions >= SHARDS * 3, "{sessions} sessions kept");
        assert!(o.get(&session_key(&format!("s{}", SHARDS * 40 - 1))).is_some(), "the latest is kept");
        assert!(o.get(&session_key("s0")).is_none(), "the oldest is forgotten");
        assert!(o.get(&user_key("u0")).is_some(), "users are never forgotten");
    }

    #[test]
    fn cache_holds_at_most_its_bound() {
        let c = Cache::new(Duration::from_secs(60), SHARDS * 2);
        let v = std::sync::Arc::new(crate::api::Recommendations {
            user: None,
            session: None,
            items: Vec::new(),
            strategy: "popular".into(),
            model_version: 1,
            model: "als".into(),
            rec_id: "r".into(),
            variant: None,
            playbooks: Vec::new(),
            context: None,
            cached: false,
        });
        for i in 0..SHARDS * 50 {
            c.put(&format!("u:{i}"), "k=10", 1, v.clone());
            c.put(&format!("u:{i}"), "k=5", 1, v.clone());
        }
        assert!(c.len() <= SHARDS * 3, "{} lists", c.len());
        let last = format!("u:{}", SHARDS * 50 - 1);
        assert!(c.get(&last, "k=5", 1).is_some(), "the newest entry is kept");
        c.invalidate(&last);
        assert!(c.get(&last, "k=5", 1).is_none());
        let before = c.len();
        c.put(&last, "k=5", 1, v.clone());
        c.put(&last, "k=5", 1, v);
        assert_eq!(c.len(), before + 1, "a replaced entry is counted once");
    }
}
