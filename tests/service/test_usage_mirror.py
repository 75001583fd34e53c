"""The usage mirror behind Route's soft-cap shaping: fresh, windowed, updated locally, never refusing."""

from __future__ import annotations

import time
import uuid

import grpc

from modelyard.budget import UsageMirror
from modelyard.store import WindowUsage
from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.helpers import RunningServer

NOW = 1_764_374_400.0  # 2025-11-29T00:00:00Z
SUBJECTS = (("tenant", "acme"), ("key", "acme-admin"))


def _usages(spent: int = 0, reserved: int = 0, start: float = NOW, reset: float = NOW + 3600) -> list[WindowUsage]:
    return [WindowUsage(scope, subject, w, int(start), int(reset), spent, reserved)
            for scope, subject in SUBJECTS for w in (1, 2, 3)]


def test_get_returns_what_was_put_while_fresh() -> None:
    m = UsageMirror(max_age_s=10)
    assert m.get(SUBJECTS, NOW) is None  # nothing read yet
    m.put(_usages(spent=5, reserved=7), time.monotonic())
    got = m.get(SUBJECTS, NOW + 1)
    assert got is not None and len(got) == 6 and all((u.spent_micros, u.reserved_micros) == (5, 7) for u in got)


def test_stale_or_past_window_entries_force_a_store_read() -> None:
    m = UsageMirror(max_age_s=10)
    m.put(_usages(), time.monotonic() - 11)
    assert m.get(SUBJECTS, NOW) is None  # older than max_age
    m.put(_usages(), time.monotonic())
    assert m.get(SUBJECTS, NOW + 3600) is None  # the hour window has rolled over


def test_local_reserve_and_settle_move_the_counters_of_the_reservations_window() -> None:
    m = UsageMirror(max_age_s=10)
    m.put(_usages(), time.monotonic())
    m.apply(SUBJECTS, NOW + 5, reserved=100)
    m.apply(SUBJECTS, NOW + 5, reserved=-100, spent=60)
    m.apply(SUBJECTS, NOW - 5, reserved=999)  # before these windows: not theirs
    got = m.get(SUBJECTS, NOW + 6)
    assert got is not None and all((u.spent_micros, u.reserved_micros) == (60, 0) for u in got)
    m.forget(SUBJECTS[:1])
    assert m.get(SUBJECTS, NOW + 6) is None


def test_stale_mirrored_exhaustion_never_refuses_a_call(fresh_server: RunningServer) -> None:
    """The mirror says the day budget is gone; the store says nothing was spent: the call goes through."""
    app = fresh_server.thread.app
    now = time.time()
    exhausted = [WindowUsage(s, subj, w, int(now) - 10, int(now) + 3600, 50_000_000, 0)
                 for s, subj in (("tenant", "acme"), ("key", "acme-admin")) for w in (1, 2, 3)]
    fresh_server.thread.call(_put(app, exhausted))
    with grpc.insecure_channel(fresh_server.address) as ch:
        d = router_pb2_grpc.RouterStub(ch).Route(router_pb2.RouteRequest(
            request_id=uuid.uuid4().hex, job_id="mirror",
            task=types_pb2.TaskProfile(role=types_pb2.ROLE_EXECUTOR, task_class="x")), metadata=auth(), timeout=5)
    assert d.model.model_id and d.budget_remaining_usd > 40


async def _put(app, usages: list[WindowUsage]) -> None:
    app.usage.put(usages, time.monotonic())
