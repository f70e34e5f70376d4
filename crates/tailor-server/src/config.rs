//! `[serve]` settings: address, API keys with scopes, limits, cache, exclusions, playbooks.

use serde::{Deserialize, Serialize};
use tailor_core::Parsed;
use tailor_recommend::als::AlsParams;
use tailor_recommend::business::ExclusionPolicy;
use tailor_recommend::zoo::ModelKind;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Recommendations, items, popular lists, segments.
    Read,
    /// Events, catalog and user upserts.
    Write,
    /// Admin routes and erasure.
    Admin,
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// A name for logs and metrics (the key itself is never logged).
    pub name: String,
    /// The secret sent as `Authorization: Bearer KEY` or `X-Api-Key: KEY`.
    pub key: String,
    /// What it may do; `admin` implies the others.
    pub scopes: Vec<Scope>,
}

/// A lift a segment's members get after retrieval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Push items on sale (price-sensitive shoppers).
    BoostDiscounted,
    /// Push new arrivals (trend-conscious shoppers).
    BoostNewArrivals,
    /// Only items in the catalog's top price tier (luxury shoppers).
    PremiumOnly,
}

/// A segment → strategy mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Segment name (in any stored segmentation).
    pub segment: String,
    /// What to do for its members.
    pub strategy: Strategy,
    /// Boost weight (ignored by `premium_only`).
    #[serde(default = "default_weight")]
    pub weight: f32,
}

fn default_weight() -> f32 {
    0.3
}

/// `[serve]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    pub addr: String,
    /// API keys; none configured means open access (refused on non-loopback addresses).
    pub api_keys: Vec<ApiKey>,
    /// Origins allowed to call the API from browsers (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// Largest accepted request body, bytes.
    pub body_limit_bytes: usize,
    /// Most events in one `POST /v1/events`.
    pub max_batch: usize,
    /// Requests per second per key (token bucket; 0 turns the limit off).
    pub rate_limit_per_second: f64,
    /// Bucket size of the rate limit.
    pub rate_limit_burst: f64,
    /// Per-request timeout, milliseconds.
    pub timeout_ms: u64,
    /// Lifetime of a cached recommendation list, seconds (0 turns the cache off).
    pub cache_ttl_seconds: u64,
    /// Most recommendation lists cached at once.
    pub cache_entries: usize,
    /// Which of a user's own events hide items (`purchase, add_to_cart:1d`: a kind, and
    /// for how long after the event; no window is for ever).
    pub exclude: Parsed<ExclusionPolicy>,
    /// The personalised model: `auto` (the candidates fitted on a holdout of each user's
    /// latest 20%, the best by NDCG@10 served) or one of `als`, `ease`, `itemknn`, `bpr`,
    /// `warp`, `hybrid`, `content`.
    pub model: Parsed<ModelChoice>,
    /// The models `auto` compares (comma-separated; `hybrid` and `content` only when items
    /// have titles, categories, brands or attributes).
    pub candidates: Parsed<Candidates>,
    /// ALS parameters (`factors=64,iterations=15,...`; unset keys keep their defaults); the
    /// context model (iTALS) uses them too.
    pub als_params: Parsed<AlsParams>,
    /// Half-life, in interactions, of query-side recency multipliers (a user's newest item
    /// counts 1, the one before 0.5^(1/h)...): each candidate is measured with and without
    /// them and served the better way; 0 turns them off.
    pub recency_half_life: f64,
    /// Most time a random search of the candidates' parameters may take at each training
    /// (`30s`, `2m`; empty: none); it also stops once it has taken as long again as fitting
    /// the configured settings did, so a small shop's training stays short.
    pub tune_budget: Parsed<Period>,
    /// Parameters of the other models, each key prefixed by its model
    /// (`ease.lambda=300, itemknn.weighting=bm25, bpr.epochs=40`); unset keys keep their
    /// defaults.
    pub model_params: Parsed<ModelParams>,
    /// Half-life of the trending list, days.
    pub trending_half_life_days: f64,
    /// Most recent events kept in memory per user or session.
    pub history_per_user: usize,
    /// Most anonymous sessions kept in memory; the least recently seen are forgotten first
    /// (their events stay stored).
    pub max_sessions: usize,
    /// Event context fields the context-aware model (iTALS) learns from, comma-separated
    /// (`device`, `country`, `region`, `city`, `channel`, `page`, `slot`, `referrer`); a
    /// request's `context.<field>=...` then conditions its list. Empty: no context model.
    pub context_fields: Parsed<ContextFields>,
    /// Retrain in the background this often (`1h`, `30m`..., at least `1s`; empty: never).
    pub retrain_every: Parsed<Period>,
    /// A retrained model is promoted unless its holdout NDCG@10 is below the live one's by
    /// more than this (absolute).
    pub promote_tolerance: f64,
    /// Model versions kept on disk for rollback.
    pub keep_versions: usize,
    /// Segment playbooks.
    pub playbooks: Vec<Playbook>,
    /// Experiments defined in the config (`[[serve.experiments]]`): created and started at
    /// the first start if no stored experiment has the name.
    pub experiments: Vec<tailor_experiment::ExperimentSpec>,
    /// Layout bandits, one per slot (`[[serve.bandits]]`).
    pub bandits: Vec<crate::experiments::BanditConfig>,
    /// Calibration weight per slot (`[serve.calibration] home = 0.5`): that slot's lists
    /// follow the category mix of the user's history (Steck 2018) unless a request sets
    /// `calibration` itself; 0 to below 1.
    pub calibration: std::collections::BTreeMap<String, f32>,
    /// Alerts the server raises itself (`[[serve.alerts]]`: `name`, `kind = "ctr_drop" |
    /// "conversion_drop" | "fallback_rate" | "zero_results" | "error_rate" | "latency" |
    /// "ingest_drop" | "no_events" | "feature_drift" | "model_regression"`, and the settings
    /// of `crate::alerts::AlertConfig`).
    pub alerts: Vec<crate::alerts::AlertConfig>,
    /// Input bounds: the top-level `[limits]` section, which imports share (set by the CLI).
    #[serde(skip)]
    pub limits: tailor_core::Limits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            api_keys: Vec::new(),
            cors_origins: Vec::new(),
            body_limit_bytes: 8 << 20,
            max_batch: 10_000,
            rate_limit_per_second: 0.0,
            rate_limit_burst: 100.0,
            timeout_ms: 5_000,
            cache_ttl_seconds: 60,
            cache_entries: 100_000,
            exclude: parsed("purchase"),
            model: parsed("auto"),
            candidates: parsed("als, ease, itemknn, warp, hybrid"),
            als_params: parsed(""),
            recency_half_life: 5.0,
            tune_budget: parsed("30s"),
            model_params: parsed("itemknn.weighting=bm25"),
            trending_half_life_days: 7.0,
            history_per_user: 500,
            max_sessions: 100_000,
            context_fields: parsed("device"),
            retrain_every: parsed(""),
            promote_tolerance: 0.01,
            keep_versions: 5,
            playbooks: Vec::new(),
            experiments: Vec::new(),
            bandits: Vec::new(),
            calibration: std::collections::BTreeMap::new(),
            alerts: Vec::new(),
            limits: tailor_core::Limits::default(),
        }
    }
}

/// A default written as text; the defaults are checked by a test.
pub(crate) fn parsed<T: std::str::FromStr>(text: &str) -> Parsed<T>
where
    T::Err: std::fmt::Display,
{
    Parsed::new(text).unwrap_or_else(|e| panic!("the default {e}"))
}

/// The served personalised model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    /// The best of `serve.candidates` on the holdout, at every training.
    Auto,
    /// This one.
    One(ModelKind),
}

/// Models that can serve personalised lists (the others are the cold-start chain's lists
/// or rating predictors).
const SERVABLE: [ModelKind; 7] = [
    ModelKind::Als,
    ModelKind::Ease,
    ModelKind::Itemknn,
    ModelKind::Bpr,
    ModelKind::Warp,
    ModelKind::Hybrid,
    ModelKind::Content,
];

/// `name` as a model that can serve personalised lists.
pub fn servable(name: &str) -> Result<ModelKind, String> {
    let kind: ModelKind = name.parse()?;
    if SERVABLE.contains(&kind) {
        Ok(kind)
    } else {
        let names: Vec<&str> = SERVABLE.iter().map(|k| k.as_str()).collect();
        Err(format!("{kind} cannot serve personalised lists (expected {})", names.join(", ")))
    }
}

impl std::str::FromStr for ModelChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            other => servable(other).map(Self::One),
        }
    }
}

/// The models `auto` compares, in the order written, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates(pub Vec<ModelKind>);

impl std::str::FromStr for Candidates {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out: Vec<ModelKind> = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = servable(name)?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            return Err("name at least one model".into());
        }
        Ok(Candidates(out))
    }
}

/// `model.key=value` pairs: each model's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelParams(pub std::collections::HashMap<ModelKind, std::collections::HashMap<String, String>>);

impl ModelParams {
    /// The parameters given for `kind` (empty when none).
    pub fn of(&self, kind: ModelKind) -> std::collections::HashMap<String, String> {
        self.0.get(&kind).cloned().unwrap_or_default()
    }
}

impl std::str::FromStr for ModelParams {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = ModelParams::default();
        for (key, value) in tailor_recommend::zoo::parse_pairs(s)? {
            let (model, param) = key
                .split_once('.')
                .ok_or_else(|| format!("{key:?}: prefix the parameter with its model (ease.lambda)"))?;
            let kind = servable(model)?;
            if kind == ModelKind::Als {
                return Err(format!("{key:?}: ALS parameters go in serve.als_params"));
            }
            out.0.entry(kind).or_default().insert(param.trim().to_string(), value);
        }
        Ok(out)
    }
}

/// Event context fields (`device, country`): their positions in
/// [`tailor_core::Context::FIELDS`], in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContextFields(pub Vec<usize>);

impl std::str::FromStr for ContextFields {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let fields = tailor_core::Context::FIELDS;
        s.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                fields
                    .iter()
                    .position(|x| *x == f)
                    .ok_or_else(|| format!("unknown field {f:?} (expected some of {})", fields.join(", ")))
            })
            .collect::<Result<_, _>>()
            .map(ContextFields)
    }
}

/// How often something runs in the background: `1h`, `30m`, `90s` (at least one second);
/// empty: never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period(pub Option<std::time::Duration>);

impl std::str::FromStr for Period {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(Period(None));
        }
        let ms = tailor_core::time::parse_duration_millis(s)?;
        if ms < 1000 {
            return Err("must be at least 1s".into());
        }
        Ok(Period(Some(std::time::Duration::from_millis(ms as u64))))
    }
}

impl ServeConfig {
    /// Whether `cors_origins` allows every origin (`"*"`).
    pub fn any_origin(&self) -> bool {
        self.cors_origins.iter().any(|o| o == "*")
    }

    /// Checks every setting, naming the key and the rule it breaks.
    pub fn validate(&self) -> Result<(), String> {
        in_range("serve.max_batch", self.max_batch as f64, 1.0, MAX_BATCH as f64)?;
        in_range("serve.body_limit_bytes", self.body_limit_bytes as f64, 1024.0, MAX_BODY_BYTES as f64)?;
        in_range("serve.rate_limit_per_second", self.rate_limit_per_second, 0.0, 1e9)?;
        in_range("serve.rate_limit_burst", self.rate_limit_burst, 1.0, 1e9)?;
        in_range("serve.timeout_ms", self.timeout_ms as f64, 1.0, 3_600_000.0)?;
        in_range("serve.cache_ttl_seconds", self.cache_ttl_seconds as f64, 0.0, 86_400.0)?;
        in_range("serve.history_per_user", self.history_per_user as f64, 1.0, 100_000.0)?;
        in_range("serve.cache_entries", self.cache_entries as f64, 1.0, 100_000_000.0)?;
        in_range("serve.max_sessions", self.max_sessions as f64, 1.0, 100_000_000.0)?;
        in_range("serve.trending_half_life_days", self.trending_half_life_days, 1e-3, 3650.0)?;
        in_range("serve.keep_versions", self.keep_versions as f64, 1.0, 1000.0)?;
        in_range("serve.promote_tolerance", self.promote_tolerance, 0.0, 1.0)?;
        in_range("serve.recency_half_life", self.recency_half_life, 0.0, 100_000.0)?;
        self.limits.validate()?;
        for (i, k) in self.api_keys.iter().enumerate() {
            let at = format!("serve.api_keys[{i}] ({:?})", k.name);
            if k.name.trim().is_empty() || k.name.len() > 64 {
                return Err(format!("serve.api_keys[{i}].name: give a name of 1 to 64 characters"));
            }
            if k.key.len() < 16 || k.key.len() > 256 || !k.key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("{at}.key: keys must be 16 to 256 printable ASCII characters without spaces"));
            }
            if k.scopes.is_empty() {
                return Err(format!("{at}.scopes: give at least one scope"));
            }
            // Two entries with one secret would grant whichever comes last: refuse it, so an
            // admin key is never downgraded (or upgraded) by a copy under another name.
            if let Some(j) = self.api_keys[..i].iter().position(|o| o.key == k.key) {
                return Err(format!(
                    "{at}.key: the same key is also serve.api_keys[{j}] ({:?})",
                    self.api_keys[j].name
                ));
            }
            if let Some(j) = self.api_keys[..i].iter().position(|o| o.name == k.name) {
                return Err(format!("{at}.name: serve.api_keys[{j}] has the same name"));
            }
        }
        for (i, o) in self.cors_origins.iter().enumerate() {
            if o == "*" {
                if self.api_keys.is_empty() {
                    return Err(format!(
                        "serve.cors_origins[{i}] = \"*\": allowing every origin needs API keys (without them any \
                         web page could write to this server); list the shop's origins instead"
                    ));
                }
                continue;
            }
            check_origin(o).map_err(|why| format!("serve.cors_origins[{i}] = {o:?}: {why}"))?;
        }
        for (i, p) in self.playbooks.iter().enumerate() {
            if p.segment.trim().is_empty() {
                return Err(format!("serve.playbooks[{i}].segment: is empty"));
            }
            if !(p.weight >= 0.0 && p.weight <= 10.0) {
                return Err(format!("serve.playbooks[{i}].weight = {}: expected 0 to 10", p.weight));
            }
        }
        let latency = self.alerts.iter().filter(|a| a.kind == crate::alerts::AlertKind::Latency).count();
        if latency > crate::alerts::MAX_LATENCY_ALERTS {
            return Err(format!(
                "serve.alerts: {latency} latency alerts; at most {}",
                crate::alerts::MAX_LATENCY_ALERTS
            ));
        }
        for (i, a) in self.alerts.iter().enumerate() {
            a.validate().map_err(|e| format!("serve.alerts[{i}] ({}): {e}", a.name))?;
            if self.alerts[..i].iter().any(|o| o.name == a.name) {
                return Err(format!("serve.alerts[{i}]: a second alert named {:?}", a.name));
            }
        }
        for (slot, l) in &self.calibration {
            if !(0.0..1.0).contains(l) {
                return Err(format!("serve.calibration.{slot} = {l}: expected 0 to below 1"));
            }
        }
        for (i, e) in self.experiments.iter().enumerate() {
            e.validate().map_err(|err| format!("serve.experiments[{i}] ({}): {err}", e.name))?;
        }
        for (i, b) in self.bandits.iter().enumerate() {
            if b.slot.trim().is_empty() || b.arms.len() < 2 {
                return Err(format!("serve.bandits[{i}]: needs a slot and at least two arms"));
            }
            tailor_experiment::Policy::parse(&b.policy).map_err(|e| format!("serve.bandits[{i}].{e}"))?;
            if self.bandits[..i].iter().any(|o| o.slot == b.slot) {
                return Err(format!("serve.bandits[{i}]: slot {:?} has two bandits", b.slot));
            }
        }
        Ok(())
    }
}

/// Most rows one request may carry (`serve.max_batch` is at most this).
pub const MAX_BATCH: usize = 1_000_000;
/// Largest request body `serve.body_limit_bytes` may allow (256 MiB).
pub const MAX_BODY_BYTES: usize = 256 << 20;

fn in_range(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if v >= lo && v <= hi { Ok(()) } else { Err(format!("{key} = {v}: expected {lo} to {hi}")) }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
pub fn check_origin(o: &str) -> Result<(), String> {
    let (scheme, rest) =
        o.split_once("://").ok_or("not an origin: expected scheme://host[:port], e.g. https://shop.example")?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?}: expected http or https"));
    }
    let host = match rest.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || rest.starts_with('[') => {
            if port.parse::<u16>().is_err() {
                return Err(format!("port {port:?} is not a number from 0 to 65535"));
            }
            h
        }
        _ => rest,
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '[' | ']' | ':');
    if host.is_empty() || !host.chars().all(valid) {
        return Err("the host may hold only letters, digits, '-' and '.' (no path, spaces or trailing '/')".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_checked() {
        let alert = |toml: &str| -> Result<(), String> {
            let c: ServeConfig = toml::from_str(&format!("[[alerts]]\n{toml}")).map_err(|e| e.to_string())?;
            c.validate()
        };
        assert!(alert("name = \"ctr\"\nkind = \"ctr_drop\"").is_ok());
        assert!(alert("name = \"quiet\"\nkind = \"no_events\"\nwindow = \"10m\"").is_ok());
        let e = alert("name = \"ctr\"\nkind = \"ctr_drop\"\ndrop = 1.5").unwrap_err();
        assert!(e.starts_with("serve.alerts[0] (ctr): drop = 1.5"), "{e}");
        let e = alert("name = \"ctr\"\nkind = \"ctr_drop\"\nwebhook = \"ftp://x\"").unwrap_err();
        assert!(e.contains("an http:// URL"), "{e}");
        assert!(alert("name = \"ctr\"\nkind = \"ctr_spike\"").is_err());
        assert!(alert("name = \"p99\"\nkind = \"latency\"\nlatency_ms = 50").is_ok());
        let e = alert("name = \"p99\"\nkind = \"latency\"\nquantile = 1.0").unwrap_err();
        assert!(e.contains("quantile = 1"), "{e}");
        let e = alert("name = \"e\"\nkind = \"error_rate\"\ndrop = 0.5").unwrap_err();
        assert!(e.contains("drop: not a setting of errorrate"), "{e}");
        assert!(alert("name = \"e\"\nkind = \"error_rate\"\nrise = 3\nexpected = 0.001").is_ok());
        assert!(alert("name = \"i\"\nkind = \"ingest_drop\"\nexpected = 0.1").is_err(), "a Poisson rate");
        assert!(alert("name = \"m\"\nkind = \"model_regression\"\ndrop = 0.1").is_ok());
        let many: String = (0..9).map(|i| format!("[[alerts]]\nname = \"l{i}\"\nkind = \"latency\"\n")).collect();
        let c: ServeConfig = toml::from_str(&many).expect("toml");
        assert!(c.validate().is_err_and(|e| e.contains("at most 8")));
        assert!(alert("name = \"ctr\"\nkind = \"ctr_drop\"\nevry = \"1s\"").is_err(), "unknown keys are refused");
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        assert_eq!(ServeConfig::default().validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut ServeConfig)| {
            let mut c = ServeConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(&|c| c.keep_versions = 0).contains("keep_versions"));
        // Regression: issue #18 (each of these was accepted silently, or panicked at start).
        assert!(bad(&|c| c.cors_origins = vec!["*".into()]).contains("needs API keys"));
        assert!(bad(&|c| c.cors_origins = vec!["https://a b".into()]).starts_with("serve.cors_origins[0]"));
        assert!(bad(&|c| c.cors_origins = vec!["shop.example".into()]).contains("scheme://host"));
        assert!(bad(&|c| c.cors_origins = vec!["https://shop.example/".into()]).contains("no path"));
        assert!(bad(&|c| c.cors_origins = vec!["ftp://shop.example".into()]).contains("scheme"));
        assert!(bad(&|c| c.history_per_user = 0).starts_with("serve.history_per_user"));
        assert!(bad(&|c| c.timeout_ms = 0).starts_with("serve.timeout_ms"));
        fn key(name: &str, key: &str, scope: Scope) -> ApiKey {
            ApiKey { name: name.into(), key: key.into(), scopes: vec![scope] }
        }
        let dup = bad(&|c| {
            c.api_keys =
                vec![key("ops", "k-0123456789abcdef", Scope::Admin), key("site", "k-0123456789abcdef", Scope::Read)]
        });
        assert!(dup.contains("serve.api_keys[1]") && dup.contains("also serve.api_keys[0]"), "{dup}");
        assert!(
            bad(&|c| c.api_keys =
                vec![key("a", "k-0123456789abcdef", Scope::Read), key("a", "k-0123456789abcdeX", Scope::Read)])
            .contains("same name")
        );
        let weight = bad(&|c| {
            c.playbooks = vec![Playbook { segment: "VIP".into(), strategy: Strategy::BoostDiscounted, weight: -0.5 }]
        });
        assert!(weight.starts_with("serve.playbooks[0].weight"), "{weight}");
        let mut any =
            ServeConfig { cors_origins: vec!["*".into(), "http://localhost:3000".into()], ..ServeConfig::default() };
        any.api_keys = vec![key("site", "k-0123456789abcdef", Scope::Read)];
        assert_eq!(any.validate(), Ok(()));
        assert!(any.any_origin());
    }

    #[test]
    fn the_documented_variant_models_are_the_servable_ones() {
        let schema = serde_json::to_value(schemars::schema_for!(tailor_experiment::Variant)).expect("schema");
        let listed: Vec<&str> =
            schema["properties"]["model"]["enum"].as_array().expect("enum").iter().filter_map(|v| v.as_str()).collect();
        let servable: Vec<&str> = SERVABLE.iter().map(|k| k.as_str()).collect();
        assert_eq!(listed, servable);
    }

    #[test]
    fn text_settings_are_parsed_when_read() {
        let read = |json: &str| serde_json::from_str::<ServeConfig>(json).map_err(|e| e.to_string());
        let c = read(r#"{"context_fields": " country , device", "retrain_every": "30m", "als_params": "factors=8"}"#)
            .expect("valid");
        assert_eq!((c.context_fields.0.as_slice(), c.context_fields.text()), ([1, 0].as_slice(), " country , device"));
        assert_eq!(c.retrain_every.0, Some(std::time::Duration::from_secs(1800)));
        assert_eq!((c.als_params.factors, c.als_params.iterations), (8, AlsParams::default().iterations));
        assert_eq!(ServeConfig::default().retrain_every.0, None);
        let err = |json: &str| read(json).expect_err(json);
        assert!(err(r#"{"retrain_every": "1x"}"#).starts_with("\"1x\": "));
        assert!(err(r#"{"retrain_every": "10ms"}"#).contains("at least 1s"));
        assert!(err(r#"{"context_fields": "device,mood"}"#).contains("unknown field \"mood\""));
        assert!(err(r#"{"exclude": "purchase:soon"}"#).starts_with("\"purchase:soon\": "));
        assert!(err(r#"{"als_params": "factors=8,speed=9"}"#).contains("unknown key \"speed\""));
        assert!(err(r#"{"als_params": "factors=0"}"#).contains("factors"));
        let m = read(r#"{"model": "ease", "candidates": "ease, als, ease", "model_params": "ease.lambda=300"}"#)
            .expect("valid");
        assert_eq!(*m.model, ModelChoice::One(ModelKind::Ease));
        assert_eq!(m.candidates.0, vec![ModelKind::Ease, ModelKind::Als]);
        assert_eq!(m.model_params.of(ModelKind::Ease).get("lambda").map(String::as_str), Some("300"));
        assert!(err(r#"{"model": "biases"}"#).contains("cannot serve personalised lists"));
        assert!(err(r#"{"model": "lightfm"}"#).contains("unknown model"));
        assert!(err(r#"{"candidates": ""}"#).contains("at least one"));
        assert!(err(r#"{"model_params": "lambda=3"}"#).contains("prefix the parameter"));
        assert!(err(r#"{"model_params": "als.factors=3"}"#).contains("serve.als_params"));
        // Written back as written.
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(json["context_fields"], " country , device");
    }
}
