"""routing.learning: per_tenant keeps one tenant's reports from moving another tenant's estimates."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import ServerThread, write_config

TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/go")


def _licensed_success(ch: grpc.Channel, key: str) -> float:
    resp = catalog_pb2_grpc.CatalogStub(ch).Estimate(
        catalog_pb2.EstimateRequest(task=TASK), metadata=auth(key), timeout=5
    )
    return next(c.expected.success_probability for c in resp.candidates if c.model_id == "licensed-coder")


@pytest.mark.parametrize(("learning", "beta_moves"), [("shared", True), ("per_tenant", False)])
def test_reports_reach_other_tenants_only_when_shared(tmp_path: Path, learning: str, beta_moves: bool) -> None:
    thread = ServerThread(write_config(tmp_path, **{"routing.learning": learning}))
    server = thread.start()
    try:
        with grpc.insecure_channel(server.address) as ch:
            before = _licensed_success(ch, "beta")
            stub = router_pb2_grpc.RouterStub(ch)
            for _ in range(15):
                d = stub.Route(
                    router_pb2.RouteRequest(
                        request_id=uuid.uuid4().hex,
                        job_id="j",
                        task=TASK,
                        constraints=types_pb2.Constraints(allowed_models=["licensed-coder"]),
                    ),
                    metadata=auth(),
                    timeout=5,
                )
                stub.ReportOutcome(
                    router_pb2.OutcomeReport(decision_id=d.decision_id, status=types_pb2.OUTCOME_STATUS_FAILURE),
                    metadata=auth(),
                    timeout=5,
                )
            assert _licensed_success(ch, "admin") < before - 0.1  # acme learned
            after = _licensed_success(ch, "beta")
            assert (after < before - 0.1) is beta_moves, (before, after)
    finally:
        thread.stop()
