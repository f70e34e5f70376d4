//! Errors of the experiment crate.

/// What can go wrong defining, assigning or analysing an experiment.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExperimentError {
    /// A definition or an argument is invalid; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field or argument.
        field: String,
        /// Why, and what would be accepted.
        message: String,
    },
    /// A statistic is undefined for these data (e.g. no variance, an empty variant).
    #[error("{0}")]
    Undefined(String),
    /// The experiment's state does not allow the step (stopping a stopped experiment).
    #[error("{0}")]
    Conflict(String),
}

impl ExperimentError {
    /// An invalid field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// The field this error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Undefined(_) | Self::Conflict(_) => None,
        }
    }
}

impl tailor_core::Classified for ExperimentError {
    fn kind(&self) -> tailor_core::ErrorKind {
        match self {
            Self::Invalid { .. } | Self::Undefined(_) => tailor_core::ErrorKind::User,
            Self::Conflict(_) => tailor_core::ErrorKind::Conflict,
        }
    }

    fn field(&self) -> Option<&str> {
        ExperimentError::field(self)
    }
}

/// Result with [`ExperimentError`].
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
