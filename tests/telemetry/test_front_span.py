"""The Rust front's Route spans are built whole (front.py `_server_span`): they must be what the
SDK's tracer.start_span(...).end(...) makes of the same inputs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelyard import front
from modelyard.config import OtlpConfig, TelemetryConfig
from modelyard.telemetry.setup import setup
from tests.telemetry.receiver import closed_endpoint

ATTRS = {"rpc.system": "grpc", "modelyard.attempt": 2, "modelyard.fallbacks": ["b", "c"],
         "modelyard.expected.cost_usd": 0.25, "modelyard.exploration": True}
SAMPLED = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
NOT_SAMPLED = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"


def _comparable(span: Any) -> dict[str, Any]:
    out = json.loads(span.to_json())
    out["context"].pop("span_id")
    out["scope"] = span.instrumentation_scope
    out["attribute_types"] = {k: type(v) for k, v in span.attributes.items()}
    if not out["parent_id"]:
        out["context"].pop("trace_id")  # a new trace: its id is random
    return out


def test_a_front_span_is_the_span_the_sdk_would_have_made() -> None:
    tel = setup(TelemetryConfig(enabled=True, otlp=OtlpConfig("grpc", closed_endpoint(), None)))
    assert tel is not None and tel.span_processor is not None
    memory = InMemorySpanExporter()
    into_memory = SimpleSpanProcessor(memory)
    tel.tracer_provider.add_span_processor(into_memory)  # the SDK path's spans
    fast = dataclasses.replace(tel, span_processor=into_memory)
    sdk = dataclasses.replace(tel, span_processor=None)
    try:
        for traceparent in (SAMPLED, ""):
            front._server_span(fast, 1_000, 5_000, traceparent, dict(ATTRS))
            front._server_span(sdk, 1_000, 5_000, traceparent, dict(ATTRS))
            built, made = memory.get_finished_spans()[-2:]
            assert _comparable(built) == _comparable(made)
            assert built.parent is not None if traceparent else built.parent is None
        memory.clear()
        for t in (fast, sdk):  # the caller did not sample its trace: neither path exports a span
            front._server_span(t, 1_000, 5_000, NOT_SAMPLED, dict(ATTRS))
        assert memory.get_finished_spans() == ()
    finally:
        tel.shutdown(1.0)
