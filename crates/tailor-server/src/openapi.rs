//! The OpenAPI 3.1 document, generated from [`crate::table::ROUTES`] and the Rust types the
//! routes take and answer (their JSON Schemas come from `schemars`, with the validators'
//! bounds). The served document is this server's: its limits, its catalog's categories and
//! brands, and the latest event time its clock accepts now; `docs/openapi.json` is the
//! document of the default settings without a catalog or a clock (a test checks it is
//! current).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::api;
use crate::config::{Scope, ServeConfig};
use crate::table::{Body, ROUTES, Reply};

/// What the served document depends on besides the routes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Limits and batch sizes.
    pub config: &'a ServeConfig,
    /// The catalog's top-level categories (their names become the only accepted values).
    pub categories: Option<&'a [String]>,
    /// The catalog's brands.
    pub brands: Option<&'a [String]>,
    /// The server's clock: events may be dated up to `limits.max_future_seconds` after it.
    pub now: Option<tailor_core::Timestamp>,
}

impl<'a> Context<'a> {
    /// The committed document's context: these settings, no catalog, no clock.
    pub fn offline(config: &'a ServeConfig) -> Self {
        Self { config, categories: None, brands: None, now: None }
    }
}

fn error_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// The document.
pub fn document(ctx: &Context<'_>) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut g = settings.into_generator();
    let error = g.subschema_for::<api::ErrorBody>().to_value();
    let rejected = g.subschema_for::<api::RejectedBody>().to_value();
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = Vec::new();
        let mut rest = r.path;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let name = &rest[open + 1..open + close];
            let schema = crate::table::path_param(r.path, name).to_value();
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            rest = &rest[open + close + 1..];
        }
        for p in r.query {
            let mut schema = p.kind.schema().to_value();
            dynamic_values(&mut schema, ctx);
            params.push(json!({
                "name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": schema,
            }));
        }
        let mut responses = Map::new();
        match r.reply {
            Reply::Json(status, schema) => {
                let s = schema(&mut g).to_value();
                responses.insert(
                    status.to_string(),
                    json!({"description": "OK", "content": {"application/json": {"schema": s}}}),
                );
            }
            Reply::Content(ct) => {
                responses.insert(
                    "200".into(),
                    json!({"description": "OK", "content": {ct: {"schema": {"type": "string"}}}}),
                );
            }
        }
        let json_route = matches!(r.reply, Reply::Json(..));
        let mut errors: Vec<(u16, &str)> = r.errors.iter().map(|&c| (c, describe(c))).collect();
        if json_route {
            // Unknown or invalid query parameters; a request that outlasts serve.timeout_ms.
            errors.push((422, describe(422)));
            errors.push((503, describe(503)));
            if !r.query.is_empty() {
                errors.push((400, "Malformed query string"));
            }
        }
        if r.scope.is_some() {
            errors.push((401, "Missing or unknown API key (or two different ones)"));
            errors.push((403, "The key lacks the scope, or a cross-site write"));
            errors.push((429, "Rate limited (Retry-After says when to retry)"));
        }
        if r.body.takes_json() {
            errors.push((400, "The body is not JSON"));
            errors.push((413, "Body over serve.body_limit_bytes, or more rows than serve.max_batch"));
            errors.push((415, "Not application/json"));
        }
        if r.method != "GET" {
            errors.push((403, "A cross-site write (Origin or Sec-Fetch-Site), or the key lacks the scope"));
        }
        for (code, what) in errors {
            let schema = if code == 422 && r.body.takes_json() && r.path != "/v1/experiments" {
                json!({"anyOf": [rejected.clone(), error.clone()]})
            } else {
                error.clone()
            };
            responses.entry(code.to_string()).or_insert_with(|| error_response(what, schema));
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{} {}", r.method, r.path),
            "parameters": params,
            "responses": responses,
        });
        if let Some(scope) = r.scope {
            let name = match scope {
                Scope::Read => "read",
                Scope::Write => "write",
                Scope::Admin => "admin",
            };
            op["security"] = json!([{"apiKey": []}, {"bearer": []}]);
            op["x-scope"] = json!(name);
        }
        match r.body {
            Body::None => {}
            Body::Json(schema) | Body::OptionalJson(schema) => {
                let s = schema(&mut g).to_value();
                op["requestBody"] = json!({
                    "required": matches!(r.body, Body::Json(_)),
                    "content": {"application/json": {"schema": s}},
                });
            }
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    configured_bounds(&mut schemas, ctx);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tailor",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Personalization engine for e-commerce: events, catalog, recommendations, segments, experiments.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer"}
            },
            "schemas": schemas,
        }
    });
    strip_markers(&mut doc, ctx);
    doc
}

fn describe(code: u16) -> &'static str {
    match code {
        400 => "Malformed request",
        404 => "Not found",
        409 => "Conflicts with the current state",
        422 => "Invalid values (the field is named), or an unknown query parameter",
        503 => "Not ready (no model yet), the store is unavailable, or the request outlasted serve.timeout_ms",
        _ => "Error",
    }
}

/// Sets every `maximum` inside `v` to `max`.
fn set_maximum(v: &mut Value, max: f64) {
    match v {
        Value::Object(o) => {
            if o.contains_key("maximum") {
                o.insert("maximum".into(), json!(max));
            }
            o.values_mut().for_each(|x| set_maximum(x, max));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| set_maximum(x, max)),
        _ => {}
    }
}

/// The configured limits in the schemas of what requests send (events, items and their
/// patches), and the clock's bound on event times.
fn configured_bounds(schemas: &mut Map<String, Value>, ctx: &Context<'_>) {
    let l = &ctx.config.limits;
    for (name, props) in [
        ("EventIn", &["unit_price"][..]),
        ("Event", &["unit_price"][..]),
        ("Item", &["price", "sale_price"][..]),
        ("ItemPatch", &["price", "sale_price"][..]),
    ] {
        for p in props {
            if let Some(v) = schemas.get_mut(name).and_then(|s| s.pointer_mut(&format!("/properties/{p}"))) {
                set_maximum(v, l.max_unit_price);
            }
        }
    }
    for name in ["EventIn", "Event"] {
        if let Some(v) = schemas.get_mut(name).and_then(|s| s.pointer_mut("/properties/quantity")) {
            set_maximum(v, f64::from(l.max_quantity));
        }
        if let (Some(now), Some(v)) = (ctx.now, schemas.get_mut(name).and_then(|s| s.pointer_mut("/properties/ts"))) {
            *v = tailor_core::schema::timestamp_between(0, l.latest_accepted(now).0 + 1).to_value();
        }
    }
}

/// Replaces the placeholders the route table leaves: the batch size, and the catalog's
/// names where a parameter takes them.
fn strip_markers(v: &mut Value, ctx: &Context<'_>) {
    match v {
        Value::Object(o) => {
            if o.remove("x-tailor-max").is_some() {
                o.insert("maxItems".into(), json!(ctx.config.max_batch));
            }
            dynamic_values(v, ctx);
            if let Value::Object(o) = v {
                o.values_mut().for_each(|x| strip_markers(x, ctx));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip_markers(x, ctx)),
        _ => {}
    }
}

/// A comma-separated list of the catalog's names: a pattern of exactly those names.
fn dynamic_values(v: &mut Value, ctx: &Context<'_>) {
    let Value::Object(o) = v else { return };
    let names = match o.remove("x-tailor-values").as_ref().and_then(Value::as_str) {
        Some("categories") => ctx.categories,
        Some("brands") => ctx.brands,
        _ => return,
    };
    if let Some(names) = names.filter(|n| !n.is_empty()) {
        let one = names.iter().map(|n| regex_escape(n)).collect::<Vec<_>>().join("|");
        o.insert("pattern".into(), json!(format!("^({one})(,({one}))*$")));
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.|?*+()[]{}/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
