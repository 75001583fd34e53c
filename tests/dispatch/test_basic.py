"""Dispatch through a real server to scripted providers of both formats: streaming, whole answers, tools."""

from __future__ import annotations

import json

import grpc
import pytest

from modelyard.v1 import router_pb2, types_pb2
from tests.dispatch.conftest import AN_KEY, OA_KEY, Env, kinds, outcome, request, run, text
from tests.dispatch.fakes import Step

OA_USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}}
AN_USAGE = {"input_tokens": 200, "cache_read_input_tokens": 700, "cache_creation_input_tokens": 100,
            "output_tokens": 50}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("model", "fake", "usage", "want"), [
    # OpenAI: cached ⊂ prompt_tokens → (600 x 0.5 + 400 x 0.05 + 100 x 2.0) / 1e6
    ("oa-small", "oa", OA_USAGE, (1000, 400, 100, 520e-6)),
    # Anthropic: input_tokens excludes cache reads and writes; writes priced as uncached input
    # → input 200 + 700 + 100 = 1000, cached 700 → (300 x 3 + 700 x 0.3 + 50 x 15) / 1e6
    ("an-mid", "an", AN_USAGE, (1000, 700, 50, 1860e-6)),
])
def test_answer_usage_and_cost_per_provider_format(
    env: Env, stream: bool, model: str, fake: str, usage: dict, want: tuple[int, int, int, float],
) -> None:
    provider = env.oa if fake == "oa" else env.an
    provider.set_script(Step(text="The fix is one line.", usage=usage, pieces=4))
    before = env.outcomes
    events = run(env, request([model], stream=stream))
    k = kinds(events)
    assert k[0] == "decision" and k[-2:] == ["usage", "outcome"] and "fallback" not in k
    assert k.count("content") == (4 if stream else 1)
    assert text(events) == "The fix is one line."
    out = outcome(events)
    assert out.status == types_pb2.OUTCOME_STATUS_SUCCESS and out.model_id == model and out.attempts == 1
    assert (out.usage.input_tokens, out.usage.cached_input_tokens, out.usage.output_tokens) == want[:3]
    assert out.cost_usd == pytest.approx(want[3], abs=1e-9)
    assert out.decision_id == events[0].decision.decision_id and out.time_to_first_token_ms > 0
    record = env.decision(out.decision_id)
    assert record.settled and record.charged_micros == round(want[3] * 1e6)
    assert env.outcomes - before == 1 and env.reserved_usd() == 0
    sent = provider.requests[0]
    key = OA_KEY if fake == "oa" else AN_KEY
    assert sent["headers"].get("Authorization", sent["headers"].get("x-api-key", "")).endswith(key)
    assert sent["body"]["stream"] is stream and sent["body"]["model"] == model


def test_anthropic_request_shape_system_and_tools(env: Env) -> None:
    env.an.set_script(Step(usage=AN_USAGE))
    tools = [{"type": "function", "function": {"name": "run_tests", "description": "Run the tests",
                                               "parameters": {"type": "object", "properties": {}}}}]
    run(env, request(["an-mid"], tools_json=json.dumps(tools), max_output_tokens=256, temperature=0.2))
    body = env.an.requests[0]["body"]
    assert body["system"] == "You fix bugs." and [m["role"] for m in body["messages"]] == ["user"]
    assert body["tools"] == [{"name": "run_tests", "description": "Run the tests",
                              "input_schema": {"type": "object", "properties": {}}}]
    assert body["max_tokens"] == 256 and body["temperature"] == 0.2
    assert env.an.requests[0]["headers"]["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("fake", ["oa", "an"])
@pytest.mark.parametrize("stream", [True, False])
def test_tool_calls_pass_through(env: Env, fake: str, stream: bool) -> None:
    provider, model = (env.oa, "oa-small") if fake == "oa" else (env.an, "an-mid")
    tool = {"id": "call_1", "name": "run_tests", "arguments": '{"path": "tests/"}'}
    provider.set_script(Step(text="Running.", tool=tool, usage=OA_USAGE if fake == "oa" else AN_USAGE))
    events = run(env, request([model], stream=stream, tools_json="[]"))
    calls = [e.tool_call for e in events if e.WhichOneof("event") == "tool_call"]
    assert {c.id for c in calls} - {""} == {"call_1"} and {c.name for c in calls} - {""} == {"run_tests"}
    assert json.loads("".join(c.arguments_delta for c in calls)) == {"path": "tests/"}
    assert all(c.index == 0 for c in calls)
    assert outcome(events).status == types_pb2.OUTCOME_STATUS_SUCCESS


def test_raw_json_messages_and_metadata_headers_reach_the_provider(env: Env) -> None:
    env.oa.set_script(Step(usage=OA_USAGE))
    raw = {"role": "assistant", "content": None,
           "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]}
    msgs = [router_pb2.ChatMessage(role="user", content="hi"),
            router_pb2.ChatMessage(role="assistant", raw_json=json.dumps(raw)),
            router_pb2.ChatMessage(role="tool", raw_json=json.dumps({"tool_call_id": "c1", "content": "a.py"}))]
    run(env, request(["oa-small"], messages=msgs, metadata={"task": "django-1"}))
    sent = env.oa.requests[0]
    assert sent["body"]["messages"][1] == raw
    assert sent["body"]["messages"][2] == {"tool_call_id": "c1", "content": "a.py", "role": "tool"}
    assert sent["headers"]["x-modelyard-task"] == "django-1"
    assert sent["body"]["stream_options"] == {"include_usage": True}


def test_missing_key_names_the_variable_and_never_calls(env: Env) -> None:
    env.oa.set_script(Step(usage=OA_USAGE))
    events = run(env, request(["nokey-model"]))
    out = outcome(events)
    assert out.status == types_pb2.OUTCOME_STATUS_ERROR and "MY_TEST_UNSET_KEY" in out.error
    assert OA_KEY not in out.error and env.oa.requests == [] and env.reserved_usd() == 0


def test_a_reused_request_id_is_refused_not_billed_twice(env: Env) -> None:
    env.oa.set_script(Step(usage=OA_USAGE))
    req = request(["oa-small"])
    run(env, req)
    with pytest.raises(grpc.RpcError) as err:
        run(env, req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in (err.value.details() or "")
    assert len(env.oa.requests) == 1


@pytest.mark.parametrize(("field", "kw"), [
    ("messages", {"messages": []}),
    ("messages[0].role", {"messages": [router_pb2.ChatMessage(role="robot", content="x")]}),
    ("tools_json", {"tools_json": "{not json"}),
    ("metadata", {"metadata": {"Bad Key": "x"}}),
])
def test_bad_dispatch_requests_name_the_field(env: Env, field: str, kw: dict) -> None:
    with pytest.raises(grpc.RpcError) as err:
        run(env, request(["oa-small"], **kw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)
    assert env.reserved_usd() == 0
