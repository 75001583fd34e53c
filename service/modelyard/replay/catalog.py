"""The router's cold-start catalog for a table: list prices plus GENERIC priors, nothing learned.

Tier is a generic function of the list output price (USD per million tokens):
< 1 → 1, < 5 → 2, < 20 → 3, else 4. The prior success is a function of the tier only
(`Settings.tier_priors`), with one prior strength for every model. These knobs, the token
estimate of a "whole task" step and the routing policy were tuned on SWE-bench Verified only.
`bench catalog TABLE` writes the same catalog as a server config (one local tenant and key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from modelyard.replay.table import Table

TIER_EDGES = (1.0, 5.0, 20.0)
#: A whole-task step spans many calls, so the window is not a constraint in the replay.
CONTEXT_WINDOW = 10_000_000


@dataclass(frozen=True)
class Settings:
    """Generic routing knobs of the replay (tuned on SWE-bench Verified only)."""

    est_tokens: tuple[int, int] = (100_000, 50_000)
    tier_priors: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.5)
    prior_strength: float = 2.0
    explore: bool = True
    half_life_hours: float = 168.0
    job_credit_weight: float = 0.5
    escalate_after: int = 0
    escalate_min_tier: int = 1
    seconds_per_task: float = 60.0
    drift: tuple[tuple[str, float], ...] = ()
    """routing.drift overrides as (key, value) pairs (window, margin, z, keep_old); () = core defaults."""
    overrides: dict[str, tuple[float, float]] = field(default_factory=dict)
    """model → (prior success, strength): only for the drift scenario's restarted router."""

    def with_overrides(self, **kw: tuple[float, float]) -> Settings:
        return replace(self, overrides={**self.overrides, **kw})


def tier(price_out: float) -> int:
    return 1 + sum(price_out >= e for e in TIER_EDGES)


def core_catalog(table: Table, s: Settings) -> dict[str, Any]:
    models = []
    for m in table.models:
        pin, pout = table.prices[m]
        t = tier(pout)
        prior, strength = s.overrides.get(m, (s.tier_priors[t - 1], s.prior_strength))
        models.append({
            "id": m, "provider": table.providers.get(m, ""), "tier": t,
            "price_in": pin, "price_cached_in": pin, "price_out": pout, "context_window": CONTEXT_WINDOW,
            "prior_success": prior, "prior_strength": strength,
        })
    routing: dict[str, Any] = {
        "half_life_s": s.half_life_hours * 3600.0,
        "explore": s.explore,
        "job_credit_weight": s.job_credit_weight,
    }
    if s.drift:
        routing["drift"] = dict(s.drift)
    if s.escalate_after > 0:
        routing["escalation"] = {"2": {"after_failures": s.escalate_after, "min_tier": s.escalate_min_tier}}
    return {"models": models, "routing": routing}


def server_config(table: Table, s: Settings, key_sha256: str, db_path: str = "./modelyard-bench.db") -> str:
    """A complete server config (YAML is a superset of JSON) whose catalog matches `core_catalog`."""
    models = []
    for m in table.models:
        pin, pout = table.prices[m]
        t = tier(pout)
        models.append({
            "id": m, "provider": table.providers.get(m) or "bench", "endpoint": "bench", "tier": t,
            "price": {"input_per_mtok": pin, "output_per_mtok": pout,
                      "source": "https://example.invalid/list-price-from-the-table", "as_of": "2025-12-01",
                      "note": f"list price from {table.name}"},
            "context_window": CONTEXT_WINDOW, "params": {"note": "not published"},
            "prior": {"success": s.tier_priors[t - 1], "strength": s.prior_strength},
        })
    cfg: dict[str, Any] = {
        "version": 1,
        "server": {"listen": "127.0.0.1:50061"},
        "store": {"kind": "sqlite", "sqlite": {"path": db_path}},
        "routing": {
            "explore": s.explore, "seed": 0, "half_life_hours": s.half_life_hours,
            "job_credit_weight": s.job_credit_weight, "learning": "shared",
            "default_tokens": {"input": s.est_tokens[0], "output": s.est_tokens[1], "cached_input": 0},
        },
        "endpoints": {"bench": {"api": "openai", "base_url": "http://127.0.0.1:9/v1",
                                "api_key_env": "MODELYARD_BENCH_UNUSED"}},
        "models": models,
        "tenants": [{"id": "bench", "time_value_usd_per_hour": 0, "keys": [
            {"id": "bench-replay", "sha256": key_sha256, "scopes": ["route", "report", "read", "admin"]}]}],
    }
    if s.escalate_after > 0:
        cfg["routing"]["escalation"] = {"executor": {"after_failures": s.escalate_after,
                                                     "min_tier": s.escalate_min_tier}}
    return "# modelyard bench catalog: generated for a local replay; list prices and generic priors only.\n" \
        + json.dumps(cfg, indent=1) + "\n"
