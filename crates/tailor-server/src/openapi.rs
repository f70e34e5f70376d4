//! The OpenAPI 3 document, generated from [`crate::routes::ROUTES`] (a test checks that the
//! committed `docs/openapi.json` equals it).

use serde_json::{Map, Value, json};

use crate::config::Scope;
use crate::routes::ROUTES;

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut params: Vec<Value> = Vec::new();
        let mut rest = r.path;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else { break };
            let name = &rest[open + 1..open + close];
            params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            rest = &rest[open + close + 1..];
        }
        for (name, description) in r.query {
            params.push(json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}}));
        }
        let mut responses = Map::new();
        responses.insert("200".into(), json!({"description": "OK", "content": {"application/json": {}}}));
        if r.method == "POST" && r.path == "/v1/events" {
            responses.insert("202".into(), json!({"description": "Stored durably"}));
            responses.insert("413".into(), json!({"description": "Too many rows", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        for (code, what) in [
            ("400", "Malformed request"),
            ("422", "Invalid values"),
            ("404", "Not found"),
            ("429", "Rate limited"),
            ("503", "Not ready"),
        ] {
            responses.insert(code.into(), json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
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
            op["security"] = json!([{"apiKey": [name]}, {"bearer": [name]}]);
            op["x-scope"] = json!(name);
            op["responses"]["401"] = json!({"description": "Missing or unknown API key"});
            op["responses"]["403"] = json!({"description": "The key lacks the scope"});
        }
        if matches!(r.method, "POST" | "PUT") {
            op["requestBody"] = json!({"required": r.path != "/v1/sessions/{id}/recommendations", "content": {"application/json": {"schema": {}}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "tailor", "version": env!("CARGO_PKG_VERSION"), "description": "Personalization engine for e-commerce: events, catalog, recommendations, segments."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "object", "properties": {
                        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}
                    }, "required": ["code", "message"]}}
                }
            }
        }
    })
}
