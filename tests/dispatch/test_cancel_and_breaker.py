"""A cancelled stream settles what it used; an endpoint that keeps failing is skipped until it recovers."""

from __future__ import annotations

import time

import grpc
import pytest

from modelyard.dispatch import dispatch
from modelyard.servicers.router import dispatch_input
from modelyard.v1 import types_pb2
from tests.conftest import auth
from tests.dispatch.conftest import Env, outcome, request, run
from tests.dispatch.fakes import Step
from tests.helpers import key_for

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 0}}


def wait_settled(env: Env, decision_id: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = env.decision(decision_id)
        if record.settled:
            return record
        time.sleep(0.05)
    raise AssertionError(f"decision {decision_id} not settled within {timeout}s")


@pytest.mark.parametrize("api", ["oa", "an"])
def test_cancelled_stream_settles_usage_so_far(env: Env, api: str) -> None:
    provider, model = (env.oa, "oa-small") if api == "oa" else (env.an, "an-mid")
    usage = USAGE if api == "oa" else {"input_tokens": 900, "output_tokens": 400}
    provider.set_script(Step(text="abcd" * 40, pieces=40, gap=0.1, usage=usage))
    before = env.outcomes
    call = env.stub.Dispatch(request([model]), metadata=auth(), timeout=10)
    decision_id, contents = "", 0
    for event in call:
        if event.WhichOneof("event") == "decision":
            decision_id = event.decision.decision_id
        elif event.WhichOneof("event") == "content":
            contents += 1
            if contents == 3:
                call.cancel()
                break
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    record = wait_settled(env, decision_id)
    assert record.status == types_pb2.OUTCOME_STATUS_CANCELLED and record.charged_micros > 0
    assert record.output_tokens >= 3  # at least the 12 streamed characters / 4
    assert record.input_tokens == (11 if api == "oa" else 900)
    assert env.outcomes - before == 1 and env.reserved_usd() == 0
    time.sleep(0.3)
    assert env.outcomes - before == 1  # settled once, not again when the generator is finalised


def test_open_breaker_skips_the_endpoint_then_probes(env: Env) -> None:
    env.oa.set_script(Step("status", status=500))
    for _ in range(2):  # routing.breaker.failures_to_open = 2 in the test config
        assert outcome(run(env, request(["oa-small"]))).status == types_pb2.OUTCOME_STATUS_ERROR
    breaker = env.thread.app.providers.breakers.get("oa")
    assert breaker.state == "open"
    with pytest.raises(grpc.RpcError) as err:
        run(env, request(["oa-small"]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(env.oa.requests) == 2  # the open endpoint was not called
    # Another endpoint still serves: a dispatch allowing both goes to the healthy one.
    env.an.set_script(Step(usage={"input_tokens": 10, "output_tokens": 5}))
    out = outcome(run(env, request(["oa-big", "an-mid"])))
    assert out.model_id == "an-mid" and out.status == types_pb2.OUTCOME_STATUS_SUCCESS
    # After open_s the breaker lets one probe through; its success closes the circuit.
    breaker.open_s = 0.0
    assert breaker.state == "half_open" and breaker.acquire() and not breaker.acquire()
    breaker.record(True)
    assert breaker.state == "closed"
    assert env.reserved_usd() == 0


def test_a_caller_gone_right_after_the_decision_leaves_nothing_reserved(env: Env) -> None:
    # The race a gRPC client cannot force: the caller leaves while Dispatch still waits at its
    # first event (the decision), before the provider call. Driven on the server's own loop, the
    # generator closed right there; the decision must settle as cancelled, its hold released.
    env.oa.set_script(Step(text="never read", usage=USAGE))
    app = env.thread.app
    who = app.runtime.keys.authenticate(key_for("admin"))
    req = dispatch_input(request(["oa-small"]), app, None)

    async def walk_away() -> str:
        events = dispatch(app, who, req)
        first = await anext(events)
        await events.aclose()
        return first.decision.decision_id

    decision_id = env.thread.call(walk_away())
    record = wait_settled(env, decision_id)
    assert record.status == types_pb2.OUTCOME_STATUS_CANCELLED
    assert env.reserved_usd() == 0
