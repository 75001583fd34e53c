"""Fixtures for telemetry tests: a modelyard server exporting to a given collector, and a routed job."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import FRONTS, auth
from tests.helpers import RunningServer, ServerThread, write_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


@pytest.fixture(autouse=True)
def fast_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short export intervals through the standard OTEL_* variables, so tests wait seconds, not minutes."""
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SDK_DISABLED",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                 "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(name, raising=False)


StartServer = Callable[..., tuple[ServerThread, RunningServer]]


@pytest.fixture(params=FRONTS)
def telemetry_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """start(endpoint, protocol="grpc", **overrides) → a running server exporting there; stopped after.
    Run on both fronts: the Rust front's Routes must leave the same spans and metrics."""
    threads: list[ServerThread] = []

    def start(endpoint: str, protocol: str = "grpc", **overrides: Any) -> tuple[ServerThread, RunningServer]:
        cfg = write_config(tmp_path, **{"telemetry.enabled": True, "telemetry.otlp.protocol": protocol,
                                        "telemetry.otlp.endpoint": endpoint, "server.front": request.param,
                                        **overrides})
        thread = ServerThread(cfg)
        threads.append(thread)
        return thread, thread.start()

    yield start
    for thread in threads:
        thread.stop()


def harness_md(key: str = "admin", traceparent: str = TRACEPARENT) -> list[tuple[str, str]]:
    return [*auth(key), ("traceparent", traceparent)]


def routed_job(channel: grpc.Channel, *, task_class: str = "bugfix/python",
               metadata: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Route a planner and an executor step, report both, complete the job; returns what was sent/got."""
    md = metadata or harness_md()
    stub = router_pb2_grpc.RouterStub(channel)
    job = f"job-{uuid.uuid4().hex}"
    decisions = []
    for role, status in ((types_pb2.ROLE_PLANNER, types_pb2.OUTCOME_STATUS_SUCCESS),
                         (types_pb2.ROLE_EXECUTOR, types_pb2.OUTCOME_STATUS_FAILURE)):
        d = stub.Route(router_pb2.RouteRequest(
            request_id=uuid.uuid4().hex, job_id=job,
            task=types_pb2.TaskProfile(role=role, task_class=task_class, est_input_tokens=20_000,
                                       est_output_tokens=1_500)), metadata=md, timeout=5)
        stub.ReportOutcome(router_pb2.OutcomeReport(
            decision_id=d.decision_id, status=status, latency_ms=1500,
            usage=types_pb2.Usage(input_tokens=18_000, cached_input_tokens=2_000, output_tokens=1_000)),
            metadata=md, timeout=5)
        decisions.append(d)
    summary = stub.CompleteJob(router_pb2.JobOutcome(job_id=job, status=types_pb2.JOB_STATUS_SUCCEEDED),
                               metadata=md, timeout=5)
    return {"job_id": job, "decisions": decisions, "summary": summary}
