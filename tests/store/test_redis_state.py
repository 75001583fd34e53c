"""Redis: a learned state read in pieces while another replica replaces it is never read torn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.store import RedisStore, StoreError, redis_store
from tests.redis_fixtures import RedisServer, unique_prefix

OLD, NEW = bytes(range(256)) * 40, bytes(reversed(range(256))) * 41  # 10,240 and 10,496 bytes


class Reader:
    """A `read` callback that keeps what the store handed it."""

    def __init__(self) -> None:
        self.data = b""

    def __call__(self, path: Path) -> None:
        self.data = path.read_bytes()


async def _pair(shared_redis: RedisServer) -> tuple[RedisStore, RedisStore]:
    prefix = unique_prefix()
    a, b = RedisStore(shared_redis.url, key_prefix=prefix), RedisStore(shared_redis.url, key_prefix=prefix)
    await a.open()
    await b.open()
    return a, b


def _interrupt_reads(monkeypatch: pytest.MonkeyPatch, store: RedisStore, writes: list[Any]) -> None:
    """Every read of a piece of `store`'s state first lets the next of `writes` (another replica's
    save) run: the state changes between the pieces."""
    client = store._r
    getrange = client.getrange

    async def interleaved(key: str, start: int, end: int) -> Any:
        if start > 0 and writes:
            await writes.pop(0)()
        return await getrange(key, start, end)

    monkeypatch.setattr(client, "getrange", interleaved)


@pytest.mark.redis
@pytest.mark.parametrize("whole", [True, False], ids=["save_state", "save_state_from"])
async def test_a_state_replaced_mid_read_is_read_again_whole(shared_redis: RedisServer, monkeypatch, whole: bool):
    monkeypatch.setattr(redis_store, "BASE_CHUNK", 1000)  # ~10 pieces
    a, b = await _pair(shared_redis)
    try:
        await b.save_state("core", OLD, 1.0)

        async def replace() -> None:
            if whole:
                await b.save_state("core", NEW, 2.0)
            else:
                await b.save_state_from("core", lambda p: p.write_bytes(NEW), 2.0)

        _interrupt_reads(monkeypatch, a, [replace])
        got = Reader()
        assert await a.load_state_into("core", got)
        assert got.data == NEW  # read again from the start, not OLD's first piece and NEW's rest
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
async def test_a_state_that_never_holds_still_is_an_error_not_a_torn_read(shared_redis: RedisServer, monkeypatch):
    monkeypatch.setattr(redis_store, "BASE_CHUNK", 1000)
    a, b = await _pair(shared_redis)
    try:
        await b.save_state("core", OLD, 1.0)
        saves = [(lambda i=i: b.save_state("core", (OLD, NEW)[i % 2], 2.0 + i)) for i in range(100)]
        _interrupt_reads(monkeypatch, a, saves)
        got = Reader()
        with pytest.raises(StoreError, match="kept changing"):
            await a.load_state_into("core", got)
        assert got.data == b""  # nothing handed to the core
    finally:
        await a.close()
        await b.close()
