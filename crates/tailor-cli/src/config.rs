//! Configuration: defaults < `tailor.toml` < `TAILOR__SECTION__KEY` environment < flags.
//!
//! [`Config::load`] is a pure function of its inputs (file text, environment pairs, flag
//! overrides), so precedence is tested without touching the process environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tailor_core::InteractionWeights;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where data lives.
    pub store: StoreConfig,
    /// Import limits.
    pub import: ImportConfig,
    /// Bounds on event times, prices and quantities (HTTP, streams and imports).
    pub limits: tailor_core::Limits,
    /// How events become interaction weights for models.
    pub interactions: InteractionWeights,
    /// The demo shop.
    pub demo: DemoConfig,
    /// `[segment]`: defaults of `tailor segment run` and the server's segment sweep.
    pub segment: SegmentConfig,
    /// `[log]`: level and format (text or JSON lines) of the log on stderr.
    pub log: LogConfig,
    /// The HTTP API (`tailor serve`).
    pub serve: tailor_server::config::ServeConfig,
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Data directory of the embedded store.
    pub data_dir: PathBuf,
    /// Page cache of the embedded store, MiB (1..=65536).
    pub cache_mb: u32,
    /// How many of the newest stored events make a later event with the same id a duplicate
    /// whatever its timestamp (1..=100,000,000; about 50 bytes of memory each).
    pub recent_ids: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tailor-data"),
            cache_mb: (tailor_store::DEFAULT_CACHE_BYTES >> 20) as u32,
            recent_ids: tailor_store::DEFAULT_RECENT_IDS,
        }
    }
}

/// `[import]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Row errors listed when an import is rejected.
    pub max_errors: usize,
    /// Longest accepted input line in bytes.
    pub max_line_bytes: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self { max_errors: 20, max_line_bytes: 1 << 20 }
    }
}

/// `[demo]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// Registered users.
    pub users: usize,
    /// Items in the demo catalog.
    pub items: usize,
    /// Days of history.
    pub days: u32,
    /// Anonymous visitor sessions.
    pub anonymous_sessions: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        let d = tailor_ingest::demo::DemoParams::default();
        Self { seed: d.seed, users: d.users, items: d.items, days: d.days, anonymous_sessions: d.anonymous_sessions }
    }
}

/// `[segment]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// Categories whose shares become features.
    pub top_categories: usize,
    /// Step of a centroid towards each user assigned online, in [0, 1].
    pub learning_rate: f64,
    /// `segment run --if-due`: rerun after this many hours...
    pub recluster_every_hours: f64,
    /// ... or after this many online reassignments ...
    pub recluster_max_updates: u64,
    /// ... or once a centre drifted this far (encoded units).
    pub recluster_max_drift: f64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        let p = tailor_segment::online::ReclusterPolicy::default();
        Self {
            top_categories: 8,
            learning_rate: 0.05,
            recluster_every_hours: p.every_ms as f64 / 3_600_000.0,
            recluster_max_updates: p.max_updates,
            recluster_max_drift: p.max_drift,
        }
    }
}

impl SegmentConfig {
    /// The recluster policy.
    pub fn policy(&self) -> tailor_segment::online::ReclusterPolicy {
        tailor_segment::online::ReclusterPolicy {
            every_ms: (self.recluster_every_hours * 3_600_000.0) as i64,
            max_updates: self.recluster_max_updates,
            max_drift: self.recluster_max_drift,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json`.
    pub format: String,
    /// tracing filter (`info`, `tailor=debug`...); `TAILOR_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "pretty".into(), filter: "info".into() }
    }
}

/// Where each value came from, by dotted key.
pub type Sources = BTreeMap<String, String>;

/// One override from the environment or a flag.
#[derive(Debug, Clone)]
pub struct Override {
    /// Dotted key, e.g. `store.data_dir`.
    pub key: String,
    /// The value as written in the file or environment, before parsing.
    pub value: String,
    /// How the user wrote it, for messages (`env TAILOR__STORE__DATA_DIR`, `--data-dir`).
    pub origin: String,
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return,
        };
    }
    t.insert(last.to_owned(), value);
}

/// Converts a raw string to the type of the default at that key.
fn coerce(raw: &str, like: &toml::Value) -> Result<toml::Value, String> {
    match like {
        toml::Value::Integer(_) => {
            raw.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| "expected an integer".into())
        }
        toml::Value::Float(_) => {
            raw.trim().parse::<f64>().map(toml::Value::Float).map_err(|_| "expected a number".into())
        }
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err("expected true or false".into()),
        },
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

impl Config {
    /// Merges the layers. `file` is `(path, text)` of a `tailor.toml`; `env` are the process
    /// variables (only `TAILOR__*` ones are read); `flags` are command-line overrides.
    pub fn load(
        file: Option<(&str, &str)>,
        env: &[(String, String)],
        flags: &[Override],
    ) -> Result<(Config, Sources), String> {
        let defaults = toml::Value::try_from(Config::default()).map_err(|e| e.to_string())?;
        let mut known = BTreeMap::new();
        flatten("", &defaults, &mut known);
        let mut sources: Sources = known.keys().map(|k| (k.clone(), "default".to_owned())).collect();
        let toml::Value::Table(mut table) = defaults else { return Err("defaults are not a table".into()) };
        if let Some((path, text)) = file {
            let parsed: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("{path}: {e}"))?;
            let mut flat = BTreeMap::new();
            flatten("", &toml::Value::Table(parsed), &mut flat);
            for (k, v) in flat {
                let Some(like) = known.get(&k) else {
                    return Err(format!("{path}: unknown key {k:?} (see tailor.example.toml)"));
                };
                let v = match (&v, like) {
                    (toml::Value::Integer(i), toml::Value::Float(_)) => toml::Value::Float(*i as f64),
                    _ => v,
                };
                if std::mem::discriminant(&v) != std::mem::discriminant(like) {
                    return Err(format!("{path}: {k} = {v}: expected {} value", like.type_str()));
                }
                set_path(&mut table, &k, v);
                sources.insert(k, format!("file {path}"));
            }
        }
        let mut overrides: Vec<Override> = env
            .iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix("TAILOR__")?;
                let key = rest.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
                Some(Override { key, value: value.clone(), origin: format!("env {name}") })
            })
            .collect();
        overrides.extend(flags.iter().cloned());
        for o in overrides {
            let Some(like) = known.get(&o.key) else {
                return Err(format!("{}={}: unknown key {:?}", o.origin, o.value, o.key));
            };
            let v = coerce(&o.value, like).map_err(|why| format!("{}={}: {why}", o.origin, o.value))?;
            set_path(&mut table, &o.key, v);
            sources.insert(o.key.clone(), o.origin.clone());
        }
        let mut config: Config = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            // toml names the key only in its display ("...\nin `serve.exclude`"): say it
            // first, with where the value came from, like every other refusal here.
            let text = e.to_string();
            match text.split_once("in `").and_then(|(_, rest)| rest.split_once('`')).map(|(k, _)| k) {
                Some(key) => format!("{key} ({}): {}", sources.get(key).map_or("default", String::as_str), e.message()),
                None => text,
            }
        })?;
        config.serve.limits = config.limits.clone();
        config.validate(&sources)?;
        Ok((config, sources))
    }

    /// Checks values after the merge, naming the source of a bad one.
    pub fn validate(&self, sources: &Sources) -> Result<(), String> {
        let src = |k: &str| sources.get(k).cloned().unwrap_or_else(|| "default".into());
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(format!("log.format = {:?} ({}): expected pretty or json", self.log.format, src("log.format")));
        }
        if !(1..=65_536).contains(&self.store.cache_mb) {
            return Err(format!(
                "store.cache_mb = {} ({}): must be in [1, 65536]",
                self.store.cache_mb,
                src("store.cache_mb")
            ));
        }
        if !(1..=100_000_000).contains(&self.store.recent_ids) {
            return Err(format!(
                "store.recent_ids = {} ({}): must be in [1, 100000000]",
                self.store.recent_ids,
                src("store.recent_ids")
            ));
        }
        if self.import.max_line_bytes < 1024 {
            return Err(format!(
                "import.max_line_bytes = {} ({}): must be at least 1024",
                self.import.max_line_bytes,
                src("import.max_line_bytes")
            ));
        }
        if self.demo.users == 0 || self.demo.items == 0 || self.demo.days == 0 {
            return Err(format!("demo.users, demo.items and demo.days must be positive ({})", src("demo.users")));
        }
        self.interactions.validate().map_err(|e| format!("{e} ({})", src("interactions.half_life_days")))?;
        let sg = &self.segment;
        if !(0.0..=1.0).contains(&sg.learning_rate) {
            return Err(format!(
                "segment.learning_rate = {} ({}): must be in [0, 1]",
                sg.learning_rate,
                src("segment.learning_rate")
            ));
        }
        if !(sg.recluster_every_hours > 0.0 && sg.recluster_max_drift > 0.0 && sg.recluster_max_updates > 0) {
            return Err(format!("segment.recluster_* must be positive ({})", src("segment.recluster_every_hours")));
        }
        self.limits.validate()?;
        self.serve.validate()?;
        Ok(())
    }

    /// Every value with its source, as `key = value  # source` lines.
    pub fn show(&self, sources: &Sources) -> Result<Vec<(String, String, String)>, String> {
        let mut v = toml::Value::try_from(self).map_err(|e| e.to_string())?;
        // API keys are secrets: shown by name and scopes only.
        if let Some(toml::Value::Array(keys)) = v.get_mut("serve").and_then(|s| s.get_mut("api_keys")) {
            for k in keys.iter_mut() {
                if let Some(t) = k.as_table_mut() {
                    t.insert("key".into(), toml::Value::String("<redacted>".into()));
                }
            }
        }
        let mut flat = BTreeMap::new();
        flatten("", &v, &mut flat);
        Ok(flat
            .into_iter()
            .map(|(k, v)| (k.clone(), v.to_string(), sources.get(&k).cloned().unwrap_or_else(|| "default".into())))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(key: &str, value: &str) -> Override {
        Override { key: key.into(), value: value.into(), origin: format!("--conf {key}") }
    }

    #[test]
    fn precedence_defaults_file_env_flags() {
        let file = "[store]\ndata_dir = \"/from/file\"\n[demo]\nseed = 7\nusers = 100\n";
        let env = vec![
            ("TAILOR__DEMO__SEED".to_owned(), "8".to_owned()),
            ("TAILOR__DEMO__USERS".to_owned(), "200".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let (c, s) = Config::load(Some(("t.toml", file)), &env, &[ov("demo.users", "300")]).expect("loads");
        assert_eq!(c.store.data_dir, PathBuf::from("/from/file"));
        assert_eq!(s["store.data_dir"], "file t.toml");
        assert_eq!((c.demo.seed, s["demo.seed"].as_str()), (8, "env TAILOR__DEMO__SEED"));
        assert_eq!((c.demo.users, s["demo.users"].as_str()), (300, "--conf demo.users"));
        assert_eq!((c.demo.items, s["demo.items"].as_str()), (2000, "default"));
    }

    #[test]
    fn errors_name_the_source() {
        let env = vec![("TAILOR__DEMO__SEED".to_owned(), "abc".to_owned())];
        assert_eq!(Config::load(None, &env, &[]).unwrap_err(), "env TAILOR__DEMO__SEED=abc: expected an integer");
        assert_eq!(
            Config::load(Some(("t.toml", "[store]\ndir = 1")), &[], &[]).unwrap_err(),
            "t.toml: unknown key \"store.dir\" (see tailor.example.toml)"
        );
        assert!(
            Config::load(Some(("t.toml", "[demo]\nseed = \"x\"")), &[], &[])
                .unwrap_err()
                .contains("demo.seed = \"x\": expected integer value")
        );
        let err = Config::load(None, &[], &[ov("log.format", "xml")]).unwrap_err();
        assert_eq!(err, "log.format = \"xml\" (--conf log.format): expected pretty or json");
        assert!(Config::load(Some(("t.toml", "[[")), &[], &[]).unwrap_err().starts_with("t.toml: "));
        // Settings parsed into types are refused with their key and source too.
        let err = Config::load(Some(("t.toml", "[serve]\nretrain_every = \"5ms\"")), &[], &[]).unwrap_err();
        assert_eq!(err, "serve.retrain_every (file t.toml): \"5ms\": must be at least 1s");
        let err = Config::load(None, &[], &[ov("serve.context_fields", "mood")]).unwrap_err();
        assert!(
            err.starts_with("serve.context_fields (--conf serve.context_fields): \"mood\": unknown field"),
            "{err}"
        );
    }

    #[test]
    fn example_config_is_the_default() {
        let text = include_str!("../../../tailor.example.toml");
        let (c, _) = Config::load(Some(("tailor.example.toml", text)), &[], &[]).expect("example parses");
        assert_eq!(c, Config::default());
        // Every key is documented in the example.
        let shown = Config::default().show(&Sources::new()).expect("show");
        for (k, _, _) in shown {
            let leaf = k.rsplit('.').next().unwrap_or_default();
            assert!(text.contains(&format!("{leaf} =")), "tailor.example.toml lacks {k}");
        }
    }
}
