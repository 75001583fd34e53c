"""`kill -9` of the server under load, then a restart: no settled charge lost, no reservation leaked."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import grpc

from modelyard.store.sqlite import SqliteStore
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import free_port, spawn_server, write_config

TTL_S = 2


def _load(port: int, acked: dict[str, float], stop: threading.Event) -> None:
    """Route + report in a loop; record every settle the server acknowledged."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        task = types_pb2.TaskProfile(
            role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python", est_input_tokens=2000, est_output_tokens=300
        )
        sent = 0
        while not stop.is_set():
            sent += 1
            try:
                d = stub.Route(
                    router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="load", task=task),
                    metadata=auth(),
                    timeout=2,
                )
                if sent % 3 == 0:
                    continue  # leave some reservations unreported, as a crashing harness would
                ack = stub.ReportOutcome(
                    router_pb2.OutcomeReport(
                        decision_id=d.decision_id,
                        status=types_pb2.OUTCOME_STATUS_SUCCESS,
                        usage=types_pb2.Usage(input_tokens=1500, output_tokens=200),
                        latency_ms=900,
                    ),
                    metadata=auth(),
                    timeout=2,
                )
                acked[d.decision_id] = ack.charged_usd
            except grpc.RpcError:
                return  # the server died under us


def test_kill_9_under_load_loses_no_settle_and_leaks_no_reservation(tmp_path: Path) -> None:
    config = write_config(tmp_path, **{"store.reservation_ttl_s": TTL_S, "store.on_expiry": "charge"})
    port = free_port()
    proc = spawn_server(config, port)
    acked: dict[str, float] = {}
    stop = threading.Event()
    workers = [threading.Thread(target=_load, args=(port, acked, stop)) for _ in range(4)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 20
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for w in workers:
        w.join()
    assert len(acked) >= 60, "the load never got going"

    # Restart; the server's own expiry sweep must clean up the dead process's reservations.
    proc = spawn_server(config, port)
    try:
        time.sleep(TTL_S + 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0

    async def inspect() -> None:
        store = SqliteStore(tmp_path / "modelyard.db")
        await store.open()
        try:
            ledger = await store.ledger()
            by_decision: dict[str, list[int]] = {}
            for e in ledger:
                by_decision.setdefault(e.decision_id, []).append(e.amount_micros)
            for decision_id, charged in acked.items():
                assert by_decision.get(decision_id) == [round(charged * 1e6)], decision_id
            assert all(len(v) == 1 for v in by_decision.values()), "a decision was charged twice"
            usage = await store.usage([("tenant", "acme")], time.time())
            assert all(u.reserved_micros == 0 for u in usage), usage
            day = next(u for u in usage if u.window == 2)
            assert day.spent_micros == sum(e.amount_micros for e in ledger)
        finally:
            await store.close()

    asyncio.run(inspect())
