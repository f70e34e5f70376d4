//! `tailor eval-context`: does knowing the context (time of day, weekday, device, place)
//! improve recommendations? Compares, on one seeded split of (user, item, context) logs such
//! as frappe: global popularity, popularity within the context, implicit ALS without context
//! and iTALS with it (the same solver, `tailor_recommend::context`).
//!
//! Protocol: observations are aggregated to (user, item, context) with summed weights;
//! `--test-fraction` of each user's triples (users with at least five) is held out at random
//! (seeded). Every (user, context) pair with held-out items is one query: all items are
//! ranked for the user in that context, the user's training items *in that context* are
//! excluded, and the held-out items are the relevant ones (binary NDCG, recall, hit rate at K).

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use tailor_core::Interner;
use tailor_core::rng::Rng;
use tailor_recommend::als::AlsParams;
use tailor_recommend::context::{ContextModel, Triples, fit};
use tailor_recommend::top_k;

/// How the weight column becomes an interaction strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightTransform {
    /// `ln(1 + w)`: usage counts are heavy-tailed.
    Log1p,
    /// The value as is.
    Raw,
    /// 1 for every observation.
    Binary,
}

/// What to read.
pub struct Columns<'a> {
    /// User id column.
    pub user: &'a str,
    /// Item id column.
    pub item: &'a str,
    /// Weight column, if any.
    pub weight: Option<&'a str>,
    /// Context columns, or `daypart(COL)` / `weekpart(COL)` of a time column.
    pub context: &'a [String],
}

/// Aggregated observations with their ids.
pub struct Log {
    /// (user, item, context) with summed, transformed weights.
    pub triples: Triples,
    /// Context values (the chosen columns' values joined by `|`), by index.
    pub contexts: Vec<String>,
    /// Rows without a user or an item (e.g. anonymous events), left out.
    pub skipped: usize,
}

/// Reads a delimited file with a header (tab if the header has one, else comma).
pub fn read(path: &Path, cols: &Columns<'_>, transform: WeightTransform) -> Result<Log> {
    let text = fs_err::read_to_string(path)?;
    let header = text.lines().next().ok_or_else(|| anyhow!("{}: empty file", path.display()))?;
    let delimiter = if header.contains('\t') { b'\t' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(text.as_bytes());
    let names: Vec<String> = rdr.headers()?.iter().map(str::to_owned).collect();
    let find = |c: &str| {
        names
            .iter()
            .position(|n| n == c)
            .ok_or_else(|| anyhow!("{}: no column {c:?} (columns: {})", path.display(), names.join(", ")))
    };
    let (ui, ii) = (find(cols.user)?, find(cols.item)?);
    let wi = cols.weight.map(find).transpose()?;
    let ci: Vec<(Derive, usize)> = cols
        .context
        .iter()
        .map(|c| {
            let (derive, col) = Derive::parse(c);
            Ok((derive, find(col)?))
        })
        .collect::<Result<_>>()?;
    let (mut users, mut items, mut contexts) = (Interner::new(), Interner::new(), Interner::new());
    let mut cells: HashMap<(u32, u32, u32), f32> = HashMap::new();
    let mut skipped = 0usize;
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}:{line}", path.display()))?;
        let field = |i: usize| rec.get(i).unwrap_or("");
        let w = match wi {
            None => 1.0,
            Some(i) => {
                let v: f32 = field(i).trim().parse().map_err(|_| {
                    anyhow!("{}:{line}: field {:?}: {:?} is not a number", path.display(), names[i], field(i))
                })?;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(anyhow!("{}:{line}: field {:?}: {v} must be >= 0", path.display(), names[i]));
                }
                v
            }
        };
        let (user, item) = (field(ui).trim(), field(ii).trim());
        if user.is_empty() || item.is_empty() {
            skipped += 1;
            continue;
        }
        let ctx: Vec<String> = ci
            .iter()
            .map(|&(d, i)| {
                d.apply(field(i)).ok_or_else(|| {
                    anyhow!("{}:{line}: field {:?}: {:?} is not an RFC 3339 time", path.display(), names[i], field(i))
                })
            })
            .collect::<Result<_>>()?;
        let key = (users.intern(user), items.intern(item), contexts.intern(&ctx.join("|")));
        *cells.entry(key).or_insert(0.0) += w;
    }
    let mut keys: Vec<_> = cells.into_iter().collect();
    keys.sort_by_key(|(k, _)| *k);
    let mut triples =
        Triples { n_users: users.len(), n_items: items.len(), n_contexts: contexts.len(), ..Triples::default() };
    for ((u, i, c), w) in keys {
        let w = match transform {
            WeightTransform::Log1p => w.ln_1p(),
            WeightTransform::Raw => w,
            WeightTransform::Binary => 1.0,
        };
        triples.push(u, i, c, w);
    }
    Ok(Log { triples, contexts: contexts.names().to_vec(), skipped })
}

/// A context column used as is, or a part of the day or week derived from a time column:
/// `daypart(ts)` (night 0–6 h, morning 6–12 h, afternoon 12–18 h, evening 18–24 h, UTC) and
/// `weekpart(ts)` (weekday, weekend).
#[derive(Debug, Clone, Copy)]
enum Derive {
    Value,
    DayPart,
    WeekPart,
}

impl Derive {
    fn parse(spec: &str) -> (Self, &str) {
        let inner = |prefix: &str| spec.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(c) = inner("daypart(") {
            (Self::DayPart, c)
        } else if let Some(c) = inner("weekpart(") {
            (Self::WeekPart, c)
        } else {
            (Self::Value, spec)
        }
    }

    fn apply(self, v: &str) -> Option<String> {
        use chrono::{Datelike, Timelike};
        let t = || chrono::DateTime::parse_from_rfc3339(v.trim()).ok().map(|t| t.to_utc());
        Some(match self {
            Self::Value => v.to_owned(),
            Self::DayPart => ["night", "morning", "afternoon", "evening"][t()?.hour() as usize / 6].to_owned(),
            Self::WeekPart => if t()?.weekday().number_from_monday() >= 6 { "weekend" } else { "weekday" }.to_owned(),
        })
    }
}

/// Seeded per-user random hold-out of `fraction` of each user's triples (users with ≥ 5).
pub fn split(t: &Triples, fraction: f64, seed: u64) -> (Triples, Triples) {
    let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); t.n_users];
    for (p, &u) in t.users.iter().enumerate() {
        by_user[u as usize].push(p);
    }
    let mut rng = Rng::new(seed);
    let empty = || Triples { n_users: t.n_users, n_items: t.n_items, n_contexts: t.n_contexts, ..Triples::default() };
    let (mut train, mut test) = (empty(), empty());
    for ps in &mut by_user {
        let n_test = if ps.len() >= 5 { ((ps.len() as f64) * fraction).round() as usize } else { 0 };
        for j in (1..ps.len()).rev() {
            ps.swap(j, rng.below(j + 1));
        }
        for (r, &p) in ps.iter().enumerate() {
            let target = if r < n_test { &mut test } else { &mut train };
            target.push(t.users[p], t.items[p], t.contexts[p], t.weights[p]);
        }
    }
    (train, test)
}

/// One model's scores.
#[derive(Debug, Clone, Serialize)]
pub struct ContextResult {
    /// Model name.
    pub model: String,
    /// Mean NDCG@K over queries.
    pub ndcg: f64,
    /// Mean recall@K.
    pub recall: f64,
    /// Share of queries with a hit in the top K.
    pub hit_rate: f64,
    /// (user, context) queries scored.
    pub queries: usize,
    /// Wall-clock seconds of the fit.
    pub train_seconds: f64,
}

/// A scorer: (user, context, out).
type Scorer<'a> = Box<dyn Fn(u32, u32, &mut [f32]) + 'a>;

/// Trains the four models on `train` and scores them on `test` at `k`.
pub fn compare(train: &Triples, test: &Triples, params: &AlsParams, k: usize) -> Result<Vec<ContextResult>> {
    let n_items = train.n_items;
    let mut results = Vec::new();
    let t = Instant::now();
    let mut pop = vec![0f32; n_items];
    let mut pop_ctx = vec![0f32; n_items * train.n_contexts];
    for p in 0..train.len() {
        let (i, c) = (train.items[p] as usize, train.contexts[p] as usize);
        pop[i] += 1.0;
        pop_ctx[c * n_items + i] += 1.0;
    }
    let pop_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let flat = Triples {
        n_contexts: 1,
        contexts: vec![0; train.len()],
        n_users: train.n_users,
        n_items: train.n_items,
        users: train.users.clone(),
        items: train.items.clone(),
        weights: train.weights.clone(),
    };
    let plain: ContextModel = fit(params, &flat)?;
    let plain_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let ctx: ContextModel = fit(params, train)?;
    let ctx_seconds = t.elapsed().as_secs_f64();
    let models: Vec<(&str, f64, Scorer<'_>)> = vec![
        ("popular", pop_seconds, Box::new(|_, _, out: &mut [f32]| out.copy_from_slice(&pop))),
        (
            "popular-in-context",
            pop_seconds,
            Box::new(|_, c, out: &mut [f32]| {
                let c = c as usize * n_items;
                for (o, (pc, pg)) in out.iter_mut().zip(pop_ctx[c..c + n_items].iter().zip(&pop)) {
                    // Ties within the context are broken by global popularity.
                    *o = pc + pg * 1e-6;
                }
            }),
        ),
        ("als (no context)", plain_seconds, Box::new(|u, _, out: &mut [f32]| plain.score(u, Some(0), out))),
        ("itals (context)", ctx_seconds, Box::new(|u, c, out: &mut [f32]| ctx.score(u, Some(c), out))),
    ];
    let queries = queries(train, test);
    for (name, train_seconds, scorer) in &models {
        let (mut ndcg, mut recall, mut hit) = (0f64, 0f64, 0f64);
        let mut scores = vec![0f32; n_items];
        for q in &queries {
            scorer(q.user, q.context, &mut scores);
            let top = top_k(&scores, k, |i| q.seen.binary_search(&i).is_err());
            let hits: Vec<bool> = top.iter().map(|(i, _)| q.relevant.binary_search(i).is_ok()).collect();
            let dcg: f64 =
                hits.iter().enumerate().filter(|(_, h)| **h).map(|(r, _)| 1.0 / ((r + 2) as f64).log2()).sum();
            let ideal: f64 = (0..q.relevant.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
            let n_hits = hits.iter().filter(|h| **h).count();
            ndcg += dcg / ideal;
            recall += n_hits as f64 / q.relevant.len() as f64;
            hit += f64::from(u8::from(n_hits > 0));
        }
        let n = queries.len().max(1) as f64;
        results.push(ContextResult {
            model: (*name).to_owned(),
            ndcg: ndcg / n,
            recall: recall / n,
            hit_rate: hit / n,
            queries: queries.len(),
            train_seconds: *train_seconds,
        });
    }
    Ok(results)
}

struct Query {
    user: u32,
    context: u32,
    /// Training items of the user in this context (excluded), sorted.
    seen: Vec<u32>,
    /// Held-out items, sorted.
    relevant: Vec<u32>,
}

fn queries(train: &Triples, test: &Triples) -> Vec<Query> {
    let mut seen: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    for p in 0..train.len() {
        seen.entry((train.users[p], train.contexts[p])).or_default().push(train.items[p]);
    }
    let mut rel: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    for p in 0..test.len() {
        rel.entry((test.users[p], test.contexts[p])).or_default().push(test.items[p]);
    }
    let mut out: Vec<Query> = rel
        .into_iter()
        .map(|((user, context), mut relevant)| {
            relevant.sort_unstable();
            let mut s = seen.get(&(user, context)).cloned().unwrap_or_default();
            s.sort_unstable();
            Query { user, context, seen: s, relevant }
        })
        .collect();
    out.sort_by_key(|q| (q.user, q.context));
    out
}

/// Prints the table.
pub fn print_table(results: &[ContextResult], k: usize) {
    println!("{:<20} {:>9} {:>9} {:>9} {:>9}", "model", format!("NDCG@{k}"), format!("recall@{k}"), "hit", "train s");
    for r in results {
        println!("{:<20} {:>9.4} {:>9.4} {:>9.4} {:>9.3}", r.model, r.ndcg, r.recall, r.hit_rate, r.train_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_keeps_every_triple_once_and_holds_out_a_fifth() {
        let mut t = Triples::default();
        for u in 0..10u32 {
            for i in 0..(u + 1) {
                t.push(u, i, i % 3, 1.0);
            }
        }
        let (a, b) = split(&t, 0.2, 1);
        assert_eq!(a.len() + b.len(), t.len());
        let mut all: Vec<_> = (0..a.len())
            .map(|p| (a.users[p], a.items[p]))
            .chain((0..b.len()).map(|p| (b.users[p], b.items[p])))
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), t.len());
        // Users 0..4 have fewer than five triples: nothing held out.
        assert!(b.users.iter().all(|&u| u >= 4));
        assert_eq!(b.users.iter().filter(|&&u| u == 9).count(), 2);
        assert_eq!(split(&t, 0.2, 1).1.items, b.items, "seeded");
    }
}
