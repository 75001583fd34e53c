"""Reference policies, scored on the same table with the same attempt budget K.

- random: a uniformly random model per attempt among those not yet failed on the task (seeded).
- cheapest: list-price order (the catalog's cold-start cost estimate), K attempts down the list.
- strongest: the model with the highest solved share on the table (on SWE-bench Verified that is
  claude-opus-4.5, also the leaderboard's top), then the next strongest, K attempts down the list.
- best-single: the model with the lowest cost per solved task in hindsight; one attempt (a retry of
  the same model would replay the same recorded outcome).
- cascade: the ordered list of up to min(K, 3) models, searched over all ordered tuples in
  hindsight, with the lowest cost per solved task among those solving at least the strongest
  model's single-attempt share; if none does, the one solving most (then cheapest).
- oracle: per task the cheapest model that solved it, paying only that run (nothing for tasks no
  model solves): a loose lower bound, since it also exploits lucky single runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from modelyard.replay.table import Table


@dataclass
class Run:
    """Per-task outcome of one policy, indexed by task position in the table (not arrival order)."""

    solved: list[bool]
    cost: list[float]
    attempts: list[int]
    picks: list[list[str]] = field(default_factory=list)
    label: str = ""


def cascade(table: Table, ranking: list[str], k: int, label: str = "") -> Run:
    run = Run([], [], [], [], label)
    for t in range(table.n):
        spent, tried, ok = 0.0, [], False
        for m in ranking[:k]:
            spent += table.cost[m][t]
            tried.append(m)
            if table.ok[m][t]:
                ok = True
                break
        run.solved.append(ok)
        run.cost.append(spent)
        run.attempts.append(len(tried))
        run.picks.append(tried)
    return run


def random_policy(table: Table, k: int, seed: int) -> Run:
    rng = random.Random(seed)
    run = Run([], [], [], [], "random")
    for t in range(table.n):
        pool = list(table.models)
        spent, tried, ok = 0.0, [], False
        for _ in range(min(k, len(pool))):
            m = pool.pop(rng.randrange(len(pool)))
            spent += table.cost[m][t]
            tried.append(m)
            if table.ok[m][t]:
                ok = True
                break
        run.solved.append(ok)
        run.cost.append(spent)
        run.attempts.append(len(tried))
        run.picks.append(tried)
    return run


def strongest_ranking(table: Table) -> list[str]:
    return sorted(table.models, key=lambda m: (-table.share(m), sum(table.cost[m])))


def best_single(table: Table) -> str:
    return min(table.models, key=lambda m: (table.cost_per_solved(m), -table.share(m)))


def oracle(table: Table) -> Run:
    run = Run([], [], [], [], "oracle")
    for t in range(table.n):
        wins = [(table.cost[m][t], m) for m in table.models if table.ok[m][t]]
        if wins:
            c, m = min(wins)
            run.solved.append(True)
            run.cost.append(c)
            run.picks.append([m])
        else:
            run.solved.append(False)
            run.cost.append(0.0)
            run.picks.append([])
        run.attempts.append(1)
    return run


def best_cascade(table: Table, k: int, min_share: float) -> list[str]:
    """Exhaustive search over ordered tuples of length 1..min(k, 3) (see the module docstring)."""
    n, ms = table.n, table.models
    fails = {m: [t for t in range(n) if not table.ok[m][t]] for m in ms}
    total = {m: sum(table.cost[m]) for m in ms}
    need = min_share * n - 1e-9
    best_key: tuple[float, ...] | None = None
    best: list[str] = [ms[0]]

    def consider(seq: list[str], solved: int, cost: float) -> None:
        nonlocal best_key, best
        cps = cost / solved if solved else float("inf")
        key = (0.0, cps, -solved) if solved >= need else (1.0, -solved, cps)
        if best_key is None or key < best_key:
            best_key, best = key, list(seq)

    for a in ms:
        fa = fails[a]
        consider([a], n - len(fa), total[a])
        if k < 2:
            continue
        for b in ms:
            if b == a:
                continue
            cb, okb = table.cost[b], table.ok[b]
            cost_ab = total[a] + sum(cb[t] for t in fa)
            fab = [t for t in fa if not okb[t]]
            consider([a, b], n - len(fab), cost_ab)
            if k < 3:
                continue
            for c in ms:
                if c in (a, b):
                    continue
                cc, okc = table.cost[c], table.ok[c]
                left = sum(1 for t in fab if not okc[t])
                consider([a, b, c], n - left, cost_ab + sum(cc[t] for t in fab))
    return best


def baselines(table: Table, k: int, seeds: list[int]) -> dict[str, list[Run]]:
    """Every baseline's runs; deterministic baselines have one run (order only permutes them)."""
    strong = strongest_ranking(table)
    one = best_single(table)
    casc = best_cascade(table, k, table.share(strong[0]))
    return {
        "random": [random_policy(table, k, s) for s in seeds],
        "cheapest": [cascade(table, table.models, k, f"{table.models[0]} → …")],
        "strongest": [cascade(table, strong, k, " → ".join(strong[:k]))],
        "best-single": [cascade(table, [one], 1, one)],
        "cascade": [cascade(table, casc, k, " → ".join(casc))],
        "oracle": [oracle(table)],
    }
