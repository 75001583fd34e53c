"""The application: running config, routing core, store and background upkeep, wired together.

Servicers hold one `App` and call the business functions in `routing.py` / `queries.py` with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.budget import UsageMirror
from modelyard.config import ConfigError, load_config
from modelyard.core import RoutingCore
from modelyard.errors import ConfigRejected
from modelyard.jobs import JobTracker
from modelyard.learning_sync import LearningSync, SharedLearning, SyncedCore, replica_id
from modelyard.providers.pool import ProviderPool
from modelyard.runtime import Runtime, build_runtime
from modelyard.state_log import IncrementalState, StateSaves
from modelyard.store import Store, open_store

log = logging.getLogger("modelyard")

STATE_NAME = "core"
SHARED = ""
# Single node: changes are appended to the store's state log at this interval, a full save now and
# then (state_log.py); a crash loses at most this much learning.
# Changes since the last save sit in the core's journal (a row per class touched) until then: at 1M arms
# and ~1,000 steps/s, 10 s of them was ~13 MB of resident memory (bench/README, ninth session).
STATE_SAVE_INTERVAL_S = 2.0
# A save before the interval is up once the cores' unsaved changes pass this many arms (checked every
# EARLY_SAVE_CHECK_S). A drift alarm at a (model, role) forgets old evidence in every class arm of it
# at once, one changed arm per class (10,000 at 10,000 classes), and the changes wait in memory
# until they are saved: a few alarms in one interval were the largest part of a 1M-arm server's
# peak (bench/README, twelfth session). ~300 bytes an arm: the bound holds them to a few MB.
EARLY_SAVE_ARMS = 20_000
EARLY_SAVE_CHECK_S = 0.1
EXPIRY_INTERVAL_S = 5.0
CONFIG_POLL_INTERVAL_S = 1.0  # a changed config (e.g. a revoked key) applies within ~1 s


@dataclass(slots=True)
class Stats:
    started_at: float = field(default_factory=time.time)
    decisions: int = 0
    outcomes: int = 0
    jobs_completed: int = 0
    drift_events: int = 0
    decisions_by_model: Counter[str] = field(default_factory=Counter)
    # The Rust front's Routes are counted from another thread (front.py): decisions change under it.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def decided(self, model: str, n: int = 1) -> None:
        with self.lock:
            self.decisions += n
            self.decisions_by_model[model] += n


class App:
    def __init__(
        self, config_path: str | Path, runtime: Runtime, store: Store, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path = Path(config_path)
        self.runtime = runtime
        self.store = store
        self.clock = clock
        # One shared core, or one per tenant when the operator keeps tenants' learning apart, so one
        # tenant's reports cannot skew another's routing (routing.learning: per_tenant).
        self._cores: dict[str, RoutingCore] = {SHARED: RoutingCore(runtime.catalog)}
        self._core_type: type[RoutingCore] = RoutingCore
        self.sync: LearningSync | None = None  # set at start when the store shares learning
        # Set at start when the store keeps the state as a base and a log of changes (SQLite).
        self.state_saves: StateSaves | None = None
        self._track_new_cores = False  # with state_saves, once the stored states are restored
        self.jobs = JobTracker()
        # Budget usage of this replica's callers, kept current by its own reserves and settles and
        # re-read from the store every 100 ms: Route's soft-cap shaping without a store read.
        self.usage = UsageMirror()
        self.stats = Stats()
        self._tasks: list[asyncio.Task[None]] = []
        self._save_lock = asyncio.Lock()
        self._no_early_save_until = 0.0  # monotonic; after an early save failed
        self._mtime = self._file_mtime()
        self._seed_counter = 0
        self.providers = ProviderPool()  # Dispatch's HTTP clients, one per endpoint, created lazily
        # The Rust front (front.py) follows new cores and reloads; `sync_front` makes it record the
        # Routes it served (stats, telemetry) before something reads what they left behind.
        self.core_listeners: list[Callable[[str, RoutingCore], None]] = []
        self.reload_listeners: list[Callable[[Runtime], None]] = []
        self.front_sync: list[Callable[[], None]] = []

    @classmethod
    def from_config_file(cls, path: str | Path) -> App:
        config = load_config(path)
        return cls(path, build_runtime(config), open_store(config.store))

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        cfg = self.runtime.config.store
        if isinstance(self.store, SharedLearning):  # replicas learn together through the store
            self._core_type, self._cores = SyncedCore, {}
            self.sync = LearningSync(self.store, self.cores, self._state_name,
                                     replica=replica_id(cfg.redis.replica_id_env),
                                     interval_s=cfg.redis.sync_interval_s,
                                     compact_interval_s=cfg.redis.compact_interval_s)
        elif isinstance(self.store, IncrementalState):
            self.state_saves = StateSaves(self.store)
        names = [SHARED] if not self.per_tenant else [t.id for t in self.runtime.config.tenants]
        for name in names:
            core = self.core_for(name)
            # Through a spool file: a large state is never held whole beside the core.
            if self.state_saves is not None:
                restored = await self.state_saves.restore(self._state_name(name), core)
            else:
                restored = not self.sync and await self.store.load_state_into(self._state_name(name), core.restore_path)
            if restored:
                log.info("restored learned state %s: %d arms", self._state_name(name), core.arm_count())
        if self.state_saves is not None:
            for core in self._cores.values():  # every core records its changes from here on
                core.track_changes()
            self._track_new_cores = True
        self._tasks = [
            asyncio.create_task(self._every(self._expiry_interval(), self._expire), name="expire"),
            asyncio.create_task(self._every(STATE_SAVE_INTERVAL_S, self.save_state), name="save"),
            asyncio.create_task(self._every(EARLY_SAVE_CHECK_S, self._save_if_large), name="save-early"),
            asyncio.create_task(self._every(CONFIG_POLL_INTERVAL_S, self._watch_config), name="watch"),
        ]
        if self.sync:
            await self.sync.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.sync:
            await self.sync.stop()
        try:
            await self.save_state()
            if self.sync:  # a base the last sync took
                await self.sync.base_saved()
        except Exception:  # the store may be the thing that is down; shutdown must still finish
            log.exception("could not save learned state at shutdown; the last periodic save stands")
        try:
            await self.providers.aclose()
        except Exception:
            log.exception("closing provider connections failed")
        await self.store.close()

    def _expiry_interval(self) -> float:
        # Sweep often enough that a reservation outlives its TTL by at most a quarter of it (≤ 5 s).
        return min(EXPIRY_INTERVAL_S, max(0.5, self.runtime.config.store.reservation_ttl_s / 4))

    async def _every(self, period: float, fn: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed; will retry", getattr(fn, "__name__", fn))

    async def _expire(self) -> None:
        charge = self.runtime.config.store.on_expiry == "charge"
        n = await self.store.expire(self.clock(), charge=charge)
        if n:
            log.info("expired %d unreported reservations (%s)", n, "charged" if charge else "released")

    # learned state --------------------------------------------------------------------------
    @property
    def per_tenant(self) -> bool:
        return self.runtime.config.routing.learning == "per_tenant"

    def core_for(self, tenant: str) -> RoutingCore:
        key = tenant if self.per_tenant else SHARED
        core = self._cores.get(key)
        if core is None:
            core = self._cores[key] = self._core_type(self.runtime.catalog)
            if self._track_new_cores:
                core.track_changes()
            for listener in self.core_listeners:
                listener(key, core)
        return core

    @staticmethod
    def _state_name(key: str) -> str:
        return STATE_NAME if key == SHARED else f"{STATE_NAME}:{key}"

    def cores(self) -> dict[str, RoutingCore]:
        return dict(self._cores)

    async def save_state(self) -> None:
        if self.sync:  # shared learning: each replica sends its changes to the shared log (own lock)
            await self.sync.sync_all()
            return
        async with self._save_lock:  # the periodic save, an early one and the one at shutdown
            for key, core in list(self._cores.items()):
                if self.state_saves is not None:  # the changes since the last save, or now and then a base
                    await self.state_saves.save(self._state_name(key), core, self.clock())
                else:
                    await self.store.save_state_from(self._state_name(key), core.snapshot_to_path, self.clock())

    async def _save_if_large(self) -> None:
        """Saves now when the changes not yet saved pass EARLY_SAVE_ARMS arms (see there). Only
        where saves take the changes (a state log or shared learning); a store that saves whole
        states keeps its interval."""
        if self.state_saves is None and not self.sync:
            return
        if time.monotonic() < self._no_early_save_until:
            return
        if sum(core.pending_changes() for core in list(self._cores.values())) >= EARLY_SAVE_ARMS:
            try:
                await self.save_state()
            except Exception:
                # A store that is down keeps the changes pending (shared learning gives them back):
                # leave the retries to the periodic save instead of one every check.
                self._no_early_save_until = time.monotonic() + STATE_SAVE_INTERVAL_S
                raise

    def drain_core_events(self, core: RoutingCore) -> None:
        for event in core.drain_events():
            if event.kind == "drift":
                self.stats.drift_events += 1
            log.warning("core event %s: %s", event.kind, event.detail)

    def sync_front(self) -> None:
        """Records the Routes the Rust front served so far (no-op without it)."""
        for sync in self.front_sync:
            sync()

    def next_seed(self) -> int:
        self._seed_counter += 1
        return (self.runtime.config.routing.seed << 32) ^ self._seed_counter

    # config reload -------------------------------------------------------------------------
    def _file_mtime(self) -> float:
        try:
            return os.stat(self.config_path).st_mtime
        except OSError:
            return 0.0

    def _watch_config(self) -> None:
        mtime = self._file_mtime()
        if mtime and mtime != self._mtime:
            self._mtime = mtime
            with contextlib.suppress(ConfigRejected):
                self.reload()

    def reload(self) -> tuple[str, Runtime]:
        """Load, validate and swap the config whole. A bad file leaves the running config in place."""
        old = self.runtime
        try:
            config = load_config(self.config_path)
            new = build_runtime(config)
            for core in self._cores.values():
                core.set_catalog(new.catalog)
        except (ConfigError, ValueError, OSError) as exc:
            log.error("config reload rejected, keeping %s: %s", old.version, exc)
            raise ConfigRejected(f"config reload rejected, still serving {old.version}: {exc}") from exc
        if config.store != old.config.store:
            log.warning("store settings changed; they take effect at restart")
        self.runtime = new
        self._mtime = self._file_mtime()
        for listener in self.reload_listeners:
            listener(new)
        log.info("config reloaded: %s -> %s", old.version, new.version)
        return old.version, new
