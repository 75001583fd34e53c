//! The thread-safe core: learned state behind one RwLock (decisions read, outcomes write),
//! breakers and events behind their own small mutexes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::arm::Hot;
use crate::arm::{ArmKey, ArmTable, ALL_CLASSES, ALL_ROLES, HARDNESS, RETRY};
use crate::breaker::{BreakerKey, Breakers};
use crate::catalog::Catalog;
use crate::catalog::{DriftPolicy, ModelSpec};
use crate::decide::{breaker_event, decide, Gate};
use crate::decision::{ArmStats, Candidate, Decision, Event};
use crate::drift::DriftFinding;
use crate::error::{finite, non_negative, CoreError, Result};
use crate::prior::{effort_bit, success_posterior, Z90};
use crate::request::Request;
use crate::role::{Role, Status};
use crate::score::{step_cost, typical_cost};
use crate::snapshot;
use crate::stats::Sums;

/// One reported step outcome. Zero tokens, zero latency, zero estimates and `cost_usd` of
/// `None` or 0 all mean "not reported": that statistic is left untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub model: String,
    pub role: Role,
    pub task_class: String,
    pub status: Status,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms: f64,
    pub now: f64,
    pub weight: f64,
    /// The decision's token estimates for this step (what `route` was told).
    pub est_input_tokens: u64,
    pub est_output_tokens: u64,
    pub est_cached_input_tokens: u64,
    /// Provider-billed cost of the step, when known.
    pub cost_usd: Option<f64>,
    /// The decision's attempt (1 = first try of the job). Outcomes of attempts > 1 teach the
    /// retry arms (see arm.rs `RETRY`), not the first-try ones; measurements teach both.
    pub attempt: u32,
    /// The `failed_effort` the decision was routed with (attempt > 1): the outcome also teaches
    /// that effort bucket's retry arms.
    pub failed_effort: Option<f64>,
    /// What this report teaches (see `Learn`).
    pub learn: Learn,
}

/// What a report teaches. A call that completed before anyone knows whether the step succeeded
/// (Dispatch) teaches its measurements first and its outcome later, when the harness gives the
/// verdict; each part is learned once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Learn {
    /// Outcome and measurements (a harness's own report).
    #[default]
    All,
    /// Tokens, cost and latency only: success, drift and the hardness arms are left alone.
    Measurements,
    /// The outcome only (the verdict on a step whose measurements were learned before); breakers
    /// are left alone too, the call itself was already counted. Measurements passed with it
    /// still give the step's effort.
    Outcome,
}

impl Learn {
    /// "all", "measurements" or "outcome".
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Self::All),
            "measurements" => Ok(Self::Measurements),
            "outcome" => Ok(Self::Outcome),
            _ => Err(CoreError::field(
                "learn",
                format!("must be \"all\", \"measurements\" or \"outcome\", got {s:?}"),
            )),
        }
    }
}

impl Report {
    /// A report with nothing measured, for tests and benches.
    pub fn new(model: &str, role: Role, task_class: &str, status: Status, now: f64) -> Self {
        Self {
            model: model.to_owned(),
            role,
            task_class: task_class.to_owned(),
            status,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0.0,
            now,
            weight: 1.0,
            est_input_tokens: 0,
            est_output_tokens: 0,
            est_cached_input_tokens: 0,
            cost_usd: None,
            attempt: 1,
            failed_effort: None,
            learn: Learn::All,
        }
    }
}

struct State {
    catalog: Catalog,
    table: ArmTable,
    /// Latest time seen, so the leaderboard can decay sums without a clock.
    last_now: f64,
}

pub struct Core {
    state: RwLock<State>,
    breakers: Mutex<Breakers>,
    /// Non-closed breakers; zero lets decisions skip the breaker mutex entirely.
    breakers_active: AtomicUsize,
    events: Mutex<Vec<Event>>,
}

impl Core {
    pub fn new(catalog_json: &str) -> Result<Self> {
        let mut table = ArmTable::default();
        let catalog = Catalog::parse(catalog_json, |id| table.models.intern(id))?;
        Ok(Self {
            state: RwLock::new(State {
                catalog,
                table,
                last_now: f64::NEG_INFINITY,
            }),
            breakers: Mutex::new(Breakers::default()),
            breakers_active: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
        })
    }

    /// Swaps the catalog whole; learned arms are kept (keyed by model id, not position).
    pub fn set_catalog(&self, catalog_json: &str) -> Result<()> {
        let mut st = self.state.write();
        let mut models = st.table.models.clone();
        let catalog = Catalog::parse(catalog_json, |id| models.intern(id))?;
        st.table.models = models;
        st.catalog = catalog;
        Ok(())
    }

    pub fn route(&self, req: &Request) -> Result<Decision> {
        self.decide(req, true)
    }

    /// Every model's candidate row for a request, without consuming breaker probes.
    pub fn estimate(&self, req: &Request) -> Result<Vec<Candidate>> {
        let mut req = req.clone();
        req.explain = true;
        Ok(self.decide(&req, false)?.candidates)
    }

    fn decide(&self, req: &Request, take_probe: bool) -> Result<Decision> {
        req.validate()?;
        let st = self.state.read();
        if self.breakers_active.load(Ordering::Acquire) == 0 {
            return Ok(decide(&st.catalog, &st.table, req, None));
        }
        let mut breakers = self.breakers.lock();
        let mut events = Vec::new();
        let gate = Gate {
            breakers: &mut breakers,
            take_probe,
            events: &mut events,
        };
        let d = decide(&st.catalog, &st.table, req, Some(gate));
        self.breakers_active
            .store(breakers.active(), Ordering::Release);
        drop(breakers);
        if !events.is_empty() {
            self.events.lock().extend(events);
        }
        Ok(d)
    }

    /// Learns from one step. Returns the step's effort when it can be measured: ln(billed cost /
    /// the model's typical cost for the step's estimates), read before this step is learned;
    /// positive means the step ran longer than the model usually does. The service keeps the
    /// efforts of a job's failed attempts and routes its retries with their mean
    /// (`Request::failed_effort`). `None` for errors, timeouts and cancellations, and when no
    /// cost, tokens or estimates were reported.
    pub fn report(&self, r: &Report) -> Result<Option<f64>> {
        if r.model.is_empty() {
            return Err(CoreError::field("model", "must not be empty"));
        }
        finite("now", r.now)?;
        non_negative("latency_ms", r.latency_ms)?;
        if let Some(c) = r.cost_usd {
            non_negative("cost_usd", c)?;
        }
        if let Some(e) = r.failed_effort {
            finite("failed_effort", e)?;
        }
        if !(r.weight.is_finite() && r.weight > 0.0) {
            return Err(CoreError::field(
                "weight",
                format!("must be > 0, got {}", r.weight),
            ));
        }
        let mut events = Vec::new();
        let effort;
        {
            let mut guard = self.state.write();
            let st = &mut *guard;
            let policy = st.catalog.policy.clone();
            let w = st
                .table
                .weight_at(r.now, policy.half_life_s, st.catalog.lambda())
                * r.weight;
            let model = st.table.models.intern(&r.model);
            let class = st.table.classes.intern(&r.task_class);
            let role = r.role.number();
            let spec = st
                .catalog
                .by_id
                .get(&r.model)
                .map(|&i| &st.catalog.models[i]);
            let learned = Learned::of(r, spec);
            let scale = st.table.read_scale(r.now, st.catalog.lambda());
            effort =
                spec.and_then(|spec| step_effort(&st.table, spec, r, (model, role, class), scale));
            let found = if r.attempt > 1 {
                let prior = spec.map(|spec| spec.prior);
                learn_retry(
                    &mut st.table,
                    &learned,
                    r,
                    w,
                    (model, role, class),
                    prior,
                    scale,
                    effort,
                );
                None
            } else {
                learn_first_try(
                    &mut st.table,
                    &learned,
                    r,
                    w,
                    (model, role, class),
                    scale,
                    &policy.drift,
                )
            };
            if let Some((found, pooled)) = found {
                events.push(Event {
                    kind: "drift",
                    model: r.model.clone(),
                    provider: String::new(),
                    role,
                    task_class: if pooled {
                        String::new()
                    } else {
                        r.task_class.clone()
                    },
                    detail: found.describe(),
                    at: r.now,
                });
            }
            st.last_now = st.last_now.max(r.now);
            if r.learn != Learn::Outcome {
                let provider = spec.map(|spec| spec.provider.clone());
                self.breaker_outcome(r, provider, &policy.breaker, &mut events);
            }
        }
        if !events.is_empty() {
            self.events.lock().extend(events);
        }
        Ok(effort)
    }

    /// The effort `report` would return for `r` now, learning nothing: ln(billed cost / the
    /// model's typical cost for the step's estimates) from the first-try levels as they stand.
    /// The service uses it to rebuild a job's failed efforts from the store when the replica
    /// routing a retry did not see the failures itself (another replica, or a restart); after
    /// those failures were learned the typical cost has moved a little, so the value can differ
    /// slightly from what `report` returned at the time. `None` as for `report`, and for a model
    /// the catalog does not have.
    pub fn effort(&self, r: &Report) -> Option<f64> {
        let st = self.state.read();
        let model = st.table.models.get(&r.model)?;
        let spec = st
            .catalog
            .by_id
            .get(&r.model)
            .map(|&i| &st.catalog.models[i])?;
        // A class never learned has no row: only the pooled levels speak for it.
        let class = st
            .table
            .classes
            .get(&r.task_class)
            .unwrap_or(ALL_CLASSES - 1);
        let scale = st.table.read_scale(r.now, st.catalog.lambda());
        step_effort(&st.table, spec, r, (model, r.role.number(), class), scale)
    }

    /// Feeds a report's status to the model's and its provider's breakers (the caller holds the
    /// state lock, so breaker changes stay ordered with learning).
    fn breaker_outcome(
        &self,
        r: &Report,
        provider: Option<String>,
        policy: &crate::catalog::BreakerPolicy,
        events: &mut Vec<Event>,
    ) {
        let mut b = self.breakers.lock();
        let keys = [
            Some(BreakerKey::Model(r.model.clone())),
            provider.filter(|p| !p.is_empty()).map(BreakerKey::Provider),
        ];
        for key in keys.into_iter().flatten() {
            if let Some(t) = b.on_outcome(key.clone(), r.status, r.now, policy) {
                events.push(breaker_event(t.kind(), &key, r.now));
            }
        }
        self.breakers_active.store(b.active(), Ordering::Release);
    }

    /// Credits every distinct (model, role, task_class) of a finished job with its outcome (as
    /// first tries; see `complete_job_attempts`).
    pub fn complete_job(
        &self,
        steps: &[(String, Role, String)],
        success: bool,
        now: f64,
    ) -> Result<()> {
        let steps: Vec<_> = steps
            .iter()
            .map(|(m, r, c)| (m.clone(), *r, c.clone(), 1))
            .collect();
        self.complete_job_attempts(&steps, success, now)
    }

    /// Credits the distinct (model, role, task_class, attempt) steps of a finished job with its
    /// outcome, each at its own level (attempt > 1: the retry arms). A job that succeeded
    /// credits only the steps of its last attempt: the earlier attempts were retried because
    /// they failed, so the job's success says nothing in their favour.
    pub fn complete_job_attempts(
        &self,
        steps: &[(String, Role, String, u32)],
        success: bool,
        now: f64,
    ) -> Result<()> {
        finite("now", now)?;
        // "Last" is per (role, task_class): a job whose executor needed a retry still credits its
        // planner and reviewer, whose only try was their first.
        let mut last: HashMap<(Role, &str), u32> = HashMap::new();
        for (_, role, class, attempt) in steps {
            let e = last.entry((*role, class.as_str())).or_insert(0);
            *e = (*e).max(*attempt);
        }
        let distinct: BTreeSet<_> = steps
            .iter()
            .filter(|s| !success || last.get(&(s.1, s.2.as_str())) == Some(&s.3))
            .map(|(m, r, c, a)| (m, *r, c, (*a).max(1) > 1))
            .collect();
        let mut st = self.state.write();
        let credit = st.catalog.policy.job_credit_weight;
        if credit == 0.0 || distinct.is_empty() {
            return Ok(());
        }
        let (hl, lambda) = (st.catalog.policy.half_life_s, st.catalog.lambda());
        let w = st.table.weight_at(now, hl, lambda) * credit;
        for (model, role, class, retry) in distinct {
            let model = st.table.models.intern(model);
            let class = st.table.classes.intern(class);
            let levels = if retry {
                let r = role.number() | RETRY;
                [None, Some((r, ALL_CLASSES)), Some((r, class))]
            } else {
                [
                    Some((ALL_ROLES, ALL_CLASSES)),
                    Some((role.number(), ALL_CLASSES)),
                    Some((role.number(), class)),
                ]
            };
            for (role, class) in levels.into_iter().flatten() {
                st.table.with_arm(ArmKey { model, role, class }, |a| {
                    if success {
                        a.sums.successes += w;
                    } else {
                        a.sums.failures += w;
                    }
                });
            }
        }
        st.last_now = st.last_now.max(now);
        Ok(())
    }

    /// Leaderboard of the (model, role, task_class) arms, decayed to the latest time seen.
    pub fn arms(&self) -> Vec<ArmStats> {
        let st = self.state.read();
        let (t, cat) = (&st.table, &st.catalog);
        let scale = if st.last_now.is_finite() {
            t.read_scale(st.last_now, cat.lambda())
        } else {
            1.0
        };
        let mut out: Vec<ArmStats> = t
            .iter()
            .filter(|(k, _)| k.class != ALL_CLASSES && k.role & RETRY == 0)
            .map(|(k, a)| {
                let s = &a.sums;
                let spec = cat
                    .by_id
                    .get(t.models.name(k.model))
                    .map(|&i| &cat.models[i]);
                let (mean, lo, hi, cost) = spec.map_or((0.0, 0.0, 0.0, 0.0), |spec| {
                    let lv = [
                        t.row(ALL_ROLES, ALL_CLASSES).hot(k.model),
                        t.row(k.role, ALL_CLASSES).hot(k.model),
                        Hot::of(s),
                    ];
                    let post = success_posterior(spec.prior, lv.each_ref(), scale);
                    let (lo, hi) = post.interval(Z90);
                    (post.mean(), lo, hi, mean_cost(spec, s))
                });
                ArmStats {
                    model: t.models.name(k.model).to_owned(),
                    role: k.role,
                    task_class: t.classes.name(k.class).to_owned(),
                    n: (s.successes + s.failures) * scale,
                    successes: s.successes * scale,
                    failures: s.failures * scale,
                    mean_success: mean,
                    success_low: lo,
                    success_high: hi,
                    mean_cost_usd: cost,
                    mean_latency_ms: s.latency.mean().unwrap_or(0.0),
                    p90_latency_ms: s.latency.p90().unwrap_or(0.0),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.model, a.role, &a.task_class).cmp(&(&b.model, b.role, &b.task_class))
        });
        out
    }

    pub fn drain_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock())
    }

    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let st = self.state.read();
        snapshot::encode(&st.table, st.catalog.policy.half_life_s, st.last_now)
    }

    /// The length `snapshot()` would have now.
    pub fn snapshot_len(&self) -> usize {
        snapshot::encoded_len(&self.state.read().table)
    }

    /// Writes the snapshot into `out` when it is exactly `snapshot_len()` long; `Ok(false)`, with
    /// `out` untouched, when the state gained arms or names since that length was taken.
    pub fn snapshot_into(&self, out: &mut [u8]) -> Result<bool> {
        let st = self.state.read();
        if snapshot::encoded_len(&st.table) != out.len() {
            return Ok(false);
        }
        snapshot::encode_into(&st.table, st.catalog.policy.half_life_s, st.last_now, out)?;
        Ok(true)
    }

    /// Writes the snapshot to `w` as it is encoded (a file: see `snapshot::encode_to`).
    pub fn snapshot_to(&self, w: impl std::io::Write) -> Result<()> {
        let st = self.state.read();
        snapshot::encode_to(&st.table, st.catalog.policy.half_life_s, st.last_now, w)
    }

    /// Replaces the learned sums (drift windows reset; breakers untouched: they are per process).
    /// When changes are tracked, the replacement is one: the journal records −old and +new, so
    /// the other replicas replace theirs too.
    pub fn restore(&self, data: &[u8]) -> Result<()> {
        self.replace_sums(&snapshot::decode(data)?, true)
    }

    /// `restore` from a snapshot file, read through a buffer (`snapshot::decode_file`).
    pub fn restore_file(&self, path: &std::path::Path) -> Result<()> {
        self.replace_sums(&snapshot::decode_file(path)?, true)
    }

    /// Replaces the sums with `snap`'s; `recorded`: as a change the journal records (−old, +new).
    fn replace_sums(&self, snap: &snapshot::Decoded<'_>, recorded: bool) -> Result<()> {
        let mut st = self.state.write();
        if recorded {
            st.table.record_all(-1.0);
        }
        st.table.clear();
        let lambda = st.catalog.lambda();
        let merged = snap.merge_into(&mut st.table, lambda);
        st.table.align_journal(lambda);
        if recorded {
            st.table.record_all(1.0);
        }
        st.last_now = snap.last_now();
        merged
    }

    /// Adds a snapshot's sums (an import); a change the journal records when tracked.
    pub fn merge(&self, data: &[u8]) -> Result<()> {
        let snap = snapshot::decode(data)?;
        let mut st = self.state.write();
        let lambda = st.catalog.lambda();
        let merged = snap.merge_into(&mut st.table, lambda);
        let mut journaled = Ok(());
        st.table
            .with_journal(|j| journaled = snap.add_to_journal(j, lambda));
        st.table.align_journal(lambda);
        st.last_now = st.last_now.max(snap.last_now());
        merged.and(journaled)
    }

    /// From now on, record every change learning makes to the sums, for `take_delta`.
    pub fn track_changes(&self) {
        self.state.write().table.track_changes();
    }

    /// How many arms changed since the changes were last taken (`take_delta` and the like): what
    /// the next delta holds, for a caller that takes it early when it grows large. 0 when changes
    /// are not tracked.
    pub fn pending_changes(&self) -> usize {
        self.state.read().table.journal_arms()
    }

    /// The changes since the last call, as a delta for the other replicas' `merge_delta`;
    /// `None` when nothing changed (or changes are not tracked).
    pub fn take_delta(&self) -> Result<Option<Vec<u8>>> {
        let mut st = self.state.write();
        let (half_life_s, last_now) = (st.catalog.policy.half_life_s, st.last_now);
        // Encoded under the lock: a delta holds only what changed since the last one.
        let delta = st.table.take_journal(|j| {
            j.rows()
                .next()
                .map(|_| snapshot::encode_delta(j, half_life_s, last_now))
        });
        delta.flatten().transpose()
    }

    /// `take_delta` in parts of about `max_arms` arms (see `snapshot::encode_delta_parts`); empty
    /// when nothing changed.
    pub fn take_deltas(&self, max_arms: usize) -> Result<Vec<Vec<u8>>> {
        self.take_delta_parts(max_arms).collect()
    }

    /// `take_deltas` as an iterator that encodes each part when asked, outside the core's lock:
    /// the changes are taken at once (so a snapshot taken in the same step holds exactly them on
    /// top of what was sent before), but only one part's bytes exist at a time.
    pub fn take_delta_parts(&self, max_arms: usize) -> snapshot::DeltaParts {
        Self::take_parts(&mut self.state.write(), max_arms)
    }

    /// The journal moved out of `st` as parts to encode later (with the half-life and clock the
    /// state has now).
    fn take_parts(st: &mut State, max_arms: usize) -> snapshot::DeltaParts {
        let (half_life_s, last_now) = (st.catalog.policy.half_life_s, st.last_now);
        let journal = st.table.take_journal_owned().unwrap_or_default();
        snapshot::DeltaParts::new(journal, half_life_s, last_now, max_arms)
    }

    /// `take_delta_parts` and `snapshot_to` in one step, for a shared base: nothing learned can
    /// land between the two (the snapshot holds exactly what was sent before plus these parts),
    /// and the snapshot is written under the read lock (Routes go on; reports wait, as for any
    /// snapshot), so a caller can run it on a thread. If the snapshot fails, the changes go back
    /// to the journal.
    pub fn take_deltas_and_snapshot_to(
        &self,
        max_arms: usize,
        w: impl std::io::Write,
    ) -> Result<snapshot::DeltaParts> {
        let mut st = self.state.write();
        let parts = Self::take_parts(&mut st, max_arms);
        let st = parking_lot::RwLockWriteGuard::downgrade(st);
        let written = snapshot::encode_to(&st.table, st.catalog.policy.half_life_s, st.last_now, w);
        drop(st);
        match written {
            Ok(()) => Ok(parts),
            Err(e) => {
                for part in parts.flatten() {
                    self.return_delta(&part)?;
                }
                Err(e)
            }
        }
    }

    /// Another replica's changes: added (clamped at zero), not recorded as a change here.
    pub fn merge_delta(&self, data: &[u8]) -> Result<()> {
        let delta = snapshot::decode_delta(data)?;
        let mut st = self.state.write();
        let lambda = st.catalog.lambda();
        let merged = delta.merge_into(&mut st.table, lambda);
        st.last_now = st.last_now.max(delta.last_now());
        merged
    }

    /// Puts back a delta `take_delta` gave that could not be sent: it goes with the next one.
    pub fn return_delta(&self, data: &[u8]) -> Result<()> {
        let delta = snapshot::decode_delta(data)?;
        let mut st = self.state.write();
        let lambda = st.catalog.lambda();
        let mut added = Ok(());
        st.table
            .with_journal(|j| added = delta.add_to_journal(j, lambda));
        st.table.align_journal(lambda);
        added
    }

    /// Replaces the learned sums with the shared state of all replicas (a replica catching up),
    /// which is not a change of this replica's: the journal keeps what it holds.
    pub fn restore_shared(&self, data: &[u8]) -> Result<()> {
        self.replace_sums(&snapshot::decode(data)?, false)
    }

    /// `restore_shared` from a snapshot file (`snapshot::decode_file`).
    pub fn restore_shared_file(&self, path: &std::path::Path) -> Result<()> {
        self.replace_sums(&snapshot::decode_file(path)?, false)
    }

    pub fn arm_count(&self) -> usize {
        self.state.read().table.leaf_count()
    }
}

/// A first try: the outcome and measurements go to the model, (model, role) and arm levels. The
/// drift test runs on the arm and, with `policy.pooled`, on the (model, role) level, which sees
/// every class's outcomes; a drift found there forgets old evidence at the model level, the
/// (model, role) level and every class arm of the (model, role), so no level lends it back.
/// Only falls forget evidence (a model that got better is found by exploration; forgetting its
/// evidence on a lucky streak costs more than it saves); rises are only reported.
/// Returns the finding and whether it was pooled.
fn learn_first_try(
    table: &mut ArmTable,
    learned: &Learned,
    r: &Report,
    w: f64,
    (model, role, class): (u32, u8, u32),
    scale: f64,
    policy: &DriftPolicy,
) -> Option<(DriftFinding, bool)> {
    let observe = |arm: &mut crate::arm::Arm| {
        if r.status == Status::Cancelled || !learned.outcome {
            return None;
        }
        let (s, f) = (arm.sums.successes * scale, arm.sums.failures * scale);
        arm.drift
            .observe(r.status == Status::Success, r.weight, s, f, policy)
    };
    // Stored units of the window's outcomes (report weights seen at `now`).
    let stored = |found: &DriftFinding| (found.recent.0 / scale, found.recent.1 / scale);
    let model_key = ArmKey {
        model,
        role: ALL_ROLES,
        class: ALL_CLASSES,
    };
    table.with_arm(model_key, |a| learned.add_to(&mut a.sums, r, w));
    let role_key = ArmKey {
        model,
        role,
        class: ALL_CLASSES,
    };
    let pooled = table.with_arm(role_key, |a| {
        learned.add_to(&mut a.sums, r, w);
        let found = observe(a).filter(|_| policy.pooled)?;
        if found.new_rate < found.old_rate {
            a.sums.forget_old(found.shrink, stored(&found));
        }
        Some(found)
    });
    if let Some(found) = pooled.filter(|f| f.new_rate < f.old_rate) {
        let f = found.shrink;
        table.with_arm(model_key, |a| a.sums.forget_old(f, stored(&found)));
        // Each class arm keeps its own recent window; this outcome is added just below.
        table.for_each_class_arm(model, role, |a| {
            let recent = (
                a.drift.fast_successes / scale,
                a.drift.fast_failures / scale,
            );
            a.sums.forget_old(f, recent);
            // Handled: the class arm stays quiet until its own estimates agree again.
            a.drift = crate::drift::DriftState {
                flagged: true,
                ..crate::drift::DriftState::default()
            };
        });
    }
    let leaf = table.with_arm(ArmKey { model, role, class }, |a| {
        learned.add_to(&mut a.sums, r, w);
        let found = observe(a)?;
        if pooled.is_none() && found.new_rate < found.old_rate {
            a.sums.forget_old(found.shrink, stored(&found));
        }
        Some(found)
    });
    pooled.map(|f| (f, true)).or(leaf.map(|f| (f, false)))
}

/// A retry (attempt > 1): measurements teach the first-try levels (a model's token and cost
/// ratios do not depend on the attempt), the outcome teaches the retry levels and the role's
/// hardness arm (observed success against what the first-try posterior predicted).
fn learn_retry(
    table: &mut ArmTable,
    learned: &Learned,
    r: &Report,
    w: f64,
    (model, role, class): (u32, u8, u32),
    prior: Option<crate::prior::Beta>,
    scale: f64,
    effort: Option<f64>,
) {
    if r.status == Status::Cancelled {
        return;
    }
    let predicted = prior.map(|prior| {
        let lv = [
            table.row(ALL_ROLES, ALL_CLASSES).hot(model),
            table.row(role, ALL_CLASSES).hot(model),
            table.row(role, class).hot(model),
        ];
        success_posterior(prior, lv.each_ref(), scale).mean()
    });
    for (role, class) in [(ALL_ROLES, ALL_CLASSES), (role, ALL_CLASSES), (role, class)] {
        table.with_arm(ArmKey { model, role, class }, |a| {
            learned.add_measurements(&mut a.sums, r, w);
        });
    }
    let retry = role | RETRY;
    let roles = [Some(retry), r.failed_effort.map(|e| retry | effort_bit(e))];
    for role in roles.into_iter().flatten() {
        // A retry arm's cost ratio holds the retries' efforts (billed over the first-try
        // typical cost): what a retry in this bucket costs relative to a first try.
        let add_effort = |a: &mut crate::arm::Arm| {
            if let Some(e) = effort.filter(|_| learned.measurements) {
                a.sums.cost_ratio.add_ratio(w, e.exp(), 1.0);
            }
        };
        for class in [ALL_CLASSES, class] {
            table.with_arm(ArmKey { model, role, class }, |a| {
                learned.add_outcome(&mut a.sums, r, w);
                add_effort(a);
            });
        }
        let h = table.models.intern(HARDNESS);
        let key = ArmKey {
            model: h,
            role,
            class: ALL_CLASSES,
        };
        table.with_arm(key, |a| {
            if let Some(p) = predicted.filter(|_| learned.outcome) {
                if r.status == Status::Success {
                    a.sums.successes += w;
                }
                a.sums.failures += w * p;
            }
            add_effort(a);
        });
    }
}

/// ln(billed cost / typical cost) of a completed step, from the first-try levels as they were
/// before this step is learned (see `Router::report`). Billed cost is `cost_usd` when reported,
/// else the list price of the reported tokens.
fn step_effort(
    table: &ArmTable,
    spec: &ModelSpec,
    r: &Report,
    (model, role, class): (u32, u8, u32),
    scale: f64,
) -> Option<f64> {
    if !matches!(r.status, Status::Success | Status::Failure) {
        return None;
    }
    let billed = match r.cost_usd {
        Some(c) => c,
        None if r.input_tokens + r.output_tokens > 0 => {
            let share = if r.input_tokens == 0 {
                0.0
            } else {
                r.cached_input_tokens.min(r.input_tokens) as f64 / r.input_tokens as f64
            };
            step_cost(spec, r.input_tokens as f64, share, r.output_tokens as f64)
        }
        None => return None,
    };
    let lv = [
        table.row(ALL_ROLES, ALL_CLASSES).hot(model),
        table.row(role, ALL_CLASSES).hot(model),
        table.row(role, class).hot(model),
    ];
    let share = if r.est_input_tokens == 0 {
        0.0
    } else {
        r.est_cached_input_tokens.min(r.est_input_tokens) as f64 / r.est_input_tokens as f64
    };
    let root = crate::prior::RatioRoot::for_model(&lv[0], || crate::prior::RatioRoot::of(table));
    let typical = typical_cost(
        spec,
        &root,
        lv.each_ref(),
        scale,
        (r.est_input_tokens, share, r.est_output_tokens),
    );
    (billed > 0.0 && typical > 0.0).then(|| (billed / typical).ln())
}

/// What one report teaches, computed once and added at every pooling level.
struct Learned {
    /// Tokens counted only when any were reported.
    tokens: bool,
    /// ln-ratio inputs: (actual, estimated) for input and output tokens, (billed, list) cost.
    ratio_in: (f64, f64),
    ratio_out: (f64, f64),
    cost: (f64, f64),
    /// Which parts the report teaches (`Report::learn`).
    outcome: bool,
    measurements: bool,
}

impl Learned {
    /// Cost ratio: billed `cost_usd` over the list-price cost of the reported tokens, or of the
    /// step's estimates when no tokens were reported (exact for a cost-only replay, since route
    /// predicts list(estimates) × E[ratio]). Unknown model or zero list price: nothing learned.
    fn of(r: &Report, spec: Option<&ModelSpec>) -> Self {
        let tokens = r.input_tokens + r.output_tokens > 0;
        let list = spec.map_or(0.0, |spec| {
            let (i, c, o) = if tokens {
                (r.input_tokens, r.cached_input_tokens, r.output_tokens)
            } else {
                (
                    r.est_input_tokens,
                    r.est_cached_input_tokens,
                    r.est_output_tokens,
                )
            };
            let share = if i == 0 {
                0.0
            } else {
                c.min(i) as f64 / i as f64
            };
            step_cost(spec, i as f64, share, o as f64)
        });
        Self {
            tokens,
            ratio_in: (r.input_tokens as f64, r.est_input_tokens as f64),
            ratio_out: (r.output_tokens as f64, r.est_output_tokens as f64),
            cost: (r.cost_usd.unwrap_or(0.0), list),
            outcome: r.learn != Learn::Measurements,
            measurements: r.learn != Learn::Outcome,
        }
    }

    /// Which statistics an outcome feeds: every outcome but CANCELLED counts toward success (an
    /// ERROR or TIMEOUT is a failed try that cost time); tokens and cost only from completed
    /// steps; latency also from timeouts (a timeout is real waiting), never from errors (those
    /// fail fast). A zero (unreported) measurement feeds nothing.
    fn add_to(&self, s: &mut Sums, r: &Report, w: f64) {
        self.add_outcome(s, r, w);
        self.add_measurements(s, r, w);
    }

    fn add_outcome(&self, s: &mut Sums, r: &Report, w: f64) {
        if !self.outcome {
            return;
        }
        match r.status {
            Status::Success => s.successes += w,
            Status::Failure | Status::Error | Status::Timeout => s.failures += w,
            Status::Cancelled => {}
        }
    }

    fn add_measurements(&self, s: &mut Sums, r: &Report, w: f64) {
        if !self.measurements {
            return;
        }
        if matches!(r.status, Status::Success | Status::Failure) {
            s.ratio_in.add_ratio(w, self.ratio_in.0, self.ratio_in.1);
            s.ratio_out.add_ratio(w, self.ratio_out.0, self.ratio_out.1);
            s.cost_ratio.add_ratio(w, self.cost.0, self.cost.1);
            if self.tokens {
                s.tokens_w += w;
                s.input_plain += w * r.input_tokens as f64;
                s.cached_plain += w * r.cached_input_tokens.min(r.input_tokens) as f64;
                s.output_plain += w * r.output_tokens as f64;
            }
            if self.cost.0 > 0.0 {
                s.cost_w += w;
                s.cost_plain += w * self.cost.0;
            }
        }
        if r.latency_ms > 0.0
            && matches!(
                r.status,
                Status::Success | Status::Failure | Status::Timeout
            )
        {
            s.latency.add(w, r.latency_ms);
        }
    }
}

/// Mean cost per step for the leaderboard: billed cost when reported, else the list price of
/// the mean reported tokens.
fn mean_cost(spec: &ModelSpec, s: &Sums) -> f64 {
    if s.cost_w > 1e-12 {
        return s.cost_plain / s.cost_w;
    }
    if s.tokens_w <= 1e-12 {
        return 0.0;
    }
    let t_in = s.input_plain / s.tokens_w;
    let share = if s.input_plain > 0.0 {
        s.cached_plain / s.input_plain
    } else {
        0.0
    };
    step_cost(spec, t_in, share, s.output_plain / s.tokens_w)
}
