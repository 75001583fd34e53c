"""Real OTLP receivers on loopback for the telemetry tests, and collectors that misbehave.

`GrpcReceiver` serves the generated TraceService/MetricsService from opentelemetry-proto;
`HttpReceiver` is a tiny http.server that decodes ExportTrace/MetricsServiceRequest bodies.
`Blackhole` accepts TCP connections and never answers; `GrpcReceiver(delay=...)` answers late.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

TIMEOUT_S = 20.0


def any_value(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Collected:
    """Everything a receiver got, decoded into plain spans and metric points; thread-safe."""

    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    def add(self, req: Any, headers: dict[str, str]) -> None:
        with self._lock:
            (self.traces if isinstance(req, trace_service_pb2.ExportTraceServiceRequest) else self.metrics).append(req)
            self.headers.append(headers)

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            reqs = list(self.traces)
        out = []
        for req in reqs:
            for rs in req.resource_spans:
                resource = {a.key: any_value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append({"name": s.name, "trace_id": s.trace_id.hex(), "kind": s.kind,
                                    "attrs": {a.key: any_value(a.value) for a in s.attributes},
                                    "resource": resource, "raw": s.SerializeToString()})
        return out

    def metric_points(self) -> dict[str, list[dict[str, Any]]]:
        """metric name → attribute sets of every data point seen (all exports)."""
        with self._lock:
            reqs = list(self.metrics)
        out: dict[str, list[dict[str, Any]]] = {}
        for req in reqs:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        points = getattr(m, kind).data_points if kind else []
                        out.setdefault(m.name, []).extend(
                            {a.key: any_value(a.value) for a in p.attributes} for p in points)
        return out

    def histogram_bounds(self, name: str) -> list[float]:
        with self._lock:
            reqs = list(self.metrics)
        for req in reqs:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name and m.WhichOneof("data") == "histogram" and m.histogram.data_points:
                            return list(m.histogram.data_points[0].explicit_bounds)
        return []

    def raw_bytes(self) -> bytes:
        with self._lock:
            return b"".join(r.SerializeToString() for r in [*self.traces, *self.metrics])

    def wait_for(self, check: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"receiver did not get the expected telemetry within {timeout} s")


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, got: Collected, delay: float) -> None:
        self.got, self.delay = got, delay

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(self.delay)
        self.got.add(request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, got: Collected, delay: float) -> None:
        self.got, self.delay = got, delay

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(self.delay)
        self.got.add(request, dict(context.invocation_metadata()))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcReceiver:
    """An OTLP/gRPC collector on a free loopback port; `delay` makes every Export that slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.got = Collected()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self.got, delay), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self.got, delay), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0)


class HttpReceiver:
    """An OTLP/HTTP (protobuf) collector: POST /v1/traces and /v1/metrics."""

    def __init__(self) -> None:
        got = self.got = Collected()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kinds = {"/v1/traces": trace_service_pb2.ExportTraceServiceRequest,
                         "/v1/metrics": metrics_service_pb2.ExportMetricsServiceRequest}
                kind = kinds.get(self.path)
                if kind is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                got.add(kind.FromString(body), {k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HttpReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """Accepts TCP connections and never reads or answers: a collector lost behind a firewall."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self._held.append(conn)
            except OSError:
                continue

    def __enter__(self) -> Blackhole:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for conn in self._held:
            conn.close()
        self.sock.close()


def closed_endpoint() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
