"""Store fixtures: `make_store` and `store` are parametrized over every backend in BACKENDS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from modelyard.store import RedisStore, SqliteStore, Store
from tests.redis_fixtures import RedisServer, shared_redis, unique_prefix

__all__ = ["shared_redis"]  # the session fixture the redis backend needs

StoreFactory = Callable[[], Store]


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return lambda: SqliteStore(tmp_path / "store.db")


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    server: RedisServer = request.getfixturevalue("shared_redis")
    prefix = unique_prefix()  # one test's stores share a prefix, so they see one database
    return lambda: RedisStore(server.url, key_prefix=prefix)


# backend name -> (request, tmp_path) -> factory of new, unopened stores that share one database
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "sqlite": _sqlite, "redis": _redis,
}


@pytest.fixture(params=sorted(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    yield s
    await s.close()
