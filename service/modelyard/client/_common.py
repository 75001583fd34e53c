"""What the sync and async clients share: auth metadata, request ids, the retry policy and proto conversions.

Nothing here does I/O. The clients build every request with these functions, so both send byte-identical
messages for the same arguments.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import grpc

from modelyard.client.errors import InvalidRequest
from modelyard.ids import time_ordered_id
from modelyard.v1 import admin_pb2, catalog_pb2, router_pb2, types_pb2

USER_AGENT = "modelyard-client/0.1"

ROLES = {"planner": 1, "executor": 2, "reviewer": 3, "explorer": 4, "summarizer": 5, "orchestrator": 6}
OUTCOME_STATUSES = {
    "success": 1, "succeeded": 1, "ok": 1,
    "failure": 2, "failed": 2, "fail": 2,
    "error": 3,
    "timeout": 4, "timed_out": 4,
    "cancelled": 5, "canceled": 5,
}
JOB_STATUSES = {"succeeded": 1, "success": 1, "failed": 2, "failure": 2, "abandoned": 3}

CONSTRAINT_KEYS = frozenset({
    "max_cost_usd", "max_latency_ms", "min_success_probability",
    "allowed_models", "denied_models", "required_provenance",
})

Role = str | int
Status = str | int
ConstraintsArg = Mapping[str, Any] | types_pb2.Constraints | None


class RouteOptions(TypedDict, total=False):
    """Optional arguments of a Route call (see `RouteRequest` in router.proto)."""

    est_input_tokens: int
    est_output_tokens: int
    est_cached_input_tokens: int
    capabilities: Sequence[str]
    min_context_window: int
    constraints: ConstraintsArg
    attempt: int
    failed_models: Sequence[str]
    explain: bool
    explore: bool | None
    context_tokens: int
    request_id: str | None


class ReportOptions(TypedDict, total=False):
    """Optional arguments of a ReportOutcome call (see `OutcomeReport` in router.proto)."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    latency_ms: float
    model_id: str
    cost_usd: float | None
    time_to_first_token_ms: float


class DispatchOptions(TypedDict, total=False):
    """Optional arguments of a Dispatch call besides the route's (see `DispatchRequest` in router.proto)."""

    max_output_tokens: int
    temperature: float | None
    tools: Sequence[Mapping[str, Any]] | None
    stream: bool
    metadata: Mapping[str, str] | None


class DispatchCallOptions(RouteOptions, DispatchOptions, total=False):
    """Everything `dispatch()` takes as keywords: the route's options and the call's."""


DISPATCH_KEYS = frozenset(DispatchOptions.__annotations__)
# A Dispatch waits for a model to answer: its deadline is minutes, not the seconds of the other calls.
DISPATCH_TIMEOUT_S = 600.0
Message = Mapping[str, str] | router_pb2.ChatMessage


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)


# Every call of a job carries its id in this header, so a balancer in front of many replicas can keep a
# job on one replica (deploy/envoy.yaml hashes on it): its stickiness and failure memory stay local.
JOB_HEADER = "modelyard-job-id"


def with_job(metadata: tuple[tuple[str, str], ...], job_id: str) -> tuple[tuple[str, str], ...]:
    return (*metadata, (JOB_HEADER, job_id)) if job_id else metadata


def new_id() -> str:
    """A fresh request or job id: time-ordered (modelyard.ids), so the store's indexes on them stay local."""
    return time_ordered_id()


def channel_options(extra: Sequence[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    opts: dict[str, Any] = {"grpc.primary_user_agent": USER_AGENT}
    opts.update(dict(extra or ()))
    return list(opts.items())


@dataclass(frozen=True)
class RetryPolicy:
    """UNAVAILABLE is retried on every call, DEADLINE_EXCEEDED only where the call says so (Route).

    `retries` is the number of retries after the first attempt. Delays grow as base * 2**n up to `cap_s`,
    each drawn uniformly from [delay/2, delay] (jitter).
    """

    retries: int = 3
    base_s: float = 0.1
    cap_s: float = 2.0

    def should_retry(self, code: grpc.StatusCode | None, done: int, *, on_deadline: bool) -> bool:
        if done >= self.retries:
            return False
        return code == grpc.StatusCode.UNAVAILABLE or (on_deadline and code == grpc.StatusCode.DEADLINE_EXCEEDED)

    def delay(self, done: int) -> float:
        full = min(self.cap_s, self.base_s * (2**done))
        return random.uniform(full / 2, full)


def _enum(value: str | int, names: Mapping[str, int], prefix: str, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidRequest(f"{what}: expected a name or an enum number, got {value!r}")
    if isinstance(value, int):
        return value
    key = value.strip().lower()
    if key.startswith(prefix.lower()):
        key = key[len(prefix):]
    if key not in names:
        raise InvalidRequest(f"{what}: unknown {value!r}; use one of {', '.join(names)}")
    return names[key]


def role(value: Role) -> int:
    return _enum(value, ROLES, "ROLE_", "role")


def outcome_status(value: Status) -> int:
    return _enum(value, OUTCOME_STATUSES, "OUTCOME_STATUS_", "status")


def job_status(value: Status) -> int:
    return _enum(value, JOB_STATUSES, "JOB_STATUS_", "status")


def constraints(value: ConstraintsArg) -> types_pb2.Constraints | None:
    if value is None or isinstance(value, types_pb2.Constraints):
        return value
    unknown = set(value) - CONSTRAINT_KEYS
    if unknown:
        raise InvalidRequest(f"constraints: unknown key(s) {sorted(unknown)}; use {sorted(CONSTRAINT_KEYS)}")
    fields = {k: v for k, v in value.items() if v is not None}
    for k in ("allowed_models", "denied_models", "required_provenance"):
        if isinstance(fields.get(k), str):
            fields[k] = [fields[k]]
    return types_pb2.Constraints(**fields)


def task_profile(role_: Role, task_class: str, opts: Mapping[str, Any]) -> types_pb2.TaskProfile:
    return types_pb2.TaskProfile(
        role=types_pb2.Role.ValueType(role(role_)),
        task_class=task_class,
        est_input_tokens=opts.get("est_input_tokens", 0),
        est_output_tokens=opts.get("est_output_tokens", 0),
        est_cached_input_tokens=opts.get("est_cached_input_tokens", 0),
        required_capabilities=list(opts.get("capabilities", ())),
        min_context_window=opts.get("min_context_window", 0),
    )


def route_request(role_: Role, task_class: str, job_id: str, opts: RouteOptions) -> router_pb2.RouteRequest:
    """A RouteRequest; the request_id is generated here when not given, once, before any retry."""
    req = router_pb2.RouteRequest(
        request_id=opts.get("request_id") or new_id(),
        job_id=job_id,
        task=task_profile(role_, task_class, opts),
        attempt=opts.get("attempt", 1),
        failed_models=list(opts.get("failed_models", ())),
        explain=opts.get("explain", False),
        context_tokens=opts.get("context_tokens", 0),
    )
    c = constraints(opts.get("constraints"))
    if c is not None:
        req.constraints.CopyFrom(c)
    explore = opts.get("explore")
    if explore is not None:
        req.explore = explore
    return req


def outcome_report(decision_id: str, status: Status, opts: ReportOptions) -> router_pb2.OutcomeReport:
    req = router_pb2.OutcomeReport(
        decision_id=decision_id,
        status=types_pb2.OutcomeStatus.ValueType(outcome_status(status)),
        usage=types_pb2.Usage(
            input_tokens=opts.get("input_tokens", 0),
            cached_input_tokens=opts.get("cached_input_tokens", 0),
            output_tokens=opts.get("output_tokens", 0),
        ),
        latency_ms=opts.get("latency_ms", 0.0),
        model_id=opts.get("model_id", ""),
        time_to_first_token_ms=opts.get("time_to_first_token_ms", 0.0),
    )
    cost = opts.get("cost_usd")
    if cost is not None:
        req.cost_usd = cost
    return req


def job_outcome(job_id: str, status: Status) -> router_pb2.JobOutcome:
    return router_pb2.JobOutcome(job_id=job_id, status=types_pb2.JobStatus.ValueType(job_status(status)))


def estimate_request(role_: Role, task_class: str, opts: RouteOptions) -> catalog_pb2.EstimateRequest:
    req = catalog_pb2.EstimateRequest(task=task_profile(role_, task_class, opts))
    c = constraints(opts.get("constraints"))
    if c is not None:
        req.constraints.CopyFrom(c)
    return req


def import_request(data: bytes | admin_pb2.ExportStateResponse, merge: bool) -> admin_pb2.ImportStateRequest:
    state = data.state if isinstance(data, admin_pb2.ExportStateResponse) else bytes(data)
    return admin_pb2.ImportStateRequest(state=state, merge=merge)


def split_dispatch_options(options: Mapping[str, Any]) -> tuple[RouteOptions, DispatchOptions]:
    """One keyword set into the route's options and the call's own (max_output_tokens, tools, ...)."""
    route = {k: v for k, v in options.items() if k not in DISPATCH_KEYS}
    call = {k: v for k, v in options.items() if k in DISPATCH_KEYS}
    return RouteOptions(**route), DispatchOptions(**call)  # type: ignore[typeddict-item]


def chat_message(m: Message, i: int) -> router_pb2.ChatMessage:
    if isinstance(m, router_pb2.ChatMessage):
        return m
    unknown = set(m) - {"role", "content", "raw_json"}
    if unknown or "role" not in m:
        raise InvalidRequest(f"messages[{i}]: give 'role' and 'content' (or 'raw_json'); got keys {sorted(m)}")
    return router_pb2.ChatMessage(role=m["role"], content=m.get("content", ""), raw_json=m.get("raw_json", ""))


def dispatch_request(role_: Role, task_class: str, job_id: str, messages: Sequence[Message],
                     route_opts: RouteOptions, opts: DispatchOptions) -> router_pb2.DispatchRequest:
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    req = router_pb2.DispatchRequest(
        route=route_request(role_, task_class, job_id, route_opts),
        messages=[chat_message(m, i) for i, m in enumerate(messages)],
        max_output_tokens=opts.get("max_output_tokens", 0),
        stream=opts.get("stream", True),
        metadata=dict(opts.get("metadata") or {}),
    )
    temperature = opts.get("temperature")
    if temperature is not None:
        req.temperature = temperature
    tools = opts.get("tools")
    if tools:
        req.tools_json = json.dumps(list(tools))
    return req


class DispatchResult:
    """What one Dispatch call streamed, gathered event by event (`add`).

    `decision` is the first route's; when the call fell back, `fallbacks` lists each notice and the
    answer came from `outcome.decision_id`, the decision a verdict must be reported on.
    """

    def __init__(self) -> None:
        self.decision: router_pb2.RouteDecision | None = None
        self.text_parts: list[str] = []
        self.tool_calls: dict[int, dict[str, str]] = {}
        self.fallbacks: list[router_pb2.FallbackNotice] = []
        self.outcome: router_pb2.DispatchOutcome | None = None

    def add(self, event: router_pb2.DispatchEvent) -> None:
        kind = event.WhichOneof("event") or ""
        if kind == "decision" and self.decision is None:
            self.decision = event.decision
        elif kind == "content":
            self.text_parts.append(event.content.text)
        elif kind == "tool_call":
            d = event.tool_call
            call = self.tool_calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = d.id or call["id"]
            call["name"] = d.name or call["name"]
            call["arguments"] += d.arguments_delta
        elif kind == "fallback":
            self.fallbacks.append(event.fallback)
        elif kind == "outcome":
            self.outcome = event.outcome

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def failed_models(self) -> tuple[str, ...]:
        """Models this call tried that failed before the one that answered."""
        return tuple(f.failed_model_id for f in self.fallbacks)
