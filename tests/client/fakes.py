"""A small real grpc.aio Router server with scripted failures, for the client's retry and idempotency tests.

It is not a model of modelyard: it answers deterministically, records every call (method, idempotency id,
metadata) and can fail the first N calls with a status code or sleep through them. It runs on its own
event loop in a thread, so blocking and asyncio clients can both call it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2

FAKE_KEY = "fake-key-0123456789abcdef"


@dataclass
class Call:
    method: str
    key: str  # request_id, decision_id or job_id
    metadata: dict[str, str]


@dataclass
class Script:
    """What the fake does: fail the first `fail_first` calls with `fail_code`, sleep `sleep_s` in the first
    `sleep_first` calls, and demand `authorization: Bearer <key>` when `key` is set."""

    fail_first: int = 0
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    fail_message: str = "store unavailable; retry with the same request id"
    sleep_first: int = 0
    sleep_s: float = 0.0
    key: str = FAKE_KEY
    calls: list[Call] = field(default_factory=list)

    def keys(self, method: str) -> list[str]:
        return [c.key for c in self.calls if c.method == method]


class FakeRouter(router_pb2_grpc.RouterServicer):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.acked: dict[str, router_pb2.OutcomeAck] = {}

    async def _enter(self, method: str, key: str, context: grpc.aio.ServicerContext) -> None:
        s = self.script
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        s.calls.append(Call(method, key, metadata))
        n = len(s.calls)
        if s.key and metadata.get("authorization") != f"Bearer {s.key}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: unknown API key")
        if n <= s.sleep_first:
            await asyncio.sleep(s.sleep_s)
        if n <= s.fail_first:
            await context.abort(s.fail_code, s.fail_message)

    async def Route(self, request: router_pb2.RouteRequest, context: Any) -> router_pb2.RouteDecision:
        await self._enter("Route", request.request_id, context)
        return router_pb2.RouteDecision(
            decision_id=f"d-{request.request_id}", reserved_usd=0.01,
            model=types_pb2.ModelRef(model_id="fake-model", upstream_model="fake-upstream"),
        )

    async def ReportOutcome(self, request: router_pb2.OutcomeReport, context: Any) -> router_pb2.OutcomeAck:
        await self._enter("ReportOutcome", request.decision_id, context)
        if request.decision_id in self.acked:
            ack = router_pb2.OutcomeAck()
            ack.CopyFrom(self.acked[request.decision_id])
            ack.duplicate = True
            return ack
        ack = router_pb2.OutcomeAck(decision_id=request.decision_id, charged_usd=0.004, released_usd=0.006)
        self.acked[request.decision_id] = ack
        return ack

    async def CompleteJob(self, request: router_pb2.JobOutcome, context: Any) -> router_pb2.JobSummary:
        await self._enter("CompleteJob", request.job_id, context)
        return router_pb2.JobSummary(job_id=request.job_id, status=request.status,
                                     total_cost_usd=0.004 * len(self.acked), steps=len(self.acked))


@contextmanager
def fake_router(script: Script | None = None) -> Iterator[tuple[str, Script]]:
    """Serve a FakeRouter on 127.0.0.1 (port 0) in a thread; yields (address, script)."""
    script = script or Script()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        server = grpc.aio.server()
        router_pb2_grpc.add_RouterServicer_to_server(FakeRouter(script), server)
        box["port"] = server.add_insecure_port("127.0.0.1:0")
        box["stop"] = asyncio.Event()
        await server.start()
        started.set()
        await box["stop"].wait()
        await server.stop(grace=0)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True, name="fake-router")
    thread.start()
    assert started.wait(10), "fake router did not start"
    try:
        yield f"127.0.0.1:{box['port']}", script
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)
        loop.close()
