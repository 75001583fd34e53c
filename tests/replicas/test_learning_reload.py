"""Learning and config shared across replicas: reports on one replica reach the others, and a
config change (revoked key, lowered budget) applies on every replica within 2 s."""

from __future__ import annotations

import time
import uuid

import grpc

from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.replicas.conftest import write_cluster_config

TASK = types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/go")


def _success(address: str, model: str = "licensed-coder") -> float:
    with grpc.insecure_channel(address) as ch:
        resp = catalog_pb2_grpc.CatalogStub(ch).Estimate(catalog_pb2.EstimateRequest(task=TASK),
                                                         metadata=auth(), timeout=5)
    return next(c.expected.success_probability for c in resp.candidates if c.model_id == model)


def test_outcomes_on_one_replica_change_estimates_on_another_within_5s(cluster_factory):
    a, b = cluster_factory(2).replicas
    before = _success(b.address)
    with grpc.insecure_channel(a.address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for _ in range(15):
            d = stub.Route(router_pb2.RouteRequest(
                request_id=uuid.uuid4().hex, job_id="j", task=TASK,
                constraints=types_pb2.Constraints(allowed_models=["licensed-coder"])), metadata=auth(), timeout=5)
            stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id,
                                                        status=types_pb2.OUTCOME_STATUS_FAILURE),
                               metadata=auth(), timeout=5)
    reported = time.monotonic()
    assert _success(a.address) < before - 0.1
    while _success(b.address) >= before - 0.1:
        assert time.monotonic() - reported < 5, "replica B did not learn within 5 s"
        time.sleep(0.05)
    print(f"B learned {time.monotonic() - reported:.2f}s after A's last report")


def _route_code(address: str, key: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as ch:
        try:
            router_pb2_grpc.RouterStub(ch).Route(
                router_pb2.RouteRequest(request_id=uuid.uuid4().hex, job_id="j", task=TASK),
                metadata=auth(key), timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def test_revoked_key_and_lowered_budget_apply_on_every_replica_within_2s(cluster_factory):
    cluster = cluster_factory(3)
    addresses = [r.address for r in cluster.replicas]
    assert {_route_code(a, "route") for a in addresses} == {grpc.StatusCode.OK}
    assert {_route_code(a, "beta") for a in addresses} == {grpc.StatusCode.OK}
    cfg = cluster.cfg
    acme = cfg["tenants"][0]
    acme["keys"] = [k for k in acme["keys"] if k["id"] != "acme-route"]
    cfg["tenants"][1]["budgets"] = {"day": {"hard_usd": 0.000001}}
    write_cluster_config(cluster.config, cfg)
    changed = time.monotonic()
    pending = {(a, "route"): grpc.StatusCode.UNAUTHENTICATED for a in addresses}
    pending.update({(a, "beta"): grpc.StatusCode.RESOURCE_EXHAUSTED for a in addresses})
    while pending:
        assert time.monotonic() - changed < 2.0, f"not applied within 2 s: {sorted(pending)}"
        pending = {(a, k): want for (a, k), want in pending.items() if _route_code(a, k) != want}
        time.sleep(0.05)
    print(f"applied on all replicas {time.monotonic() - changed:.2f}s after the write")


def test_a_new_replica_starts_from_the_shared_state(cluster_factory):
    cluster = cluster_factory(1)
    before = _success(cluster.replicas[0].address)
    with grpc.insecure_channel(cluster.replicas[0].address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for _ in range(15):
            d = stub.Route(router_pb2.RouteRequest(
                request_id=uuid.uuid4().hex, job_id="j", task=TASK,
                constraints=types_pb2.Constraints(allowed_models=["licensed-coder"])), metadata=auth(), timeout=5)
            stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id,
                                                        status=types_pb2.OUTCOME_STATUS_FAILURE),
                               metadata=auth(), timeout=5)
    cluster.stop()  # graceful: the last contribution is pushed on the way out
    learned = _success_after_restart(cluster)
    assert learned < before - 0.1, (before, learned)


def _success_after_restart(cluster) -> float:
    fresh = cluster.spawn("r-new")  # a new replica id: it adopts nothing, merges everyone's
    cluster.wait_ready(fresh)
    return _success(fresh.address)


def _evidence(address: str, model: str = "licensed-coder") -> float:
    with grpc.insecure_channel(address) as ch:
        resp = catalog_pb2_grpc.CatalogStub(ch).ListModels(catalog_pb2.ListModelsRequest(include_estimates=True),
                                                           metadata=auth(), timeout=5)
    info = next(m for m in resp.models if m.model_id == model)
    return sum(e.evidence for e in info.estimates
               if e.role == types_pb2.ROLE_EXECUTOR and e.task_class == TASK.task_class)


def test_every_replica_serves_each_report_exactly_once(cluster_factory):
    cluster = cluster_factory(3)
    plan = {0: [types_pb2.OUTCOME_STATUS_SUCCESS] * 6,
            1: [types_pb2.OUTCOME_STATUS_FAILURE] * 4,
            2: [types_pb2.OUTCOME_STATUS_SUCCESS, types_pb2.OUTCOME_STATUS_FAILURE] * 3}
    for i, statuses in plan.items():
        with grpc.insecure_channel(cluster.replicas[i].address) as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            for status in statuses:
                d = stub.Route(router_pb2.RouteRequest(
                    request_id=uuid.uuid4().hex, job_id="j", task=TASK,
                    constraints=types_pb2.Constraints(allowed_models=["licensed-coder"])), metadata=auth(), timeout=5)
                stub.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id, status=status),
                                   metadata=auth(), timeout=5)
    total = sum(len(s) for s in plan.values())
    reported = time.monotonic()
    addresses = [r.address for r in cluster.replicas]
    while any(abs(_evidence(a) - total) > 1e-3 for a in addresses):
        assert time.monotonic() - reported < 5, [_evidence(a) for a in addresses]
        time.sleep(0.05)
    time.sleep(1.5)  # three more syncs: merged changes are never sent or merged again
    assert [round(_evidence(a), 3) for a in addresses] == [total] * 3
