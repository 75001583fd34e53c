"""Benchmark of the routing core through the Python binding (run on demand, never in CI).

    python bench/core_bench.py [--runs 5]

Prints p50/p99 per decision, decisions/s on one thread, per-update time and the per-decision
slowdown at 4 threads, for each run and as medians, then the command that produced them.
Setup: 64 models, 1,000 warm task classes; warm-up reports carry the decision's token estimates
and a billed cost, so the learned token and cost ratios are on the scoring path.
Targets: p99 ≤ 20 µs, ≥ 100,000 decisions/s, ≤ 5 µs per update, ≤ 1.5x slowdown at 4 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time

from modelyard import _core

MODELS, CLASSES, EXECUTOR = 64, 1000, 2


def catalog() -> str:
    models = [
        {"id": f"model-{i}", "provider": f"prov-{i % 8}", "tier": 1 + i % 3,
         "price_in": 0.1 + i * 0.1, "price_cached_in": 0.01 + i * 0.01, "price_out": 0.4 + i * 0.3,
         "context_window": 200000, "capabilities": ["tools"], "prior_success": 0.5 + (i % 40) / 100}
        for i in range(MODELS)
    ]
    return json.dumps({"models": models})


def warm_core() -> _core.Core:
    core = _core.Core(catalog())
    for i in range(MODELS * CLASSES):
        core.report(model=f"model-{i % MODELS}", role=EXECUTOR, task_class=f"class-{i // MODELS}",
                    status=2 if i % 3 == 0 else 1, now=1000.0, input_tokens=10000 + (i % 7) * 1000,
                    cached_input_tokens=5000, output_tokens=800 + (i % 5) * 100, latency_ms=3000.0,
                    est_input_tokens=10000, est_output_tokens=800, est_cached_input_tokens=5000,
                    cost_usd=0.01 + (i % 11) * 0.001)
    return core


def decide(core: _core.Core, seed: int) -> None:
    core.route(_core.Request(role=EXECUTOR, task_class=f"class-{seed % CLASSES}", now=2000.0,
                             est_input_tokens=10000, est_output_tokens=800, capabilities=["tools"],
                             time_value_usd_per_s=0.01, explore=True, seed=seed))


def timed_decisions(core: _core.Core, n: int, offset: int = 0) -> list[float]:
    out = []
    for s in range(offset, offset + n):
        t = time.perf_counter_ns()
        decide(core, s)
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def one_run(core: _core.Core, n: int) -> dict[str, float]:
    lat = sorted(timed_decisions(core, n))
    t = time.perf_counter()
    for s in range(n):
        decide(core, s)
    per_s = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        core.report(model=f"model-{i % MODELS}", role=EXECUTOR, task_class=f"class-{i % CLASSES}",
                    status=1, now=2000.0, input_tokens=10000, output_tokens=800, latency_ms=3000.0,
                    est_input_tokens=10000, est_output_tokens=800, cost_usd=0.012)
    update_us = (time.perf_counter() - t) / n * 1e6
    results: list[list[float]] = [[] for _ in range(4)]

    def worker(k: int) -> None:
        results[k] = timed_decisions(core, n // 4, offset=k * n)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    mt = statistics.median(x for r in results for x in r)
    return {"p50_us": lat[len(lat) // 2], "p99_us": lat[int(len(lat) * 0.99)],
            "decisions_per_s": per_s, "update_us": update_us,
            "slowdown_4_threads": mt / lat[len(lat) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("-n", type=int, default=20000)
    args = ap.parse_args()
    core = warm_core()
    runs = []
    for r in range(args.runs):
        res = one_run(core, args.n)
        runs.append(res)
        print(f"run {r}: " + "  ".join(f"{k}={v:,.2f}" for k, v in res.items()))
    med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    print(f"median of {args.runs} runs: " + "  ".join(f"{k}={v:,.2f}" for k, v in med.items()))
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
