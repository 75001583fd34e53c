"""Token and cost learning through the binding: zero is "not reported", token ratios scale the
step's own estimate, billed cost is learned as a ratio to list price and pools across levels."""

from __future__ import annotations

import json

import pytest

from modelyard import _core
from modelyard.core import RoutingCore

EXECUTOR, PLANNER = 2, 1
MODEL = {"id": "m", "provider": "p", "price_in": 3.0, "price_cached_in": 0.3, "price_out": 15.0}
CATALOG = {"models": [MODEL, dict(MODEL, id="other")]}


def cost(core: _core.Core, est_in: int, est_out: int, *, role: int = EXECUTOR, task_class: str = "edit") -> float:
    cands = core.estimate(_core.Request(role=role, task_class=task_class, now=10.0, est_input_tokens=est_in,
                                        est_output_tokens=est_out, explore=False))
    return next(c.cost_usd for c in cands if c.model == "m")


def list_price(est_in: int, est_out: int) -> float:
    return (est_in * 3.0 + est_out * 15.0) / 1e6


@pytest.fixture
def core() -> _core.Core:
    return _core.Core(json.dumps(CATALOG))


def test_zero_usage_report_leaves_the_estimate_unchanged(core: _core.Core) -> None:
    before = cost(core, 100_000, 100_000)
    assert before == pytest.approx(1.8)
    for _ in range(4):
        core.report(model="m", role=EXECUTOR, task_class="edit", status=1, now=10.0,
                    input_tokens=0, output_tokens=0, latency_ms=0, est_input_tokens=100_000,
                    est_output_tokens=100_000)
    assert cost(core, 100_000, 100_000) == before


@pytest.mark.parametrize(("est_in", "est_out"), [(300, 40), (20_000, 1_500), (150_000, 30_000)])
def test_twice_the_estimated_tokens_doubles_cost_for_any_step_size(
    core: _core.Core, est_in: int, est_out: int,
) -> None:
    base = cost(core, est_in, est_out)
    for k in range(40):
        ei, eo = 1_000 + 997 * k, 100 + 31 * k
        core.report(model="m", role=EXECUTOR, task_class="edit", status=1, now=10.0,
                    input_tokens=2 * ei, output_tokens=2 * eo, est_input_tokens=ei, est_output_tokens=eo)
    assert cost(core, est_in, est_out) == pytest.approx(2 * base, rel=0.05)


def test_cost_only_reports_converge_to_the_true_mean_cost(core: _core.Core) -> None:
    facade = RoutingCore(CATALOG)
    for n, cls in enumerate(["a", "b", "c"]):
        for k, f in enumerate([0.8, 1.2, 1.0, 0.9, 1.1] * 2):  # 10 per class; the prior "r = 1" fades
            ei, eo = 5_000 + 3_000 * (k + n), 500 + 200 * k
            facade.report(model="m", role=EXECUTOR, task_class=cls, status=1, input_tokens=0,
                          cached_input_tokens=0, output_tokens=0, latency_ms=0.0, now=10.0,
                          est_input_tokens=ei, est_output_tokens=eo, cost_usd=2.5 * f * list_price(ei, eo))
    for cls in ["a", "c", "unseen"]:
        assert cost(facade._core, 12_000, 900, task_class=cls) == pytest.approx(
            2.5 * list_price(12_000, 900), rel=0.1)


def test_new_task_class_borrows_the_model_level_ratio(core: _core.Core) -> None:
    base = cost(core, 10_000, 1_000, role=PLANNER, task_class="new")
    for _ in range(30):
        core.report(model="m", role=EXECUTOR, task_class="edit", status=1, now=10.0,
                    est_input_tokens=10_000, est_output_tokens=1_000,
                    cost_usd=3 * list_price(10_000, 1_000))
    got = cost(core, 10_000, 1_000, role=PLANNER, task_class="new")
    assert 2.5 * base < got < 3.0 * base


def test_negative_cost_is_rejected(core: _core.Core) -> None:
    with pytest.raises(_core.CoreError, match=r"^cost_usd"):
        core.report(model="m", role=EXECUTOR, task_class="edit", status=1, now=10.0, cost_usd=-1.0)
