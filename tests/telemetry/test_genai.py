"""The GenAI client span helper: `chat {model}` spans, usage and cost, and the two GenAI metrics with their buckets."""

from __future__ import annotations

import pytest

from modelyard.config import OtlpConfig, TelemetryConfig
from modelyard.telemetry import genai, rpc
from modelyard.telemetry import semconv as sc
from modelyard.telemetry.setup import setup
from tests.telemetry.receiver import Collected, GrpcReceiver

PROMPT = [{"role": "user", "content": "GENAI-PROMPT-91c2"}]


def _one_call(endpoint: str, record_content: bool, fail: bool = False) -> None:
    tel = setup(TelemetryConfig(enabled=True, otlp=OtlpConfig(endpoint=endpoint), record_content=record_content))
    assert tel is not None
    with rpc.bound(tel):
        try:
            with genai.chat_span("testco", "up-model", server_address="api.example.com",
                                 attributes={sc.MY_DECISION_ID: "d-1"}, input_messages=PROMPT) as call:
                if fail:
                    raise TimeoutError("upstream took too long")
                genai.record_usage(call, input_tokens=1200, output_tokens=300, cached_input_tokens=200,
                                   cost_usd=0.0042)
                call.finish(response_model="up-model-2026", response_id="r-1", finish_reasons=["stop"],
                            output_messages=[{"role": "assistant", "content": "GENAI-ANSWER-55aa"}])
        except TimeoutError:
            pass
    assert tel.shutdown(), "flush on shutdown must finish within its bound"


def _chat_spans(got: Collected) -> list[dict]:
    return [s for s in got.spans() if s["name"] == "chat up-model"]


def test_chat_span_carries_genai_attributes_and_records_both_metrics() -> None:
    with GrpcReceiver() as receiver:
        _one_call(receiver.endpoint, record_content=False)
        got = receiver.got
        got.wait_for(lambda: bool(_chat_spans(got)) and sc.METRIC_TOKEN_USAGE in got.metric_points())
    [span] = _chat_spans(got)
    assert span["kind"] == 3  # SPAN_KIND_CLIENT
    attrs = span["attrs"]
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == attrs[sc.GEN_AI_SYSTEM] == "testco"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == "up-model" and attrs[sc.GEN_AI_RESPONSE_MODEL] == "up-model-2026"
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 1200 and attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 200
    assert attrs[sc.GEN_AI_USAGE_COST] == pytest.approx(0.0042)
    assert attrs[sc.MY_DECISION_ID] == "d-1"
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs and sc.GEN_AI_OUTPUT_MESSAGES not in attrs
    assert b"GENAI-PROMPT-91c2" not in got.raw_bytes() and b"GENAI-ANSWER-55aa" not in got.raw_bytes()
    points = got.metric_points()
    assert {p[sc.GEN_AI_TOKEN_TYPE] for p in points[sc.METRIC_TOKEN_USAGE]} == {"input", "output"}
    assert all(p[sc.GEN_AI_REQUEST_MODEL] == "up-model" for p in points[sc.METRIC_OPERATION_DURATION])
    assert got.histogram_bounds(sc.METRIC_TOKEN_USAGE) == [float(b) for b in sc.TOKEN_USAGE_BUCKETS]
    assert got.histogram_bounds(sc.METRIC_OPERATION_DURATION) == list(sc.DURATION_BUCKETS_S)


def test_content_is_recorded_only_when_the_operator_opts_in() -> None:
    with GrpcReceiver() as receiver:
        _one_call(receiver.endpoint, record_content=True)
        got = receiver.got
        got.wait_for(lambda: bool(_chat_spans(got)))
    attrs = _chat_spans(got)[0]["attrs"]
    assert "GENAI-PROMPT-91c2" in attrs[sc.GEN_AI_INPUT_MESSAGES]
    assert "GENAI-ANSWER-55aa" in attrs[sc.GEN_AI_OUTPUT_MESSAGES]


def test_failed_call_sets_error_type_on_span_and_duration() -> None:
    with GrpcReceiver() as receiver:
        _one_call(receiver.endpoint, record_content=False, fail=True)
        got = receiver.got
        got.wait_for(lambda: bool(_chat_spans(got)) and sc.METRIC_OPERATION_DURATION in got.metric_points())
    assert _chat_spans(got)[0]["attrs"][sc.ERROR_TYPE] == "TimeoutError"
    assert got.metric_points()[sc.METRIC_OPERATION_DURATION][0][sc.ERROR_TYPE] == "TimeoutError"


def test_helpers_are_no_ops_with_telemetry_off() -> None:
    assert rpc.current() is None
    with genai.chat_span("testco", "up-model", input_messages=PROMPT) as call:
        genai.record_usage(call, input_tokens=1, output_tokens=1)
        call.finish(response_model="x")
    assert not call.span.is_recording()
