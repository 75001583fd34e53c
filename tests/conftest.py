"""Shared fixtures: a real modelyard server on loopback (port 0) with generated config and keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers import RunningServer, ServerThread, key_for, write_config


def _start(directory: Path) -> tuple[ServerThread, RunningServer]:
    thread = ServerThread(write_config(directory))
    return thread, thread.start()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the session: tests must not depend on its learned state or spend."""
    thread, running = _start(tmp_path_factory.mktemp("server"))
    yield running
    thread.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of its own, for tests that need exact budgets, state or config changes."""
    thread, running = _start(tmp_path)
    yield running
    thread.stop()


@pytest.fixture
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def auth(name: str = "admin") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key_for(name)}")]
