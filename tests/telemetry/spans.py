"""Realistic finished spans, for the encoder's tests and bench/otlp_encode_bench.py."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from modelyard.telemetry import semconv as sc

SCHEMA_URL = f"https://opentelemetry.io/schemas/{sc.SEMCONV_VERSION}"


def provider(resource: Resource | None = None, limits: SpanLimits | None = None,
             ) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=resource or Resource.create({"service.name": "modelyard",
                                                               "service.version": "0.1.0"}),
                        span_limits=limits)
    tp.add_span_processor(SimpleSpanProcessor(memory))
    return tp, memory


def remote_parent(i: int = 0) -> trace.Context:
    """The context a harness's traceparent gives a server span."""
    ctx = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736 + i, 0x00F067AA0BA902B7, is_remote=True,
                      trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def route_spans(n: int) -> Sequence[ReadableSpan]:
    """Route server spans as the service records them: the gRPC instrumentation's rpc.* attributes and
    everything `telemetry.rpc.on_route` sets, under the harness's remote parent."""
    tp, memory = provider()
    tracer = tp.get_tracer("modelyard", schema_url=SCHEMA_URL)
    for i in range(n):
        with tracer.start_as_current_span("/modelyard.v1.Router/Route", kind=trace.SpanKind.SERVER,
                                          context=remote_parent(i)) as span:
            span.set_attributes({"rpc.system": "grpc", "rpc.grpc.status_code": 0, "rpc.method": "Route",
                                 "rpc.service": "modelyard.v1.Router", "net.peer.ip": "127.0.0.1",
                                 "net.peer.port": str(40000 + i % 20000)})
            span.set_attributes({
                sc.MY_TENANT: "acme", sc.MY_KEY_ID: "acme-admin", sc.MY_JOB_ID: f"job-{i:032x}",
                sc.MY_DECISION_ID: f"d{i:031x}", sc.MY_ROLE: "executor", sc.MY_TASK_CLASS: "bugfix/python",
                sc.MY_ATTEMPT: 1 + i % 3, sc.MY_MODEL: "deepseek-v3.2", sc.MY_PROVIDER: "deepseek",
                sc.GEN_AI_REQUEST_MODEL: "deepseek-reasoner",
                sc.MY_FALLBACKS: ["qwen3-coder", "glm-4.6", "kimi-k2", "gpt-5-mini", "claude-haiku-4.5"],
                sc.MY_EXPECTED_COST: 0.0123 + i * 1e-6, sc.MY_EXPECTED_SUCCESS: 0.61,
                sc.MY_EXPECTED_LATENCY: 1234.5 + i, sc.MY_EXPLORATION: i % 10 == 0, sc.MY_STICKY: False,
                sc.MY_BUDGET_REMAINING: 12.3 - i * 1e-3, sc.MY_RESERVED: 0.02, sc.MY_REPLAYED: False,
            })
    tp.shutdown()
    return memory.get_finished_spans()
