//! The one error type of the core; the bindings turn it into Python's `CoreError(ValueError)`.

use std::fmt;

/// Everything the core can reject: a bad catalog, bad arguments, a bad snapshot.
/// The message always names the offending field so an operator can fix the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    message: String,
}

impl CoreError {
    /// An error about one named field, e.g. `field("models[3].price_out", "must be ≥ 0, got -1")`.
    pub fn field(field: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Self {
            message: format!("{field}: {problem}"),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;

/// Rejects NaN and infinities, the usual way a float argument goes wrong.
pub fn finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CoreError::field(
            field,
            format!("must be finite, got {value}"),
        ))
    }
}

/// Rejects negative or non-finite values.
pub fn non_negative(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(CoreError::field(field, format!("must be ≥ 0, got {value}")))
    }
}
