"""Per-span cost of encoding spans for OTLP export: the SDK's encoder vs modelyard's (run on demand, never in CI).

    python bench/otlp_encode_bench.py [--spans 512] [--runs 7]

Builds realistic Route spans (the gRPC instrumentation's rpc.* attributes, everything
`telemetry.rpc.on_route` sets, a remote parent from the harness's traceparent), then in each run times
every encoder once over the whole batch, interleaved, so all see the same machine at the same moment.
Prints the median µs per span over the runs. The "path" rows are what the exporter does per batch:
before, redact.py's `clean_span` on every span (as the RedactingSpanExporter wrapper did), then the SDK's
encoder; now, `otlp_encode.encode_spans(redact=True)`. The last row is what parsing the bytes back into a
message would cost (the gRPC exporter does not need to: its stub sends the bytes as they are).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelyard.telemetry.otlp_encode import encode_spans
from modelyard.telemetry.redact import clean_span
from tests.telemetry.spans import route_spans

SDK = "SDK encode_spans + SerializeToString"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=512, help="spans per batch (the batch processor's default)")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    spans = route_spans(args.spans)
    fast = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(fast) == sdk_encode_spans(spans), "the encoders disagree"
    cases: dict[str, Callable[[], object]] = {
        SDK: lambda: sdk_encode_spans(spans).SerializeToString(),
        "otlp_encode.encode_spans": lambda: encode_spans(spans),
        "old path: clean_span + SDK encoder": lambda: sdk_encode_spans([clean_span(s) for s in spans])
        .SerializeToString(),
        "new path: encode_spans(redact=True)": lambda: encode_spans(spans, redact=True),
        "ExportTraceServiceRequest.FromString": lambda: ExportTraceServiceRequest.FromString(fast),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append((time.perf_counter() - started) / len(spans) * 1e6)
    print(f"{len(spans)} Route spans, {len(fast) / len(spans):.0f} bytes each; median of {args.runs} runs")
    sdk = statistics.median(times[SDK])
    for name, per_span in times.items():
        median = statistics.median(per_span)
        print(f"  {name:<40} {median:8.1f} µs/span  ({sdk / median:5.1f}x the SDK's speed)")


if __name__ == "__main__":
    main()
