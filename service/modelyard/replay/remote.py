"""The replay's router over gRPC: the same job sequence through a live server (the real service path).

Uses the client library (`modelyard.client.Client`), as a harness would. The server must run a
catalog matching the table (`modelyard bench catalog TABLE`).
The server keeps its own clock (wall time) and seed, so a remote run is not bit-for-bit the
in-process run; reported cost goes as `cost_usd` plus the same synthetic tokens.
"""

from __future__ import annotations

from modelyard.client import Client
from modelyard.replay.catalog import Settings
from modelyard.replay.runner import EXECUTOR, synthetic_tokens
from modelyard.replay.table import Table

SUCCESS, FAILURE, JOB_SUCCEEDED, JOB_FAILED = 1, 2, 1, 2


def connect(address: str, api_key: str) -> Client:
    return Client(address, api_key, timeout_s=10)


class Remote:
    """`runner.Router` over gRPC; one instance per replayed order (jobs are namespaced by `run_id`)."""

    def __init__(self, client: Client, table: Table, s: Settings, run_id: str) -> None:
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

    def report(self, job: str, model: str, task_class: str, ok: bool, cost: float, now: float,
               attempt: int = 1) -> None:
        tin, tout = synthetic_tokens(cost, self.s.est_tokens, self.table.prices[model])
        self.client.report_outcome(self._decision.pop((job, model)), SUCCESS if ok else FAILURE,
                                   input_tokens=tin, output_tokens=tout, cost_usd=cost)

    def complete(self, job: str, steps: list[str], task_class: str, ok: bool, now: float) -> None:
        self.client.complete_job(f"{self.run_id}-{job}", JOB_SUCCEEDED if ok else JOB_FAILED)
