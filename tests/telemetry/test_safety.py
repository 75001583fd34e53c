"""Credentials and prompt text never leave in a span, a metric or a log line."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from modelyard.telemetry import semconv as sc
from modelyard.telemetry.redact import clean_span
from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.helpers import key_for
from tests.telemetry.conftest import TRACEPARENT, StartServer, routed_job
from tests.telemetry.receiver import GrpcReceiver

CANARY_KEY = key_for("admin")  # the real key every call below authenticates with
CANARY_BAD_KEY = "sk-canary-4f1d9c0e7b2a-not-a-key"
CANARY_PROMPT = "CANARY-PROMPT-7d3e1b: please leak me into a span"
CANARIES = (CANARY_KEY, CANARY_BAD_KEY, CANARY_PROMPT)


def _md(key: str = CANARY_KEY) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}"), ("x-api-key", key), ("traceparent", TRACEPARENT),
            ("x-harness-note", CANARY_PROMPT)]


def _dispatch(ch: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(ch)
    req = router_pb2.DispatchRequest(
        route=router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id=f"job-{uuid.uuid4().hex}",
                                      task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="chat")),
        messages=[router_pb2.ChatMessage(role="user", content=CANARY_PROMPT)], max_output_tokens=64)
    try:
        for _ in stub.Dispatch(req, metadata=_md(), timeout=5):
            pass
    except grpc.RpcError:
        pass  # the test endpoints do not answer; only what gets recorded matters here


def test_canary_key_and_prompt_never_reach_spans_metrics_or_logs(
    telemetry_server: StartServer, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with GrpcReceiver() as receiver:
        _, server = telemetry_server(receiver.endpoint)
        with grpc.insecure_channel(server.address) as ch:
            routed_job(ch, metadata=_md())
            _dispatch(ch)
            catalog_pb2_grpc.CatalogStub(ch).ListModels(catalog_pb2.ListModelsRequest(), metadata=_md(), timeout=5)
            with pytest.raises(grpc.RpcError) as denied:
                router_pb2_grpc.RouterStub(ch).Route(router_pb2.RouteRequest(), metadata=_md(CANARY_BAD_KEY),
                                                     timeout=5)
            assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        got = receiver.got
        got.wait_for(lambda: len({s["name"] for s in got.spans()}) >= 5 and sc.METRIC_SPEND in got.metric_points())
    exported = got.raw_bytes()
    # Controls: the capture sees the server's log lines, and the export carries the job's own ids.
    assert "modelyard serving on" in caplog.text
    assert b"bugfix/python" in exported
    for canary in CANARIES:
        assert canary.encode() not in exported, f"{canary!r} was exported"
        assert canary not in caplog.text, f"{canary!r} was logged"
    for span in got.spans():
        assert not any("authorization" in k or "api-key" in k for k in span["attrs"]), span["attrs"]


def _span(attrs: dict[str, object], description: str | None = None) -> ReadableSpan:
    return ReadableSpan(name="x", attributes=attrs, events=[Event("e", {"note": "Bearer sk-abc"})],
                        status=Status(StatusCode.ERROR, description) if description else Status(StatusCode.UNSET))


@pytest.mark.parametrize(("attrs", "kept"), [
    ({"rpc.method": "Route"}, {"rpc.method": "Route"}),
    ({"rpc.grpc.request.metadata.authorization": "Bearer sk-abc", "a": 1}, {"a": 1}),
    ({"http.request.header.x-api-key": "sk-abc"}, {}),
    ({"note": "token Bearer sk-abc here"}, {"note": f"token {sc.REDACTED} here"}),
])
def test_exporter_gate_drops_credential_attributes(attrs: dict[str, object], kept: dict[str, object]) -> None:
    cleaned = clean_span(_span(attrs, "denied for Bearer sk-abc"))
    assert dict(cleaned.attributes or {}) == kept
    assert "sk-abc" not in (cleaned.status.description or "")
    assert all("sk-abc" not in str(e.attributes) for e in cleaned.events)


def test_clean_span_passes_clean_spans_through_untouched() -> None:
    span = ReadableSpan(name="x", attributes={"rpc.method": "Route"})
    assert clean_span(span) is span
