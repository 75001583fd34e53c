"""Request building shared by both clients: names to enums, constraints, ids, the retry policy."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import yaml

from modelyard.client import InvalidRequest, ModelyardError, RetryPolicy
from modelyard.client import _common as c
from modelyard.client.errors import error_for
from modelyard.v1 import admin_pb2, types_pb2


@pytest.mark.parametrize(("value", "expected"), [
    ("executor", 2), ("EXECUTOR", 2), ("ROLE_REVIEWER", 3), (types_pb2.ROLE_PLANNER, 1), (" planner ", 1),
])
def test_roles_from_names_or_enums(value: str | int, expected: int) -> None:
    assert c.role(value) == expected


def test_statuses_accept_both_spellings() -> None:
    assert c.outcome_status("success") == c.outcome_status("succeeded") == types_pb2.OUTCOME_STATUS_SUCCESS
    assert c.outcome_status("canceled") == types_pb2.OUTCOME_STATUS_CANCELLED
    assert c.job_status("success") == c.job_status("succeeded") == types_pb2.JOB_STATUS_SUCCEEDED
    assert c.job_status("JOB_STATUS_ABANDONED") == types_pb2.JOB_STATUS_ABANDONED


def test_unknown_names_are_invalid_requests_naming_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="executor") as info:
        c.role("coder")
    assert isinstance(info.value, ValueError) and info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(InvalidRequest):
        c.job_status("done")
    with pytest.raises(InvalidRequest):
        c.role(True)


def test_route_request_fields_and_constraints() -> None:
    req = c.route_request("executor", "bugfix/python", "job-1", {
        "est_input_tokens": 100, "capabilities": ["tools"], "explore": False, "attempt": 2,
        "failed_models": ("a",), "constraints": {"max_cost_usd": 0.5, "allowed_models": "mid-coder",
                                                 "min_success_probability": None},
    })
    assert req.request_id and req.job_id == "job-1" and req.task.role == 2 and req.task.est_input_tokens == 100
    assert list(req.task.required_capabilities) == ["tools"] and req.HasField("explore") and not req.explore
    assert req.attempt == 2 and list(req.failed_models) == ["a"]
    assert req.constraints.HasField("max_cost_usd") and not req.constraints.HasField("min_success_probability")
    assert list(req.constraints.allowed_models) == ["mid-coder"]
    plain = c.route_request("planner", "x", "j", {})
    assert not plain.HasField("explore") and not plain.HasField("constraints") and plain.request_id != req.request_id
    with pytest.raises(InvalidRequest, match="max_cost"):
        c.route_request("planner", "x", "j", {"constraints": {"max_cost": 1}})


def test_outcome_report_sets_cost_only_when_given() -> None:
    assert not c.outcome_report("d", "success", {}).HasField("cost_usd")
    rep = c.outcome_report("d", "failure", {"cost_usd": 0.0, "output_tokens": 5, "model_id": "m"})
    assert rep.HasField("cost_usd") and rep.usage.output_tokens == 5 and rep.status == 2 and rep.model_id == "m"


def test_import_request_takes_bytes_or_an_export() -> None:
    assert c.import_request(admin_pb2.ExportStateResponse(state=b"xy"), True).state == b"xy"
    assert c.import_request(b"z", False).state == b"z"


def test_retry_policy() -> None:
    p = RetryPolicy(retries=2, base_s=0.1, cap_s=0.3)
    assert p.should_retry(grpc.StatusCode.UNAVAILABLE, 1, on_deadline=False)
    assert not p.should_retry(grpc.StatusCode.UNAVAILABLE, 2, on_deadline=False)
    assert not p.should_retry(grpc.StatusCode.DEADLINE_EXCEEDED, 0, on_deadline=False)
    assert p.should_retry(grpc.StatusCode.DEADLINE_EXCEEDED, 0, on_deadline=True)
    assert not p.should_retry(grpc.StatusCode.INTERNAL, 0, on_deadline=True)
    assert 0.05 <= p.delay(0) <= 0.1 and 0.15 <= p.delay(5) <= 0.3


def test_errors_keep_the_message_and_scrub_the_key() -> None:
    err = error_for(grpc.StatusCode.RESOURCE_EXHAUSTED, "day budget exhausted", "k")
    assert type(err).__name__ == "BudgetExceeded" and err.message == "day budget exhausted"
    leaked = error_for(grpc.StatusCode.INTERNAL, "bad key secret-123", "secret-123")
    assert type(leaked) is ModelyardError and "secret-123" not in str(leaked) + repr(leaked)


def test_the_deployed_balancer_hashes_on_the_header_the_client_sends() -> None:
    """deploy/envoy.yaml keeps a job on one replica by the client's job header: renaming either breaks it."""
    envoy = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "envoy.yaml").read_text())
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["hash_policy"] == [{"header": {"header_name": c.JOB_HEADER}}]
    assert envoy["static_resources"]["clusters"][0]["lb_policy"] == "RING_HASH"
