"""Route latency with telemetry off vs on (run on demand, never in CI).

    python bench/telemetry_overhead.py [--runs 5] [--calls 1000] [--baseline DIR]

Starts five real `modelyard serve` processes: telemetry off; and on, exporting to a live OTLP/gRPC
receiver (a process of its own) on loopback, to a slow one (answers every export after 1 s), to a
blackholed collector (accepts, never answers) and to a refused one (nothing listens). Each run
interleaves them in chunks of 100 calls, rotating the order (same client, same machine, same moments) and measures
Route round trips; the script prints p50/p99 per run and the medians across runs, and the p99 delta against
telemetry off. Target:
p99 within 1 ms or 5 % of telemetry off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.helpers import free_port, key_for, spawn_server, write_config
from tests.telemetry.receiver import Blackhole, GrpcReceiver, closed_endpoint

# The beta tenant has no budget windows, so thousands of unreported reservations never exhaust one.
CHUNK = 100  # calls per server before moving to the next (see run())
MD = [("authorization", f"Bearer {key_for('beta')}")]
TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python",
                             est_input_tokens=20_000, est_output_tokens=1_500)


def start(directory: Path, **overrides: object) -> tuple[subprocess.Popen[bytes], int]:
    """A real `modelyard serve` process of its own, so servers, client and collector never share a GIL."""
    directory.mkdir()
    port = free_port()
    return spawn_server(write_config(directory, **overrides), port), port


SLOW_S = 1.0  # the slow collector's delay per export: inside the exporter's 2 s timeout, so it succeeds


def receiver_process(delay: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    """A live OTLP/gRPC receiver in another process; it prints its endpoint, then serves until killed."""
    proc = subprocess.Popen([sys.executable, __file__, "--receiver", "--delay", str(delay)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().strip()


def serve_receiver(delay: float) -> None:
    with GrpcReceiver(delay=delay) as receiver:
        print(receiver.endpoint, flush=True)
        while True:
            time.sleep(3600)


def measure(stub: router_pb2_grpc.RouterStub, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        req = router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="bench-job", task=TASK)
        t0 = time.perf_counter()
        stub.Route(req, metadata=MD, timeout=5)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--delay", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a directory holding an earlier `modelyard` package: also run its servers (off and "
                         "on, live collector) in the same interleaved runs, for before/after figures")
    args = ap.parse_args()
    if args.receiver:
        serve_receiver(args.delay)
        return
    os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "1000")  # export often: the worst case for overhead
    collector, endpoint = receiver_process()
    slow, slow_endpoint = receiver_process(SLOW_S)
    procs: list[subprocess.Popen[bytes]] = [collector, slow]
    try:
        with tempfile.TemporaryDirectory() as tmp, Blackhole() as hole:
            root = Path(tmp)
            configs = {
                "off": {},
                "on (live collector)": {"telemetry.enabled": True, "telemetry.otlp.endpoint": endpoint},
                "on (slow collector)": {"telemetry.enabled": True, "telemetry.otlp.endpoint": slow_endpoint},
                "on (blackholed)": {"telemetry.enabled": True, "telemetry.otlp.endpoint": hole.endpoint},
                "on (refused)": {"telemetry.enabled": True, "telemetry.otlp.endpoint": closed_endpoint()},
            }
            if args.baseline is not None:
                configs["baseline off"] = {}
                configs["baseline on (live)"] = configs["on (live collector)"]
            ports = {}
            for i, (name, overrides) in enumerate(configs.items()):
                saved = os.environ.get("PYTHONPATH")
                if name.startswith("baseline"):  # the spawned server imports the earlier package first
                    os.environ["PYTHONPATH"] = str(args.baseline.resolve())
                try:
                    proc, ports[name] = start(root / str(i), **overrides)
                finally:
                    if saved is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = saved
                procs.append(proc)
            run(ports, args.runs, args.calls)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)


def run(ports: dict[str, int], runs: int, calls: int) -> None:
    channels = {name: grpc.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
    stubs = {name: router_pb2_grpc.RouterStub(ch) for name, ch in channels.items()}
    for stub in stubs.values():
        measure(stub, 200)  # warm-up: connections, caches, first exports
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ports}
    names = list(stubs)
    for i in range(runs):
        # Interleaved in chunks, the order rotating chunk by chunk: a burst of noise from the shared
        # machine lands on every server alike instead of on whichever one was being measured.
        lat: dict[str, list[float]] = {name: [] for name in names}
        for c in range(max(1, calls // CHUNK)):
            for name in names[c % len(names):] + names[:c % len(names)]:
                lat[name] += measure(stubs[name], CHUNK)
        for name in names:
            results[name].append((pct(lat[name], 0.5), pct(lat[name], 0.99)))
            print(f"run {i + 1}  {name:<20} p50 {results[name][-1][0]:.3f} ms  p99 {results[name][-1][1]:.3f} ms")
    print(f"\nmedians over {runs} runs x {calls} Route calls")
    base50 = statistics.median(r[0] for r in results["off"])
    base99 = statistics.median(r[1] for r in results["off"])
    for name, rows in results.items():
        p50 = statistics.median(r[0] for r in rows)
        p99 = statistics.median(r[1] for r in rows)
        print(f"  {name:<20} p50 {p50:.3f} ms ({p50 - base50:+.3f})  p99 {p99:.3f} ms "
              f"({p99 - base99:+.3f} ms, {100 * (p99 - base99) / base99:+.1f} %)")
    for ch in channels.values():
        ch.close()


if __name__ == "__main__":
    main()
