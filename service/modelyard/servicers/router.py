"""Router service: Route, Dispatch, ReportOutcome, CompleteJob."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from modelyard import convert, routing
from modelyard.app import App
from modelyard.interceptors import principal
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _defaults(self) -> tuple[int, int, int]:
        d = self.app.runtime.config.routing.default_tokens
        return d.input, d.output, d.cached_input

    async def Route(
        self, request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.RouteDecision:
        req = convert.route_input(request, self._defaults())
        return convert.decision(await routing.route(self.app, principal(), req))

    async def Dispatch(
        self, request: router_pb2.DispatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[router_pb2.DispatchEvent]:
        convert.route_input(request.route, self._defaults(), prefix="route.")
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "Dispatch is not available yet: call Route, then the model, then ReportOutcome")
        yield router_pb2.DispatchEvent()  # pragma: no cover - abort raises

    async def ReportOutcome(
        self, request: router_pb2.OutcomeReport, context: grpc.aio.ServicerContext
    ) -> router_pb2.OutcomeAck:
        res = await routing.report_outcome(self.app, principal(), convert.outcome_input(request))
        return router_pb2.OutcomeAck(decision_id=res.decision_id, charged_usd=res.charged_usd,
                                     released_usd=res.released_usd, duplicate=res.duplicate)

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
