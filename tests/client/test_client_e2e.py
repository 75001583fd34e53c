"""Whole jobs through the real modelyard server with the sync and async clients: route, report, complete, cost."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from modelyard.client import (
    AsyncClient,
    AuthError,
    Client,
    InvalidRequest,
    NoEligibleModel,
)
from modelyard.v1 import types_pb2
from tests.helpers import RunningServer

USAGE = {"input_tokens": 18_000, "cached_input_tokens": 6_000, "output_tokens": 1_200, "latency_ms": 1200.0}


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.address, server.key) as c:
        yield c


def test_sync_job_routes_reports_completes_and_costs_the_sum_of_its_charges(client: Client) -> None:
    with client.job(task_class="bugfix/python") as job:
        plan = job.route("planner", est_input_tokens=8_000, est_output_tokens=800)
        plan.report("success", **USAGE)
        step = job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500, explain=True)
        assert step.model.model_id and step.model.upstream_model and step.decision.reserved_usd > 0
        step.report("failure", **USAGE)
        step2 = job.route("executor", retry_of=step)
        assert step2.attempt == 2 and step.model.model_id in step2.failed_models
        assert step2.model.model_id != step.model.model_id
        assert step2.options["est_input_tokens"] == 20_000
        step2.report("success", **USAGE)
        review = job.route("reviewer")
        review.report("succeeded", **USAGE)
    summary = job.summary
    assert summary is not None and summary.job_id == job.job_id
    assert summary.status == types_pb2.JOB_STATUS_SUCCEEDED and summary.steps == 4
    charged = sum(s.ack.charged_usd for s in job.steps)
    assert summary.total_cost_usd > 0
    assert summary.total_cost_usd == pytest.approx(charged, abs=1e-6) == job.total_cost_usd
    assert job.charged_usd == pytest.approx(charged)


async def test_async_job_routes_reports_completes_and_costs_the_sum_of_its_charges(server: RunningServer) -> None:
    async with AsyncClient(server.address, server.key) as client, client.job("bugfix/python") as job:
        step = await job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500)
        ack1 = await step.report("error", **USAGE)
        step2 = await job.route(retry_of=step)
        assert step2.attempt == 2 and step2.role == types_pb2.ROLE_EXECUTOR
        ack2 = await step2.report("success", **USAGE)
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_SUCCEEDED
    assert job.summary.steps == 2 and job.total_cost_usd is not None and job.total_cost_usd > 0
    assert job.total_cost_usd == pytest.approx(ack1.charged_usd + ack2.charged_usd, abs=1e-6)


def test_last_reported_failure_completes_the_job_as_failed(client: Client) -> None:
    with client.job("bugfix/python") as job:
        job.route("executor").report("success", **USAGE)
        job.route("reviewer").report("failure", **USAGE)
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_FAILED


def test_exception_in_the_block_abandons_the_job_and_propagates(client: Client) -> None:
    job = client.job("bugfix/python")
    with pytest.raises(KeyError), job:
        job.route("executor").report("success", **USAGE)
        raise KeyError("harness crashed")
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_ABANDONED


async def test_async_exception_in_the_block_abandons_the_job(server: RunningServer) -> None:
    async with AsyncClient(server.address, server.key) as client:
        job = client.job("bugfix/python")
        with pytest.raises(RuntimeError, match="boom"):
            async with job:
                await (await job.route("planner")).report("success", **USAGE)
                raise RuntimeError("boom")
    assert job.summary is not None and job.summary.status == types_pb2.JOB_STATUS_ABANDONED


def test_explicit_complete_wins_and_a_job_without_steps_is_not_sent(client: Client) -> None:
    with client.job("bugfix/python") as job:
        job.route("executor").report("success", **USAGE)
        summary = job.complete("abandoned")
        with pytest.raises(RuntimeError, match="already completed"):
            job.route("executor")
    assert job.summary is summary and summary.status == types_pb2.JOB_STATUS_ABANDONED
    with client.job("bugfix/python") as empty:
        pass
    assert empty.summary is None and empty.total_cost_usd is None


def test_route_and_report_are_idempotent_on_their_ids(client: Client) -> None:
    with client.job("bugfix/python") as job:
        d1 = client.route("executor", "bugfix/python", job_id=job.job_id, request_id=f"{job.job_id}-r1")
        d2 = client.route("executor", "bugfix/python", job_id=job.job_id, request_id=f"{job.job_id}-r1")
        assert d1.decision_id == d2.decision_id and d2.replayed and not d1.replayed
        step = job.route("executor")
        first = step.report("success", **USAGE)
        again = step.report("success", **USAGE)
        assert again.duplicate and not first.duplicate and step.ack is first
        client.report_outcome(d1.decision_id, "cancelled")
    assert job.summary is not None and job.summary.steps == 2


def test_server_errors_map_to_client_exceptions(server: RunningServer, client: Client) -> None:
    with Client(server.address, "no-such-key-123") as bad, pytest.raises(AuthError) as info:
        bad.list_models()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED and "no-such-key-123" not in str(info.value)
    with Client(server.address, server.key_for("read")) as reader, pytest.raises(AuthError) as info:
        reader.route("executor", "bugfix/python", job_id="j-denied")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(NoEligibleModel) as nem:
        client.route("executor", "bugfix/python", job_id="j-nem", constraints={"max_cost_usd": 1e-9})
    assert nem.value.message
    with pytest.raises(InvalidRequest) as bad_arg:
        client.route("executor", "bugfix/python", job_id="j-bad", est_input_tokens=10, est_cached_input_tokens=20)
    assert "est_cached_input_tokens" in bad_arg.value.message


def test_catalog_budget_and_stats(client: Client) -> None:
    models = client.list_models(include_estimates=True)
    assert {m.model_id for m in models.models} >= {"tiny-coder", "mid-coder", "big-coder"}
    est = client.estimate("executor", "bugfix/python", est_input_tokens=20_000,
                          constraints={"denied_models": ["big-coder"]})
    assert [c.model_id for c in est.candidates if c.excluded and c.model_id == "big-coder"] == ["big-coder"]
    budget = client.get_budget()
    assert budget.tenant == "acme" and budget.windows
    assert client.get_stats().config_version


async def test_admin_export_import_and_reload(fresh_server: RunningServer) -> None:
    async with AsyncClient(fresh_server.address, fresh_server.key) as client:
        async with client.job("bugfix/python") as job:
            await (await job.route("executor")).report("success", **USAGE)
        exported = await client.export_state()
        assert exported.state and exported.arms >= 1
        imported = await client.import_state(exported)
        assert imported.arms == exported.arms
        reloaded = await client.reload_config()
        assert reloaded.models == 4 and reloaded.config_version
