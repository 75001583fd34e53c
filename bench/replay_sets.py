"""The routing-quality figures over many arrival orders: medians per order set and over all of them.

    python bench/replay_sets.py TABLE [--est-tokens IN,OUT] [--more] [--no-drift]
                                      [--save FILE] [--paired FILE]

The documented `modelyard bench replay TABLE --orders 10 --seed 0` is one set of 10 orders; its
median moves by a few percent with the orders drawn. The figures in bench/README "What limits
quality" are medians over five sets (seeds 0-9 | 100-119 | 200-219 | 300-319 | 400-419: 90
orders; `--more` adds 500-519 | 600-619: 130), K=1 and K=3, in process, and the drift scenario at
K=1 on the first three sets and at K=3 on the first. Runs on two processes; about 15 s on
SWE-bench Verified here. The table is read from its path, never copied.

Two builds of the core compared order by order: run with `--save before.json` on the first, then
with `--paired before.json` on the second (same table and flags); each K prints the mean of the
per-order differences (second minus first) in share solved and cost per solved with their
standard errors. The same orders make the difference far less noisy than two medians are.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor

from modelyard.cli.bench import parse_est_tokens
from modelyard.cli.commands import CliError
from modelyard.replay.catalog import Settings
from modelyard.replay.drift import run_drift
from modelyard.replay.runner import replay_inprocess
from modelyard.replay.table import load_table

SETS = [range(0, 10), range(100, 120), range(200, 220), range(300, 320), range(400, 420)]
MORE = [range(500, 520), range(600, 620)]


def _settings(est: tuple[int, int] | None) -> Settings:
    return Settings() if est is None else Settings(est_tokens=est)


def _one(args: tuple[str, int, int, tuple[int, int] | None]) -> tuple[int, float, float]:
    path, k, seed, est = args
    table = load_table(path, priced_tokens=Settings().est_tokens)
    run = replay_inprocess(table, k, _settings(est), seed)
    solved = sum(run.solved)
    return seed, solved / table.n, sum(run.cost) / solved if solved else float("inf")


def _drift(args: tuple[str, int, list[int], tuple[int, int] | None]) -> tuple[float, float]:
    path, k, seeds, est = args
    table = load_table(path, priced_tokens=Settings().est_tokens)
    d = run_drift(table, k, _settings(est), seeds)
    return d.tasks_to_move, d.ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("table")
    ap.add_argument("--est-tokens", metavar="IN,OUT", help="the step estimate sent with every Route")
    ap.add_argument("--more", action="store_true", help="two more sets (130 orders)")
    ap.add_argument("--no-drift", action="store_true")
    ap.add_argument("--save", metavar="FILE", help="write every order's (share, cost per solved) to FILE")
    ap.add_argument("--paired", metavar="FILE", help="compare order by order with a --save FILE")
    args = ap.parse_args(argv)
    try:
        est = parse_est_tokens(args.est_tokens)
    except CliError as exc:
        ap.error(str(exc))
    sets = [list(s) for s in SETS + (MORE if args.more else [])]
    before = _load(args.paired) if args.paired else None
    saved: dict[str, dict[str, list[float]]] = {}
    with ProcessPoolExecutor(2) as ex:
        for k in (1, 3):
            rows = list(ex.map(_one, [(args.table, k, s, est) for ss in sets for s in ss]))
            by_seed = {seed: (share, cps) for seed, share, cps in rows}
            per_set = [(statistics.median(by_seed[s][0] for s in ss), statistics.median(by_seed[s][1] for s in ss))
                       for ss in sets]
            shares, cps = [v[0] for v in by_seed.values()], [v[1] for v in by_seed.values()]
            print(f"K={k}, {len(by_seed)} orders: median {statistics.median(shares):.1%} at "
                  f"${statistics.median(cps):.4f} per solved (mean ${statistics.mean(cps):.4f}); per set: "
                  + " | ".join(f"{a:.1%} ${b:.4f}" for a, b in per_set), flush=True)
            saved[str(k)] = {str(seed): [share, cps] for seed, (share, cps) in by_seed.items()}
            if before is not None:
                print(_paired(k, before.get(str(k), {}), saved[str(k)]), flush=True)
        if not args.no_drift:
            jobs = [(args.table, 1, sets[i], est) for i in range(3)] + [(args.table, 3, sets[0], est)]
            moves = list(ex.map(_drift, jobs))
            print("drift, tasks to move (second-half ratio): K=1 "
                  + " / ".join(f"{m:.0f} ({r:.2f}x)" for m, r in moves[:3])
                  + f"; K=3 {moves[3][0]:.0f} ({moves[3][1]:.2f}x)")
    if args.save:
        with open(args.save, "w") as f:
            json.dump(saved, f)
    print("command: python " + " ".join(sys.argv))
    return 0


def _load(path: str) -> dict[str, dict[str, list[float]]]:
    with open(path) as f:
        data: dict[str, dict[str, list[float]]] = json.load(f)
    return data


def _paired(k: int, before: dict[str, list[float]], after: dict[str, list[float]]) -> str:
    """Mean per-order difference (after - before) in share and in cost per solved, with its SE."""
    seeds = sorted(set(before) & set(after), key=int)
    if len(seeds) < 2:
        return f"K={k} paired: fewer than two orders in common with the saved run"
    parts = []
    for i, (name, scale, unit) in enumerate((("share", 100.0, " points"), ("$ per solved", 1.0, ""))):
        d = [scale * (after[s][i] - before[s][i]) for s in seeds]
        se = statistics.stdev(d) / math.sqrt(len(d))
        digits = 2 if i == 0 else 4
        parts.append(f"{name} {statistics.mean(d):+.{digits}f}{unit} (se {se:.{digits}f})")
    return f"K={k} paired over {len(seeds)} orders, this build minus the saved one: " + ", ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
