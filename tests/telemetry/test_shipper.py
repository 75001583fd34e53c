"""The span shipper (telemetry/shipper.py) exports the Rust front's encoded spans as the SDK's batch
processor exports its own: bounded batches and queue, oldest dropped first, everything sent on shutdown."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, sampling
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from modelyard import front
from modelyard.telemetry.otlp_encode import EncodedSpans, encode_spans, span_count
from modelyard.telemetry.shipper import SpanShipper

RESOURCE = Resource.create({"service.name": "shipper-test"})
SCOPE = InstrumentationScope("modelyard", "", None)


def _piece(first: int, count: int) -> bytes:
    """`count` ScopeSpans.spans fields, span i named str(i)."""
    out = b""
    for i in range(first, first + count):
        name = str(i).encode()
        body = b"\x2a" + bytes([len(name)]) + name
        out += b"\x12" + bytes([len(body)]) + body
    return out


class Recording(SpanExporter):
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.gate is not None:
            self.gate.wait(5)
        request = ExportTraceServiceRequest.FromString(encode_spans(spans))
        [rs] = request.resource_spans
        assert {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"] == "shipper-test"
        self.batches.append([s.name for ss in rs.scope_spans for s in ss.spans])
        return SpanExportResult.SUCCESS


def test_pieces_go_out_in_batches_of_at_most_max_batch_in_order() -> None:
    exporter = Recording()
    shipper = SpanShipper(exporter, RESOURCE, SCOPE, redact=True, max_queue=1000, max_batch=10, delay_s=60)
    first = 0
    for count in (4, 4, 4, 10, 3):
        shipper.put(_piece(first, count), count)
        first += count
    assert shipper.force_flush(5)
    shipper.shutdown(5)
    assert all(len(b) <= 10 for b in exporter.batches)
    assert [n for b in exporter.batches for n in b] == [str(i) for i in range(first)]
    assert shipper.exported == first and shipper.dropped == 0


def test_a_full_queue_drops_the_oldest_and_shutdown_sends_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    exporter = Recording(gate)
    shipper = SpanShipper(exporter, RESOURCE, SCOPE, redact=True, max_queue=8, max_batch=4, delay_s=0.01)
    shipper.put(_piece(0, 4), 4)  # taken by the thread, which then waits at the gate
    for _ in range(100):
        if not shipper._queue:
            break
        threading.Event().wait(0.01)
    for first in (4, 8, 12, 16):  # 16 spans behind a queue of 8: the first two pieces are dropped
        shipper.put(_piece(first, 4), 4)
    assert shipper.dropped == 8
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1  # warned once, not per piece
    gate.set()
    shipper.shutdown(5)
    assert [n for b in exporter.batches for n in b] == [str(i) for i in (*range(4), *range(12, 20))]
    shipper.put(_piece(20, 1), 1)  # after shutdown: dropped, counted
    assert shipper.dropped == 9


def test_encoded_pieces_are_counted_as_their_spans() -> None:
    pieces = [EncodedSpans(_piece(0, 3), 3, RESOURCE, SCOPE), ReadableSpan(name="x", resource=RESOURCE)]
    assert span_count(pieces) == 4


def test_the_front_applies_the_sdks_own_samplers_and_leaves_others_to_python() -> None:
    parent_ratio = sampling.ParentBasedTraceIdRatio(0.25)
    assert front.describe_sampler(parent_ratio) == {
        "kind": "parent", "root": {"kind": "ratio", "bound": parent_ratio._root.bound},  # type: ignore[attr-defined]
        "remote_sampled": {"kind": "on"}, "remote_not_sampled": {"kind": "off"}}
    assert front.describe_sampler(sampling.ALWAYS_OFF) == {"kind": "off"}

    class Custom(sampling.ParentBased):
        def should_sample(self, *args: object, **kwargs: object) -> sampling.SamplingResult:
            return sampling.SamplingResult(sampling.Decision.DROP)

    assert front.describe_sampler(Custom(sampling.ALWAYS_ON)) is None
