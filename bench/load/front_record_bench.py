"""CPU to record the telemetry of the Rust front's Routes the Python way (front.py `Front._record`, kept for
a sampler the front cannot apply; the default path is front/spans.rs), per Route:
spans built whole (`_server_span`) against the SDK's tracer.start_span path, same batches, same
process, interleaved runs. Exports go to a closed port (their cost is the exporter thread's).

    python -m bench.load.front_record_bench [--routes 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

from modelyard.config import OtlpConfig, TelemetryConfig
from modelyard.front import Front
from modelyard.telemetry.setup import setup
from tests.telemetry.receiver import closed_endpoint


def routed(n: int, offset: int) -> list[Any]:
    """What `RustFront.drain_routed` hands over: (who, decision, budgets, timing) per Route."""
    out = []
    for i in range(offset, offset + n):
        who = ("acme", "key-1", 2, f"class-{i % 10}", f"job-{i % 256}", 1)
        d = (f"dec-{i}", ("m-1", "prov", "up-m-1"), ["m-2", "m-3"], 0.01, 0.6, 1200.0, False, False, 10.0, 0.02)
        budgets = [("tenant", "acme", 1, 10.0), ("key", "key-1", 1, 5.0)]
        timing = (time.time_ns(), 500_000, "00-" + f"{i:032x}" + "-" + "b" * 16 + "-01", 0.0001, 0.0002)
        out.append((who, d, budgets, timing))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--routes", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tel = setup(TelemetryConfig(enabled=True, otlp=OtlpConfig("grpc", closed_endpoint(), None)))
    assert tel is not None
    paths = {"spans built whole": tel, "SDK start_span": dataclasses.replace(tel, span_processor=None)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    offset = 0
    for _ in range(args.runs + 1):  # the first round warms up
        for name, t in paths.items():
            batch = routed(args.routes, offset)
            offset += args.routes
            start = time.perf_counter()
            Front._record(t, batch)
            times[name].append((time.perf_counter() - start) / args.routes * 1e6)
    for name, us in times.items():
        print(f"{name}: median {statistics.median(us[1:]):.1f} us per Route over {args.runs} runs "
              f"({', '.join(f'{u:.1f}' for u in us[1:])})")
    tel.shutdown(1.0)


if __name__ == "__main__":
    main()
