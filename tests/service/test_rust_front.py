"""The Rust front serves the Routes it can and forwards the rest, and its Routes are the Python service's.

The service suites run on both fronts and so hold the answers equal; these tests check what those cannot
see from outside: that the front really answered (not Python behind it), that each kind of Route it must
not answer was forwarded for the stated reason, and that what it wrote is what the Python side reads.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from modelyard.config import ConfigError, parse_config
from modelyard.store.sqlite import SqliteStore
from modelyard.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import ServerThread, config_dict, write_config
from tests.redis_fixtures import redis_server

__all__ = ["redis_server"]


def task(**kw: Any) -> types_pb2.TaskProfile:
    return types_pb2.TaskProfile(**{"role": types_pb2.ROLE_EXECUTOR, "task_class": "bugfix/python",
                                    "est_input_tokens": 20_000, "est_output_tokens": 1_500, **kw})


@pytest.fixture(params=["sqlite", "redis"])
def rust(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    overrides: dict[str, Any] = {"server.front": "rust"}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        monkeypatch.setenv("MODELYARD_REDIS_URL", server.url)
        overrides["store"] = {"kind": "redis", "redis": {"url_env": "MODELYARD_REDIS_URL",
                                                         "key_prefix": f"t{uuid.uuid4().hex[:8]}"}}
    thread = ServerThread(write_config(tmp_path, **overrides))
    running = thread.start()
    with grpc.insecure_channel(running.address) as ch:
        yield thread, router_pb2_grpc.RouterStub(ch), ch
    thread.stop()


def _route(stub: Any, key: str = "admin", **kw: Any) -> router_pb2.RouteDecision:
    req = router_pb2.RouteRequest(request_id=kw.pop("request_id", uuid.uuid4().hex), job_id=kw.pop("job_id", "job"),
                                  task=kw.pop("task", task()), **kw)
    return stub.Route(req, metadata=auth(key), timeout=5)


def _code(fn: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    return info.value.code()


def test_the_front_answers_routes_and_forwards_each_other_kind_for_its_reason(rust: Any) -> None:
    thread, stub, ch = rust
    front = thread.server.front
    first = _route(stub, request_id="r-1", explain=True)
    assert front.stats()["served"] == 1 and not front.stats()["delegated"]
    assert first.budgets and first.candidates and first.reason
    # The same request id again: Python replays the decision the front stored.
    again = _route(stub, request_id="r-1")
    assert again.replayed and again.decision_id == first.decision_id
    assert _code(lambda: _route(stub, request_id="")) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _route(stub, key="nobody")) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: _route(stub, key="read")) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: _route(stub, constraints=types_pb2.Constraints(allowed_models=["gone"]))) \
        == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _route(stub, constraints=types_pb2.Constraints(max_cost_usd=1e-9))) \
        == grpc.StatusCode.FAILED_PRECONDITION
    # A retry of a job whose failure this replica never saw: Python reads the job from the store.
    retry = _route(stub, job_id="never-seen", attempt=2, failed_models=["tiny-coder"])
    assert retry.model.model_id != "tiny-coder"
    # Non-ASCII ids are Python's to judge (str.isprintable).
    assert _route(stub, job_id="jöb").model.model_id
    stats = front.stats()
    assert stats["served"] == 1, stats
    assert stats["delegated"] == {"replay": 1, "invalid": 2, "auth": 1, "scope": 1, "allowed": 1, "no model": 1,
                                  "job memory": 1}, stats
    # Admin.GetStats counts the front's decisions with Python's (the replay made none).
    got = admin_pb2_grpc.AdminStub(ch).GetStats(admin_pb2.GetStatsRequest(), metadata=auth(), timeout=5)
    assert got.decisions == 3


def test_what_the_front_stores_is_what_the_python_side_reads(rust: Any) -> None:
    thread, stub, _ = rust
    d = _route(stub, job_id="stored", explain=True, task=task(est_cached_input_tokens=5_000))
    assert thread.server.front.stats()["served"] == 1
    store = thread.app.store
    record = thread.call(store.get_decision(d.decision_id, "acme"))
    assert record is not None and record.job_id == "stored" and record.model == d.model.model_id
    assert record.estimate_micros == round(d.reserved_usd * 1_000_000)
    from modelyard import convert

    stored = convert.decision_from_stored(record.payload)
    # The row keeps the answer as sent, to the last field (a replay returns it).
    assert convert.decision(stored) == d
    assert stored.decision_id == d.decision_id and stored.reason == d.reason
    assert stored.est_cached_input_tokens == 5_000 and stored.attempt == 1 and stored.failed_effort is None
    assert [c.model_id for c in stored.candidates] == [c.model_id for c in d.candidates]
    assert [(b.scope, b.window, b.hard_usd) for b in stored.budgets] == [
        (b.scope, b.window, b.hard_limit_usd if b.has_limit else None) for b in d.budgets]
    # The reservation is held on the tenant's and the key's counters, and settles in Python.
    ack = stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id, status=1,
                                                      usage=types_pb2.Usage(input_tokens=10_000, output_tokens=500)),
                             metadata=auth(), timeout=5)
    assert not ack.duplicate and ack.charged_usd + ack.released_usd == pytest.approx(d.reserved_usd, abs=1e-6)
    usage = thread.call(store.usage((("tenant", "acme"), ("key", "acme-admin")), thread.app.clock()))
    assert all(u.reserved_micros == 0 for u in usage) and all(u.spent_micros > 0 for u in usage)


def test_the_front_needs_a_store_file_it_can_open(tmp_path: Path) -> None:
    cfg = config_dict(tmp_path / "x.db", **{"server.front": "rust"})
    cfg["store"] = {"kind": "sqlite", "sqlite": {"path": ":memory:"}}
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(cfg), "modelyard.yaml", tmp_path)
    assert "server.front" in str(info.value) and "store.sqlite.path" in str(info.value)


def test_a_stopped_front_leaves_the_store_consistent(tmp_path: Path) -> None:
    """Routes served by the front, then a restart on the Python front: every reservation is there."""
    config = write_config(tmp_path, **{"server.front": "rust"})
    thread = ServerThread(config)
    running = thread.start()
    with grpc.insecure_channel(running.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        ids = [_route(stub, job_id=f"j{i}").decision_id for i in range(20)]
    thread.stop()
    store = SqliteStore(tmp_path / "modelyard.db")
    import asyncio

    async def check() -> None:
        await store.open()
        try:
            found = [await store.get_decision(i, "acme") for i in ids]
            assert all(r is not None and not r.settled for r in found)
            usage = await store.usage((("tenant", "acme"),), found[0].created_at)  # type: ignore[union-attr]
            held = sum(r.estimate_micros for r in found)  # type: ignore[union-attr]
            assert sum(u.reserved_micros for u in usage) == 3 * held  # hour, day and month windows
        finally:
            await store.close()

    asyncio.run(check())


def test_a_busy_port_is_an_error_naming_server_listen_and_leaves_nothing_behind(tmp_path: Path) -> None:
    import asyncio
    import socket
    import tempfile

    from modelyard.app import App
    from modelyard.server import Server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, **{"server.front": "rust"})

        async def start() -> None:
            server = Server(App.from_config_file(config), f"127.0.0.1:{port}")
            with pytest.raises(OSError, match=r"server\.listen"):
                await server.start()

        dirs = {Path(tempfile.gettempdir()), Path("/tmp")}

        def sockets() -> set[Path]:
            return {p for d in dirs for p in d.glob("modelyard-front-*")}

        before = sockets()
        asyncio.run(start())
        assert sockets() <= before


def test_the_front_writes_through_the_sqlite_library_python_uses() -> None:
    """Two copies of SQLite in one process do not see each other's locks: under load the store file
    was corrupted ("database disk image is malformed") while the core bundled its own SQLite."""
    import sqlite3

    from modelyard import front
    from modelyard.core import sqlite_soft_heap_limit

    front.check_one_sqlite_library()
    conn = sqlite3.connect(":memory:")
    before = sqlite_soft_heap_limit(123_457)
    try:
        assert conn.execute("PRAGMA soft_heap_limit").fetchone()[0] == 123_457
    finally:
        sqlite_soft_heap_limit(before)
        conn.close()


def test_a_core_with_its_own_sqlite_copy_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard import front

    own_copy = {"limit": 0}

    def elsewhere(limit: int) -> int:  # a second library: Python's sqlite3 never sees this value
        previous, own_copy["limit"] = own_copy["limit"], limit
        return previous

    monkeypatch.setattr(front, "sqlite_soft_heap_limit", elsewhere)
    with pytest.raises(ValueError, match=r"server\.front: rust .* set server\.front: python"):
        front.check_one_sqlite_library()
