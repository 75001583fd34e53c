//! modelyard's routing core: picks the model with the lowest expected cost per success for each
//! step of a coding agent's job. Pure: time and seeds are arguments; no I/O, no logging.
//!
//! Table of contents (one concept per file):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

/// Arms and the table that stores them.
pub mod arm;
/// Circuit breakers per model and provider.
pub mod breaker;
/// Catalog JSON: parsing and validation.
pub mod catalog;
/// Hard constraints and their names.
pub mod constraints;
/// The routing decision itself.
pub mod decide;
/// Result types: Decision, Candidate, ArmStats, Event.
pub mod decision;
/// Drift detection.
pub mod drift;
/// The error type.
pub mod error;
/// Human-readable reasons.
pub mod explain;
/// String interning.
pub mod intern;
/// Per-job routing memory (stickiness, failures and their efforts), shared by both fronts.
pub mod jobs;
/// Hierarchical shrinkage of P(success).
pub mod prior;
/// A routing request.
pub mod request;
/// Roles and outcome statuses.
pub mod role;
/// The thread-safe core: state, locking, learning.
pub mod router;
/// Estimates and the score.
pub mod score;
/// Snapshot encoding, restore and merge.
pub mod snapshot;
/// Discounted sufficient statistics.
pub mod stats;

/// Python bindings (`modelyard._core`), only with the `python` feature.
#[cfg(feature = "python")]
mod bindings;
/// The Rust gRPC front: Route served natively over the same core, the rest forwarded.
#[cfg(feature = "front")]
pub mod front;

pub use catalog::Catalog;
pub use decision::{ArmStats, Candidate, Decision, Event};
pub use error::CoreError;
pub use request::Request;
pub use role::{Role, Status};
pub use router::{Core, Learn, Report};
