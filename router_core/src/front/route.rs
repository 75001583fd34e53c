//! Route in Rust: the Python service's `routing.route` on its common path, over the same core,
//! store file and job tracker.
//!
//! Only the path where every check passes is served here. Whatever would end in an error (a bad
//! field, an unknown key, an exhausted budget, no eligible model) or needs what only the Python
//! side keeps (a replayed request_id, a retry of a job this replica has no memory of, a tenant
//! whose core is not yet created) is `Delegate`d: the server forwards the untouched request to
//! the Python server, which answers it exactly as it would without the front. So the error
//! messages, replays and store fallbacks have one implementation; what is here must give the same
//! answer as `routing._route` + `_reserve` for the requests it accepts (the service tests run on
//! both fronts to hold it to that).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;

use super::config::{FrontConfig, Limits, Policy, Tenant};
use super::pb;
use super::store::{self, NewDecision, Usage};
use super::{Front, Store};
use crate::{Core, Request, Role};

const MAX_ID: usize = 128;
const MAX_TOKENS: i64 = 10_000_000;
const MAX_LIST: usize = 256;
const MAX_USD: f64 = 100_000.0;
const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// The core's floor on P(success) (score.rs MIN_SUCCESS_PROBABILITY, convert.py MIN_P).
const MIN_P: f64 = 1e-6;
/// policy.py NOTHING_ALLOWED: an allow list nothing satisfies.
const NOTHING_ALLOWED: &str = "(no model is in both the request's and the policy's allow lists)";

pub enum Outcome {
    /// The encoded RouteDecision.
    Answer(Vec<u8>),
    /// Forward the request to the Python server, which answers it.
    Delegate(&'static str),
}

/// What a served Route tells telemetry and the stats.
#[derive(Debug, Clone)]
pub struct Routed {
    pub tenant: String,
    pub key_id: String,
    pub role: i32,
    pub task_class: String,
    pub job_id: String,
    pub attempt: i64,
    pub decision_id: String,
    /// The chosen model: id, provider, upstream name; then the fallbacks' ids.
    pub model: (String, String, String),
    pub fallbacks: Vec<String>,
    pub cost_usd: f64,
    pub success_probability: f64,
    pub latency_ms: f64,
    pub exploration: bool,
    pub sticky: bool,
    pub budget_remaining_usd: f64,
    pub reserved_usd: f64,
    /// (scope, subject, window, remaining USD where the window has a limit).
    pub budgets: Vec<(&'static str, String, i64, Option<f64>)>,
    /// Set by the server: when the call arrived (Unix ns), how long it took, its W3C traceparent.
    pub start_unix_ns: u64,
    pub duration_ns: u64,
    pub traceparent: Option<String>,
    /// Seconds in the routing core, and in the store's transaction besides it (telemetry's
    /// core and store latency histograms).
    pub core_s: f64,
    pub store_s: f64,
}

/// A field the Python validation would accept: non-empty (when required), at most 128
/// characters, printable. Only printable ASCII is accepted here; anything else goes to Python,
/// whose `str.isprintable` is the rule.
fn ok_id(s: &str, required: bool) -> bool {
    (!required || !s.is_empty())
        && s.len() <= MAX_ID
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn ok_names(v: &[String]) -> bool {
    v.len() <= MAX_LIST && v.iter().all(|s| ok_id(s, true))
}

fn ok_tokens(v: i64) -> bool {
    (0..=MAX_TOKENS).contains(&v)
}

fn ok_number(v: Option<f64>, upper: f64) -> bool {
    v.map_or(true, |x| x.is_finite() && (0.0..=upper).contains(&x))
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a.min(b)),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(a.max(b)),
    }
}

fn dedup_concat(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(a.len() + b.len());
    for s in a.iter().chain(b) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// policy.py `narrow`: the operator's policy narrows the request and never widens it.
fn narrow(req: &pb::Constraints, policy: &Policy) -> Policy {
    let mut allowed = req.allowed_models.clone();
    if !policy.allowed_models.is_empty() {
        let base = if allowed.is_empty() {
            &policy.allowed_models
        } else {
            &allowed
        };
        allowed = base
            .iter()
            .filter(|m| policy.allowed_models.contains(m))
            .cloned()
            .collect();
        if allowed.is_empty() {
            allowed = vec![NOTHING_ALLOWED.to_owned()];
        }
    }
    Policy {
        max_cost_usd: min_opt(req.max_cost_usd, policy.max_cost_usd),
        max_latency_ms: min_opt(req.max_latency_ms, policy.max_latency_ms),
        min_success_probability: max_opt(
            req.min_success_probability,
            policy.min_success_probability,
        ),
        allowed_models: allowed,
        denied_models: dedup_concat(&req.denied_models, &policy.denied_models),
        required_provenance: dedup_concat(&req.required_provenance, &policy.required_provenance),
    }
}

/// budget.py `usd_to_micros`: Python's round(), ties to even.
fn usd_to_micros(usd: f64) -> i64 {
    (usd * 1_000_000.0).round_ties_even() as i64
}

fn micros_to_usd(m: i64) -> f64 {
    m as f64 / 1_000_000.0
}

struct View {
    scope: &'static str,
    subject: String,
    window: i64,
    hard_usd: Option<f64>,
    soft_usd: Option<f64>,
    spent_usd: f64,
    reserved_usd: f64,
    remaining_usd: Option<f64>,
    resets_at: String,
}

/// budget.py `headroom`, or `None` where it would raise BudgetExhausted.
fn headroom(
    usages: &[Usage],
    tenant: &Limits,
    key: Option<&Limits>,
) -> Option<(Vec<View>, Option<f64>, Option<f64>)> {
    let mut views = Vec::with_capacity(usages.len());
    let (mut cap, mut remaining_min): (Option<f64>, Option<f64>) = (None, None);
    for u in usages {
        let limits = if u.scope == "tenant" {
            Some(tenant)
        } else {
            key
        };
        let wl = limits.and_then(|l| l.get(store::window_name(u.window)));
        let (spent, reserved) = (
            micros_to_usd(u.spent_micros),
            micros_to_usd(u.reserved_micros),
        );
        let remaining = wl.map(|wl| (wl.hard_usd - spent - reserved).max(0.0));
        if let (Some(wl), Some(rem)) = (wl, remaining) {
            if rem <= 0.0 {
                return None;
            }
            let mut window_cap = rem;
            if spent + reserved >= wl.soft_usd {
                let gap = wl.hard_usd - wl.soft_usd;
                window_cap = if gap > 0.0 { rem * rem / gap } else { 0.0 };
            }
            cap = Some(cap.map_or(window_cap, |c: f64| c.min(window_cap)));
            remaining_min = Some(remaining_min.map_or(rem, |r: f64| r.min(rem)));
        }
        views.push(View {
            scope: u.scope,
            subject: u.subject.clone(),
            window: u.window,
            hard_usd: wl.map(|w| w.hard_usd),
            soft_usd: wl.map(|w| w.soft_usd),
            spent_usd: spent,
            reserved_usd: reserved,
            remaining_usd: remaining,
            resets_at: store::iso_utc(u.resets_at),
        });
    }
    Some((views, cap, remaining_min))
}

// ---- the decision as answered and as stored (store.proto StoredDecision) ----

fn model_ref(id: &str, cfg: &FrontConfig) -> pb::ModelRef {
    let info = cfg.models.get(id);
    pb::ModelRef {
        model_id: id.to_owned(),
        provider: info.map(|i| i.provider.clone()).unwrap_or_default(),
        endpoint: info.map(|i| i.endpoint.clone()).unwrap_or_default(),
        upstream_model: info.map(|i| i.upstream_model.clone()).unwrap_or_default(),
    }
}

/// 32 hex digits, time-ordered as a UUIDv7 is: the Unix time in milliseconds (48 bits), then 80
/// random bits (modelyard/ids.py `time_ordered_id` makes the same). The store's indexes on decision_id
/// (the decisions table's unique index) then take each new Route at their
/// right edge instead of at a random leaf page: fewer pages written per commit.
fn decision_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random: [u8; 10] = rand::random();
    let mut s = String::with_capacity(32);
    let _ = write!(s, "{:012x}", ms & 0xffff_ffff_ffff);
    for x in random {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Valid<'a> {
    msg: &'a pb::RouteRequest,
    task: &'a pb::TaskProfile,
    constraints: pb::Constraints,
    est_in: i64,
    est_out: i64,
    cached: i64,
    attempt: i64,
}

/// convert.py `route_input` on the requests it accepts; `None` for anything it would reject.
fn validate(msg: &pb::RouteRequest, defaults: (i64, i64, i64)) -> Option<Valid<'_>> {
    if !(0..=100).contains(&msg.attempt)
        || !ok_id(&msg.request_id, true)
        || !ok_id(&msg.job_id, true)
    {
        return None;
    }
    let task = msg.task.as_ref()?;
    let (d_in, d_out, d_cached) = defaults;
    let tokens = [
        task.est_input_tokens,
        task.est_output_tokens,
        task.est_cached_input_tokens,
        task.min_context_window,
        msg.context_tokens,
    ];
    if !tokens.iter().all(|&t| ok_tokens(t)) {
        return None;
    }
    let est_in = if task.est_input_tokens == 0 {
        d_in
    } else {
        task.est_input_tokens
    };
    if task.est_cached_input_tokens > est_in {
        return None;
    }
    let cached = match task.est_cached_input_tokens {
        0 if task.est_input_tokens == 0 => d_cached,
        c => c,
    };
    let c = msg.constraints.clone().unwrap_or_default();
    let ok = Role::from_number(i64::from(task.role)).is_ok()
        && ok_id(&task.task_class, true)
        && ok_names(&task.required_capabilities)
        && ok_number(c.max_cost_usd, MAX_USD)
        && ok_number(c.max_latency_ms, MAX_LATENCY_MS)
        && ok_number(c.min_success_probability, 1.0)
        && ok_names(&c.allowed_models)
        && ok_names(&c.denied_models)
        && ok_names(&c.required_provenance)
        && ok_names(&msg.failed_models);
    ok.then(|| Valid {
        msg,
        task,
        constraints: c,
        est_in,
        est_out: if task.est_output_tokens == 0 {
            d_out
        } else {
            task.est_output_tokens
        },
        cached,
        attempt: i64::from(msg.attempt.max(1)),
    })
}

impl Front {
    /// Serves one Route whose body is `body` (the protobuf message) and whose `authorization`
    /// metadata is `auth`; see the module doc for what is delegated.
    // One linear sequence, step for step the order of routing._route + _reserve; split up, that
    // order (which check wins when several would fail) would be harder to hold against Python's.
    #[allow(clippy::too_many_lines)]
    pub fn route_in(
        &self,
        auth: Option<&str>,
        body: &[u8],
        db: Option<&rusqlite::Connection>,
    ) -> Result<(Outcome, Option<Routed>), String> {
        let cfg = self.config();
        let Some(who) = auth.and_then(bearer).and_then(|key| principal(&cfg, key)) else {
            return Ok((Outcome::Delegate("auth"), None));
        };
        if !who.scopes.iter().any(|s| s == "route") {
            return Ok((Outcome::Delegate("scope"), None));
        }
        let Ok(msg) = pb::RouteRequest::decode(body) else {
            return Ok((Outcome::Delegate("decode"), None));
        };
        let Some(v) = validate(&msg, cfg.default_tokens) else {
            return Ok((Outcome::Delegate("invalid"), None));
        };
        let Some(tenant) = cfg.tenants.get(&who.tenant) else {
            return Ok((Outcome::Delegate("tenant"), None));
        };
        let Some(core) = self.core_for(&cfg, &who.tenant) else {
            return Ok((Outcome::Delegate("core"), None));
        };
        let allowed = &v.constraints.allowed_models;
        if !allowed.is_empty() && !allowed.iter().any(|m| cfg.models.contains_key(m)) {
            return Ok((Outcome::Delegate("allowed"), None));
        }
        let role = v.task.role;
        let job = &v.msg.job_id;
        let (sticky, failures, mut failed_effort) =
            self.jobs.context(&who.tenant, job, i64::from(role));
        if v.attempt <= 1 {
            failed_effort = None;
        } else if matches!(self.store, Store::Redis(_)) || !self.jobs.knows(&who.tenant, job) {
            // Another replica, or this one before a restart, may have seen the job's failures:
            // Python reads them from the store (routing._stored_failures).
            return Ok((Outcome::Delegate("job memory"), None));
        }
        let constraints = narrow(&v.constraints, tenant.policy_for(role));
        let explore = v.msg.explore.unwrap_or(cfg.explore);
        let now = now_s();
        let seed = (cfg.seed << 32) ^ self.next_seed();
        let key_budgets = tenant.key_budgets.get(&who.key_id);
        let ctx = Ctx {
            cfg: &cfg,
            v: &v,
            tenant,
            key_budgets,
            core: &core,
            constraints: &constraints,
            failures,
            failed_effort,
            sticky,
            explore,
            seed,
            now,
        };
        let started = Instant::now();
        let decided = match &self.store {
            Store::Sqlite(_) => {
                // Inside the writer's batch transaction, in a savepoint of this Route's own.
                let tx = db.ok_or("the SQLite store could not begin a transaction")?;
                if store::find_request(tx, &v.msg.request_id, &who.tenant)
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    return Ok((Outcome::Delegate("replay"), None));
                }
                let usages =
                    store::usage(tx, &who.tenant, &who.key_id, now).map_err(|e| e.to_string())?;
                let d = match ctx.decide(&usages)? {
                    Ok(d) => d,
                    Err(why) => return Ok((Outcome::Delegate(why), None)),
                };
                if !d.limits.iter().all(|&(i, hard)| {
                    usages[i].spent_micros + usages[i].reserved_micros + d.estimate_micros <= hard
                }) {
                    return Ok((Outcome::Delegate("hard limit"), None));
                }
                let row = d.row(who, &v, now, cfg.reservation_ttl_s);
                store::insert_reservation(tx, &row, now).map_err(|e| e.to_string())?;
                d
            }
            Store::Redis(redis) => {
                let usages = redis.usage(&who.tenant, &who.key_id, now)?;
                let d = match ctx.decide(&usages)? {
                    Ok(d) => d,
                    Err(why) => return Ok((Outcome::Delegate(why), None)),
                };
                let row = d.row(who, &v, now, cfg.reservation_ttl_s);
                match redis.reserve(&row, &d.limits, now)? {
                    super::redis::Reserved::Done => {}
                    super::redis::Reserved::Replay => {
                        return Ok((Outcome::Delegate("replay"), None))
                    }
                    super::redis::Reserved::OverLimit => {
                        return Ok((Outcome::Delegate("hard limit"), None));
                    }
                }
                d
            }
        };
        let store_s = (started.elapsed().as_secs_f64() - decided.core_s).max(0.0);
        let (answer, routed) = decided.routed(who, &v, store_s);
        Ok((Outcome::Answer(answer), Some(routed)))
    }

    /// Serves one Route (see `route_in`): with SQLite on the store's writer thread, whose
    /// batches commit several Routes' reservations at once; with Redis inline.
    pub async fn route(
        self: &Arc<Self>,
        auth: Option<String>,
        body: bytes::Bytes,
    ) -> Result<(Outcome, Option<Routed>), String> {
        let Store::Sqlite(writer) = &self.store else {
            return self.route_in(auth.as_deref(), &body, None);
        };
        // A lone Route (nothing queued, the connection free) runs here, without a hand-off.
        if let Some(out) = writer.try_inline(|db| {
            let out = self.route_in(auth.as_deref(), &body, db);
            (is_answer(&out), (out, Instant::now()))
        }) {
            return out.and_then(|(out, done)| with_store_time(out, done.elapsed()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let front = Arc::clone(self);
        let submitted = Instant::now();
        writer.submit(Box::new(move |db| {
            let queued = submitted.elapsed();
            let out = front.route_in(auth.as_deref(), &body, db);
            let (keep, done) = (is_answer(&out), Instant::now());
            let reply: store::Reply = Box::new(move |failed| {
                let out = with_store_time(out, queued + done.elapsed());
                let _ = tx.send(failed.map_or(out, Err));
            });
            (keep, reply)
        }))?;
        rx.await
            .map_err(|_| "the Route's reservation was dropped by the store's writer".to_owned())?
    }

    fn core_for(&self, cfg: &FrontConfig, tenant: &str) -> Option<Arc<Core>> {
        let key = if cfg.per_tenant { tenant } else { "" };
        self.cores.read().get(key).cloned()
    }
}

fn is_answer(out: &Result<(Outcome, Option<Routed>), String>) -> bool {
    matches!(out, Ok((Outcome::Answer(_), _)))
}

/// Adds the store time a Route spent outside `route_in` (waiting for its batch, the COMMIT) to
/// what its telemetry reports, so the store histogram still covers the whole reservation.
fn with_store_time(
    out: Result<(Outcome, Option<Routed>), String>,
    extra: std::time::Duration,
) -> Result<(Outcome, Option<Routed>), String> {
    out.map(|(o, routed)| {
        let routed = routed.map(|mut r| {
            r.store_s += extra.as_secs_f64();
            r
        });
        (o, routed)
    })
}

/// What a Route decides with, once the request is admitted.
struct Ctx<'a> {
    cfg: &'a FrontConfig,
    v: &'a Valid<'a>,
    tenant: &'a Tenant,
    key_budgets: Option<&'a Limits>,
    core: &'a Core,
    constraints: &'a Policy,
    failures: u32,
    failed_effort: Option<f64>,
    sticky: Option<String>,
    explore: bool,
    seed: u64,
    now: f64,
}

/// A decision ready to reserve: the answer, the payload the store keeps, what the store checks.
struct Decided {
    d: crate::Decision,
    model: String,
    estimate_micros: i64,
    /// (position among the six usages, hard limit in micro-dollars) of every window with one.
    limits: Vec<(usize, i64)>,
    /// The encoded answer, and the `StoredDecision` the store keeps.
    answer: Vec<u8>,
    payload: Vec<u8>,
    resp: pb::RouteDecision,
    budgets: Vec<(&'static str, String, i64, Option<f64>)>,
    core_s: f64,
}

impl Ctx<'_> {
    /// Headroom from `usages`, the core's pick, the answer; `Err(reason)` to forward instead.
    fn decide(&self, usages: &[Usage]) -> Result<Result<Decided, &'static str>, String> {
        let Some((views, cap, remaining)) =
            headroom(usages, &self.tenant.budgets, self.key_budgets)
        else {
            return Ok(Err("budget"));
        };
        let req = core_request(
            self.v,
            self.constraints,
            cap,
            self.failures,
            self.failed_effort,
            self.sticky.clone(),
            self.tenant,
            self.explore,
            self.seed,
            self.now,
        );
        let core_started = Instant::now();
        let d = self.core.route(&req).map_err(|e| e.to_string())?;
        let core_s = core_started.elapsed().as_secs_f64();
        let Some(model) = d.model().map(str::to_owned) else {
            return Ok(Err("no model"));
        };
        let estimate_micros = ((d.expected_cost_usd * 1_000_000.0).ceil() as i64).max(1);
        let limits = usages
            .iter()
            .enumerate()
            .filter_map(|(i, u)| {
                let l = if u.scope == "tenant" {
                    Some(&self.tenant.budgets)
                } else {
                    self.key_budgets
                };
                l.and_then(|l| l.get(store::window_name(u.window)))
                    .map(|wl| (i, usd_to_micros(wl.hard_usd)))
            })
            .collect();
        let reserved_usd = micros_to_usd(estimate_micros);
        let (resp, answer, payload) = answer(
            self.cfg,
            &d,
            self.v,
            &model,
            &views,
            remaining,
            reserved_usd,
            self.failed_effort,
            self.now,
        );
        let budgets = views
            .iter()
            .map(|v| (v.scope, v.subject.clone(), v.window, v.remaining_usd))
            .collect();
        Ok(Ok(Decided {
            d,
            model,
            estimate_micros,
            limits,
            answer,
            payload,
            resp,
            budgets,
            core_s,
        }))
    }
}

impl Decided {
    fn row<'a>(
        &'a self,
        who: &'a super::config::Key,
        v: &'a Valid<'_>,
        now: f64,
        ttl: f64,
    ) -> NewDecision<'a> {
        NewDecision {
            request_id: &v.msg.request_id,
            decision_id: &self.resp.decision_id,
            tenant: &who.tenant,
            key_id: &who.key_id,
            job_id: &v.msg.job_id,
            model: &self.model,
            role: i64::from(v.task.role),
            task_class: &v.task.task_class,
            estimate_micros: self.estimate_micros,
            created_at: now,
            expires_at: now + ttl,
            payload: &self.payload,
        }
    }

    /// The encoded answer, and what telemetry and the stats are told of it.
    fn routed(self, who: &super::config::Key, v: &Valid<'_>, store_s: f64) -> (Vec<u8>, Routed) {
        let chosen = self.resp.model.clone().unwrap_or_default();
        let routed = Routed {
            tenant: who.tenant.clone(),
            key_id: who.key_id.clone(),
            role: v.task.role,
            task_class: v.task.task_class.clone(),
            job_id: v.msg.job_id.clone(),
            attempt: v.attempt,
            decision_id: self.resp.decision_id.clone(),
            model: (chosen.model_id, chosen.provider, chosen.upstream_model),
            fallbacks: self
                .resp
                .fallbacks
                .iter()
                .map(|f| f.model_id.clone())
                .collect(),
            cost_usd: self.d.expected_cost_usd,
            success_probability: self.d.success_probability,
            latency_ms: self.d.latency_ms,
            exploration: self.d.exploration,
            sticky: self.d.sticky,
            budget_remaining_usd: self.resp.budget_remaining_usd,
            reserved_usd: self.resp.reserved_usd,
            budgets: self.budgets,
            start_unix_ns: 0,
            duration_ns: 0,
            traceparent: None,
            core_s: self.core_s,
            store_s,
        };
        (self.answer, routed)
    }
}

/// Who a key is: its SHA-256 looked up among the configured hashes.
fn principal<'a>(cfg: &'a FrontConfig, key: &str) -> Option<&'a super::config::Key> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    cfg.keys.get(&hex)
}

/// The key of `authorization: Bearer <key>` (auth.py `bearer_token`).
fn bearer(value: &str) -> Option<&str> {
    let prefix = value.get(..7)?;
    if !prefix.eq_ignore_ascii_case("bearer ") {
        return None;
    }
    let key = value[7..].trim();
    (!key.is_empty()).then_some(key)
}

#[allow(clippy::too_many_arguments)]
fn core_request(
    v: &Valid<'_>,
    c: &Policy,
    cap: Option<f64>,
    failures: u32,
    failed_effort: Option<f64>,
    sticky: Option<String>,
    tenant: &Tenant,
    explore: bool,
    seed: u64,
    now: f64,
) -> Request {
    let task = v.task;
    Request {
        role: Role::from_number(i64::from(task.role)).unwrap_or_else(|_| unreachable!("validated")),
        task_class: task.task_class.clone(),
        est_input_tokens: v.est_in as u64,
        est_output_tokens: v.est_out as u64,
        est_cached_input_tokens: v.cached as u64,
        capabilities: task.required_capabilities.clone(),
        min_context: task.min_context_window as u64,
        allowed: c.allowed_models.clone(),
        denied: c.denied_models.clone(),
        provenance: c.required_provenance.clone(),
        max_cost_usd: c.max_cost_usd,
        max_latency_ms: c.max_latency_ms,
        min_success: c.min_success_probability,
        budget_cap_usd: cap,
        attempt: v.attempt as u32,
        failed_models: v.msg.failed_models.clone(),
        job_failures: failures,
        failed_effort,
        sticky_model: sticky,
        context_tokens: v.msg.context_tokens as u64,
        time_value_usd_per_s: tenant.time_value_usd_per_s,
        explore,
        seed,
        now,
        explain: v.msg.explain,
    }
}

/// The decision as the caller gets it, encoded, and as the store keeps it: a `StoredDecision`
/// (store.proto) holding those same bytes and what the outcome is learned with, as the Python
/// service's `convert.stored_decision` writes it.
#[allow(clippy::too_many_arguments)]
fn answer(
    cfg: &FrontConfig,
    d: &crate::Decision,
    v: &Valid<'_>,
    model: &str,
    views: &[View],
    remaining: Option<f64>,
    reserved_usd: f64,
    failed_effort: Option<f64>,
    now: f64,
) -> (pb::RouteDecision, Vec<u8>, Vec<u8>) {
    let budget_remaining_usd = remaining.map_or(-1.0, |r| r - reserved_usd);
    let candidates = if v.msg.explain {
        d.candidates
            .iter()
            .map(|c| pb::CandidateScore {
                model_id: c.model.clone(),
                excluded: c.excluded,
                constraint: c.constraint.to_owned(),
                detail: c.detail.clone(),
                expected: Some(pb::Expectation {
                    cost_usd: c.cost_usd,
                    success_probability: c.success_probability,
                    latency_ms: c.latency_ms,
                    cost_per_success_usd: c.cost_usd / c.success_probability.max(MIN_P),
                }),
                sampled_success_probability: c.sampled_success,
                evidence: c.evidence,
                score: c.score,
                success_low: c.success_low,
                success_high: c.success_high,
            })
            .collect()
    } else {
        Vec::new()
    };
    let budgets = views
        .iter()
        .map(|view| pb::BudgetWindow {
            scope: view.scope.to_owned(),
            subject: view.subject.clone(),
            window: view.window as i32,
            hard_limit_usd: view.hard_usd.unwrap_or(0.0),
            soft_limit_usd: view.soft_usd.unwrap_or(0.0),
            spent_usd: view.spent_usd,
            reserved_usd: view.reserved_usd,
            remaining_usd: view.remaining_usd.unwrap_or(0.0),
            resets_at: view.resets_at.clone(),
            has_limit: view.hard_usd.is_some(),
        })
        .collect();
    let resp = pb::RouteDecision {
        decision_id: decision_id(),
        model: Some(model_ref(model, cfg)),
        fallbacks: d
            .fallbacks()
            .into_iter()
            .map(|f| model_ref(f, cfg))
            .collect(),
        expected: Some(pb::Expectation {
            cost_usd: d.expected_cost_usd,
            success_probability: d.success_probability,
            latency_ms: d.latency_ms,
            cost_per_success_usd: d.cost_per_success_usd,
        }),
        reserved_usd,
        budget_remaining_usd,
        exploration: d.exploration,
        reason: d.reason(),
        candidates,
        sticky: d.sticky,
        replayed: false,
        reservation_expires_at: (now + cfg.reservation_ttl_s) as i64,
        budgets,
    };
    let answer = resp.encode_to_vec();
    let stored = pb::StoredDecision {
        decision: answer.clone(),
        est_input_tokens: v.est_in,
        est_output_tokens: v.est_out,
        est_cached_input_tokens: v.cached,
        attempt: v.attempt as i32,
        failed_effort,
    };
    (resp, answer, stored.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::config::WindowLimit;

    #[test]
    fn bearer_tokens_as_auth_py_reads_them() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer   "), None);
        assert_eq!(bearer("Bear"), None);
    }

    #[test]
    fn a_policy_narrows_and_never_widens() {
        let req = pb::Constraints {
            max_cost_usd: Some(2.0),
            allowed_models: vec!["a".into(), "b".into()],
            denied_models: vec!["x".into()],
            ..Default::default()
        };
        let policy = Policy {
            max_cost_usd: Some(1.0),
            min_success_probability: Some(0.5),
            allowed_models: vec!["b".into(), "c".into()],
            denied_models: vec!["x".into(), "y".into()],
            ..Default::default()
        };
        let got = narrow(&req, &policy);
        assert_eq!(got.max_cost_usd, Some(1.0));
        assert_eq!(got.min_success_probability, Some(0.5));
        assert_eq!(got.allowed_models, vec!["b".to_owned()]);
        assert_eq!(got.denied_models, vec!["x".to_owned(), "y".to_owned()]);
        let only_a = pb::Constraints {
            allowed_models: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(
            narrow(&only_a, &policy).allowed_models,
            vec![NOTHING_ALLOWED.to_owned()]
        );
    }

    fn usage(scope: &'static str, window: i64, spent: i64, reserved: i64) -> Usage {
        Usage {
            scope,
            subject: "s".into(),
            window,
            resets_at: 0,
            spent_micros: spent,
            reserved_micros: reserved,
        }
    }

    #[test]
    fn headroom_shrinks_the_cap_past_the_soft_limit_and_refuses_at_the_hard_one() {
        let mut day = Limits::new();
        day.insert(
            "day".into(),
            WindowLimit {
                soft_usd: 40.0,
                hard_usd: 50.0,
            },
        );
        // Under the soft limit: the cap is what is left.
        let (views, cap, left) =
            headroom(&[usage("tenant", 2, 10_000_000, 0)], &day, None).unwrap();
        assert_eq!((cap, left), (Some(40.0), Some(40.0)));
        assert_eq!(views[0].hard_usd, Some(50.0));
        // $45 of $50 used, soft $40: the cap is r * r / g = 5 * 5 / 10.
        let (_, cap, _) =
            headroom(&[usage("tenant", 2, 40_000_000, 5_000_000)], &day, None).unwrap();
        assert!((cap.unwrap() - 2.5).abs() < 1e-9);
        // Nothing left: Python raises BudgetExhausted, the front forwards.
        assert!(headroom(&[usage("tenant", 2, 50_000_000, 0)], &day, None).is_none());
        // A window without a limit counts but never caps.
        let (views, cap, left) = headroom(&[usage("key", 1, 99, 1)], &day, None).unwrap();
        assert_eq!((cap, left, views[0].remaining_usd), (None, None, None));
    }
}
