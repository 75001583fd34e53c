"""`to_core_catalog` produces exactly the catalog JSON of CONTRACTS.md §1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.config import load_config, to_core_catalog
from tests.config.cfg_helpers import minimal, mutate, parse

ROOT = Path(__file__).resolve().parents[2]
MODEL_KEYS = {"id", "provider", "tier", "price_in", "price_cached_in", "price_out", "context_window",
              "capabilities", "provenance", "prior_success", "prior_strength",
              "latency_first_token_ms", "output_tokens_per_s"}


def test_shape_roles_and_units() -> None:
    cfg = mutate(minimal(), "routing", {
        "half_life_hours": 2, "escalation": {"executor": {"after_failures": 1, "min_tier": 2},
                                             "orchestrator": {"after_failures": 3, "min_tier": 4}}})
    cat = to_core_catalog(parse(cfg))
    assert json.loads(json.dumps(cat)) == cat
    assert set(cat) == {"models", "routing"}
    assert all(set(m) == MODEL_KEYS for m in cat["models"])
    routing = cat["routing"]
    assert routing["half_life_s"] == 7200
    assert routing["escalation"] == {"2": {"after_failures": 1, "min_tier": 2},
                                     "6": {"after_failures": 3, "min_tier": 4}}
    assert set(routing) == {"half_life_s", "explore", "job_credit_weight", "escalation", "breaker", "drift"}
    big = next(m for m in cat["models"] if m["id"] == "big")
    assert (big["price_in"], big["price_cached_in"], big["price_out"]) == (1.25, 0.125, 10.0)
    assert big["provenance"] == ["licensed-data"] and big["prior_success"] == 0.65


def test_unpriced_models_are_left_out() -> None:
    cfg = mutate(minimal(), "models.0.price", {"published": False, "note": "no price"})
    assert [m["id"] for m in to_core_catalog(parse(cfg))["models"]] == ["big"]


def test_example_catalog_is_accepted_by_the_core() -> None:
    core = pytest.importorskip("modelyard._core")
    cfg = load_config(ROOT / "deploy" / "config.example.yaml")
    cat = to_core_catalog(cfg)
    assert len(cat["models"]) == sum(m.routable for m in cfg.models)
    core.Core(json.dumps(cat))
