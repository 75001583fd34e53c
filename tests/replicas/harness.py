"""Simulated coding-agent harnesses for replica tests: route a step, report it, watch the counters."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import grpc
import redis.asyncio as aioredis

from modelyard.store import KEY, TENANT, RedisStore, Window, window_start
from modelyard.store._redis_codec import Keys
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.replicas.conftest import PREFIX

TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="edit/python",
                             est_input_tokens=2000, est_output_tokens=500)
FAILED = object()


@dataclass
class Tally:
    routed: dict[str, int] = field(default_factory=dict)  # decision_id -> reserved micros
    settled: dict[str, int] = field(default_factory=dict)  # acknowledged: decision_id -> charged micros
    refused: int = 0  # RESOURCE_EXHAUSTED
    errors: dict[str, int] = field(default_factory=dict)  # other status codes
    slowest_error_s: float = 0.0

    def error(self, exc: grpc.aio.AioRpcError, took: float) -> None:
        name = exc.code().name
        self.errors[name] = self.errors.get(name, 0) + 1
        self.slowest_error_s = max(self.slowest_error_s, took)


def stub(channel: grpc.aio.Channel) -> router_pb2_grpc.RouterStub:
    return router_pb2_grpc.RouterStub(channel)


async def route(r: router_pb2_grpc.RouterStub, tally: Tally, request_id: str | None = None,
                job_id: str = "job") -> router_pb2.RouteDecision | None:
    start = time.monotonic()
    try:
        d = await r.Route(router_pb2.RouteRequest(request_id=request_id or uuid.uuid4().hex, job_id=job_id,
                                                  task=TASK), metadata=auth(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            tally.refused += 1
        else:
            tally.error(exc, time.monotonic() - start)
        return None
    tally.routed[d.decision_id] = round(d.reserved_usd * 1_000_000)
    return d


USED = 0.5  # each step uses half the tokens it was routed with


async def report(
    r: router_pb2_grpc.RouterStub, tally: Tally, d: router_pb2.RouteDecision
) -> router_pb2.OutcomeAck | None:
    """Report a success that used half of the step's estimated tokens, priced by the server.

    The usage must not depend on the reservation: the core learns billed / estimated cost, so a
    report of "a fraction of what you reserved" would shrink the estimate on every step. A fixed
    share of the step's tokens keeps the bill under the reservation (the learned ratio stays above
    0.5, pulled toward 1 by its prior), so settles never push spend past what was reserved.
    """
    start = time.monotonic()
    try:
        usage = types_pb2.Usage(input_tokens=round(TASK.est_input_tokens * USED),
                                output_tokens=round(TASK.est_output_tokens * USED))
        ack = await r.ReportOutcome(router_pb2.OutcomeReport(
            decision_id=d.decision_id, status=types_pb2.OUTCOME_STATUS_SUCCESS, latency_ms=900,
            usage=usage), metadata=auth(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        tally.error(exc, time.monotonic() - start)
        return None
    if not ack.duplicate:
        tally.settled[d.decision_id] = round(ack.charged_usd * 1_000_000)
    return ack


async def harness(stubs: list[router_pb2_grpc.RouterStub], index: int, steps: int, tally: Tally,
                  stop: asyncio.Event | None = None) -> None:
    """`steps` route+report pairs; each step routes on one replica and reports on the next."""
    for step in range(steps):
        if stop is not None and stop.is_set():
            return
        d = await route(stubs[(index + step) % len(stubs)], tally)
        if d is not None:
            await report(stubs[(index + step + 1) % len(stubs)], tally, d)


class Counters:
    """Reads the shared counters and ledger straight from Redis."""

    def __init__(self, url: str) -> None:
        self.keys = Keys(PREFIX)
        self.raw = aioredis.Redis.from_url(url, socket_timeout=2)
        self.store = RedisStore(url, key_prefix=PREFIX)

    async def tenant_day(self, tenant: str = "acme") -> tuple[int, int]:
        """(spent, reserved) of the tenant's day counter, read in one atomic HMGET."""
        key = self.keys.counter(tenant, TENANT, tenant, int(Window.DAY), window_start(Window.DAY, time.time()))
        spent, reserved = await self.raw.hmget(key, "spent", "reserved")
        return int(spent or 0), int(reserved or 0)

    async def check_books(self, tenant: str = "acme") -> tuple[int, int, list]:
        """(spent, reserved, ledger) after asserting ledger = counters, one row per decision."""
        await self.store.open()
        ledger = await self.store.ledger(tenant=tenant)
        usage = await self.store.usage([(TENANT, tenant), (KEY, "acme-admin")], time.time())
        day = next(u for u in usage if u.scope == TENANT and u.window == Window.DAY)
        assert len({e.decision_id for e in ledger}) == len(ledger), "a decision was charged twice"
        assert sum(e.amount_micros for e in ledger) == day.spent_micros
        key_day = next(u for u in usage if u.scope == KEY and u.window == Window.DAY)
        assert (key_day.spent_micros, key_day.reserved_micros) == (day.spent_micros, day.reserved_micros)
        return day.spent_micros, day.reserved_micros, ledger

    async def aclose(self) -> None:
        await self.raw.aclose()
        await self.store.close()
