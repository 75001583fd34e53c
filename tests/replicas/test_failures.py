"""Failures under load: a replica killed with SIGKILL, and Redis killed and restarted."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2

from tests.replicas.conftest import store_health
from tests.replicas.harness import Counters, Tally, harness, report, route, stub

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
TTL_S = 2


async def _poll(check, within: float, every: float = 0.05) -> float:
    """Seconds until `await check()` is truthy; fails after `within` seconds."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"not within {within}s"
        await asyncio.sleep(every)
    return time.monotonic() - start


async def _slow_steps(r, tally: Tally, stop: asyncio.Event) -> None:
    """Route on the doomed replica and report there a little later: some are open at the kill."""
    while not stop.is_set():
        d = await route(r, tally)
        if d is None:
            return
        # Hold each reservation most of the time, so the kill leaves several open whatever the
        # machine's load (with 50 ms, a loaded run once left only two, both already settled).
        await asyncio.sleep(0.3)
        await report(r, tally, d)


async def test_killed_replica_reservations_are_closed_once_within_ttl(cluster_factory):
    cluster = cluster_factory(3, store={"reservation_ttl_s": TTL_S})
    counters = Counters(cluster.redis.url)
    channels = [grpc.aio.insecure_channel(r.address) for r in cluster.replicas]
    stubs, tally, stop = [stub(ch) for ch in channels], Tally(), asyncio.Event()
    try:
        doomed = [asyncio.create_task(_slow_steps(stubs[0], tally, stop)) for _ in range(10)]
        healthy = [asyncio.create_task(harness(stubs[1:], i, 30, tally)) for i in range(10)]
        await asyncio.sleep(0.5)
        cluster.replicas[0].kill()
        killed_at = time.monotonic()
        await asyncio.gather(*healthy)
        stop.set()
        await asyncio.gather(*doomed)
        orphans = set(tally.routed) - set(tally.settled)
        assert orphans, "no reservation was left open by the kill"

        async def released() -> bool:
            return (await counters.tenant_day())[1] == 0

        await _poll(released, TTL_S + 5 - (time.monotonic() - killed_at))
        print(f"{len(orphans)} orphaned reservations closed {time.monotonic() - killed_at:.1f}s after the kill")
        _, _, ledger = await counters.check_books()
        kinds = {e.decision_id: e.kind for e in ledger}
        assert all(kinds.get(d) == "settle" for d in tally.settled)
        # on_expiry: charge — every orphan settled (its report landed before the kill) or expired
        assert all(kinds.get(d) in ("expiry", "settle") for d in orphans)
        assert any(kinds.get(d) == "expiry" for d in orphans)
    finally:
        for ch in channels:
            await ch.close()
        await counters.aclose()


async def _all_health(cluster, status: int) -> bool:
    got = await asyncio.gather(*(asyncio.to_thread(store_health, r.address) for r in cluster.replicas))
    return all(s == status for s in got)


async def test_redis_restart_fails_closed_then_recovers_losing_no_settle(cluster_factory):
    cluster = cluster_factory(3)
    counters = Counters(cluster.redis.url)
    channels = [grpc.aio.insecure_channel(r.address) for r in cluster.replicas]
    stubs, tally, stop = [stub(ch) for ch in channels], Tally(), asyncio.Event()
    try:
        load = [asyncio.create_task(harness(stubs, i, 10_000, tally, stop)) for i in range(10)]
        await asyncio.sleep(1.0)
        cluster.redis.kill()
        await _poll(lambda: _all_health(cluster, NOT_SERVING), 3)
        outage_tally = Tally()
        assert await route(stubs[0], outage_tally) is None
        assert set(outage_tally.errors) == {"UNAVAILABLE"} and outage_tally.slowest_error_s < 4.0
        await asyncio.sleep(1.0)  # load keeps running against the dead store
        cluster.redis.start()
        recovered = await _poll(lambda: _all_health(cluster, SERVING), 5)

        async def routes() -> bool:
            return all([await route(s, Tally()) is not None for s in stubs])

        await _poll(routes, 5 - recovered)
        stop.set()
        await asyncio.gather(*load)
        assert set(tally.errors) <= {"UNAVAILABLE"} and tally.slowest_error_s < 4.0, tally.errors
        assert tally.errors, "no call saw the outage"
        _, _, ledger = await counters.check_books()
        charged = {e.decision_id: e.amount_micros for e in ledger if e.kind == "settle"}
        lost = {d for d in tally.settled if d not in charged}
        assert not lost, f"{len(lost)} acknowledged settles lost"
        assert all(charged[d] == c for d, c in tally.settled.items())
        print(f"{len(tally.settled)} settles kept, errors {tally.errors}, slowest error "
              f"{tally.slowest_error_s:.2f}s, healthy {recovered:.2f}s after redis returned")
    finally:
        for ch in channels:
            await ch.close()
        await counters.aclose()
