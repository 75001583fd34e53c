"""Budgets shared by 3 replicas on one Redis: no overspend under load, idempotent retries."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import grpc

from tests.replicas.harness import Counters, Tally, harness, report, route, stub

HARD_USD = 0.3  # well under what 10,000 steps cost, so the limit is contested
HARNESSES, STEPS = 50, 200  # 10,000 route+report pairs against one hard limit


def _hard_budget(cfg: dict[str, Any]) -> None:
    cfg["tenants"][0]["budgets"] = {"day": {"soft_usd": HARD_USD, "hard_usd": HARD_USD}}


async def _monitor(counters: Counters, stop: asyncio.Event, samples: list[tuple[int, int]]) -> None:
    while not stop.is_set():
        samples.append(await counters.tenant_day())
        await asyncio.sleep(0.002)


async def test_many_harnesses_never_overspend(cluster_factory):
    cluster = cluster_factory(3, edit=_hard_budget)
    counters = Counters(cluster.redis.url)
    channels = [grpc.aio.insecure_channel(r.address) for r in cluster.replicas]
    stubs, tally, samples, stop = [stub(ch) for ch in channels], Tally(), [], asyncio.Event()
    started = time.monotonic()
    try:
        monitor = asyncio.create_task(_monitor(counters, stop, samples))
        await asyncio.gather(*(harness(stubs, i, STEPS, tally) for i in range(HARNESSES)))
        stop.set()
        await monitor
        hard = round(HARD_USD * 1_000_000)
        over = [(s, r) for s, r in samples if s + r > hard]
        assert not over, f"{len(over)} of {len(samples)} samples over the limit, e.g. {over[:3]}"
        assert tally.refused > 0 and tally.settled, f"the budget was never contested: {len(tally.settled)} settled"
        assert not tally.errors, tally.errors
        spent, reserved, ledger = await counters.check_books()
        assert spent <= hard and reserved == 0
        assert spent == sum(tally.settled.values()) and len(ledger) == len(tally.settled)
        print(f"{len(samples)} samples, {len(tally.settled)} settled, {tally.refused} refused, "
              f"spent {spent}/{hard} micros in {time.monotonic() - started:.1f}s")
    finally:
        for ch in channels:
            await ch.close()
        await counters.aclose()


async def test_concurrent_retries_reserve_once_and_charge_once(cluster_factory):
    cluster = cluster_factory(3)
    counters = Counters(cluster.redis.url)
    channels = [grpc.aio.insecure_channel(r.address) for r in cluster.replicas]
    stubs, tally = [stub(ch) for ch in channels], Tally()
    try:
        request_id = uuid.uuid4().hex
        decisions = await asyncio.gather(*(route(stubs[i % 3], tally, request_id) for i in range(10)))
        assert all(d is not None for d in decisions)
        assert len({d.decision_id for d in decisions if d}) == 1
        assert sorted(d.replayed for d in decisions if d) == [False] + [True] * 9
        first = decisions[0]
        assert first is not None
        spent, reserved = await counters.tenant_day()
        assert (spent, reserved) == (0, round(first.reserved_usd * 1_000_000))

        acks = await asyncio.gather(*(report(stubs[i % 3], tally, first) for i in range(10)))
        assert sorted(a.duplicate for a in acks if a) == [False] + [True] * 9
        spent, reserved, ledger = await counters.check_books()
        assert [e.decision_id for e in ledger] == [first.decision_id]
        assert (spent, reserved) == (tally.settled[first.decision_id], 0)
    finally:
        for ch in channels:
            await ch.close()
        await counters.aclose()
