//! Alerts a running server raises itself (`[[serve.alerts]]`): a drop of the
//! recommendations' click-through rate (impressions and clicks carrying a `rec_id`) or of
//! their conversion (purchases per click), judged by
//! [`tailor_experiment::monitor::RateDrop`] (a CUSUM with a stated false-alarm rate, not a
//! raw threshold), and no events for a while (freshness). Each alert fires and resolves with
//! hysteresis; both transitions are kept in a bounded history (`GET /v1/alerts`) and sent
//! to the alert's webhook as an Alertmanager payload (version 4).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tailor_core::{Event, EventKind, Parsed, Timestamp};
use tailor_experiment::monitor::{RateDrop, RateDropParams, Transition};

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
}

/// One `[[serve.alerts]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// Name (the Alertmanager `alertname`).
    pub name: String,
    /// What it watches.
    pub kind: AlertKind,
    /// `ctr_drop`: relative drop to detect (default 0.2).
    #[serde(default = "default_drop")]
    pub drop: f64,
    /// `ctr_drop`: false alarms allowed per 30 days of stable traffic (default 1).
    #[serde(default = "default_false_alarms")]
    pub false_alarms_per_30_days: f64,
    /// How often it is judged: the bucket of `ctr_drop` (default 5 minutes).
    #[serde(default = "default_bucket")]
    #[schemars(with = "String")]
    pub every: Parsed<Period>,
    /// `ctr_drop`: data before it may fire (default 7 days).
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

fn default_drop() -> f64 {
    0.2
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

    fn params(&self) -> RateDropParams {
        RateDropParams {
            drop: self.drop,
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
        match self.kind {
            AlertKind::CtrDrop | AlertKind::ConversionDrop => {
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
            AlertKind::NoEvents => {
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
    /// `ctr_drop`: the CUSUM statistic and the threshold it fires above.
    pub statistic: Option<f64>,
    /// `ctr_drop`: the threshold.
    pub threshold: Option<f64>,
    /// `ctr_drop`: the expected rate of the latest bucket.
    pub baseline: Option<f64>,
}

struct Watched {
    config: AlertConfig,
    detector: Option<RateDrop>,
    firing_since: Option<Timestamp>,
    next_at: i64,
    started: i64,
}

/// Every configured alert, the counters the event path feeds, the history.
pub struct Alerts {
    watched: Mutex<Vec<Watched>>,
    history: Mutex<VecDeque<AlertEvent>>,
    impressions: AtomicU64,
    clicks: AtomicU64,
    purchases: AtomicU64,
    last_event_ms: AtomicI64,
}

impl Alerts {
    /// The configured alerts, starting now.
    pub fn new(configs: &[AlertConfig], now: Timestamp) -> Self {
        let watched = configs
            .iter()
            .map(|c| Watched {
                detector: (c.kind != AlertKind::NoEvents).then(|| RateDrop::new(c.params())),
                config: c.clone(),
                firing_since: None,
                next_at: now.0 + c.every_ms(),
                started: now.0,
            })
            .collect();
        Self {
            watched: Mutex::new(watched),
            history: Mutex::new(VecDeque::new()),
            impressions: AtomicU64::new(0),
            clicks: AtomicU64::new(0),
            purchases: AtomicU64::new(0),
            last_event_ms: AtomicI64::new(now.0),
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
    /// each to). Buckets of `ctr_drop` alerts share the counters: each due alert takes what
    /// arrived since its last look.
    pub fn tick(&self, now: Timestamp) -> Vec<(AlertEvent, Option<Delivery>)> {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        let due = watched.iter().any(|w| now.0 >= w.next_at);
        if !due {
            return Vec::new();
        }
        let (impressions, clicks, purchases) = (
            self.impressions.swap(0, Ordering::Relaxed),
            self.clicks.swap(0, Ordering::Relaxed),
            self.purchases.swap(0, Ordering::Relaxed),
        );
        let quiet_ms = now.0 - self.last_event_ms.load(Ordering::Relaxed);
        let mut out = Vec::new();
        for w in watched.iter_mut().filter(|w| now.0 >= w.next_at && w.config.kind != AlertKind::FeatureDrift) {
            let every = w.config.every_ms();
            let bucket_start = w.next_at - every;
            w.next_at += every * (1 + (now.0 - w.next_at) / every);
            let (transition, detail) = match &mut w.detector {
                Some(d) => {
                    let (n, x, what, over) = match w.config.kind {
                        AlertKind::ConversionDrop => (clicks, purchases, "conversion", "clicks"),
                        _ => (impressions, clicks, "CTR", "impressions"),
                    };
                    // The detector learns from every bucket and fires only after its warm-up.
                    let t = d.push(bucket_start, n, x);
                    let rate = if n > 0 { x as f64 / n as f64 } else { 0.0 };
                    (t, format!("{what} {rate:.4} over {n} {over}; expected {:.4}", d.baseline.unwrap_or(0.0)))
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
                let warming = w
                    .detector
                    .as_ref()
                    .is_some_and(|d| (now - w.started) < (d.params.warm_up_days * 86_400_000.0) as i64);
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
    let summary = match c.kind {
        AlertKind::CtrDrop => format!("Recommendation CTR fell by {:.0}% or more", c.drop * 100.0),
        AlertKind::ConversionDrop => format!("Conversion of recommendations fell by {:.0}% or more", c.drop * 100.0),
        AlertKind::NoEvents => "No events are arriving".to_owned(),
        AlertKind::FeatureDrift => {
            format!("Users drifted from the segmentation's snapshot (PSI above {})", c.threshold)
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
