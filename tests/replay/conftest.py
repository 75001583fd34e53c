"""Small generated outcome tables (never the real data): synthetic models with known success rates."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

# model → (success rate, cost per task, price in, price out) for the 40-task fixture.
MODELS = {
    "tiny": (0.10, 0.01, 0.05, 0.4),
    "cheap-good": (0.70, 0.02, 0.2, 0.8),
    "mid": (0.60, 0.20, 1.0, 4.0),
    "strong": (0.85, 1.00, 5.0, 25.0),
    "pricey": (0.80, 2.00, 15.0, 75.0),
}


def write_table(path: Path, rows: list[dict], prices: dict[str, tuple[float, float]]) -> Path:
    cols = ["task_id", "task_group", "model", "success", "cost_usd"]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    with path.with_name(path.stem + "_models.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "vendor", "price_in_per_mtok", "price_out_per_mtok"])
        for m, (pin, pout) in prices.items():
            w.writerow([m, "synthetic", pin, pout])
    return path


@pytest.fixture
def synthetic_table(tmp_path: Path) -> Path:
    """40 tasks x 5 models, two task groups, outcomes drawn with a fixed seed."""
    rng = random.Random(7)
    rows = []
    for t in range(40):
        for m, (p, c, _, _) in MODELS.items():
            rows.append({"task_id": f"t{t}", "task_group": f"g{t % 2}", "model": m,
                         "success": int(rng.random() < p), "cost_usd": round(c * (0.5 + rng.random()), 4)})
    return write_table(tmp_path / "synthetic.csv", rows, {m: (v[2], v[3]) for m, v in MODELS.items()})


@pytest.fixture
def hand_table(tmp_path: Path) -> Path:
    """4 tasks x 3 models, small enough to check every baseline by hand.

    task:   a (cheap)   b (mid)    c (strong)
    t0      ok  $1      ok  $2     ok  $10
    t1      no  $1      ok  $2     ok  $10
    t2      no  $1      no  $2     ok  $10
    t3      no  $1      no  $2     no  $10
    """
    grid = {"a": [(1, 1), (0, 1), (0, 1), (0, 1)], "b": [(1, 2), (1, 2), (0, 2), (0, 2)],
            "c": [(1, 10), (1, 10), (1, 10), (0, 10)]}
    rows = [{"task_id": f"t{t}", "task_group": "g", "model": m, "success": grid[m][t][0],
             "cost_usd": grid[m][t][1]} for t in range(4) for m in grid]
    return write_table(tmp_path / "hand.csv", rows, {"a": (0.1, 0.1), "b": (1.0, 1.0), "c": (10.0, 10.0)})
