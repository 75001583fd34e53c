"""The exporters send otlp_encode's bytes over the SDK's own gRPC and HTTP transports, redacted."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from modelyard.telemetry.otlp_export import GrpcSpanExporter, HttpSpanExporter
from modelyard.telemetry.redact import clean_span
from modelyard.telemetry.setup import Otlp, _span_exporter
from tests.telemetry.receiver import GrpcReceiver, HttpReceiver
from tests.telemetry.spans import provider, route_spans


def _spans() -> Sequence[ReadableSpan]:
    tp, memory = provider()
    with tp.get_tracer("t").start_as_current_span("dirty") as s:
        s.set_attributes({"rpc.grpc.request.metadata.authorization": "Bearer sk-secret", "note": "Bearer sk-2"})
    tp.shutdown()
    return [*route_spans(20), *memory.get_finished_spans()]


def _expected(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    return sdk_encode_spans([clean_span(s) for s in spans])


def test_grpc_exporter_sends_what_the_sdk_would_send_redacted() -> None:
    spans = _spans()
    with GrpcReceiver() as receiver:
        exporter = GrpcSpanExporter(endpoint=receiver.endpoint, headers={"x-tenant": "t1"}, timeout=5)
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
            exporter._initialize_channel_and_stub()  # as the SDK does after UNAVAILABLE: still sends bytes
            assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE  # shut down
    got = receiver.got
    assert got.traces == [_expected(spans), _expected(spans[:1])]
    assert got.headers[0]["x-tenant"] == "t1"
    assert b"sk-secret" not in got.raw_bytes() and b"sk-2" not in got.raw_bytes()


def test_grpc_exporter_with_gzip() -> None:
    spans = route_spans(3)
    with GrpcReceiver() as receiver:
        exporter = GrpcSpanExporter(endpoint=receiver.endpoint, compression=grpc.Compression.Gzip, timeout=5)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert receiver.got.traces == [sdk_encode_spans(spans)]


def test_http_exporter_sends_what_the_sdk_would_send_redacted() -> None:
    spans = _spans()
    with HttpReceiver() as receiver:
        exporter = HttpSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", headers={"x-tenant": "t1"},
                                    timeout=5)
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE  # shut down
    got = receiver.got
    assert got.traces == [_expected(spans)]
    assert got.headers[0]["x-tenant"] == "t1"
    assert got.headers[0]["content-type"] == "application/x-protobuf"


def test_http_exporter_keeps_the_request_size_limit() -> None:
    with HttpReceiver() as receiver:
        exporter = HttpSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", max_request_size=1000)
        assert exporter.export(route_spans(5)) is SpanExportResult.FAILURE  # ~5 kB
        assert exporter.export(route_spans(1)[:0]) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert [len(r.resource_spans) for r in receiver.got.traces] == [0]


def test_http_exporter_reports_a_batch_it_cannot_encode() -> None:
    exporter = HttpSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    assert exporter.export([ReadableSpan(name="no context")]) is SpanExportResult.FAILURE
    exporter.shutdown()


@pytest.mark.parametrize(("protocol", "kind"), [("grpc", GrpcSpanExporter), ("http/protobuf", HttpSpanExporter)])
def test_setup_builds_the_redacting_exporters(protocol: str, kind: type[GrpcSpanExporter | HttpSpanExporter],
                                              ) -> None:
    exporter = _span_exporter(Otlp(protocol, "http://127.0.0.1:9", {}))
    exporter.shutdown()
    assert isinstance(exporter, kind) and type(exporter) is kind
    assert exporter._redact
