"""Profiles the modelyard server's Route path under load with py-spy (from bench/load/.venv-bench).

Spawns the server (SQLite store, telemetry to a local sink), attaches `py-spy record` to its pid while
a Route load runs, and prints the hottest functions by own and by inclusive samples (by default only
the thread holding the GIL is sampled: that is the Python work the 2 cores are queueing on).
Run from the repo root: python -m bench.load.profile_route [--concurrency 16] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import subprocess
import tempfile
import uuid
from pathlib import Path

import grpc

from bench.load import litellm_ref, targets
from bench.load.loadgen import run_load
from bench.load.service_load import outcome, route_request
from modelyard.v1 import router_pb2_grpc


async def load(port: int, concurrency: int, seconds: float, with_reports: bool) -> int:
    meta = targets.bearer()
    tag = uuid.uuid4().hex[:12]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)

        async def call(i: int) -> None:
            d = await stub.Route(route_request(tag, i), metadata=meta, timeout=10)
            if with_reports:
                await stub.ReportOutcome(outcome(d.decision_id, i), metadata=meta, timeout=10)

        s = await run_load(call, concurrency=concurrency, requests=1_000_000, time_limit_s=seconds)
        return s.requests


def top(raw: Path, n: int) -> str:
    """Own and inclusive sample counts per function from py-spy's collapsed ('raw') stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = [f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].rstrip(")") for f in stack.split(";")[1:]]
        if frames:
            own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    lines = [f"{total} samples", "", "own%   function (file:line)"]
    lines += [f"{100 * k / total:5.1f}  {f}" for f, k in own.most_common(n)]
    lines += ["", "incl%  function (file:line)"]
    lines += [f"{100 * k / total:5.1f}  {f}" for f, k in incl.most_common(n * 2)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--reports", action="store_true", help="also send ReportOutcome after each Route")
    ap.add_argument("--no-telemetry", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--all-threads", action="store_true",
                    help="sample every thread (waits included), not only the thread holding the GIL")
    ap.add_argument("--out", type=Path, default=None, help="keep py-spy's collapsed stacks here")
    args = ap.parse_args()
    pyspy = litellm_ref.ensure_env().parent / "py-spy"
    with tempfile.TemporaryDirectory(prefix="modelyard-prof-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        sink = None if args.no_telemetry else stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
        cfg = targets.write_bench_config(tmp, sink_port=sink)
        port, pid = stack.enter_context(targets.modelyard_server(cfg, tmp))
        asyncio.run(load(port, args.concurrency, 2.0, args.reports))  # warm-up
        raw = args.out or tmp / "route.raw"
        cmd = [str(pyspy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--threads",
               "--duration", str(int(args.seconds)), "--output", str(raw)]
        cmd += [] if args.all_threads else ["--gil"]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        n = asyncio.run(load(port, args.concurrency, args.seconds, args.reports))
        _, err = spy.communicate(timeout=args.seconds + 30)
        if spy.returncode != 0:
            raise SystemExit(f"py-spy failed: {err.decode()[-1000:]}")
        print(f"{n} calls in {args.seconds:.0f} s at concurrency {args.concurrency}\n")
        print(top(raw, args.top))


if __name__ == "__main__":
    main()
