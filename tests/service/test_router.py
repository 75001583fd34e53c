"""Route, ReportOutcome and CompleteJob through a real server: a job's cost, idempotency, policy, budgets."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from modelyard.v1 import budgets_pb2, budgets_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import FRONTS, auth
from tests.helpers import RunningServer, ServerThread, write_config


def task(**kw: Any) -> types_pb2.TaskProfile:
    base = {
        "role": types_pb2.ROLE_EXECUTOR,
        "task_class": "bugfix/python",
        "est_input_tokens": 20_000,
        "est_output_tokens": 1_500,
    }
    base.update(kw)
    return types_pb2.TaskProfile(**base)


def route(stub: Any, job_id: str, key: str = "admin", **kw: Any) -> router_pb2.RouteDecision:
    req = router_pb2.RouteRequest(
        request_id=kw.pop("request_id", uuid.uuid4().hex), job_id=job_id, task=kw.pop("task", task()), **kw
    )
    return stub.Route(req, metadata=auth(key), timeout=5)


def test_job_routes_reports_completes_and_costs_what_was_charged(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    job = f"job-{uuid.uuid4().hex}"
    charged = 0.0
    models = []
    for role, status in (
        (types_pb2.ROLE_PLANNER, 1),
        (types_pb2.ROLE_EXECUTOR, 2),
        (types_pb2.ROLE_EXECUTOR, 1),
        (types_pb2.ROLE_REVIEWER, 1),
    ):
        d = route(stub, job, task=task(role=role), explain=True)
        assert d.model.model_id and d.reserved_usd > 0 and d.expected.cost_usd > 0
        assert d.reason and len(d.candidates) == 4
        ack = stub.ReportOutcome(
            router_pb2.OutcomeReport(
                decision_id=d.decision_id,
                status=status,
                latency_ms=1200,
                usage=types_pb2.Usage(input_tokens=18_000, cached_input_tokens=6_000, output_tokens=1_200),
            ),
            metadata=auth(),
            timeout=5,
        )
        assert not ack.duplicate and ack.charged_usd > 0
        assert (
            ack.charged_usd + ack.released_usd == pytest.approx(d.reserved_usd, abs=1e-6)
            or ack.charged_usd > d.reserved_usd
        )
        charged += ack.charged_usd
        models.append(d.model.model_id)
    summary = stub.CompleteJob(
        router_pb2.JobOutcome(job_id=job, status=types_pb2.JOB_STATUS_SUCCEEDED), metadata=auth(), timeout=5
    )
    assert summary.steps == 4
    assert summary.total_cost_usd == pytest.approx(charged, abs=1e-6)
    assert list(summary.models) == list(dict.fromkeys(models))
    assert sum(m.steps for m in summary.per_model) == 4
    again = stub.CompleteJob(
        router_pb2.JobOutcome(job_id=job, status=types_pb2.JOB_STATUS_SUCCEEDED), metadata=auth(), timeout=5
    )
    assert again.duplicate and again.total_cost_usd == summary.total_cost_usd


def test_report_prices_cached_tokens_at_the_cached_price(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    d = route(stub, "pricing", task=task(), constraints=types_pb2.Constraints(allowed_models=["big-coder"]))
    ack = stub.ReportOutcome(
        router_pb2.OutcomeReport(
            decision_id=d.decision_id,
            status=1,
            usage=types_pb2.Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000),
        ),
        metadata=auth(),
        timeout=5,
    )
    # big-coder: $3 in, $0.30 cached, $15 out per million.
    assert ack.charged_usd == pytest.approx(0.6 * 3.0 + 0.4 * 0.30 + 0.1 * 15.0, abs=1e-6)


def test_route_is_idempotent_on_request_id(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    rid = uuid.uuid4().hex
    first = route(stub, "idem", request_id=rid, explain=True)
    second = route(stub, "idem", request_id=rid, explain=True)
    assert second.replayed and not first.replayed
    # The replay is the first answer to the last field (candidates, budgets), marked replayed.
    expected = router_pb2.RouteDecision()
    expected.CopyFrom(first)
    expected.replayed = True
    assert second == expected and len(first.candidates) > 1 and first.budgets
    ack = stub.ReportOutcome(
        router_pb2.OutcomeReport(decision_id=first.decision_id, status=1), metadata=auth(), timeout=5
    )
    dup = stub.ReportOutcome(
        router_pb2.OutcomeReport(decision_id=first.decision_id, status=1), metadata=auth(), timeout=5
    )
    assert not ack.duplicate and dup.duplicate and dup.charged_usd == ack.charged_usd


def test_a_decision_an_earlier_release_stored_as_json_replays(server: RunningServer, channel: grpc.Channel) -> None:
    """Rows written before store.proto keep their JSON payload: a retried request_id of one is
    answered from it, on either front."""
    from modelyard.store import Reservation
    from tests.service.test_stored_decision import JSON_ROW

    rid, did = uuid.uuid4().hex, uuid.uuid4().hex
    payload = JSON_ROW.replace(b"01a22b80de5cd65d027f2371c219effd", did.encode())
    now = time.time()
    store = server.thread.app.store
    server.thread.call(store.reserve(Reservation(
        request_id=rid, decision_id=did, tenant="acme", key_id="acme-admin", job_id="old-release",
        model="tiny-coder", role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python", estimate_micros=920,
        created_at=now, expires_at=now + 600, payload=payload), [], now))
    got = route(router_pb2_grpc.RouterStub(channel), "old-release", request_id=rid)
    assert got.replayed and got.decision_id == did and got.model.model_id == "tiny-coder"
    assert [f.model_id for f in got.fallbacks] == ["mid-coder"] and got.reason == "tiny-coder has the lowest score"
    assert [(b.window, b.has_limit, b.hard_limit_usd, b.soft_limit_usd) for b in got.budgets] == [
        (types_pb2.WINDOW_HOUR, False, 0.0, 0.0), (types_pb2.WINDOW_DAY, True, 1_000_000.0, 900_000.0)]


def test_tenant_policy_requires_licensed_models(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    for _ in range(5):
        assert route(stub, "lic", key="beta").model.model_id == "licensed-coder"


def test_no_eligible_model_says_which_constraint_excluded_what(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        route(stub, "none", key="beta", task=task(required_capabilities=["vision"]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = info.value.details()
    assert "provenance" in detail and "capabilities" in detail and "licensed-coder" in detail


def test_failed_model_is_not_picked_again_on_retry(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    first = route(stub, "esc", explore=False)
    retry = route(stub, "esc", attempt=2, failed_models=[first.model.model_id], explore=False)
    assert retry.model.model_id != first.model.model_id
    assert first.model.model_id not in [f.model_id for f in retry.fallbacks]


def test_hard_budget_refuses_with_window_and_reset(fresh_server: RunningServer) -> None:
    with grpc.insecure_channel(fresh_server.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        # The test tenant has a $50 day limit; big steps ($1.80 each) on the strongest model exhaust it.
        huge = task(est_input_tokens=100_000, est_output_tokens=100_000)
        refused = None
        for _ in range(60):
            try:
                d = route(stub, "spend", task=huge, constraints=types_pb2.Constraints(allowed_models=["big-coder"]))
            except grpc.RpcError as exc:
                refused = exc
                break
            stub.ReportOutcome(
                router_pb2.OutcomeReport(
                    decision_id=d.decision_id,
                    status=1,
                    usage=types_pb2.Usage(input_tokens=100_000, output_tokens=100_000),
                ),
                metadata=auth(),
                timeout=5,
            )
        assert refused is not None and refused.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        budget = budgets_pb2_grpc.BudgetsStub(ch).GetBudget(budgets_pb2.GetBudgetRequest(), metadata=auth(), timeout=5)
        day = next(w for w in budget.windows if w.scope == "tenant" and w.window == types_pb2.WINDOW_DAY)
        assert day.has_limit and day.spent_usd <= 50.0 + 1e-9 and day.spent_usd > 40.0
        assert day.resets_at.endswith("T00:00:00Z")
        # Past the soft limit the per-step cap shrinks with what is left: the $1.80 step was refused
        # for its cost ("budget" constraint) while the tenant still had money, and small steps still route.
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "budget" in refused.details() and "day window" in refused.details()
        assert day.remaining_usd > 0
        small = route(stub, "spend", task=task())
        assert small.expected.cost_usd < day.remaining_usd


def test_list_models_shows_what_was_learned(channel: grpc.Channel) -> None:
    from modelyard.v1 import catalog_pb2, catalog_pb2_grpc

    stub = router_pb2_grpc.RouterStub(channel)
    tc = f"learned/{uuid.uuid4().hex[:8]}"
    for status in (1, 1, 2):
        d = route(
            stub, "learn", task=task(task_class=tc), constraints=types_pb2.Constraints(allowed_models=["mid-coder"])
        )
        stub.ReportOutcome(
            router_pb2.OutcomeReport(
                decision_id=d.decision_id,
                status=status,
                latency_ms=2000,
                usage=types_pb2.Usage(input_tokens=20_000, output_tokens=1_500),
            ),
            metadata=auth(),
            timeout=5,
        )
    models = (
        catalog_pb2_grpc.CatalogStub(channel)
        .ListModels(catalog_pb2.ListModelsRequest(include_estimates=True), metadata=auth(), timeout=5)
        .models
    )
    mid = next(m for m in models if m.model_id == "mid-coder")
    est = next(e for e in mid.estimates if e.task_class == tc and e.role == types_pb2.ROLE_EXECUTOR)
    assert est.evidence == pytest.approx(3.0, rel=0.05)
    assert est.success_low < est.success_probability < est.success_high
    assert est.cost_usd > 0 and est.latency_ms > 0
    assert mid.price.input_per_mtok == 0.30 and mid.price.source.startswith("https://")


def _only(model: str) -> types_pb2.Constraints:
    return types_pb2.Constraints(allowed_models=[model])


def _first_try_fails(stub: Any, job: str, times: float) -> None:
    """tiny-coder fails the job's first try, billed `times` its estimate (20k / 1.5k tokens)."""
    d = route(stub, job, constraints=_only("tiny-coder"))
    usage = types_pb2.Usage(input_tokens=int(20_000 * times), output_tokens=int(1_500 * times))
    stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id, status=2, usage=usage),
                       metadata=auth(), timeout=5)


def _retry(stub: Any, job: str, **kw: Any) -> router_pb2.RouteDecision:
    return route(stub, job, attempt=2, failed_models=["tiny-coder"], constraints=_only("mid-coder"),
                 task=task(), **kw)


def _teach_retries_by_effort(stub: Any) -> None:
    """mid-coder's retries fail after tiny-coder ran long and succeed after it gave up early."""
    for i in range(12):
        for times, status in ((8.0, 2), (0.125, 1)):
            job = f"learn-{i}-{times}"
            _first_try_fails(stub, job, times)
            d = _retry(stub, job)
            usage = types_pb2.Usage(input_tokens=20_000, output_tokens=1_500)
            stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id, status=status, usage=usage),
                               metadata=auth(), timeout=5)


def _retry_p(stub: Any, job: str) -> float:
    d = _retry(stub, job, explain=True)
    return next(c for c in d.candidates if c.model_id == "mid-coder").expected.success_probability


def test_retries_learn_apart_after_long_and_short_failures(fresh_server: RunningServer) -> None:
    """The service remembers how a job's failed try ran (billed against the model's typical cost)
    and routes the retry with it: mid-coder's retries fail after tiny-coder ran long and succeed
    after it gave up early, and its retry estimate follows what kind of failure came before."""
    with grpc.insecure_channel(fresh_server.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        _teach_retries_by_effort(stub)
        p = {}
        for times in (8.0, 0.125):
            job = f"probe-{times}"
            _first_try_fails(stub, job, times)
            p[times] = _retry_p(stub, job)
        assert p[8.0] < 0.3 < 0.7 < p[0.125], p


@pytest.mark.parametrize("front", FRONTS)
def test_a_retry_after_a_restart_still_knows_how_the_jobs_failure_ran(tmp_path: Path, front: str) -> None:
    """The failures are reported to one server process and the retries routed by the next one (a
    restart, or another replica): the job's failed efforts come from the store, not from memory."""
    config = write_config(tmp_path, **{"server.front": front})
    first = ServerThread(config)
    running = first.start()
    with grpc.insecure_channel(running.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        _teach_retries_by_effort(stub)
        for times in (8.0, 0.125):
            _first_try_fails(stub, f"probe-{times}", times)
        before = {times: _retry_p(stub, f"probe-{times}") for times in (8.0, 0.125)}
    first.stop()  # saves what was learned; the job tracker's memory goes with the process
    second = ServerThread(config)
    running = second.start()
    try:
        assert not second.app.jobs.knows("acme", "probe-8.0")
        with grpc.insecure_channel(running.address) as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            after = {times: _retry_p(stub, f"probe-{times}") for times in (8.0, 0.125)}
            # A job the store has no failure of routes its retry without an effort.
            unknown = _retry_p(stub, "never-failed")
    finally:
        second.stop()
    assert after[8.0] < 0.3 < 0.7 < after[0.125], after
    for times in (8.0, 0.125):
        assert after[times] == pytest.approx(before[times], abs=0.05), (before, after)
    assert after[8.0] < unknown < after[0.125], (after, unknown)


def test_cost_per_success_is_money_and_the_score_adds_the_tenants_time_value(channel: grpc.Channel) -> None:
    # acme values a developer's hour at $30 (tests/helpers.py), so waiting is part of the score
    stub = router_pb2_grpc.RouterStub(channel)
    d = route(stub, f"job-{uuid.uuid4().hex}", explain=True, explore=False)
    e = d.expected
    assert e.cost_per_success_usd == pytest.approx(e.cost_usd / e.success_probability, rel=1e-9)
    for c in d.candidates:
        if c.excluded:
            continue
        x = c.expected
        assert x.cost_per_success_usd == pytest.approx(x.cost_usd / x.success_probability, rel=1e-9)
        wait_usd = 30 / 3600 * x.latency_ms / 1000
        assert c.score == pytest.approx((x.cost_usd + wait_usd) / x.success_probability, rel=1e-6)
    picked = next(c for c in d.candidates if c.model_id == d.model.model_id)
    assert picked.score == min(c.score for c in d.candidates if not c.excluded)
    assert picked.expected.cost_per_success_usd == pytest.approx(e.cost_per_success_usd, rel=1e-9)
