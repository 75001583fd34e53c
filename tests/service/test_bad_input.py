"""Every RPC answers malformed input with INVALID_ARGUMENT naming the field, and keeps serving."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelyard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    types_pb2,
)
from tests.conftest import auth

NAN = math.nan


def task(**kw: Any) -> types_pb2.TaskProfile:
    base = {"role": types_pb2.ROLE_EXECUTOR, "task_class": "bugfix/python"}
    base.update(kw)
    return types_pb2.TaskProfile(**base)


def route_req(**kw: Any) -> router_pb2.RouteRequest:
    base: dict[str, Any] = {"request_id": "r-1", "job_id": "j-1", "task": task()}
    base.update(kw)
    return router_pb2.RouteRequest(**base)


def outcome(**kw: Any) -> router_pb2.OutcomeReport:
    base: dict[str, Any] = {"decision_id": "d-1", "status": types_pb2.OUTCOME_STATUS_SUCCESS}
    base.update(kw)
    return router_pb2.OutcomeReport(**base)


ROUTE_CASES = [
    ("missing request_id", route_req(request_id=""), "request_id"),
    ("oversized request_id", route_req(request_id="x" * 129), "request_id"),
    ("control chars in job_id", route_req(job_id="a\x00b"), "job_id"),
    ("missing job_id", route_req(job_id=""), "job_id"),
    ("missing task", router_pb2.RouteRequest(request_id="r", job_id="j"), "task"),
    ("unspecified role", route_req(task=task(role=0)), "task.role"),
    ("unknown role enum", route_req(task=task(role=99)), "task.role"),
    ("missing task_class", route_req(task=task(task_class="")), "task.task_class"),
    ("negative input tokens", route_req(task=task(est_input_tokens=-5)), "task.est_input_tokens"),
    ("huge output tokens", route_req(task=task(est_output_tokens=10**12)), "task.est_output_tokens"),
    (
        "cached > input",
        route_req(task=task(est_input_tokens=10, est_cached_input_tokens=20)),
        "task.est_cached_input_tokens",
    ),
    ("negative context window", route_req(task=task(min_context_window=-1)), "task.min_context_window"),
    ("too many capabilities", route_req(task=task(required_capabilities=["t"] * 300)), "task.required_capabilities"),
    ("NaN max cost", route_req(constraints=types_pb2.Constraints(max_cost_usd=NAN)), "constraints.max_cost_usd"),
    ("negative max cost", route_req(constraints=types_pb2.Constraints(max_cost_usd=-1)), "constraints.max_cost_usd"),
    (
        "inf latency",
        route_req(constraints=types_pb2.Constraints(max_latency_ms=math.inf)),
        "constraints.max_latency_ms",
    ),
    (
        "min success > 1",
        route_req(constraints=types_pb2.Constraints(min_success_probability=1.5)),
        "constraints.min_success_probability",
    ),
    (
        "empty denied model",
        route_req(constraints=types_pb2.Constraints(denied_models=[""])),
        "constraints.denied_models[0]",
    ),
    ("negative attempt", route_req(attempt=-1), "attempt"),
    ("huge attempt", route_req(attempt=1000), "attempt"),
    ("negative context tokens", route_req(context_tokens=-3), "context_tokens"),
    (
        "allow list of unknown models",
        route_req(constraints=types_pb2.Constraints(allowed_models=["nope", "big-codr"])),
        "constraints.allowed_models",
    ),
]

OUTCOME_CASES = [
    ("missing decision_id", outcome(decision_id=""), "decision_id"),
    ("unspecified status", outcome(status=0), "status"),
    ("unknown status enum", outcome(status=42), "status"),
    ("negative input tokens", outcome(usage=types_pb2.Usage(input_tokens=-1)), "usage.input_tokens"),
    (
        "cached > input",
        outcome(usage=types_pb2.Usage(input_tokens=1, cached_input_tokens=2)),
        "usage.cached_input_tokens",
    ),
    ("negative output tokens", outcome(usage=types_pb2.Usage(output_tokens=-1)), "usage.output_tokens"),
    ("NaN latency", outcome(latency_ms=NAN), "latency_ms"),
    ("negative latency", outcome(latency_ms=-1), "latency_ms"),
    ("NaN cost", outcome(cost_usd=NAN), "cost_usd"),
    ("negative cost", outcome(cost_usd=-0.5), "cost_usd"),
    ("NaN ttft", outcome(time_to_first_token_ms=NAN), "time_to_first_token_ms"),
    ("oversized model id", outcome(model_id="m" * 500), "model_id"),
]


def _assert_invalid(call: Any, request: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=auth(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert info.value.details().startswith(field + ":") or f"{field}:" in info.value.details(), info.value.details()


@pytest.mark.parametrize(("name", "request_msg", "field"), ROUTE_CASES, ids=[c[0] for c in ROUTE_CASES])
def test_route_rejects(channel: grpc.Channel, name: str, request_msg: Any, field: str) -> None:
    _assert_invalid(router_pb2_grpc.RouterStub(channel).Route, request_msg, field)


@pytest.mark.parametrize(("name", "request_msg", "field"), ROUTE_CASES[:8], ids=[c[0] for c in ROUTE_CASES[:8]])
def test_dispatch_rejects(channel: grpc.Channel, name: str, request_msg: Any, field: str) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Dispatch(router_pb2.DispatchRequest(route=request_msg), metadata=auth(), timeout=5))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"route.{field}:" in info.value.details()


@pytest.mark.parametrize(("name", "request_msg", "field"), OUTCOME_CASES, ids=[c[0] for c in OUTCOME_CASES])
def test_report_outcome_rejects(channel: grpc.Channel, name: str, request_msg: Any, field: str) -> None:
    _assert_invalid(router_pb2_grpc.RouterStub(channel).ReportOutcome, request_msg, field)


@pytest.mark.parametrize(
    ("request_msg", "field"),
    [
        (router_pb2.JobOutcome(job_id="", status=1), "job_id"),
        (router_pb2.JobOutcome(job_id="j", status=0), "status"),
        (router_pb2.JobOutcome(job_id="j", status=9), "status"),
        (router_pb2.JobOutcome(job_id="j" * 200, status=1), "job_id"),
    ],
)
def test_complete_job_rejects(channel: grpc.Channel, request_msg: Any, field: str) -> None:
    _assert_invalid(router_pb2_grpc.RouterStub(channel).CompleteJob, request_msg, field)


@pytest.mark.parametrize(
    ("request_msg", "field"),
    [
        (catalog_pb2.EstimateRequest(), "task"),
        (catalog_pb2.EstimateRequest(task=task(role=77)), "task.role"),
        (catalog_pb2.EstimateRequest(task=task(est_input_tokens=-1)), "task.est_input_tokens"),
        (
            catalog_pb2.EstimateRequest(task=task(), constraints=types_pb2.Constraints(max_cost_usd=NAN)),
            "constraints.max_cost_usd",
        ),
        (
            catalog_pb2.EstimateRequest(task=task(), constraints=types_pb2.Constraints(allowed_models=["nope"])),
            "constraints.allowed_models",
        ),
    ],
)
def test_estimate_rejects(channel: grpc.Channel, request_msg: Any, field: str) -> None:
    _assert_invalid(catalog_pb2_grpc.CatalogStub(channel).Estimate, request_msg, field)


def test_get_budget_rejects_oversized_tenant(channel: grpc.Channel) -> None:
    _assert_invalid(
        budgets_pb2_grpc.BudgetsStub(channel).GetBudget, budgets_pb2.GetBudgetRequest(tenant="t" * 300), "tenant"
    )


@pytest.mark.parametrize(
    ("request_msg", "field"),
    [
        (admin_pb2.ImportStateRequest(state=b""), "state"),
        (admin_pb2.ImportStateRequest(state=b"definitely not a snapshot"), "state"),
    ],
)
def test_import_state_rejects(channel: grpc.Channel, request_msg: Any, field: str) -> None:
    _assert_invalid(admin_pb2_grpc.AdminStub(channel).ImportState, request_msg, field)


def test_oversized_message_is_refused_and_server_keeps_serving(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    big = route_req(failed_models=["m" * 100] * 60_000)  # ~6 MB > max_message_bytes
    with pytest.raises(grpc.RpcError) as info:
        stub.Route(big, metadata=auth(), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_oversized_metadata_is_refused(server: Any) -> None:
    with grpc.insecure_channel(server.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.Route(route_req(), metadata=[*auth(), ("x-padding", "p" * 40_000)], timeout=5)
        assert info.value.code() in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNAVAILABLE,
        )
    with grpc.insecure_channel(server.address) as ch:
        ok = router_pb2_grpc.RouterStub(ch).Route(route_req(request_id="after-metadata"), metadata=auth(), timeout=5)
        assert ok.model.model_id


def test_server_still_routes_after_bad_input(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    for _, bad, _ in ROUTE_CASES:
        with pytest.raises(grpc.RpcError):
            stub.Route(bad, metadata=auth(), timeout=5)
    ok = stub.Route(route_req(request_id="after-bad-input"), metadata=auth(), timeout=5)
    assert ok.model.model_id and ok.decision_id


def test_an_allow_list_naming_one_known_model_still_routes_to_it(channel: grpc.Channel) -> None:
    # Unknown names next to a known one are not an error: a harness may share one allow list
    # across deployments whose catalogs differ.
    d = router_pb2_grpc.RouterStub(channel).Route(
        route_req(request_id="allow-mixed", constraints=types_pb2.Constraints(allowed_models=["nope", "big-coder"])),
        metadata=auth(), timeout=5)
    assert d.model.model_id == "big-coder"
