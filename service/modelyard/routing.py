"""Business functions of the Router service: Route, ReportOutcome and CompleteJob.

Each takes the App, the caller's principal and domain values; none knows about protobuf or gRPC.

Route shapes its choice with the budget usage of the caller's tenant and key. It takes that usage
from the App's `UsageMirror` (`app.usage`, kept current by this replica's own reservations and
settlements and re-read from the store every 100 ms) rather than reading the store on every call,
so a Route makes one store round trip, the reservation, which enforces the hard limits atomically. The mirror never
refuses a call: exhaustion and budget-only exclusions are re-checked on usage read from the store.
See `modelyard.budget` for the full argument.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from modelyard.app import App
from modelyard.auth import Principal
from modelyard.budget import Headroom, WindowLimit, headroom, limits_for
from modelyard.convert import decision_from_stored, stored_decision
from modelyard.domain import (
    CANCELLED,
    ERROR,
    FAILURE,
    JOB_ABANDONED,
    JOB_SUCCEEDED,
    SUCCESS,
    TIMEOUT,
    WINDOW_NAMES,
    CandidateView,
    Decision,
    JobResult,
    ModelChoice,
    OutcomeInput,
    OutcomeResult,
    RouteInput,
    micros_to_usd,
    usd_to_micros,
)
from modelyard.errors import BudgetExhausted, InvalidArgument, NoEligibleModel, NotFound
from modelyard.ids import time_ordered_id
from modelyard.policy import check_allowed_exist, narrow
from modelyard.pricing import call_cost_usd
from modelyard.runtime import Runtime, TenantRuntime
from modelyard.store import BudgetExceeded, DecisionNotFound, JobNotFound, Reservation
from modelyard.store.base import VERDICT_PENDING, DecisionRecord
from modelyard.store.summary import released_micros
from modelyard.telemetry import rpc as telemetry


def _subjects(tenant: str, key_id: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The budget subjects a call counts against: its tenant and its key."""
    return (("tenant", tenant), ("key", key_id))


def _no_decision(decision_id: str, tenant: str) -> NotFound:
    return NotFound(f"decision_id: no decision '{decision_id}' for tenant '{tenant}'")


def _choice(rt: Runtime, model_id: str) -> ModelChoice:
    m = rt.model(model_id)
    return ModelChoice(model_id=m.id, provider=m.provider, endpoint=m.endpoint,
                       upstream_model=m.upstream_model)


def candidate_views(core_candidates: list) -> tuple[CandidateView, ...]:
    """The core's per-model scores as domain values (Route's explain and Catalog.Estimate)."""
    return tuple(
        CandidateView(
            model_id=c.model, excluded=c.excluded, constraint=c.constraint, detail=c.detail,
            cost_usd=c.cost_usd, success_probability=c.success_probability,
            sampled_success=c.sampled_success, latency_ms=c.latency_ms, score=c.score,
            evidence=c.evidence, success_low=c.success_low, success_high=c.success_high,
        )
        for c in core_candidates
    )


async def route(app: App, who: Principal, req: RouteInput) -> Decision:
    decision = await _route(app, who, req)
    telemetry.on_route(who, req, decision)
    return decision


async def _headroom(
    app: App, subjects: Sequence[tuple[str, str]], now: float, tenant_budgets: Mapping[str, WindowLimit],
    key_budgets: Mapping[str, WindowLimit], *, fresh: bool,
) -> tuple[Headroom, bool]:
    """Headroom, and whether it came from the mirror. Only usage read from the store may refuse."""
    if not fresh:
        usages = app.usage.get(subjects, now)
        if usages is not None:
            try:
                return headroom(usages, tenant_budgets, key_budgets), True
            except BudgetExhausted:
                pass  # never refuse on mirrored usage: read the store and decide on that
    read_at = time.monotonic()
    usages = await app.store.usage(subjects, now)
    app.usage.put(usages, read_at)
    return headroom(usages, tenant_budgets, key_budgets), False


async def _route(app: App, who: Principal, req: RouteInput) -> Decision:
    rt = app.runtime
    tenant = rt.tenant(who)
    now = app.clock()
    key_budgets = tenant.key_budgets.get(who.key_id, {})
    subjects = _subjects(who.tenant, who.key_id)
    check_allowed_exist(req.constraints, rt.config.model)
    constraints = narrow(req.constraints, tenant.policy_for(req.task.role))
    sticky, failures, failed_effort = app.jobs.context(who.tenant, req.job_id, req.task.role)
    if req.attempt <= 1:
        failed_effort = None  # a first try of another step of the job: not a retry
    elif app.sync is not None or not app.jobs.knows(who.tenant, req.job_id):
        # The job's failures may have been reported to another replica, or before a restart: the
        # store has every settled step of the job, so a retry reads them there.
        failures, failed_effort = await _stored_failures(app, who, req, now)
    explore = rt.config.routing.explore if req.explore is None else req.explore
    for fresh in (False, True):
        try:
            room, mirrored = await _headroom(app, subjects, now, tenant.budgets, key_budgets, fresh=fresh)
        except BudgetExhausted:
            replay = await _replay(app, who, req)
            if replay is not None:
                return replay
            raise
        out = app.core_for(who.tenant).route(
            req, constraints=constraints, budget_cap_usd=room.cap_usd, job_failures=failures,
            sticky_model=sticky, time_value_usd_per_s=tenant.time_value_usd_per_s,
            explore=explore, seed=app.next_seed(), now=now, failed_effort=failed_effort,
        )
        if out.model is not None or not mirrored or not any(c.constraint == "budget" for c in out.candidates):
            break
        # Excluded for the budget cap computed from mirrored usage: decide again on the store's.
    if out.model is None:
        replay = await _replay(app, who, req)
        if replay is not None:
            return replay
        if any(c.constraint == "budget" for c in out.candidates):
            # A model met every other constraint and only money stood in the way: that is the
            # budget's answer (RESOURCE_EXHAUSTED), not a policy mismatch.
            tight = min((v for v in room.views if v.remaining_usd is not None), key=lambda v: v.remaining_usd or 0.0)
            raise BudgetExhausted(
                f"{out.reason}; {tight.scope} '{tight.subject}' has ${tight.remaining_usd:.2f} left in its "
                f"{WINDOW_NAMES[tight.window]} window past the soft limit (resets at {tight.resets_at})")
        raise NoEligibleModel(out.reason)
    return await _reserve(app, who, req, tenant, key_budgets, out, room, now, failed_effort)


async def _stored_failures(app: App, who: Principal, req: RouteInput, now: float) -> tuple[int, float | None]:
    """(failures of the step's role in the job, their mean effort) from the job's settled decisions.

    The efforts are read from the core as it is now, not as it was when each failure was learned
    (`RoutingCore.effort`); the job tracker keeps the latter, so a replica that saw the failures
    itself uses its own memory (unless replicas share the store, where any of them may have)."""
    role = req.task.role
    core = app.core_for(who.tenant)
    failures, efforts = 0, []
    for d in await app.store.job_decisions(who.tenant, req.job_id):
        if d.role != role or not d.settled or d.status not in (FAILURE, ERROR, TIMEOUT):
            continue
        failures += 1
        routed = decision_from_stored(d.payload)
        effort = core.effort(
            model=d.model_used or d.model, role=role, task_class=d.task_class, status=d.status, now=now,
            input_tokens=d.input_tokens, cached_input_tokens=d.cached_input_tokens, output_tokens=d.output_tokens,
            est_input_tokens=routed.est_input_tokens, est_output_tokens=routed.est_output_tokens,
            est_cached_input_tokens=routed.est_cached_input_tokens,
            cost_usd=micros_to_usd(d.charged_micros) if d.charged_micros > 0 else None,
        )
        if effort is not None:
            efforts.append(effort)
    return failures, (sum(efforts) / len(efforts) if efforts else None)


async def _replay(app: App, who: Principal, req: RouteInput) -> Decision | None:
    """A retried request_id must get its first answer even if budgets or models changed since."""
    record = await app.store.find_request(req.request_id, who.tenant)
    return decision_from_stored(record.payload).as_replay() if record else None


async def _reserve(
    app: App, who: Principal, req: RouteInput, tenant: TenantRuntime, key_budgets: Mapping[str, WindowLimit],
    out, room: Headroom, now: float, failed_effort: float | None,
) -> Decision:
    rt = app.runtime
    ttl = rt.config.store.reservation_ttl_s
    estimate_micros = max(1, math.ceil(out.expected_cost_usd * 1_000_000))
    decision = Decision(
        decision_id=time_ordered_id(),
        model=_choice(rt, out.model),
        fallbacks=tuple(_choice(rt, m) for m in out.fallbacks),
        cost_usd=out.expected_cost_usd, success_probability=out.success_probability,
        latency_ms=out.latency_ms, cost_per_success_usd=out.cost_per_success_usd,
        reserved_usd=micros_to_usd(estimate_micros),
        budget_remaining_usd=(room.remaining_usd - micros_to_usd(estimate_micros))
        if room.remaining_usd is not None else -1.0,
        exploration=out.exploration, sticky=out.sticky, reason=out.reason,
        reservation_expires_at=int(now + ttl),
        candidates=candidate_views(out.candidates) if req.explain else (),
        budgets=room.views,
        est_input_tokens=req.task.est_input_tokens,
        est_output_tokens=req.task.est_output_tokens,
        est_cached_input_tokens=req.task.est_cached_input_tokens,
        attempt=req.attempt,
        failed_effort=failed_effort,
    )
    reservation = Reservation(
        request_id=req.request_id, decision_id=decision.decision_id, tenant=who.tenant,
        key_id=who.key_id, job_id=req.job_id, model=decision.model.model_id, role=req.task.role,
        task_class=req.task.task_class, estimate_micros=estimate_micros, created_at=now,
        expires_at=now + ttl, payload=stored_decision(decision),
    )
    limits = limits_for(who.tenant, who.key_id, tenant.budgets, key_budgets)
    subjects = _subjects(who.tenant, who.key_id)
    try:
        record, replayed = await app.store.reserve(reservation, limits, now)
    except BudgetExceeded as exc:
        app.usage.forget(subjects)  # it let a refused call through: read the store next time
        raise BudgetExhausted(str(exc)) from exc
    if replayed:
        return decision_from_stored(record.payload).as_replay()
    app.usage.apply(subjects, now, reserved=estimate_micros)  # what the store just added to both subjects
    app.stats.decided(decision.model.model_id)
    return decision


async def report_outcome(app: App, who: Principal, req: OutcomeInput) -> OutcomeResult:
    record = await app.store.get_decision(req.decision_id, who.tenant)
    if record is None:
        raise _no_decision(req.decision_id, who.tenant)
    rt = app.runtime
    model_used = req.model_id or record.model
    model = rt.config.model(model_used)
    if model is None:
        raise InvalidArgument("model_id", f"unknown model '{model_used}'; use an id from ListModels")
    cost = req.cost_usd if req.cost_usd is not None else call_cost_usd(
        model.price, req.input_tokens, req.cached_input_tokens, req.output_tokens)
    now = app.clock()
    if record.status == VERDICT_PENDING and not req.verdict_pending and req.status in (SUCCESS, FAILURE):
        return await _verdict(app, who, req, record, now)
    try:
        result = await app.store.settle(
            req.decision_id, who.tenant, actual_micros=usd_to_micros(cost),
            status=VERDICT_PENDING if req.verdict_pending else req.status,
            model_used=model_used, input_tokens=req.input_tokens,
            cached_input_tokens=req.cached_input_tokens, output_tokens=req.output_tokens,
            latency_ms=req.latency_ms, now=now,
        )
    except DecisionNotFound as exc:
        raise _no_decision(req.decision_id, who.tenant) from exc
    effort = None
    if not result.duplicate:
        # The store moved the estimate out of `reserved` and the charge into `spent` in the windows
        # the reservation was made in (those containing its created_at): mirror the same change.
        app.usage.apply(_subjects(record.tenant, record.key_id), record.created_at,
                        reserved=-record.estimate_micros, spent=result.charged_micros)
        app.stats.outcomes += 1
        if req.status != CANCELLED:
            usage = (req.input_tokens, req.cached_input_tokens, req.output_tokens, req.latency_ms)
            effort = _teach(app, who, record, model_used, req.status, usage, req.cost_usd, now,
                            learn="measurements" if req.verdict_pending else "all")
        app.jobs.observe(who.tenant, record.job_id, record.role, model_used, req.status, effort)
    outcome = OutcomeResult(
        decision_id=req.decision_id, charged_usd=micros_to_usd(result.charged_micros),
        released_usd=micros_to_usd(result.released_micros), duplicate=result.duplicate,
    )
    telemetry.on_outcome(who, req, record, model_used, outcome)
    return outcome


def _teach(
    app: App, who: Principal, record: DecisionRecord, model: str, status: int,
    usage: tuple[int, int, int, float], cost_usd: float | None, now: float, *, learn: str,
) -> float | None:
    """One report to the tenant's core, with what the decision was routed with (estimates,
    attempt, failed effort); returns the step's effort."""
    routed = decision_from_stored(record.payload)
    core = app.core_for(who.tenant)
    input_tokens, cached_input_tokens, output_tokens, latency_ms = usage
    effort = core.report(
        model=model, role=record.role, task_class=record.task_class, status=status,
        input_tokens=input_tokens, cached_input_tokens=cached_input_tokens, output_tokens=output_tokens,
        latency_ms=latency_ms, now=now, est_input_tokens=routed.est_input_tokens,
        est_output_tokens=routed.est_output_tokens, est_cached_input_tokens=routed.est_cached_input_tokens,
        cost_usd=cost_usd, attempt=routed.attempt, failed_effort=routed.failed_effort, learn=learn,
    )
    app.drain_core_events(core)
    return effort


async def _verdict(app: App, who: Principal, req: OutcomeInput, record: DecisionRecord, now: float) -> OutcomeResult:
    """The harness's verdict on a call Dispatch completed and settled: the core learns the step's
    outcome (its usage was learned at settlement), once; nothing is charged again."""
    model_used = record.model_used or record.model
    first = await app.store.record_verdict(req.decision_id, who.tenant, req.status)
    if first:
        # The settled usage goes along only for the step's effort (learn="outcome" learns no usage).
        usage = (record.input_tokens, record.cached_input_tokens, record.output_tokens, record.latency_ms)
        effort = _teach(app, who, record, model_used, req.status, usage, None, now, learn="outcome")
        app.jobs.observe(who.tenant, record.job_id, record.role, model_used, req.status, effort)
    outcome = OutcomeResult(
        decision_id=req.decision_id, charged_usd=micros_to_usd(record.charged_micros),
        released_usd=micros_to_usd(released_micros(record.estimate_micros, record.charged_micros)),
        duplicate=not first, verdict=first,
    )
    telemetry.on_outcome(who, req, record, model_used, outcome)
    return outcome


async def complete_job(app: App, who: Principal, job_id: str, status: int) -> JobResult:
    app.sync_front()  # the job's Routes the Rust front served, recorded before the job's telemetry
    now = app.clock()
    try:
        job, duplicate = await app.store.complete_job(who.tenant, job_id, status, now)
    except JobNotFound as exc:
        raise NotFound(f"job_id: no job '{job_id}' with routed steps for tenant '{who.tenant}'") from exc
    if not duplicate:
        app.stats.jobs_completed += 1
        if status != JOB_ABANDONED:
            decisions = await app.store.job_decisions(who.tenant, job_id)
            # With each step's attempt, a succeeded job credits the try that finished it, not the
            # tries that failed before it.
            steps = list(dict.fromkeys(
                (d.model_used or d.model, d.role, d.task_class, decision_from_stored(d.payload).attempt)
                for d in decisions if d.settled))
            if steps:
                core = app.core_for(who.tenant)
                core.complete_job(steps, success=status == JOB_SUCCEEDED, now=now)
                app.drain_core_events(core)
        app.jobs.forget(who.tenant, job_id)
    summary = JobResult(
        job_id=job_id, status=job.status, total_cost_usd=micros_to_usd(job.total_cost_micros),
        total_latency_ms=job.total_latency_ms, steps=job.steps, models=tuple(job.models),
        per_model=tuple((m, n, micros_to_usd(c)) for m, n, c in job.per_model), duplicate=duplicate,
    )
    telemetry.on_job(who, job_id, summary)
    return summary
