"""A refused, blackholed or slow collector fails no RPC, and the server still stops within 10 s."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

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
