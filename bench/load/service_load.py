"""Service load benchmark: modelyard Route + ReportOutcome over gRPC vs a bare echo server and LiteLLM.

Spawns each server as a subprocess on a free loopback port, drives it with the same bounded async
load generator at each concurrency, and prints p50/p99 and requests/s (medians of >= 3 runs).
Run from the repo root: python -m bench.load.service_load [--store sqlite|redis] [--json] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from bench.load import litellm_ref, native_client, targets
from bench.load.echo_server import ECHO_METHOD
from bench.load.loadgen import Summary, median_runs, run_load
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2

TASK_CLASSES = [f"bench-class-{i}" for i in range(20)]
WARMUP = 200


def route_request(tag: str, i: int) -> router_pb2.RouteRequest:
    return router_pb2.RouteRequest(
        request_id=f"{tag}-{i}", job_id=f"{tag}-job-{i % 64}",
        task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class=TASK_CLASSES[i % len(TASK_CLASSES)],
                                   est_input_tokens=12_000, est_output_tokens=800),
    )


def outcome(decision_id: str, i: int) -> router_pb2.OutcomeReport:
    return router_pb2.OutcomeReport(
        decision_id=decision_id,
        status=types_pb2.OUTCOME_STATUS_SUCCESS if i % 4 else types_pb2.OUTCOME_STATUS_FAILURE,
        usage=types_pb2.Usage(input_tokens=11_000, output_tokens=700), latency_ms=1500.0 + i % 300,
    )


async def _repeat(runs: int, once: Callable[[], Any]) -> Summary:
    return median_runs([await once() for _ in range(runs)])


async def measure_modelyard(port: int, concs: list[int], requests: int, runs: int, limit: float) -> dict[str, Any]:
    """Per concurrency: a Route phase (collecting decision ids), then ReportOutcome for each decision."""
    meta = targets.bearer()
    out: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for c in concs:
            route_runs, report_runs = [], []
            for run in range(runs + 1):  # run 0 is a warm-up at this concurrency, not reported
                tag = uuid.uuid4().hex[:12]
                ids: dict[int, str] = {}
                n = WARMUP if run == 0 else requests

                async def route(i: int, tag: str = tag, ids: dict[int, str] = ids) -> None:
                    ids[i] = (await stub.Route(route_request(tag, i), metadata=meta, timeout=10)).decision_id

                async def report(i: int, ids: dict[int, str] = ids) -> None:
                    await stub.ReportOutcome(outcome(ids[i], i), metadata=meta, timeout=10)

                r = await run_load(route, concurrency=c, requests=n, time_limit_s=limit)
                order = sorted(ids)
                s = await run_load(lambda j, order=order: report(order[j]), concurrency=c,
                                   requests=len(order), time_limit_s=limit)
                if run:
                    route_runs.append(r)
                    report_runs.append(s)
            out[str(c)] = {"route": median_runs(route_runs).as_dict(), "report": median_runs(report_runs).as_dict()}
    return out


async def measure_calls(
    make_call: Callable[[str], Callable[[int], Awaitable[None]]], concs: list[int], requests: int, runs: int,
    limit: float,
) -> dict[str, dict[str, float]]:
    """Per concurrency: a warm-up run, then `runs` runs of `requests` calls of `make_call(tag)` (a fresh
    tag per run, so request ids never repeat); the median summary."""
    out: dict[str, dict[str, float]] = {}
    for c in concs:
        summaries = []
        for run in range(runs + 1):
            call = make_call(uuid.uuid4().hex[:12])
            s = await run_load(call, concurrency=c, requests=WARMUP if run == 0 else requests, time_limit_s=limit)
            if run:
                summaries.append(s)
        out[str(c)] = median_runs(summaries).as_dict()
    return out


async def measure_echo(port: int, concs: list[int], requests: int, runs: int, limit: float) -> dict[str, Any]:
    """The same client work (build + serialize a RouteRequest) against the bare echo server."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        echo = ch.unary_unary(ECHO_METHOD, request_serializer=router_pb2.RouteRequest.SerializeToString,
                              response_deserializer=router_pb2.RouteRequest.FromString)

        def make_call(tag: str) -> Callable[[int], Awaitable[None]]:
            async def call(i: int) -> None:
                await echo(route_request(tag, i), metadata=targets.bearer(), timeout=10)
            return call

        medians = await measure_calls(make_call, concs, requests, runs, limit)
    return {c: {"echo": m} for c, m in medians.items()}


def add_run_options(ap: argparse.ArgumentParser, *, concurrency: str, requests: int) -> None:
    """The options every load benchmark here takes; `check_runs` enforces the medians rule."""
    ap.add_argument("--concurrency", default=concurrency)
    ap.add_argument("--requests", type=int, default=requests, help="calls per run per concurrency (bounded)")
    ap.add_argument("--runs", type=int, default=3, help="runs per concurrency; medians are reported (>= 3)")
    ap.add_argument("--limit", type=float, default=60.0, help="seconds a single run may take at most")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")


def check_runs(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.runs < 3:
        ap.error("--runs must be at least 3 (medians of 3 or more runs are reported)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    concs = [int(c) for c in args.concurrency.split(",")]
    if args.native_client:
        native_client.build()
    result: dict[str, Any] = {"concurrency": concs, "requests_per_run": args.requests, "runs": args.runs,
                              "store": args.store, "telemetry": not args.no_telemetry, "notes": []}
    with tempfile.TemporaryDirectory(prefix="modelyard-load-") as td:
        tmp = Path(td)
        with contextlib.ExitStack() as stack:
            sink = None if args.no_telemetry else stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
            env = {}
            if args.store == "redis":
                cfg = targets.write_bench_config(tmp, store="redis", sink_port=sink)
                env = {"MODELYARD_BENCH_REDIS_URL": "redis://127.0.0.1:1/0"}
                with _env(env):
                    reason = targets.redis_store_available(cfg)
                if reason:
                    result["notes"].append(f"SKIPPED modelyard/redis: the Redis store is not available: {reason}")
                    cfg = None
                else:
                    env["MODELYARD_BENCH_REDIS_URL"] = stack.enter_context(targets.redis_server(tmp))
            else:
                cfg = targets.write_bench_config(tmp, sink_port=sink)
            if cfg is not None:
                port, pid = stack.enter_context(targets.modelyard_server(cfg, tmp, env))
                result["modelyard"] = asyncio.run(measure_modelyard(port, concs, args.requests, args.runs, args.limit))
                result["modelyard_rss_mb"] = round(targets.rss_mb(pid), 1)
                if args.rust_front:  # the same config, store and sink, right after
                    rdir = tmp / "rust-front"
                    rdir.mkdir()
                    rcfg = targets.write_bench_config(rdir, store=args.store, sink_port=sink, front="rust")
                    with targets.modelyard_server(rcfg, rdir, env) as (rport, rpid):
                        result["rust_front"] = asyncio.run(
                            measure_modelyard(rport, concs, args.requests, args.runs, args.limit))
                        if args.native_client:
                            result["native"] = {"rust_front": native_client.measure(
                                rport, native_client.ROUTE_METHOD, concs, args.requests, args.runs, args.limit)}
                        result["rust_front_rss_mb"] = round(targets.rss_mb(rpid), 1)
                if args.baseline is not None:  # an earlier package, same config, store and sink, right after
                    base = tmp / "baseline"
                    base.mkdir()
                    bcfg = targets.write_bench_config(base, store=args.store, sink_port=sink)
                    benv = {**env, "PYTHONPATH": str(args.baseline.resolve())}
                    with targets.modelyard_server(bcfg, base, benv) as (bport, _):
                        result["baseline"] = asyncio.run(
                            measure_modelyard(bport, concs, args.requests, args.runs, args.limit))
        with targets.grpc_helper(tmp, "echo") as (port, _):
            result["echo"] = asyncio.run(measure_echo(port, concs, args.requests, args.runs, args.limit))
            if args.native_client:
                result.setdefault("native", {})["echo"] = native_client.measure(
                    port, ECHO_METHOD, concs, args.requests, args.runs, args.limit)
    if not args.no_litellm:
        # The first strategy is the reference the targets are read against; the others are shown.
        strategies = [s for s in args.litellm_strategies.split(",") if s]
        result["litellm_strategies"] = {
            s: litellm_ref.measure(concs, args.litellm_requests, args.runs, result["notes"], strategy=s)
            for s in strategies}
        result["litellm"] = result["litellm_strategies"][strategies[0]]
    return result


@contextlib.contextmanager
def _env(values: dict[str, str]):  # type: ignore[no-untyped-def]
    import os

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _row(name: str, c: str, s: dict[str, float], echo: dict[str, float]) -> str:
    return (f"| {name} | {c} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['rps'] / echo['rps']:.2f} | {s['p50_ms'] / echo['p50_ms']:.2f} |")


def table(result: dict[str, Any]) -> str:
    rows = ["| target | conc | req/s | p50 ms | p99 ms | req/s ÷ echo | p50 ÷ echo |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for c in map(str, result["concurrency"]):
        echo = result["echo"][c]["echo"]
        for name, rpc in (("modelyard Route", "route"), ("modelyard ReportOutcome", "report")):
            if "modelyard" in result:
                rows.append(_row(f"{name} ({result['store']})", c, result["modelyard"][c][rpc], echo))
            if "baseline" in result:
                rows.append(_row(f"{name} ({result['store']}, baseline)", c, result["baseline"][c][rpc], echo))
            if "rust_front" in result:
                rows.append(_row(f"{name} ({result['store']}, Rust front)", c, result["rust_front"][c][rpc], echo))
        rows.append(_row("bare grpc.aio echo", c, echo, echo))
        for strategy, by_conc in (result.get("litellm_strategies") or {"": result.get("litellm", {})}).items():
            lite = by_conc.get(c)
            if lite:
                rows.append(_row(f"LiteLLM Router (in-process{', ' + strategy if strategy else ''})", c, lite, echo))
        native = result.get("native", {})
        if "rust_front" in native:  # against the echo measured by the same native client
            nat_echo = native["echo"][c]
            rows.append(_row(f"modelyard Route ({result['store']}, Rust front), native client", c,
                             native["rust_front"][c], nat_echo))
            rows.append(_row("bare grpc.aio echo, native client", c, nat_echo, nat_echo))
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_run_options(ap, concurrency="1,4,16,64", requests=2000)
    ap.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    ap.add_argument("--no-telemetry", action="store_true", help="run the server with telemetry off")
    ap.add_argument("--no-rust-front", dest="rust_front", action="store_false",
                    help="skip the second server with server.front: rust (measured by default)")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM reference")
    ap.add_argument("--native-client", action="store_true",
                    help="also drive the Rust-front server and the echo with the native load generator"
                         " (bench/load/native_client.py; rows ÷ the echo measured the same way)")
    ap.add_argument("--litellm-requests", type=int, default=500)
    ap.add_argument("--litellm-strategies", default="simple-shuffle",
                    help="LiteLLM routing_strategy values to measure, comma-separated; the first is the"
                         " reference (simple-shuffle: the cheapest per call; cost-based-routing: picks by"
                         " price, the selection closest to modelyard's)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a directory holding an earlier `modelyard` package: measure it too, same run")
    args = ap.parse_args()
    check_runs(ap, args)
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    for note in result["notes"]:
        print(note, file=sys.stderr)
    print(table(result))
    if "modelyard_rss_mb" in result:
        print(f"\nmodelyard server VmRSS after the run: {result['modelyard_rss_mb']} MB")


if __name__ == "__main__":
    main()
