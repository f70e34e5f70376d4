//! API errors: one type, one mapping to status codes, one JSON shape
//! (`{"error": {"code", "message", "field"}}`). Every crate's error implements
//! [`tailor_core::Classified`] and converts with the one blanket `From` here; a 5xx is
//! logged once, with its cause, by the `guard` middleware (the body never shows the cause).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tailor_core::{Classified, ErrorKind};

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
    /// The cause of an internal error: logged and shown by `Display`, never sent.
    pub cause: Option<String>,
}

/// The cause of a 5xx answer, left in the response's extensions for the middleware that
/// logs it.
#[derive(Debug, Clone)]
pub struct Cause(pub String);

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
        Self { status, code, message: message.into(), field: None, retry_after: None, cause: None }
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

    /// 409: the current state does not allow the request.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: not ready (no model yet, store unavailable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 without internals in the body (the cause is logged when it is answered).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
        }
    }

    /// The status and code of a library error kind: the one exhaustive mapping.
    pub fn from_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::User => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            ErrorKind::NotFound => Self::not_found(message),
            ErrorKind::Conflict => Self::conflict(message),
            ErrorKind::Unavailable => Self::unavailable(message),
            ErrorKind::Internal => Self::internal(message),
        }
    }
}

impl std::fmt::Display for ApiError {
    /// The message (the cause, for an internal error), and the field at fault when there
    /// is one: for logs and the CLI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(cause) = &self.cause {
            return f.write_str(cause);
        }
        match &self.field {
            Some(field) if !self.message.contains(field.as_str()) => write!(f, "{} (field {field})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

/// Any crate's error: its kind decides the status, its field is named.
impl<E: Classified> From<E> for ApiError {
    fn from(e: E) -> Self {
        let kind = e.kind();
        let mut out = Self::from_kind(kind, e.to_string());
        if let Some(field) = e.field() {
            out.field = Some(field.to_string());
            if kind == ErrorKind::User {
                out.code = "invalid_field";
            }
        }
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.code, message: &self.message, field: self.field.as_deref() } };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s));
        }
        if self.status.is_server_error() {
            r.extensions_mut().insert(Cause(self.cause.unwrap_or(self.message)));
        }
        r
    }
}

/// Errors of the server's parts that know nothing of HTTP: the model registry, training,
/// the live state. Handlers turn them into [`ApiError`]s with `?`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tailor_store::StoreError),
    /// A model could not be fitted.
    #[error("training: {0}")]
    Model(#[from] tailor_recommend::RecommendError),
    /// A file of the model registry cannot be read or written.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
    /// The training thread panicked in a job or has stopped.
    #[error("the training thread: {0}")]
    Trainer(String),
}

impl Classified for ServerError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            // Parameters were validated with the configuration: a failing fit is ours.
            Self::Model(_) | Self::File { .. } | Self::Trainer(_) => ErrorKind::Internal,
        }
    }
}

/// Result with [`ServerError`].
pub type ServerResult<T> = Result<T, ServerError>;

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
        // An internal error shows its cause to logs and the CLI, never to clients.
        let e = ApiError::internal("disk full");
        assert_eq!((e.to_string().as_str(), e.message.as_str()), ("disk full", "internal error; see the server log"));
    }

    #[test]
    fn crate_errors_convert_by_kind_and_field() {
        let e = ApiError::from(tailor_core::CoreError::invalid("price", "must be finite"));
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", Some("price"))
        );
        let e = ApiError::from(tailor_experiment::ExperimentError::Conflict("stopped".into()));
        assert_eq!((e.status, e.code, e.field), (StatusCode::CONFLICT, "conflict", None));
        let e = ApiError::from(tailor_experiment::ExperimentError::Undefined("no observations".into()));
        assert_eq!((e.status, e.code), (StatusCode::UNPROCESSABLE_ENTITY, "invalid"));
    }
}
