"""Builds the OpenTelemetry tracer and meter providers and their exporters from config and OTEL_* env.

The only module that configures OTel providers. Providers are per server (never the global ones),
export runs on the SDK's batch threads with bounded queues and short timeouts, and `shutdown`
returns within a bound whatever the collector does.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from modelyard.config import TelemetryConfig
from modelyard.telemetry import logs
from modelyard.telemetry import semconv as sc
from modelyard.telemetry.metrics import BulkHistogramAggregation, Metrics, bulk_supported
from modelyard.telemetry.shipper import SpanShipper

log = logging.getLogger("modelyard.telemetry")

SCOPE = "modelyard"
EXPORT_TIMEOUT_S = 2.0  # per export call, retries included; a slow collector costs a batch, never a request
SHUTDOWN_TIMEOUT_S = 5.0  # flush on stop, traces and metrics together: well inside the 10 s shutdown budget
BSP_QUEUE = 2048
BSP_BATCH = 512
BSP_DELAY_MS = 1000
METRIC_INTERVAL_MS = 10_000

_HISTOGRAM_BUCKETS: tuple[tuple[str, tuple[float, ...]], ...] = (
    (sc.METRIC_TOKEN_USAGE, sc.TOKEN_USAGE_BUCKETS),
    (sc.METRIC_OPERATION_DURATION, sc.DURATION_BUCKETS_S),
    (sc.METRIC_STEP_DURATION, sc.DURATION_BUCKETS_S),
    (sc.METRIC_JOB_COST, sc.JOB_COST_BUCKETS_USD),
    (sc.METRIC_JOB_DURATION, sc.JOB_DURATION_BUCKETS_S),
    (sc.METRIC_STORE_DURATION, sc.STORE_DURATION_BUCKETS_S),
    (sc.METRIC_CORE_DURATION, sc.STORE_DURATION_BUCKETS_S),
    (sc.METRIC_RPC_DURATION, sc.RPC_DURATION_BUCKETS_MS),
)


@dataclass(frozen=True, slots=True)
class Otlp:
    """Where and how one signal is exported, after the OTEL_* environment has had its say."""

    protocol: str  # "grpc" | "http/protobuf"
    endpoint: str
    headers: Mapping[str, str]


@dataclass(slots=True)
class Telemetry:
    """One server's telemetry: providers, the tracer, the instruments and the optional scrape endpoint."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    tracer: Tracer
    metrics: Metrics
    record_content: bool
    prometheus_port: int = 0
    _prometheus_server: Any = None
    #: The provider's span processor and the tracer's scope, for spans built whole (front.py).
    span_processor: SpanProcessor | None = None
    scope: InstrumentationScope | None = None
    #: Exports the spans the Rust front encodes itself (front.py), through the same exporter.
    front_spans: SpanShipper | None = None

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Flush and stop; True when everything finished within `timeout_s`."""

        def run() -> None:
            if self.front_spans is not None:  # before the provider shuts the exporter they share
                self.front_spans.shutdown(timeout_s / 2)
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=timeout_s * 1000 / 2)

        worker = threading.Thread(target=run, name="modelyard-telemetry-shutdown", daemon=True)
        worker.start()
        if self._prometheus_server is not None:
            self._prometheus_server.shutdown()
            self._prometheus_server.server_close()
        worker.join(timeout_s)
        if worker.is_alive():
            log.warning("telemetry flush did not finish within %.0f s; dropping what is left", timeout_s)
            return False
        return True


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _env(environ, name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        log.warning("%s=%r is not a whole number; using %d", name, raw, default)
        return default


def parse_pairs(raw: str | None, *, lower: bool = False) -> dict[str, str]:
    """"k=v,k2=v2" with URL-encoded values, as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES."""
    out: dict[str, str] = {}
    for item in (raw or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip().lower() if lower else key.strip()] = unquote(value.strip())
    return out


def parse_headers(raw: str | None) -> dict[str, str]:
    return parse_pairs(raw, lower=True)


def resolve_otlp(cfg: TelemetryConfig, signal: str, environ: Mapping[str, str] = os.environ) -> Otlp:
    """Config file values, overridden by OTEL_EXPORTER_OTLP_[SIGNAL_]* as the OTel spec orders them."""
    upper = signal.upper()
    protocol = _env(environ, f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "grpc", "http/protobuf"):
        log.warning("OTLP protocol %r is not supported; using %s from the config", protocol, cfg.otlp.protocol)
        protocol = None
    protocol = protocol or cfg.otlp.protocol
    exact = _env(environ, f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")
    base = _env(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or cfg.otlp.endpoint
    if exact:
        endpoint = exact
    elif protocol == "http/protobuf":
        endpoint = f"{base.rstrip('/')}/v1/{signal}"
    else:
        endpoint = base
    headers_raw = _env(environ, f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
    if headers_raw is None and cfg.otlp.headers_env:
        headers_raw = environ.get(cfg.otlp.headers_env)
    return Otlp(protocol=protocol, endpoint=endpoint, headers=parse_headers(headers_raw))


REDACT_SPANS = True  # credentials never leave in a span (redact.py); the front's spans follow the same rule


def _span_exporter(otlp: Otlp) -> SpanExporter:
    """The SDK's OTLP exporter for the protocol, encoding with otlp_encode and redacting as it encodes."""
    from modelyard.telemetry.otlp_export import GrpcSpanExporter, HttpSpanExporter

    spans = GrpcSpanExporter if otlp.protocol == "grpc" else HttpSpanExporter
    return spans(endpoint=otlp.endpoint, headers=dict(otlp.headers), timeout=EXPORT_TIMEOUT_S, redact=REDACT_SPANS)


def _metric_exporter(otlp: Otlp) -> MetricExporter:
    if otlp.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        return GrpcMetrics(endpoint=otlp.endpoint, headers=dict(otlp.headers), timeout=EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    return HttpMetrics(endpoint=otlp.endpoint, headers=dict(otlp.headers), timeout=EXPORT_TIMEOUT_S)


def _resource(cfg: TelemetryConfig, environ: Mapping[str, str]) -> Resource:
    from modelyard import __version__

    # OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES, which beats the config file.
    attrs = {"service.version": __version__, "service.name": cfg.service_name,
             **parse_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES"))}
    attrs["service.name"] = _env(environ, "OTEL_SERVICE_NAME") or attrs["service.name"]
    return Resource.create(attrs)


def _views() -> list[View]:
    bulk_supported()  # probed here, at start-up, rather than on the front's first batch
    return [View(instrument_name=name, aggregation=BulkHistogramAggregation(boundaries=buckets))
            for name, buckets in _HISTOGRAM_BUCKETS]


def _prometheus(cfg: TelemetryConfig) -> tuple[MetricReader, Any, int]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()  # per server, so two servers in one process never collide
    reader = PrometheusMetricReader(registry=registry)
    host, _, port = cfg.prometheus.listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    return reader, server, server.server_port


def enabled(cfg: TelemetryConfig, environ: Mapping[str, str] = os.environ) -> bool:
    return cfg.enabled and (_env(environ, "OTEL_SDK_DISABLED") or "false").lower() != "true"


def setup(cfg: TelemetryConfig, environ: Mapping[str, str] = os.environ) -> Telemetry | None:
    """Providers and exporters for one server, or None when telemetry is off (then nothing is wrapped)."""
    if not enabled(cfg, environ):
        return None
    logs.install()
    resource = _resource(cfg, environ)
    traces = resolve_otlp(cfg, "traces", environ)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    span_exporter = _span_exporter(traces)
    max_queue = _env_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE", BSP_QUEUE)
    max_batch = _env_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", BSP_BATCH)
    delay_ms = _env_int(environ, "OTEL_BSP_SCHEDULE_DELAY", BSP_DELAY_MS)
    span_processor = BatchSpanProcessor(
        span_exporter, max_queue_size=max_queue, max_export_batch_size=max_batch,
        schedule_delay_millis=delay_ms, export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
    )
    tracer_provider.add_span_processor(span_processor)
    readers: list[MetricReader] = [PeriodicExportingMetricReader(
        _metric_exporter(resolve_otlp(cfg, "metrics", environ)),
        export_interval_millis=_env_int(environ, "OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
        export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
    )]
    prom_server, prom_port = None, 0
    if cfg.prometheus.enabled:
        reader, prom_server, prom_port = _prometheus(cfg)
        readers.append(reader)
    # Exemplars off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them: the SDK's default (trace_based)
    # offers every measurement of a sampled request to a reservoir, a cost on each of Route's records.
    exemplars = None if _env(environ, "OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, views=_views(),
                                   shutdown_on_exit=False, exemplar_filter=exemplars)
    log.info("telemetry: traces to %s (%s), metrics every %d ms%s", traces.endpoint, traces.protocol,
             _env_int(environ, "OTEL_METRIC_EXPORT_INTERVAL", METRIC_INTERVAL_MS),
             f", Prometheus on port {prom_port}" if prom_port else "")
    schema_url = f"https://opentelemetry.io/schemas/{sc.SEMCONV_VERSION}"
    scope = InstrumentationScope(SCOPE, "", schema_url)
    front_spans = SpanShipper(span_exporter, resource, scope, redact=REDACT_SPANS,
                              max_queue=max_queue, max_batch=max_batch, delay_s=delay_ms / 1000)
    return Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer(SCOPE, schema_url=schema_url),
        metrics=Metrics(meter_provider.get_meter(SCOPE)), record_content=cfg.record_content,
        prometheus_port=prom_port, _prometheus_server=prom_server,
        span_processor=span_processor, scope=scope, front_spans=front_spans,
    )
