"""Learned state on one node's SQLite store: a full save now and then, the changes in between.

A full save of a large state is expensive: at a million arms a 170 MB snapshot written to the file,
and the core's read lock held while it is encoded (reports wait). Saved every STATE_SAVE_INTERVAL_S,
that cost recurred whether one arm had changed or all of them. Now the core records its changes (the
journal shared learning uses, `track_changes`) and each periodic save appends them to the store's
`state_log` as deltas (`take_deltas`, parts of at most LOG_PART_ARMS arms, one transaction). A full
save (a base) is written only when the log has grown past a share of the base (LOG_MAX_RATIO, and
at least LOG_MIN_BYTES) or past LOG_MAX_ENTRIES entries, and it empties the log in the same
transaction. Its pending changes and snapshot are taken in one core call, on a thread
(`take_deltas_and_snapshot_to_path`), so nothing learned falls between them. Restoring reads the
base, then merges the log's deltas in order (`merge_delta`), then starts recording.

What can go wrong and what happens: an append or a base that fails leaves the changes it took in
neither place (the parts are encoded as they are inserted, so they are not kept to give back), so the
next save is a base, which holds everything the core has. A crash loses what was learned since the last
save, as before; saves can now be frequent because they are small.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from modelyard.core import RoutingCore
    from modelyard.store.spool import StateFile

log = logging.getLogger("modelyard.state")

LOG_PART_ARMS = 5_000  # arms per delta row (as learning_sync.DELTA_PART_ARMS)
LOG_MAX_RATIO = 0.5  # a base once the log holds more than half the base's bytes ...
LOG_MIN_BYTES = 4 << 20  # ... and at least this much (a small state's log is cheap to replay)
LOG_MAX_ENTRIES = 5_000  # or this many rows, whatever their size


@runtime_checkable
class IncrementalState(Protocol):
    """A store that keeps a learned state as a base and a log of changes after it (SqliteStore)."""

    async def load_state_into(self, name: str, read: StateFile) -> bool: ...
    async def save_state_base(self, name: str, write: StateFile, now: float) -> int: ...
    async def append_state_log(self, name: str, deltas: Iterable[bytes]) -> tuple[int, int]: ...
    async def load_state_log(self, name: str) -> list[bytes]: ...
    async def state_sizes(self, name: str) -> tuple[int, int, int]: ...


@dataclass(slots=True)
class _Sizes:
    base: int = 0
    entries: int = 0
    log: int = 0
    base_needed: bool = True

    def wants_base(self) -> bool:
        return (self.base_needed or self.entries >= LOG_MAX_ENTRIES
                or self.log > max(LOG_MIN_BYTES, LOG_MAX_RATIO * self.base))


class StateSaves:
    """Saves and restores each core's learned state through an IncrementalState store."""

    def __init__(self, store: IncrementalState) -> None:
        self.store = store
        self._sizes: dict[str, _Sizes] = {}
        self.bases = 0  # full saves written (for tests and logs)
        self.appends = 0

    async def restore(self, name: str, core: RoutingCore) -> bool:
        """Base, then the log's changes in order; then the core records its changes. True when
        anything was stored."""
        restored = await self.store.load_state_into(name, core.restore_path)
        deltas = await self.store.load_state_log(name) if restored else []
        for delta in deltas:
            core.merge_delta(delta)
        core.track_changes()
        base, entries, size = await self.store.state_sizes(name)
        self._sizes[name] = _Sizes(base, entries, size, base_needed=not restored)
        if deltas:
            log.info("learned state %s: a base of %d bytes and %d changes after it", name, base, len(deltas))
        return restored

    def track(self, core: RoutingCore) -> None:
        """A core created after start: it records its changes from now (its first save is a base)."""
        core.track_changes()

    async def save(self, name: str, core: RoutingCore, now: float) -> None:
        sizes = self._sizes.setdefault(name, _Sizes())
        if sizes.wants_base():
            sizes.base_needed = True  # until this one is stored: its changes leave the journal now

            def write(path: Path) -> None:
                # The pending changes are in the snapshot: their parts are dropped unread.
                core.take_deltas_and_snapshot_to_path(path, LOG_PART_ARMS)

            sizes.base = await self.store.save_state_base(name, write, now)
            sizes.entries = sizes.log = 0
            sizes.base_needed = False
            self.bases += 1
            return
        parts = core.take_deltas(LOG_PART_ARMS)
        if not len(parts):
            return
        try:  # each part is encoded as the store's thread inserts it: one part in memory at a time
            sizes.entries, sizes.log = await self.store.append_state_log(name, parts)
        except BaseException:
            sizes.base_needed = True  # the changes it took are in neither place: a base holds them
            raise
        self.appends += 1
