"""Across every method x (no key, unknown key, wrong scope, other tenant's ids): zero calls accepted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest

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
from tests.helpers import key_for

TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python")


def _valid_requests(ch: grpc.Channel, decision_id: str, job_id: str) -> dict[str, tuple[Callable[..., Any], Any, str]]:
    r, c = router_pb2_grpc.RouterStub(ch), catalog_pb2_grpc.CatalogStub(ch)
    b, a = budgets_pb2_grpc.BudgetsStub(ch), admin_pb2_grpc.AdminStub(ch)

    def dispatch(req: Any, **kw: Any) -> list[Any]:
        return list(r.Dispatch(req, **kw))

    return {
        # method: (callable, a request that the right key could send, the scope it needs)
        "Route": (r.Route, router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="j", task=TASK), "route"),
        "Dispatch": (
            dispatch,
            router_pb2.DispatchRequest(
                route=router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="j", task=TASK)
            ),
            "route",
        ),
        "ReportOutcome": (
            r.ReportOutcome,
            router_pb2.OutcomeReport(decision_id=decision_id, status=types_pb2.OUTCOME_STATUS_SUCCESS),
            "report",
        ),
        "CompleteJob": (r.CompleteJob, router_pb2.JobOutcome(job_id=job_id, status=1), "report"),
        "ListModels": (c.ListModels, catalog_pb2.ListModelsRequest(), "read"),
        "Estimate": (c.Estimate, catalog_pb2.EstimateRequest(task=TASK), "read"),
        "GetBudget": (b.GetBudget, budgets_pb2.GetBudgetRequest(), "read"),
        "ReloadConfig": (a.ReloadConfig, admin_pb2.ReloadConfigRequest(), "admin"),
        "GetStats": (a.GetStats, admin_pb2.GetStatsRequest(), "admin"),
        "ExportState": (a.ExportState, admin_pb2.ExportStateRequest(), "admin"),
        "ImportState": (a.ImportState, admin_pb2.ImportStateRequest(state=b"x"), "admin"),
    }


# For each scope, a key that lacks it.
KEY_WITHOUT = {"route": "read", "report": "route", "read": "report", "admin": "beta"}
METHODS = [
    "Route",
    "Dispatch",
    "ReportOutcome",
    "CompleteJob",
    "ListModels",
    "Estimate",
    "GetBudget",
    "ReloadConfig",
    "GetStats",
    "ExportState",
    "ImportState",
]


@pytest.fixture
def acme_job(channel: grpc.Channel) -> tuple[str, str]:
    job_id = f"job-{uuid.uuid4().hex}"
    d = router_pb2_grpc.RouterStub(channel).Route(
        router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id=job_id, task=TASK),
        metadata=auth("admin"),
        timeout=5,
    )
    return d.decision_id, job_id


CASES = [(m, bad) for m in METHODS for bad in ("no key", "unknown key", "malformed header", "wrong scope")]


@pytest.mark.parametrize(("method", "bad"), CASES, ids=[f"{m}-{b}" for m, b in CASES])
def test_rejected(channel: grpc.Channel, acme_job: tuple[str, str], method: str, bad: str) -> None:
    call, request, scope = _valid_requests(channel, *acme_job)[method]
    metadata = {
        "no key": [],
        "unknown key": [("authorization", "Bearer my_not_a_real_key_at_all")],
        "malformed header": [("authorization", key_for("admin"))],  # no "Bearer " prefix
        "wrong scope": auth(KEY_WITHOUT[scope]),
    }[bad]
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=5)
    expected = grpc.StatusCode.PERMISSION_DENIED if bad == "wrong scope" else grpc.StatusCode.UNAUTHENTICATED
    assert info.value.code() == expected, info.value.details()
    # The key never appears in what the server says back.
    assert key_for("admin") not in (info.value.details() or "")


def test_other_tenants_decision_and_job_are_invisible(channel: grpc.Channel, acme_job: tuple[str, str]) -> None:
    decision_id, job_id = acme_job
    r = router_pb2_grpc.RouterStub(channel)
    for call, req in (
        (
            r.ReportOutcome,
            router_pb2.OutcomeReport(decision_id=decision_id, status=1, usage=types_pb2.Usage(input_tokens=10**6)),
        ),
        (r.CompleteJob, router_pb2.JobOutcome(job_id=job_id, status=1)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(req, metadata=auth("beta"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        budgets_pb2_grpc.BudgetsStub(channel).GetBudget(
            budgets_pb2.GetBudgetRequest(tenant="acme"), metadata=auth("beta"), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing was charged by beta's attempt: acme's own report is the first, not a duplicate.
    ack = r.ReportOutcome(
        router_pb2.OutcomeReport(decision_id=decision_id, status=1), metadata=auth("admin"), timeout=5
    )
    assert not ack.duplicate


def test_right_key_is_accepted(channel: grpc.Channel, acme_job: tuple[str, str]) -> None:
    """The matrix above means something only if the same requests succeed with the right key."""
    accepted = 0
    for method in ("Route", "ListModels", "Estimate", "GetBudget", "GetStats", "ExportState"):
        call, request, scope = _valid_requests(channel, *acme_job)[method]
        call(request, metadata=auth({"route": "route", "read": "read", "admin": "admin"}[scope]), timeout=5)
        accepted += 1
    assert accepted == 6
