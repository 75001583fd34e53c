"""A minimal valid config as a dict, and a way to mutate one field of it by dotted path."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import yaml

from modelyard.config import Config, parse_config

DELETE = object()
KEY_HASH = hashlib.sha256(b"test-key-acme").hexdigest()
OTHER_HASH = hashlib.sha256(b"test-key-solo").hexdigest()


def _model(mid: str, tier: int, pin: float, pout: float, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "id": mid, "provider": "openai", "endpoint": "openai", "tier": tier,
        "price": {"input_per_mtok": pin, "cached_input_per_mtok": pin / 10, "output_per_mtok": pout,
                  "source": "https://openai.com/api/pricing/", "as_of": "2025-11-13"},
        "context_window": 400_000,
        "params": {"note": "not published"},
        "capabilities": ["tools", "json"],
    }
    m.update(extra)
    return m


def minimal() -> dict[str, Any]:
    return {
        "version": 1,
        "endpoints": {"openai": {"api": "openai", "base_url": "https://api.openai.com/v1",
                                 "api_key_env": "OPENAI_API_KEY"}},
        "models": [
            _model("small", 1, 0.25, 2.0),
            _model("big", 3, 1.25, 10.0, provenance=["licensed-data"],
                   params={"total_b": 137, "active_b": 5}),
        ],
        "tenants": [
            {"id": "acme", "time_value_usd_per_hour": 60,
             "budgets": {"day": {"soft_usd": 40, "hard_usd": 50}},
             "keys": [{"id": "acme-dev", "sha256": KEY_HASH, "scopes": ["route", "report"]}]},
            {"id": "solo", "keys": [{"id": "solo-1", "sha256": OTHER_HASH, "scopes": ["read"]}]},
        ],
    }


def mutate(cfg: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Copy of `cfg` with `dotted` (e.g. "models.0.price.as_of") set to `value` (or DELETE)."""
    out = copy.deepcopy(cfg)
    node: Any = out
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(leaf) if isinstance(node, list) else leaf
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def parse(cfg: dict[str, Any], source: str = "deploy/config.yaml") -> Config:
    return parse_config(dump(cfg), source)
