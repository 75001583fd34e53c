"""SqliteStore specifics: durability pragmas, the worker thread, errors and the factory."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from modelyard.store import SqliteStore, StoreError, StoreUnavailable, open_store
from tests.store.store_helpers import T0, limits, reservation


async def test_wal_and_full_sync(tmp_path: Path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        mode = await store._run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        sync = await store._run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert (mode, sync) == ("wal", 2)  # 2 = FULL
    finally:
        await store.close()


async def test_calls_run_off_the_event_loop_on_one_thread(tmp_path: Path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        idents = await asyncio.gather(*(store._run(lambda _c: threading.get_ident())
                                        for _ in range(20)))
        assert len(set(idents)) == 1 and idents[0] != threading.get_ident()
    finally:
        await store.close()


async def test_sqlite_errors_become_store_errors(tmp_path: Path):
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(StoreUnavailable):
        await store.reserve(reservation(1), limits(), T0)  # not open yet
    await store.open()
    try:
        r = reservation(1)
        await store.reserve(r, limits(), T0)
        clash = dataclasses.replace(reservation(1), decision_id=r.decision_id)
        with pytest.raises(StoreError):
            await store.reserve(clash, limits(), T0)  # same decision id, other request id
        assert await store.ping()
    finally:
        await store.close()


async def test_unopenable_file_is_unavailable(tmp_path: Path):
    (tmp_path / "not-a-db").write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreUnavailable):
        await SqliteStore(tmp_path / "not-a-db").open()


def test_open_store_factory(tmp_path: Path):
    by_name = open_store("sqlite", path=tmp_path / "a.db")
    cfg = SimpleNamespace(kind="sqlite", sqlite=SimpleNamespace(path=tmp_path / "b.db"))
    by_config = open_store(cfg)
    assert isinstance(by_name, SqliteStore) and by_name.path == tmp_path / "a.db"
    assert isinstance(by_config, SqliteStore) and by_config.path == tmp_path / "b.db"
    with pytest.raises(ValueError, match="unknown store kind"):
        open_store("etcd")


def test_schema_version_is_recorded(tmp_path: Path):
    async def make() -> None:
        s = SqliteStore(tmp_path / "v.db")
        await s.open()
        await s.close()

    asyncio.run(make())
    with sqlite3.connect(tmp_path / "v.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


async def test_a_schema_1_database_is_upgraded_and_its_saved_state_still_loads(tmp_path: Path):
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:  # what a schema-1 build left: the state whole in `state.blob`
        conn.executescript("CREATE TABLE state (name TEXT PRIMARY KEY, blob BLOB NOT NULL, updated_at REAL NOT NULL);"
                           "PRAGMA user_version = 1;")
        conn.execute("INSERT INTO state VALUES ('core', ?, 1.0)", (b"learned by version 1",))
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.load_state("core") == b"learned by version 1"
        big = bytes(range(256)) * 9000  # 2.2 chunks
        await store.save_state("core", big, 2.0)
        assert await store.load_state("core") == big
        await store.save_state("core", b"short", 3.0)
        assert await store.load_state("core") == b"short"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM state_chunks").fetchone()[0] == 1


async def test_memory_database_works_until_closed():
    store = SqliteStore(":memory:")
    await store.open()
    try:
        rec, _ = await store.reserve(reservation(5), limits(), T0)
        assert await store.get_decision(rec.decision_id, "acme") == rec
    finally:
        await store.close()
