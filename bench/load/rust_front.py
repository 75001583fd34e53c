"""What a Rust gRPC front would buy: Route through tonic against the Python service and both echo floors.

Builds `bench/rust_front` (a tonic server over the same `router_core` crate; see its main.rs for what
it does and leaves out), then, with the same client, config and requests, measures Route on:
  * the bare grpc.aio echo (the floor issue 8's ratios are taken against),
  * tonic answering Route with an empty decision (the Rust gRPC floor),
  * the Rust front: auth + routing core + SQLite reservation, no telemetry,
  * the modelyard server (Python) with telemetry off, and with telemetry on (to a local sink).
Every figure is a median of `--runs` runs after a warm-up. The client is the same Python load
generator for all, so above a few thousand requests/s it, not the server, is the limit.
Run from the repo root: python -m bench.load.rust_front [--requests 1500] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import yaml

from bench.load import targets
from bench.load.service_load import add_run_options, check_runs, measure_calls, measure_echo, route_request
from modelyard.v1 import router_pb2_grpc

CRATE = Path(__file__).resolve().parents[1] / "rust_front"


def build() -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", str(CRATE / "Cargo.toml")],
                   check=True)
    return CRATE / "target" / "release" / "rust_front_bench", time.monotonic() - started


def front_inputs(cfg_path: Path, tmp: Path) -> tuple[Path, Path]:
    """The core catalog the Python service would build from the config, and its API keys."""
    from modelyard.config import load_config
    from modelyard.config.core_catalog import to_core_catalog

    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps(to_core_catalog(load_config(cfg_path))))
    raw = yaml.safe_load(cfg_path.read_text())
    keys = [{"sha256": k["sha256"], "tenant": t["id"], "key_id": k["id"], "scopes": k["scopes"]}
            for t in raw["tenants"] for k in t["keys"]]
    keys_path = tmp / "keys.json"
    keys_path.write_text(json.dumps(keys))
    return catalog, keys_path


@contextlib.contextmanager
def rust_front(binary: Path, mode: str, catalog: Path, keys: Path, tmp: Path) -> Iterator[int]:
    port = targets.free_port()
    log = tmp / f"rust-{mode}.log"
    args = [str(binary), "--mode", mode, "--listen", f"127.0.0.1:{port}", "--catalog", str(catalog),
            "--keys", str(keys), "--db", str(tmp / f"rust-{mode}.db")]
    with targets.process(args, log) as p:
        targets.wait_ready(port, p, log)
        yield port


async def measure_route(port: int, concs: list[int], requests: int, runs: int, limit: float) -> dict[str, Any]:
    meta = targets.bearer()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)

        def make_call(tag: str) -> Callable[[int], Awaitable[None]]:
            async def call(i: int) -> None:
                await stub.Route(route_request(tag, i), metadata=meta, timeout=10)
            return call

        return await measure_calls(make_call, concs, requests, runs, limit)


def run(args: argparse.Namespace) -> dict[str, Any]:
    concs = [int(c) for c in args.concurrency.split(",")]
    binary, build_s = build()
    result: dict[str, Any] = {"concurrency": concs, "requests_per_run": args.requests, "runs": args.runs,
                              "build_s": round(build_s, 1), "targets": {}}
    m = (concs, args.requests, args.runs, args.limit)
    with tempfile.TemporaryDirectory(prefix="modelyard-rust-front-") as td:
        tmp = Path(td)
        with targets.grpc_helper(tmp, "echo") as (port, _):
            echo = asyncio.run(measure_echo(port, *m))
            result["targets"]["bare grpc.aio echo"] = {c: v["echo"] for c, v in echo.items()}
        cfg = targets.write_bench_config(tmp)
        catalog, keys = front_inputs(cfg, tmp)
        with rust_front(binary, "echo", catalog, keys, tmp) as port:
            result["targets"]["tonic echo (Route, empty answer)"] = asyncio.run(measure_route(port, *m))
        with rust_front(binary, "route", catalog, keys, tmp) as port:
            result["targets"]["Rust front Route (auth, core, SQLite reserve; no telemetry)"] = asyncio.run(
                measure_route(port, *m))
        with targets.modelyard_server(cfg, tmp) as (port, _):
            result["targets"]["modelyard Route (Python, telemetry off)"] = asyncio.run(measure_route(port, *m))
        with targets.grpc_helper(tmp, "sink") as (sink, _):
            on = tmp / "telemetry-on"
            on.mkdir()
            cfg_on = targets.write_bench_config(on, sink_port=sink)
            with targets.modelyard_server(cfg_on, on) as (port, _):
                result["targets"]["modelyard Route (Python, telemetry on)"] = asyncio.run(measure_route(port, *m))
    return result


def table(result: dict[str, Any]) -> str:
    rows = ["| target | conc | req/s | p50 ms | p99 ms | req/s ÷ grpc.aio echo | p50 ÷ grpc.aio echo |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    echo = result["targets"]["bare grpc.aio echo"]
    for c in map(str, result["concurrency"]):
        for name, per_c in result["targets"].items():
            s, e = per_c[c], echo[c]
            rows.append(f"| {name} | {c} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                        f"{s['rps'] / e['rps']:.2f} | {s['p50_ms'] / e['p50_ms']:.2f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_run_options(ap, concurrency="1,16", requests=1500)
    args = ap.parse_args()
    check_runs(ap, args)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(table(result))
    print(f"\n(rust_front built in {result['build_s']} s; {args.runs} runs of {args.requests} calls per row, medians)",
          file=sys.stdout)


if __name__ == "__main__":
    main()
