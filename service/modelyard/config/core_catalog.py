"""The catalog JSON the routing core takes (CONTRACTS.md §1), built from a validated `Config`."""

from __future__ import annotations

from typing import Any

from modelyard.config.schema import ROLE_IDS, Config


def to_core_catalog(cfg: Config) -> dict[str, Any]:
    """Models without a price are left out: the core cannot score what it cannot cost."""
    models = []
    for m in cfg.models:
        p = m.price
        if p.input_per_mtok is None or p.output_per_mtok is None:
            continue
        models.append({
            "id": m.id,
            "provider": m.provider,
            "tier": m.tier,
            "price_in": p.input_per_mtok,
            "price_cached_in": p.cached_input_per_mtok if p.cached_input_per_mtok is not None
            else p.input_per_mtok,
            "price_out": p.output_per_mtok,
            "context_window": m.context_window,
            "capabilities": list(m.capabilities),
            "provenance": list(m.provenance),
            "prior_success": m.prior.success,
            "prior_strength": m.prior.strength,
            "latency_first_token_ms": m.latency.first_token_ms,
            "output_tokens_per_s": m.latency.output_tokens_per_s,
        })
    r = cfg.routing
    return {
        "models": models,
        "routing": {
            "half_life_s": r.half_life_hours * 3600.0,
            "explore": r.explore,
            "job_credit_weight": r.job_credit_weight,
            "escalation": {
                str(ROLE_IDS[role]): {"after_failures": e.after_failures, "min_tier": e.min_tier}
                for role, e in r.escalation.items()
            },
            "breaker": {"failures_to_open": r.breaker.failures_to_open, "open_s": r.breaker.open_s},
            "drift": {"enabled": r.drift.enabled, "window": r.drift.window,
                      "margin": r.drift.margin, "z": r.drift.z},
        },
    }
