"""Resident memory of one replica with 100 models and 10,000 learned task classes (VmRSS from /proc).

Two measurements: (1) the routing core facade in a fresh child process, reporting outcomes for every
task class on `--models-per-class` models; (2) a real server subprocess that routes and settles each
task class once over gRPC (SQLite store, telemetry to a local sink).
Run from the repo root: python -m bench.load.memory_bench [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import grpc

from bench.load import targets
from bench.load.loadgen import run_load
from bench.load.service_load import outcome
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2

CORE_CHILD = """
import json, sys, time
from pathlib import Path
from modelyard.config import load_config, to_core_catalog
from modelyard.core import RoutingCore

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

cfg, classes, per_class = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = load_config(cfg)
models = [m.id for m in config.models]
core = RoutingCore(to_core_catalog(config))
base = rss()
now = time.time()
for c in range(classes):
    for k in range(per_class):
        m = models[(c * 7 + k) % len(models)]
        core.report(model=m, role=2, task_class=f"class-{c}", status=1 + (c + k) % 2, input_tokens=9000,
                    cached_input_tokens=0, output_tokens=600, latency_ms=1200.0, now=now)
snap = len(core.snapshot())
print(json.dumps({"models": len(models), "task_classes": classes, "models_per_class": per_class,
                  "arms": core.arm_count(), "rss_before_mb": round(base, 1), "rss_after_mb": round(rss(), 1),
                  "snapshot_mb": round(snap / 2**20, 1)}))
"""


def core_memory(cfg: Path, classes: int, per_class: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", CORE_CHILD, str(cfg), str(classes), str(per_class)],
                          cwd=targets.REPO, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def drive_server(port: int, classes: int, concurrency: int) -> int:
    meta = targets.bearer()
    tag = uuid.uuid4().hex[:8]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)

        async def step(i: int) -> None:
            req = router_pb2.RouteRequest(
                request_id=f"{tag}-{i}", job_id=f"{tag}-job-{i % 256}",
                task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class=f"class-{i}"))
            d = await stub.Route(req, metadata=meta, timeout=10)
            await stub.ReportOutcome(outcome(d.decision_id, i), metadata=meta, timeout=10)

        s = await run_load(step, concurrency=concurrency, requests=classes, time_limit_s=300)
        return s.requests


def server_memory(tmp: Path, cfg: Path, classes: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        port, pid = stack.enter_context(targets.modelyard_server(cfg, tmp))
        before = targets.rss_mb(pid)
        done = asyncio.run(drive_server(port, classes, 16))
        return {"task_classes_settled": done, "rss_before_mb": round(before, 1),
                "rss_after_mb": round(targets.rss_mb(pid), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--classes", type=int, default=10_000)
    ap.add_argument("--models-per-class", type=int, default=10, help="arms learned per task class (core)")
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-mem-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        sink = stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
        cfg = targets.write_bench_config(tmp, sink_port=sink, n_models=args.models)
        result: dict[str, Any] = {"core": core_memory(cfg, args.classes, args.models_per_class)}
        if not args.no_server:
            result["server"] = server_memory(tmp, cfg, args.classes)
    if args.json:
        print(json.dumps(result))
        return
    c = result["core"]
    print(f"core facade: {c['models']} models, {c['task_classes']} task classes x {c['models_per_class']} models"
          f" = {c['arms']} arms: VmRSS {c['rss_before_mb']} -> {c['rss_after_mb']} MB"
          f" (snapshot {c['snapshot_mb']} MB)")
    if "server" in result:
        s = result["server"]
        print(f"server: {s['task_classes_settled']} task classes routed+settled over gRPC: VmRSS "
              f"{s['rss_before_mb']} -> {s['rss_after_mb']} MB")


if __name__ == "__main__":
    main()
