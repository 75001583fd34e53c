"""UTC budget windows: which hour, day or calendar month a timestamp falls in, and when it resets.

Window starts are whole epoch seconds so they can be used as exact keys by every store backend.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import IntEnum


class Window(IntEnum):
    HOUR = 1
    DAY = 2
    MONTH = 3


WINDOWS: tuple[Window, ...] = (Window.HOUR, Window.DAY, Window.MONTH)
_FIXED_SECONDS = {Window.HOUR: 3600, Window.DAY: 86400}


def window_bounds(window: int, now: float) -> tuple[int, int]:
    """(start, reset) in epoch seconds of the `window` containing `now`; start <= now < reset."""
    w = Window(window)
    if w in _FIXED_SECONDS:
        size = _FIXED_SECONDS[w]
        start = math.floor(now / size) * size
        return start, start + size
    dt = datetime.fromtimestamp(math.floor(now), UTC)
    first = datetime(dt.year, dt.month, 1, tzinfo=UTC)
    nxt = datetime(dt.year + dt.month // 12, dt.month % 12 + 1, 1, tzinfo=UTC)
    return int(first.timestamp()), int(nxt.timestamp())


def window_start(window: int, now: float) -> int:
    return window_bounds(window, now)[0]


def window_reset(window: int, now: float) -> int:
    """When the window containing `now` ends and the next one starts at zero."""
    return window_bounds(window, now)[1]


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
