"""Bookkeeping of a job context shared by the sync and async clients: steps, retries, the final status.

A step is one routed model call. `retry_of=step` makes the next route attempt `step.attempt + 1` with the
step's models added to `failed_models`, and reuses the step's task profile unless overridden. The job ends
SUCCEEDED when its last reported step succeeded, FAILED otherwise, ABANDONED on an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from modelyard.client import _common
from modelyard.client._common import ReportOptions, Role, RouteOptions, Status
from modelyard.client.errors import InvalidRequest, Unavailable
from modelyard.v1 import router_pb2, types_pb2

SUCCESS = types_pb2.OUTCOME_STATUS_SUCCESS


class StepBase:
    """One routed step: the decision, what it retried, and its outcome once reported."""

    def __init__(self, *, decision: router_pb2.RouteDecision, role: int, task_class: str,
                 attempt: int, failed_models: tuple[str, ...], options: RouteOptions) -> None:
        self.decision = decision
        self.role = role
        self.task_class = task_class
        self.attempt = attempt
        self.failed_models = failed_models
        self.options = options
        self.ack: router_pb2.OutcomeAck | None = None
        self.status: int | None = None
        self.reported_model_id = ""

    @property
    def decision_id(self) -> str:
        return self.decision.decision_id

    @property
    def model(self) -> types_pb2.ModelRef:
        return self.decision.model

    @property
    def fallbacks(self) -> list[types_pb2.ModelRef]:
        return list(self.decision.fallbacks)

    @property
    def reported(self) -> bool:
        return self.ack is not None

    @property
    def charged_usd(self) -> float:
        return self.ack.charged_usd if self.ack is not None else 0.0

    def models_tried(self) -> tuple[str, ...]:
        """Failed models of this step's chain plus this step's model (and the model it fell back to)."""
        out = dict.fromkeys(self.failed_models)
        for m in (self.model.model_id, *self._also_tried(), self.reported_model_id):
            if m:
                out[m] = None
        return tuple(out)

    def _also_tried(self) -> tuple[str, ...]:
        return ()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(decision_id={self.decision_id!r}, model={self.model.model_id!r}, "
                f"attempt={self.attempt}, status={self.status})")


class DispatchStepMixin:
    """A step whose model call Dispatch made: the answer, the usage the provider billed, the fallbacks.

    The call itself settled the budget; what the harness still owes is the verdict (`report("success")`
    or `report("failure")` once it knows whether the step did its job), which goes to the decision that
    answered (`decision_id`, the fallback's when the call fell back).
    """

    result: _common.DispatchResult
    messages: tuple[Any, ...]
    call_options: _common.DispatchOptions

    @property
    def text(self) -> str:
        return self.result.text

    @property
    def tool_calls(self) -> list[dict[str, str]]:
        return [self.result.tool_calls[i] for i in sorted(self.result.tool_calls)]

    @property
    def outcome(self) -> router_pb2.DispatchOutcome:
        assert self.result.outcome is not None
        return self.result.outcome

    @property
    def completed(self) -> bool:
        """The provider answered (not a verdict on the step)."""
        return self.outcome.status == SUCCESS

    @property
    def decision_id(self) -> str:
        return self.outcome.decision_id or self.result.decision.decision_id  # type: ignore[union-attr]

    @property
    def answered_by(self) -> str:
        return self.outcome.model_id

    def _also_tried(self) -> tuple[str, ...]:
        return (*self.result.failed_models, self.outcome.model_id)


class JobBase:
    """State of a job context; subclasses add the calls (blocking or async)."""

    def __init__(self, task_class: str, job_id: str | None) -> None:
        self.job_id = job_id or _common.new_id()
        self.task_class = task_class
        self.steps: list[Any] = []
        self.summary: router_pb2.JobSummary | None = None
        self._last_status: int | None = None

    @property
    def completed(self) -> bool:
        return self.summary is not None

    @property
    def total_cost_usd(self) -> float | None:
        """The job's cost from the server's JobSummary; None until the job is completed."""
        return self.summary.total_cost_usd if self.summary is not None else None

    @property
    def charged_usd(self) -> float:
        """Sum of the charges on the acks of this job's steps (the first ack of each reported step)."""
        return sum(s.charged_usd for s in self.steps)

    def _plan_route(self, role: Role | None, retry_of: StepBase | None, task_class: str | None,
                    options: RouteOptions) -> tuple[int, str, RouteOptions]:
        if self.completed:
            raise RuntimeError(f"job {self.job_id!r} is already completed; start a new job")
        if retry_of is None:
            if role is None:
                raise InvalidRequest("role: is required unless retry_of is given")
            return _common.role(role), task_class or self.task_class, options
        merged: dict[str, Any] = {k: v for k, v in retry_of.options.items() if k != "request_id"}
        merged["attempt"] = retry_of.attempt + 1
        merged["failed_models"] = retry_of.models_tried()
        merged.update(options)
        role_ = retry_of.role if role is None else _common.role(role)
        return role_, task_class or retry_of.task_class, RouteOptions(**merged)  # type: ignore[typeddict-item]

    def _new_step(self, factory: Callable[..., Any], decision: router_pb2.RouteDecision, role: int,
                  task_class: str, options: RouteOptions) -> Any:
        step = factory(decision=decision, role=role, task_class=task_class,
                         attempt=max(1, options.get("attempt", 1)),
                         failed_models=tuple(options.get("failed_models", ())), options=options)
        self.steps.append(step)
        return step

    def _plan_dispatch(self, role: Role | None, messages: Any, retry_of: StepBase | None, task_class: str | None,
                       options: Any) -> tuple[int, str, RouteOptions, tuple[Any, ...], _common.DispatchOptions]:
        """The route of a Dispatch step as `_plan_route` plans it; a retry of a dispatched step also
        resends its messages and call options unless given anew."""
        route_opts, call_opts = _common.split_dispatch_options(options)
        role_, cls, opts = self._plan_route(role, retry_of, task_class, route_opts)
        if isinstance(retry_of, DispatchStepMixin):
            merged = {**retry_of.call_options, **call_opts}
            return (role_, cls, opts, tuple(messages) or retry_of.messages,
                    _common.DispatchOptions(**merged))  # type: ignore[typeddict-item]
        return role_, cls, opts, tuple(messages), call_opts

    def _dispatched(self, result: _common.DispatchResult, role: int, task_class: str, opts: RouteOptions,
                    factory: Callable[..., Any], messages: tuple[Any, ...],
                    call_opts: _common.DispatchOptions) -> Any:
        if result.decision is None or result.outcome is None:
            raise Unavailable(grpc.StatusCode.UNAVAILABLE,
                              "Dispatch: the stream ended without a decision and an outcome")
        step = self._new_step(factory, result.decision, role, task_class, opts)
        step.result, step.messages, step.call_options = result, messages, call_opts
        return step

    def _reported(self, step: StepBase, status: int, opts: ReportOptions, ack: router_pb2.OutcomeAck) -> None:
        if step.ack is not None and ack.duplicate:
            return
        step.ack, step.status = ack, status
        step.reported_model_id = opts.get("model_id", "")
        self._last_status = status

    def _final_status(self, failed: bool) -> int | None:
        """The status to complete with on leaving the block; None when there is nothing to complete."""
        if self.completed or not self.steps:
            return None
        if failed:
            return types_pb2.JOB_STATUS_ABANDONED
        return types_pb2.JOB_STATUS_SUCCEEDED if self._last_status == SUCCESS else types_pb2.JOB_STATUS_FAILED

    @staticmethod
    def _status(status: Status) -> int:
        return _common.job_status(status)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(job_id={self.job_id!r}, steps={len(self.steps)}, completed={self.completed})"
