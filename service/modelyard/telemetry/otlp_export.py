"""The SDK's OTLP span exporters, sending the bytes `otlp_encode.encode_spans` writes.

Everything else is theirs: channel or session, TLS, headers, compression, timeouts, retries with backoff,
the request size limit and the exporter's own metrics. Each subclass replaces only the encoding step, and
redacts while encoding (redact.py's rules) unless told not to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_spans
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_spans
from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError, _is_request_too_large
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from modelyard.telemetry.otlp_encode import encode_spans, span_count

log = logging.getLogger("modelyard.telemetry.export")

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _PreSerializedTraceServiceStub:
    """TraceServiceStub whose Export takes the request already serialized: gRPC sends bytes as they are."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export = channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                                          response_deserializer=ExportTraceServiceResponse.FromString,
                                          _registered_method=True)


class GrpcSpanExporter(grpc_spans.OTLPSpanExporter):
    """OTLP/gRPC; takes the SDK exporter's arguments, and `redact`."""

    def __init__(self, *args: Any, redact: bool = True, **kwargs: Any) -> None:
        self._redact = redact
        super().__init__(*args, **kwargs)

    def _initialize_channel_and_stub(self) -> None:
        # Called on construction and again when the SDK reconnects after UNAVAILABLE.
        self._stub = _PreSerializedTraceServiceStub
        super()._initialize_channel_and_stub()

    def _count_data(self, data: Sequence[ReadableSpan]) -> int:
        return span_count(data)  # the exporter's own metrics count spans, not EncodedSpans pieces

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        # The stub above sends bytes; parsing them back into a message (upb, ~2 µs a span) would be waste.
        return encode_spans(data, redact=self._redact)


class HttpSpanExporter(http_spans.OTLPSpanExporter):
    """OTLP/HTTP (protobuf); takes the SDK exporter's arguments, and `redact`."""

    def __init__(self, *args: Any, redact: bool = True, **kwargs: Any) -> None:
        self._redact = redact
        super().__init__(*args, **kwargs)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        # The SDK's export step for step, with `encode_spans` in place of its encoder (it offers no narrower
        # hook); the size limit, metrics and the client (compression, timeout, retries) are its own.
        if self._shutdown:
            log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(span_count(spans)) as result:
            try:
                body = encode_spans(spans, redact=self._redact)
            except Exception as error:
                log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(body, self._max_request_size):
                log.warning("Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                            len(body), self._max_request_size)
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(body)} bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes.")
                return SpanExportResult.FAILURE
            sent = self._client.export(body)
            if not sent.success:
                result.error = sent.error
                result.error_attrs = (None if sent.status_code is None
                                      else {HTTP_RESPONSE_STATUS_CODE: sent.status_code})
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
