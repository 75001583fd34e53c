"""Dispatch through the client library (sync and async): a step gathered from the stream, its verdict,
fallbacks, retries that skip what the call already tried, and a job whose cost is what was charged."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from modelyard.client import AsyncClient, Client, DispatchStep, InvalidRequest
from modelyard.v1 import router_pb2, types_pb2
from tests.dispatch.conftest import Env
from tests.dispatch.fakes import Step
from tests.helpers import key_for

USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 0}}
MESSAGES = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "Fix the test."}]
ONLY = {"allowed_models": ["oa-small", "oa-big"]}


def address(env: Env) -> str:
    return f"127.0.0.1:{env.thread.server.port}"


def test_a_dispatched_step_streams_then_takes_its_verdict_and_the_job_costs_what_was_charged(env: Env) -> None:
    env.oa.set_script(Step(text="Patched the off-by-one.", usage=USAGE, pieces=4))
    deltas: list[str] = []
    with Client(address(env), key_for("admin")) as client, client.job("bugfix/python") as job:
        step = job.dispatch("executor", MESSAGES, est_input_tokens=2_000, est_output_tokens=500,
                            constraints=ONLY, max_output_tokens=800, temperature=0.2,
                            metadata={"task": "demo-1"},
                            on_event=lambda e: deltas.append(e.content.text) if e.content.text else None)
        assert isinstance(step, DispatchStep) and step.completed
        assert step.text == "Patched the off-by-one." == "".join(deltas) and len(deltas) == 4
        assert step.answered_by == step.model.model_id and step.decision_id == step.outcome.decision_id
        assert step.outcome.usage.input_tokens == 1000 and step.outcome.cost_usd > 0
        ack = step.report("success")  # the tests passed: the verdict, charged nothing again
        assert ack.verdict and not ack.duplicate
    body = env.oa.requests[-1]["body"]
    assert body["max_tokens"] == 800 or body.get("max_completion_tokens") == 800
    assert body["temperature"] == 0.2 and env.oa.requests[-1]["headers"]["x-modelyard-task"] == "demo-1"
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_SUCCEEDED
    assert job.total_cost_usd == pytest.approx(step.outcome.cost_usd, abs=1e-6)
    assert env.reserved_usd() == 0


def test_a_fallback_is_in_the_step_and_a_retry_skips_every_model_the_call_tried(env: Env) -> None:
    env.oa.set_script(Step("status", status=500), Step(text="FAIL still red", usage=USAGE),
                      Step(text="green", usage=USAGE))
    with Client(address(env), key_for("admin")) as client, client.job("bugfix/python") as job:
        first = job.dispatch("executor", MESSAGES, constraints={"allowed_models": ["oa-small", "oa-big", "an-mid"]})
        assert len(first.result.fallbacks) == 1 and first.outcome.attempts == 2
        failed, answered = first.result.fallbacks[0].failed_model_id, first.answered_by
        assert first.decision_id == first.result.fallbacks[0].next_decision_id != first.decision.decision_id
        assert first.report("failure").verdict  # the answer did not fix the test
        env.an.set_script(Step(text="green at last", usage=USAGE))
        retry = job.dispatch(retry_of=first)
        assert retry.attempt == 2 and set(retry.failed_models) == {failed, answered}
        assert retry.answered_by not in (failed, answered) and retry.text == "green at last"
        retry.report("success")
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_SUCCEEDED


def test_tool_calls_are_gathered_and_tools_are_sent_as_json(env: Env) -> None:
    call = {"id": "call_1", "name": "run_tests", "arguments": json.dumps({"path": "tests/"})}
    env.oa.set_script(Step(text="", tool=call, usage=USAGE))
    tools = [{"type": "function", "function": {"name": "run_tests", "parameters": {"type": "object"}}}]
    with Client(address(env), key_for("admin")) as client, client.job("bugfix/python") as job:
        step = job.dispatch("executor", MESSAGES, constraints=ONLY, tools=tools)
    assert step.tool_calls == [{"id": "call_1", "name": "run_tests", "arguments": call["arguments"]}]
    assert env.oa.requests[-1]["body"]["tools"] == tools


def test_bad_messages_are_refused_before_anything_is_sent(env: Env) -> None:
    sent = len(env.oa.requests)
    with Client(address(env), key_for("admin")) as client, client.job("bugfix/python") as job:
        with pytest.raises(InvalidRequest, match=r"^INVALID_ARGUMENT: messages: at least one"):
            job.dispatch("executor", [])
        with pytest.raises(InvalidRequest, match=r"messages\[1\]"):
            job.dispatch("executor", [MESSAGES[0], {"text": "no role"}])
    assert len(env.oa.requests) == sent and not job.steps


def test_the_async_client_dispatches_the_same_way(env: Env) -> None:
    env.oa.set_script(Step(text="async answer", usage=USAGE))

    async def main() -> tuple[str, bool, router_pb2.JobSummary | None]:
        async with AsyncClient(address(env), key_for("admin")) as client:
            async with client.job("bugfix/python") as job:
                step = await job.dispatch("executor", MESSAGES, constraints=ONLY)
                ack = await step.report("success")
            return step.text, ack.verdict, job.summary

    text, verdict, summary = asyncio.run(main())
    assert text == "async answer" and verdict
    assert summary is not None and summary.status == types_pb2.JOB_STATUS_SUCCEEDED


def test_a_consumer_that_stops_reading_cancels_the_call(env: Env) -> None:
    # The provider streams slowly; the harness reads the decision and walks away, the client still open.
    env.oa.set_script(Step(text="a long answer " * 40, usage=USAGE, pieces=40, gap=0.2))  # 8 s if read whole
    with Client(address(env), key_for("admin")) as client:
        events = client.dispatch("executor", "bugfix/python", MESSAGES, job_id="walk-away", constraints=ONLY)
        first = next(events)
        assert first.WhichOneof("event") == "decision"
        events.close()  # what leaving a for loop early does to a generator
        # The server sees the cancellation long before the answer would end: CANCELLED, nothing reserved
        # (an answer read to its end would settle as completed, awaiting a verdict).
        for _ in range(60):
            if env.decision(first.decision.decision_id).settled:
                break
            time.sleep(0.1)
        record = env.decision(first.decision.decision_id)
        assert record.settled and record.status == types_pb2.OUTCOME_STATUS_CANCELLED, record
        assert env.reserved_usd() == 0
