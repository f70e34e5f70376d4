//! Alerts a running server raises itself (`[[serve.alerts]]`). Judged by
//! [`tailor_experiment::monitor::RateDrop`] (a CUSUM with a stated false-alarm rate, not a
//! raw threshold): a drop of the recommendations' click-through rate (impressions and clicks
//! carrying a `rec_id`) or of their conversion (purchases per click); a rise of the share of
//! fallback lists (not personalised) or of empty lists, of 5xx answers, or of answers of the
//! read routes slower than `latency_ms` (against the objective `1 − quantile`: a p99); a
//! drop of the stored events per bucket (a Poisson rate). Judged by level with hysteresis:
//! no events for a while (freshness), feature drift (PSI), and a retrained candidate's
//! holdout NDCG@10 falling short of the live version's. Each alert fires and resolves once
//! per episode; both transitions are kept in a bounded history (`GET /v1/alerts`) and sent
//! to the alert's webhook as an Alertmanager payload (version 4) or signed JSON.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tailor_core::{Event, EventKind, Parsed, Timestamp};
use tailor_experiment::monitor::{Counts, Direction, RateDrop, RateDropParams, Transition};

use crate::config::Period;

/// Transitions kept for `GET /v1/alerts`.
pub const HISTORY: usize = 1_000;

/// What an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Click-through rate of recommendations (clicks / impressions with a rec_id) falls.
    CtrDrop,
    /// Conversion of recommendations (purchases / clicks with a rec_id) falls.
    ConversionDrop,
    /// No event stored for `window`.
    NoEvents,
    /// A segmentation's features or segment shares drifted from its latest run: the largest
    /// population stability index above `threshold` (judged at `every`; each look reads
    /// the store's events, so `every = "1h"` or so).
    FeatureDrift,
    /// The share of shown lists that are not personalised (segment-popular, popular,
    /// trending or catalog fallbacks) rises by `rise`.
    FallbackRate,
    /// The share of shown lists with no item rises by `rise`.
    ZeroResults,
    /// The share of 5xx answers (all routes) rises by `rise`.
    ErrorRate,
    /// More answers of the read routes (recommendations, items, popular lists) than
    /// `1 − quantile` are slower than `latency_ms`: the quantile is above the limit.
    Latency,
    /// Events stored per bucket fall by `drop` (default 0.5) against the seasonal baseline.
    IngestDrop,
    /// A retrained candidate's holdout NDCG@10 is below the live version's by more than
    /// `drop` (relative, default 0.2); resolves when a candidate is within 0.8 × that.
    /// Judged at each retraining.
    ModelRegression,
}

impl AlertKind {
    /// Kinds judged by the CUSUM over buckets.
    fn detected(self) -> bool {
        !matches!(self, Self::NoEvents | Self::FeatureDrift | Self::ModelRegression)
    }

    /// Kinds whose rate should stay low.
    fn rises(self) -> bool {
        matches!(self, Self::FallbackRate | Self::ZeroResults | Self::ErrorRate | Self::Latency)
    }
}

/// One `[[serve.alerts]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Name (the Alertmanager `alertname`).
    pub name: String,
    /// What it watches.
    pub kind: AlertKind,
    /// Relative drop to detect, in (0, 1): `ctr_drop`, `conversion_drop` (default 0.2),
    /// `ingest_drop` (default 0.5), `model_regression` (default 0.2).
    #[serde(default)]
    pub drop: Option<f64>,
    /// Relative rise to detect, in (0, 100]: `fallback_rate`, `zero_results`, `error_rate`,
    /// `latency` (default 1: the share doubles).
    #[serde(default)]
    pub rise: Option<f64>,
    /// A fixed expected share (an objective, in (0, 1)) instead of the learnt baseline, for
    /// the rate kinds; `latency` sets it to `1 − quantile`. No warm-up then.
    #[serde(default)]
    pub expected: Option<f64>,
    /// `latency`: the limit, milliseconds (default 100; 1 to 60,000).
    #[serde(default = "default_latency_ms")]
    pub latency_ms: u64,
    /// `latency`: the quantile that should stay below the limit (default 0.99; 0.5 to
    /// 0.9999).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// The CUSUM kinds: false alarms allowed per 30 days of stable traffic (default 1).
    #[serde(default = "default_false_alarms")]
    pub false_alarms_per_30_days: f64,
    /// How often it is judged: the bucket of the CUSUM kinds (default 5 minutes).
    #[serde(default = "default_bucket")]
    #[schemars(with = "String")]
    pub every: Parsed<Period>,
    /// The CUSUM kinds with a learnt baseline: data before they may fire (default 7 days).
    #[serde(default = "default_warm_up")]
    #[schemars(with = "String")]
    pub warm_up: Parsed<Period>,
    /// `no_events`: how long without events fires (default 30 minutes).
    #[serde(default = "default_window")]
    #[schemars(with = "String")]
    pub window: Parsed<Period>,
    /// Where transitions are POSTed (`http://` only).
    #[serde(default)]
    pub webhook: Option<String>,
    /// The payload: `alertmanager` (version 4, the default) or `signed` (tailor's own JSON,
    /// `{alert, kind, status, at, starts_at, detail}`, with `X-Tailor-Signature: sha256=HEX`,
    /// the HMAC-SHA256 of the body under `secret`).
    #[serde(default)]
    pub format: WebhookFormat,
    /// The key of `signed` webhooks (at least 16 characters).
    #[serde(default)]
    pub secret: Option<String>,
    /// `feature_drift`: the segmentation (default: the first by name).
    #[serde(default)]
    pub segmentation: Option<String>,
    /// `feature_drift`: the PSI that fires (default 0.25, a major shift); it resolves
    /// below 0.8 × this.
    #[serde(default = "default_psi")]
    pub threshold: f64,
}

fn default_psi() -> f64 {
    0.25
}

/// How a webhook's payload is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Alertmanager's webhook payload, version 4.
    #[default]
    Alertmanager,
    /// tailor's JSON, signed with HMAC-SHA256.
    Signed,
}

/// What goes to a webhook: where, the body, and the signature header (signed format).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The URL.
    pub url: String,
    /// The JSON body, as sent.
    pub body: String,
    /// `sha256=HEX` of the body (signed format).
    pub signature: Option<String>,
}

/// `sha256=HEX` of HMAC-SHA256(key, body).
pub fn signature(key: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn default_latency_ms() -> u64 {
    100
}
fn default_quantile() -> f64 {
    0.99
}
fn default_false_alarms() -> f64 {
    1.0
}
fn default_bucket() -> Parsed<Period> {
    crate::config::parsed("5m")
}
fn default_warm_up() -> Parsed<Period> {
    crate::config::parsed("7d")
}
fn default_window() -> Parsed<Period> {
    crate::config::parsed("30m")
}

impl AlertConfig {
    fn every_ms(&self) -> i64 {
        self.every.0.map_or(300_000, |d| d.as_millis() as i64)
    }

    /// The relative change this alert looks for (its kind's default when not given).
    pub fn change(&self) -> f64 {
        match self.kind {
            k if k.rises() => self.rise.unwrap_or(1.0),
            AlertKind::IngestDrop => self.drop.unwrap_or(0.5),
            _ => self.drop.unwrap_or(0.2),
        }
    }

    fn expected_rate(&self) -> Option<f64> {
        if self.kind == AlertKind::Latency { Some(1.0 - self.quantile) } else { self.expected }
    }

    fn params(&self) -> RateDropParams {
        RateDropParams {
            drop: self.change(),
            direction: if self.kind.rises() { Direction::Rise } else { Direction::Drop },
            counts: if self.kind == AlertKind::IngestDrop { Counts::Poisson } else { Counts::Binomial },
            expected: self.expected_rate(),
            false_alarms_per_30_days: self.false_alarms_per_30_days,
            bucket_ms: self.every_ms(),
            warm_up_days: self.warm_up.0.map_or(7.0, |d| d.as_secs_f64() / 86_400.0),
            ..RateDropParams::default()
        }
    }

    /// Checks the entry (`serve.alerts[i]` prefixes the message).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err("name: 1 to 100 characters".into());
        }
        if self.every.0.is_none_or(|d| d.as_secs() < 1 || d.as_secs() > 86_400) {
            return Err("every: between 1s and 1d".into());
        }
        if let Some(url) = &self.webhook
            && !(url.starts_with("http://") && url.len() <= 2_000)
        {
            return Err(format!("webhook {url:?}: an http:// URL (at most 2,000 characters)"));
        }
        if self.format == WebhookFormat::Signed && self.secret.as_ref().is_none_or(|s| s.len() < 16) {
            return Err("format = \"signed\" needs a secret of at least 16 characters".into());
        }
        if self.drop.is_some()
            && (self.kind.rises() || matches!(self.kind, AlertKind::NoEvents | AlertKind::FeatureDrift))
        {
            return Err(format!("drop: not a setting of {:?} alerts", self.kind).to_lowercase());
        }
        if self.rise.is_some() && !self.kind.rises() {
            return Err(format!("rise: not a setting of {:?} alerts", self.kind).to_lowercase());
        }
        if self.expected.is_some()
            && (!self.kind.detected() || matches!(self.kind, AlertKind::IngestDrop | AlertKind::Latency))
        {
            return Err("expected: only for ctr_drop, conversion_drop, fallback_rate, zero_results, error_rate".into());
        }
        match self.kind {
            AlertKind::Latency if !(1..=60_000).contains(&self.latency_ms) => {
                Err(format!("latency_ms = {}: between 1 and 60000", self.latency_ms))
            }
            AlertKind::Latency if !(self.quantile >= 0.5 && self.quantile <= 0.9999) => {
                Err(format!("quantile = {}: between 0.5 and 0.9999", self.quantile))
            }
            k if k.detected() => {
                let mut p = self.params();
                // The warm-up may be short for tests; the detector's own rule is a day.
                p.warm_up_days = p.warm_up_days.max(1.0);
                p.validate()
            }
            AlertKind::FeatureDrift => {
                if self.threshold > 0.0 && self.threshold <= 10.0 {
                    Ok(())
                } else {
                    Err(format!("threshold = {}: a PSI in (0, 10]", self.threshold))
                }
            }
            AlertKind::ModelRegression => {
                let d = self.change();
                if d > 0.0 && d < 1.0 { Ok(()) } else { Err(format!("drop = {d}: a share in (0, 1)")) }
            }
            _ => {
                if self.window.0.is_none_or(|d| d.as_secs() < 1) {
                    Err("window: at least 1s".into())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A transition, as `GET /v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AlertEvent {
    /// The alert.
    pub name: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// When (RFC 3339).
    pub at: String,
    /// What was seen (the rate and its baseline, or the quiet time).
    pub detail: String,
    /// Whether the webhook took it (None without a webhook).
    pub delivered: Option<bool>,
}

/// One alert's current state.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AlertState {
    /// Its configuration.
    pub config: AlertConfig,
    /// `firing`, `ok` or `warming_up`.
    pub state: String,
    /// Since when it fires (RFC 3339).
    pub since: Option<String>,
    /// The CUSUM kinds: the statistic.
    pub statistic: Option<f64>,
    /// The CUSUM kinds: the threshold it fires above.
    pub threshold: Option<f64>,
    /// The CUSUM kinds: the expected rate of the latest bucket (events per bucket for
    /// `ingest_drop`).
    pub baseline: Option<f64>,
}

/// What arrived since an alert's last look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    impressions: u64,
    clicks: u64,
    purchases: u64,
    lists: u64,
    fallback: u64,
    empty: u64,
    answers: u64,
    errors: u64,
    timed: u64,
    /// Per `latency` alert, in the order of [`Alerts::slow`].
    slow: [u64; MAX_LATENCY_ALERTS],
    events: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.impressions += o.impressions;
        self.clicks += o.clicks;
        self.purchases += o.purchases;
        self.lists += o.lists;
        self.fallback += o.fallback;
        self.empty += o.empty;
        self.answers += o.answers;
        self.errors += o.errors;
        self.timed += o.timed;
        for (a, b) in self.slow.iter_mut().zip(o.slow) {
            *a += b;
        }
        self.events += o.events;
    }
}

/// `latency` alerts a server may have (each counts its own slow answers).
pub const MAX_LATENCY_ALERTS: usize = 8;

struct Watched {
    config: AlertConfig,
    detector: Option<RateDrop>,
    firing_since: Option<Timestamp>,
    next_at: i64,
    started: i64,
    /// Counts since the last look.
    tally: Tally,
    /// Index into [`Alerts::slow`] (`latency` alerts).
    slow: usize,
}

/// Every configured alert, the counters the request and event paths feed, the history.
pub struct Alerts {
    watched: Mutex<Vec<Watched>>,
    history: Mutex<VecDeque<AlertEvent>>,
    /// Transitions judged outside [`Alerts::tick`] (retrainings), sent by its caller.
    pending: Mutex<Vec<(AlertEvent, Option<Delivery>)>>,
    impressions: AtomicU64,
    clicks: AtomicU64,
    purchases: AtomicU64,
    lists: AtomicU64,
    fallback: AtomicU64,
    empty: AtomicU64,
    answers: AtomicU64,
    errors: AtomicU64,
    timed: AtomicU64,
    /// Per `latency` alert: its limit (µs) and the answers slower than it.
    slow: Vec<(u64, AtomicU64)>,
    events: AtomicU64,
    last_event_ms: AtomicI64,
}

impl Alerts {
    /// The configured alerts, starting now.
    /// The configured alerts, starting now (the config's check allows at most
    /// [`MAX_LATENCY_ALERTS`] `latency` alerts; later ones would share the last counter).
    pub fn new(configs: &[AlertConfig], now: Timestamp) -> Self {
        let mut slow = Vec::new();
        let watched = configs
            .iter()
            .map(|c| {
                let k = slow.len().min(MAX_LATENCY_ALERTS - 1);
                if c.kind == AlertKind::Latency && slow.len() < MAX_LATENCY_ALERTS {
                    slow.push((c.latency_ms * 1_000, AtomicU64::new(0)));
                }
                Watched {
                    detector: c.kind.detected().then(|| RateDrop::new(c.params())),
                    config: c.clone(),
                    firing_since: None,
                    next_at: now.0 + c.every_ms(),
                    started: now.0,
                    tally: Tally::default(),
                    slow: k,
                }
            })
            .collect();
        Self {
            watched: Mutex::new(watched),
            history: Mutex::new(VecDeque::new()),
            pending: Mutex::new(Vec::new()),
            impressions: AtomicU64::new(0),
            clicks: AtomicU64::new(0),
            purchases: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            fallback: AtomicU64::new(0),
            empty: AtomicU64::new(0),
            answers: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timed: AtomicU64::new(0),
            slow,
            events: AtomicU64::new(0),
            last_event_ms: AtomicI64::new(now.0),
        }
    }

    /// Counts an answer of any route: whether it was a 5xx, and on a read route (the ones
    /// `latency` alerts watch) how long it took.
    pub fn answered(&self, server_error: bool, read_route: bool, elapsed: std::time::Duration) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        if server_error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if read_route {
            self.timed.fetch_add(1, Ordering::Relaxed);
            let us = elapsed.as_micros() as u64;
            for (limit, n) in &self.slow {
                if us > *limit {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts a shown list: whether it came from a fallback and whether it was empty.
    pub fn list_served(&self, fallback: bool, empty: bool) {
        self.lists.fetch_add(1, Ordering::Relaxed);
        if fallback {
            self.fallback.fetch_add(1, Ordering::Relaxed);
        }
        if empty {
            self.empty.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Everything counted since the last call (the counters restart at zero).
    fn take(&self) -> Tally {
        let t = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        let mut slow = [0u64; MAX_LATENCY_ALERTS];
        for (i, (_, n)) in self.slow.iter().enumerate() {
            slow[i] = t(n);
        }
        Tally {
            impressions: t(&self.impressions),
            clicks: t(&self.clicks),
            purchases: t(&self.purchases),
            lists: t(&self.lists),
            fallback: t(&self.fallback),
            empty: t(&self.empty),
            answers: t(&self.answers),
            errors: t(&self.errors),
            timed: t(&self.timed),
            slow,
            events: t(&self.events),
        }
    }

    /// Whether any alert is configured.
    pub fn is_empty(&self) -> bool {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Counts a stored event (stored now).
    pub fn event(&self, e: &Event) {
        self.event_at(e, Timestamp::now());
    }

    /// Counts an event stored at `now`.
    pub fn event_at(&self, e: &Event, now: Timestamp) {
        self.last_event_ms.fetch_max(now.0, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
        if e.rec_id.is_some() {
            match e.kind {
                EventKind::Impression => {
                    self.impressions.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tailor_rec_impressions_total").increment(1);
                }
                EventKind::Click => {
                    self.clicks.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tailor_rec_clicks_total").increment(1);
                }
                EventKind::Purchase => {
                    self.purchases.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tailor_rec_purchases_total").increment(1);
                }
                _ => {}
            }
        }
    }

    /// Judges every alert due at `now`; returns the transitions (with the webhook to send
    /// each to), also those judged since the last call outside it (retrainings). Each alert
    /// keeps what arrived since its own last look, so alerts of different `every` see all
    /// of their buckets' traffic.
    pub fn tick(&self, now: Timestamp) -> Vec<(AlertEvent, Option<Delivery>)> {
        let mut out = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let arrived = self.take();
        for w in watched.iter_mut() {
            w.tally += arrived;
        }
        let quiet_ms = now.0 - self.last_event_ms.load(Ordering::Relaxed);
        let due = |w: &Watched| {
            now.0 >= w.next_at && !matches!(w.config.kind, AlertKind::FeatureDrift | AlertKind::ModelRegression)
        };
        for w in watched.iter_mut().filter(|w| due(w)) {
            let every = w.config.every_ms();
            let bucket_start = w.next_at - every;
            w.next_at += every * (1 + (now.0 - w.next_at) / every);
            let t = std::mem::take(&mut w.tally);
            let (transition, detail) = match &mut w.detector {
                Some(d) => {
                    let latency = format!("slower than {} ms", w.config.latency_ms);
                    let (n, x, what, over) = match w.config.kind {
                        AlertKind::ConversionDrop => (t.clicks, t.purchases, "conversion", "clicks"),
                        AlertKind::FallbackRate => (t.lists, t.fallback, "fallback share", "lists"),
                        AlertKind::ZeroResults => (t.lists, t.empty, "empty-list share", "lists"),
                        AlertKind::ErrorRate => (t.answers, t.errors, "5xx share", "answers"),
                        AlertKind::Latency => (t.timed, t.slow[w.slow], latency.as_str(), "read answers"),
                        AlertKind::IngestDrop => (1, t.events, "events", "bucket"),
                        _ => (t.impressions, t.clicks, "CTR", "impressions"),
                    };
                    // The detector learns from every bucket and fires only after its warm-up.
                    let transition = d.push(bucket_start, n, x);
                    let expected = d.baseline.unwrap_or(0.0);
                    let detail = if w.config.kind == AlertKind::IngestDrop {
                        format!("{x} events in {} s; expected {expected:.1}", every / 1000)
                    } else {
                        let rate = if n > 0 { x as f64 / n as f64 } else { 0.0 };
                        format!("{what} {rate:.4} over {n} {over}; expected {expected:.4}")
                    };
                    (transition, detail)
                }
                None => {
                    let window = w.config.window.0.map_or(1_800_000, |d| d.as_millis() as i64);
                    let t = match (quiet_ms >= window, w.firing_since.is_some()) {
                        (true, false) => Transition::Fired,
                        (false, true) => Transition::Resolved,
                        _ => Transition::None,
                    };
                    (t, format!("no event for {} s", quiet_ms / 1000))
                }
            };
            if let Some(e) = emit(w, transition, detail, now) {
                out.push(e);
            }
        }
        out
    }

    /// The `feature_drift` alerts due at `now` (name, segmentation); their next look is
    /// scheduled.
    pub fn due_drift(&self, now: Timestamp) -> Vec<(String, Option<String>)> {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for w in watched.iter_mut().filter(|w| w.config.kind == AlertKind::FeatureDrift && now.0 >= w.next_at) {
            let every = w.config.every_ms();
            w.next_at += every * (1 + (now.0 - w.next_at) / every);
            out.push((w.config.name.clone(), w.config.segmentation.clone()));
        }
        out
    }

    /// Judges every `model_regression` alert on a retraining: the candidate's and the live
    /// version's holdout NDCG@10 (nothing when either is unknown). Transitions go out with
    /// the next [`Alerts::tick`].
    pub fn model_judged(&self, candidate: Option<f64>, live: Option<f64>, now: Timestamp) {
        let (Some(c), Some(l)) = (candidate, live) else { return };
        if l <= 0.0 {
            return;
        }
        let shortfall = 1.0 - c / l;
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for w in watched.iter_mut().filter(|w| w.config.kind == AlertKind::ModelRegression) {
            let limit = w.config.change();
            let t = match (w.firing_since.is_some(), shortfall) {
                (false, s) if s > limit => Transition::Fired,
                (true, s) if s < 0.8 * limit => Transition::Resolved,
                _ => Transition::None,
            };
            let detail = format!("candidate holdout NDCG@10 {c:.4} vs live {l:.4} ({:+.1}%)", -shortfall * 100.0);
            pending.extend(emit(w, t, detail, now));
        }
    }

    /// Judges a `feature_drift` alert on the largest PSI just measured.
    pub fn judge_drift(
        &self,
        name: &str,
        max_psi: f64,
        detail: String,
        now: Timestamp,
    ) -> Option<(AlertEvent, Option<Delivery>)> {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let w = watched.iter_mut().find(|w| w.config.name == name)?;
        let t = match (w.firing_since.is_some(), max_psi) {
            (false, p) if p > w.config.threshold => Transition::Fired,
            (true, p) if p < 0.8 * w.config.threshold => Transition::Resolved,
            _ => Transition::None,
        };
        emit(w, t, detail, now)
    }

    /// Notes a transition in the history.
    pub fn record(&self, event: AlertEvent) {
        let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(event);
    }

    /// Every alert's state and the history, newest last.
    pub fn snapshot(&self) -> (Vec<AlertState>, Vec<AlertEvent>) {
        let watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Timestamp::now().0;
        let states = watched
            .iter()
            .map(|w| {
                let warming = w.detector.as_ref().is_some_and(|d| {
                    d.params.expected.is_none() && (now - w.started) < (d.params.warm_up_days * 86_400_000.0) as i64
                });
                AlertState {
                    config: w.config.clone(),
                    state: if w.firing_since.is_some() {
                        "firing"
                    } else if warming {
                        "warming_up"
                    } else {
                        "ok"
                    }
                    .into(),
                    since: w.firing_since.map(Timestamp::to_rfc3339),
                    statistic: w.detector.as_ref().map(|d| d.s),
                    threshold: w.detector.as_ref().map(|d| d.params.threshold()),
                    baseline: w.detector.as_ref().and_then(|d| d.baseline),
                }
            })
            .collect();
        (states, self.history.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect())
    }
}

/// The event and webhook delivery of a transition (None for no change).
fn emit(
    w: &mut Watched,
    transition: Transition,
    detail: String,
    now: Timestamp,
) -> Option<(AlertEvent, Option<Delivery>)> {
    let status = match transition {
        Transition::None => return None,
        Transition::Fired => {
            w.firing_since = Some(now);
            "firing"
        }
        Transition::Resolved => "resolved",
    };
    metrics::gauge!("tailor_alert_firing", "alertname" => w.config.name.clone())
        .set(if transition == Transition::Fired { 1.0 } else { 0.0 });
    let starts = w.firing_since.unwrap_or(now);
    if transition == Transition::Resolved {
        w.firing_since = None;
    }
    let event = AlertEvent {
        name: w.config.name.clone(),
        status: status.into(),
        at: now.to_rfc3339(),
        detail: detail.clone(),
        delivered: None,
    };
    let payload = w.config.webhook.clone().map(|url| {
        let c = &w.config;
        match c.format {
            WebhookFormat::Alertmanager => {
                Delivery { url, body: alertmanager(c, status, starts, now, &detail).to_string(), signature: None }
            }
            WebhookFormat::Signed => {
                let body = json!({
                    "alert": c.name, "kind": c.kind, "status": status, "at": now.to_rfc3339(),
                    "starts_at": starts.to_rfc3339(), "detail": detail,
                })
                .to_string();
                let key = c.secret.as_deref().unwrap_or_default().as_bytes();
                Delivery { signature: Some(signature(key, body.as_bytes())), url, body }
            }
        }
    });
    Some((event, payload))
}

/// An Alertmanager webhook payload (version 4) for one alert's transition.
pub fn alertmanager(c: &AlertConfig, status: &str, starts: Timestamp, now: Timestamp, detail: &str) -> Value {
    let labels = json!({"alertname": c.name, "kind": c.kind, "severity": "warning", "service": "tailor"});
    let pct = c.change() * 100.0;
    let summary = match c.kind {
        AlertKind::CtrDrop => format!("Recommendation CTR fell by {pct:.0}% or more"),
        AlertKind::ConversionDrop => format!("Conversion of recommendations fell by {pct:.0}% or more"),
        AlertKind::NoEvents => "No events are arriving".to_owned(),
        AlertKind::FeatureDrift => {
            format!("Users drifted from the segmentation's snapshot (PSI above {})", c.threshold)
        }
        AlertKind::FallbackRate => format!("The share of fallback (not personalised) lists rose by {pct:.0}% or more"),
        AlertKind::ZeroResults => format!("The share of empty recommendation lists rose by {pct:.0}% or more"),
        AlertKind::ErrorRate => format!("The share of 5xx answers rose by {pct:.0}% or more"),
        AlertKind::Latency => format!("p{} latency of the read routes above {} ms", c.quantile * 100.0, c.latency_ms),
        AlertKind::IngestDrop => format!("Events arriving fell by {pct:.0}% or more"),
        AlertKind::ModelRegression => {
            format!("A retrained model's holdout NDCG@10 is {pct:.0}% or more below the live version's")
        }
    };
    let annotations = json!({"summary": summary, "description": detail});
    let ends = if status == "resolved" { now.to_rfc3339() } else { "0001-01-01T00:00:00Z".to_owned() };
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\"}}", c.name),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tailor",
        "groupLabels": {"alertname": c.name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "",
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts.to_rfc3339(),
            "endsAt": ends,
            "generatorURL": "",
            "fingerprint": format!("{:016x}", xxhash_rust::xxh3::xxh3_64(c.name.as_bytes())),
        }],
    })
}

/// POSTs the delivery (http:// only); whether a 2xx came back within 5 s.
pub async fn deliver(d: &Delivery) -> bool {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut req = axum::http::Request::post(d.url.as_str()).header("content-type", "application/json");
    if let Some(sig) = &d.signature {
        req = req.header("x-tailor-signature", sig.as_str());
    }
    let Ok(req) = req.body(Full::new(bytes::Bytes::from(d.body.clone()))) else {
        return false;
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), client.request(req)).await {
        Ok(Ok(resp)) => resp.status().is_success(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_fires_above_the_threshold_and_resolves_below_four_fifths() {
        let c: AlertConfig =
            toml::from_str("name = \"drift\"\nkind = \"feature_drift\"\nevery = \"1h\"\nthreshold = 0.2")
                .expect("config");
        assert!(c.validate().is_ok());
        let t0 = Timestamp::now();
        let a = Alerts::new(std::slice::from_ref(&c), t0);
        assert!(a.due_drift(Timestamp(t0.0 + 1_000)).is_empty());
        assert_eq!(a.due_drift(Timestamp(t0.0 + 3_600_000)), vec![("drift".to_string(), None)]);
        assert!(a.due_drift(Timestamp(t0.0 + 3_601_000)).is_empty(), "scheduled an hour on");
        let judge = |psi: f64| a.judge_drift("drift", psi, format!("psi {psi}"), t0).map(|e| e.0.status);
        assert_eq!(judge(0.15), None);
        assert_eq!(judge(0.21).as_deref(), Some("firing"));
        assert_eq!(judge(0.3), None, "fires once");
        assert_eq!(judge(0.17), None, "hysteresis: above 0.8 × 0.2");
        assert_eq!(judge(0.15).as_deref(), Some("resolved"));
        assert!(a.tick(Timestamp(t0.0 + 7_200_000)).is_empty(), "drift alerts are not judged by tick");
    }

    fn alerts_of(toml: &str) -> (Alerts, Timestamp) {
        #[derive(Deserialize)]
        struct Doc {
            alerts: Vec<AlertConfig>,
        }
        let d: Doc = toml::from_str(toml).expect("config");
        for a in &d.alerts {
            assert_eq!(a.validate(), Ok(()), "{}", a.name);
        }
        let t0 = Timestamp::now();
        (Alerts::new(&d.alerts, t0), t0)
    }

    fn statuses(t: &[(AlertEvent, Option<Delivery>)]) -> Vec<(String, String)> {
        t.iter().map(|(e, _)| (e.name.clone(), e.status.clone())).collect()
    }

    /// A p99 objective: 1% of the read answers may be slower than 50 ms. Quiet at 1%, from
    /// the first second (no warm-up); fires when 10% are slow; resolves when they are fast
    /// again. Slow answers of admin routes and fast 5xx answers do not count as slow reads.
    #[test]
    fn latency_fires_on_slow_read_answers_and_resolves() {
        let (a, t0) = alerts_of("[[alerts]]\nname = \"p99\"\nkind = \"latency\"\nlatency_ms = 50\nevery = \"1s\"");
        let fast = std::time::Duration::from_millis(2);
        let slow = std::time::Duration::from_millis(80);
        let second = |k: i64, slow_share: usize| {
            for i in 0..1_000 {
                a.answered(false, true, if i < slow_share { slow } else { fast });
            }
            a.answered(false, false, slow * 10);
            statuses(&a.tick(Timestamp(t0.0 + k * 1_000)))
        };
        for k in 1..=120 {
            assert!(second(k, 10).is_empty(), "second {k} at 1% slow");
        }
        let fired: Vec<i64> = (121..130).filter(|&k| !second(k, 100).is_empty()).collect();
        assert_eq!(fired, [121], "fires in the first slow second, once");
        let (states, _) = a.snapshot();
        assert_eq!(states[0].state, "firing");
        assert!(states[0].baseline.is_some_and(|b| (b - 0.01).abs() < 1e-12), "{:?}", states[0].baseline);
        let resolved: Vec<(i64, Vec<(String, String)>)> =
            (130..200).map(|k| (k, second(k, 0))).filter(|(_, t)| !t.is_empty()).collect();
        assert_eq!(resolved.len(), 1, "{resolved:?}");
        assert_eq!(resolved[0].1, [("p99".to_string(), "resolved".to_string())]);
    }

    /// Alerts of different `every` each see all the traffic of their own buckets (a
    /// 1-second alert taking the counters must not starve a 10-second one).
    #[test]
    fn each_alert_sees_all_of_its_buckets() {
        let (a, t0) = alerts_of(
            "[[alerts]]\nname = \"fast\"\nkind = \"fallback_rate\"\nevery = \"1s\"\nexpected = 0.1\n\
             [[alerts]]\nname = \"slow\"\nkind = \"fallback_rate\"\nevery = \"10s\"\nexpected = 0.1",
        );
        let mut fired = Vec::new();
        for k in 1..=10 {
            for i in 0..100 {
                // 1 in 4 lists from a fallback, 1 in 50 empty.
                a.list_served(i % 4 == 0, i % 50 == 0);
            }
            fired.extend(a.tick(Timestamp(t0.0 + k * 1_000)));
        }
        assert_eq!(
            statuses(&fired),
            [("fast".to_string(), "firing".to_string()), ("slow".to_string(), "firing".to_string())],
            "the 1-second alert fires at once, the 10-second one at its first look"
        );
        let detail = &fired[1].0.detail;
        assert!(detail.starts_with("fallback share 0.2500 over 1000 lists"), "{detail}");
    }

    /// A retrained candidate 30% below the live version fires (sent with the next tick);
    /// 15% below is within the hysteresis; 5% below resolves. Unknown NDCGs judge nothing.
    #[test]
    fn a_regressing_candidate_fires_and_a_good_one_resolves() {
        let (a, t0) = alerts_of("[[alerts]]\nname = \"model\"\nkind = \"model_regression\"");
        let judge = |c: f64| {
            a.model_judged(Some(c), Some(0.2), t0);
            statuses(&a.tick(t0))
        };
        assert!(judge(0.19).is_empty());
        assert_eq!(judge(0.14), [("model".to_string(), "firing".to_string())]);
        assert!(judge(0.13).is_empty(), "fires once");
        assert!(judge(0.166).is_empty(), "17% short is above 0.8 × 20%");
        a.model_judged(None, Some(0.2), t0);
        assert!(a.tick(t0).is_empty());
        assert_eq!(judge(0.19), [("model".to_string(), "resolved".to_string())]);
    }

    /// 5xx answers against an objective of 0.1%: a burst fires, and the ingest rate halving
    /// fires an `ingest_drop` after its (short) warm-up.
    #[test]
    fn errors_and_a_missing_event_stream_fire() {
        let (a, t0) = alerts_of(
            "[[alerts]]\nname = \"5xx\"\nkind = \"error_rate\"\nevery = \"1s\"\nexpected = 0.001\n\
             [[alerts]]\nname = \"ingest\"\nkind = \"ingest_drop\"\nevery = \"1s\"\nwarm_up = \"1s\"",
        );
        let ev = Event::new(Some("u"), Some("i"), EventKind::View, t0);
        let mut fired = Vec::new();
        for k in 1..=400i64 {
            let errors = if k > 300 { 20 } else { 0 };
            for i in 0..1_000 {
                a.answered(i < errors, true, std::time::Duration::from_millis(1));
            }
            // 200 events a second, then 40 from second 350.
            for _ in 0..(if k > 350 { 40 } else { 200 }) {
                a.event_at(&ev, Timestamp(t0.0 + k * 1_000));
            }
            fired.extend(statuses(&a.tick(Timestamp(t0.0 + k * 1_000))).into_iter().map(|s| (k, s)));
        }
        let names: Vec<(i64, &str, &str)> = fired.iter().map(|(k, (n, s))| (*k, n.as_str(), s.as_str())).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!((names[0].1, names[0].2), ("5xx", "firing"));
        assert!(names[0].0 > 300 && names[0].0 <= 303, "{names:?}");
        assert_eq!((names[1].1, names[1].2), ("ingest", "firing"));
        assert!(names[1].0 > 350 && names[1].0 <= 353, "{names:?}");
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_quiet_shop_fires_no_events_then_resolves() {
        let c: AlertConfig = toml::from_str(
            "name = \"quiet\"\nkind = \"no_events\"\nevery = \"1s\"\nwindow = \"10s\"\nwebhook = \"http://127.0.0.1:9/x\"\n\
             format = \"signed\"\nsecret = \"0123456789abcdef\"",
        )
        .expect("config");
        assert!(c.validate().is_ok());
        let t0 = Timestamp::now();
        let a = Alerts::new(std::slice::from_ref(&c), t0);
        assert!(a.tick(Timestamp(t0.0 + 5_000)).is_empty(), "5 s of quiet is within the window");
        let fired = a.tick(Timestamp(t0.0 + 11_000));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].0.status, "firing");
        let d = fired[0].1.as_ref().expect("a webhook");
        assert_eq!(d.signature.as_deref(), Some(signature(b"0123456789abcdef", d.body.as_bytes()).as_str()));
        let body: Value = serde_json::from_str(&d.body).expect("json");
        assert_eq!((body["alert"].as_str(), body["status"].as_str()), (Some("quiet"), Some("firing")));
        assert!(a.tick(Timestamp(t0.0 + 12_000)).is_empty(), "fires once");
        a.event_at(&Event::new(Some("u"), Some("i"), EventKind::View, t0), Timestamp(t0.0 + 12_500));
        let resolved = a.tick(Timestamp(t0.0 + 13_000));
        assert_eq!(resolved.iter().map(|r| r.0.status.as_str()).collect::<Vec<_>>(), ["resolved"]);
        // A signed webhook needs a secret.
        let bad: AlertConfig =
            toml::from_str("name = \"q\"\nkind = \"no_events\"\nformat = \"signed\"").expect("config");
        assert!(bad.validate().is_err());
    }
}
