"""Latency histograms for the budget store and the routing core, by wrapping them when telemetry is on.

`instrument(app, tel)` swaps `app.store` for a timing proxy and makes `app.core_for` hand out timing
proxies, so neither the store nor the core nor the business code knows about metrics. With telemetry
off nothing is wrapped.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Histogram

from modelyard.telemetry import semconv as sc

if TYPE_CHECKING:
    from modelyard.app import App
    from modelyard.telemetry.setup import Telemetry

CORE_OPS = frozenset({"route", "estimate", "report", "complete_job", "snapshot", "restore"})


class _Timed:
    """Forwards every attribute; the public methods in `ops` (all, if None) record their latency."""

    def __init__(self, inner: Any, histogram: Histogram, ops: frozenset[str] | None = None) -> None:
        self._inner = inner
        self._histogram = histogram
        self._ops = ops
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value) or (self._ops is not None and name not in self._ops):
            return value
        wrapped = self._wrap(name, value)
        self._cache[name] = wrapped
        # Also an instance attribute: later look-ups find it directly, without __getattr__.
        object.__setattr__(self, name, wrapped)
        return wrapped

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        labels = {sc.LABEL_OPERATION: name}
        record = self._histogram.record
        clock = time.perf_counter
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                start = clock()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    record(clock() - start, labels)

            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                record(clock() - start, labels)

        return timed


def instrument(app: App, tel: Telemetry | None) -> None:
    """Wrap `app`'s store and cores in timing proxies (no-op when telemetry is off)."""
    if tel is None:
        return
    app.store = _Timed(app.store, tel.metrics.store_duration)  # type: ignore[assignment]
    core_for = app.core_for
    proxies: dict[int, _Timed] = {}

    def timed_core_for(tenant: str) -> Any:
        core = core_for(tenant)
        proxy = proxies.get(id(core))
        if proxy is None or proxy._inner is not core:
            proxy = proxies[id(core)] = _Timed(core, tel.metrics.core_duration, CORE_OPS)
        return proxy

    # An instance attribute shadows the method for this App only; other apps in the process are untouched.
    setattr(app, "core_for", timed_core_for)  # noqa: B010
