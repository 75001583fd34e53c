"""Shared learning through Redis (learning_sync.py) on a real Redis: replicas exchange deltas
of what changed, converge on the sum of everyone's reports, start from a base plus the log,
catch up when they fell behind the trimmed log, and skip what this build cannot read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modelyard import learning_sync
from modelyard.core import RoutingCore
from modelyard.learning_sync import LearningSync, SyncedCore, _after
from modelyard.store import RedisStore, StoreUnavailable, redis_store
from modelyard.store.base import DeltaEntry
from tests.core.test_learning import CATALOG
from tests.redis_fixtures import RedisServer

NAME = "core"


@pytest.fixture
async def store(redis_server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_server.url, key_prefix=f"sync-{request.node.name}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def replica(store: object, tag: str, *, compact_s: float = 3600.0) -> tuple[SyncedCore, LearningSync]:
    core = SyncedCore(CATALOG)
    sync = LearningSync(store, lambda: {"": core}, lambda key: NAME,  # type: ignore[arg-type]
                        replica=tag, interval_s=60, compact_interval_s=compact_s)
    return core, sync


async def sync(s: LearningSync) -> None:
    """One sync, and the base it took (if any) in the store."""
    await s.sync_all()
    await s.base_saved()


def teach(core: RoutingCore, n: int, *, model: str = "m", task_class: str = "edit", status: int = 1,
          now: float = 1000.0) -> None:
    for _ in range(n):
        core.report(model=model, role=2, task_class=task_class, status=status, now=now, input_tokens=9000,
                    cached_input_tokens=0, output_tokens=600, latency_ms=1200.0)


def table(core: RoutingCore) -> dict[tuple[str, int, str], tuple[float, float]]:
    """Each arm's outcomes; an arm left with none (a replaced state's, on another replica) reads
    as no evidence, like a missing one."""
    return {(a.model, a.role, a.task_class): (round(a.successes, 9), round(a.failures, 9)) for a in core.arms()
            if round(a.successes, 9) or round(a.failures, 9)}


async def test_replicas_converge_on_everyone_s_reports_and_merges_are_not_sent_back(store: RedisStore) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    one = RoutingCore(CATALOG)  # one core that sees every report
    for round_ in range(3):
        teach(a, 2, task_class=f"c{round_}")
        teach(b, 1, status=2, task_class=f"c{round_}")
        teach(one, 2, task_class=f"c{round_}")
        teach(one, 1, status=2, task_class=f"c{round_}")
        await sync(sa)
        await sync(sb)
    await sync(sa)
    assert table(a) == table(b) == table(one)
    assert a.take_delta() is None and b.take_delta() is None  # merged changes are not re-sent
    log_len = await store._r.xlen(store.keys.learn_log(NAME))  # type: ignore[union-attr]
    assert log_len == 6  # one entry per replica per sync that had changes


async def test_a_sync_sends_what_changed_not_the_whole_state(store: RedisStore) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    for c in range(500):
        teach(a, 1, task_class=f"class-{c}")
    await sync(sa)
    await sync(sb)
    teach(a, 1, task_class="class-7")
    await sync(sa)
    entries, _ = await store.read_deltas(NAME, "0-0", 10)
    full, last = len(a.snapshot()), len(entries[-1].delta)
    assert last * 50 < full, (last, full)  # 3 arms changed (model, role, class) out of ~1000
    await sync(sb)
    assert table(b) == table(a)


async def test_a_new_replica_starts_from_the_base_and_the_log_is_trimmed(store: RedisStore) -> None:
    a, sa = replica(store, "a/1", compact_s=1.0)
    teach(a, 3)
    await sync(sa)  # first base, at the log's start
    teach(a, 2, status=2, task_class="review")
    store_r = store._r
    assert store_r is not None
    await store_r.delete(store.keys.learn_lease(NAME))  # the next compaction is due now
    teach(a, 1, task_class="other")
    await sync(sa)  # a second base; the log is trimmed to the first one's position
    teach(a, 4, task_class="late")
    await sync(sa)  # after the base: only in the log
    entries, trimmed = await store.read_deltas(NAME, "0-0", 100)
    assert trimmed != "0-0" and not any(_after(trimmed, e.id) for e in entries)
    fresh, sf = replica(store, "fresh/1")
    await sync(sf)
    assert table(fresh) == table(a)
    assert fresh.take_delta() is None  # catching up is not a change of its own


async def test_changes_sent_with_a_base_are_counted_once(store: RedisStore) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    teach(a, 1)
    await sync(sa)
    teach(b, 2, status=2)
    await sync(sb)
    teach(a, 3, task_class="pending")  # not sent when the base is taken: sent with it
    scope = sa._scopes[NAME]
    assert await sa._receive(NAME, a, scope)
    await sa._save_base(await sa._take_base(NAME, a, scope))
    base = await store.load_base(NAME)
    assert base is not None and len(base.also) == 1 and base.pos == scope.cursor
    fresh, sf = replica(store, "fresh/1")
    await sync(sf)
    assert table(fresh)[("m", 2, "pending")] == (3.0, 0.0)
    assert table(fresh) == table(a)


async def test_a_replica_behind_the_trimmed_log_catches_up_from_the_base(
    store: RedisStore, caplog: pytest.LogCaptureFixture,
) -> None:
    (a, sa), (slow, ss) = replica(store, "a/1", compact_s=1.0), replica(store, "slow/1", compact_s=3600)
    await sync(ss)
    teach(slow, 2, model="other")  # its own, not sent yet when it falls behind
    store_r = store._r
    assert store_r is not None
    for c in range(3):  # three bases while `slow` does not sync: the log is trimmed past it
        teach(a, 1, task_class=f"c{c}")
        await sync(sa)
        await store_r.delete(store.keys.learn_lease(NAME))
    with caplog.at_level(logging.WARNING, logger="modelyard.learning"):
        await sync(ss)
    assert "fell behind the trimmed log" in caplog.text
    await sync(sa)
    assert table(slow) == table(a)
    assert ("other", 2, "edit") in table(a)  # slow's own reports survived the catch-up and went out


async def test_unreadable_changes_are_skipped_and_the_others_still_merge(
    store: RedisStore, caplog: pytest.LogCaptureFixture,
) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    teach(b, 1, model="other")
    await sync(sb)
    await store.append_delta(NAME, "newer/1", b"MYRDELTA" + (99).to_bytes(4, "little") + b"\0" * 40)
    with caplog.at_level(logging.WARNING, logger="modelyard.learning"):
        await sync(sa)
    assert [x.model for x in a.arms()] == ["other"]  # b's report arrived
    assert "unsupported version 99" in caplog.text


async def test_changes_that_could_not_be_sent_go_with_the_next_sync(store: RedisStore) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    await sync(sa)
    teach(a, 2)
    real: Callable[..., object] = store.append_delta

    async def down(*args: object) -> str:
        raise StoreUnavailable("redis unreachable (test)")

    store.append_delta = down  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await sync(sa)
    store.append_delta = real  # type: ignore[method-assign]
    teach(a, 1, status=2)
    await sync(sa)
    await sync(sb)
    assert table(b) == table(a) == {("m", 2, "edit"): (2.0, 1.0)}


async def test_a_large_change_goes_out_in_parts_and_a_part_not_sent_goes_with_the_next_sync(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(learning_sync, "DELTA_PART_ARMS", 4)
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    await sync(sa)
    for c in range(12):  # 12 class rows (and the pooled ones): several parts of <= 4 arms
        teach(a, 1 + c % 3, task_class=f"c{c}")
    real = store.append_delta
    calls: list[int] = []

    async def flaky(name: str, tag: str, blob: bytes) -> str:
        calls.append(len(blob))
        if len(calls) == 3:
            raise StoreUnavailable("redis unreachable (test)")
        return await real(name, tag, blob)

    store.append_delta = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await sync(sa)
    assert len(sa._scopes[NAME].own) == 2  # the parts before the failure are in the log
    store.append_delta = real  # type: ignore[method-assign]
    await sync(sb)
    assert 0 < len(table(b)) < len(table(a))  # b has the first parts only
    await sync(sa)  # the failed part and the ones after it
    await sync(sb)
    assert table(b) == table(a) and len(table(a)) == 12
    entries, _ = await store.read_deltas(NAME, "0-0", 100)
    assert len(entries) >= 4


async def test_a_deployment_of_the_previous_scheme_starts_from_its_contributions(store: RedisStore) -> None:
    old = [RoutingCore(CATALOG), RoutingCore(CATALOG)]
    teach(old[0], 2)
    teach(old[1], 1, status=2, model="other")
    store_r = store._r
    assert store_r is not None
    for i, core in enumerate(old):
        await store_r.hset(store.keys.learn(NAME), f"r{i}", core.snapshot())
    a, sa = replica(store, "a/1")
    await sync(sa)
    assert table(a) == {("m", 2, "edit"): (2.0, 0.0), ("other", 2, "edit"): (0.0, 1.0)}


async def test_a_base_in_many_chunks_replaces_the_last_only_when_later(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_store, "BASE_CHUNK", 100)  # every base spans many chunks
    a, sa = replica(store, "a/1")
    for c in range(20):
        teach(a, 1, task_class=f"c{c}")
    await sync(sa)  # writes the first base
    base = await store.load_base(NAME)
    assert base is not None and bytes(base.snapshot) == a.snapshot()
    red = store._r
    assert red is not None
    assert int(await red.hget(store.keys.learn_base(NAME), "n")) > 10
    # An older position loses, and its staged chunks go with it.
    assert not await store.save_base(NAME, b"stale", "1-0", [], tag="old/1")
    assert (await store.load_base(NAME)) == base
    assert await red.keys(f"*{NAME}:base:*") == []
    fresh, sf = replica(store, "fresh/1")
    await sync(sf)
    assert table(fresh) == table(a)


async def test_an_import_on_one_replica_reaches_the_others(store: RedisStore) -> None:
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    teach(a, 2)
    teach(b, 1, status=2, model="other")
    for s in (sa, sb, sa):
        await sync(s)
    exported = RoutingCore(CATALOG)
    teach(exported, 5, task_class="imported")
    a.restore(exported.snapshot())  # ImportState(merge=False) on replica a
    await sync(sa)
    await sync(sb)
    assert table(b) == table(a) == table(exported)
    a.merge(exported.snapshot())  # ImportState(merge=True)
    await sync(sa)
    await sync(sb)
    assert table(b)[("m", 2, "imported")] == (10.0, 0.0)


async def test_concurrent_syncs_of_one_replica_lose_nothing(store: RedisStore) -> None:
    """The periodic sync and a state save may run at once. Here a state save starts while the
    periodic sync catches up (the log was trimmed past the replica), with new reports arriving
    in between: they stay in the replica's view."""
    (a, sa), (c, sc) = replica(store, "a/1"), replica(store, "c/1", compact_s=1.0)
    await sync(sa)
    store_r = store._r
    assert store_r is not None
    for n in range(2):  # two bases after a's cursor: the log is trimmed past it
        await store_r.delete(store.keys.learn_lease(NAME))
        teach(c, 1, model="other", task_class=f"c{n}")
        await sync(sc)
    real = store.read_deltas
    saves: list[asyncio.Task[None]] = []

    async def read_deltas(name: str, after: str, count: int) -> tuple[list[DeltaEntry], str]:
        if sa._scopes[NAME].cursor is not None and not saves and after == "0-0":  # catching up
            teach(a, 3)  # reports arrive while the catch-up reads the log
            saves.append(asyncio.create_task(sa.sync_all()))  # and a state save starts
        return await real(name, after, count)

    store.read_deltas = read_deltas  # type: ignore[method-assign]
    await sync(sa)
    await asyncio.gather(*saves)
    store.read_deltas = real  # type: ignore[method-assign]
    await sync(sc)
    assert saves, "the catch-up happened"
    assert table(a)[("m", 2, "edit")] == (3.0, 0.0)
    assert table(a) == table(c)


async def test_a_base_is_copied_while_later_syncs_send_what_the_replica_learns(store: RedisStore) -> None:
    """The copy of a base to the store (seconds for a million arms) holds no lock: syncs during it
    send the replica's new changes (its journal does not grow for the whole copy), no second base
    starts, and a replica starting from the base counts those changes once."""
    (a, sa), (b, sb) = replica(store, "a/1"), replica(store, "b/1")
    real = store.save_base
    gate = asyncio.Event()

    async def slow_save_base(*args: Any, **kwargs: Any) -> bool:
        await gate.wait()
        return await real(*args, **kwargs)

    store.save_base = slow_save_base  # type: ignore[method-assign]
    teach(a, 2)
    await sa.sync_all()  # takes the first base; its copy waits at the gate
    assert sa.uploading()
    teach(a, 3, status=2, task_class="during")
    await sa.sync_all()
    assert a.pending_changes() == 0 and sa.uploading()  # sent while the base is on its way
    await sync(sb)
    assert table(b) == table(a)
    stopping = asyncio.create_task(sa.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()  # stopping finishes the base first
    gate.set()
    await stopping
    store.save_base = real  # type: ignore[method-assign]
    base = await store.load_base(NAME)
    assert base is not None and ("m", 2, "during") not in table_of(base.snapshot)
    fresh, sf = replica(store, "fresh/1")
    await sync(sf)
    assert table(fresh) == table(a) and table(fresh)[("m", 2, "during")] == (0.0, 3.0)


def table_of(snapshot: bytes | memoryview) -> dict[tuple[str, int, str], tuple[float, float]]:
    core = RoutingCore(CATALOG)
    core.restore(bytes(snapshot))
    return table(core)
