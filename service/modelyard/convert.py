"""Proto <-> domain conversion and request validation. Every rejection names the field and the fix."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace

from modelyard.domain import (
    JOB_STATUS_NAMES,
    ROLE_NAMES,
    STATUS_NAMES,
    BudgetView,
    CandidateView,
    Constraints,
    Decision,
    ModelChoice,
    OutcomeInput,
    RouteInput,
    TaskProfile,
)
from modelyard.errors import InvalidArgument
from modelyard.v1 import router_pb2, store_pb2, types_pb2

MAX_ID = 128
MAX_TOKENS = 10_000_000
MAX_LIST = 256
MAX_USD = 100_000.0
MAX_LATENCY_MS = 86_400_000.0
MIN_P = 1e-6  # the core's floor on P(success) (score.rs MIN_SUCCESS_PROBABILITY)


def req_id(value: str, field: str, *, required: bool = True) -> str:
    if not value:
        if required:
            raise InvalidArgument(field, "is required; set a non-empty id")
        return value
    if len(value) > MAX_ID:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {MAX_ID} allowed")
    if not value.isprintable():
        raise InvalidArgument(field, "contains control characters; use printable text")
    return value


def tokens(value: int, field: str) -> int:
    if value < 0 or value > MAX_TOKENS:
        raise InvalidArgument(field, f"must be between 0 and {MAX_TOKENS:,}, got {value}")
    return value


def number(value: float, field: str, *, upper: float, lower: float = 0.0) -> float:
    if not math.isfinite(value) or value < lower or value > upper:
        raise InvalidArgument(field, f"must be a finite number between {lower:g} and {upper:g}, got {value!r}")
    return value


def names(values: Sequence[str], field: str) -> tuple[str, ...]:
    if len(values) > MAX_LIST:
        raise InvalidArgument(field, f"has {len(values)} entries; at most {MAX_LIST} allowed")
    for i, v in enumerate(values):
        req_id(v, f"{field}[{i}]")
    return tuple(values)


def enum(value: int, known: dict[int, str], field: str, proto_enum: str) -> int:
    if value not in known:
        choices = ", ".join(f"{proto_enum}_{n.upper()}" for n in known.values())
        what = "is unspecified" if value == 0 else f"has unknown value {value}"
        raise InvalidArgument(field, f"{what}; use one of {choices}")
    return value


def task_profile(msg: types_pb2.TaskProfile, field: str, has: bool, defaults: tuple[int, int, int]) -> TaskProfile:
    if not has:
        raise InvalidArgument(field, "is required: give at least its role and task_class")
    d_in, d_out, d_cached = defaults
    est_in = tokens(msg.est_input_tokens, f"{field}.est_input_tokens") or d_in
    cached = tokens(msg.est_cached_input_tokens, f"{field}.est_cached_input_tokens")
    if cached > est_in:
        raise InvalidArgument(f"{field}.est_cached_input_tokens",
                              f"({cached}) cannot exceed est_input_tokens ({est_in})")
    return TaskProfile(
        role=enum(msg.role, ROLE_NAMES, f"{field}.role", "ROLE"),
        task_class=req_id(msg.task_class, f"{field}.task_class"),
        est_input_tokens=est_in,
        est_output_tokens=tokens(msg.est_output_tokens, f"{field}.est_output_tokens") or d_out,
        est_cached_input_tokens=cached or (d_cached if not msg.est_input_tokens else 0),
        capabilities=names(msg.required_capabilities, f"{field}.required_capabilities"),
        min_context_window=tokens(msg.min_context_window, f"{field}.min_context_window"),
    )


def constraints(msg: types_pb2.Constraints, field: str) -> Constraints:
    def opt(name: str, upper: float) -> float | None:
        present = msg.HasField(name)  # type: ignore[arg-type]  # the names below are the optional fields
        return number(getattr(msg, name), f"{field}.{name}", upper=upper) if present else None

    return Constraints(
        max_cost_usd=opt("max_cost_usd", MAX_USD),
        max_latency_ms=opt("max_latency_ms", MAX_LATENCY_MS),
        min_success_probability=opt("min_success_probability", 1.0),
        allowed_models=names(msg.allowed_models, f"{field}.allowed_models"),
        denied_models=names(msg.denied_models, f"{field}.denied_models"),
        required_provenance=names(msg.required_provenance, f"{field}.required_provenance"),
    )


def route_input(msg: router_pb2.RouteRequest, defaults: tuple[int, int, int], prefix: str = "") -> RouteInput:
    if msg.attempt < 0 or msg.attempt > 100:
        raise InvalidArgument(f"{prefix}attempt", f"must be between 0 and 100, got {msg.attempt}")
    return RouteInput(
        request_id=req_id(msg.request_id, f"{prefix}request_id"),
        job_id=req_id(msg.job_id, f"{prefix}job_id"),
        task=task_profile(msg.task, f"{prefix}task", msg.HasField("task"), defaults),
        constraints=constraints(msg.constraints, f"{prefix}constraints"),
        attempt=max(1, msg.attempt),
        failed_models=names(msg.failed_models, f"{prefix}failed_models"),
        explain=msg.explain,
        explore=msg.explore if msg.HasField("explore") else None,
        context_tokens=tokens(msg.context_tokens, f"{prefix}context_tokens"),
    )


def outcome_input(msg: router_pb2.OutcomeReport) -> OutcomeInput:
    u = msg.usage
    inp = tokens(u.input_tokens, "usage.input_tokens")
    cached = tokens(u.cached_input_tokens, "usage.cached_input_tokens")
    if cached > inp:
        raise InvalidArgument("usage.cached_input_tokens", f"({cached}) cannot exceed usage.input_tokens ({inp})")
    return OutcomeInput(
        decision_id=req_id(msg.decision_id, "decision_id"),
        status=enum(msg.status, STATUS_NAMES, "status", "OUTCOME_STATUS"),
        input_tokens=inp, cached_input_tokens=cached,
        output_tokens=tokens(u.output_tokens, "usage.output_tokens"),
        latency_ms=number(msg.latency_ms, "latency_ms", upper=MAX_LATENCY_MS),
        model_id=req_id(msg.model_id, "model_id", required=False),
        cost_usd=number(msg.cost_usd, "cost_usd", upper=MAX_USD) if msg.HasField("cost_usd") else None,
        time_to_first_token_ms=number(msg.time_to_first_token_ms, "time_to_first_token_ms", upper=MAX_LATENCY_MS),
    )


def job_status(value: int) -> int:
    return enum(value, JOB_STATUS_NAMES, "status", "JOB_STATUS")


# domain -> proto ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def model_ref(m: ModelChoice) -> types_pb2.ModelRef:
    # Cached per model (a frozen value): messages placed in another message's field are copied, so
    # the cached one is never changed by its users. Saves four message builds per Route.
    return types_pb2.ModelRef(model_id=m.model_id, provider=m.provider, endpoint=m.endpoint,
                              upstream_model=m.upstream_model)


def candidate(c: CandidateView) -> types_pb2.CandidateScore:
    return types_pb2.CandidateScore(
        model_id=c.model_id, excluded=c.excluded, constraint=c.constraint, detail=c.detail,
        expected=types_pb2.Expectation(cost_usd=c.cost_usd, success_probability=c.success_probability,
                                       latency_ms=c.latency_ms,
                                       cost_per_success_usd=c.cost_usd / max(c.success_probability, MIN_P)),
        sampled_success_probability=c.sampled_success, evidence=c.evidence, score=c.score,
        success_low=c.success_low, success_high=c.success_high,
    )


def budget_window(v: BudgetView) -> types_pb2.BudgetWindow:
    return types_pb2.BudgetWindow(
        scope=v.scope, subject=v.subject, window=types_pb2.Window.ValueType(v.window), hard_limit_usd=v.hard_usd or 0.0,
        soft_limit_usd=v.soft_usd or 0.0, spent_usd=v.spent_usd, reserved_usd=v.reserved_usd,
        remaining_usd=v.remaining_usd or 0.0, resets_at=v.resets_at, has_limit=v.hard_usd is not None,
    )


def decision(d: Decision) -> router_pb2.RouteDecision:
    return router_pb2.RouteDecision(
        decision_id=d.decision_id, model=model_ref(d.model),
        fallbacks=[model_ref(f) for f in d.fallbacks],
        expected=types_pb2.Expectation(cost_usd=d.cost_usd, success_probability=d.success_probability,
                                       latency_ms=d.latency_ms, cost_per_success_usd=d.cost_per_success_usd),
        reserved_usd=d.reserved_usd, budget_remaining_usd=d.budget_remaining_usd,
        exploration=d.exploration, reason=d.reason, candidates=[candidate(c) for c in d.candidates],
        sticky=d.sticky, replayed=d.replayed, reservation_expires_at=d.reservation_expires_at,
        budgets=[budget_window(b) for b in d.budgets],
    )


# ---- the decision as the stores keep it (store.proto StoredDecision) ----

def stored_decision(d: Decision) -> bytes:
    """The payload of the decision's row: the answer as sent (`decision`, replayed false) and what
    its outcome is learned with. The Rust front writes the same message (front/route.rs `answer`)."""
    msg = store_pb2.StoredDecision(
        decision=decision(replace(d, replayed=False) if d.replayed else d),
        est_input_tokens=d.est_input_tokens, est_output_tokens=d.est_output_tokens,
        est_cached_input_tokens=d.est_cached_input_tokens, attempt=d.attempt,
    )
    if d.failed_effort is not None:
        msg.failed_effort = d.failed_effort
    return msg.SerializeToString()


def decision_from_stored(payload: bytes) -> Decision:
    """A decision row's payload back as a Decision; `convert.decision` of it gives the answer as it
    was sent. Rows written before store.proto (JSON text, which starts with '{') are read too."""
    if payload[:1] == b"{":
        return Decision.from_json_payload(payload)
    msg = store_pb2.StoredDecision.FromString(payload)
    m, e = msg.decision, msg.decision.expected
    return Decision(
        decision_id=m.decision_id, model=_model_choice(m.model),
        fallbacks=tuple(_model_choice(f) for f in m.fallbacks),
        cost_usd=e.cost_usd, success_probability=e.success_probability, latency_ms=e.latency_ms,
        cost_per_success_usd=e.cost_per_success_usd, reserved_usd=m.reserved_usd,
        budget_remaining_usd=m.budget_remaining_usd, exploration=m.exploration, sticky=m.sticky,
        reason=m.reason, reservation_expires_at=m.reservation_expires_at,
        candidates=tuple(CandidateView(
            model_id=c.model_id, excluded=c.excluded, constraint=c.constraint, detail=c.detail,
            cost_usd=c.expected.cost_usd, success_probability=c.expected.success_probability,
            sampled_success=c.sampled_success_probability, latency_ms=c.expected.latency_ms,
            score=c.score, evidence=c.evidence, success_low=c.success_low, success_high=c.success_high,
        ) for c in m.candidates),
        # `budget_window` writes a missing limit as 0 with has_limit false (remaining with it) and a
        # missing soft limit as 0: read back the same way, they encode to the same answer.
        budgets=tuple(BudgetView(
            scope=b.scope, subject=b.subject, window=int(b.window),
            hard_usd=b.hard_limit_usd if b.has_limit else None, soft_usd=b.soft_limit_usd or None,
            spent_usd=b.spent_usd, reserved_usd=b.reserved_usd,
            remaining_usd=b.remaining_usd if b.has_limit else None, resets_at=b.resets_at,
        ) for b in m.budgets),
        replayed=m.replayed, est_input_tokens=msg.est_input_tokens, est_output_tokens=msg.est_output_tokens,
        est_cached_input_tokens=msg.est_cached_input_tokens, attempt=msg.attempt,
        failed_effort=msg.failed_effort if msg.HasField("failed_effort") else None,
    )


def _model_choice(m: types_pb2.ModelRef) -> ModelChoice:
    return ModelChoice(model_id=m.model_id, provider=m.provider, endpoint=m.endpoint, upstream_model=m.upstream_model)
