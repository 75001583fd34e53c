"""The budget/decision store: the `Store` protocol, its records and errors, and `open_store`."""

from __future__ import annotations

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
from modelyard.store.sqlite import SqliteStore
from modelyard.store.windows import WINDOWS, Window, window_bounds, window_reset, window_start

__all__ = [
    "KEY", "TENANT", "UNLIMITED", "WINDOWS", "BudgetExceeded", "DecisionNotFound",
    "DecisionRecord", "JobNotFound", "JobRecord", "LedgerEntry", "Limit", "Reservation",
    "SettleResult", "SqliteStore", "Store", "StoreError", "StoreUnavailable", "Window",
    "WindowUsage", "open_store", "window_bounds", "window_reset", "window_start",
]

DEFAULT_SQLITE_PATH = "modelyard.db"


def open_store(kind: Any = "sqlite", /, **opts: Any) -> Store:
    """A not-yet-opened Store (call `await store.open()`).

    `kind` is a backend name with its options as keywords (sqlite: path, busy_timeout_ms), or a
    `modelyard.config.StoreConfig` (read by attribute: `kind`, `sqlite.path`).
    """
    if not isinstance(kind, str):
        cfg, kind = kind, kind.kind
        if kind == "sqlite":
            opts = {"path": cfg.sqlite.path, **opts}
    if kind == "sqlite":
        return SqliteStore(opts.pop("path", DEFAULT_SQLITE_PATH), **opts)
    if kind == "redis":
        raise ValueError("store kind 'redis' is not available in this build yet; use 'sqlite'")
    raise ValueError(f"unknown store kind {kind!r}; expected 'sqlite' or 'redis'")
