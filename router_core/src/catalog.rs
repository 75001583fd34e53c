//! The catalog: models with prices and priors plus routing policy, parsed strictly then validated.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Deserialize;

use crate::error::{non_negative, CoreError, Result};
use crate::prior::{catalog_prior, Beta};
use crate::role::Role;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    #[serde(default)]
    provider: String,
    #[serde(default = "default_tier")]
    tier: u32,
    price_in: f64,
    #[serde(default)]
    price_cached_in: Option<f64>,
    price_out: f64,
    #[serde(default = "default_context_window")]
    context_window: u64,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    provenance: Vec<String>,
    #[serde(default = "default_prior_success")]
    prior_success: f64,
    #[serde(default = "default_prior_strength")]
    prior_strength: f64,
    #[serde(default = "default_first_token_ms")]
    latency_first_token_ms: f64,
    #[serde(default = "default_tokens_per_s")]
    output_tokens_per_s: f64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    models: Vec<RawModel>,
    #[serde(default)]
    routing: RawRouting,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRouting {
    half_life_s: f64,
    explore: bool,
    job_credit_weight: f64,
    escalation: BTreeMap<String, Escalation>,
    breaker: BreakerPolicy,
    drift: DriftPolicy,
}

impl Default for RawRouting {
    fn default() -> Self {
        Self {
            half_life_s: 604_800.0,
            explore: true,
            job_credit_weight: 0.5,
            escalation: BTreeMap::new(),
            breaker: BreakerPolicy::default(),
            drift: DriftPolicy::default(),
        }
    }
}

/// `routing.escalation[role]`: once a job has failed `after_failures` times, only tier ≥ `min_tier`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after_failures: u32,
    pub min_tier: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    pub failures_to_open: u32,
    pub open_s: f64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_s: 30.0,
        }
    }
}

/// Drift test knobs; the defaults suit "the last ~20 outcomes moved by 20 points".
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DriftPolicy {
    pub enabled: bool,
    pub window: f64,
    pub margin: f64,
    pub z: f64,
    /// After a drift, the older evidence is cut to this many windows' worth (the window's own
    /// outcomes are kept whole).
    pub keep_old: f64,
    /// Also test each (model, role) level, which sees every class's outcomes; a drift found
    /// there forgets old evidence at the model, the (model, role) and all its class arms.
    pub pooled: bool,
}

impl Default for DriftPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            window: 10.0,
            margin: 0.2,
            z: 3.0,
            keep_old: 0.25,
            pooled: true,
        }
    }
}

fn default_tier() -> u32 {
    1
}
fn default_context_window() -> u64 {
    128_000
}
fn default_prior_success() -> f64 {
    0.5
}
fn default_prior_strength() -> f64 {
    2.0
}
fn default_first_token_ms() -> f64 {
    1_000.0
}
fn default_tokens_per_s() -> f64 {
    50.0
}

/// A set of small tag ids as a bitset: ids < 64 inline, the rest in `more` (rarely allocated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSet {
    low: u64,
    more: Vec<u64>,
}

impl TagSet {
    pub fn insert(&mut self, id: u32) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word == 0 {
            self.low |= 1 << bit;
        } else {
            if self.more.len() < word {
                self.more.resize(word, 0);
            }
            self.more[word - 1] |= 1 << bit;
        }
    }

    /// Whether every tag of `need` is in `self`.
    #[inline]
    pub fn contains_all(&self, need: &TagSet) -> bool {
        need.low & !self.low == 0
            && need
                .more
                .iter()
                .enumerate()
                .all(|(i, w)| w & !self.more.get(i).copied().unwrap_or(0) == 0)
    }
}

/// One validated model. `key` is its index in the core's model interner (stable across reloads).
/// The fields after `output_tokens_per_s` are precomputed once per catalog for the hot path.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    pub key: u32,
    pub provider: String,
    pub provider_key: Option<u32>,
    pub tier: u32,
    pub price_in: f64,
    pub price_cached_in: f64,
    pub price_out: f64,
    pub context_window: u64,
    pub capabilities: TagSet,
    pub provenance: TagSet,
    pub prior_success: f64,
    pub prior_strength: f64,
    pub latency_first_token_ms: f64,
    pub output_tokens_per_s: f64,
    /// Beta prior from `prior_success` and `prior_strength`.
    pub prior: Beta,
    /// USD per token (prices / 1e6).
    pub usd_in: f64,
    pub usd_cached_in: f64,
    pub usd_out: f64,
    /// 1000 / output_tokens_per_s.
    pub ms_per_output_token: f64,
}

/// Routing policy shared by every decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub half_life_s: f64,
    pub explore: bool,
    pub job_credit_weight: f64,
    /// Indexed by role number (0..=6); `None` when the role has no escalation rule.
    pub escalation: [Option<Escalation>; 7],
    pub breaker: BreakerPolicy,
    pub drift: DriftPolicy,
}

/// A validated, immutable catalog; swapped whole on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    pub models: Vec<ModelSpec>,
    pub policy: Policy,
    /// Model id → position in `models`.
    pub by_id: FxHashMap<String, usize>,
    /// Capability and provenance tag → small id (one namespace; tags never collide in meaning).
    pub tags: FxHashMap<String, u32>,
    pub providers: Vec<String>,
    /// Model ids in catalog order, shared with decisions (which name models by position).
    pub ids: Arc<[String]>,
}

impl Catalog {
    /// Parses and validates catalog JSON. `intern` maps a model id to its stable key.
    pub fn parse(json: &str, mut intern: impl FnMut(&str) -> u32) -> Result<Self> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let raw: RawCatalog = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            CoreError::field(
                if path == "." {
                    "catalog".to_string()
                } else {
                    path
                },
                e.into_inner(),
            )
        })?;
        let policy = validate_policy(raw.routing)?;
        let mut tags = FxHashMap::default();
        let mut providers: Vec<String> = Vec::new();
        let mut by_id = FxHashMap::default();
        let mut models = Vec::with_capacity(raw.models.len());
        for (i, m) in raw.models.into_iter().enumerate() {
            let f = |name: &str| format!("models[{i}].{name}");
            if m.id.is_empty() {
                return Err(CoreError::field(f("id"), "must not be empty"));
            }
            if by_id.insert(m.id.clone(), i).is_some() {
                return Err(CoreError::field(
                    f("id"),
                    format!("duplicate model id {:?}", m.id),
                ));
            }
            let price_in = non_negative(&f("price_in"), m.price_in)?;
            let price_out = non_negative(&f("price_out"), m.price_out)?;
            let price_cached_in =
                non_negative(&f("price_cached_in"), m.price_cached_in.unwrap_or(price_in))?;
            if !(m.prior_success > 0.0 && m.prior_success < 1.0) {
                let msg = format!("must be in (0, 1), got {}", m.prior_success);
                return Err(CoreError::field(f("prior_success"), msg));
            }
            if !(m.prior_strength.is_finite() && m.prior_strength > 0.0) {
                let msg = format!("must be > 0, got {}", m.prior_strength);
                return Err(CoreError::field(f("prior_strength"), msg));
            }
            if m.context_window == 0 {
                return Err(CoreError::field(f("context_window"), "must be > 0, got 0"));
            }
            let first = non_negative(&f("latency_first_token_ms"), m.latency_first_token_ms)?;
            if !(m.output_tokens_per_s.is_finite() && m.output_tokens_per_s > 0.0) {
                let msg = format!("must be > 0, got {}", m.output_tokens_per_s);
                return Err(CoreError::field(f("output_tokens_per_s"), msg));
            }
            let provider_key = if m.provider.is_empty() {
                None
            } else if let Some(p) = providers.iter().position(|p| *p == m.provider) {
                Some(p as u32)
            } else {
                providers.push(m.provider.clone());
                Some(providers.len() as u32 - 1)
            };
            models.push(ModelSpec {
                key: intern(&m.id),
                capabilities: tag_ids(&mut tags, &m.capabilities),
                provenance: tag_ids(&mut tags, &m.provenance),
                id: m.id,
                provider: m.provider,
                provider_key,
                tier: m.tier,
                price_in,
                price_cached_in,
                price_out,
                context_window: m.context_window,
                prior_success: m.prior_success,
                prior_strength: m.prior_strength,
                latency_first_token_ms: first,
                output_tokens_per_s: m.output_tokens_per_s,
                prior: catalog_prior(m.prior_success, m.prior_strength),
                usd_in: price_in / 1e6,
                usd_cached_in: price_cached_in / 1e6,
                usd_out: price_out / 1e6,
                ms_per_output_token: 1_000.0 / m.output_tokens_per_s,
            });
        }
        let ids = models.iter().map(|m| m.id.clone()).collect();
        Ok(Self {
            models,
            policy,
            by_id,
            tags,
            providers,
            ids,
        })
    }

    /// Decay rate λ (per second) from the half-life.
    pub fn lambda(&self) -> f64 {
        std::f64::consts::LN_2 / self.policy.half_life_s
    }
}

fn tag_ids(tags: &mut FxHashMap<String, u32>, names: &[String]) -> TagSet {
    let mut set = TagSet::default();
    for n in names {
        let next = tags.len() as u32;
        set.insert(*tags.entry(n.clone()).or_insert(next));
    }
    set
}

fn validate_policy(r: RawRouting) -> Result<Policy> {
    if !(r.half_life_s.is_finite() && r.half_life_s > 0.0) {
        let msg = format!("must be > 0, got {}", r.half_life_s);
        return Err(CoreError::field("routing.half_life_s", msg));
    }
    let job_credit_weight = non_negative("routing.job_credit_weight", r.job_credit_weight)?;
    let mut escalation = [None; 7];
    for (key, rule) in r.escalation {
        let role = key
            .parse::<i64>()
            .ok()
            .and_then(|n| Role::from_number(n).ok())
            .ok_or_else(|| {
                CoreError::field(
                    format!("routing.escalation.{key}"),
                    "key must be a role number 1..6",
                )
            })?;
        escalation[role.index()] = Some(rule);
    }
    if r.breaker.failures_to_open == 0 {
        return Err(CoreError::field(
            "routing.breaker.failures_to_open",
            "must be ≥ 1, got 0",
        ));
    }
    non_negative("routing.breaker.open_s", r.breaker.open_s)?;
    let d = r.drift;
    if !(d.window.is_finite() && d.window >= 2.0) {
        return Err(CoreError::field(
            "routing.drift.window",
            format!("must be ≥ 2, got {}", d.window),
        ));
    }
    if !(d.margin > 0.0 && d.margin < 1.0) {
        return Err(CoreError::field(
            "routing.drift.margin",
            format!("must be in (0, 1), got {}", d.margin),
        ));
    }
    non_negative("routing.drift.z", d.z)?;
    if !(d.keep_old.is_finite() && d.keep_old > 0.0) {
        return Err(CoreError::field(
            "routing.drift.keep_old",
            format!("must be > 0, got {}", d.keep_old),
        ));
    }
    Ok(Policy {
        half_life_s: r.half_life_s,
        explore: r.explore,
        job_credit_weight,
        escalation,
        breaker: r.breaker,
        drift: d,
    })
}
