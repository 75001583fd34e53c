"""The budget/decision store: the `Store` protocol, its records and errors, and `open_store`."""

from __future__ import annotations

import os
from typing import Any

from modelyard.store.base import (
    KEY,
    TENANT,
    UNLIMITED,
    BudgetExceeded,
    DecisionNotFound,
    DecisionRecord,
    JobNotFound,
    JobRecord,
    LedgerEntry,
    Limit,
    Reservation,
    SettleResult,
    Store,
    StoreError,
    StoreUnavailable,
    WindowUsage,
)
from modelyard.store.fail_open import FailOpenStore
from modelyard.store.redis_store import RedisStore
from modelyard.store.sqlite import SqliteStore
from modelyard.store.windows import WINDOWS, Window, window_bounds, window_reset, window_start

__all__ = [
    "KEY", "TENANT", "UNLIMITED", "WINDOWS", "BudgetExceeded", "DecisionNotFound",
    "DecisionRecord", "FailOpenStore", "JobNotFound", "JobRecord", "LedgerEntry", "Limit",
    "RedisStore", "Reservation", "SettleResult", "SqliteStore", "Store", "StoreError", "StoreUnavailable", "Window",
    "WindowUsage", "open_store", "window_bounds", "window_reset", "window_start",
]

DEFAULT_SQLITE_PATH = "modelyard.db"


def open_store(kind: Any = "sqlite", /, **opts: Any) -> Store:
    """A not-yet-opened Store (call `await store.open()`).

    `kind` is a backend name with its options as keywords (sqlite: path, busy_timeout_ms; redis:
    url, key_prefix, wait_replicas), or a `modelyard.config.StoreConfig` (read by attribute: `kind`,
    `sqlite.path`, `redis.*`; the Redis URL comes from the variable `redis.url_env` names), which
    is wrapped in a FailOpenStore when `on_unavailable` is fail_open.
    """
    if not isinstance(kind, str):
        cfg = kind
        if cfg.kind == "sqlite":
            opts = {"path": cfg.sqlite.path, **opts}
        elif cfg.kind == "redis":
            url = os.environ.get(cfg.redis.url_env)
            if not url:
                raise ValueError(f"store.redis.url_env: set the environment variable {cfg.redis.url_env} "
                                 "to the Redis URL, e.g. redis://redis:6379/0")
            opts = {"url": url, "key_prefix": cfg.redis.key_prefix,
                    "wait_replicas": cfg.redis.wait_replicas, **opts}
        store = open_store(cfg.kind, **opts)
        if getattr(cfg, "on_unavailable", "fail_closed") == "fail_open":
            return FailOpenStore(store, cap_micros=round(cfg.fail_open_cap_usd * 1_000_000))
        return store
    if kind == "sqlite":
        return SqliteStore(opts.pop("path", DEFAULT_SQLITE_PATH), **opts)
    if kind == "redis":
        return RedisStore(opts.pop("url"), **opts)
    raise ValueError(f"unknown store kind {kind!r}; expected 'sqlite' or 'redis'")
