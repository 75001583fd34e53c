"""The binder interceptor builds its wrapper once per method, and again only when the inner handler changes."""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from modelyard.telemetry import rpc
from modelyard.telemetry.metrics import Metrics


class _Tel:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.metrics = Metrics(MeterProvider(metric_readers=[self.reader]).get_meter("test"))


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method


class _Context:
    def code(self) -> None:
        return None


async def _behavior(request: Any, context: Any) -> str:
    assert rpc.current() is not None  # the binder made the telemetry current for the call
    return f"ok {request}"


async def test_wrapper_is_built_once_per_method_and_rebuilt_when_the_handler_changes() -> None:
    tel = _Tel()
    bind = rpc._Bind(tel)  # type: ignore[arg-type]
    first = grpc.unary_unary_rpc_method_handler(_behavior)
    second = grpc.unary_unary_rpc_method_handler(_behavior)
    current = first

    async def continuation(details: Any) -> grpc.RpcMethodHandler:
        return current

    a = await bind.intercept_service(continuation, _Details("/pkg.Svc/Route"))
    b = await bind.intercept_service(continuation, _Details("/pkg.Svc/Route"))
    assert a is b and a is not first
    other = await bind.intercept_service(continuation, _Details("/pkg.Svc/Other"))
    assert other is not a  # each method has its own labels
    current = second
    c = await bind.intercept_service(continuation, _Details("/pkg.Svc/Route"))
    assert c is not a

    assert await a.unary_unary("x", _Context()) == "ok x"
    data = tel.reader.get_metrics_data()
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              for p in m.data.data_points if m.name == rpc.sc.METRIC_RPC_DURATION]
    assert [dict(p.attributes) for p in points] == [
        {rpc.sc.LABEL_RPC_SERVICE: "pkg.Svc", rpc.sc.LABEL_RPC_METHOD: "Route", rpc.sc.LABEL_GRPC_CODE: "OK"}]
