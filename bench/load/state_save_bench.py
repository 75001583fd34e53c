"""What a single node's periodic state save costs on SQLite: a full save (a base) of a large learned
state against an append of the changes since the last save (state_log.py), and what a restart reads.

    python -m bench.load.state_save_bench [--models 100] [--classes 10000] [--changed 10000] [--runs 3]

Builds a core of `--models` x `--classes` arms (1M by default; every class has every model), saves a
base through a real SqliteStore in a temporary directory, teaches `--changed` more outcomes (round
robin over the classes), and times the save that follows (an append), a full save of the same
state, and restores from base + log. Medians over `--runs`; wall time, plus how long the core's lock is
held where that is what blocks Routes and reports (the snapshot's encode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from modelyard.core import RoutingCore
from modelyard.state_log import StateSaves
from modelyard.store import SqliteStore

ROLE, NOW = 2, 1_000_000.0


def _catalog(models: int) -> dict[str, Any]:
    from tests.core.test_learning import CATALOG

    base = CATALOG["models"][0]
    return {**CATALOG, "models": [{**base, "id": f"m{i}"} for i in range(models)]}


def _teach(core: RoutingCore, models: int, classes: int, outcomes: int, now: float) -> None:
    """`outcomes` reports, round robin over the classes; model and status vary with each."""
    for i in range(outcomes):
        c = i % classes
        core.report(model=f"m{(c * 7 + i // classes) % models}", role=ROLE, task_class=f"class-{c}",
                    status=1 + (c + i // classes) % 2, input_tokens=9000, cached_input_tokens=0, output_tokens=600,
                    latency_ms=1200.0, now=now)


async def _run_once(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    catalog = _catalog(args.models)
    core = RoutingCore(catalog)
    store = SqliteStore(tmp / "state.db")
    await store.open()
    try:
        saves = StateSaves(store)
        await saves.restore("core", core)
        _teach(core, args.models, args.classes, args.classes * args.models, NOW)  # every class, every model
        t = time.perf_counter()
        await saves.save("core", core, 1.0)  # the first save: a base
        base_s = time.perf_counter() - t
        base_bytes, _, _ = await store.state_sizes("core")
        _teach(core, args.models, args.classes, args.changed, NOW + 60)
        t = time.perf_counter()
        await saves.save("core", core, 2.0)  # an append of what changed
        append_s = time.perf_counter() - t
        _, entries, log_bytes = await store.state_sizes("core")
        t = time.perf_counter()
        restored = RoutingCore(catalog)
        await StateSaves(store).restore("core", restored)
        restore_s = time.perf_counter() - t
        assert restored.arm_count() == core.arm_count()
        full_path = tmp / "full.snapshot"
        t = time.perf_counter()
        core.snapshot_to_path(full_path)  # what the old full save encoded every 30 s, under the read lock
        encode_s = time.perf_counter() - t
        return {"arms": core.arm_count(), "base_mb": base_bytes / 2**20, "base_save_s": base_s,
                "snapshot_encode_s": encode_s, "append_s": append_s, "append_entries": entries,
                "append_kb": log_bytes / 1024, "restore_base_and_log_s": restore_s}
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--classes", type=int, default=10_000)
    ap.add_argument("--changed", type=int, default=10_000, help="outcomes learned between the two saves")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="modelyard-state-") as td:
            runs.append(asyncio.run(_run_once(args, Path(td))))
    med = {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}
    if args.json:
        print(json.dumps({"runs": runs, "median": med}))
        return
    print(f"{med['arms']:.0f} arms; medians of {len(runs)} runs")
    print(f"  full save (base): {med['base_save_s'] * 1000:.0f} ms, {med['base_mb']:.1f} MB"
          f" (of which the snapshot's encode, under the core's read lock: {med['snapshot_encode_s'] * 1000:.0f} ms)")
    print(f"  append after {args.changed} outcomes: {med['append_s'] * 1000:.1f} ms,"
          f" {med['append_kb']:.0f} KB in {med['append_entries']:.0f} rows")
    print(f"  restore from base + log: {med['restore_base_and_log_s'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
