"""The Rust front's Route spans are built whole (front.py `_server_span`): they must be what the
SDK's tracer.start_span(...).end(...) makes of the same inputs."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelyard import front
from modelyard._core import scrub_bearer
from modelyard.config import OtlpConfig, TelemetryConfig
from modelyard.telemetry import rpc as telemetry_rpc
from modelyard.telemetry import semconv as sc
from modelyard.telemetry.otlp_encode import encode_spans
from modelyard.telemetry.redact import clean_value
from modelyard.telemetry.setup import setup
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import ServerThread, write_config
from tests.telemetry.receiver import GrpcReceiver, closed_endpoint

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


def _sent_span(raw: bytes) -> trace_pb2.Span:
    span = trace_pb2.Span.FromString(raw)
    span.span_id = b""
    span.start_time_unix_nano = span.end_time_unix_nano = 0
    return span


@pytest.mark.parametrize("traceparent", [SAMPLED, "", NOT_SAMPLED, "00-" + "e" * 32 + "-" + "f" * 16 + "-01-extra"])
def test_the_rust_front_sends_the_span_python_would_have_built(tmp_path: Path, traceparent: str) -> None:
    """A Route served on the Rust front reaches a real OTLP receiver as the span `_server_span` and
    `encode_spans` (redacting) make of the same Route: same ids, parent, flags, attributes in the same
    order, a bearer token in the task class scrubbed; a caller's unsampled trace sends none."""
    task_class = "fix/Bearer sk-live-123 now"
    with GrpcReceiver() as receiver:
        thread = ServerThread(write_config(tmp_path, **{
            "telemetry.enabled": True, "telemetry.otlp.endpoint": receiver.endpoint, "server.front": "rust"}))
        server = thread.start()
        try:
            md = [*auth("admin"), *([("traceparent", traceparent)] if traceparent else [])]
            with grpc.insecure_channel(server.address) as ch:
                d = router_pb2_grpc.RouterStub(ch).Route(router_pb2.RouteRequest(
                    request_id=uuid.uuid4().hex, job_id="job-span", task=types_pb2.TaskProfile(
                        role=types_pb2.ROLE_EXECUTOR, task_class=task_class, est_input_tokens=20_000,
                        est_output_tokens=1_500)), metadata=md, timeout=5)
            assert thread.server.front.stats()["served"] == 1  # the front served it, not Python
            tel = thread.server.telemetry
            if traceparent != NOT_SAMPLED:
                receiver.got.wait_for(lambda: any(s["name"] == front.ROUTE_METHOD for s in receiver.got.spans()))
        finally:
            thread.stop()
        got = [s for s in receiver.got.spans() if s["name"] == front.ROUTE_METHOD]
    if traceparent == NOT_SAMPLED:
        assert got == []
        return
    [sent] = got
    attrs = {**front._rpc_attributes(), **telemetry_rpc.route_attributes(
        tenant="acme", key_id="acme-admin", job_id="job-span", decision_id=d.decision_id, role="executor",
        task_class=task_class, attempt=1, model=d.model.model_id, provider=d.model.provider,
        upstream_model=d.model.upstream_model, fallbacks=[f.model_id for f in d.fallbacks],
        cost_usd=d.expected.cost_usd, success_probability=d.expected.success_probability,
        latency_ms=d.expected.latency_ms, exploration=d.exploration, sticky=d.sticky,
        budget_remaining_usd=d.budget_remaining_usd, reserved_usd=d.reserved_usd, replayed=False)}
    memory = InMemorySpanExporter()
    python = dataclasses.replace(tel, span_processor=SimpleSpanProcessor(memory))
    front._server_span(python, 1_000, 5_000, traceparent, attrs)
    [built] = memory.get_finished_spans()
    request = ExportTraceServiceRequest.FromString(encode_spans([built], redact=True))
    expected = _sent_span(request.resource_spans[0].scope_spans[0].spans[0].SerializeToString())
    actual = _sent_span(sent["raw"])
    if not traceparent or traceparent.endswith("-extra"):  # a new trace (the -extra header is refused)
        assert len(actual.trace_id) == 16 and actual.trace_id != bytes(16)
        actual.trace_id = expected.trace_id = b""
    assert actual == expected
    assert "sk-live-123" not in str(actual) and "[redacted]" in sent["attrs"][sc.MY_TASK_CLASS]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["b", "B", "e", "a", "r", "R", " ", "\t", "\x1c", "\u3000", "\x85", "x", "é",
                                 "-", "bearer ", "Bearer\t", "BEARER"]), max_size=20).map("".join))
def test_the_fronts_bearer_scrub_is_pythons(text: str) -> None:
    assert scrub_bearer(text, sc.REDACTED) == clean_value(text)


def test_a_sampler_the_front_cannot_apply_leaves_the_spans_to_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front, "describe_sampler", lambda _sampler: None)
    with GrpcReceiver() as receiver:
        thread = ServerThread(write_config(tmp_path, **{
            "telemetry.enabled": True, "telemetry.otlp.endpoint": receiver.endpoint, "server.front": "rust"}))
        server = thread.start()
        try:
            assert not thread.server.front._summed
            with grpc.insecure_channel(server.address) as ch:
                d = router_pb2_grpc.RouterStub(ch).Route(router_pb2.RouteRequest(
                    request_id=uuid.uuid4().hex, job_id="job-fallback", task=types_pb2.TaskProfile(
                        role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python")), metadata=auth("admin"), timeout=5)
            assert thread.server.front.stats()["served"] == 1
            receiver.got.wait_for(lambda: any(s["name"] == front.ROUTE_METHOD for s in receiver.got.spans()))
        finally:
            thread.stop()
    [span] = [s for s in receiver.got.spans() if s["name"] == front.ROUTE_METHOD]
    assert span["attrs"][sc.MY_DECISION_ID] == d.decision_id
