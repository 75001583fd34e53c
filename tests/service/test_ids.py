"""Decision, request and job ids are time-ordered (modelyard/ids.py; the Rust front's the same), so the
store's indexes on them grow at their right edge."""

from __future__ import annotations

import re
import time
import uuid

import grpc

from modelyard.client._common import new_id
from modelyard.ids import time_ordered_id
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth

HEX32 = re.compile(r"[0-9a-f]{32}")


def _ms(i: str) -> int:
    return int(i[:12], 16)


def test_ids_sort_as_they_were_made_and_carry_their_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    first = [time_ordered_id() for _ in range(1000)]
    time.sleep(0.003)
    later = new_id()
    after = time.time_ns() // 1_000_000
    assert all(HEX32.fullmatch(i) for i in [*first, later])
    assert len(set(first)) == len(first)
    assert all(before <= _ms(i) <= after for i in first)
    assert max(first) < later  # a later millisecond sorts after, whatever the random part


def test_both_fronts_hand_out_time_ordered_decision_ids(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.RouterStub(channel)
    ids = []
    for _ in range(3):
        d = stub.Route(router_pb2.RouteRequest(
            request_id=uuid.uuid4().hex, job_id=f"job-{uuid.uuid4().hex}",
            task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="bugfix/python")),
            metadata=auth(), timeout=5)
        ids.append(d.decision_id)
        time.sleep(0.003)
    now = time.time_ns() // 1_000_000
    assert all(HEX32.fullmatch(i) and now - 10_000 <= _ms(i) <= now for i in ids), ids
    assert ids == sorted(ids) and len(set(ids)) == 3
