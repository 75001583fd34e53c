"""A refused, blackholed or slow collector fails no RPC, and the server still stops within 10 s."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from modelyard.telemetry import logs
from tests.telemetry.conftest import StartServer, routed_job
from tests.telemetry.receiver import Blackhole, GrpcReceiver, closed_endpoint

JOBS = 20  # 5 RPCs each; spans and metrics pile up while the exporter is stuck
SHUTDOWN_BOUND_S = 10.0


@contextlib.contextmanager
def refused() -> Iterator[str]:
    yield closed_endpoint()


@contextlib.contextmanager
def blackholed() -> Iterator[str]:
    with Blackhole() as hole:
        yield hole.endpoint


@contextlib.contextmanager
def slow() -> Iterator[str]:
    with GrpcReceiver(delay=3.0) as receiver:  # longer than the exporter's 2 s timeout
        yield receiver.endpoint


CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("refused-grpc", refused, "grpc"),
    ("refused-http", refused, "http/protobuf"),
    ("blackholed-grpc", blackholed, "grpc"),
    ("blackholed-http", blackholed, "http/protobuf"),
    ("slow-grpc", slow, "grpc"),
]


@pytest.mark.parametrize(("collector", "protocol"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_collector_trouble_fails_no_rpc_and_shutdown_is_bounded(
    telemetry_server: StartServer, collector: Callable[[], Any], protocol: str,
) -> None:
    with collector() as endpoint:
        thread, server = telemetry_server(endpoint, protocol, **{"telemetry.prometheus.enabled": False})
        failures = []
        with grpc.insecure_channel(server.address) as ch:
            for _ in range(JOBS):
                try:
                    routed_job(ch)
                except grpc.RpcError as exc:
                    failures.append(exc)
        assert not failures, f"{len(failures)} RPCs failed while the collector was down: {failures[:3]}"
        time.sleep(1.5)  # let the batch exporter get stuck mid-export before stopping
        started = time.monotonic()
        thread.stop()
        took = time.monotonic() - started
    assert took < SHUTDOWN_BOUND_S, f"server stop took {took:.1f} s with the collector {collector.__name__}"


def test_a_down_collector_logs_each_kind_of_failure_once_not_per_export(
    telemetry_server: StartServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Exports every 100 ms for 3 s against a refused collector: the SDK alone logs a failure and a
    # retry line per attempt (a few a second, per signal, for as long as the collector is down).
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    logs.THROTTLE.reset()  # another test may have logged the same lines within the interval
    caplog.set_level(logging.WARNING)
    with refused() as endpoint:
        thread, server = telemetry_server(endpoint, "grpc", **{"telemetry.prometheus.enabled": False})
        with grpc.insecure_channel(server.address) as ch:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                routed_job(ch)
        thread.stop()
    sdk = [r for r in caplog.records if r.name.startswith("opentelemetry")]
    templates = [str(r.msg) for r in sdk]
    assert sdk, "the refused collector should have been logged at least once"
    assert len(templates) == len(set(templates)), sorted(templates)


def test_throttle_passes_one_line_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = logs.Throttle(interval_s=60.0, clock=lambda: now[0])
    logger = logging.getLogger("tests.throttle")

    def rec(msg: str, *args: object) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, None)

    assert throttle.filter(rec("Queue full, dropping %s.", "span"))
    now[0] = 10.0
    assert not any(throttle.filter(rec("Queue full, dropping %s.", "span")) for _ in range(5))
    assert throttle.filter(rec("Failed to export %s", "batch"))  # another template has its own allowance
    now[0] = 61.0
    passed = rec("Queue full, dropping %s.", "span")
    assert throttle.filter(passed)
    assert passed.getMessage() == "Queue full, dropping span. (5 more like this in the last 61 s not logged)"
    assert throttle.filter(rec("Queue full, dropping %s.", "span")) is False
