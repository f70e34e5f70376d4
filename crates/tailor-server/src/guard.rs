//! Who may call what, and how often: the one guard every request of every route passes
//! (cross-site writes, API key and scope, rate limit, query parameters, content type, the
//! one place a failed request is logged), the API keys, and the rate limiter behind a
//! trait, so several nodes can share one (Redis, the cluster issue) where one process
//! keeps its own buckets today.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::config::{ApiKey, Scope, ServeConfig};
use crate::error::{self, ApiError, ApiResult};
use crate::routes;

/// One token per request per key.
pub trait RateLimiter: Send + Sync {
    /// Takes one token from `key`'s bucket; `Err(seconds to wait)` when it is empty.
    fn take(&self, key: &str) -> Result<(), f64>;
}

/// Token buckets in this process's memory: `rate` tokens a second up to `burst` per key
/// (a rate of 0 turns the limit off).
pub struct TokenBuckets {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenBuckets {
    /// Buckets refilled at `rate` per second, holding at most `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }
}

impl RateLimiter for TokenBuckets {
    fn take(&self, key: &str) -> Result<(), f64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / self.rate)
        }
    }
}

/// The API keys and the rate limiter.
pub struct Guard {
    keys: Vec<ApiKey>,
    /// Spends one token per request of a key.
    pub limiter: Box<dyn RateLimiter>,
}

impl Guard {
    /// The guard of a `[serve]` configuration, with in-process token buckets.
    pub fn new(config: &ServeConfig) -> Self {
        Self::with_limiter(config, Box::new(TokenBuckets::new(config.rate_limit_per_second, config.rate_limit_burst)))
    }

    /// The same with another limiter (one shared by several nodes).
    pub fn with_limiter(config: &ServeConfig, limiter: Box<dyn RateLimiter>) -> Self {
        Self { keys: config.api_keys.clone(), limiter }
    }

    /// The name of the key that grants `scope`, `Ok(None)` in open mode (no keys configured).
    pub fn authorize(&self, presented: Option<&str>, scope: Scope) -> ApiResult<Option<String>> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let Some(presented) = presented else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send `Authorization: Bearer KEY` or `X-Api-Key: KEY`",
            ));
        };
        // Compare against every key in constant time, without stopping at a match.
        let mut found: Option<&ApiKey> = None;
        for k in &self.keys {
            if bool::from(k.key.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(k);
            }
        }
        let Some(key) = found else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key"));
        };
        if key.scopes.contains(&Scope::Admin) || key.scopes.contains(&scope) {
            Ok(Some(key.name.clone()))
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("key {:?} lacks the {scope:?} scope this route needs", key.name).to_lowercase(),
            ))
        }
    }
}

/// The one guard every request of every route passes, whatever its method: cross-site
/// writes refused, API key and scope (HEAD needs what GET needs; OPTIONS is only the CORS
/// preflight, answered before this), rate limit, JSON content type, and metrics.
pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let doc = routes::route_for(&method, &route);
    let response = match doc {
        // Unknown routes and methods: the router answers 404 or 405.
        None => next.run(req).await,
        Some(doc) => match state.admit(doc, &req) {
            Err(e) => e.into_response(),
            Ok(()) => next.run(req).await,
        },
    };
    let code = response.status();
    if code.is_server_error() {
        // The one place a 5xx is logged, with its cause (the body only says "see the log").
        let cause = response.extensions().get::<error::Cause>().map_or("no cause recorded", |c| c.0.as_str());
        if code == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%method, %route, status = code.as_u16(), error = cause, "request failed");
        } else {
            tracing::warn!(%method, %route, status = code.as_u16(), error = cause, "request not served");
        }
    }
    let read = doc.is_some_and(|d| d.scope == Some(crate::config::Scope::Read));
    state.alerts.answered(code.is_server_error(), read, start.elapsed());
    let status = code.as_u16().to_string();
    metrics::histogram!("tailor_http_request_duration_seconds", "route" => route.clone(), "method" => method.to_string(), "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

impl AppState {
    /// Whether the request may reach the route's handler (see [`guard`]).
    fn admit(&self, doc: &routes::RouteDoc, req: &Request) -> ApiResult<()> {
        let method = req.method();
        let headers = req.headers();
        let writes = !matches!(*method, Method::GET | Method::HEAD);
        if writes {
            self.same_site_or_allowed(headers)?;
        }
        if let Some(scope) = doc.scope {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let header_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
            // Every credential presented must be the same key: one valid key beside a wrong
            // one is refused, not silently preferred.
            if let (Some(a), Some(b)) = (bearer, header_key)
                && a.trim() != b.trim()
            {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "two different API keys presented (Authorization and X-Api-Key): send one",
                ));
            }
            let presented = bearer.or(header_key).map(str::trim).map(str::to_string).or_else(|| {
                // Browsers' navigator.sendBeacon cannot set headers: events may carry the
                // key in the query string (only events: a write key that pages embed anyway).
                (doc.path == "/v1/events")
                    .then(|| req.uri().query())
                    .flatten()
                    .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
                    .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "key").map(|(_, v)| v))
            });
            let name = self.guard.authorize(presented.as_deref(), scope)?;
            if let Err(wait) = self.guard.limiter.take(name.as_deref().unwrap_or("open")) {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many requests; slow down",
                )
                .retry_after(wait.ceil().max(1.0) as u64));
            }
        }
        check_query(doc, req.uri().query())?;
        if doc.body.takes_json() && has_body(req) {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if essence != "application/json" {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "{} {} takes a JSON body: send Content-Type: application/json (got {})",
                        doc.method,
                        doc.path,
                        if ct.is_empty() { "none".to_string() } else { format!("{ct:?}") }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A state-changing request from a browser must come from this server's own pages or
    /// an origin in `serve.cors_origins`: a page elsewhere cannot make a visitor's browser
    /// write (the keyless demo would otherwise take events, experiments and retrainings
    /// from any site). Requests without `Origin` and `Sec-Fetch-Site` (servers, curl) pass.
    fn same_site_or_allowed(&self, headers: &axum::http::HeaderMap) -> ApiResult<()> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let allowed = |o: &str| self.config.any_origin() || self.config.cors_origins.iter().any(|a| a == o);
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same_origin = |o: &str| host.is_some_and(|h| o.split_once("://").is_some_and(|(_, rest)| rest == h));
        let ok = match (origin, fetch_site) {
            (Some(o), _) if o != "null" && (same_origin(o) || allowed(o)) => true,
            (Some(_), _) => false,
            (None, Some("cross-site" | "same-site")) => false,
            (None, _) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                format!(
                    "cross-site request from origin {} refused: list the shop's origin in serve.cors_origins",
                    origin.unwrap_or("(not sent)")
                ),
            ))
        }
    }
}

/// Every query parameter against the route's table: known (pages take any; the
/// recommendation routes take `attr.KEY` filters too), of its kind, and the required ones
/// present. 422 names the parameter.
fn check_query(doc: &routes::RouteDoc, raw: Option<&str>) -> ApiResult<()> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
    // Pages opened in a browser take whatever a link adds (tracking parameters, a key).
    if matches!(doc.reply, routes::Reply::Content(_)) {
        return Ok(());
    }
    for (k, v) in &pairs {
        match doc.query.iter().find(|p| p.name == k) {
            Some(p) => p.kind.check(v).map_err(|why| ApiError::invalid(k.clone(), format!("{k}: {why}")))?,
            None if doc.path.ends_with("/recommendations") && k.starts_with("attr.") && k.len() > 5 => {
                routes::Kind::Text(4096).check(v).map_err(|why| ApiError::invalid(k.clone(), format!("{k}: {why}")))?
            }
            None => {
                let known: Vec<&str> = doc.query.iter().map(|p| p.name).collect();
                let takes = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                return Err(ApiError::invalid(
                    k.clone(),
                    format!("unknown query parameter {k:?} for {} {} (it takes: {takes})", doc.method, doc.path),
                ));
            }
        }
    }
    for p in doc.query.iter().filter(|p| p.required) {
        if !pairs.iter().any(|(k, _)| k == p.name) {
            return Err(ApiError::invalid(p.name, format!("{}=... is required ({})", p.name, p.description)));
        }
    }
    Ok(())
}

/// Whether a request may carry a body (anything but a known empty one).
fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody;
    req.body().size_hint().upper() != Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate_and_hold_the_burst() {
        let b = TokenBuckets::new(10.0, 2.0);
        assert_eq!((b.take("a"), b.take("a")), (Ok(()), Ok(())));
        let wait = b.take("a").expect_err("empty");
        assert!(wait > 0.0 && wait <= 0.1 + 1e-9, "{wait}");
        assert_eq!(b.take("b"), Ok(()), "keys have their own buckets");
        assert_eq!(TokenBuckets::new(0.0, 1.0).take("a"), Ok(()), "rate 0: no limit");
    }
}
