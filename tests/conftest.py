"""Shared fixtures: a real modelyard server on loopback (port 0) with generated config and keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers import RunningServer, ServerThread, key_for, write_config

# Every test of a server runs against both fronts: grpc.aio serving everything, and the Rust front
# serving Route with the rest forwarded to grpc.aio (server.front: rust, docs/DESIGN.md).
FRONTS = ("python", "rust")


def _start(directory: Path, front: str) -> tuple[ServerThread, RunningServer]:
    thread = ServerThread(write_config(directory, **{"server.front": front}))
    return thread, thread.start()


@pytest.fixture(scope="session", params=FRONTS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per front for the session: tests must not depend on its learned state or spend."""
    thread, running = _start(tmp_path_factory.mktemp(f"server-{request.param}"), request.param)
    yield running
    thread.stop()


@pytest.fixture(params=FRONTS)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A server of its own, for tests that need exact budgets, state or config changes."""
    thread, running = _start(tmp_path, request.param)
    yield running
    thread.stop()


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def auth(name: str = "admin") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key_for(name)}")]
