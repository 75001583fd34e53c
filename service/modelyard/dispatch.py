"""Dispatch: route a step, call the chosen model, stream its answer, fall back, and settle what it used.

An async generator of domain events; the servicer turns them into `DispatchEvent`s. Each provider
call is a decision of its own (the first is the Route decision, each fallback routes again with
attempt + 1), reserved by `routing.route` and settled exactly once by `routing.report_outcome`.
Fallback happens only while nothing has reached the caller for the current call, so no output is
ever duplicated; once content has gone out, a failure ends the stream with ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace

from modelyard import routing
from modelyard.app import App
from modelyard.auth import Principal
from modelyard.domain import CANCELLED, ERROR, SUCCESS, TIMEOUT, Decision, ModelChoice, OutcomeInput, RouteInput
from modelyard.errors import BudgetExhausted, InvalidArgument, NoEligibleModel
from modelyard.pricing import call_cost_usd
from modelyard.providers import ChatRequest, Message, ProviderError, TextDelta, ToolCallDelta, Usage, UsageUpdate
from modelyard.providers.base import CircuitOpen, MissingKey, ProviderTimeout
from modelyard.providers.spans import chat_span

log = logging.getLogger("modelyard.dispatch")

ROLES = ("system", "user", "assistant", "tool", "developer")
METADATA_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_ATTEMPTS = 5
MIN_ATTEMPT_S = 0.05  # not worth starting a fallback with less of the caller's deadline left
CHARS_PER_TOKEN = 4  # estimate when the provider sent no usage before the call ended


@dataclass(frozen=True, slots=True)
class DispatchInput:
    route: RouteInput
    messages: tuple[Message, ...]
    max_output_tokens: int = 0
    temperature: float | None = None
    tools_json: str = ""
    stream: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict)
    deadline_s: float | None = None  # the caller's remaining deadline, if it set one


@dataclass(frozen=True, slots=True)
class DecisionMade:
    decision: Decision


@dataclass(frozen=True, slots=True)
class FallingBack:
    failed_model_id: str
    error: str
    next_model: ModelChoice
    next_decision_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """The whole Dispatch: usage and cost summed over attempts; model and decision of the last one."""

    status: int
    usage: Usage
    cost_usd: float
    latency_ms: float
    time_to_first_token_ms: float
    model_id: str
    decision_id: str
    error: str = ""
    attempts: int = 1


Event = DecisionMade | TextDelta | ToolCallDelta | UsageUpdate | FallingBack | Outcome


@dataclass(slots=True)
class _Call:
    """What one provider call has done so far: enough to settle it at any moment."""

    decision: Decision
    input_chars: int
    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    usage: Usage | None = None
    output_chars: int = 0
    finished: bool = False
    settled: bool = False
    charged_usd: float = 0.0

    @property
    def streamed(self) -> bool:
        return self.first_token_at is not None

    def final_usage(self) -> Usage:
        if self.finished and self.usage is not None:
            return self.usage
        if not self.streamed and self.usage is None:
            return Usage()  # refused before any work: nothing billed
        est_out = math.ceil(self.output_chars / CHARS_PER_TOKEN)
        u = self.usage or Usage(input_tokens=math.ceil(self.input_chars / CHARS_PER_TOKEN))
        return replace(u, output_tokens=max(u.output_tokens, est_out))


def validate(req: DispatchInput) -> None:
    if not req.messages:
        raise InvalidArgument("messages", "is empty; give at least one user message")
    for i, m in enumerate(req.messages):
        if m.role not in ROLES:
            raise InvalidArgument(f"messages[{i}].role", f"is '{m.role}'; use one of {', '.join(ROLES)}")
        if m.raw_json:
            _json(m.raw_json, f"messages[{i}].raw_json", dict)
    if req.tools_json:
        _json(req.tools_json, "tools_json", list)
    if req.max_output_tokens < 0:
        raise InvalidArgument("max_output_tokens", "must be 0 (the provider's default) or positive")
    for key in req.metadata:
        if not METADATA_KEY.match(key):
            raise InvalidArgument("metadata", f"key '{key[:40]}' must match {METADATA_KEY.pattern}")


def _json(text: str, field_name: str, kind: type) -> None:
    try:
        ok = isinstance(json.loads(text), kind)
    except ValueError:
        ok = False
    if not ok:
        raise InvalidArgument(field_name, f"must be a JSON {'object' if kind is dict else 'array'}")


def _excluding_open_endpoints(app: App, route: RouteInput) -> RouteInput:
    open_eps = app.providers.breakers.unavailable()
    if not open_eps:
        return route
    skip = tuple(m.id for m in app.runtime.config.models if m.endpoint in open_eps)
    denied = tuple(dict.fromkeys((*route.constraints.denied_models, *skip)))
    return replace(route, constraints=replace(route.constraints, denied_models=denied))


async def dispatch(app: App, who: Principal, req: DispatchInput) -> AsyncGenerator[Event, None]:
    validate(req)
    started = time.monotonic()
    # Stop a little before the caller's deadline so the outcome still reaches it.
    deadline = None if req.deadline_s is None else started + req.deadline_s - min(0.1, 0.05 * req.deadline_s)
    brk = app.runtime.config.routing.breaker
    app.providers.breakers.configure(brk.failures_to_open, brk.open_s)
    decision = await routing.route(app, who, _excluding_open_endpoints(app, req.route))
    if decision.replayed:
        raise InvalidArgument("route.request_id", "was already used; Dispatch needs a new request_id per call")
    input_chars = sum(len(m.content) + len(m.raw_json) for m in req.messages)
    call = _Call(decision, input_chars)
    # A caller that leaves right after the decision is cancelled here, at the yield, before the
    # provider call below: the decision's reservation must be settled as cancelled all the same.
    async with _settled_if_cancelled(app, who, call):
        yield DecisionMade(decision)
    failed = list(req.route.failed_models)
    calls: list[_Call] = []
    while True:
        calls.append(call)
        error: ProviderError | None = None
        try:
            async with _settled_if_cancelled(app, who, call), aclosing(_call(app, req, call, deadline)) as events:
                async for event in events:
                    yield event
        except ProviderError as exc:
            error = exc
        status = SUCCESS if error is None else TIMEOUT if isinstance(error, ProviderTimeout) else ERROR
        await _settle(app, who, call, status)
        yield UsageUpdate(call.final_usage())
        if error is None or call.streamed or not error.fallback or len(calls) >= MAX_ATTEMPTS:
            yield _outcome(calls, status, error, started)
            return
        failed.append(decision.model.model_id)
        nxt = await _next_decision(app, who, req, failed, len(calls) + 1, deadline)
        if isinstance(nxt, str):
            yield _outcome(calls, status, error, started, note=nxt)
            return
        log.info("dispatch falls back from %s to %s: %s", decision.model.model_id, nxt.model.model_id, error)
        previous, decision = decision, nxt
        call = _Call(decision, input_chars)
        async with _settled_if_cancelled(app, who, call):
            yield FallingBack(previous.model.model_id, str(error), nxt.model, nxt.decision_id)


async def _next_decision(
    app: App, who: Principal, req: DispatchInput, failed: list[str], attempt: int, deadline: float | None,
) -> Decision | str:
    """The fallback's own decision, or why there is none."""
    if deadline is not None and deadline - time.monotonic() < MIN_ATTEMPT_S:
        return "no time left before the caller's deadline to fall back"
    route = replace(req.route, request_id=f"{req.route.request_id}#{attempt}", attempt=attempt,
                    failed_models=tuple(failed))
    try:
        return await routing.route(app, who, _excluding_open_endpoints(app, route))
    except (NoEligibleModel, BudgetExhausted) as exc:
        return f"no fallback: {exc}"


async def _call(app: App, req: DispatchInput, call: _Call, deadline: float | None) -> AsyncGenerator[Event, None]:
    """One provider call. Raises ProviderError; updates `call` as chunks arrive."""
    choice = call.decision.model
    rt = app.runtime
    ep = rt.config.endpoints.get(choice.endpoint)
    if ep is None:
        raise MissingKey(f"model '{choice.model_id}' names endpoint '{choice.endpoint}', which is not configured")
    breaker = app.providers.breakers.get(ep.name)
    if not breaker.acquire():
        raise CircuitOpen(f"endpoint '{ep.name}' is failing; its circuit is open")
    chat = ChatRequest(
        model=choice.upstream_model or choice.model_id, messages=req.messages,
        max_output_tokens=req.max_output_tokens, temperature=req.temperature, tools_json=req.tools_json,
        stream=req.stream, headers={f"x-modelyard-{k}": v for k, v in req.metadata.items()}, deadline=deadline,
    )
    healthy: bool | None = None  # None: the call proved nothing about the endpoint
    price = rt.model(choice.model_id).price
    with chat_span(ep, chat, call.decision) as span:
        try:
            async with aclosing(app.providers.get(ep).chat(chat)) as chunks:
                while True:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    try:
                        async with asyncio.timeout(remaining):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        raise ProviderTimeout("the caller's deadline passed during the provider call") from exc
                    if isinstance(chunk, UsageUpdate):
                        call.usage = chunk.usage
                    elif isinstance(chunk, TextDelta | ToolCallDelta):
                        if call.first_token_at is None:
                            call.first_token_at = time.monotonic()
                        call.output_chars += len(chunk.text if isinstance(chunk, TextDelta) else
                                                 chunk.name + chunk.arguments_delta)
                        yield chunk
                    else:
                        span.finish(chunk)
                        call.finished = True
            healthy = True
        except ProviderError as exc:
            span.fail(exc)
            if exc.fallback and not isinstance(exc, MissingKey):
                healthy = False
            raise
        finally:
            if healthy is None:
                breaker.release()
            else:
                breaker.record(healthy)
            u = call.final_usage()
            span.usage(u, call_cost_usd(price, u.input_tokens, u.cached_input_tokens, u.output_tokens))


@asynccontextmanager
async def _settled_if_cancelled(app: App, who: Principal, call: _Call) -> AsyncIterator[None]:
    """Settles `call` as cancelled when the caller goes away inside the block."""
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        await _settle_shielded(app, who, call, CANCELLED)
        raise


async def _settle_shielded(app: App, who: Principal, call: _Call, status: int) -> None:
    task = asyncio.ensure_future(_settle(app, who, call, status))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task  # cancelled again while settling: finish settling anyway


async def _settle(app: App, who: Principal, call: _Call, status: int) -> None:
    """Report this call's outcome exactly once; a failure to settle is logged, never raised mid-stream.

    A call that completed (SUCCESS) settles with its step verdict pending: the provider answered,
    but only the harness knows whether the step succeeded (ReportOutcome with this decision_id).
    Errors, timeouts and cancellations are the call's own outcome and are learned as such."""
    if call.settled:
        return
    call.settled = True
    u = call.final_usage()
    now = time.monotonic()
    ttft = (call.first_token_at - call.started) * 1000 if call.first_token_at else 0.0
    try:
        res = await routing.report_outcome(app, who, OutcomeInput(
            decision_id=call.decision.decision_id, status=status, input_tokens=u.input_tokens,
            cached_input_tokens=min(u.cached_input_tokens, u.input_tokens), output_tokens=u.output_tokens,
            latency_ms=(now - call.started) * 1000, model_id=call.decision.model.model_id,
            time_to_first_token_ms=ttft, verdict_pending=status == SUCCESS,
        ))
        call.charged_usd = res.charged_usd
    except Exception:
        log.exception("could not settle decision %s; it expires at its TTL", call.decision.decision_id)


def _outcome(calls: list[_Call], status: int, error: ProviderError | None, started: float, note: str = "") -> Outcome:
    usages = [c.final_usage() for c in calls]
    last = calls[-1]
    firsts = [c.first_token_at for c in calls if c.first_token_at is not None]
    message = "" if error is None else f"{error}; {note}" if note else str(error)
    return Outcome(
        status=status,
        usage=Usage(input_tokens=sum(u.input_tokens for u in usages),
                    cached_input_tokens=sum(u.cached_input_tokens for u in usages),
                    output_tokens=sum(u.output_tokens for u in usages),
                    cache_creation_input_tokens=sum(u.cache_creation_input_tokens for u in usages)),
        cost_usd=sum(c.charged_usd for c in calls), latency_ms=(time.monotonic() - started) * 1000,
        time_to_first_token_ms=(firsts[0] - started) * 1000 if firsts else 0.0,
        model_id=last.decision.model.model_id, decision_id=last.decision.decision_id, error=message,
        attempts=len(calls),
    )
