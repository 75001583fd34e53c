"""The replay's router over gRPC: the same job sequence through a live server (the real service path).

Uses the client library (`modelyard.client.Client`) when it is importable, else raw stubs from
`modelyard.v1`. The server must run a catalog matching the table (`modelyard bench catalog TABLE`).
The server keeps its own clock (wall time) and seed, so a remote run is not bit-for-bit the
in-process run; reported cost goes as `cost_usd` plus the same synthetic tokens.
"""

from __future__ import annotations

from typing import Any

import grpc

from modelyard.replay.catalog import Settings
from modelyard.replay.runner import EXECUTOR, synthetic_tokens
from modelyard.replay.table import Table
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2

SUCCESS, FAILURE, JOB_SUCCEEDED, JOB_FAILED = 1, 2, 1, 2


class _RawClient:
    """The three calls the replay needs, on raw stubs (fallback when the client library is absent)."""

    def __init__(self, address: str, api_key: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = router_pb2_grpc.RouterStub(self._channel)
        self._md = (("authorization", f"Bearer {api_key}"),)

    def route(self, role: int, task_class: str, *, job_id: str, **o: Any) -> router_pb2.RouteDecision:
        task = types_pb2.TaskProfile(role=role, task_class=task_class, est_input_tokens=o["est_input_tokens"],
                                     est_output_tokens=o["est_output_tokens"])
        req = router_pb2.RouteRequest(job_id=job_id, task=task, attempt=o["attempt"],
                                      failed_models=o["failed_models"], request_id=o.get("request_id") or "")
        return self._stub.Route(req, metadata=self._md, timeout=10)

    def report_outcome(self, decision_id: str, status: int, **o: Any) -> router_pb2.OutcomeAck:
        usage = types_pb2.Usage(input_tokens=o["input_tokens"], output_tokens=o["output_tokens"])
        req = router_pb2.OutcomeReport(decision_id=decision_id, status=status, usage=usage,
                                       cost_usd=o["cost_usd"], latency_ms=o["latency_ms"])
        return self._stub.ReportOutcome(req, metadata=self._md, timeout=10)

    def complete_job(self, job_id: str, status: int) -> router_pb2.JobSummary:
        return self._stub.CompleteJob(router_pb2.JobOutcome(job_id=job_id, status=status), metadata=self._md,
                                      timeout=10)

    def close(self) -> None:
        self._channel.close()


def connect(address: str, api_key: str) -> Any:
    try:
        from modelyard.client import Client
    except ImportError:
        return _RawClient(address, api_key)
    if all(hasattr(Client, f) for f in ("route", "report_outcome", "complete_job")):
        return Client(address, api_key)
    return _RawClient(address, api_key)


class Remote:
    """`runner.Router` over gRPC; one instance per replayed order (jobs are namespaced by `run_id`)."""

    def __init__(self, client: Any, table: Table, s: Settings, run_id: str) -> None:
        self.client, self.table, self.s, self.run_id = client, table, s, run_id
        self._decision: dict[tuple[str, str], str] = {}

    def route(self, job: str, task_class: str, attempt: int, failed: list[str], seed: int, now: float) -> str:
        job_id = f"{self.run_id}-{job}"
        d = self.client.route(EXECUTOR, task_class, job_id=job_id, est_input_tokens=self.s.est_tokens[0],
                              est_output_tokens=self.s.est_tokens[1], attempt=attempt, failed_models=list(failed),
                              request_id=f"{job_id}-a{attempt}")
        model = d.model.model_id
        self._decision[(job, model)] = d.decision_id
        return model

    def report(self, job: str, model: str, task_class: str, ok: bool, cost: float, now: float) -> None:
        tin, tout = synthetic_tokens(cost, self.s.est_tokens, self.table.prices[model])
        self.client.report_outcome(self._decision.pop((job, model)), SUCCESS if ok else FAILURE,
                                   input_tokens=tin, output_tokens=tout, cost_usd=cost, latency_ms=0.0)

    def complete(self, job: str, steps: list[str], task_class: str, ok: bool, now: float) -> None:
        self.client.complete_job(f"{self.run_id}-{job}", JOB_SUCCEEDED if ok else JOB_FAILED)
