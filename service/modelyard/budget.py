"""Budget policy: which limits a call is held to, and how the remaining money shapes routing.

Between the soft and the hard limit the per-step cost cap shrinks continuously: with `r` the money
left under the hard limit and `g = hard - soft`, the cap is r * r / g. It equals the whole gap at the
soft limit (no cliff) and falls to zero at the hard limit, so routing moves to cheaper models
gradually rather than failing all at once.
"""

from __future__ import annotations

import functools
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
