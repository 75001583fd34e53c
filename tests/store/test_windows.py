"""UTC window arithmetic: starts and resets of hours, days and calendar months."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelyard.store import Window, window_bounds, window_reset, window_start
from tests.store.store_helpers import ts

CASES = [
    # (now, window, start, reset)
    ("2026-11-29T12:34:56", Window.HOUR, "2026-11-29T12:00:00", "2026-11-29T13:00:00"),
    ("2026-11-29T23:59:59", Window.HOUR, "2026-11-29T23:00:00", "2026-11-30T00:00:00"),
    ("2026-11-29T23:59:59", Window.DAY, "2026-11-29T00:00:00", "2026-11-30T00:00:00"),
    ("2026-11-30T00:00:00", Window.DAY, "2026-11-30T00:00:00", "2026-12-01T00:00:00"),
    ("2026-11-30T23:59:59", Window.MONTH, "2026-11-01T00:00:00", "2026-12-01T00:00:00"),
    ("2026-12-31T23:59:59", Window.DAY, "2026-12-31T00:00:00", "2027-01-01T00:00:00"),
    ("2026-12-31T23:59:59", Window.MONTH, "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("2027-01-01T00:00:00", Window.MONTH, "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
    ("2028-02-29T23:59:59", Window.MONTH, "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
    ("2028-02-29T12:00:00", Window.DAY, "2028-02-29T00:00:00", "2028-03-01T00:00:00"),
    ("2027-02-28T23:00:00", Window.MONTH, "2027-02-01T00:00:00", "2027-03-01T00:00:00"),
    ("2026-01-31T10:00:00", Window.MONTH, "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
]


@pytest.mark.parametrize(("now", "window", "start", "reset"), CASES)
def test_window_bounds(now: str, window: Window, start: str, reset: str) -> None:
    assert window_bounds(window, ts(now)) == (ts(start), ts(reset))
    assert window_start(window, ts(now)) == ts(start)
    assert window_reset(window, ts(now)) == ts(reset)


def test_fractional_seconds_stay_in_their_window() -> None:
    assert window_start(Window.DAY, ts("2026-11-30T00:00:00") - 0.001) == ts("2026-11-29T00:00:00")
    assert window_start(Window.MONTH, ts("2026-12-01T00:00:00") - 0.5) == ts("2026-11-01T00:00:00")


def test_unknown_window_is_rejected() -> None:
    with pytest.raises(ValueError):
        window_bounds(4, 0.0)


@given(now=st.floats(min_value=0, max_value=4e9), window=st.sampled_from(list(Window)))
def test_windows_tile_time(now: float, window: Window) -> None:
    start, reset = window_bounds(window, now)
    assert isinstance(start, int) and isinstance(reset, int)
    assert start <= now < reset
    assert window_start(window, reset) == reset  # the next window starts where this one ends
    assert window_reset(window, start) == reset
