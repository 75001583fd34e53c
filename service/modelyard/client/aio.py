"""The asyncio client: `AsyncClient` mirrors `Client` with `async` methods on a grpc.aio channel.

Same metadata, deadlines, retries and idempotency as the blocking client (see `modelyard.client.sync`);
`async with client.job(...) as job:` completes the job on leaving the block. Create and use an
`AsyncClient` on one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import grpc
import grpc.aio

from modelyard.client import _common
from modelyard.client._common import DispatchCallOptions, Message, ReportOptions, Role, RouteOptions, Status
from modelyard.client._job import DispatchStepMixin, JobBase, StepBase
from modelyard.client.errors import from_rpc_error
from modelyard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

T = TypeVar("T")


class AsyncClient:
    """An asyncio connection to a modelyard server; use `async with` or `await close()`."""

    def __init__(self, address: str, api_key: str, *, timeout_s: float = 5.0, retries: int = 3,
                 channel_options: Sequence[tuple[str, Any]] | None = None, secure: bool = False) -> None:
        self.address = address
        self._api_key = api_key
        self._metadata = _common.auth_metadata(api_key)
        self.timeout_s = timeout_s
        self.retry_policy = _common.RetryPolicy(retries=retries)
        opts = _common.channel_options(channel_options)
        if secure:
            self._channel = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(), options=opts)
        else:
            self._channel = grpc.aio.insecure_channel(address, options=opts)
        self._router = router_pb2_grpc.RouterStub(self._channel)
        self._catalog = catalog_pb2_grpc.CatalogStub(self._channel)
        self._budgets = budgets_pb2_grpc.BudgetsStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)

    def __repr__(self) -> str:
        return f"AsyncClient(address={self.address!r})"

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _invoke(self, method: Callable[..., Awaitable[T]], request: Any, timeout_s: float | None, *,
                      on_deadline: bool = False, retry: bool = True, job_id: str = "") -> T:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        metadata = _common.with_job(self._metadata, job_id)
        done = 0
        while True:
            try:
                return await method(request, metadata=metadata, timeout=timeout)
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.aio.AioRpcError) else None
                if retry and self.retry_policy.should_retry(code, done, on_deadline=on_deadline):
                    await asyncio.sleep(self.retry_policy.delay(done))
                    done += 1
                    continue
                raise from_rpc_error(err, self._api_key) from err

    # Router

    async def route(self, role: Role, task_class: str, *, job_id: str, timeout_s: float | None = None,
                    **options: Unpack[RouteOptions]) -> router_pb2.RouteDecision:
        """Pick a model for one step. Retries reuse the request_id, so nothing is reserved twice."""
        req = _common.route_request(role, task_class, job_id, options)
        return await self._invoke(self._router.Route, req, timeout_s, on_deadline=True, job_id=job_id)

    async def report_outcome(self, decision_id: str, status: Status, *, timeout_s: float | None = None,
                             job_id: str = "", **options: Unpack[ReportOptions]) -> router_pb2.OutcomeAck:
        """Report a step's outcome. `job_id` (the job of the decision) only goes in the job header a
        balancer may keep the job's calls together by; the decision is found by its id."""
        req = _common.outcome_report(decision_id, status, options)
        return await self._invoke(self._router.ReportOutcome, req, timeout_s, job_id=job_id)

    async def dispatch(self, role: Role, task_class: str, messages: Sequence[Message], *, job_id: str,
                       timeout_s: float | None = None,
                       **options: Unpack[DispatchCallOptions]) -> AsyncIterator[router_pb2.DispatchEvent]:
        """Route a step and let the server call the model: the stream of DispatchEvents. Never retried
        (the server may already have called the provider); see `Client.dispatch`."""
        route_opts, call_opts = _common.split_dispatch_options(options)
        req = _common.dispatch_request(role, task_class, job_id, messages, route_opts, call_opts)
        timeout = _common.DISPATCH_TIMEOUT_S if timeout_s is None else timeout_s
        call = self._router.Dispatch(req, metadata=_common.with_job(self._metadata, job_id), timeout=timeout)
        try:
            async for event in call:
                yield event
        except grpc.RpcError as err:
            raise from_rpc_error(err, self._api_key) from err
        finally:
            call.cancel()  # a consumer that stops early must not leave the call running

    async def complete_job(self, job_id: str, status: Status, *,
                           timeout_s: float | None = None) -> router_pb2.JobSummary:
        return await self._invoke(self._router.CompleteJob, _common.job_outcome(job_id, status), timeout_s,
                          job_id=job_id)

    def job(self, task_class: str, *, job_id: str | None = None) -> AsyncJob:
        """An async job context; the job_id is a fresh uuid4 unless given."""
        return AsyncJob(self, task_class, job_id)

    # Catalog and budgets

    async def list_models(self, include_estimates: bool = False, *,
                          timeout_s: float | None = None) -> catalog_pb2.ListModelsResponse:
        req = catalog_pb2.ListModelsRequest(include_estimates=include_estimates)
        return await self._invoke(self._catalog.ListModels, req, timeout_s)

    async def estimate(self, role: Role, task_class: str, *, timeout_s: float | None = None,
                       **options: Unpack[RouteOptions]) -> catalog_pb2.EstimateResponse:
        req = _common.estimate_request(role, task_class, options)
        return await self._invoke(self._catalog.Estimate, req, timeout_s)

    async def get_budget(self, tenant: str = "", *,
                         timeout_s: float | None = None) -> budgets_pb2.GetBudgetResponse:
        return await self._invoke(self._budgets.GetBudget, budgets_pb2.GetBudgetRequest(tenant=tenant), timeout_s)

    # Admin

    async def reload_config(self, *, timeout_s: float | None = None) -> admin_pb2.ReloadConfigResponse:
        return await self._invoke(self._admin.ReloadConfig, admin_pb2.ReloadConfigRequest(), timeout_s)

    async def get_stats(self, *, timeout_s: float | None = None) -> admin_pb2.GetStatsResponse:
        return await self._invoke(self._admin.GetStats, admin_pb2.GetStatsRequest(), timeout_s)

    async def export_state(self, *, timeout_s: float | None = None) -> admin_pb2.ExportStateResponse:
        return await self._invoke(self._admin.ExportState, admin_pb2.ExportStateRequest(), timeout_s)

    async def import_state(self, data: bytes | admin_pb2.ExportStateResponse, merge: bool = False, *,
                           timeout_s: float | None = None) -> admin_pb2.ImportStateResponse:
        """Replace (or merge into) the learned state. A merge is not idempotent, so it is never retried."""
        req = _common.import_request(data, merge)
        return await self._invoke(self._admin.ImportState, req, timeout_s, retry=not merge)


class AsyncStep(StepBase):
    """One routed step of an `AsyncJob`; `await report()` it once the model call is done."""

    def __init__(self, job: AsyncJob, **kw: Any) -> None:
        super().__init__(**kw)
        self.job = job

    async def report(self, status: Status, *, timeout_s: float | None = None,
                     **options: Unpack[ReportOptions]) -> router_pb2.OutcomeAck:
        return await self.job._report(self, status, timeout_s, options)


class AsyncDispatchStep(DispatchStepMixin, AsyncStep):
    """A step whose model call the server made (`AsyncJob.dispatch`); `await report(...)` its verdict."""


class AsyncJob(JobBase):
    """An async job: route steps, report them; completed on leaving the `async with` block."""

    def __init__(self, client: AsyncClient, task_class: str, job_id: str | None = None) -> None:
        super().__init__(task_class, job_id)
        self.client = client

    async def route(self, role: Role | None = None, *, retry_of: AsyncStep | None = None,
                    task_class: str | None = None, timeout_s: float | None = None,
                    **options: Unpack[RouteOptions]) -> AsyncStep:
        """Route one step. With `retry_of`, the attempt and failed models follow from that step."""
        role_, cls, opts = self._plan_route(role, retry_of, task_class, options)
        decision = await self.client.route(role_, cls, job_id=self.job_id, timeout_s=timeout_s, **opts)
        step: AsyncStep = self._new_step(lambda **kw: AsyncStep(self, **kw), decision, role_, cls, opts)
        return step

    async def dispatch(self, role: Role | None = None, messages: Sequence[Message] = (), *,
                       retry_of: AsyncStep | None = None, task_class: str | None = None,
                       timeout_s: float | None = None,
                       on_event: Callable[[router_pb2.DispatchEvent], None] | None = None,
                       **options: Unpack[DispatchCallOptions]) -> AsyncDispatchStep:
        """Route one step and let the server call the model; see `Job.dispatch`."""
        role_, cls, opts, messages, call_opts = self._plan_dispatch(role, messages, retry_of, task_class, options)
        result = _common.DispatchResult()
        async for event in self.client.dispatch(role_, cls, messages, job_id=self.job_id, timeout_s=timeout_s,
                                                **opts, **call_opts):
            result.add(event)
            if on_event is not None:
                on_event(event)
        step: AsyncDispatchStep = self._dispatched(result, role_, cls, opts,
                                                   lambda **kw: AsyncDispatchStep(self, **kw), messages, call_opts)
        return step

    async def _report(self, step: AsyncStep, status: Status, timeout_s: float | None,
                      options: ReportOptions) -> router_pb2.OutcomeAck:
        status_ = _common.outcome_status(status)
        ack = await self.client.report_outcome(step.decision_id, status_, timeout_s=timeout_s, job_id=self.job_id,
                                             **options)
        self._reported(step, status_, options, ack)
        return ack

    async def complete(self, status: Status, *, timeout_s: float | None = None) -> router_pb2.JobSummary:
        """Complete the job now ("succeeded", "failed" or "abandoned"); later calls return the same summary."""
        if self.summary is None:
            self.summary = await self.client.complete_job(self.job_id, self._status(status), timeout_s=timeout_s)
        return self.summary

    async def __aenter__(self) -> AsyncJob:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        status = self._final_status(exc is not None)
        if status is None:
            return
        if exc is None:
            await self.complete(status)
            return
        try:
            await self.complete(status)
        except Exception as err:
            exc.add_note(f"modelyard: completing job {self.job_id!r} as abandoned also failed: {err}")
