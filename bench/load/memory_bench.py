"""Resident memory of one replica with 100 models and 10,000 learned task classes (VmRSS from /proc).

Two measurements: (1) the routing core facade in a fresh child process, reporting outcomes for every
task class on `--models-per-class` models; (2) a real server subprocess that routes and settles each
task class once over gRPC (SQLite store, or `--store redis` on a private redis-server; telemetry to a
local sink). With `--restore-server`, (3) a server that starts on the core's state (SQLite: the saved
state; Redis: the shared learning's base, which it catches up from and, holding the first
compaction lease, writes again at once).
Run from the repo root: python -m bench.load.memory_bench [--store redis] [--restore-server] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import redis

from bench.load import targets
from bench.load.loadgen import run_load
from bench.load.service_load import outcome
from modelyard.app import STATE_SAVE_INTERVAL_S
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2

CORE_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
from modelyard.config import load_config, to_core_catalog
from modelyard.core import RoutingCore

def rss(field="VmRSS"):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

cfg, classes, per_class = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
snap_out = sys.argv[4] if len(sys.argv) > 4 else ""
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
learned, peak_learning = rss(), rss("VmHWM")
# As the server saves it: encoded straight into a file (Core.snapshot_to_path), never whole in memory.
out = Path(snap_out) if snap_out else Path(tempfile.mkdtemp()) / "core.snapshot"
core.snapshot_to_path(out)
snap = out.stat().st_size
if not snap_out:
    out.unlink()
print(json.dumps({"models": len(models), "task_classes": classes, "models_per_class": per_class,
                  "arms": core.arm_count(), "rss_before_mb": round(base, 1), "rss_after_mb": round(learned, 1),
                  "peak_learning_mb": round(peak_learning, 1), "peak_with_snapshot_mb": round(rss("VmHWM"), 1),
                  "snapshot_mb": round(snap / 2**20, 1)}))
"""


def core_memory(cfg: Path, classes: int, per_class: int, snapshot_to: Path | None = None) -> dict[str, Any]:
    argv = [str(cfg), str(classes), str(per_class)] + ([str(snapshot_to)] if snapshot_to else [])
    proc = subprocess.run([sys.executable, "-c", CORE_CHILD, *argv],
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


def server_memory(tmp: Path, cfg: Path, classes: int, env: dict[str, str]) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        port, pid = stack.enter_context(targets.modelyard_server(cfg, tmp, env))
        before = targets.rss_mb(pid)
        done = asyncio.run(drive_server(port, classes, 16))
        return {"task_classes_settled": done, "rss_before_mb": round(before, 1),
                "rss_after_mb": round(targets.rss_mb(pid), 1), "peak_mb": round(targets.rss_mb(pid, "VmHWM"), 1)}


async def _save_state(cfg: Path, blob: bytes) -> None:
    from modelyard.app import SHARED, App
    from modelyard.config import load_config
    from modelyard.learning_sync import SharedLearning
    from modelyard.store import open_store

    store = open_store(load_config(cfg).store)
    await store.open()
    try:
        if isinstance(store, SharedLearning):  # Redis: the base replicas start from
            await store.save_base(App._state_name(SHARED), blob, "0-0", [])
        else:
            await store.save_state(App._state_name(SHARED), blob, 0.0)
    finally:
        await store.close()


def restored_server_memory(tmp: Path, cfg: Path, snapshot: Path, classes: int, env: dict[str, str],
                           redis: bool) -> dict[str, Any]:
    """A server that starts on the core's saved state (what a replica restarting with everything
    learned holds), then routes and settles `classes` more steps (and so saves its state again;
    with Redis it wrote a base at its first sync)."""
    asyncio.run(_save_state(cfg, snapshot.read_bytes()))
    with contextlib.ExitStack() as stack:
        port, pid = stack.enter_context(targets.modelyard_server(cfg, tmp, env))
        restored, restored_peak = targets.rss_mb(pid), targets.rss_mb(pid, "VmHWM")
        done = asyncio.run(drive_server(port, classes, 16))
        saved = (_wait_for_base(env["MODELYARD_BENCH_REDIS_URL"], timeout_s=90) if redis else
                 _wait_for_save(tmp / "modelyard.db", after=0.0, timeout_s=STATE_SAVE_INTERVAL_S + 30))
        return {"restored_mb": round(restored, 1), "restored_peak_mb": round(restored_peak, 1),
                "routed": done, "state_saved_again": saved, "rss_after_mb": round(targets.rss_mb(pid), 1),
                "peak_mb": round(targets.rss_mb(pid, "VmHWM"), 1)}


def _wait_for_base(url: str, timeout_s: float) -> bool:
    """Until the server has written a base past the one it started from (position 0-0): the peak
    of writing one counts."""
    from modelyard.app import SHARED, App
    from modelyard.store import RedisStore

    key = RedisStore(url, key_prefix="bench").keys.learn_base(App._state_name(SHARED))
    red = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            pos = red.hget(key, "pos")
            if pos is not None and pos != b"0-0":
                return True
            time.sleep(1.0)
    finally:
        red.close()
    return False


def _wait_for_save(db: Path, after: float, timeout_s: float) -> bool:
    """Until the server has saved its learned state: a full save (updated_at > `after`) or changes
    appended to the state log (schema 3, state_log.py); the peak of a save counts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT max(updated_at) FROM state").fetchone()
            logged = conn.execute("SELECT count(*) FROM state_log").fetchone()[0]
        if (row and row[0] is not None and row[0] > after) or logged:
            return True
        time.sleep(1.0)
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--classes", type=int, default=10_000)
    ap.add_argument("--models-per-class", type=int, default=10, help="arms learned per task class (core)")
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--restore-server", action="store_true",
                    help="also start a server on the core's snapshot (all its arms) and route on it")
    ap.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-mem-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        sink = stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
        redis = args.store == "redis"
        cfg = targets.write_bench_config(tmp, sink_port=sink, n_models=args.models, store=args.store)
        snapshot = tmp / "core.snapshot" if args.restore_server else None
        result: dict[str, Any] = {"store": args.store,
                                  "core": core_memory(cfg, args.classes, args.models_per_class, snapshot)}
        env: dict[str, str] = {}
        if not args.no_server:
            if redis:
                (tmp / "r1").mkdir()
                env["MODELYARD_BENCH_REDIS_URL"] = stack.enter_context(targets.redis_server(tmp / "r1"))
            result["server"] = server_memory(tmp, cfg, args.classes, env)
        if snapshot is not None:
            (tmp / "modelyard.db").unlink(missing_ok=True)
            if redis:  # a fresh Redis holding only the base
                (tmp / "r2").mkdir()
                env["MODELYARD_BENCH_REDIS_URL"] = stack.enter_context(targets.redis_server(tmp / "r2"))
            os.environ.update(env)  # _save_state opens the store in this process
            result["restored_server"] = restored_server_memory(tmp, cfg, snapshot, args.classes, env, redis)
    if args.json:
        print(json.dumps(result))
        return
    c = result["core"]
    print(f"core facade: {c['models']} models, {c['task_classes']} task classes x {c['models_per_class']} models"
          f" = {c['arms']} arms: VmRSS {c['rss_before_mb']} -> {c['rss_after_mb']} MB (peak {c['peak_learning_mb']});"
          f" snapshot {c['snapshot_mb']} MB, peak while taking it {c['peak_with_snapshot_mb']} MB")
    if "server" in result:
        s = result["server"]
        print(f"server: {s['task_classes_settled']} task classes routed+settled over gRPC: VmRSS "
              f"{s['rss_before_mb']} -> {s['rss_after_mb']} MB (peak {s['peak_mb']})")
    if "restored_server" in result:
        r = result["restored_server"]
        print(f"server started on that snapshot: VmRSS {r['restored_mb']} MB (peak {r['restored_peak_mb']}); after"
              f" {r['routed']} more routed+settled steps and {'a' if r['state_saved_again'] else 'NO'} state save"
              f"{' (a base)' if result['store'] == 'redis' else ''}:"
              f" {r['rss_after_mb']} MB (peak {r['peak_mb']})")


if __name__ == "__main__":
    main()
