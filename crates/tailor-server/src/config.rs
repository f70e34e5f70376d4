//! `[serve]` settings: address, API keys with scopes, limits, cache, exclusions, playbooks.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Which of a user's own events hide items (`purchase, add_to_cart:1d`).
    pub exclude: String,
    /// ALS parameters of the served model (`factors=64,iterations=15,...`).
    pub als_params: String,
    /// Half-life of the trending list, days.
    pub trending_half_life_days: f64,
    /// Most recent events kept in memory per user or session.
    pub history_per_user: usize,
    /// Event context fields the context-aware model (iTALS) learns from, comma-separated
    /// (`device`, `country`, `region`, `city`, `channel`, `page`, `slot`, `referrer`); a
    /// request's `context.<field>=...` then conditions its list. Empty: no context model.
    pub context_fields: String,
    /// Retrain in the background this often (`1h`, `30m`...; empty: never).
    pub retrain_every: String,
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
            exclude: "purchase".into(),
            als_params: String::new(),
            trending_half_life_days: 7.0,
            history_per_user: 500,
            context_fields: "device".into(),
            retrain_every: String::new(),
            promote_tolerance: 0.01,
            keep_versions: 5,
            playbooks: Vec::new(),
            experiments: Vec::new(),
            bandits: Vec::new(),
        }
    }
}

impl ServeConfig {
    /// The context fields as positions in [`tailor_core::Context::FIELDS`], in order.
    pub fn context_field_indices(&self) -> Result<Vec<usize>, String> {
        self.context_fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                tailor_core::Context::FIELDS.iter().position(|x| *x == f).ok_or_else(|| {
                    format!(
                        "serve.context_fields: unknown field {f:?} (expected some of {})",
                        tailor_core::Context::FIELDS.join(", ")
                    )
                })
            })
            .collect()
    }

    /// The retraining period, if any.
    pub fn retrain_period(&self) -> Option<std::time::Duration> {
        let ms = tailor_core::time::parse_duration_millis(&self.retrain_every).ok()?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms as u64))
    }

    /// Checks the settings that could make the server unsafe or useless.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch == 0 || self.body_limit_bytes == 0 {
            return Err("serve.max_batch and serve.body_limit_bytes must be positive".into());
        }
        if !(self.rate_limit_per_second >= 0.0 && self.rate_limit_per_second.is_finite()) {
            return Err("serve.rate_limit_per_second must be a finite number >= 0".into());
        }
        if !(self.trending_half_life_days > 0.0 && self.trending_half_life_days.is_finite()) {
            return Err("serve.trending_half_life_days must be > 0".into());
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.key.len() < 16 {
                return Err(format!("serve.api_keys[{i}] ({}): keys must be at least 16 characters", k.name));
            }
            if k.scopes.is_empty() {
                return Err(format!("serve.api_keys[{i}] ({}): give at least one scope", k.name));
            }
        }
        self.exclude
            .parse::<tailor_recommend::business::ExclusionPolicy>()
            .map_err(|e| format!("serve.exclude: {e}"))?;
        if !self.retrain_every.trim().is_empty() {
            let ms = tailor_core::time::parse_duration_millis(&self.retrain_every)
                .map_err(|e| format!("serve.retrain_every: {e}"))?;
            if ms < 1000 {
                return Err("serve.retrain_every must be at least 1s".into());
            }
        }
        if !(self.promote_tolerance >= 0.0 && self.promote_tolerance.is_finite()) || self.keep_versions == 0 {
            return Err("serve.promote_tolerance must be >= 0 and serve.keep_versions >= 1".into());
        }
        self.context_field_indices()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        assert_eq!(ServeConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut ServeConfig)| {
            let mut c = ServeConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.retrain_every = "1x".into()).starts_with("serve.retrain_every"));
        assert!(bad(|c| c.retrain_every = "10ms".into()).contains("at least 1s"));
        assert!(bad(|c| c.keep_versions = 0).contains("keep_versions"));
        assert!(bad(|c| c.context_fields = "device,mood".into()).contains("unknown field \"mood\""));
        assert!(bad(|c| c.exclude = "purchase:soon".into()).starts_with("serve.exclude"));
        let mut c = ServeConfig { context_fields: " country , device".into(), ..ServeConfig::default() };
        assert_eq!(c.context_field_indices(), Ok(vec![1, 0]));
        c.retrain_every = "30m".into();
        assert_eq!(c.retrain_period(), Some(std::time::Duration::from_secs(1800)));
    }
}
