"""Retries, idempotency ids, deadlines and auth metadata of both clients, against the scripted fake Router."""

from __future__ import annotations

import time

import grpc
import pytest

from modelyard.client import (
    AsyncClient,
    AuthError,
    Client,
    DeadlineExceeded,
    InvalidRequest,
    ModelyardError,
    Unavailable,
)
from tests.client.fakes import FAKE_KEY, Script, fake_router
from tests.helpers import free_port


def test_route_retries_unavailable_with_the_same_request_id() -> None:
    with fake_router(Script(fail_first=2)) as (address, script), Client(address, FAKE_KEY) as client:
        decision = client.route("executor", "bugfix/python", job_id="j1")
    ids = script.keys("Route")
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]
    assert decision.decision_id == f"d-{ids[0]}"


def test_given_request_id_is_sent_on_every_attempt() -> None:
    with fake_router(Script(fail_first=1)) as (address, script), Client(address, FAKE_KEY) as client:
        client.route("executor", "bugfix/python", job_id="j1", request_id="req-42")
    assert script.keys("Route") == ["req-42", "req-42"]


def test_report_and_complete_retry_with_the_same_ids() -> None:
    with fake_router() as (address, script), Client(address, FAKE_KEY) as client:
        d = client.route("executor", "bugfix/python", job_id="job-7")
        script.fail_first = len(script.calls) + 2
        ack = client.report_outcome(d.decision_id, "success", input_tokens=10, output_tokens=5)
        script.fail_first = len(script.calls) + 1
        summary = client.complete_job("job-7", "succeeded")
    assert script.keys("ReportOutcome") == [d.decision_id] * 3
    assert script.keys("CompleteJob") == ["job-7"] * 2
    assert ack.charged_usd == pytest.approx(0.004) and summary.job_id == "job-7"


def test_gives_up_after_the_configured_retries() -> None:
    with (
        fake_router(Script(fail_first=100)) as (address, script),
        Client(address, FAKE_KEY, retries=2) as client,
        pytest.raises(Unavailable) as info,
    ):
        client.route("executor", "bugfix/python", job_id="j1")
    assert len(script.calls) == 3
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.message == "store unavailable; retry with the same request id"


def test_other_codes_are_not_retried_and_keep_the_server_message() -> None:
    message = "task.role: is unspecified; use one of ROLE_PLANNER, ROLE_EXECUTOR"
    script = Script(fail_first=5, fail_code=grpc.StatusCode.INVALID_ARGUMENT, fail_message=message)
    with (
        fake_router(script) as (address, _),
        Client(address, FAKE_KEY) as client,
        pytest.raises(InvalidRequest) as info,
    ):
        client.route("executor", "bugfix/python", job_id="j1")
    assert len(script.calls) == 1
    assert info.value.message == message and info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_route_retries_deadline_exceeded_with_the_same_request_id() -> None:
    script = Script(sleep_first=1, sleep_s=1.0)
    with fake_router(script) as (address, _), Client(address, FAKE_KEY, timeout_s=0.3) as client:
        decision = client.route("executor", "bugfix/python", job_id="j1")
    ids = script.keys("Route")
    assert len(ids) == 2 and ids[0] == ids[1] and decision.decision_id == f"d-{ids[0]}"


def test_report_deadline_is_honoured_and_not_retried() -> None:
    script = Script(sleep_first=10, sleep_s=2.0)
    with fake_router(script) as (address, _), Client(address, FAKE_KEY, timeout_s=5.0) as client:
        start = time.monotonic()
        with pytest.raises(ModelyardError) as info:
            client.report_outcome("d-1", "failure", timeout_s=0.3)
        elapsed = time.monotonic() - start
    assert isinstance(info.value, DeadlineExceeded)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.0 and len(script.calls) == 1


def test_every_call_carries_the_bearer_key_and_a_wrong_key_is_an_auth_error() -> None:
    with fake_router() as (address, script):
        with Client(address, FAKE_KEY) as client:
            d = client.route("planner", "bugfix/python", job_id="j1")
            client.report_outcome(d.decision_id, "success")
            client.complete_job("j1", "failed")
        assert {c.metadata["authorization"] for c in script.calls} == {f"Bearer {FAKE_KEY}"}
        secret = "wrong-key-do-not-leak-42"
        with Client(address, secret) as bad, pytest.raises(AuthError) as info:
            bad.route("planner", "bugfix/python", job_id="j1")
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert secret not in str(info.value) and secret not in repr(info.value) and secret not in repr(bad)
        assert repr(bad) == f"Client(address={address!r})"


def test_every_call_of_a_job_names_the_job_in_a_header_a_balancer_can_hash_on() -> None:
    with fake_router() as (address, script), Client(address, FAKE_KEY) as client:
        with client.job("bugfix/python", job_id="job-h") as job:
            step = job.route("executor")
            step.report("failure")
            job.route("executor", retry_of=step).report("success")
        d = client.route("executor", "bugfix/python", job_id="raw")  # the plain client call names it too
        client.report_outcome(d.decision_id, "success")  # a report outside a job says nothing
    headers = [(c.method, c.metadata.get("modelyard-job-id")) for c in script.calls]
    assert headers == [("Route", "job-h"), ("ReportOutcome", "job-h"), ("Route", "job-h"),
                       ("ReportOutcome", "job-h"), ("CompleteJob", "job-h"), ("Route", "raw"),
                       ("ReportOutcome", None)], headers


async def test_async_job_calls_name_the_job_in_the_header() -> None:
    with fake_router() as (address, script):
        async with AsyncClient(address, FAKE_KEY) as client:
            async with client.job("bugfix/python", job_id="job-a") as job:
                step = await job.route("executor")
                await step.report("success")
            await client.report_outcome(step.decision_id, "success")  # outside a job: no header
    headers = [(c.method, c.metadata.get("modelyard-job-id")) for c in script.calls]
    assert headers == [("Route", "job-a"), ("ReportOutcome", "job-a"), ("CompleteJob", "job-a"),
                       ("ReportOutcome", None)], headers


def test_unreachable_server_is_unavailable_after_retries() -> None:
    with Client(f"127.0.0.1:{free_port()}", FAKE_KEY, retries=1, timeout_s=1.0) as client, pytest.raises(Unavailable):
        client.get_stats()


def test_job_context_keeps_the_job_id_across_retries() -> None:
    with (
        fake_router(Script(fail_first=1)) as (address, script),
        Client(address, FAKE_KEY) as client,
        client.job("bugfix/python", job_id="job-ctx") as job,
    ):
        step = job.route("executor", est_input_tokens=1000)
        script.fail_first = len(script.calls) + 1
        step.report("success", input_tokens=900, output_tokens=100)
        script.fail_first = len(script.calls) + 1
    assert script.keys("CompleteJob") == ["job-ctx", "job-ctx"]
    assert job.summary is not None and job.summary.status == 1 and job.total_cost_usd == pytest.approx(0.004)


async def test_async_route_retries_unavailable_with_the_same_request_id() -> None:
    with fake_router(Script(fail_first=2)) as (address, script):
        async with AsyncClient(address, FAKE_KEY) as client:
            decision = await client.route("executor", "bugfix/python", job_id="j1")
    ids = script.keys("Route")
    assert len(ids) == 3 and len(set(ids)) == 1 and decision.decision_id == f"d-{ids[0]}"


async def test_async_report_and_complete_retry_with_the_same_ids() -> None:
    with fake_router() as (address, script):
        async with AsyncClient(address, FAKE_KEY) as client, client.job("bugfix/python", job_id="aj") as job:
            step = await job.route("executor")
            script.fail_first = len(script.calls) + 2
            await step.report("success", output_tokens=10)
            script.fail_first = len(script.calls) + 1
    assert script.keys("ReportOutcome") == [step.decision_id] * 3
    assert script.keys("CompleteJob") == ["aj", "aj"]
    assert {c.metadata["authorization"] for c in script.calls} == {f"Bearer {FAKE_KEY}"}


async def test_async_deadline_is_honoured() -> None:
    script = Script(sleep_first=10, sleep_s=2.0)
    with fake_router(script) as (address, _):
        async with AsyncClient(address, FAKE_KEY, timeout_s=0.3, retries=0) as client:
            start = time.monotonic()
            with pytest.raises(DeadlineExceeded) as info:
                await client.route("executor", "bugfix/python", job_id="j1")
            assert time.monotonic() - start < 1.0
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and len(script.calls) == 1
