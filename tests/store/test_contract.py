"""Store contract, part 1: reservations, limits, settlement, expiry and windows, on every backend."""

from __future__ import annotations

import asyncio
import random

import pytest

from modelyard.store import (
    KEY,
    TENANT,
    BudgetExceeded,
    DecisionNotFound,
    Limit,
    Store,
    Window,
    window_reset,
)
from tests.store.store_helpers import T0, ledger_total, limits, reservation, settle, ts, usage_of

# (window, limit's scope) — every window is enforced for both scopes.
WINDOW_SCOPES = [(w, s) for w in Window for s in (TENANT, KEY)]


def _hard(scope: str, window: int, hard: int) -> list[Limit]:
    key = "tenant_hard" if scope == TENANT else "key_hard"
    return limits(**{key: {window: hard}})


@pytest.mark.parametrize(("window", "scope"), WINDOW_SCOPES)
async def test_reserve_within_limit_then_refuse_over_it(store: Store, window: int, scope: str):
    lims = _hard(scope, window, 100)
    first, replay = await store.reserve(reservation(60), lims, T0)
    assert not replay and first.estimate_micros == 60 and not first.settled
    await store.reserve(reservation(40), lims, T0)  # exactly at the limit is allowed
    refused = reservation(1)
    with pytest.raises(BudgetExceeded) as info:
        await store.reserve(refused, lims, T0)
    exc = info.value
    subject = "acme" if scope == TENANT else "k1"
    assert (exc.scope, exc.subject, exc.window) == (scope, subject, window)
    assert (exc.limit_micros, exc.spent_micros, exc.reserved_micros) == (100, 0, 100)
    assert exc.resets_at == window_reset(window, T0)
    # nothing was written for the refused call
    assert await store.get_decision(refused.decision_id, "acme") is None
    assert await store.find_request(refused.request_id, "acme") is None
    for u in await store.usage([(TENANT, "acme"), (KEY, "k1")], T0):
        assert (u.spent_micros, u.reserved_micros) == (0, 100)


async def test_refusal_counts_spend_not_only_reservations(store: Store):
    lims = limits(tenant_hard={Window.DAY: 100})
    r, _ = await store.reserve(reservation(50), lims, T0)
    await settle(store, r.decision_id, 90)
    with pytest.raises(BudgetExceeded) as info:
        await store.reserve(reservation(11), lims, T0)
    assert (info.value.spent_micros, info.value.reserved_micros) == (90, 0)
    await store.reserve(reservation(10), lims, T0)


async def test_unlimited_counts_without_enforcing(store: Store):
    await store.reserve(reservation(10**12), limits(), T0)
    await store.reserve(reservation(5), [], T0)  # tenant and key are counted even if not passed
    for u in await store.usage([(TENANT, "acme"), (KEY, "k1")], T0):
        assert u.reserved_micros == 10**12 + 5
        assert u.resets_at == window_reset(u.window, T0)


async def test_usage_is_zero_without_counters(store: Store):
    usage = await store.usage([(TENANT, "nobody"), (KEY, "none")], T0)
    assert [(u.scope, u.window) for u in usage] == [(s, w) for s in (TENANT, KEY) for w in Window]
    assert all(u.spent_micros == u.reserved_micros == 0 for u in usage)


def test_budget_exceeded_message_is_actionable():
    exc = BudgetExceeded(TENANT, "acme", Window.DAY, 50_000_000, 49_990_000, 0,
                         int(ts("2026-11-30T00:00:00")))
    assert str(exc) == ("tenant 'acme' day budget exhausted: $49.99 of $50.00 spent, "
                        "$0.00 reserved, resets 2026-11-30T00:00:00Z")


async def test_replay_returns_first_decision_even_when_limits_now_refuse(store: Store):
    first = reservation(80, request_id="req-1")
    _, replay = await store.reserve(first, limits(tenant_hard={Window.DAY: 100}), T0)
    again = reservation(80, request_id="req-1")  # a retry gets a fresh decision id and payload
    rec2, replay2 = await store.reserve(again, limits(tenant_hard={Window.DAY: 100}), T0)
    assert (replay, replay2) == (False, True)
    assert rec2.decision_id == first.decision_id and rec2.payload == first.payload
    assert (await usage_of(store, TENANT, "acme", Window.DAY, T0)).reserved_micros == 80
    other, replay3 = await store.reserve(reservation(5, tenant="other", request_id="req-1"), [], T0)
    assert not replay3 and other.tenant == "other"  # request ids are per tenant


async def test_concurrent_reserves_of_one_request_make_one_reservation(store: Store):
    rs = [reservation(30, request_id="same") for _ in range(10)]
    results = await asyncio.gather(*(store.reserve(r, limits(), T0) for r in rs))
    assert sorted(replay for _, replay in results) == [False] + [True] * 9
    assert len({rec.decision_id for rec, _ in results}) == 1
    assert (await usage_of(store, TENANT, "acme", Window.HOUR, T0)).reserved_micros == 30


async def test_concurrent_reserves_never_exceed_the_hard_limit(store: Store):
    rng = random.Random(7)
    hard = 10_000
    lims = limits(tenant_hard={Window.DAY: hard}, key_hard={Window.HOUR: hard // 2})
    rs = [reservation(rng.randint(1, 400)) for _ in range(200)]
    results = await asyncio.gather(*(store.reserve(r, lims, T0) for r in rs),
                                   return_exceptions=True)
    accepted = [r for r, res in zip(rs, results, strict=True) if not isinstance(res, Exception)]
    refused = [res for res in results if isinstance(res, Exception)]
    assert all(isinstance(e, BudgetExceeded) for e in refused) and refused
    held = sum(r.estimate_micros for r in accepted)
    key_hour = await usage_of(store, KEY, "k1", Window.HOUR, T0)
    assert key_hour.reserved_micros + key_hour.spent_micros == held <= hard // 2
    day = await usage_of(store, TENANT, "acme", Window.DAY, T0)
    assert day.reserved_micros == held


async def test_settle_moves_estimate_to_actual_and_writes_the_ledger(store: Store):
    rec, _ = await store.reserve(reservation(100), limits(), T0)
    result = await settle(store, rec.decision_id, 70, now=T0 + 5, model_used="model-b")
    assert (result.charged_micros, result.released_micros, result.duplicate) == (70, 30, False)
    for u in await store.usage([(TENANT, "acme"), (KEY, "k1")], T0 + 5):
        assert (u.spent_micros, u.reserved_micros) == (70, 0)
    stored = await store.get_decision(rec.decision_id, "acme")
    assert stored is not None and stored.settled and stored.charged_micros == 70
    assert (stored.model_used, stored.status, stored.settled_at) == ("model-b", 1, T0 + 5)
    assert (stored.input_tokens, stored.cached_input_tokens, stored.output_tokens) == (100, 10, 20)
    [entry] = await store.ledger()
    assert (entry.decision_id, entry.amount_micros, entry.kind) == (rec.decision_id, 70, "settle")
    assert (entry.tenant, entry.key_id, entry.model, entry.at) == ("acme", "k1", "model-b", T0 + 5)


async def test_concurrent_settles_charge_once(store: Store):
    rec, _ = await store.reserve(reservation(100), limits(), T0)
    results = await asyncio.gather(*(settle(store, rec.decision_id, 120) for _ in range(10)))
    assert sorted(r.duplicate for r in results) == [False] + [True] * 9
    assert {(r.charged_micros, r.released_micros) for r in results} == {(120, 0)}  # over: none given back
    assert ledger_total(await store.ledger()) == 120
    assert (await usage_of(store, TENANT, "acme", Window.DAY, T0)).spent_micros == 120


async def test_settle_of_unknown_or_foreign_decision_is_not_found(store: Store):
    rec, _ = await store.reserve(reservation(100), limits(), T0)
    with pytest.raises(DecisionNotFound):
        await settle(store, rec.decision_id, 10, tenant="intruder")
    with pytest.raises(DecisionNotFound):
        await settle(store, "no-such-decision", 10)
    assert await store.get_decision(rec.decision_id, "intruder") is None
    assert (await store.get_decision(rec.decision_id, "acme")).settled is False  # type: ignore[union-attr]
    assert await store.ledger() == []


@pytest.mark.parametrize(("charge", "spent", "ledger_rows"), [(True, 100, 1), (False, 0, 0)])
async def test_expiry_charges_or_releases(store: Store, charge: bool, spent: int, ledger_rows: int):
    old, _ = await store.reserve(reservation(100, ttl=60), limits(), T0)
    fresh, _ = await store.reserve(reservation(7, ttl=3600), limits(), T0)
    assert await store.expire(T0 + 59, charge=charge) == 0
    assert await store.expire(T0 + 60, charge=charge) == 1
    assert await store.expire(T0 + 60, charge=charge) == 0
    day = await usage_of(store, TENANT, "acme", Window.DAY, T0)
    assert (day.spent_micros, day.reserved_micros) == (spent, 7)
    entries = await store.ledger()
    assert [(e.decision_id, e.amount_micros, e.kind) for e in entries] == \
        [(old.decision_id, 100, "expiry")][:ledger_rows]
    stored = await store.get_decision(old.decision_id, "acme")
    assert stored is not None and stored.expired and not stored.settled
    assert stored.charged_micros == spent
    # a late settle of the expired decision is a duplicate and charges nothing more
    late = await settle(store, old.decision_id, 55, now=T0 + 61)
    assert (late.duplicate, late.expired, late.charged_micros) == (True, True, spent)
    assert late.released_micros == 100 - spent
    assert ledger_total(await store.ledger()) == spent
    assert (await usage_of(store, TENANT, "acme", Window.DAY, T0)).spent_micros == spent
    # the settled decision is not touched by expiry
    await settle(store, fresh.decision_id, 3)
    assert await store.expire(T0 + 10**6, charge=charge) == 0


ROLLOVER = [
    # (window, reserved at, settled at) — the settle lands in the next window
    (Window.HOUR, "2026-11-29T12:59:59", "2026-11-29T13:00:30"),
    (Window.DAY, "2026-11-29T23:59:59", "2026-11-30T00:00:30"),
    (Window.MONTH, "2026-12-31T23:59:59", "2027-01-01T00:00:30"),
    (Window.MONTH, "2028-02-29T23:59:59", "2028-03-01T00:00:01"),
]


@pytest.mark.parametrize(("window", "reserved_at", "settled_at"), ROLLOVER)
async def test_settle_charges_the_window_the_reservation_was_made_in(
    store: Store, window: int, reserved_at: str, settled_at: str,
):
    t1, t2 = ts(reserved_at), ts(settled_at)
    lims = limits(tenant_hard={window: 100})
    rec, _ = await store.reserve(reservation(100, now=t1), lims, t1)
    await settle(store, rec.decision_id, 90, now=t2)
    before = await usage_of(store, TENANT, "acme", window, t1)
    assert (before.spent_micros, before.reserved_micros) == (90, 0)
    after = await usage_of(store, TENANT, "acme", window, t2)
    assert (after.spent_micros, after.reserved_micros) == (0, 0)
    assert after.window_start == before.resets_at
    await store.reserve(reservation(100, now=t2), lims, t2)  # the new window starts at zero


async def test_negative_amounts_are_rejected(store: Store):
    with pytest.raises(ValueError):
        await store.reserve(reservation(-1), limits(), T0)
    rec, _ = await store.reserve(reservation(10), limits(), T0)
    with pytest.raises(ValueError):
        await settle(store, rec.decision_id, -5)
    assert await store.ledger() == []


async def test_free_settle_is_still_recorded_in_the_ledger(store: Store):
    rec, _ = await store.reserve(reservation(10), limits(), T0)
    assert (await settle(store, rec.decision_id, 0)).charged_micros == 0
    assert [(e.decision_id, e.amount_micros) for e in await store.ledger()] == \
        [(rec.decision_id, 0)]
