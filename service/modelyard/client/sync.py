"""The blocking client: `Client` for every modelyard RPC a harness needs, and its `job()` context.

Every call sends `authorization: Bearer <key>`, has a deadline (`timeout_s`, per attempt) and retries
UNAVAILABLE with backoff (Route also DEADLINE_EXCEEDED), always resending the identical request, so the
request_id / decision_id / job_id the server deduplicates on stays the same.

Steps still unreported when a job completes are left alone: the server settles their reservations at
their estimate when the reservation TTL passes (`RouteDecision.reservation_expires_at`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import grpc

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


class Client:
    """A connection to a modelyard server. Thread-safe; use as a context manager or call `close()`."""

    def __init__(self, address: str, api_key: str, *, timeout_s: float = 5.0, retries: int = 3,
                 channel_options: Sequence[tuple[str, Any]] | None = None, secure: bool = False) -> None:
        self.address = address
        self._api_key = api_key
        self._metadata = _common.auth_metadata(api_key)
        self.timeout_s = timeout_s
        self.retry_policy = _common.RetryPolicy(retries=retries)
        opts = _common.channel_options(channel_options)
        if secure:
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(), options=opts)
        else:
            self._channel = grpc.insecure_channel(address, options=opts)
        self._router = router_pb2_grpc.RouterStub(self._channel)
        self._catalog = catalog_pb2_grpc.CatalogStub(self._channel)
        self._budgets = budgets_pb2_grpc.BudgetsStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _invoke(self, method: Callable[..., T], request: Any, timeout_s: float | None, *,
                on_deadline: bool = False, retry: bool = True, job_id: str = "") -> T:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        metadata = _common.with_job(self._metadata, job_id)
        done = 0
        while True:
            try:
                return method(request, metadata=metadata, timeout=timeout)
            except grpc.RpcError as err:
                code = err.code() if isinstance(err, grpc.Call) else None
                if retry and self.retry_policy.should_retry(code, done, on_deadline=on_deadline):
                    time.sleep(self.retry_policy.delay(done))
                    done += 1
                    continue
                raise from_rpc_error(err, self._api_key) from err

    # Router

    def route(self, role: Role, task_class: str, *, job_id: str, timeout_s: float | None = None,
              **options: Unpack[RouteOptions]) -> router_pb2.RouteDecision:
        """Pick a model for one step. Retries reuse the request_id, so nothing is reserved twice."""
        req = _common.route_request(role, task_class, job_id, options)
        return self._invoke(self._router.Route, req, timeout_s, on_deadline=True, job_id=job_id)

    def report_outcome(self, decision_id: str, status: Status, *, timeout_s: float | None = None, job_id: str = "",
                       **options: Unpack[ReportOptions]) -> router_pb2.OutcomeAck:
        """Report a step's outcome. `job_id` (the job of the decision) only goes in the job header a
        balancer may keep the job's calls together by; the decision is found by its id."""
        req = _common.outcome_report(decision_id, status, options)
        return self._invoke(self._router.ReportOutcome, req, timeout_s, job_id=job_id)

    def dispatch(self, role: Role, task_class: str, messages: Sequence[Message], *, job_id: str,
                 timeout_s: float | None = None,
                 **options: Unpack[DispatchCallOptions]) -> Iterator[router_pb2.DispatchEvent]:
        """Route a step and let the server call the model: the stream of DispatchEvents (the decision,
        content and tool-call deltas, fallback notices, the outcome). Never retried: the server may
        already have called the provider. `job().dispatch()` gathers the stream into a step."""
        route_opts, call_opts = _common.split_dispatch_options(options)
        req = _common.dispatch_request(role, task_class, job_id, messages, route_opts, call_opts)
        timeout = _common.DISPATCH_TIMEOUT_S if timeout_s is None else timeout_s
        call = self._router.Dispatch(req, metadata=_common.with_job(self._metadata, job_id), timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as err:
            raise from_rpc_error(err, self._api_key) from err
        finally:
            call.cancel()  # a consumer that stops early must not leave the call running

    def complete_job(self, job_id: str, status: Status, *, timeout_s: float | None = None) -> router_pb2.JobSummary:
        return self._invoke(self._router.CompleteJob, _common.job_outcome(job_id, status), timeout_s,
                    job_id=job_id)

    def job(self, task_class: str, *, job_id: str | None = None) -> Job:
        """A job context; the job_id is a fresh uuid4 unless given."""
        return Job(self, task_class, job_id)

    # Catalog and budgets

    def list_models(self, include_estimates: bool = False, *,
                    timeout_s: float | None = None) -> catalog_pb2.ListModelsResponse:
        req = catalog_pb2.ListModelsRequest(include_estimates=include_estimates)
        return self._invoke(self._catalog.ListModels, req, timeout_s)

    def estimate(self, role: Role, task_class: str, *, timeout_s: float | None = None,
                 **options: Unpack[RouteOptions]) -> catalog_pb2.EstimateResponse:
        """Every candidate's expected cost, latency and success for a task profile (best first)."""
        req = _common.estimate_request(role, task_class, options)
        return self._invoke(self._catalog.Estimate, req, timeout_s)

    def get_budget(self, tenant: str = "", *, timeout_s: float | None = None) -> budgets_pb2.GetBudgetResponse:
        return self._invoke(self._budgets.GetBudget, budgets_pb2.GetBudgetRequest(tenant=tenant), timeout_s)

    # Admin

    def reload_config(self, *, timeout_s: float | None = None) -> admin_pb2.ReloadConfigResponse:
        return self._invoke(self._admin.ReloadConfig, admin_pb2.ReloadConfigRequest(), timeout_s)

    def get_stats(self, *, timeout_s: float | None = None) -> admin_pb2.GetStatsResponse:
        return self._invoke(self._admin.GetStats, admin_pb2.GetStatsRequest(), timeout_s)

    def export_state(self, *, timeout_s: float | None = None) -> admin_pb2.ExportStateResponse:
        return self._invoke(self._admin.ExportState, admin_pb2.ExportStateRequest(), timeout_s)

    def import_state(self, data: bytes | admin_pb2.ExportStateResponse, merge: bool = False, *,
                     timeout_s: float | None = None) -> admin_pb2.ImportStateResponse:
        """Replace (or merge into) the learned state. A merge is not idempotent, so it is never retried."""
        req = _common.import_request(data, merge)
        return self._invoke(self._admin.ImportState, req, timeout_s, retry=not merge)


class Step(StepBase):
    """One routed step of a `Job`; `report()` it once the model call is done."""

    def __init__(self, job: Job, **kw: Any) -> None:
        super().__init__(**kw)
        self.job = job

    def report(self, status: Status, *, timeout_s: float | None = None,
               **options: Unpack[ReportOptions]) -> router_pb2.OutcomeAck:
        return self.job._report(self, status, timeout_s, options)


class DispatchStep(DispatchStepMixin, Step):
    """A step whose model call the server made (`Job.dispatch`): `text`, `tool_calls`, `outcome`;
    `report("success" | "failure")` gives its verdict."""


class Job(JobBase):
    """A job: route steps, report them; completed on leaving the `with` block (see module docstring)."""

    def __init__(self, client: Client, task_class: str, job_id: str | None = None) -> None:
        super().__init__(task_class, job_id)
        self.client = client

    def route(self, role: Role | None = None, *, retry_of: Step | None = None, task_class: str | None = None,
              timeout_s: float | None = None, **options: Unpack[RouteOptions]) -> Step:
        """Route one step. With `retry_of`, the attempt and failed models follow from that step."""
        role_, cls, opts = self._plan_route(role, retry_of, task_class, options)
        decision = self.client.route(role_, cls, job_id=self.job_id, timeout_s=timeout_s, **opts)
        step: Step = self._new_step(lambda **kw: Step(self, **kw), decision, role_, cls, opts)
        return step

    def dispatch(self, role: Role | None = None, messages: Sequence[Message] = (), *,
                 retry_of: Step | None = None, task_class: str | None = None, timeout_s: float | None = None,
                 on_event: Callable[[router_pb2.DispatchEvent], None] | None = None,
                 **options: Unpack[DispatchCallOptions]) -> DispatchStep:
        """Route one step and let the server call the model; returns once the call ended. `on_event`
        sees every event as it arrives (content deltas while streaming). With `retry_of`, the attempt
        and failed models (fallbacks included) follow from that step, and its messages and call options
        are resent unless given."""
        role_, cls, opts, messages, call_opts = self._plan_dispatch(role, messages, retry_of, task_class, options)
        result = _common.DispatchResult()
        for event in self.client.dispatch(role_, cls, messages, job_id=self.job_id, timeout_s=timeout_s,
                                          **opts, **call_opts):
            result.add(event)
            if on_event is not None:
                on_event(event)
        return self._dispatched(result, role_, cls, opts, lambda **kw: DispatchStep(self, **kw), messages, call_opts)

    def _report(self, step: Step, status: Status, timeout_s: float | None,
                options: ReportOptions) -> router_pb2.OutcomeAck:
        status_ = _common.outcome_status(status)
        ack = self.client.report_outcome(step.decision_id, status_, timeout_s=timeout_s, job_id=self.job_id,
                                       **options)
        self._reported(step, status_, options, ack)
        return ack

    def complete(self, status: Status, *, timeout_s: float | None = None) -> router_pb2.JobSummary:
        """Complete the job now ("succeeded", "failed" or "abandoned"); later calls return the same summary."""
        if self.summary is None:
            self.summary = self.client.complete_job(self.job_id, self._status(status), timeout_s=timeout_s)
        return self.summary

    def __enter__(self) -> Job:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        status = self._final_status(exc is not None)
        if status is None:
            return
        if exc is None:
            self.complete(status)
            return
        try:
            self.complete(status)
        except Exception as err:
            exc.add_note(f"modelyard: completing job {self.job_id!r} as abandoned also failed: {err}")
