"""A job's steps spread over replicas (a load balancer that balances each call): a retry routed by one
replica knows how the job's failed try ran, though that failure was reported to another."""

from __future__ import annotations

import grpc

from modelyard.v1 import router_pb2, router_pb2_grpc, types_pb2
from tests.conftest import auth
from tests.service.test_router import _only, _retry_p, _teach_retries_by_effort, route


def test_a_retry_on_one_replica_uses_the_failure_reported_to_another(cluster_factory):
    a, b = cluster_factory(2).replicas
    with grpc.insecure_channel(a.address) as ca, grpc.insecure_channel(b.address) as cb:
        on_a, on_b = router_pb2_grpc.RouterStub(ca), router_pb2_grpc.RouterStub(cb)
        _teach_retries_by_effort(on_a)
        p = {}
        for times in (8.0, 0.125):
            job = f"spread-{times}"
            # A routes the first try, B hears that it failed (and how long it ran), A routes the retry.
            d = route(on_a, job, constraints=_only("tiny-coder"))
            usage = types_pb2.Usage(input_tokens=int(20_000 * times), output_tokens=int(1_500 * times))
            on_b.ReportOutcome(router_pb2.OutcomeReport(decision_id=d.decision_id, status=2, usage=usage),
                               metadata=auth(), timeout=5)
            p[times] = _retry_p(on_a, job)
    assert p[8.0] < 0.3 < 0.7 < p[0.125], p
