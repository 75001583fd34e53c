"""Shared learning across replicas: each replica sends what it learned, as deltas, through the store.

Scheme (exact, no double counting, cost proportional to what changed): the served core of each
learning scope tracks its own changes (`RoutingCore.track_changes`: every report's effect on the
sums, as differences). Every `interval_s` a replica appends its changes since the last sync to the
scope's log (`take_deltas`: entries tagged with this process, one per ~DELTA_PART_ARMS arms
changed, so usually one) and merges every other process's
entries it has not seen yet (`merge_delta`, which is not itself a change). So each replica serves
the sum of everyone's observations, and a sync moves only the arms touched in the last interval:
a million learned arms cost what the last second's reports touched, not a 170 MB snapshot.

A drift that forgets evidence on one replica is a change like any other (negative differences),
so the other replicas forget it too; a difference that would leave a sum below zero (a replica
that had not seen all of that evidence yet) is clamped at zero.

Base and trimming: so that the log stays short and a new replica need not replay it from the
start, one replica per `compact_interval_s` (a lease in the store) writes a base: a full
snapshot taken together with its own pending changes (sent at once as more entries), recorded
as "every entry up to `pos`, plus the entries `also`". Writing a base trims the log to the
previous base's position. The snapshot and those entries are taken in a sync; the copy to the
store (1-2 s for a million arms) runs beside the syncs that follow, so the replica keeps sending
what it learns meanwhile (its change journal would otherwise hold everything learned during the
copy: ~80,000 arms in memory_bench's drift storm). A replica starts, and catches up when it fell
behind the trimmed part, by restoring the newest base and merging every later entry not in
`also`, then its own changes not sent yet: all in one step of the event loop, so routing never
sees half a view.

Restarts: a stopping replica sends its last changes; a new process starts from the base and
the log, so nothing is lost, counted twice or left behind per restart. The replica id (from
`store.redis.replica_id_env`) only labels the log entries. A deployment upgraded from the
full-snapshot scheme starts from the old contributions (`{prefix:learn}:<core>`) while no base
exists; the first base replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from modelyard.core import CoreError, RoutingCore
from modelyard.store import StoreError
from modelyard.store.base import DeltaEntry, SharedBase
from modelyard.store.spool import spool

log = logging.getLogger("modelyard.learning")

READ_BATCH = 256  # log entries per round trip
#: A replica's changes go out in log entries of at most about this many arms (~0.9 MB): a drift
#: that forgets across 10,000 classes, or the backlog of an outage, is sent in pieces.
DELTA_PART_ARMS = 5_000
START = "0-0"  # a log position before every entry


@runtime_checkable
class SharedLearning(Protocol):
    """What a store offers to share learning (RedisStore, or a wrapper forwarding to it)."""

    async def append_delta(self, name: str, tag: str, blob: bytes) -> str: ...
    async def read_deltas(self, name: str, after: str, count: int) -> tuple[list[DeltaEntry], str]: ...
    async def load_base(self, name: str, into: Path | None = None) -> SharedBase | None: ...
    async def save_base(self, name: str, blob: bytes | Path, pos: str, also: Sequence[str],
                        tag: str = "") -> bool: ...
    async def claim_compaction(self, name: str, tag: str, interval_s: float) -> bool: ...
    async def load_contributions(self, name: str) -> dict[str, bytes]: ...


class SyncedCore(RoutingCore):
    """The served core of one learning scope, recording its changes for the other replicas."""

    def __init__(self, catalog: dict[str, Any]) -> None:
        super().__init__(catalog)
        self.track_changes()


def _after(a: str, b: str) -> bool:
    """Log id `a` comes after `b`."""
    am, _, asq = a.partition("-")
    bm, _, bsq = b.partition("-")
    return (int(am), int(asq or 0)) > (int(bm), int(bsq or 0))


@dataclass
class _Base:
    """A base taken in a sync (its snapshot in the spool file `path`), to be copied to the store."""

    name: str
    scope: _Scope
    path: Path
    pos: str
    also: list[str]
    files: contextlib.ExitStack  # removes the spool file


@dataclass
class _Scope:
    cursor: str | None = None  # last log entry merged (or included); None before the first sync
    own: list[str] = field(default_factory=list)  # ids of own entries after the cursor
    base_pos: str | None = None  # position of the newest base this process read or wrote


def replica_id(env_name: str) -> str:
    """The configured replica id, else the host name; always with a suffix unique to this process,
    which tells this process's log entries from everyone else's."""
    return f"{os.environ.get(env_name) or socket.gethostname()}/{uuid.uuid4().hex[:8]}"


class LearningSync:
    """Sends each SyncedCore's changes and merges the others' every `interval_s`."""

    def __init__(self, store: SharedLearning, cores: Callable[[], dict[str, RoutingCore]],
                 name_of: Callable[[str], str], *, replica: str, interval_s: float,
                 compact_interval_s: float = 60.0) -> None:
        self.store = store
        self.cores = cores
        self.name_of = name_of  # core key -> stored state name
        self.replica = replica  # this process's tag on its log entries
        self.interval_s = interval_s
        self.compact_interval_s = compact_interval_s
        self._scopes: dict[str, _Scope] = {}
        self._task: asyncio.Task[None] | None = None
        self._upload: asyncio.Task[None] | None = None  # a base being copied to the store
        # One sync at a time: the periodic one and the App's state saves would otherwise
        # interleave at their awaits (a catch-up between another sync's take_delta and its
        # append would drop that delta from this replica's own view).
        self._lock = asyncio.Lock()

    async def sync_core(self, key: str, core: SyncedCore) -> _Base | None:
        """Sends, receives and, holding the compaction lease, takes a base (returned, for the
        caller to copy to the store)."""
        name = self.name_of(key)
        scope = self._scopes.setdefault(name, _Scope())
        if scope.cursor is None:
            await self._catch_up(name, core, scope)
        await self._send(name, core, scope)
        if not await self._receive(name, core, scope):
            log.warning("learning of %s fell behind the trimmed log; catching up from the base", name)
            await self._catch_up(name, core, scope)
        news = scope.own or scope.cursor != scope.base_pos  # else a base would repeat the last one
        if news and not self.uploading() and await self.store.claim_compaction(
                name, self.replica, self.compact_interval_s):
            return await self._take_base(name, core, scope)
        return None

    async def _send(self, name: str, core: SyncedCore, scope: _Scope) -> None:
        await self._append(name, core, scope, core.take_deltas(DELTA_PART_ARMS))

    async def _append(self, name: str, core: SyncedCore, scope: _Scope, parts: Iterable[bytes]) -> list[str]:
        """Appends this replica's changes, part by part (each encoded as it is reached); the parts not sent
        go back to the core (they go with the next sync). Returns the entries' ids."""
        sent: list[str] = []
        rest = iter(parts)
        for delta in rest:
            try:
                entry_id = await self.store.append_delta(name, self.replica, delta)
            except BaseException:
                core.return_delta(delta)
                for unsent in rest:
                    core.return_delta(unsent)
                raise
            scope.own.append(entry_id)
            sent.append(entry_id)
        return sent

    async def _receive(self, name: str, core: SyncedCore, scope: _Scope) -> bool:
        """Merges the other processes' new entries; False when some may have been trimmed away."""
        assert scope.cursor is not None
        while True:
            entries, trimmed = await self.store.read_deltas(name, scope.cursor, READ_BATCH)
            if _after(trimmed, scope.cursor):
                return False
            for entry in entries:
                if entry.tag != self.replica:
                    self._merge(core, entry)
                scope.cursor = entry.id
            scope.own = [i for i in scope.own if _after(i, scope.cursor)]
            if len(entries) < READ_BATCH:
                return True

    def _merge(self, core: RoutingCore, entry: DeltaEntry) -> None:
        try:
            core.merge_delta(entry.delta)
        except CoreError as exc:  # e.g. a newer release's format, mid rolling upgrade
            log.warning("skipping learned changes %s from %s that this build cannot read: %s",
                        entry.id, entry.tag, exc)

    async def _catch_up(self, name: str, core: SyncedCore, scope: _Scope) -> None:
        """Restores the newest base and merges every later entry (see the module docstring)."""
        with spool(None, name) as path:  # the base goes to a file, never whole into memory
            await self._catch_up_from(name, core, scope, path)

    async def _catch_up_from(self, name: str, core: SyncedCore, scope: _Scope, path: Path) -> None:
        for _ in range(3):
            base = await self.store.load_base(name, into=path)
            snapshot, pos, also = await self._legacy(name, core.catalog) if base is None else (
                base.snapshot, base.pos, set(base.also))
            entries: list[DeltaEntry] = []
            cursor, complete = pos, True
            while True:
                batch, trimmed = await self.store.read_deltas(name, cursor, READ_BATCH)
                if _after(trimmed, pos):  # a newer base trimmed what this one needs: start over
                    complete = False
                    break
                entries += batch
                cursor = batch[-1].id if batch else cursor
                if len(batch) < READ_BATCH:
                    break
            if not complete:
                continue
            # From here to the end, no await: routing sees the state before or after, never between.
            pending = core.take_delta()  # this process's changes not sent yet stay its own
            if isinstance(snapshot, Path):
                core.restore_shared_path(snapshot)
            else:
                core.restore_shared(snapshot or RoutingCore(core.catalog).snapshot())
            for entry in entries:
                if entry.id not in also:
                    self._merge(core, entry)
            if pending is not None:
                core.merge_delta(pending)
                core.return_delta(pending)
            scope.cursor, scope.own, scope.base_pos = cursor, [], base.pos if base else None
            log.info("learning of %s: started from the base at %s and %d later changes",
                     name, pos, len(entries))
            return
        raise StoreError(f"learning of {name!r}: the base kept moving while catching up; will retry")

    async def _legacy(self, name: str, catalog: dict[str, Any]) -> tuple[bytes | None, str, set[str]]:
        """No base yet: start from the full contributions of the previous scheme, if any."""
        contributions = await self.store.load_contributions(name)
        if not contributions:
            return None, START, set()
        total = RoutingCore(catalog)
        for replica, blob in contributions.items():
            try:
                total.merge(blob)
            except CoreError as exc:
                log.warning("skipping the old contribution of %s that this build cannot read: %s", replica, exc)
        log.info("learning of %s: starting from %d replicas' contributions of the previous scheme",
                 name, len(contributions))
        return total.snapshot(), START, set()

    async def _take_base(self, name: str, core: SyncedCore, scope: _Scope) -> _Base:
        """A base: the state as it is, with the changes not sent yet sent at once (in parts)."""
        assert scope.cursor is not None
        pos, also = scope.cursor, list(scope.own)
        files = contextlib.ExitStack()
        path = files.enter_context(spool(None, name))  # written as it is encoded, then sent in chunks
        try:
            # The changes not sent yet and the snapshot, taken together on a thread (a 1M-arm snapshot
            # takes a few hundred ms; the event loop keeps serving).
            pending = await asyncio.to_thread(core.take_deltas_and_snapshot_to_path, path, DELTA_PART_ARMS)
            also += await self._append(name, core, scope, pending)
        except BaseException:
            files.close()
            raise
        return _Base(name, scope, path, pos, also, files)

    async def _save_base(self, base: _Base) -> None:
        """Copies a base to the store; entries appended meanwhile come after its position, so a
        replica starting from it merges them."""
        with base.files:
            if await self.store.save_base(base.name, base.path, base.pos, base.also, tag=self.replica):
                base.scope.base_pos = base.pos
                log.info("learning of %s: wrote a base at %s (%d bytes)",
                         base.name, base.pos, base.path.stat().st_size)

    def uploading(self) -> bool:
        """A base taken by a sync is still being copied to the store."""
        return self._upload is not None and not self._upload.done()

    async def base_saved(self) -> None:
        """Until the base a sync took (if any) is in the store; its failure is logged, not raised."""
        if self._upload is not None:
            await asyncio.shield(self._upload)

    async def _save_bases(self, bases: list[_Base]) -> None:
        try:
            while bases:
                await self._save_base(bases.pop(0))
        except StoreError as exc:  # the next holder of the lease writes one; nothing is lost
            log.warning("could not write a base of the shared learning: %s", exc)
        except Exception:
            log.exception("writing a base of the shared learning failed")
        finally:
            for base in bases:
                base.files.close()

    async def sync_all(self) -> None:
        """Syncs every core; a base taken is copied to the store in the background (`base_saved`
        waits for it), while later syncs go on."""
        bases: list[_Base] = []
        try:
            async with self._lock:
                for key, core in list(self.cores().items()):
                    if isinstance(core, SyncedCore) and (base := await self.sync_core(key, core)):
                        bases.append(base)
        except BaseException:
            for base in bases:
                base.files.close()
            raise
        if bases:
            self._upload = asyncio.create_task(self._save_bases(bases), name="learning-base")

    async def start(self) -> None:
        """First sync (a new replica starts from the shared state), then the periodic task."""
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
        """Stop the periodic task and finish a base being written; the App's final save_state()
        sends a last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.base_saved()
