"""store.on_unavailable: fail_open keeps routing on a per-replica local cap while Redis is down."""

from __future__ import annotations

import pytest

from modelyard.store import FailOpenStore, RedisStore, StoreUnavailable, Window
from modelyard.store.base import VERDICT_PENDING
from tests.helpers import free_port
from tests.redis_fixtures import RedisServer
from tests.store.store_helpers import T0, limits, reservation, settle, usage_of


async def test_down_store_routes_until_the_local_cap_then_fails_closed():
    store = FailOpenStore(RedisStore(f"redis://127.0.0.1:{free_port()}/0"), cap_micros=1000)
    await store.open()  # does not raise: fails open from the start
    assert not await store.ping()
    a, replay = await store.reserve(reservation(600, request_id="a"), limits(tenant_hard={Window.DAY: 1}), T0)
    assert not replay and (await usage_of(store, "tenant", "acme", Window.DAY, T0)).spent_micros == 0
    assert (await store.reserve(reservation(600, request_id="a"), limits(), T0)) == (a, True)
    with pytest.raises(StoreUnavailable):
        await store.reserve(reservation(600), limits(), T0)  # 600 held + 600 > cap
    result = await settle(store, a.decision_id, 300)
    assert (result.charged_micros, result.released_micros, result.duplicate) == (300, 300, False)
    assert (await settle(store, a.decision_id, 300)).duplicate
    await store.reserve(reservation(700), limits(), T0)  # 300 spent + 700 = cap
    with pytest.raises(StoreUnavailable):
        await store.reserve(reservation(1), limits(), T0)
    assert (store.local_spent_micros, store.local_held_micros) == (300, 700)
    await store.close()


async def test_recovered_store_is_used_again(redis_server: RedisServer):
    store = FailOpenStore(RedisStore(redis_server.url, key_prefix="fo"), cap_micros=10)
    await store.open()
    redis_server.kill()
    local, _ = await store.reserve(reservation(5), limits(), T0)
    redis_server.start()
    shared, _ = await store.reserve(reservation(50), limits(), T0)  # above the cap: must be Redis
    assert (await usage_of(store, "tenant", "acme", Window.DAY, T0)).reserved_micros == 50
    assert (await settle(store, local.decision_id, 5)).charged_micros == 5  # settled locally
    assert (await settle(store, shared.decision_id, 20)).charged_micros == 20
    assert [e.decision_id for e in await store.ledger()] == [shared.decision_id]
    await store.close()


async def test_a_verdict_on_a_locally_settled_dispatch_call_is_given_once():
    store = FailOpenStore(RedisStore(f"redis://127.0.0.1:{free_port()}/0"), cap_micros=1000)
    await store.open()
    pending, _ = await store.reserve(reservation(100), limits(), T0)
    plain, _ = await store.reserve(reservation(100), limits(), T0)
    await settle(store, pending.decision_id, 80, status=VERDICT_PENDING)
    await settle(store, plain.decision_id, 80)
    assert await store.record_verdict(pending.decision_id, "acme", 2)
    assert not await store.record_verdict(pending.decision_id, "acme", 1)
    assert not await store.record_verdict(plain.decision_id, "acme", 2)
    with pytest.raises(StoreUnavailable):  # not held here: only the (down) store could say
        await store.record_verdict(pending.decision_id, "beta", 2)
    got = await store.get_decision(pending.decision_id, "acme")
    assert got is not None and got.status == 2
    await store.close()
