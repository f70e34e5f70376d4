//! API errors: one type, one mapping to status codes, one JSON shape
//! (`{"error": {"code", "message", "field"}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tailor_core::ErrorKind;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`not_found`, `invalid_field`...).
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Tells the client when to retry.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400: malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422: well-formed but invalid values.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 503: not ready (no model yet, store unavailable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 without internals in the body (they are logged).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }

    /// The status and code of a library error kind: the one exhaustive mapping.
    pub fn from_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::User => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            ErrorKind::NotFound => Self::not_found(message),
            ErrorKind::Conflict => Self::new(StatusCode::CONFLICT, "conflict", message),
            ErrorKind::Unavailable => Self::unavailable(message),
            ErrorKind::Internal => Self::internal(message),
        }
    }
}

impl std::fmt::Display for ApiError {
    /// The message, and the field at fault when there is one (for logs and the CLI).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) if !self.message.contains(field.as_str()) => write!(f, "{} (field {field})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<tailor_store::StoreError> for ApiError {
    fn from(e: tailor_store::StoreError) -> Self {
        Self::from_kind(e.kind(), e.to_string())
    }
}

impl From<tailor_core::CoreError> for ApiError {
    fn from(e: tailor_core::CoreError) -> Self {
        Self { field: Some(e.field().to_string()), ..Self::from_kind(e.kind(), e.to_string()) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.code, message: &self.message, field: self.field.as_deref() } };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s));
        }
        r
    }
}

/// Result with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_a_std_error_that_names_its_field() {
        let e = ApiError::invalid("unit_price", "must be at most 1000000");
        assert_eq!(e.to_string(), "must be at most 1000000 (field unit_price)");
        // A message that already names the field does not name it twice.
        let e = ApiError::invalid("k", "k must be at least 1");
        assert_eq!(e.to_string(), "k must be at least 1");
        let any: Box<dyn std::error::Error + Send + Sync> =
            Box::new(ApiError::not_found("item \"x\" is not in the catalog"));
        assert_eq!(any.to_string(), "item \"x\" is not in the catalog");
    }
}
