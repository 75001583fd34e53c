"""Budget policy: which limits a call is held to, and how the remaining money shapes routing.

Between the soft and the hard limit the per-step cost cap shrinks continuously: with `r` the money
left under the hard limit and `g = hard - soft`, the cap is r * r / g. It equals the whole gap at the
soft limit (no cliff) and falls to zero at the hard limit, so routing moves to cheaper models
gradually rather than failing all at once.

`UsageMirror` keeps the per-window usage Route shapes routing with, so a Route usually makes one
store call (the reservation) instead of two. Why that is safe:

* The hard limit is never decided from the mirror: `Store.reserve` checks spent + reserved +
  estimate <= hard atomically in the store, whatever the mirror says.
* The mirror never refuses. A Route whose mirrored usage says a window is exhausted, or whose
  candidates the core excluded only for the budget cap, re-reads usage from the store and decides
  again on what it read, exactly as before.
* What may be stale is only the soft-limit shaping (the core's cost cap) and the budget figures
  shown in the decision: this replica's own reservations and settlements are applied to the mirror
  as they happen (the same deltas the store applies), and everything else (other replicas or
  processes on the same store, expiry sweeps, a delta applied while a refresh was in flight) is
  picked up by re-reading from the store once an entry is older than `max_age_s` (100 ms). So the
  cap lags the true usage by at most that long plus one refresh; with fail-open, the local
  reservations the mirror counted are dropped at the next refresh, as the store never saw them.
* An entry only answers for the windows it was read for (a new hour, day or month is a miss), and
  freshness is measured on the monotonic clock, so a test's or replay's logical clock cannot keep
  an entry alive.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard.domain import WINDOW_BY_NAME, WINDOW_NAMES, BudgetView, micros_to_usd, usd_to_micros
from modelyard.errors import BudgetExhausted
from modelyard.store import Limit, WindowUsage

UNLIMITED = -1


@dataclass(frozen=True, slots=True)
class WindowLimit:
    soft_usd: float
    hard_usd: float


@dataclass(frozen=True, slots=True)
class Headroom:
    views: tuple[BudgetView, ...]
    cap_usd: float | None
    remaining_usd: float | None


def limits_for(
    tenant: str, key_id: str,
    tenant_budgets: Mapping[str, WindowLimit], key_budgets: Mapping[str, WindowLimit],
) -> list[Limit]:
    """Every (scope, window) gets a counter; windows without a configured limit count but never refuse."""
    limits = []
    for scope, subject, budgets in (("tenant", tenant, tenant_budgets), ("key", key_id, key_budgets)):
        for name, window in WINDOW_BY_NAME.items():
            wl = budgets.get(name)
            hard = usd_to_micros(wl.hard_usd) if wl else UNLIMITED
            limits.append(Limit(scope=scope, subject=subject, window=window, hard_micros=hard))
    return limits


@functools.lru_cache(maxsize=256)
def _iso(ts: float) -> str:
    # Window resets repeat for an hour, a day or a month: format each once, not six times per Route.
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_views(
    usages: Sequence[WindowUsage],
    tenant_budgets: Mapping[str, WindowLimit], key_budgets: Mapping[str, WindowLimit],
) -> tuple[BudgetView, ...]:
    """Spend, reservations and what is left, per window of the tenant and the key."""
    views = []
    for u in usages:
        wl = (tenant_budgets if u.scope == "tenant" else key_budgets).get(WINDOW_NAMES[u.window])
        spent, reserved = micros_to_usd(u.spent_micros), micros_to_usd(u.reserved_micros)
        views.append(BudgetView(
            scope=u.scope, subject=u.subject, window=u.window,
            hard_usd=wl.hard_usd if wl else None, soft_usd=wl.soft_usd if wl else None,
            spent_usd=spent, reserved_usd=reserved,
            remaining_usd=max(0.0, wl.hard_usd - spent - reserved) if wl else None,
            resets_at=_iso(u.resets_at),
        ))
    return tuple(views)


def headroom(
    usages: Sequence[WindowUsage],
    tenant_budgets: Mapping[str, WindowLimit], key_budgets: Mapping[str, WindowLimit],
) -> Headroom:
    """Views of every window, the tightest remaining amount and the cost cap for the core.

    Raises BudgetExhausted when a window has nothing left under its hard limit.
    """
    views = window_views(usages, tenant_budgets, key_budgets)
    cap: float | None = None
    remaining_min: float | None = None
    for v in views:
        if v.remaining_usd is None or v.hard_usd is None or v.soft_usd is None:
            continue
        if v.remaining_usd <= 0.0:
            raise BudgetExhausted(
                f"{v.scope} '{v.subject}' {WINDOW_NAMES[v.window]} budget exhausted: "
                f"${v.spent_usd:.2f} spent and ${v.reserved_usd:.2f} reserved of ${v.hard_usd:.2f}; "
                f"resets at {v.resets_at}"
            )
        window_cap = v.remaining_usd
        if v.spent_usd + v.reserved_usd >= v.soft_usd:
            gap = v.hard_usd - v.soft_usd
            window_cap = v.remaining_usd * v.remaining_usd / gap if gap > 0 else 0.0
        cap = window_cap if cap is None else min(cap, window_cap)
        remaining_min = v.remaining_usd if remaining_min is None else min(remaining_min, v.remaining_usd)
    return Headroom(views=views, cap_usd=cap, remaining_usd=remaining_min)


class UsageMirror:
    """Per (scope, subject): the three windows' [window_start, resets_at, spent, reserved] and when
    they were read. See the module docstring for why routing may use it instead of `Store.usage`."""

    MAX_AGE_S = 0.1

    def __init__(self, max_age_s: float = MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._entries: dict[tuple[str, str], tuple[float, list[list[int]]]] = {}

    def get(self, subjects: Sequence[tuple[str, str]], now: float) -> list[WindowUsage] | None:
        """Usage of every subject in store order, or None when any is missing, old or of past windows."""
        out: list[WindowUsage] = []
        oldest = time.monotonic() - self.max_age_s
        for scope, subject in subjects:
            entry = self._entries.get((scope, subject))
            if entry is None or entry[0] < oldest:
                return None
            for window, (start, reset, spent, reserved) in enumerate(entry[1], 1):
                if not start <= now < reset:
                    return None
                out.append(WindowUsage(scope, subject, window, start, reset, spent, reserved))
        return out

    def put(self, usages: Sequence[WindowUsage], read_at: float) -> None:
        """Replace the entries of the subjects in `usages` (as `Store.usage` returns them)."""
        by_subject: dict[tuple[str, str], dict[int, list[int]]] = {}
        for u in usages:
            by_subject.setdefault((u.scope, u.subject), {})[u.window] = [
                u.window_start, u.resets_at, u.spent_micros, u.reserved_micros]
        for key, windows in by_subject.items():
            if sorted(windows) == list(WINDOW_NAMES):  # all three windows, or nothing is kept
                self._entries[key] = (read_at, [windows[w] for w in WINDOW_NAMES])

    def apply(self, subjects: Sequence[tuple[str, str]], at: float, reserved: int, spent: int = 0) -> None:
        """Add this replica's own change to the counters of the windows containing `at` (the time
        the reservation was made, which is where the store holds it)."""
        for key in subjects:
            entry = self._entries.get(key)
            if entry is None:
                continue
            for w in entry[1]:
                if w[0] <= at < w[1]:
                    w[2] += spent
                    w[3] = max(0, w[3] + reserved)

    def forget(self, subjects: Sequence[tuple[str, str]]) -> None:
        for key in subjects:
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
