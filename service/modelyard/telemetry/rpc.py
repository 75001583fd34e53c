"""RPC telemetry: the OTel gRPC server interceptor, and what each business function adds to its span.

`server_interceptors(tel)` is empty when telemetry is off, so a disabled server pays nothing but one
context-variable read per business call. The `on_*` hooks annotate the current server span with the
decision or settlement and record the domain metrics; business code calls them and imports no OTel.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import trace

from modelyard.domain import JOB_STATUS_NAMES, ROLE_NAMES, STATUS_NAMES, WINDOW_NAMES
from modelyard.grpc_handlers import WrappedHandlers, rewrap
from modelyard.telemetry import semconv as sc

if TYPE_CHECKING:
    from modelyard.auth import Principal
    from modelyard.domain import Decision, JobResult, OutcomeInput, OutcomeResult, RouteInput
    from modelyard.store import DecisionRecord
    from modelyard.telemetry.setup import Telemetry

_current: contextvars.ContextVar[Telemetry | None] = contextvars.ContextVar("modelyard_telemetry", default=None)


def current() -> Telemetry | None:
    """The telemetry of the server handling the current RPC; None when it has telemetry off."""
    return _current.get()


@contextlib.contextmanager
def bound(tel: Telemetry | None) -> Iterator[None]:
    """Makes `tel` current outside an RPC (background tasks, tests)."""
    token = _current.set(tel)
    try:
        yield
    finally:
        _current.reset(token)


def server_interceptors(tel: Telemetry | None) -> list[grpc.aio.ServerInterceptor]:
    """Interceptors to put before the service interceptor: the standard OTel one, then the binder."""
    if tel is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=tel.tracer_provider), _Bind(tel)]


class _Bind(grpc.aio.ServerInterceptor):
    """Makes the server's telemetry current for the RPC and records rpc.server.duration."""

    def __init__(self, tel: Telemetry) -> None:
        self._tel = tel
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return self._wrapped.get(details.method, handler, self._wrap)

    def _wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        service, _, method = full_method.lstrip("/").rpartition("/")
        labels = {sc.LABEL_RPC_SERVICE: service, sc.LABEL_RPC_METHOD: method}
        return rewrap(handler, lambda b: self._unary(b, labels), lambda b: self._stream(b, labels))

    def _done(self, context: Any, labels: dict[str, str], start: float, failed: bool) -> None:
        code = context.code() if failed else None
        name = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
        self._tel.metrics.rpc_duration.record((time.perf_counter() - start) * 1000,
                                              {**labels, sc.LABEL_GRPC_CODE: name})

    def _unary(self, behavior: Callable[..., Any], labels: dict[str, str]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _current.set(self._tel)
            start, failed = time.perf_counter(), True
            try:
                result = await behavior(request, context)
                failed = False
                return result
            finally:
                self._done(context, labels, start, failed)

        return wrapper

    def _stream(self, behavior: Callable[..., Any], labels: dict[str, str]) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _current.set(self._tel)
            start, failed = time.perf_counter(), True
            try:
                async for item in behavior(request, context):
                    yield item
                failed = False
            finally:
                self._done(context, labels, start, failed)

        return wrapper


def role_name(role: int) -> str:
    return ROLE_NAMES.get(role, "unspecified")


def route_attributes(
    *, tenant: str, key_id: str, job_id: str, decision_id: str, role: str, task_class: str, attempt: int,
    model: str, provider: str, upstream_model: str, fallbacks: list[str], cost_usd: float,
    success_probability: float, latency_ms: float, exploration: bool, sticky: bool,
    budget_remaining_usd: float, reserved_usd: float, replayed: bool,
) -> dict[str, Any]:
    """A Route span's decision attributes (the Python Route's and the Rust front's, front.py)."""
    return {
        sc.MY_TENANT: tenant, sc.MY_KEY_ID: key_id, sc.MY_JOB_ID: job_id, sc.MY_DECISION_ID: decision_id,
        sc.MY_ROLE: role, sc.MY_TASK_CLASS: task_class, sc.MY_ATTEMPT: attempt, sc.MY_MODEL: model,
        sc.MY_PROVIDER: provider, sc.GEN_AI_REQUEST_MODEL: upstream_model, sc.MY_FALLBACKS: fallbacks,
        sc.MY_EXPECTED_COST: cost_usd, sc.MY_EXPECTED_SUCCESS: success_probability,
        sc.MY_EXPECTED_LATENCY: latency_ms, sc.MY_EXPLORATION: exploration, sc.MY_STICKY: sticky,
        sc.MY_BUDGET_REMAINING: budget_remaining_usd, sc.MY_RESERVED: reserved_usd, sc.MY_REPLAYED: replayed,
    }


def decision_labels(tel: Telemetry, tenant: str, model: str, role: str, exploration: bool,
                    task_class: str) -> dict[str, str]:
    m = tel.metrics
    return {sc.LABEL_TENANT: tenant, sc.LABEL_MODEL: model, sc.LABEL_ROLE: role,
            sc.LABEL_EXPLORATION: "true" if exploration else "false", sc.LABEL_TASK_CLASS: m.task_class(task_class)}


def on_route(who: Principal, req: RouteInput, decision: Decision) -> None:
    """Route: the decision on the span; decision count, budget gauges and the job's roles in metrics."""
    tel = _current.get()
    if tel is None:
        return
    role = role_name(req.task.role)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(route_attributes(
            tenant=who.tenant, key_id=who.key_id, job_id=req.job_id, decision_id=decision.decision_id, role=role,
            task_class=req.task.task_class, attempt=req.attempt, model=decision.model.model_id,
            provider=decision.model.provider, upstream_model=decision.model.upstream_model,
            fallbacks=[f.model_id for f in decision.fallbacks], cost_usd=decision.cost_usd,
            success_probability=decision.success_probability, latency_ms=decision.latency_ms,
            exploration=decision.exploration, sticky=decision.sticky,
            budget_remaining_usd=decision.budget_remaining_usd, reserved_usd=decision.reserved_usd,
            replayed=decision.replayed,
        ))
    m = tel.metrics
    for b in decision.budgets:
        if b.remaining_usd is not None:
            m.set_budget(who.tenant, b.scope, b.subject, WINDOW_NAMES.get(b.window, str(b.window)), b.remaining_usd)
    if decision.replayed:
        return
    m.job_roles.add(who.tenant, req.job_id, role)
    m.decisions.add(1, decision_labels(tel, who.tenant, decision.model.model_id, role, decision.exploration,
                                       req.task.task_class))


def on_outcome(who: Principal, req: OutcomeInput, record: DecisionRecord, model_used: str,
               result: OutcomeResult) -> None:
    """ReportOutcome: status and charge on the span; outcome count, spend and step latency in metrics."""
    tel = _current.get()
    if tel is None:
        return
    # A call Dispatch completed is counted as "completed"; its verdict, later, as success / failure.
    status = "completed" if req.verdict_pending else STATUS_NAMES.get(req.status, str(req.status))
    role = role_name(record.role)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({
            sc.MY_TENANT: who.tenant, sc.MY_KEY_ID: who.key_id, sc.MY_JOB_ID: record.job_id,
            sc.MY_DECISION_ID: req.decision_id, sc.MY_ROLE: role, sc.MY_MODEL: model_used,
            sc.MY_OUTCOME_STATUS: status, sc.MY_CHARGED: result.charged_usd, sc.MY_RELEASED: result.released_usd,
            sc.MY_DUPLICATE: result.duplicate,
            # a verdict's call was charged, and its span costed, when Dispatch settled it
            sc.GEN_AI_USAGE_COST: 0.0 if result.verdict else result.charged_usd,
            sc.MY_INPUT_TOKENS: req.input_tokens, sc.MY_OUTPUT_TOKENS: req.output_tokens,
            sc.MY_LATENCY_MS: req.latency_ms, sc.MY_VERDICT: result.verdict,
        })
    if result.duplicate:
        return
    m = tel.metrics
    if result.verdict:  # the call's spend and latency were counted when Dispatch settled it
        m.outcomes.add(1, {sc.LABEL_TENANT: who.tenant, sc.LABEL_MODEL: model_used, sc.LABEL_ROLE: role,
                           sc.LABEL_STATUS: status})
        return
    m.outcomes.add(1, {sc.LABEL_TENANT: who.tenant, sc.LABEL_MODEL: model_used, sc.LABEL_ROLE: role,
                       sc.LABEL_STATUS: status})
    # Spend belongs to the key that routed the step, which may differ from the one reporting it.
    m.spend.add(result.charged_usd, {sc.LABEL_TENANT: who.tenant, sc.LABEL_KEY_ID: record.key_id,
                                     sc.LABEL_MODEL: model_used})
    if req.latency_ms > 0:
        m.step_duration.record(req.latency_ms / 1000, {sc.LABEL_MODEL: model_used, sc.LABEL_ROLE: role,
                                                       sc.LABEL_STATUS: status})


def on_job(who: Principal, job_id: str, result: JobResult) -> None:
    """CompleteJob: status and job cost on the span; cost and latency per finished job by role mix."""
    tel = _current.get()
    if tel is None:
        return
    status = JOB_STATUS_NAMES.get(result.status, str(result.status))
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({
            sc.MY_TENANT: who.tenant, sc.MY_KEY_ID: who.key_id, sc.MY_JOB_ID: job_id, sc.MY_JOB_STATUS: status,
            sc.MY_JOB_COST: result.total_cost_usd, sc.GEN_AI_USAGE_COST: result.total_cost_usd,
            sc.MY_JOB_STEPS: result.steps, sc.MY_JOB_LATENCY: result.total_latency_ms,
            sc.MY_JOB_MODELS: list(result.models), sc.MY_DUPLICATE: result.duplicate,
        })
    if result.duplicate:
        return
    m = tel.metrics
    labels = {sc.LABEL_TENANT: who.tenant, sc.LABEL_ROLE_MIX: m.job_roles.pop_mix(who.tenant, job_id),
              sc.LABEL_STATUS: status}
    m.job_cost.record(result.total_cost_usd, labels)
    m.job_duration.record(result.total_latency_ms / 1000, labels)
