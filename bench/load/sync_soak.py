"""Shared learning under load: every report counted once on every replica.

Starts `--replicas` servers on one private redis-server (Rust front by default) with a short sync
and compaction interval, so bases are written and the log trimmed while the load runs. Drives
Route + ReportOutcome on all replicas at once (`--steps` per replica, `--classes` task classes,
every fourth outcome a failure), tallying each report by the model the decision chose and the
class. Then, after a few syncs, reads every replica's learned evidence per (model, class)
(Catalog.ListModels) and compares it with the tally; a replica started afterwards (catching up
from the newest base and the log) must hold the same. Drift detection is off by default: a drift
forgets evidence on purpose (on every replica alike), which a count cannot check; with `--drift`
the replicas are compared with each other only. Exits non-zero on any mismatch.

Run from the repo root: python -m bench.load.sync_soak [--replicas 3] [--steps 3000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import yaml

from bench.load import targets
from bench.load.loadgen import run_load
from bench.load.service_load import outcome
from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2

Arm = tuple[str, str]  # (model, task class)


async def drive(port: int, replica: int, steps: int, classes: int, concurrency: int, tally: Counter[Arm]) -> int:
    meta = targets.bearer()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)

        async def step(i: int) -> None:
            cls = f"class-{(i * 7 + replica) % classes}"
            d = await stub.Route(router_pb2.RouteRequest(
                request_id=uuid.uuid4().hex, job_id=f"r{replica}-job-{i}",
                task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class=cls)), metadata=meta, timeout=10)
            await stub.ReportOutcome(outcome(d.decision_id, i), metadata=meta, timeout=10)
            tally[(d.model.model_id, cls)] += 1

        s = await run_load(step, concurrency=concurrency, requests=steps, time_limit_s=600)
        return s.errors


def learned(port: int) -> dict[Arm, float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        resp = catalog_pb2_grpc.CatalogStub(ch).ListModels(
            catalog_pb2.ListModelsRequest(include_estimates=True), metadata=targets.bearer(), timeout=10)
    return {(m.model_id, e.task_class): e.evidence for m in resp.models for e in m.estimates
            if e.role == types_pb2.ROLE_EXECUTOR and e.task_class and e.evidence > 1e-9}


def mismatches(got: dict[Arm, float], want: Counter[Arm]) -> list[str]:
    out = []
    for arm in sorted(set(got) | set(want)):
        g, w = got.get(arm, 0.0), want.get(arm, 0)
        if abs(g - w) > 1e-3 * max(1.0, w):  # evidence decays by ~1e-5 over a run (half-life 1 week)
            out.append(f"{arm}: learned {g:.4f}, reported {w}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3000, help="Route + ReportOutcome per replica")
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8, help="per replica")
    ap.add_argument("--sync-interval", type=float, default=0.2)
    ap.add_argument("--compact-interval", type=float, default=1.0)
    ap.add_argument("--front", choices=("rust", "python"), default="rust")
    ap.add_argument("--drift", action="store_true", help="keep drift detection on (compare replicas only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="modelyard-sync-soak-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        url = stack.enter_context(targets.redis_server(tmp))
        env = {"MODELYARD_BENCH_REDIS_URL": url}
        path = targets.write_bench_config(tmp, store="redis", front=args.front)
        cfg = yaml.safe_load(path.read_text())
        cfg["store"]["redis"].update(sync_interval_s=args.sync_interval, compact_interval_s=args.compact_interval)
        cfg["routing"]["drift"] = {"enabled": args.drift}
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ports = []
        for i in range(args.replicas):
            rdir = tmp / f"r{i}"
            rdir.mkdir()
            ports.append(stack.enter_context(targets.modelyard_server(path, rdir, env))[0])
        tally: Counter[Arm] = Counter()

        async def load() -> list[int]:
            return await asyncio.gather(*(drive(p, i, args.steps, args.classes, args.concurrency, tally)
                                          for i, p in enumerate(ports)))

        started = time.monotonic()
        errors = asyncio.run(load())
        took = time.monotonic() - started
        time.sleep(5 * args.sync_interval + 1.0)
        views = {f"r{i}": learned(p) for i, p in enumerate(ports)}
        late_dir = tmp / "late"
        late_dir.mkdir()
        views["late"] = learned(stack.enter_context(targets.modelyard_server(path, late_dir, env))[0])
        # With drift on, what r0 learned stands in for the count (every replica must agree with it).
        want = tally if not args.drift else Counter({a: round(v, 9) for a, v in views["r0"].items()})
        per_replica = {name: mismatches(view, want) for name, view in views.items()}
        result = {"replicas": args.replicas, "reports": sum(tally.values()), "arms": len(tally),
                  "errors": sum(errors), "seconds": round(took, 1),
                  "reports_per_s": round(sum(tally.values()) / took, 1),
                  "mismatched_arms": {k: len(v) for k, v in per_replica.items() if v},
                  "mismatches": {k: v[:5] for k, v in per_replica.items() if v}}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['replicas']} replicas, {result['reports']} reports over {result['arms']} arms in "
              f"{result['seconds']} s ({result['reports_per_s']}/s), {result['errors']} failed calls")
        for name, rows in result["mismatches"].items():
            n = result["mismatched_arms"][name]
            print(f"  {name}: {n} of {result['arms']} arms differ, e.g. " + "; ".join(rows))
        if not result["mismatches"]:
            print("  every replica, and one started afterwards, learned each report exactly once")
    sys.exit(1 if result["mismatches"] or result["errors"] else 0)


if __name__ == "__main__":
    main()
