"""Store contract, part 2: ledger, job summaries, learned state and durability, on every backend."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest

from modelyard.core import RoutingCore
from modelyard.store import KEY, TENANT, JobNotFound, Store, StoreUnavailable, Window
from modelyard.store.base import VERDICT_PENDING
from tests.store.conftest import StoreFactory
from tests.store.store_helpers import T0, ledger_total, limits, reservation, settle, usage_of


async def test_ledger_sum_equals_spent_counters(store: Store):
    rng = random.Random(3)
    for i in range(60):
        key = f"k{i % 3}"
        rec, _ = await store.reserve(reservation(rng.randint(1, 500), key_id=key, ttl=30),
                                     limits(key_id=key), T0)
        if i % 4:
            await settle(store, rec.decision_id, rng.randint(0, 600))
    await store.expire(T0 + 30, charge=True)
    entries = await store.ledger()
    assert len(entries) == 60 and len({e.decision_id for e in entries}) == 60
    for w in Window:
        tenant = await usage_of(store, TENANT, "acme", w, T0)
        assert (tenant.spent_micros, tenant.reserved_micros) == (ledger_total(entries), 0)
        for key in ("k0", "k1", "k2"):
            spent = (await usage_of(store, KEY, key, w, T0)).spent_micros
            assert spent == ledger_total([e for e in entries if e.key_id == key])


async def test_ledger_filters_by_tenant_and_time(store: Store):
    for tenant, at in (("acme", T0), ("beta", T0 + 10), ("acme", T0 + 20)):
        rec, _ = await store.reserve(reservation(5, tenant=tenant), [], T0)
        await settle(store, rec.decision_id, 4, tenant=tenant, now=at)
    assert [e.at for e in await store.ledger()] == [T0, T0 + 10, T0 + 20]
    assert [e.at for e in await store.ledger(tenant="acme")] == [T0, T0 + 20]
    assert [e.at for e in await store.ledger(tenant="acme", since=T0 + 1)] == [T0 + 20]
    assert await store.ledger(since=T0 + 21) == []


async def _job(store: Store) -> list[str]:
    """Four steps of job-1: settled on model-b (routed to a), settled on a, open on a, expired."""
    ids = []
    for estimate in (100, 200, 300):
        rec, _ = await store.reserve(reservation(estimate), limits(), T0)
        ids.append(rec.decision_id)
    rec, _ = await store.reserve(reservation(400, model="model-c", ttl=1), limits(), T0)
    ids.append(rec.decision_id)
    await store.reserve(reservation(999, job_id="job-2"), limits(), T0)
    await settle(store, ids[0], 150, model_used="model-b")
    await settle(store, ids[1], 50)
    await store.expire(T0 + 1, charge=False)
    return ids


async def test_job_decisions_in_creation_order(store: Store):
    ids = await _job(store)
    decisions = await store.job_decisions("acme", "job-1")
    assert [d.decision_id for d in decisions] == ids
    assert [(d.settled, d.expired) for d in decisions] == \
        [(True, False), (True, False), (False, False), (False, True)]
    assert await store.job_decisions("other", "job-1") == []


async def test_complete_job_summarizes_once(store: Store):
    await _job(store)
    job, duplicate = await store.complete_job("acme", "job-1", 1, T0 + 100)
    assert not duplicate
    assert (job.tenant, job.job_id, job.status, job.completed_at) == ("acme", "job-1", 1, T0 + 100)
    assert job.total_cost_micros == 150 + 50 + 300 + 0  # settled, settled, open estimate, released
    assert (job.steps, job.total_latency_ms) == (4, 500.0)
    assert job.models == ("model-b", "model-a", "model-c")
    assert job.per_model == (("model-b", 1, 150), ("model-a", 2, 350), ("model-c", 1, 0))
    open_step = (await store.job_decisions("acme", "job-1"))[2]
    await settle(store, open_step.decision_id, 1)  # later changes do not alter the record
    again, duplicate = await store.complete_job("acme", "job-1", 2, T0 + 200)
    assert duplicate and again == job


async def test_complete_unknown_or_foreign_job_is_not_found(store: Store):
    await _job(store)
    for tenant, job_id in (("acme", "nope"), ("intruder", "job-1"), ("acme", "")):
        with pytest.raises(JobNotFound):
            await store.complete_job(tenant, job_id, 1, T0)


async def test_state_round_trip(store: Store):
    assert await store.load_state("core") is None
    blob = bytes(range(256)) * 100
    await store.save_state("core", blob, T0)
    assert await store.load_state("core") == blob
    await store.save_state("core", b"v2", T0 + 1)
    assert await store.load_state("core") == b"v2"
    assert await store.load_state("other") is None
    # Longer and shorter than what it replaces, and empty.
    big = blob * 40
    await store.save_state("other", big, T0 + 2)
    assert await store.load_state("other") == big
    assert await store.load_state("core") == b"v2"
    await store.save_state("other", b"", T0 + 3)
    assert await store.load_state("other") == b""


def _learned(classes: int) -> RoutingCore:
    core = RoutingCore({"models": [{"id": m, "price_in": 1.0, "price_out": 2.0} for m in ("a", "b", "c")]})
    for c in range(classes):
        for m in ("a", "b", "c"):
            core.report(model=m, role=2, task_class=f"class-{c}", status=1 + (c % 2), input_tokens=900 + c,
                        cached_input_tokens=0, output_tokens=60, latency_ms=800.0, now=T0 + c)
    return core


def _spool_files(where: Path) -> list[str]:
    return [p.name for p in where.rglob("*.spool")]


async def test_state_streams_through_a_file_in_chunks(store: Store, tmp_path: Path, monkeypatch):
    # Larger than a chunk on every backend (SQLite 1 MiB, Redis 4 MiB): ~5.3 MB.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    learned = _learned(10_000)
    data = learned.snapshot()
    assert len(data) > 5 << 20
    back = RoutingCore(learned.catalog)
    assert not await store.load_state_into("core", back.restore_path)
    await store.save_state_from("core", learned.snapshot_to_path, T0)
    # The same bytes as a state saved whole; either way in, either way out.
    assert await store.load_state("core") == data
    assert await store.load_state_into("core", back.restore_path)
    assert back.snapshot() == data
    await store.save_state("other", data, T0)
    other = RoutingCore(learned.catalog)
    assert await store.load_state_into("other", other.restore_path)
    assert other.snapshot() == data

    # A write that fails leaves the stored state as it was.
    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        await store.save_state_from("core", broken, T0 + 1)
    assert await store.load_state("core") == data
    # No spool file is left behind, where the store keeps its data or in the temporary directory.
    assert _spool_files(tmp_path) == []


async def test_reopen_keeps_everything(make_store: StoreFactory):
    first = make_store()
    await first.open()
    assert await first.ping()
    settled, _ = await first.reserve(reservation(100, request_id="r1"), limits(), T0)
    held, _ = await first.reserve(reservation(40, request_id="r2"), limits(), T0)
    await settle(first, settled.decision_id, 60)
    await first.complete_job("acme", "job-1", 1, T0)
    await first.save_state("core", b"learned", T0)
    await first.close()
    assert not await first.ping()
    with pytest.raises(StoreUnavailable):
        await first.usage([(TENANT, "acme")], T0)

    second = make_store()
    await second.open()
    try:
        day = await usage_of(second, TENANT, "acme", Window.DAY, T0)
        assert (day.spent_micros, day.reserved_micros) == (60, 40)
        assert [e.amount_micros for e in await second.ledger()] == [60]
        assert (await second.find_request("r2", "acme")) == await second.get_decision(
            held.decision_id, "acme")
        assert (await second.complete_job("acme", "job-1", 2, T0))[1] is True
        assert await second.load_state("core") == b"learned"
        assert (await settle(second, settled.decision_id, 60)).duplicate
    finally:
        await second.close()


async def test_a_pending_verdict_is_given_once_and_only_to_its_own_decision(store: Store):
    """Dispatch settles a completed call as VERDICT_PENDING; the harness's verdict replaces that
    status exactly once, and nothing else can be given a verdict."""
    pending, _ = await store.reserve(reservation(100), limits(), T0)
    plain, _ = await store.reserve(reservation(100), limits(), T0)
    still_open, _ = await store.reserve(reservation(100), limits(), T0)
    await settle(store, pending.decision_id, 80, status=VERDICT_PENDING)
    await settle(store, plain.decision_id, 80, status=1)
    assert not await store.record_verdict(pending.decision_id, "beta", 2), "another tenant's decision"
    assert await store.record_verdict(pending.decision_id, "acme", 2)
    assert not await store.record_verdict(pending.decision_id, "acme", 1), "a second verdict"
    for other in (plain.decision_id, still_open.decision_id, "no-such-decision"):
        assert not await store.record_verdict(other, "acme", 2), other
    got = await store.get_decision(pending.decision_id, "acme")
    assert got is not None and got.status == 2 and got.charged_micros == 80
    assert (await store.get_decision(plain.decision_id, "acme")).status == 1  # type: ignore[union-attr]
    # The charge stands as settled: the ledger holds one row per settled decision.
    assert sorted(e.amount_micros for e in await store.ledger()) == [80, 80]
