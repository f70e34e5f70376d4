//! Errors of the segmentation algorithms.

use tailor_core::{Classified, ErrorKind};

/// What went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
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
    /// The data cannot be clustered as asked.
    #[error("invalid data: {0}")]
    InvalidData(String),
}

impl Classified for SegmentError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }

    fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidParam { param, .. } => Some(param),
            Self::InvalidData(_) => None,
        }
    }
}

/// Result with [`SegmentError`].
pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

/// Checks a row-major matrix: `d > 0`, length a multiple of `d`, every value finite.
pub(crate) fn check_matrix(x: &[f64], d: usize) -> Result<usize> {
    if d == 0 {
        return Err(SegmentError::InvalidData("the data has no columns".into()));
    }
    if !x.len().is_multiple_of(d) {
        return Err(SegmentError::InvalidData(format!("{} values do not form rows of {d}", x.len())));
    }
    if let Some(p) = x.iter().position(|v| !v.is_finite()) {
        return Err(SegmentError::InvalidData(format!("row {}, column {} is not a finite number", p / d, p % d)));
    }
    Ok(x.len() / d)
}
