//! Errors of the domain model.

/// How a caller should treat an error (maps to HTTP status codes and exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong; the caller can fix it.
    User,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// A resource is temporarily unavailable; retrying may help.
    Unavailable,
    /// A bug or an unexpected failure inside tailor.
    Internal,
}

/// What every crate's error tells its caller: how to treat it, and which input field it is
/// about when it is about one. The server turns any `Classified` error into its HTTP
/// answer with one blanket `From` (`tailor_server::ApiError`); the CLI turns the kind into
/// an exit code.
pub trait Classified: std::error::Error + Send + Sync + 'static {
    /// How a caller should treat the error.
    fn kind(&self) -> ErrorKind;
    /// The input field at fault (`price`, `context.device`, `serve.exclude`), if one is.
    fn field(&self) -> Option<&str> {
        None
    }
}

/// An invalid value in a domain object, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// A field holds a value that breaks a rule.
    #[error("{field}: {reason}")]
    Invalid {
        /// Field name as users write it (`price`, `context.device`).
        field: &'static str,
        /// Why the value is refused.
        reason: String,
    },
}

impl CoreError {
    /// [`CoreError::Invalid`] naming `field` and why its value was refused.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }

    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Invalid { field, .. } => field,
        }
    }
}

impl Classified for CoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::User,
        }
    }

    fn field(&self) -> Option<&str> {
        Some(CoreError::field(self))
    }
}

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
