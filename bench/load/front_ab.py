"""A/B of the Rust front, driven by the native load generator: this checkout against a baseline, in
alternating rounds (A B, B A, ...) so the machine's drift falls on both. Per round and concurrency:
Routes/s (median of 3 runs), the server process's CPU per Route (user + system time over every Route it
served, warm-up included) and what it wrote per Route (/proc/PID/io wchar: the store's WAL and
checkpoints, logs). CPU and bytes per Route move far less with a noisy neighbour than Routes/s do.

    python -m bench.load.front_ab --baseline DIR [--concurrency 16,64] [--rounds 4] [--requests 3000]
    python -m bench.load.front_ab --telemetry-off-baseline      # the same package, telemetry off as B

DIR holds an earlier `modelyard` package with its built core (e.g. `git worktree add /tmp/base REV`,
then `cargo build --release --features python,front` there or copy a core built from REV into
/tmp/base/service/modelyard/_core.abi3.so); it runs with PYTHONPATH=DIR/service. SQLite store,
telemetry on (to a local OTLP sink) unless said otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.load import native_client, targets


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _measure(port: int, pid: int, concs: list[int], requests: int) -> dict[str, dict[str, float]]:
    out = {}
    for c in concs:
        cpu0, w0 = _cpu_s(pid), _written(pid)
        m = native_client.measure(port, native_client.ROUTE_METHOD, [c], requests, 3, 60)[str(c)]
        n = 3 * requests + native_client.WARMUP
        out[str(c)] = {"rps": round(m["rps"]), "p50_ms": m["p50_ms"],
                       "cpu_us_per_route": round((_cpu_s(pid) - cpu0) / n * 1e6, 1),
                       "kb_written_per_route": round((_written(pid) - w0) / n / 1024, 1)}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    concs = [int(c) for c in args.concurrency.split(",")]
    native_client.build()
    if args.telemetry_off_baseline:
        b: dict[str, Any] = {"label": "this checkout, telemetry off", "env": {}, "telemetry": False}
    else:
        service = str(Path(args.baseline).resolve() / "service")
        b = {"label": f"baseline {args.baseline}", "env": {"PYTHONPATH": service}, "telemetry": True}
    arms: dict[str, dict[str, Any]] = {"A": {"label": "this checkout", "env": {}, "telemetry": True}, "B": b}
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="modelyard-ab-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        sink = stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
        for r in range(args.rounds):
            for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                arm = arms[name]
                d = tmp / f"{name}{r}"
                d.mkdir()
                cfg = targets.write_bench_config(d, sink_port=sink if arm["telemetry"] else None, front="rust")
                with targets.modelyard_server(cfg, d, arm["env"]) as (port, pid):
                    rounds[name].append(_measure(port, pid, concs, args.requests))
                if not args.json:
                    print(name, json.dumps(rounds[name][-1]), flush=True)
    medians = {name: {str(c): {k: statistics.median(r[str(c)][k] for r in rounds[name])
                               for k in ("rps", "p50_ms", "cpu_us_per_route", "kb_written_per_route")}
                      for c in concs} for name in rounds}
    return {"arms": {k: v["label"] for k, v in arms.items()}, "rounds": rounds, "medians": medians}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="directory of an earlier checkout with its core built (arm B)")
    ap.add_argument("--telemetry-off-baseline", action="store_true",
                    help="arm B is this checkout with telemetry off (what telemetry costs)")
    ap.add_argument("--concurrency", default="16,64")
    ap.add_argument("--rounds", type=int, default=4, help="rounds per arm, alternating order")
    ap.add_argument("--requests", type=int, default=3000, help="Routes per run (3 runs per round)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (args.baseline or args.telemetry_off_baseline):
        ap.error("give --baseline DIR or --telemetry-off-baseline")
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return

    def cells(m: dict[str, float]) -> str:
        return (f"{m['rps']:.0f} Routes/s, {m['cpu_us_per_route']:.1f} us CPU,"
                f" {m['kb_written_per_route']:.1f} KB written")

    print(f"medians of {len(result['rounds']['A'])} rounds; A = {result['arms']['A']}, B = {result['arms']['B']}")
    for c, a in result["medians"]["A"].items():
        print(f"c={c}: A {cells(a)} per Route | B {cells(result['medians']['B'][c])} per Route")


if __name__ == "__main__":
    main()
