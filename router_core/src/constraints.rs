//! Hard constraints, checked before any scoring. Each exclusion names its constraint.

use crate::catalog::{Catalog, ModelSpec, TagSet};
use crate::request::Request;
use crate::score::Estimate;

/// Why a model was excluded; `name()` is the string the service and the explanations use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Constraint {
    Capabilities,
    ContextWindow,
    Allowed,
    Denied,
    Provenance,
    CircuitOpen,
    FailedEarlier,
    MinTier,
    MaxCost,
    Budget,
    MaxLatency,
    MinSuccess,
}

impl Constraint {
    pub fn name(self) -> &'static str {
        match self {
            Self::Capabilities => "capabilities",
            Self::ContextWindow => "context_window",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Provenance => "provenance",
            Self::CircuitOpen => "circuit_open",
            Self::FailedEarlier => "failed_earlier",
            Self::MinTier => "min_tier",
            Self::MaxCost => "max_cost",
            Self::Budget => "budget",
            Self::MaxLatency => "max_latency",
            Self::MinSuccess => "min_success",
        }
    }
}

/// A set of catalog positions (bitset; no allocation when built from an empty list).
#[derive(Debug, Default)]
pub struct IdxSet(Vec<u64>);

impl IdxSet {
    fn of(catalog: &Catalog, ids: &[String]) -> Self {
        let mut words = Vec::new();
        for i in ids.iter().filter_map(|id| catalog.by_id.get(id.as_str())) {
            if words.len() <= i / 64 {
                words.resize(i / 64 + 1, 0);
            }
            words[i / 64] |= 1u64 << (i % 64);
        }
        Self(words)
    }

    #[inline]
    fn contains(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }
}

/// Request parts resolved against one catalog once per decision (names → ids and bitsets).
pub struct Resolved {
    /// `None` when a required tag is unknown to every model, so nobody can satisfy it.
    capabilities: Option<TagSet>,
    provenance: Option<TagSet>,
    /// `None` when the allow list is empty (everything allowed).
    allowed: Option<IdxSet>,
    denied: IdxSet,
    /// Models excluded as failed earlier (empty on a first attempt).
    failed: IdxSet,
    /// Tokens the step needs in the context window.
    window_need: u64,
    /// Escalation floor for this role, when the job has failed often enough.
    pub min_tier: Option<u32>,
}

impl Resolved {
    pub fn new(catalog: &Catalog, req: &Request) -> Self {
        let tags = |names: &[String]| {
            let mut set = TagSet::default();
            for n in names {
                set.insert(*catalog.tags.get(n.as_str())?);
            }
            Some(set)
        };
        let min_tier = catalog.policy.escalation[req.role.index()]
            .filter(|e| req.job_failures >= e.after_failures)
            .map(|e| e.min_tier);
        Self {
            capabilities: tags(&req.capabilities),
            provenance: tags(&req.provenance),
            allowed: (!req.allowed.is_empty()).then(|| IdxSet::of(catalog, &req.allowed)),
            denied: IdxSet::of(catalog, &req.denied),
            failed: if req.attempt > 1 {
                IdxSet::of(catalog, &req.failed_models)
            } else {
                IdxSet::default()
            },
            window_need: req
                .min_context
                .max(req.est_input_tokens.saturating_add(req.est_output_tokens)),
            min_tier,
        }
    }
}

fn has_all(have: &TagSet, need: Option<&TagSet>) -> bool {
    need.is_some_and(|need| have.contains_all(need))
}

/// Constraints that need no estimate, in the order they are reported. `idx` is the catalog
/// position of `spec`.
#[inline]
pub fn static_exclusion(
    idx: usize,
    spec: &ModelSpec,
    res: &Resolved,
    breaker_open: bool,
) -> Option<Constraint> {
    if !has_all(&spec.capabilities, res.capabilities.as_ref()) {
        Some(Constraint::Capabilities)
    } else if res.window_need > spec.context_window {
        Some(Constraint::ContextWindow)
    } else if res.allowed.as_ref().is_some_and(|a| !a.contains(idx)) {
        Some(Constraint::Allowed)
    } else if res.denied.contains(idx) {
        Some(Constraint::Denied)
    } else if !has_all(&spec.provenance, res.provenance.as_ref()) {
        Some(Constraint::Provenance)
    } else if breaker_open {
        Some(Constraint::CircuitOpen)
    } else if res.failed.contains(idx) {
        Some(Constraint::FailedEarlier)
    } else if res.min_tier.is_some_and(|t| spec.tier < t) {
        Some(Constraint::MinTier)
    } else {
        None
    }
}

/// Constraints on the estimates (checked only for models that passed the static ones).
#[inline]
pub fn estimate_exclusion(req: &Request, est: &Estimate) -> Option<Constraint> {
    if req.max_cost_usd.is_some_and(|m| est.cost_usd > m) {
        Some(Constraint::MaxCost)
    } else if req.budget_cap_usd.is_some_and(|b| est.cost_usd > b) {
        Some(Constraint::Budget)
    } else if req.max_latency_ms.is_some_and(|m| est.latency_ms > m) {
        Some(Constraint::MaxLatency)
    } else if req.min_success.is_some_and(|m| est.p_mean < m) {
        Some(Constraint::MinSuccess)
    } else {
        None
    }
}

/// A human sentence for an exclusion (built only when explaining).
pub fn describe(
    c: Constraint,
    spec: &ModelSpec,
    req: &Request,
    res: &Resolved,
    est: &Estimate,
) -> String {
    match c {
        Constraint::Capabilities => {
            format!(
                "{} lacks a required capability of {:?}",
                spec.id, req.capabilities
            )
        }
        Constraint::ContextWindow => format!(
            "{} has a {}-token window; the step needs {} (min_context {}, est. {} in + {} out)",
            spec.id,
            spec.context_window,
            req.min_context
                .max(req.est_input_tokens + req.est_output_tokens),
            req.min_context,
            req.est_input_tokens,
            req.est_output_tokens
        ),
        Constraint::Allowed => format!("{} is not in the allow list", spec.id),
        Constraint::Denied => format!("{} is in the deny list", spec.id),
        Constraint::Provenance => {
            format!(
                "{} lacks a required provenance tag of {:?}",
                spec.id, req.provenance
            )
        }
        Constraint::CircuitOpen => format!(
            "the circuit breaker of {} (provider {:?}) is open after repeated errors",
            spec.id, spec.provider
        ),
        Constraint::FailedEarlier => format!("{} already failed this step", spec.id),
        Constraint::MinTier => format!(
            "{} is tier {}; after {} job failures this role needs tier ≥ {}",
            spec.id,
            spec.tier,
            req.job_failures,
            res.min_tier.unwrap_or(0)
        ),
        Constraint::MaxCost => format!(
            "{} expected cost ${:.6} exceeds max_cost ${:.6}",
            spec.id,
            est.cost_usd,
            req.max_cost_usd.unwrap_or(0.0)
        ),
        Constraint::Budget => format!(
            "{} expected cost ${:.6} exceeds the remaining budget ${:.6}",
            spec.id,
            est.cost_usd,
            req.budget_cap_usd.unwrap_or(0.0)
        ),
        Constraint::MaxLatency => format!(
            "{} expected latency {:.0} ms exceeds max_latency {:.0} ms",
            spec.id,
            est.latency_ms,
            req.max_latency_ms.unwrap_or(0.0)
        ),
        Constraint::MinSuccess => format!(
            "{} success probability {:.3} is below min_success {:.3}",
            spec.id,
            est.p_mean,
            req.min_success.unwrap_or(0.0)
        ),
    }
}
