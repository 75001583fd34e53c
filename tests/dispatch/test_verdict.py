"""A call Dispatch completed is not a successful step: the harness's verdict teaches success, once."""

from __future__ import annotations

import grpc
import pytest

from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, router_pb2, types_pb2
from tests.conftest import auth
from tests.dispatch.conftest import Env, outcome, request, run
from tests.dispatch.fakes import Step

USAGE = {"prompt_tokens": 4000, "completion_tokens": 1000}  # twice the steps' estimates


def estimate(env: Env, model: str) -> types_pb2.CandidateScore:
    task = request([model]).route.task
    resp = catalog_pb2_grpc.CatalogStub(env.channel).Estimate(
        catalog_pb2.EstimateRequest(task=task), metadata=auth(), timeout=5)
    return next(c for c in resp.candidates if c.model_id == model)


def verdict(env: Env, decision_id: str, status: int) -> router_pb2.OutcomeAck:
    return env.stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=decision_id, status=status),
                                  metadata=auth(), timeout=5)


def test_completed_calls_teach_usage_and_the_verdicts_teach_success(env: Env) -> None:
    before = estimate(env, "oa-small")
    env.oa.set_script(Step(text="FAIL: the patch does not apply.", usage=USAGE))
    decisions = []
    for i in range(8):
        out = outcome(run(env, request(["oa-small"], job_id=f"job-{i}")))
        assert out.status == types_pb2.OUTCOME_STATUS_SUCCESS  # the call completed
        decisions.append((out.decision_id, out.cost_usd))
    # Completed calls are not successes: the success estimate has not moved, and no evidence of
    # success or failure was counted; the usage was learned (the cost estimate follows it).
    pending = estimate(env, "oa-small")
    assert pending.expected.success_probability == pytest.approx(before.expected.success_probability, abs=1e-12)
    assert pending.evidence == 0.0
    assert pending.expected.cost_usd > 1.5 * before.expected.cost_usd
    assert pending.expected.latency_ms < before.expected.latency_ms  # the fake answers at once
    record = env.decision(decisions[0][0])
    assert record.settled and record.status == 6  # VERDICT_PENDING
    # The harness ran the tests: every step failed. Each verdict is learned once, charges nothing.
    for decision_id, cost in decisions:
        ack = verdict(env, decision_id, types_pb2.OUTCOME_STATUS_FAILURE)
        assert ack.verdict and not ack.duplicate and ack.charged_usd == pytest.approx(cost, abs=1e-6)
        again = verdict(env, decision_id, types_pb2.OUTCOME_STATUS_SUCCESS)
        assert again.duplicate and not again.verdict
    after = estimate(env, "oa-small")
    assert after.evidence == pytest.approx(8.0)
    assert after.expected.success_probability < before.expected.success_probability - 0.2
    assert env.decision(decisions[0][0]).status == types_pb2.OUTCOME_STATUS_FAILURE
    assert env.reserved_usd() == 0


def test_an_error_is_the_calls_own_outcome_and_takes_no_verdict(env: Env) -> None:
    env.oa.set_script(Step(kind="status", status=500))
    out = outcome(run(env, request(["oa-small"])))
    assert out.status == types_pb2.OUTCOME_STATUS_ERROR
    ack = verdict(env, out.decision_id, types_pb2.OUTCOME_STATUS_SUCCESS)
    assert ack.duplicate and not ack.verdict
    assert env.decision(out.decision_id).status == types_pb2.OUTCOME_STATUS_ERROR


def test_a_verdict_on_an_unknown_decision_is_not_found(env: Env) -> None:
    with pytest.raises(grpc.RpcError) as info:
        verdict(env, "no-such-decision", types_pb2.OUTCOME_STATUS_SUCCESS)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
