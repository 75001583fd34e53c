//! Roles as numbered in docs/CONTRACTS.md (shared with the proto and the service).

use crate::error::{CoreError, Result};

/// A validated role number 1..=6. Index 0 is reserved for "all roles" pooled arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(u8);

impl Role {
    pub const COUNT: usize = 7;

    pub fn from_number(n: i64) -> Result<Self> {
        if (1..=6).contains(&n) {
            Ok(Self(n as u8))
        } else {
            Err(CoreError::field("role", format!("must be 1..6, got {n}")))
        }
    }

    pub fn number(self) -> u8 {
        self.0
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Outcome of one step as reported by the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failure,
    Error,
    Timeout,
    Cancelled,
}

impl Status {
    pub fn from_number(n: i64) -> Result<Self> {
        Ok(match n {
            1 => Self::Success,
            2 => Self::Failure,
            3 => Self::Error,
            4 => Self::Timeout,
            5 => Self::Cancelled,
            _ => return Err(CoreError::field("status", format!("must be 1..5, got {n}"))),
        })
    }

    /// ERROR and TIMEOUT are what trips the circuit breaker.
    pub fn is_breaker_failure(self) -> bool {
        matches!(self, Self::Error | Self::Timeout)
    }
}
