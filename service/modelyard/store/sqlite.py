"""`SqliteStore`: the embedded single-node Store on stdlib sqlite3 (WAL, synchronous=FULL).

Every call runs on one dedicated worker thread that owns the connection, so the event loop never
blocks and calls are applied one at a time in arrival order.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from modelyard.store import _sqlite_ops as ops
from modelyard.store._sqlite_schema import connect
from modelyard.store.base import (
    DecisionRecord,
    JobRecord,
    LedgerEntry,
    Limit,
    Reservation,
    SettleResult,
    StoreError,
    StoreUnavailable,
    WindowUsage,
)

T = TypeVar("T")


class SqliteStore:
    """The Store protocol on a SQLite file; see `modelyard.store.base.Store` for the semantics."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)  # ":memory:" gives a private database that close() discards
        self._busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(conn, ...)` on the worker thread; sqlite errors become StoreError subclasses."""
        executor = self._executor
        if executor is None:
            raise StoreUnavailable(f"sqlite store {self.path} is not open")

        def call() -> T:
            if self._conn is None:
                raise StoreUnavailable(f"sqlite store {self.path} is not open")
            try:
                return fn(self._conn, *args, **kwargs)
            except sqlite3.OperationalError as exc:  # locked, disk full, I/O error
                raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite store {self.path}: {exc}") from exc

        try:
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        except RuntimeError as exc:  # executor shut down by a concurrent close()
            raise StoreUnavailable(f"sqlite store {self.path} is closed") from exc

    async def open(self) -> None:
        if self._executor is not None:
            return
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelyard-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(
                executor, connect, self.path, self._busy_timeout_ms)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"cannot open sqlite store {self.path}: {exc}") from exc
        self._executor = executor

    async def close(self) -> None:
        """Finish the calls already queued, then close the connection and the worker thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(executor, shut)
        executor.shutdown(wait=False)

    async def ping(self) -> bool:
        try:
            await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        except StoreError:
            return False
        return True

    async def reserve(
        self, r: Reservation, limits: Sequence[Limit], now: float,
    ) -> tuple[DecisionRecord, bool]:
        return await self._run(ops.reserve, r, tuple(limits), now)

    async def find_request(self, request_id: str, tenant: str) -> DecisionRecord | None:
        return await self._run(ops.find_request, request_id, tenant)

    async def settle(
        self, decision_id: str, tenant: str, *, actual_micros: int, status: int, model_used: str,
        input_tokens: int, cached_input_tokens: int, output_tokens: int, latency_ms: float,
        now: float,
    ) -> SettleResult:
        return await self._run(partial(
            ops.settle, actual_micros=actual_micros, status=status, model_used=model_used,
            input_tokens=input_tokens, cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens, latency_ms=latency_ms, now=now,
        ), decision_id, tenant)

    async def expire(self, now: float, *, charge: bool) -> int:
        return await self._run(ops.expire, now, charge=charge)

    async def usage(self, subjects: Sequence[tuple[str, str]], now: float) -> list[WindowUsage]:
        return await self._run(ops.usage, tuple(subjects), now)

    async def get_decision(self, decision_id: str, tenant: str) -> DecisionRecord | None:
        return await self._run(ops.get_decision, decision_id, tenant)

    async def job_decisions(self, tenant: str, job_id: str) -> list[DecisionRecord]:
        return await self._run(ops.job_decisions, tenant, job_id)

    async def complete_job(
        self, tenant: str, job_id: str, status: int, now: float,
    ) -> tuple[JobRecord, bool]:
        return await self._run(ops.complete_job, tenant, job_id, status, now)

    async def ledger(self, *, tenant: str | None = None, since: float = 0.0) -> list[LedgerEntry]:
        return await self._run(ops.ledger, tenant, since)

    async def save_state(self, name: str, blob: bytes, now: float) -> None:
        await self._run(ops.save_state, name, bytes(blob), now)

    async def load_state(self, name: str) -> bytes | None:
        return await self._run(ops.load_state, name)
