"""A routed job through a real server reaches a real OTLP receiver (gRPC and HTTP/protobuf) as spans and metrics."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from modelyard.telemetry import semconv as sc
from tests.telemetry.conftest import TRACE_ID, StartServer, routed_job
from tests.telemetry.receiver import Collected, GrpcReceiver, HttpReceiver

ROUTE, REPORT, COMPLETE = ("/modelyard.v1.Router/Route", "/modelyard.v1.Router/ReportOutcome",
                           "/modelyard.v1.Router/CompleteJob")
ROUTE_ATTRS = (sc.MY_MODEL, sc.MY_PROVIDER, sc.MY_ROLE, sc.MY_TASK_CLASS, sc.MY_EXPECTED_COST,
               sc.MY_EXPECTED_SUCCESS, sc.MY_EXPECTED_LATENCY, sc.MY_EXPLORATION, sc.MY_FALLBACKS, sc.MY_TENANT,
               sc.MY_JOB_ID, sc.MY_DECISION_ID, sc.MY_BUDGET_REMAINING)
DOMAIN_METRICS = (sc.METRIC_DECISIONS, sc.METRIC_OUTCOMES, sc.METRIC_SPEND, sc.METRIC_STEP_DURATION,
                  sc.METRIC_JOB_COST, sc.METRIC_JOB_DURATION, sc.METRIC_BUDGET_REMAINING,
                  sc.METRIC_STORE_DURATION, sc.METRIC_CORE_DURATION, sc.METRIC_RPC_DURATION)


def _by_name(got: Collected, name: str) -> list[dict[str, Any]]:
    return [s for s in got.spans() if s["name"] == name]


def _wait_for_job_spans(got: Collected) -> None:
    got.wait_for(lambda: len(_by_name(got, ROUTE)) >= 2 and len(_by_name(got, REPORT)) >= 2
                 and len(_by_name(got, COMPLETE)) >= 1)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_routed_job_exports_decision_spans_in_the_harness_trace(telemetry_server: StartServer, protocol: str) -> None:
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    with receiver:
        _, server = telemetry_server(receiver.endpoint, protocol, **{"telemetry.service_name": "modelyard-test"})
        with grpc.insecure_channel(server.address) as ch:
            job = routed_job(ch)
        got = receiver.got
        _wait_for_job_spans(got)

    routes = _by_name(got, ROUTE)
    for span in routes:
        assert span["trace_id"] == TRACE_ID, "the harness's traceparent must continue through modelyard"
        assert span["kind"] == 2  # SPAN_KIND_SERVER
        assert span["resource"]["service.name"] == "modelyard-test"
        missing = [a for a in ROUTE_ATTRS if a not in span["attrs"]]
        assert not missing, f"Route span lacks {missing}"
        assert span["attrs"][sc.MY_JOB_ID] == job["job_id"]
        assert span["attrs"]["rpc.system"] == "grpc"
    by_decision = {s["attrs"][sc.MY_DECISION_ID]: s["attrs"] for s in routes}
    for d in job["decisions"]:
        attrs = by_decision[d.decision_id]
        assert attrs[sc.MY_MODEL] == d.model.model_id
        assert attrs[sc.MY_EXPECTED_COST] == pytest.approx(d.expected.cost_usd)
        assert attrs[sc.MY_BUDGET_REMAINING] == pytest.approx(d.budget_remaining_usd)
        assert attrs[sc.MY_TENANT] == "acme" and attrs[sc.MY_TASK_CLASS] == "bugfix/python"
    assert {s["attrs"][sc.MY_ROLE] for s in routes} == {"planner", "executor"}

    reports = _by_name(got, REPORT)
    assert {s["attrs"][sc.MY_OUTCOME_STATUS] for s in reports} == {"success", "failure"}
    assert all(s["attrs"][sc.MY_CHARGED] > 0 and s["trace_id"] == TRACE_ID for s in reports)
    [complete] = _by_name(got, COMPLETE)
    assert complete["attrs"][sc.MY_JOB_STATUS] == "succeeded"
    assert complete["attrs"][sc.MY_JOB_COST] == pytest.approx(job["summary"].total_cost_usd)
    assert complete["trace_id"] == TRACE_ID


def test_routed_job_exports_domain_metrics_with_bounded_labels(telemetry_server: StartServer) -> None:
    with GrpcReceiver() as receiver:
        _, server = telemetry_server(receiver.endpoint)
        with grpc.insecure_channel(server.address) as ch:
            routed_job(ch)
        got = receiver.got
        got.wait_for(lambda: all(name in got.metric_points() for name in DOMAIN_METRICS))
    points = got.metric_points()

    decisions = points[sc.METRIC_DECISIONS]
    assert {p[sc.LABEL_ROLE] for p in decisions} == {"planner", "executor"}
    assert all({sc.LABEL_MODEL, sc.LABEL_EXPLORATION, sc.LABEL_TENANT} <= p.keys() for p in decisions)
    assert {p[sc.LABEL_STATUS] for p in points[sc.METRIC_OUTCOMES]} == {"success", "failure"}
    assert all(p[sc.LABEL_KEY_ID] == "acme-admin" for p in points[sc.METRIC_SPEND])
    assert {p[sc.LABEL_ROLE_MIX] for p in points[sc.METRIC_JOB_COST]} == {"executor+planner"}
    assert {(p[sc.LABEL_TENANT], p[sc.LABEL_WINDOW]) for p in points[sc.METRIC_BUDGET_REMAINING]} >= {("acme", "day")}
    assert {"reserve", "settle", "complete_job"} <= {p[sc.LABEL_OPERATION] for p in points[sc.METRIC_STORE_DURATION]}
    assert {"route", "report"} <= {p[sc.LABEL_OPERATION] for p in points[sc.METRIC_CORE_DURATION]}
    # Ids are span attributes, never labels: a label per job or decision would grow without bound.
    for name, sets in points.items():
        for labels in sets:
            assert not {"job_id", "decision_id", sc.MY_JOB_ID, sc.MY_DECISION_ID} & labels.keys(), name
    assert got.histogram_bounds(sc.METRIC_JOB_COST) == list(sc.JOB_COST_BUCKETS_USD)


def test_task_class_label_is_capped(telemetry_server: StartServer) -> None:
    from modelyard.telemetry.metrics import LabelCap

    cap = LabelCap(3)
    assert [cap(v) for v in ("a", "b", "a", "c", "d", "e", "b")] == ["a", "b", "a", "c", "other", "other", "b"]
    with GrpcReceiver() as receiver:
        _, server = telemetry_server(receiver.endpoint)
        with grpc.insecure_channel(server.address) as ch:
            for i in range(sc.TASK_CLASS_LABEL_CAP + 3):
                routed_job(ch, task_class=f"class-{i}")
        got = receiver.got
        got.wait_for(lambda: any(p.get(sc.LABEL_TASK_CLASS) == sc.LABEL_OVERFLOW
                                 for p in got.metric_points().get(sc.METRIC_DECISIONS, [])))
    classes = {p[sc.LABEL_TASK_CLASS] for p in got.metric_points()[sc.METRIC_DECISIONS]}
    assert len(classes) == sc.TASK_CLASS_LABEL_CAP + 1
