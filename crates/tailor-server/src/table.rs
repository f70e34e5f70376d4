//! [`ROUTES`], the one list of what the API offers: method, path, scope, summary, body,
//! query parameters with their schemas, the answer and the error statuses. The router,
//! the guard (scope, content type) and the OpenAPI document are all made from it.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use tailor_core::schema::NON_BLANK;

use crate::api;
use crate::config::Scope;

/// A schema, made with the document's generator (so named types become shared components).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`.
pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One batch row or a batch of `T`: an object, an array, or `{"<key>": [...]}`.
pub fn rows_of<T: JsonSchema>(key: &'static str) -> impl Fn(&mut SchemaGenerator) -> Schema {
    move |g| {
        let one = g.subschema_for::<T>();
        json_schema!({
            "anyOf": [
                one.clone(),
                {"type": "array", "items": one.clone(), "maxItems": crate::config::MAX_BATCH, "x-tailor-max": "max_batch"},
                {
                    "type": "object",
                    "properties": {key: {"type": "array", "items": one, "maxItems": crate::config::MAX_BATCH, "x-tailor-max": "max_batch"}},
                    "required": [key],
                    "additionalProperties": false,
                },
            ]
        })
    }
}

/// Events: the API's event (its `ts` may be left out: the server's clock) in a batch.
pub fn events_body(g: &mut SchemaGenerator) -> Schema {
    rows_of::<crate::api::EventIn>("events")(g)
}

/// Items in a batch.
pub fn items_body(g: &mut SchemaGenerator) -> Schema {
    rows_of::<tailor_core::Item>("items")(g)
}

/// Users in a batch.
pub fn users_body(g: &mut SchemaGenerator) -> Schema {
    rows_of::<tailor_core::User>("users")(g)
}

/// Partial items (JSON merge patches, each with its id) in a batch.
pub fn item_patches(g: &mut SchemaGenerator) -> Schema {
    rows_of::<crate::api::ItemPatch>("items")(g)
}

/// Partial users in a batch.
pub fn user_patches(g: &mut SchemaGenerator) -> Schema {
    rows_of::<crate::api::UserPatch>("users")(g)
}

/// A session's extra items.
pub fn session_body(g: &mut SchemaGenerator) -> Schema {
    schema::<crate::api::SessionItems>(g)
}

/// The values a query parameter takes: the guard checks every parameter of every route
/// against its kind (422 naming it otherwise), and the document's schemas come from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A whole number in `[min, max]`.
    Int(i64, i64),
    /// A text of 1 to `max` characters, not blank.
    Text(usize),
    /// `true` or `false`.
    Bool,
    /// A price filter, 0 to 1e15.
    Price,
    /// A share, 0 to 1.
    Share,
    /// An instant (Unix seconds or ms, or RFC 3339), 1970 to 2200.
    Instant,
    /// `hour` or `day`.
    Bucket,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Comma-separated top-level category names of the catalog (checked by the route).
    Categories,
    /// Comma-separated brand names of the catalog (checked by the route).
    Brands,
    /// Comma-separated item ids (unknown ones are ignored).
    Ids,
    /// Bootstrap resamples: 0 (none) or 100 to 100,000.
    Resamples,
    /// Any text (pages take whatever a link adds).
    Any,
}

/// Longest comma-separated list a query parameter takes, in characters (a URL stays far
/// below the 64 KiB the HTTP layer reads, even percent-encoded).
pub const MAX_LIST_CHARS: usize = 2000;

impl Kind {
    /// The schema of the parameter's values.
    pub fn schema(self) -> Schema {
        match self {
            Kind::Int(min, max) => json_schema!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Text(max) => json_schema!({"type": "string", "minLength": 1, "maxLength": max, "pattern": NON_BLANK}),
            Kind::Bool => json_schema!({"type": "boolean"}),
            Kind::Price => json_schema!({"type": "number", "minimum": 0, "maximum": 1e15}),
            Kind::Share => json_schema!({"type": "number", "minimum": 0, "maximum": 1}),
            Kind::Instant => tailor_core::schema::timestamp_between(0, tailor_core::time::MAX_MILLIS),
            Kind::Bucket => json_schema!({"type": "string", "enum": ["hour", "day"]}),
            Kind::OneOf(words) => json_schema!({"type": "string", "enum": words}),
            Kind::Categories => {
                json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_LIST_CHARS, "x-tailor-values": "categories"})
            }
            Kind::Brands => {
                json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_LIST_CHARS, "x-tailor-values": "brands"})
            }
            Kind::Ids => json_schema!({"type": "string", "maxLength": MAX_LIST_CHARS}),
            Kind::Any => json_schema!({"type": "string"}),
            Kind::Resamples => json_schema!({"anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 0},
                {"type": "integer", "minimum": 100, "maximum": 100_000}
            ]}),
        }
    }

    /// Whether `v` is such a value; the reason when not.
    pub fn check(self, v: &str) -> Result<(), String> {
        let bad = |what: &str| Err(format!("{v:?} is not {what}"));
        match self {
            Kind::Int(min, max) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                _ => bad(&format!("a whole number from {min} to {max}")),
            },
            Kind::Text(max) => {
                if tailor_core::limits::is_blank(v) || v.chars().count() > max {
                    bad(&format!("a text of 1 to {max} characters"))
                } else {
                    Ok(())
                }
            }
            Kind::Bool => match v {
                "true" | "false" => Ok(()),
                _ => bad("true or false"),
            },
            Kind::Price | Kind::Share => {
                let hi = if self == Kind::Share { 1.0 } else { 1e15 };
                match v.parse::<f64>() {
                    Ok(x) if (0.0..=hi).contains(&x) => Ok(()),
                    _ => bad(&format!("a number from 0 to {hi}")),
                }
            }
            Kind::Instant => match tailor_core::Timestamp::parse_auto(v) {
                Ok(t) if t.0 >= 0 => Ok(()),
                _ => bad("a time from 1970 to 2200 (Unix seconds or ms, or RFC 3339)"),
            },
            Kind::Bucket => match v {
                "hour" | "day" => Ok(()),
                _ => bad("hour or day"),
            },
            Kind::OneOf(words) => {
                if words.contains(&v) {
                    Ok(())
                } else {
                    Err(format!("{v:?}: expected one of {}", words.join(", ")))
                }
            }
            Kind::Categories | Kind::Brands => {
                if v.is_empty() || v.chars().count() > MAX_LIST_CHARS {
                    bad("1 to 2000 characters of comma-separated names")
                } else {
                    Ok(())
                }
            }
            Kind::Ids => {
                if v.chars().count() > MAX_LIST_CHARS {
                    bad("at most 2000 characters")
                } else {
                    Ok(())
                }
            }
            Kind::Any => Ok(()),
            Kind::Resamples => match v.parse::<u32>() {
                Ok(0 | 100..=100_000) => Ok(()),
                _ => bad("0 or a whole number from 100 to 100000"),
            },
        }
    }
}

/// One documented query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The parameter as written in the query string.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its values.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
}

const fn q(name: &'static str, description: &'static str, kind: Kind) -> Param {
    Param { name, description, kind, required: false }
}

const fn required(name: &'static str, description: &'static str, kind: Kind) -> Param {
    Param { name, description, kind, required: true }
}

/// A route's request body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// None (a body sent anyway is ignored).
    None,
    /// A JSON document of this schema, required.
    Json(SchemaFn),
    /// A JSON document of this schema, optional.
    OptionalJson(SchemaFn),
}

impl Body {
    /// Whether the route reads a body (and so requires `application/json` for one).
    pub fn takes_json(&self) -> bool {
        !matches!(self, Body::None)
    }
}

/// What a route answers when it succeeds.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// JSON of this schema, with this status.
    Json(u16, SchemaFn),
    /// A document of this content type (HTML pages, scripts, metrics).
    Content(&'static str),
}

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path template (axum syntax, `{param}`).
    pub path: &'static str,
    /// Scope a key needs (`None`: public).
    pub scope: Option<Scope>,
    /// One line (or a few).
    pub summary: &'static str,
    /// What the route takes as its body (JSON routes answer 415 to other content types).
    pub body: Body,
    /// Query parameters.
    pub query: &'static [Param],
    /// The success answer.
    pub reply: Reply,
    /// Error statuses of the route itself (the guard's are added: 401, 403, 429 on scoped
    /// routes; 413 and 415 with a body; 400 for a malformed query or body).
    pub errors: &'static [u16],
}

const ID: Kind = Kind::Text(tailor_core::limits::MAX_ID_CHARS);
const NAME: Kind = Kind::Text(tailor_core::limits::MAX_NAME_CHARS);
const K: Kind = Kind::Int(1, 100);
const CONTEXT: &str = "request context, logged; with serve.context_fields it conditions the list";

const REC_QUERY: &[Param] = &[
    q("k", "number of items (default 10)", K),
    q("slot", "the page slot asking (home, product, cart...), logged; experiments and bandits are per slot", NAME),
    q("category", "only these top-level categories (comma-separated names)", Kind::Categories),
    q("brand", "only these brands (comma-separated)", Kind::Brands),
    q("min_price", "lowest price (at most max_price)", Kind::Price),
    q("max_price", "highest price", Kind::Price),
    q("exclude", "item ids never to return (comma-separated)", Kind::Ids),
    q("diversity", "0 (relevance only) to 1 (diversity only)", Kind::Share),
    q("max_per_category", "at most this many items per top-level category", K),
    q(
        "calibration",
        "0 (off) to below 1: the list's categories follow the mix of the user's history (Steck 2018); default: serve.calibration of the slot",
        Kind::Share,
    ),
    q("context.device", CONTEXT, NAME),
    q("context.country", CONTEXT, NAME),
    q("context.region", CONTEXT, NAME),
    q("context.city", CONTEXT, NAME),
    q("context.channel", CONTEXT, NAME),
    q("context.page", CONTEXT, NAME),
    q("context.slot", CONTEXT, NAME),
    q("context.referrer", CONTEXT, NAME),
    q("decision", "a layout decision_id from /v1/users/{id}/layout: clicks on this list reward it", ID),
];

const KEY_QUERY: &[Param] =
    &[q("key", "an API key, for pages opened in a browser (pages take any parameter)", Kind::Any)];

const fn json<T: JsonSchema>() -> Reply {
    Reply::Json(200, schema::<T>)
}

const SUMMARY_EVENTS: &str = "Store one event or a batch (array or {\"events\": [...]}, up to serve.max_batch); durable before 202, idempotent by id (given, or derived from the fields with ts): an id among the last million stored events is a duplicate whatever its ts, older ones match by id and ts; invalid rows are reported by index and field, valid ones kept (422 when every row is invalid). A ts may be left out (the server's clock); it is at most limits.max_future_seconds ahead of it, and prices and quantities are at most limits.max_unit_price and limits.max_quantity";

/// Every route.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/healthz",
        scope: None,
        summary: "Liveness: the process answers",
        body: Body::None,
        query: &[],
        reply: json::<api::Health>(),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/readyz",
        scope: None,
        summary: "Readiness: models are loaded",
        body: Body::None,
        query: &[],
        reply: json::<api::Health>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/metrics",
        scope: None,
        summary: "Prometheus metrics (text exposition format 0.0.4)",
        body: Body::None,
        query: &[],
        reply: Reply::Content("text/plain; version=0.0.4"),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/openapi.json",
        scope: None,
        summary: "This API's OpenAPI 3.1 document (its bounds are this server's: limits, catalog categories and brands, the clock)",
        body: Body::None,
        query: &[],
        reply: json::<api::DashboardData>(),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/demo",
        scope: None,
        summary: "The demo storefront: home pages by shopper type, categories, products with widgets, cart and checkout, and a 'view the shop as' switcher",
        body: Body::None,
        query: KEY_QUERY,
        reply: Reply::Content("text/html; charset=utf-8"),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/widget.js",
        scope: None,
        summary: "The embeddable recommendation widget (plain JavaScript, embedded in the binary)",
        body: Body::None,
        query: &[],
        reply: Reply::Content("application/javascript; charset=utf-8"),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/assets/lib.js",
        scope: None,
        summary: "The pages' shared JavaScript (API calls, escaping, formats), embedded in the binary",
        body: Body::None,
        query: &[],
        reply: Reply::Content("application/javascript; charset=utf-8"),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/assets/charts.js",
        scope: None,
        summary: "The pages' SVG charts (line, bar, scatter), embedded in the binary",
        body: Body::None,
        query: &[],
        reply: Reply::Content("application/javascript; charset=utf-8"),
        errors: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/events",
        scope: Some(Scope::Write),
        summary: SUMMARY_EVENTS,
        body: Body::Json(events_body),
        query: &[q("key", "the API key, for browsers' navigator.sendBeacon, which cannot send headers", ID)],
        reply: Reply::Json(202, schema::<api::EventsStored>),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "PUT",
        path: "/v1/items",
        scope: Some(Scope::Write),
        summary: "Create or replace catalog items (array or {\"items\": [...]}): each row is the whole item, fields it leaves out are cleared (PATCH updates field by field); a sale price is at most the price",
        body: Body::Json(items_body),
        query: &[],
        reply: json::<api::Upserted>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "PATCH",
        path: "/v1/items",
        scope: Some(Scope::Write),
        summary: "Update catalog items field by field (array or {\"items\": [...]}), each row a JSON merge patch (RFC 7396) of the stored item: given fields replace, null clears, absent ones stay; unknown ids are created",
        body: Body::Json(item_patches),
        query: &[],
        reply: json::<api::Upserted>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/items/{id}",
        scope: Some(Scope::Read),
        summary: "One catalog item",
        body: Body::None,
        query: &[],
        reply: json::<api::StoredItem>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/items/{id}/similar",
        scope: Some(Scope::Read),
        summary: "Items like this one (cosine of the model's item vectors), in stock",
        body: Body::None,
        query: &[q("k", "number of items (default 10)", K)],
        reply: json::<api::Related>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/items/{id}/bought-together",
        scope: Some(Scope::Read),
        summary: "Items bought in the same orders as this one, in stock",
        body: Body::None,
        query: &[q("k", "number of items (default 10)", K)],
        reply: json::<api::Related>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "PUT",
        path: "/v1/users",
        scope: Some(Scope::Write),
        summary: "Create or replace users (array or {\"users\": [...]}): each row is the whole user, fields it leaves out are cleared (PATCH updates field by field)",
        body: Body::Json(users_body),
        query: &[],
        reply: json::<api::Upserted>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "PATCH",
        path: "/v1/users",
        scope: Some(Scope::Write),
        summary: "Update users field by field (array or {\"users\": [...]}), each row a JSON merge patch of the stored user; unknown ids are created",
        body: Body::Json(user_patches),
        query: &[],
        reply: json::<api::Upserted>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "DELETE",
        path: "/v1/users/{id}",
        scope: Some(Scope::Admin),
        summary: "Erase a user: events, record, segments, cached lists, the live model's row and every kept model version's; their history never comes back through a re-import; a later event starts a new user",
        body: Body::None,
        query: &[],
        reply: json::<api::Erased>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/users/{id}/profile",
        scope: Some(Scope::Read),
        summary: "A user's attributes, segments, features, activity counts and recent events",
        body: Body::None,
        query: &[],
        reply: json::<api::Profile>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/users/{id}/recommendations",
        scope: Some(Scope::Read),
        summary: "Personalised items with score, reason, model version and rec_id (cold-start chain: model → segment → popular → catalog); attr.KEY=v1,v2 keeps items whose attribute KEY is one of the values",
        body: Body::None,
        query: REC_QUERY,
        reply: json::<api::Recommendations>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/sessions/{id}/recommendations",
        scope: Some(Scope::Read),
        summary: "Recommendations for an anonymous session from its events and the body's {\"items\": [...]}",
        body: Body::OptionalJson(session_body),
        query: REC_QUERY,
        reply: json::<api::Recommendations>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/popular",
        scope: Some(Scope::Read),
        summary: "Most popular items, overall, in a segment or in categories",
        body: Body::None,
        query: &[
            q("k", "number of items (default 10)", K),
            q("segment", "a segment name", NAME),
            q("category", "top-level categories (comma-separated)", Kind::Categories),
        ],
        reply: json::<api::Listing>(),
        errors: &[404, 422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/trending",
        scope: Some(Scope::Read),
        summary: "Items rising now (interactions decayed by serve.trending_half_life_days)",
        body: Body::None,
        query: &[
            q("k", "number of items (default 10)", K),
            q("category", "top-level categories (comma-separated)", Kind::Categories),
        ],
        reply: json::<api::Listing>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/segments",
        scope: Some(Scope::Read),
        summary: "Stored segmentations with their segments and sizes (now, and when the run was made)",
        body: Body::None,
        query: &[],
        reply: json::<api::Segmentations>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/segments/{name}/users",
        scope: Some(Scope::Read),
        summary: "Members of a segment, paged",
        body: Body::None,
        query: &[
            q("segmentation", "which segmentation (default: the one holding the segment)", NAME),
            q("page", "from 1", Kind::Int(1, 1_000_000_000)),
            q("per_page", "default 100", Kind::Int(1, 1000)),
        ],
        reply: json::<api::SegmentUsers>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/admin/reload",
        scope: Some(Scope::Admin),
        summary: "Serve the registry's live version (after `tailor model rollback`): load it and swap it in",
        body: Body::None,
        query: &[],
        reply: json::<api::LiveVersion>(),
        errors: &[409, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/admin/retrain",
        scope: Some(Scope::Admin),
        summary: "Retrain from the store now; the candidate is promoted unless its holdout NDCG@10 is worse than the live one's by more than serve.promote_tolerance (409 while another retraining runs)",
        body: Body::None,
        query: &[],
        reply: json::<api::Retrained>(),
        errors: &[409, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/models",
        scope: Some(Scope::Admin),
        summary: "The live model version and every registered version with its training facts",
        body: Body::None,
        query: &[],
        reply: json::<api::Models>(),
        errors: &[503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/admin/rollback",
        scope: Some(Scope::Admin),
        summary: "Make a kept earlier version live (as `tailor model rollback`) and swap it in",
        body: Body::None,
        query: &[required("to", "the version", Kind::Int(1, 1_000_000_000))],
        reply: json::<api::LiveVersion>(),
        errors: &[404, 409, 422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/timeseries",
        scope: Some(Scope::Admin),
        summary: "Per hour or day: events by kind, orders, revenue and AOV; impressions, clicks, CTR, conversion, revenue and AOV from recommendations (events with a rec_id); lists served, cache hit ratio, latency percentiles, strategies and bandit decisions. Events count at their own time (stored history included), serving since the process started. Answer: bucket, bucket_ms, from, to, points[]",
        body: Body::None,
        query: &[
            q("bucket", "hour or day (default day)", Kind::Bucket),
            q("from", "first time (default: the first data; at most `to`)", Kind::Instant),
            q("to", "last time (default: the latest data); at most 400 buckets, the latest ones", Kind::Instant),
        ],
        reply: json::<api::DashboardData>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/catalog-health",
        scope: Some(Scope::Admin),
        summary: "Exposure of the catalog in served lists (since start) and in impression events: coverage, Gini, popularity bias, share of the top 1% and 10% of items, Lorenz curve, most shown items (id and title); listed, in-stock and modelled items",
        body: Body::None,
        query: &[],
        reply: json::<api::DashboardData>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/feed",
        scope: Some(Scope::Admin),
        summary: "The latest events and served lists (newest 300), for a live view. Answer: entries[], last",
        body: Body::None,
        query: &[q("after", "only entries after this seq (the last one seen)", Kind::Int(0, i64::MAX))],
        reply: json::<api::DashboardData>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/bandits",
        scope: Some(Scope::Admin),
        summary: "Every layout bandit: arms with pulls, rewards, means and shares, overall and per context. Answer: bandits[]",
        body: Body::None,
        query: &[],
        reply: json::<api::DashboardData>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/segments",
        scope: Some(Scope::Admin),
        summary: "Per segmentation: segments with profiles (RFM, AOV, categories, device, demographics) and explanation rules, the 2-D PCA map, sizes over time and migrations between segments. Answer: segmentations[]",
        body: Body::None,
        query: &[],
        reply: json::<api::DashboardData>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/alerts",
        scope: Some(Scope::Admin),
        summary: "The configured alerts ([[serve.alerts]]: recommendation CTR drops judged by a CUSUM with a stated false-alarm rate, no events for a while) with their state (firing, ok, warming_up), statistic and baseline, and the history of their transitions; each transition also goes to the alert's webhook as an Alertmanager payload (version 4)",
        body: Body::None,
        query: &[],
        reply: json::<api::AlertsOut>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/cohorts",
        scope: Some(Scope::Admin),
        summary: "Cohorts by first-purchase month (UTC): per cohort and month since, the customers buying, the share of the cohort they are, the cohort's revenue and its cumulative revenue per customer",
        body: Body::None,
        query: &[],
        reply: json::<tailor_segment::cohort::Cohorts>(),
        errors: &[503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/drift",
        scope: Some(Scope::Admin),
        summary: "Drift of the users from a segmentation's latest run: the population stability index of every numeric feature (the run's decile bins against the features computed now) and of the segment shares (the run's sizes against today's members), the largest first; 404 for an unknown segmentation, 422 when none is stored or it predates the snapshots",
        body: Body::None,
        query: &[q("segmentation", "which stored segmentation (default: the first by name)", NAME)],
        reply: json::<crate::drift::DriftReport>(),
        errors: &[404, 422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/fairness",
        scope: Some(Scope::Admin),
        summary: "Fairness of the served lists (impressions sharing a rec_id; relevant: the clicks and purchases carrying it): NDCG per user group (a segmentation's segments, gender, age band, region or country) and the gap, exposure by brand and popularity band against catalog and interaction shares (statistical parity, equal opportunity), ARP and APLT; 404 for an unknown segmentation, 422 when none is stored",
        body: Body::None,
        query: &[
            q(
                "by",
                "segment (default), gender, age, region or country",
                Kind::OneOf(&["segment", "gender", "age", "region", "country"]),
            ),
            q("segmentation", "with by=segment: which stored segmentation (default: the first by name)", NAME),
        ],
        reply: json::<crate::fairness::ServedFairness>(),
        errors: &[404, 422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/admin/clv",
        scope: Some(Scope::Admin),
        summary: "Customer lifetime value: BG/NBD (purchase days) and Gamma-Gamma (their value) fitted on the stored purchases, the most valuable customers and the value of every segment of the stored segmentations; without purchases or repeat buyers to fit on, the models are null and `reason` says why; 422 for a discount of 1 or more",
        body: Body::None,
        query: &[
            q("months", "months (of 30 days) of future value to add up (default 3)", Kind::Int(1, 120)),
            q("discount", "discount rate per month, below 1 (default 0)", Kind::Share),
            q("top", "how many of the most valuable customers to list (default 10)", Kind::Int(0, 1000)),
            q("through", "last day of the observation (default: the day of the latest purchase)", Kind::Instant),
        ],
        reply: json::<crate::lifetime::ClvReport>(),
        errors: &[422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/dashboard",
        scope: None,
        summary: "The dashboard page (its data comes from the admin API: open /dashboard?key=ADMIN_KEY when keys are configured)",
        body: Body::None,
        query: KEY_QUERY,
        reply: Reply::Content("text/html; charset=utf-8"),
        errors: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/experiments",
        scope: Some(Scope::Read),
        summary: "Every experiment with its variants, status and status history",
        body: Body::None,
        query: &[],
        reply: json::<api::ExperimentList>(),
        errors: &[503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/experiments",
        scope: Some(Scope::Admin),
        summary: "Create an experiment from its definition (name, slots, traffic, variants with weights and strategy/playbook/layout/params, segments, start_at/stop_at, primary_metric, guardrails); a draft unless start=true; 409 when the name is taken. Variant names are unique, stop_at is after start_at, the primary metric is not a guardrail, and a variant's params are recommendation query parameters. `warnings` name running experiments it shares a slot with",
        body: Body::Json(schema::<tailor_experiment::ExperimentSpec>),
        query: &[q("start", "true: start it at once", Kind::Bool)],
        reply: Reply::Json(201, schema::<api::ExperimentChanged>),
        errors: &[409, 422, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/experiments/{name}",
        scope: Some(Scope::Read),
        summary: "One experiment",
        body: Body::None,
        query: &[],
        reply: json::<tailor_experiment::Experiment>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/experiments/{name}/start",
        scope: Some(Scope::Admin),
        summary: "Start (or resume) an experiment; recorded in its history (409 when stopped)",
        body: Body::None,
        query: &[],
        reply: json::<api::ExperimentChanged>(),
        errors: &[404, 409, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/experiments/{name}/pause",
        scope: Some(Scope::Admin),
        summary: "Pause an experiment (users see the default; assignments are unchanged on resume; 409 unless running)",
        body: Body::None,
        query: &[],
        reply: json::<api::ExperimentChanged>(),
        errors: &[404, 409, 503],
    },
    RouteDoc {
        method: "POST",
        path: "/v1/experiments/{name}/stop",
        scope: Some(Scope::Admin),
        summary: "Stop an experiment for good (409 when already stopped)",
        body: Body::None,
        query: &[],
        reply: json::<api::ExperimentChanged>(),
        errors: &[404, 409, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/experiments/{name}/report",
        scope: Some(Scope::Read),
        summary: "Per-variant and per-segment metrics, tests (z, chi-square, Welch, bootstrap, Holm, mSPRT), SRM and guardrail warnings, a verdict and the cumulative lift per day. Computed once for all readers and kept: one up to 10 s old is answered as it is, an older one too while a fresh one is computed in the background; the Age header gives its age in seconds, and a request with Cache-Control: no-cache waits for a new one",
        body: Body::None,
        query: &[q("bootstrap", "bootstrap resamples for money metrics (default 1000, 0: none)", Kind::Resamples)],
        reply: json::<tailor_experiment::report::Report>(),
        errors: &[404, 503],
    },
    RouteDoc {
        method: "GET",
        path: "/v1/users/{id}/layout",
        scope: Some(Scope::Read),
        summary: "The layout of a slot for this user: an experiment variant's, else the slot's bandit's choice with a decision_id (pass it as decision= to the recommendations, or as an event's rec_id), else the default",
        body: Body::None,
        query: &[required("slot", "the slot", NAME)],
        reply: json::<crate::experiments::LayoutDecision>(),
        errors: &[503],
    },
];

/// The schema of a path parameter by its name (any value is taken: an unknown one is 404).
pub fn path_param(path: &str, name: &str) -> Schema {
    match (path.starts_with("/v1/experiments"), name) {
        (true, "name") => json_schema!({"type": "string", "pattern": tailor_experiment::spec::NAME_PATTERN}),
        (_, "name") => NAME.schema(),
        _ => ID.schema(),
    }
}
