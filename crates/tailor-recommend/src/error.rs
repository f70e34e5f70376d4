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
    /// A model name or its `key=value` parameters are wrong.
    #[error("{0}")]
    InvalidSpec(String),
}

impl tailor_core::Classified for RecommendError {
    fn kind(&self) -> tailor_core::ErrorKind {
        tailor_core::ErrorKind::User
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidParam { param, .. } => Some(param),
            Self::InvalidData(_) | Self::InvalidSpec(_) => None,
        }
    }
}

/// Result with [`RecommendError`].
pub type Result<T, E = RecommendError> = std::result::Result<T, E>;

pub(crate) fn check(ok: bool, param: &'static str, value: impl ToString, rule: &'static str) -> Result<()> {
    if ok { Ok(()) } else { Err(RecommendError::InvalidParam { param, value: value.to_string(), rule }) }
}

/// Removes `key` from `key=value` pairs and parses it (`default` when absent); the error
/// names the key and the value. The `from_pairs` constructors of the params types use it.
pub fn take_param<T: std::str::FromStr>(
    p: &mut std::collections::HashMap<String, String>,
    key: &str,
    default: T,
) -> std::result::Result<T, String> {
    match p.remove(key) {
        Some(v) => v.parse().map_err(|_| format!("{key}={v}: not a valid value")),
        None => Ok(default),
    }
}
