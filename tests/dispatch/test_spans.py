"""A Dispatch call exports one GenAI CLIENT span per provider call, with usage and cost, to a real collector."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelyard.telemetry import semconv as sc
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.dispatch.conftest import OA_KEY, dispatch_config, outcome, request
from tests.dispatch.fakes import FakeProvider, Step
from tests.helpers import ServerThread
from tests.telemetry.conftest import fast_export  # noqa: F401  (autouse: short export intervals)
from tests.telemetry.receiver import Collected, GrpcReceiver

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}}


@contextlib.contextmanager
def exporting_server(tmp_path: Path, oa: FakeProvider, an: FakeProvider) -> Iterator[tuple[str, Collected]]:
    """A Dispatch server exporting its telemetry to a real OTLP receiver: (address, what arrived)."""
    with GrpcReceiver() as receiver:
        cfg = dispatch_config(tmp_path, oa, an, **{
            "telemetry.enabled": True, "telemetry.otlp.endpoint": receiver.endpoint})
        thread = ServerThread(cfg)
        running = thread.start()
        try:
            yield running.address, receiver.got
        finally:
            thread.stop()


def test_dispatch_exports_chat_spans(tmp_path: Path, fake_oa: FakeProvider, fake_an: FakeProvider,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEST_OA_KEY", OA_KEY)
    fake_oa.set_script(Step("status", status=500), Step(text="ok", usage=USAGE))
    with exporting_server(tmp_path, fake_oa, fake_an) as (address, got):
        with grpc.insecure_channel(address) as ch:
            events = list(router_pb2_grpc.RouterStub(ch).Dispatch(
                request(["oa-small", "oa-big"]), metadata=auth(), timeout=10))
        out = outcome(events)
        got.wait_for(lambda: len([s for s in got.spans() if s["name"].startswith("chat ")]) >= 2)
    chats = [s for s in got.spans() if s["name"].startswith("chat ")]
    [failed] = [s for s in chats if sc.ERROR_TYPE in s["attrs"]]
    [ok] = [s for s in chats if sc.ERROR_TYPE not in s["attrs"]]
    assert failed["kind"] == ok["kind"] == 3  # SPAN_KIND_CLIENT
    assert failed["attrs"][sc.ERROR_TYPE] == "500"
    assert ok["name"] == f"chat {out.model_id}" and ok["attrs"][sc.GEN_AI_REQUEST_MODEL] == out.model_id
    assert ok["attrs"][sc.GEN_AI_OPERATION_NAME] == "chat"
    assert ok["attrs"][sc.GEN_AI_USAGE_INPUT_TOKENS] == 1000
    assert ok["attrs"][sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 400
    assert ok["attrs"][sc.GEN_AI_USAGE_COST] == pytest.approx(out.cost_usd)
    assert ok["attrs"][sc.MY_DECISION_ID] == out.decision_id
    assert OA_KEY not in str(got.raw_bytes())


def test_a_completed_call_and_its_verdict_are_told_apart_in_telemetry(
        tmp_path: Path, fake_oa: FakeProvider, fake_an: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call counts as 'completed'; the harness's verdict counts as 'failure' on its own span,
    which carries no cost (the call's spend was counted once, when Dispatch settled it)."""
    monkeypatch.setenv("MY_TEST_OA_KEY", OA_KEY)
    fake_oa.set_script(Step(text="ok", usage=USAGE))
    report = "/modelyard.v1.Router/ReportOutcome"
    with exporting_server(tmp_path, fake_oa, fake_an) as (address, got):
        with grpc.insecure_channel(address) as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            out = outcome(list(stub.Dispatch(request(["oa-small"]), metadata=auth(), timeout=10)))
            ack = stub.ReportOutcome(router_pb2.OutcomeReport(
                decision_id=out.decision_id, status=types_pb2.OUTCOME_STATUS_FAILURE), metadata=auth(), timeout=5)
        assert ack.verdict
        got.wait_for(lambda: {"completed", "failure"} <= {
            p.get(sc.LABEL_STATUS) for p in got.metric_points().get(sc.METRIC_OUTCOMES, [])}
            and any(s["name"] == report for s in got.spans()))
    [verdict] = [s for s in got.spans() if s["name"] == report]
    assert verdict["attrs"][sc.MY_VERDICT] is True and verdict["attrs"][sc.MY_OUTCOME_STATUS] == "failure"
    assert verdict["attrs"][sc.GEN_AI_USAGE_COST] == 0.0
    assert verdict["attrs"][sc.MY_CHARGED] == pytest.approx(out.cost_usd)
