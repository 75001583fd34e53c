"""Providers from config and the OTEL_* environment; off means nothing wrapped; the Prometheus scrape endpoint."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest

from modelyard.config import OtlpConfig, TelemetryConfig
from modelyard.telemetry import rpc
from modelyard.telemetry.setup import enabled, parse_headers, resolve_otlp, setup
from tests.helpers import ServerThread, write_config
from tests.telemetry.conftest import StartServer, routed_job
from tests.telemetry.receiver import closed_endpoint

GRPC = TelemetryConfig(enabled=True, otlp=OtlpConfig("grpc", "http://cfg:4317", "MY_OTLP_HEADERS"))
HTTP = TelemetryConfig(enabled=True, otlp=OtlpConfig("http/protobuf", "http://cfg:4318"))

# (config, signal, environment, expected protocol, expected endpoint)
RESOLVE = [
    (GRPC, "traces", {}, "grpc", "http://cfg:4317"),
    (HTTP, "traces", {}, "http/protobuf", "http://cfg:4318/v1/traces"),
    (HTTP, "metrics", {}, "http/protobuf", "http://cfg:4318/v1/metrics"),
    (GRPC, "traces", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317"}, "grpc", "http://env:4317"),
    (GRPC, "traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318/"},
     "http/protobuf", "http://env:4318/v1/traces"),
    (HTTP, "traces", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom"}, "http/protobuf", "http://t:1/custom"),
    (HTTP, "metrics", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom"}, "http/protobuf",
     "http://cfg:4318/v1/metrics"),
    (HTTP, "metrics", {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "grpc", "http://cfg:4318"),
    (GRPC, "traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "grpc", "http://cfg:4317"),
]


@pytest.mark.parametrize(("cfg", "signal", "env", "protocol", "endpoint"), RESOLVE)
def test_env_overrides_config_as_the_otel_spec_orders(
    cfg: TelemetryConfig, signal: str, env: dict[str, str], protocol: str, endpoint: str,
) -> None:
    otlp = resolve_otlp(cfg, signal, env)
    assert (otlp.protocol, otlp.endpoint) == (protocol, endpoint)


def test_headers_come_from_the_env_var_the_config_names_unless_otel_headers_are_set() -> None:
    assert resolve_otlp(GRPC, "traces", {"MY_OTLP_HEADERS": "X-Token=a%20b,tenant=t1"}).headers == {
        "x-token": "a b", "tenant": "t1"}
    env = {"MY_OTLP_HEADERS": "x-token=cfg", "OTEL_EXPORTER_OTLP_HEADERS": "x-token=env"}
    assert resolve_otlp(GRPC, "traces", env).headers == {"x-token": "env"}
    assert parse_headers("junk,=x,k=v") == {"k": "v"}


def test_off_in_config_or_by_otel_sdk_disabled_builds_nothing() -> None:
    assert setup(TelemetryConfig()) is None
    assert not enabled(GRPC, {"OTEL_SDK_DISABLED": "true"})
    assert setup(GRPC, {"OTEL_SDK_DISABLED": "TRUE"}) is None
    assert rpc.server_interceptors(None) == []


def test_service_name_from_otel_service_name_wins_over_config() -> None:
    tel = setup(GRPC, {"OTEL_SERVICE_NAME": "from-env", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci"})
    assert tel is not None
    try:
        attrs = tel.tracer_provider.resource.attributes
        assert attrs["service.name"] == "from-env" and attrs["deployment.environment"] == "ci"
    finally:
        tel.shutdown(1)


def test_server_with_telemetry_off_wraps_nothing(tmp_path: Path) -> None:
    thread = ServerThread(write_config(tmp_path))
    thread.start()
    try:
        assert thread.server.telemetry is None
        assert type(thread.app.store).__name__ != "_Timed"
        assert "core_for" not in vars(thread.app)
    finally:
        thread.stop()


def test_prometheus_scrape_endpoint_serves_the_metrics(telemetry_server: StartServer) -> None:
    thread, server = telemetry_server(closed_endpoint(), **{
        "telemetry.prometheus": {"enabled": True, "listen": "127.0.0.1:0"}})
    port = thread.server.telemetry.prometheus_port
    assert port
    with grpc.insecure_channel(server.address) as ch:
        routed_job(ch)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    for name in ("modelyard_decisions", "modelyard_spend", "modelyard_job_cost", "modelyard_budget_remaining",
                 "rpc_server_duration"):
        assert name in body, f"{name} missing from the scrape"
    assert "job-" not in body, "job ids must never be labels"
