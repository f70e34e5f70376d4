//! Errors of the recommendation models.

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecommendError {
    /// A parameter breaks its rule.
    #[error("invalid parameter {param} = {value}: {rule}")]
    InvalidParam {
        /// Parameter name.
        param: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The data cannot be used as asked.
    #[error("invalid data: {0}")]
    InvalidData(String),
}

/// Result with [`RecommendError`].
pub type Result<T, E = RecommendError> = std::result::Result<T, E>;

pub(crate) fn check(ok: bool, param: &'static str, value: impl ToString, rule: &'static str) -> Result<()> {
    if ok { Ok(()) } else { Err(RecommendError::InvalidParam { param, value: value.to_string(), rule }) }
}
