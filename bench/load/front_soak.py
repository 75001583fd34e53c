"""Soak of the Rust front and the Python service writing one SQLite store: rounds of 1,500 Routes
(served by the front) then 1,500 ReportOutcomes (settled by Python), at concurrency 1, 4, 16, 64 in
turn; prints each round's errors, then the server log's errors and `PRAGMA integrity_check`.

This is how a store corrupted by two copies of SQLite in one process was found (bench/README).

    python -m bench.load.front_soak [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc

from bench.load import targets
from bench.load.service_load import outcome, route_request
from modelyard.v1 import router_pb2_grpc

CALLS = 1500


async def soak(port: int, rounds: int) -> int:
    meta = targets.bearer()
    failed = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for n in range(rounds):
            tag, ids, errors = uuid.uuid4().hex[:12], {}, Counter[str]()
            concurrency = [1, 4, 16, 64][n % 4]
            gate = asyncio.Semaphore(concurrency)

            async def call(i: int, report: bool, tag: str = tag, ids: dict[int, str] = ids,
                           errors: Counter[str] = errors, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    try:
                        if report:
                            if i in ids:
                                await stub.ReportOutcome(outcome(ids[i], i), metadata=meta, timeout=20)
                        else:
                            ids[i] = (await stub.Route(route_request(tag, i), metadata=meta, timeout=20)).decision_id
                    except grpc.aio.AioRpcError as e:
                        errors[f"{'ReportOutcome' if report else 'Route'} {e.code().name}"] += 1

            start = time.perf_counter()
            await asyncio.gather(*(call(i, False) for i in range(CALLS)))
            await asyncio.gather(*(call(i, True) for i in range(CALLS)))
            failed += sum(errors.values())
            print(f"round {n} (concurrency {concurrency}): {time.perf_counter() - start:.1f} s,"
                  f" errors {dict(errors) or 0}", flush=True)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelyard-soak-") as td, contextlib.ExitStack() as stack:
        tmp = Path(td)
        sink = stack.enter_context(targets.grpc_helper(tmp, "sink"))[0]
        cfg = targets.write_bench_config(tmp, sink_port=sink, front="rust")
        with targets.modelyard_server(cfg, tmp) as (port, _):
            failed = asyncio.run(soak(port, args.rounds))
        logged = [line for line in (tmp / "modelyard.log").read_text().splitlines()
                  if "ERROR" in line or "malformed" in line]
        with contextlib.closing(sqlite3.connect(tmp / "modelyard.db")) as conn:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    print(f"failed calls: {failed}; error lines in the server log: {len(logged)}; integrity_check: {integrity}")
    for line in logged[:5]:
        print("  ", line)


if __name__ == "__main__":
    main()
