"""Router service: Route, Dispatch, ReportOutcome, CompleteJob."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from modelyard import convert, dispatch, routing
from modelyard.app import App
from modelyard.interceptors import principal
from modelyard.providers import Message, TextDelta, ToolCallDelta, UsageUpdate
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    async def Route(
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.RouteDecision:
        req = convert.route_input(request, self.app.runtime.token_defaults)
        return convert.decision(await routing.route(self.app, principal(), req))

    async def Dispatch(
        self, request: router_pb2.DispatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[router_pb2.DispatchEvent]:
        req = dispatch_input(request, self.app, context.time_remaining())
        async with aclosing(dispatch.dispatch(self.app, principal(), req)) as events:
            async for event in events:
                yield _dispatch_event(event)

    async def ReportOutcome(
        self, request: router_pb2.OutcomeReport, context: grpc.aio.ServicerContext
    ) -> router_pb2.OutcomeAck:
        res = await routing.report_outcome(self.app, principal(), convert.outcome_input(request))
        return router_pb2.OutcomeAck(decision_id=res.decision_id, charged_usd=res.charged_usd,
                                     released_usd=res.released_usd, duplicate=res.duplicate,
                                     verdict=res.verdict)

    async def CompleteJob(
        self, request: router_pb2.JobOutcome, context: grpc.aio.ServicerContext
    ) -> router_pb2.JobSummary:
        job_id = convert.req_id(request.job_id, "job_id")
        res = await routing.complete_job(self.app, principal(), job_id, convert.job_status(request.status))
        return router_pb2.JobSummary(
            job_id=res.job_id, status=types_pb2.JobStatus.ValueType(res.status), total_cost_usd=res.total_cost_usd,
            total_latency_ms=res.total_latency_ms, steps=res.steps, models=list(res.models),
            per_model=[router_pb2.ModelUse(model_id=m, steps=n, cost_usd=c) for m, n, c in res.per_model],
            duplicate=res.duplicate,
        )


def dispatch_input(request: router_pb2.DispatchRequest, app: App, deadline_s: float | None) -> dispatch.DispatchInput:
    return dispatch.DispatchInput(
        route=convert.route_input(request.route, app.runtime.token_defaults, prefix="route."),
        messages=tuple(Message(m.role, m.content, m.raw_json) for m in request.messages),
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature if request.HasField("temperature") else None,
        tools_json=request.tools_json, stream=request.stream, metadata=dict(request.metadata),
        deadline_s=deadline_s,
    )


def _usage(u: dispatch.Usage) -> types_pb2.Usage:
    return types_pb2.Usage(input_tokens=u.input_tokens, cached_input_tokens=u.cached_input_tokens,
                           output_tokens=u.output_tokens)


def _dispatch_event(e: dispatch.Event) -> router_pb2.DispatchEvent:
    if isinstance(e, TextDelta):
        return router_pb2.DispatchEvent(content=router_pb2.ContentDelta(text=e.text))
    if isinstance(e, ToolCallDelta):
        return router_pb2.DispatchEvent(tool_call=router_pb2.ToolCallDelta(
            index=e.index, id=e.id, name=e.name, arguments_delta=e.arguments_delta))
    if isinstance(e, UsageUpdate):
        return router_pb2.DispatchEvent(usage=_usage(e.usage))
    if isinstance(e, dispatch.DecisionMade):
        return router_pb2.DispatchEvent(decision=convert.decision(e.decision))
    if isinstance(e, dispatch.FallingBack):
        return router_pb2.DispatchEvent(fallback=router_pb2.FallbackNotice(
            failed_model_id=e.failed_model_id, error=e.error, next_model=convert.model_ref(e.next_model),
            next_decision_id=e.next_decision_id))
    return router_pb2.DispatchEvent(outcome=router_pb2.DispatchOutcome(
        status=types_pb2.OutcomeStatus.ValueType(e.status), usage=_usage(e.usage), cost_usd=e.cost_usd,
        latency_ms=e.latency_ms, time_to_first_token_ms=e.time_to_first_token_ms, model_id=e.model_id,
        decision_id=e.decision_id, error=e.error, attempts=e.attempts))
