//! What an experiment is: its variants, who takes part, what it measures, and its
//! lifecycle (draft → running ⇄ paused → stopped), every change recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailor_core::Timestamp;

use crate::error::{ExperimentError, Result};

/// How a recommendation slot is laid out on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// A horizontal scroller.
    Carousel,
    /// A grid of cards.
    Grid,
    /// A vertical list.
    List,
}

impl Layout {
    /// Every layout.
    pub const ALL: [Layout; 3] = [Layout::Carousel, Layout::Grid, Layout::List];

    /// The name used in configs and the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Carousel => "carousel",
            Self::Grid => "grid",
            Self::List => "list",
        }
    }
}

/// The measures a report computes; one is primary, others may be guardrails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Clicks per impression.
    Ctr,
    /// Share of exposed users who bought after their first exposure.
    Conversion,
    /// Attributed purchases per impression.
    ConversionPerImpression,
    /// Revenue per order of exposed users.
    Aov,
    /// Revenue per exposed user.
    RevenuePerUser,
    /// Share of served lists that got at least one click.
    Acceptance,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 6] = [
        Metric::Ctr,
        Metric::Conversion,
        Metric::ConversionPerImpression,
        Metric::Aov,
        Metric::RevenuePerUser,
        Metric::Acceptance,
    ];

    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ctr => "ctr",
            Self::Conversion => "conversion",
            Self::ConversionPerImpression => "conversion_per_impression",
            Self::Aov => "aov",
            Self::RevenuePerUser => "revenue_per_user",
            Self::Acceptance => "acceptance",
        }
    }

    /// True for rates (tested with proportions), false for money (tested on means).
    pub fn is_rate(self) -> bool {
        !matches!(self, Self::Aov | Self::RevenuePerUser)
    }
}

fn one() -> f64 {
    1.0
}

/// One arm of an experiment: what the served list (or the page) does differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Short name (letters, digits, `-`, `_`).
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Relative share of the experiment's traffic.
    #[serde(default = "one")]
    #[schemars(range(min = 1e-9, max = 1e9))]
    pub weight: f64,
    /// Recommendation strategy: `personalized` (default), `popular`, `trending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["personalized", "popular", "trending", null]))]
    pub strategy: Option<String>,
    /// Segment playbook to apply (`boost_discounted`, `boost_new_arrivals`, `premium_only`,
    /// or `none` to switch the configured playbooks off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["boost_discounted", "boost_new_arrivals", "premium_only", "none", null]))]
    pub playbook: Option<String>,
    /// Page layout of the slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// The personalised model this variant's lists come from (`als`, `ease`, `itemknn`,
    /// `bpr`, `warp`, `hybrid`, `content`); the server keeps it trained beside the chosen
    /// one. Unset: the served model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["als", "ease", "itemknn", "bpr", "warp", "hybrid", "content", null]))]
    pub model: Option<String>,
    /// Request parameters this variant sets (e.g. `diversity = "0.3"`, `category`,
    /// `max_per_category`), as the recommendations route takes them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub params: BTreeMap<String, String>,
}

impl Variant {
    /// A variant with weight 1 and nothing changed.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            weight: 1.0,
            strategy: None,
            playbook: None,
            layout: None,
            model: None,
            params: BTreeMap::new(),
        }
    }
}

/// Lifecycle states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Defined, not yet assigning.
    Draft,
    /// Assigning and logging exposures.
    Running,
    /// Temporarily off (users see the default; assignments stay the same on resume).
    Paused,
    /// Finished for good.
    Stopped,
}

impl Status {
    /// The name used in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }
}

/// One recorded lifecycle change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusChange {
    /// When the status changed (server clock, ms).
    pub at: Timestamp,
    /// The new status.
    pub status: Status,
    /// Who (API key name or `cli`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

fn default_metric() -> Metric {
    Metric::Ctr
}

fn default_window() -> u64 {
    24
}

fn default_alpha() -> f64 {
    0.05
}

/// An experiment's definition, as written in `tailor.toml` (`[[experiments]]`) or posted
/// to `POST /v1/experiments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Unique short name (letters, digits, `-`, `_`).
    #[schemars(regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// What the experiment tests, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = TEXT_CHARS))]
    pub description: Option<String>,
    /// Hash salt; defaults to the name. Changing it reshuffles everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = NAME_CHARS))]
    pub salt: Option<String>,
    /// Slots it applies to (`home`, `product`...); empty: every slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = NAME_CHARS), pattern(tailor_core::schema::NON_BLANK)))]
    pub slots: Vec<String>,
    /// Share of eligible users in the experiment, in (0, 1].
    #[serde(default = "one")]
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 1))]
    pub traffic: f64,
    /// The arms; the first is the control (names unique).
    #[schemars(length(min = 2, max = 26))]
    pub variants: Vec<Variant>,
    /// Only users in one of these segments take part; empty: everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = NAME_CHARS), pattern(tailor_core::schema::NON_BLANK)))]
    pub segments: Vec<String>,
    /// Not before (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Timestamp>,
    /// Not after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at: Option<Timestamp>,
    /// The metric that decides.
    #[serde(default = "default_metric")]
    pub primary_metric: Metric,
    /// Metrics that must not get significantly worse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Metric>,
    /// View-through attribution window in hours (0: click-through only).
    #[serde(default = "default_window")]
    #[schemars(range(max = MAX_WINDOW_HOURS))]
    #[serde(deserialize_with = "tailor_core::schema::whole::deserialize")]
    pub attribution_window_hours: u64,
    /// Significance level, in (0, 0.5).
    #[serde(default = "default_alpha")]
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 0.5))]
    pub alpha: f64,
}

/// Names of experiments and variants: 1 to 64 letters, digits, `-` and `_` (they travel
/// inside `rec_id`s).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// Longest slot, segment or salt, in characters.
pub const NAME_CHARS: usize = 256;
/// Longest description, in characters.
pub const TEXT_CHARS: usize = 4096;
/// Longest view-through attribution window (a year), in hours.
pub const MAX_WINDOW_HOURS: u64 = 8760;

fn check_text(field: &str, v: &str, min: usize, max: usize) -> Result<()> {
    let n = v.chars().count();
    if n < min || n > max || (min > 0 && tailor_core::limits::is_blank(v)) {
        return Err(ExperimentError::invalid(field, format!("must be {min} to {max} characters, not blank")));
    }
    Ok(())
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 {
        return Err(ExperimentError::invalid(field, "must be 1 to 64 characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(ExperimentError::invalid(
            field,
            format!("{name:?} contains {c:?}; use letters, digits, '-' and '_' (names travel inside rec_id)"),
        ));
    }
    Ok(())
}

impl ExperimentSpec {
    /// A running-ready spec with equal-weight variants of these names.
    pub fn new(name: &str, variants: &[&str]) -> Self {
        Self {
            name: name.into(),
            description: None,
            salt: None,
            slots: Vec::new(),
            traffic: 1.0,
            variants: variants.iter().map(|v| Variant::named(v)).collect(),
            segments: Vec::new(),
            start_at: None,
            stop_at: None,
            primary_metric: Metric::Ctr,
            guardrails: Vec::new(),
            attribution_window_hours: default_window(),
            alpha: default_alpha(),
        }
    }

    /// The salt in use.
    pub fn salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.name)
    }

    /// Checks every field; errors name it (`variants[1].weight`).
    pub fn validate(&self) -> Result<()> {
        check_name("name", &self.name)?;
        if !(self.traffic > 0.0 && self.traffic <= 1.0) {
            return Err(ExperimentError::invalid("traffic", format!("must be in (0, 1], got {}", self.traffic)));
        }
        if self.variants.len() < 2 {
            return Err(ExperimentError::invalid("variants", "needs at least two variants (the first is the control)"));
        }
        if self.variants.len() > 26 {
            return Err(ExperimentError::invalid("variants", "at most 26 variants"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, v) in self.variants.iter().enumerate() {
            check_name(&format!("variants[{i}].name"), &v.name)?;
            if !seen.insert(v.name.as_str()) {
                return Err(ExperimentError::invalid(
                    format!("variants[{i}].name"),
                    format!("{:?} is used twice", v.name),
                ));
            }
            if !(v.weight >= 1e-9 && v.weight <= 1e9) {
                return Err(ExperimentError::invalid(
                    format!("variants[{i}].weight"),
                    format!("must be a positive number from 1e-9 to 1e9, got {}", v.weight),
                ));
            }
            if v.params.len() > 32 {
                return Err(ExperimentError::invalid(format!("variants[{i}].params"), "at most 32 parameters"));
            }
            if let Some(s) = &v.strategy
                && !["personalized", "popular", "trending"].contains(&s.as_str())
            {
                return Err(ExperimentError::invalid(
                    format!("variants[{i}].strategy"),
                    format!("unknown strategy {s:?}; use personalized, popular or trending"),
                ));
            }
            if let Some(p) = &v.playbook
                && !["boost_discounted", "boost_new_arrivals", "premium_only", "none"].contains(&p.as_str())
            {
                return Err(ExperimentError::invalid(
                    format!("variants[{i}].playbook"),
                    format!("unknown playbook {p:?}; use boost_discounted, boost_new_arrivals, premium_only or none"),
                ));
            }
        }
        if let Some(d) = &self.description {
            check_text("description", d, 0, TEXT_CHARS)?;
        }
        if let Some(salt) = &self.salt {
            check_text("salt", salt, 1, NAME_CHARS)?;
        }
        for (what, list) in [("slots", &self.slots), ("segments", &self.segments)] {
            if list.len() > 64 {
                return Err(ExperimentError::invalid(what, "at most 64 entries"));
            }
            for (i, s) in list.iter().enumerate() {
                check_text(&format!("{what}[{i}]"), s, 1, NAME_CHARS)?;
            }
        }
        if self.attribution_window_hours > MAX_WINDOW_HOURS {
            return Err(ExperimentError::invalid("attribution_window_hours", "at most 8760 (a year)"));
        }
        if let (Some(a), Some(b)) = (self.start_at, self.stop_at)
            && b <= a
        {
            return Err(ExperimentError::invalid("stop_at", "must be after start_at"));
        }
        if self.guardrails.contains(&self.primary_metric) {
            return Err(ExperimentError::invalid("guardrails", "the primary metric cannot also be a guardrail"));
        }
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(ExperimentError::invalid("alpha", format!("must be in (0, 0.5), got {}", self.alpha)));
        }
        Ok(())
    }

    /// True when the experiment covers this slot.
    pub fn covers_slot(&self, slot: Option<&str>) -> bool {
        self.slots.is_empty() || slot.is_some_and(|s| self.slots.iter().any(|x| x == s))
    }

    /// The slots on which both experiments may take the same request (`*`: every slot),
    /// empty when their slots or their target segments are disjoint.
    pub fn shared_slots(&self, other: &ExperimentSpec) -> Vec<String> {
        if !self.segments.is_empty()
            && !other.segments.is_empty()
            && !self.segments.iter().any(|s| other.segments.contains(s))
        {
            return Vec::new();
        }
        match (self.slots.is_empty(), other.slots.is_empty()) {
            (true, true) => vec!["*".to_string()],
            (true, false) => other.slots.clone(),
            (false, true) => self.slots.clone(),
            (false, false) => self.slots.iter().filter(|s| other.slots.contains(s)).cloned().collect(),
        }
    }

    /// Index of a variant by name.
    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }
}

/// A spec with its lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Experiment {
    /// The definition as created (name, variants, metrics, schedule).
    #[serde(flatten)]
    pub spec: ExperimentSpec,
    /// Current status.
    pub status: Status,
    /// Every status change, oldest first (creation included).
    pub history: Vec<StatusChange>,
}

impl Experiment {
    /// A validated draft.
    pub fn create(spec: ExperimentSpec, at: Timestamp, by: Option<String>) -> Result<Self> {
        spec.validate()?;
        Ok(Self { spec, status: Status::Draft, history: vec![StatusChange { at, status: Status::Draft, by }] })
    }

    /// Moves to `to`, recording it: draft/paused → running, running → paused, any but
    /// stopped → stopped.
    pub fn transition(&mut self, to: Status, at: Timestamp, by: Option<String>) -> Result<()> {
        use Status::*;
        let ok = matches!(
            (self.status, to),
            (Draft | Paused, Running) | (Running, Paused) | (Draft | Running | Paused, Stopped)
        );
        if !ok {
            return Err(ExperimentError::Conflict(format!(
                "experiment {:?} cannot go from {} to {}",
                self.spec.name,
                self.status.name(),
                to.name()
            )));
        }
        self.status = to;
        self.history.push(StatusChange { at, status: to, by });
        Ok(())
    }

    /// When it first started running.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.history.iter().find(|c| c.status == Status::Running).map(|c| c.at)
    }

    /// True when it assigns users at `now`: running and inside its time window.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.status == Status::Running
            && self.spec.start_at.is_none_or(|s| now >= s)
            && self.spec.stop_at.is_none_or(|s| now < s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let mut s = ExperimentSpec::new("home-algo", &["control", "als"]);
        assert!(s.validate().is_ok());
        s.variants[1].weight = 0.0;
        assert_eq!(
            s.validate().err().and_then(|e| e.field().map(str::to_owned)).as_deref(),
            Some("variants[1].weight")
        );
        s.variants[1].weight = 1.0;
        s.variants[1].name = "a.b".into();
        assert!(s.validate().err().is_some_and(|e| e.to_string().contains("rec_id")));
        s.variants[1].name = "control".into();
        assert!(s.validate().err().is_some_and(|e| e.to_string().contains("used twice")));
        let t: std::result::Result<ExperimentSpec, _> =
            serde_json::from_value(serde_json::json!({"name": "x", "variants": [{"name": "a"}], "colour": 1}));
        assert!(t.is_err(), "unknown keys are refused");
    }

    #[test]
    fn lifecycle_is_recorded_and_stopped_is_final() {
        let mut e = Experiment::create(ExperimentSpec::new("e", &["a", "b"]), Timestamp(1), None).expect("spec");
        assert!(!e.is_live(Timestamp(2)));
        e.transition(Status::Running, Timestamp(2), Some("ops".into())).expect("start");
        assert!(e.is_live(Timestamp(3)));
        e.transition(Status::Paused, Timestamp(4), None).expect("pause");
        e.transition(Status::Running, Timestamp(5), None).expect("resume");
        e.transition(Status::Stopped, Timestamp(6), None).expect("stop");
        assert!(e.transition(Status::Running, Timestamp(7), None).is_err());
        let statuses: Vec<Status> = e.history.iter().map(|c| c.status).collect();
        assert_eq!(statuses, [Status::Draft, Status::Running, Status::Paused, Status::Running, Status::Stopped]);
        assert_eq!(e.started_at(), Some(Timestamp(2)));
    }
}
