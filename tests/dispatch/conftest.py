"""Fixtures for Dispatch: scripted fake providers of both formats and a real modelyard server using them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelyard.v1 import budgets_pb2, budgets_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import FRONTS, auth
from tests.dispatch.fakes import FakeProvider
from tests.helpers import ServerThread, _model, write_config

OA_KEY = "sk-test-openai-0123456789"
AN_KEY = "sk-ant-test-0123456789"


@pytest.fixture(scope="module")
def fake_oa() -> Iterator[FakeProvider]:
    fake = FakeProvider("openai").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fake_an() -> Iterator[FakeProvider]:
    fake = FakeProvider("anthropic").start()
    yield fake
    fake.stop()


@dataclass
class Env:
    thread: ServerThread
    channel: grpc.Channel
    oa: FakeProvider
    an: FakeProvider

    @property
    def stub(self) -> router_pb2_grpc.RouterStub:
        return router_pb2_grpc.RouterStub(self.channel)

    def decision(self, decision_id: str) -> Any:
        return self.thread.call(self.thread.app.store.get_decision(decision_id, "acme"))

    def reserved_usd(self) -> float:
        resp = budgets_pb2_grpc.BudgetsStub(self.channel).GetBudget(
            budgets_pb2.GetBudgetRequest(), metadata=auth(), timeout=5)
        return sum(w.reserved_usd for w in resp.windows)

    @property
    def outcomes(self) -> int:
        return int(self.thread.app.stats.outcomes)


def dispatch_config(tmp: Path, oa: FakeProvider, an: FakeProvider, **overrides: Any) -> Path:
    endpoints = {
        "oa": {"api": "openai", "base_url": oa.base_url, "api_key_env": "MY_TEST_OA_KEY", "timeout_s": 1.0},
        "an": {"api": "anthropic", "base_url": an.base_url, "api_key_env": "MY_TEST_AN_KEY", "timeout_s": 1.0},
        "nokey": {"api": "openai", "base_url": oa.base_url, "api_key_env": "MY_TEST_UNSET_KEY"},
    }
    # One provider per model, so the core's provider breakers of one test model never touch another.
    models = [
        _model("oa-small", 1, 0.5, 0.05, 2.0, endpoint="oa", provider="p-small"),
        _model("oa-big", 3, 3.0, 0.3, 15.0, endpoint="oa", provider="p-big"),
        _model("an-mid", 2, 3.0, 0.3, 15.0, endpoint="an", provider="p-an", provenance=["licensed-data"]),
        _model("nokey-model", 1, 0.5, 0.05, 2.0, endpoint="nokey", provider="p-nokey"),
    ]
    return write_config(tmp, endpoints=endpoints, models=models, **{
        "routing.explore": False, "routing.breaker": {"failures_to_open": 2, "open_s": 60}, **overrides})


@pytest.fixture(params=FRONTS)
def env(request: pytest.FixtureRequest, tmp_path: Path, fake_oa: FakeProvider, fake_an: FakeProvider,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A server calling the fake providers, on both fronts (Dispatch streams through the Rust front's forwarder)."""
    monkeypatch.setenv("MY_TEST_OA_KEY", OA_KEY)
    monkeypatch.setenv("MY_TEST_AN_KEY", AN_KEY)
    monkeypatch.delenv("MY_TEST_UNSET_KEY", raising=False)
    assert "MY_TEST_UNSET_KEY" not in os.environ
    thread = ServerThread(dispatch_config(tmp_path, fake_oa, fake_an, **{"server.front": request.param}))
    running = thread.start()
    with grpc.insecure_channel(running.address) as ch:
        yield Env(thread, ch, fake_oa, fake_an)
    thread.stop()


def request(allowed: list[str], *, stream: bool = True, text: str = "Fix the failing test, please.",
            **kw: Any) -> router_pb2.DispatchRequest:
    route = router_pb2.RouteRequest(
        request_id=uuid.uuid4().hex, job_id=kw.pop("job_id", "job-1"),
        task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python",
                                   est_input_tokens=2_000, est_output_tokens=500),
        constraints=types_pb2.Constraints(allowed_models=allowed),
    )
    messages = kw.pop("messages", [router_pb2.ChatMessage(role="system", content="You fix bugs."),
                                   router_pb2.ChatMessage(role="user", content=text)])
    return router_pb2.DispatchRequest(route=route, messages=messages, stream=stream, **kw)


def run(env: Env, req: router_pb2.DispatchRequest, timeout: float = 10) -> list[router_pb2.DispatchEvent]:
    return list(env.stub.Dispatch(req, metadata=auth(), timeout=timeout))


def kinds(events: list[router_pb2.DispatchEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def text(events: list[router_pb2.DispatchEvent]) -> str:
    return "".join(e.content.text for e in events if e.WhichOneof("event") == "content")


def outcome(events: list[router_pb2.DispatchEvent]) -> router_pb2.DispatchOutcome:
    assert events[-1].WhichOneof("event") == "outcome", kinds(events)
    return events[-1].outcome
