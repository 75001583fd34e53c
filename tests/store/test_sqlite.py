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
from modelyard.store import _sqlite_ops as ops
from modelyard.store.base import KEY, RETENTION_S, TENANT
from modelyard.store.windows import WINDOWS, window_bounds
from tests.store.store_helpers import T0, limits, reservation, settle, usage_of


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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4


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
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM state_chunks").fetchone()[0] == 1


# What a schema-3 build created for reservations (the rest of its schema is unchanged in version 4).
V3_RESERVATIONS = """
CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, decision_id TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL,
    tenant TEXT NOT NULL, key_id TEXT NOT NULL, job_id TEXT NOT NULL, model TEXT NOT NULL,
    role INTEGER NOT NULL, task_class TEXT NOT NULL, estimate_micros INTEGER NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, payload BLOB NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0, charged_micros INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 0, model_used TEXT NOT NULL DEFAULT '',
    input_tokens INTEGER NOT NULL DEFAULT 0, cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, latency_ms REAL NOT NULL DEFAULT 0, settled_at REAL,
    expired INTEGER NOT NULL DEFAULT 0, UNIQUE (tenant, request_id));
CREATE INDEX decisions_open ON decisions (expires_at) WHERE settled = 0 AND expired = 0;
CREATE INDEX decisions_job ON decisions (tenant, job_id, seq);
CREATE TABLE holds (decision_id TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL,
    win INTEGER NOT NULL, window_start INTEGER NOT NULL,
    PRIMARY KEY (decision_id, scope, subject, win)) WITHOUT ROWID;
CREATE TABLE counters (scope TEXT NOT NULL, subject TEXT NOT NULL, win INTEGER NOT NULL,
    window_start INTEGER NOT NULL, spent_micros INTEGER NOT NULL DEFAULT 0,
    reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    PRIMARY KEY (scope, subject, win, window_start)) WITHOUT ROWID;
PRAGMA user_version = 3;
"""


async def test_a_schema_3_database_is_upgraded_and_its_open_reservations_settle_where_they_were_held(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "v3.db"
    # A v3 file: one reservation open (held a day ago, so its windows are not today's) and one settled.
    held_at = T0 - 86400.0
    starts = {int(w): window_bounds(w, held_at)[0] for w in WINDOWS}
    with sqlite3.connect(path) as conn:
        conn.executescript(V3_RESERVATIONS)
        for seq, did, settled in ((7, "open-one", 0), (9, "settled-one", 1)):
            conn.execute(
                "INSERT INTO decisions (seq, decision_id, request_id, tenant, key_id, job_id, model, role,"
                " task_class, estimate_micros, created_at, expires_at, payload, settled, charged_micros)"
                " VALUES (?, ?, ?, 'acme', 'k1', 'job-1', 'model-a', 2, 'edit', 5000, ?, ?, ?, ?, ?)",
                (seq, did, f"req-{did}", held_at, held_at + 10 * 86400, did.encode(), settled, 300 * settled))
            for scope, subject in ((TENANT, "acme"), (KEY, "k1")):
                for w, start in starts.items():
                    conn.execute("INSERT INTO holds VALUES (?, ?, ?, ?, ?)", (did, scope, subject, w, start))
        for scope, subject in ((TENANT, "acme"), (KEY, "k1")):
            for w, start in starts.items():
                conn.execute("INSERT INTO counters VALUES (?, ?, ?, ?, 300, 5000)", (scope, subject, w, start))
    store = SqliteStore(path)
    with caplog.at_level("WARNING", logger="modelyard.store"):
        await store.open()
    assert "rebuilding the decisions table (2 rows)" in caplog.text and "upgraded to schema 4" in caplog.text
    try:
        settled = await store.settle("open-one", "acme", actual_micros=1200, status=1, model_used="",
                                     input_tokens=1, cached_input_tokens=0, output_tokens=1, latency_ms=1.0,
                                     now=T0)
        assert (settled.charged_micros, settled.duplicate) == (1200, False)
        for scope, subject in ((TENANT, "acme"), (KEY, "k1")):
            for w in WINDOWS:
                u = await usage_of(store, scope, subject, int(w), held_at)
                assert (u.spent_micros, u.reserved_micros) == (1500, 0), (scope, w)
        old = await store.get_decision("settled-one", "acme")
        assert old is not None and old.settled and old.charged_micros == 300
        rec, _ = await store.reserve(reservation(40), limits(), T0)
        assert [d.decision_id for d in await store.job_decisions("acme", "job-1")] == [
            "open-one", "settled-one", rec.decision_id]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'holds'").fetchone() is None
        rows = conn.execute("SELECT seq, decision_id FROM decisions ORDER BY seq").fetchall()
        assert rows == [(7, "open-one"), (9, "settled-one"), (10, rec.decision_id)]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                               " AND tbl_name = 'decisions' AND sql IS NOT NULL")}
        assert indexes == {"decisions_open", "decisions_job"}


async def test_memory_database_works_until_closed():
    store = SqliteStore(":memory:")
    await store.open()
    try:
        rec, _ = await store.reserve(reservation(5), limits(), T0)
        assert await store.get_decision(rec.decision_id, "acme") == rec
    finally:
        await store.close()


async def test_closed_decisions_go_35_days_after_their_reservation_expired_and_the_ledger_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    """Retention as Redis's TTLs have it: without it the file grew ~1 KB per Route for good."""
    monkeypatch.setattr(ops, "RETENTION_BATCH", 2)  # a sweep takes several batches
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        settled = [reservation(100, request_id=f"s{i}") for i in range(4)]
        left_open = reservation(100, request_id="open")  # expires at T0 + 600, never reported
        young = reservation(100, request_id="young", now=T0 + RETENTION_S)
        for r in [*settled, left_open, young]:
            await store.reserve(r, limits(), r.created_at)
        for r in settled:
            await settle(store, r.decision_id, 80, now=T0 + 1)
        ids = [r.decision_id for r in [*settled, left_open, young]]

        async def kept() -> list[str]:
            return [i for i in ids if await store.get_decision(i, "acme") is not None]

        assert await store.expire(T0 + 600 + RETENTION_S - 1, charge=True) == 1  # closes `left_open`
        assert await kept() == ids  # all within retention
        assert await store.expire(T0 + 601 + RETENTION_S, charge=True) == 1  # closes `young`
        assert await kept() == [young.decision_id]
        kinds = sorted(e.kind for e in await store.ledger(tenant="acme"))
        assert kinds == ["expiry"] * 2 + ["settle"] * 4  # the ledger keeps every row
        # The request ids are free again, as after Redis's TTL: the same request is a new decision.
        again = reservation(100, request_id="s0", now=T0 + 601 + RETENTION_S)
        record, replayed = await store.reserve(again, limits(), again.created_at)
        assert not replayed and record.decision_id == again.decision_id
    finally:
        await store.close()


async def test_the_retention_sweep_reads_only_the_oldest_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A call examines RETENTION_BATCH rows per transaction whatever the table holds: with nothing
    old at the head it stops after one batch."""
    monkeypatch.setattr(ops, "RETENTION_BATCH", 3)
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        rows = [reservation(100, request_id=f"r{i}", now=T0 + i) for i in range(10)]
        for r in rows:
            await store.reserve(r, limits(), r.created_at)
            await settle(store, r.decision_id, 80, now=r.created_at)
        statements: list[str] = []
        await store._run(lambda c: c.set_trace_callback(statements.append))
        assert await store.forget(T0 + 600 + RETENTION_S + 4.5) == 5  # rows 0-4 expired before then
        assert sum("DELETE FROM decisions" in s for s in statements) == 2  # 3 + 2 (< 3: done)
        statements.clear()
        assert await store.forget(T0 + 600 + RETENTION_S + 4.5) == 0
        assert sum("DELETE FROM decisions" in s for s in statements) == 1
    finally:
        await store.close()
