//! The API's wire types: what handlers answer, typed, so the OpenAPI document's response
//! schemas are generated from the same structs that produce the responses (and cannot
//! drift from them). Request bodies are the domain types themselves (`Event`, `Item`,
//! `User`, `ExperimentSpec`), whose schemas carry their validators' bounds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tailor_core::{EventKind, Timestamp};

/// `{"error": {...}}`: every error the API answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`not_found`, `invalid_field`, `rate_limited`...).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// The field at fault, when there is one (`k`, `variants[1].weight`, `ts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A batch whose every row was refused (422): the error and each row's reason.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RejectedBody {
    /// The first row's error.
    pub error: ErrorDetail,
    /// Every refused row.
    pub rejected: Vec<RowError>,
}

/// One refused row of a batch.
#[derive(Debug, Clone, Serialize, PartialEq, JsonSchema)]
pub struct RowError {
    /// Position in the batch.
    pub index: usize,
    /// Field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why the row was refused, naming the rule it broke.
    pub message: String,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (models loaded).
    pub status: &'static str,
    /// The served model version (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u64>,
}

/// `POST /v1/events` (202).
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventsStored {
    /// Valid rows.
    pub accepted: usize,
    /// New events stored (durably, before this answer).
    pub stored: u64,
    /// Rows already stored (same id), not counted twice.
    pub duplicates: u64,
    /// Whether some event named an item the catalog did not know yet.
    pub new_items: bool,
    /// Refused rows.
    pub rejected: Vec<RowError>,
}

/// `PUT|PATCH /v1/items`, `PUT|PATCH /v1/users`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Upserted {
    /// Records created.
    pub inserted: u64,
    /// Records changed.
    pub updated: u64,
    /// Refused rows.
    pub rejected: Vec<RowError>,
}

/// `GET /v1/items/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StoredItem {
    /// The item.
    pub item: tailor_core::Item,
    /// Upserts that changed it, from 1.
    pub revision: u64,
    /// Last change (wall clock).
    pub updated_at: Timestamp,
}

/// Why an item is in a list.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReasonOut {
    /// `because_you_viewed`, `also_bought`, `personalized`, `popular_in_segment`,
    /// `popular_in_category`, `popular`, `trending`, `new_arrival`, `discounted`, `promoted`.
    pub kind: &'static str,
    /// The sentence shown ("Because you viewed Wool coat").
    pub text: String,
    /// The item the reason names, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// One recommended item, with what a page needs to show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ListedItem {
    /// Item id.
    pub id: String,
    /// Title (the id when the item has none).
    pub title: String,
    /// Relevance of this list's strategy (higher first).
    pub score: f32,
    /// Regular price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// Discounted price while on sale (below `price`), in the shop's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_price: Option<f64>,
    /// Category path, `A > B`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Brand as the catalog gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Whether it can be bought now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<bool>,
    /// Image URL (the item's `image` attribute).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Why it is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ReasonOut>,
}

/// The experiment a list was served in.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VariantOut {
    /// The experiment that decided the variant.
    pub experiment: String,
    /// The variant this user sees.
    pub variant: String,
    /// The variant's layout, if it sets one.
    pub layout: Option<tailor_experiment::Layout>,
}

/// A playbook applied to a list.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlaybookOut {
    /// The segment whose playbook it is (`(experiment)` when a variant imposed it).
    pub segment: String,
    /// What it does.
    pub strategy: crate::config::Strategy,
}

/// `GET /v1/users/{id}/recommendations`, `POST /v1/sessions/{id}/recommendations`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Recommendations {
    /// The user (null for a session).
    pub user: Option<String>,
    /// The session (null for a user).
    pub session: Option<String>,
    /// The list, best first.
    pub items: Vec<ListedItem>,
    /// Which step of the cold-start chain answered: `personalized`, `segment_popular`,
    /// `popular`, `trending`, `catalog` or `none` (nothing passes the filters).
    pub strategy: String,
    /// Model version that produced it.
    pub model_version: u64,
    /// The personalised model that ranked it (`ease`, `als`...; an experiment variant may
    /// name another than the served one), `none` before any training.
    pub model: String,
    /// Send it back with clicks, carts and purchases (`rec_id`) to attribute them.
    pub rec_id: String,
    /// The experiment and variant, when the request took part in one.
    pub variant: Option<VariantOut>,
    /// Playbooks applied.
    pub playbooks: Vec<PlaybookOut>,
    /// The request context the list was conditioned on, if the context model knew it.
    pub context: Option<String>,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// [`Recommendations`] borrowed, to answer a cached list without copying it (a unit test
/// checks that both serialise the same fields).
#[derive(Serialize)]
pub struct RecommendationsRef<'a> {
    /// See [`Recommendations`].
    pub user: &'a Option<String>,
    /// See [`Recommendations`].
    pub session: &'a Option<String>,
    /// See [`Recommendations`].
    pub items: &'a [ListedItem],
    /// See [`Recommendations`].
    pub strategy: &'a str,
    /// See [`Recommendations`].
    pub model_version: u64,
    /// See [`Recommendations`].
    pub model: &'a str,
    /// See [`Recommendations`].
    pub rec_id: &'a str,
    /// See [`Recommendations`].
    pub variant: &'a Option<VariantOut>,
    /// See [`Recommendations`].
    pub playbooks: &'a [PlaybookOut],
    /// See [`Recommendations`].
    pub context: &'a Option<String>,
    /// See [`Recommendations`].
    pub cached: bool,
}

impl<'a> RecommendationsRef<'a> {
    /// A view of `r`.
    pub fn of(r: &'a Recommendations) -> Self {
        Self {
            user: &r.user,
            session: &r.session,
            items: &r.items,
            strategy: &r.strategy,
            model_version: r.model_version,
            model: &r.model,
            rec_id: &r.rec_id,
            variant: &r.variant,
            playbooks: &r.playbooks,
            context: &r.context,
            cached: r.cached,
        }
    }
}

/// `GET /v1/items/{id}/similar`, `GET /v1/items/{id}/bought-together`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Related {
    /// The item asked about.
    pub item: String,
    /// Related items, best first.
    pub items: Vec<ListedItem>,
    /// Registry version of the model that ranked the list.
    pub model_version: u64,
    /// The list's id, for attribution.
    pub rec_id: String,
}

/// `GET /v1/popular`, `GET /v1/trending`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Listing {
    /// The items, best first.
    pub items: Vec<ListedItem>,
    /// Registry version of the model that ranked the list.
    pub model_version: u64,
}

/// A segment with its size now and when its run was made.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentOut {
    /// Segment name, unique within its segmentation.
    pub name: String,
    /// What it means, if the run says.
    pub description: Option<String>,
    /// Members now (real-time moves included).
    pub size: usize,
    /// Members when the run was made.
    pub size_at_run: usize,
}

/// One segmentation's latest run.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentationOut {
    /// The segmentation (a `tailor segment run --name`).
    pub segmentation: String,
    /// Run id.
    pub run: u64,
    /// When the run was made.
    pub created_at: Timestamp,
    /// Its segments.
    pub segments: Vec<SegmentOut>,
}

/// `GET /v1/segments`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Segmentations {
    /// Latest run of each stored segmentation.
    pub segmentations: Vec<SegmentationOut>,
}

/// `GET /v1/segments/{name}/users`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SegmentUsers {
    /// The segment.
    pub segment: String,
    /// The segmentation holding it.
    pub segmentation: String,
    /// Members in all.
    pub total: usize,
    /// This page, from 1.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// The page's user ids.
    pub users: Vec<String>,
}

/// A user's segments in one segmentation.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Membership {
    /// The segmentation (a `tailor segment run --name`).
    pub segmentation: String,
    /// Segments the user is in.
    pub segments: Vec<String>,
}

/// One remembered event of a profile.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RecentEvent {
    /// The event's kind (`view`, `purchase`...).
    pub kind: EventKind,
    /// The item, if any.
    pub item: Option<String>,
    /// Event time as sent (ms since the epoch).
    pub ts: Timestamp,
}

/// What a profile says of the user's recent activity (empty without any).
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct Activity {
    /// Events by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
    /// Latest event time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Revenue of the remembered purchases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue_recent: Option<f64>,
    /// The latest events, newest first (at most 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent: Option<Vec<RecentEvent>>,
}

/// `GET /v1/users/{id}/profile`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Profile {
    /// The user id.
    pub user: String,
    /// The stored record, if any.
    pub attributes: Option<tailor_core::User>,
    /// Segments per segmentation.
    pub segments: Vec<Membership>,
    /// The behaviour and demographic features segment rules see now (null where unknown).
    pub features: BTreeMap<String, Value>,
    /// Recent activity.
    pub activity: Activity,
    /// Whether the live model has a trained row for the user.
    pub model_vector: bool,
}

/// `DELETE /v1/users/{id}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Erased {
    /// What was removed.
    pub erased: ErasureOut,
}

/// What an erasure removed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErasureOut {
    /// Whether anything of the user was known.
    pub found: bool,
    /// Events removed.
    pub events: u64,
    /// Segment memberships, history entries and map points removed.
    pub segment_entries: u64,
    /// Experiment exposures removed.
    pub exposures: u64,
}

impl From<tailor_store::Erasure> for ErasureOut {
    fn from(e: tailor_store::Erasure) -> Self {
        Self { found: e.found, events: e.events, segment_entries: e.segment_entries, exposures: e.exposures }
    }
}

/// `POST /v1/admin/reload`, `POST /v1/admin/rollback`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LiveVersion {
    /// The version now served.
    pub live: crate::live::LiveInfo,
}

/// `POST /v1/admin/retrain`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Retrained {
    /// The candidate's facts.
    pub candidate: crate::live::LiveInfo,
    /// Whether it went live.
    pub promoted: bool,
    /// Why (or why not).
    pub reason: String,
    /// The version served now.
    pub live: Option<crate::live::LiveInfo>,
}

/// `GET /v1/admin/models`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Models {
    /// The served version.
    pub live: crate::live::LiveInfo,
    /// The version the registry names live (a rollback not yet reloaded may differ).
    pub registered_live: Option<u64>,
    /// Every version trained, oldest first.
    pub versions: Vec<crate::live::LiveInfo>,
}

/// `GET /v1/experiments`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExperimentList {
    /// Every stored experiment.
    pub experiments: Vec<tailor_experiment::Experiment>,
}

/// [`ExperimentList`] borrowed.
#[derive(Debug, Serialize)]
pub struct ExperimentListRef<'a> {
    /// Every stored experiment.
    pub experiments: Vec<&'a tailor_experiment::Experiment>,
}

/// An experiment after a change, with what running it does to others.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExperimentChanged {
    /// The experiment.
    #[serde(flatten)]
    pub experiment: tailor_experiment::Experiment,
    /// Running experiments it shares a slot with, and which of the two gets the traffic.
    pub warnings: Vec<String>,
}

/// `GET /v1/alerts`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AlertsOut {
    /// Every configured alert and its state.
    pub alerts: Vec<crate::alerts::AlertState>,
    /// Transitions (firing, resolved), oldest first, the last 1,000.
    pub history: Vec<crate::alerts::AlertEvent>,
}

/// A JSON object the dashboard reads whose inner layout is described in the route's
/// summary (`GET /v1/admin/timeseries`, `catalog-health`, `feed`, `bandits`, `segments`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct DashboardData(pub serde_json::Map<String, Value>);

/// An event as the API takes it: [`tailor_core::Event`], whose `ts` may be left out (the
/// server's clock). Used for its schema only.
pub struct EventIn;

impl JsonSchema for EventIn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventIn".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut s = tailor_core::Event::json_schema(g);
        if let Some(req) = s.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| r != "ts");
        }
        s
    }
}

/// A JSON merge patch of `T` (RFC 7396): its id, and any of its fields, `null` clearing one.
/// Used for its schema only.
pub struct Patch<T>(std::marker::PhantomData<T>);

/// A patch of an item.
pub type ItemPatch = Patch<tailor_core::Item>;
/// A patch of a user.
pub type UserPatch = Patch<tailor_core::User>;

impl<T: JsonSchema> JsonSchema for Patch<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}Patch", T::schema_name()).into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut s = T::json_schema(g);
        if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
            for (name, p) in props.iter_mut() {
                if name == "id" {
                    continue;
                }
                // Nested objects (attributes) take null values too: they remove a key.
                if let Some(values) = p.get_mut("additionalProperties").filter(|v| v.is_object()) {
                    *values = serde_json::json!({"anyOf": [values.clone(), {"type": "null"}]});
                }
                *p = serde_json::json!({"anyOf": [p.clone(), {"type": "null"}]});
            }
        }
        s
    }
}

/// `POST /v1/sessions/{id}/recommendations`: items the session just looked at (unknown
/// ids are ignored).
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionItems {
    /// Item ids.
    #[serde(default)]
    #[schemars(length(max = 1000))]
    pub items: Option<Vec<tailor_core::ItemId>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_answer_has_the_fields_of_a_fresh_one() {
        let r = Recommendations {
            user: Some("u".into()),
            session: None,
            items: Vec::new(),
            strategy: "popular".into(),
            model_version: 2,
            model: "ease".into(),
            rec_id: "r1".into(),
            variant: None,
            playbooks: Vec::new(),
            context: None,
            cached: false,
        };
        let fresh = serde_json::to_value(&r).expect("json");
        let cached =
            serde_json::to_value(RecommendationsRef { cached: true, ..RecommendationsRef::of(&r) }).expect("json");
        let keys =
            |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        assert_eq!(keys(&fresh), keys(&cached));
        assert_eq!((cached["model"].as_str(), cached["cached"].as_bool()), (Some("ease"), Some(true)));
    }
}
