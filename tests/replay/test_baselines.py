"""Baselines on a hand-checkable table, and the oracle as a lower bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.replay.baselines import baselines, best_cascade, best_single, oracle, strongest_ranking
from modelyard.replay.catalog import Settings
from modelyard.replay.report import summarise
from modelyard.replay.runner import arrival_order, replay_inprocess
from modelyard.replay.table import load_table


def _cps(run) -> float:
    return sum(run.cost) / sum(run.solved)


def test_table_orders_models_by_list_price(hand_table: Path) -> None:
    t = load_table(hand_table)
    assert t.models == ["a", "b", "c"] and t.n == 4 and t.groups == ["g"] * 4


def test_baselines_by_hand(hand_table: Path) -> None:
    t = load_table(hand_table)
    assert strongest_ranking(t) == ["c", "b", "a"]
    assert best_single(t) == "b"  # a: $4 / 1 solved, b: $8 / 2 (tie at $4: more solved wins), c: $40 / 3
    b1 = {name: runs[0] for name, runs in baselines(t, 1, [0]).items()}
    assert (sum(b1["cheapest"].solved), _cps(b1["cheapest"])) == (1, 4.0)
    assert (sum(b1["strongest"].solved), _cps(b1["strongest"])) == (3, pytest.approx(40 / 3))
    # K=3 cheapest cascade a → b → c: t0 $1, t1 $3, t2 $13, t3 $13 → 3 solved for $30.
    b3 = {name: runs[0] for name, runs in baselines(t, 3, [0]).items()}
    assert (sum(b3["cheapest"].solved), sum(b3["cheapest"].cost)) == (3, 30.0)
    assert b3["cheapest"].attempts == [1, 2, 3, 3]
    # Best cascade solving ≥ strongest's 3/4: a → c ($4 + 3·$10 = $34) loses to b → c ($8 + 2·$10 = $28)
    # and to a → b → c ($30); c alone costs $40.
    assert best_cascade(t, 3, 0.75) == ["b", "c"]
    o = oracle(t)
    assert o.cost == [1.0, 2.0, 10.0, 0.0] and o.solved == [True, True, True, False]


def test_oracle_is_a_lower_bound(synthetic_table: Path) -> None:
    t = load_table(synthetic_table)
    o = oracle(t)
    runs = [r for k in (1, 3) for rs in baselines(t, k, [0, 1]).values() for r in rs]
    runs += [replay_inprocess(t, k, Settings(), 0) for k in (1, 3)]
    for r in runs:
        solved = [i for i in range(t.n) if r.solved[i]]
        # On the tasks any policy solves, the oracle pays no more per solved task.
        assert sum(o.cost[i] for i in solved) <= sum(r.cost) + 1e-9
        assert sum(r.solved) <= sum(o.solved)


def test_router_beats_always_strongest_when_a_cheap_model_is_good(synthetic_table: Path) -> None:
    t = load_table(synthetic_table)
    seeds = [0, 1, 2]
    ours = summarise([(replay_inprocess(t, 3, Settings(), s), arrival_order(t.n, s)) for s in seeds])
    strong = summarise([(baselines(t, 3, seeds)["strongest"][0], arrival_order(t.n, s)) for s in seeds])
    assert ours.cost_per_solved < 0.5 * strong.cost_per_solved
    assert ours.solved_share >= 0.8
