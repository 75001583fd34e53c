"""Shared learning across replicas: each replica's own observations, merged through the store.

Scheme (exact, no double counting): every replica keeps two cores per learning scope — `local`,
fed only by the reports this replica receives, and the served core, which is rebuilt on every
sync as `restore(local) + merge(each other replica's contribution)` and also takes each report
directly between syncs. A sync pulls all contributions, rebuilds the served core synchronously
(no await in between, so routing never sees half a view), then writes `local` as this replica's
contribution under its replica id (a hash field in `{<prefix>:learn}:<core name>`). Snapshot merge
is a sum after aligning decay epochs, so the served view equals the sum of all observations.

Restarts: with a stable replica id (`store.redis.replica_id_env`) a replica re-adopts its own
contribution into `local` at its first sync and continues it. Without one it gets a fresh random
id: its old contribution stays in the hash as is (still merged by everyone, never copied), so
nothing is lost nor counted twice; the hash grows by one entry per such restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from modelyard.core import CoreError, RoutingCore
from modelyard.store import StoreError

log = logging.getLogger("modelyard.learning")


@runtime_checkable
class SharedLearning(Protocol):
    """What a store offers to share learning (RedisStore, or a wrapper forwarding to it)."""

    async def save_contribution(self, name: str, replica_id: str, blob: bytes) -> None: ...
    async def load_contributions(self, name: str) -> dict[str, bytes]: ...


class SyncedCore(RoutingCore):
    """The served core of one learning scope; `local` holds this replica's own observations."""

    def __init__(self, catalog: dict[str, Any]) -> None:
        super().__init__(catalog)
        self.local = RoutingCore(catalog)
        self.adopted = False  # this replica's stored contribution is folded into `local`
        self._others: list[bytes] = []

    def set_catalog(self, catalog: dict[str, Any]) -> None:
        super().set_catalog(catalog)
        self.local.set_catalog(catalog)

    def report(self, **kwargs: Any) -> float | None:
        effort = super().report(**kwargs)
        self.local.report(**kwargs)
        return effort

    def complete_job(
        self, steps: Sequence[tuple[str, int, str] | tuple[str, int, str, int]], *, success: bool, now: float,
    ) -> None:
        super().complete_job(steps, success=success, now=now)
        self.local.complete_job(steps, success=success, now=now)

    def merge(self, data: bytes) -> None:
        """An imported snapshot becomes part of this replica's contribution."""
        self.local.merge(data)
        super().merge(data)

    def restore(self, data: bytes) -> None:
        """Replace this replica's contribution; the other replicas' contributions stay."""
        self.local.restore(data)
        self.rebuild(self._others)

    def rebuild(self, others: Iterable[bytes]) -> None:
        self._others = list(others)
        super().restore(self.local.snapshot())
        for blob in self._others:
            try:
                super().merge(blob)
            except CoreError as exc:  # e.g. a newer release's snapshot version, mid rolling upgrade
                log.warning("skipping another replica's learning this build cannot read: %s", exc)


def replica_id(env_name: str) -> str:
    """The configured stable id, else one unique to this process (see the module docstring)."""
    return os.environ.get(env_name) or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class LearningSync:
    """Pushes each SyncedCore's `local` and pulls the others' every `interval_s`."""

    def __init__(self, store: SharedLearning, cores: Callable[[], dict[str, RoutingCore]],
                 name_of: Callable[[str], str], *, replica: str, interval_s: float) -> None:
        self.store = store
        self.cores = cores
        self.name_of = name_of  # core key -> stored state name
        self.replica = replica
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def sync_core(self, key: str, core: SyncedCore) -> None:
        name = self.name_of(key)
        contributions = await self.store.load_contributions(name)
        mine = contributions.pop(self.replica, None)
        if not core.adopted:
            if mine is not None:
                core.local.merge(mine)  # merge, not restore: keeps reports made before the first sync
            core.adopted = True
        core.rebuild(contributions.values())
        await self.store.save_contribution(name, self.replica, core.local.snapshot())

    async def sync_all(self) -> None:
        for key, core in list(self.cores().items()):
            if isinstance(core, SyncedCore):
                await self.sync_core(key, core)

    async def start(self) -> None:
        """First sync (a restarted replica starts from the shared state), then the periodic task."""
        try:
            await self.sync_all()
        except StoreError as exc:
            log.warning("learning sync at start failed, serving local state until it succeeds: %s", exc)
        self._task = asyncio.create_task(self._run(), name="learning-sync")

    async def _run(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sync_all()
            except StoreError as exc:
                if not failing:
                    log.warning("learning sync failed; retrying every %.1fs: %s", self.interval_s, exc)
                failing = True
            else:
                if failing:
                    log.info("learning sync recovered")
                failing = False

    async def stop(self) -> None:
        """Stop the periodic task; the App's final save_state() pushes a last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
