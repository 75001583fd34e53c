"""Parsers for the service sections: server, store, routing, telemetry, endpoints."""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modelyard.config._reader import SLUG, Reader, join
from modelyard.config.schema import (
    ENDPOINT_APIS,
    ROLES,
    BreakerConfig,
    DriftConfig,
    EndpointConfig,
    EscalationConfig,
    OtlpConfig,
    PrometheusConfig,
    RedisConfig,
    RoutingConfig,
    ServerConfig,
    SqliteConfig,
    StoreConfig,
    TelemetryConfig,
    TokenDefaults,
)

LISTEN = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+|\*):\d{1,5}$")


def server(r: Reader, raw: Any) -> ServerConfig:
    p = "server"
    d = r.mapping(raw, p, ServerConfig.__slots__, "write server settings as a mapping")
    dflt = ServerConfig()
    return ServerConfig(
        listen=r.text(d, "listen", p, 'write host:port, e.g. "127.0.0.1:50051" or "[::]:50051"',
                      default=dflt.listen, pattern=LISTEN, what="host:port"),
        reflection=r.boolean(d, "reflection", p, "write true to serve gRPC reflection (dev only)",
                             dflt.reflection),
        max_message_bytes=r.number(d, "max_message_bytes", p, "write a size in bytes, e.g. 4194304",
                                   default=dflt.max_message_bytes, lo=1024, integer=True),
        max_concurrent_rpcs=r.number(d, "max_concurrent_rpcs", p, "write a limit such as 1000",
                                     default=dflt.max_concurrent_rpcs, lo=1, integer=True),
        max_metadata_bytes=r.number(d, "max_metadata_bytes", p, "write a size in bytes, e.g. 16384",
                                    default=dflt.max_metadata_bytes, lo=1024, integer=True),
        shutdown_grace_s=r.number(d, "shutdown_grace_s", p, "write seconds to drain on shutdown, e.g. 10",
                                  default=dflt.shutdown_grace_s, lo=0),
        default_deadline_ms=r.number(d, "default_deadline_ms", p,
                                     "write the deadline applied when a caller sets none, e.g. 5000",
                                     default=dflt.default_deadline_ms, lo=1, integer=True),
        front=r.choice(d, "front", p, ("python", "rust"),
                       "python serves every call in grpc.aio; rust serves Route in Rust, the rest in grpc.aio",
                       dflt.front),
    )


def store(r: Reader, raw: Any, base_dir: Path) -> StoreConfig:
    p = "store"
    d = r.mapping(raw, p, StoreConfig.__slots__, "write store settings as a mapping")
    kind = r.choice(d, "kind", p, ("sqlite", "redis"),
                    "use sqlite for one node, redis when several replicas share budgets", "sqlite")
    sq = r.mapping(d.get("sqlite"), join(p, "sqlite"), ("path",), 'write e.g. { path: "./modelyard.db" }')
    raw_path = r.text(sq, "path", join(p, "sqlite"), "write a file path; relative paths resolve "
                      "against the config file's directory", default="./modelyard.db")
    path = Path(raw_path) if raw_path == ":memory:" else (base_dir / raw_path).resolve()
    rd = r.mapping(d.get("redis"), join(p, "redis"), RedisConfig.__slots__,
                   "write e.g. { url_env: MODELYARD_REDIS_URL }")
    redis = RedisConfig(
        url_env=r.env_name(rd, "url_env", join(p, "redis"), "the Redis URL", "MODELYARD_REDIS_URL"),
        key_prefix=r.text(rd, "key_prefix", join(p, "redis"), "write a short prefix such as modelyard",
                          default="modelyard", pattern=SLUG, what="a lowercase prefix"),
        wait_replicas=r.number(rd, "wait_replicas", join(p, "redis"), "write how many Redis replicas "
                               "must acknowledge a settle (0 without replicas, else 1)", default=0, lo=0,
                               hi=5, integer=True),
        replica_id_env=r.env_name(rd, "replica_id_env", join(p, "redis"), "this replica's label",
                                  "MODELYARD_REPLICA_ID"),
        sync_interval_s=r.number(rd, "sync_interval_s", join(p, "redis"), "write seconds between "
                                 "learning syncs, e.g. 1", default=1.0, lo=0.1, hi=60),
        compact_interval_s=r.number(rd, "compact_interval_s", join(p, "redis"), "write seconds between "
                                    "bases of the learning log, e.g. 60", default=60.0, lo=1, hi=86400),
    )
    if kind == "redis" and "redis" not in d:
        r.error(join(p, "redis"), "is required when store.kind is redis",
                "add redis: { url_env: MODELYARD_REDIS_URL } and set that variable")
    return StoreConfig(
        kind=kind, sqlite=SqliteConfig(path=path), redis=redis,
        reservation_ttl_s=r.number(d, "reservation_ttl_s", p, "write seconds a reservation may stay "
                                   "unsettled, e.g. 600", default=600.0, lo=1),
        on_expiry=r.choice(d, "on_expiry", p, ("charge", "release"),
                           "charge bills an expired reservation at its estimate; release frees it",
                           "charge"),
        on_unavailable=r.choice(d, "on_unavailable", p, ("fail_closed", "fail_open"),
                                "fail_closed answers UNAVAILABLE when the store is down", "fail_closed"),
        fail_open_cap_usd=r.number(d, "fail_open_cap_usd", p, "write the most a replica may spend "
                                   "unrecorded while the store is down, in USD", default=5.0, lo=0),
    )


def _escalation(r: Reader, raw: Any, p: str) -> MappingProxyType[str, EscalationConfig]:
    d = r.mapping(raw, p, ROLES, "write escalation per role, e.g. executor: { after_failures: 1, min_tier: 2 }")
    out = {}
    for role, spec in d.items():
        rp = join(p, role)
        e = r.mapping(spec, rp, ("after_failures", "min_tier"), "write { after_failures: 1, min_tier: 2 }")
        out[role] = EscalationConfig(
            after_failures=r.number(e, "after_failures", rp, "write how many failed attempts in a job "
                                    "raise the tier, e.g. 1", lo=1, integer=True),
            min_tier=r.number(e, "min_tier", rp, "write the tier (1 cheap … 4 frontier) required after "
                              "that many failures", lo=1, hi=4, integer=True),
        )
    return MappingProxyType(out)


def routing(r: Reader, raw: Any) -> RoutingConfig:
    p = "routing"
    d = r.mapping(raw, p, RoutingConfig.__slots__, "write routing settings as a mapping")
    tp = join(p, "default_tokens")
    t = r.mapping(d.get("default_tokens"), tp, TokenDefaults.__slots__,
                  "write { input: 20000, output: 1500, cached_input: 0 }")
    tok = "write a token count used when a request gives no estimate"
    bp, dp = join(p, "breaker"), join(p, "drift")
    b = r.mapping(d.get("breaker"), bp, BreakerConfig.__slots__, "write { failures_to_open: 5, open_s: 30 }")
    dr = r.mapping(d.get("drift"), dp, DriftConfig.__slots__, "write { enabled: true, window: 20 }")
    return RoutingConfig(
        explore=r.boolean(d, "explore", p, "write true to let Thompson sampling explore", True),
        seed=r.number(d, "seed", p, "write any whole number ≥ 0", default=0, lo=0, integer=True),
        half_life_hours=r.number(d, "half_life_hours", p, "write how many hours until old evidence "
                                 "counts half, e.g. 168 (one week)", default=168.0, lo=0, lo_open=True),
        job_credit_weight=r.number(d, "job_credit_weight", p, "write the weight of a job's final outcome "
                                   "on each of its steps, 0..1", default=0.5, lo=0, hi=1),
        learning=r.choice(d, "learning", p, ("shared", "per_tenant"),
                          "per_tenant keeps one tenant's reports from steering another's routing",
                          "shared"),
        default_tokens=TokenDefaults(
            input=r.number(t, "input", tp, tok, default=20_000, lo=0, integer=True),
            output=r.number(t, "output", tp, tok, default=1_500, lo=0, integer=True),
            cached_input=r.number(t, "cached_input", tp, tok, default=0, lo=0, integer=True),
        ),
        escalation=_escalation(r, d.get("escalation"), join(p, "escalation")),
        breaker=BreakerConfig(
            failures_to_open=r.number(b, "failures_to_open", bp, "write consecutive failures that open a "
                                      "provider's circuit, e.g. 5", default=5, lo=1, integer=True),
            open_s=r.number(b, "open_s", bp, "write seconds a circuit stays open, e.g. 30", default=30.0,
                            lo=0, lo_open=True),
        ),
        drift=DriftConfig(
            enabled=r.boolean(dr, "enabled", dp, "write true to detect sudden shifts in outcomes", True),
            window=r.number(dr, "window", dp, "write the number of recent outcomes compared, ≥ 2",
                            default=20.0, lo=2),
            margin=r.number(dr, "margin", dp, "write the success shift that counts as drift, e.g. 0.2",
                            default=0.2, lo=0, hi=1, lo_open=True, hi_open=True),
            z=r.number(dr, "z", dp, "write the z-score threshold, e.g. 3", default=3.0, lo=0),
        ),
    )


def telemetry(r: Reader, raw: Any) -> TelemetryConfig:
    p = "telemetry"
    d = r.mapping(raw, p, TelemetryConfig.__slots__, "write telemetry settings as a mapping")
    op = join(p, "otlp")
    o = r.mapping(d.get("otlp"), op, OtlpConfig.__slots__,
                  'write { protocol: grpc, endpoint: "http://127.0.0.1:4317" }')
    proto = r.choice(o, "protocol", op, ("grpc", "http/protobuf"),
                     "use http/protobuf for collectors that take only HTTP (port 4318)", "grpc")
    return TelemetryConfig(
        enabled=r.boolean(d, "enabled", p, "write true to export traces and metrics over OTLP", False),
        service_name=r.text(d, "service_name", p, "write the service.name resource, e.g. modelyard",
                            default="modelyard"),
        otlp=OtlpConfig(
            protocol=proto,
            endpoint=r.url(o, "endpoint", op, "write the collector URL, e.g. http://127.0.0.1:4317",
                           default="http://127.0.0.1:4317" if proto == "grpc" else "http://127.0.0.1:4318"),
            headers_env=r.env_name(o, "headers_env", op, "OTLP headers such as an auth token", None),
        ),
        record_content=r.boolean(d, "record_content", p, "leave false unless prompts and completions "
                                 "may be stored by your telemetry backend", False),
        prometheus=_prometheus(r, d.get("prometheus"), join(p, "prometheus")),
    )


def _prometheus(r: Reader, raw: Any, p: str) -> PrometheusConfig:
    d = r.mapping(raw, p, PrometheusConfig.__slots__, 'write { enabled: true, listen: "127.0.0.1:9464" }')
    dflt = PrometheusConfig()
    return PrometheusConfig(
        enabled=r.boolean(d, "enabled", p, "write true to serve /metrics for a Prometheus scrape", False),
        listen=r.text(d, "listen", p, 'write host:port for the scrape endpoint, e.g. "127.0.0.1:9464"',
                      default=dflt.listen, pattern=LISTEN, what="host:port"),
    )


def endpoints(r: Reader, raw: Any) -> MappingProxyType[str, EndpointConfig]:
    p = "endpoints"
    if not isinstance(raw, dict):
        if raw is not None:
            r.error(p, "must be a mapping of endpoint name → settings",
                    "write e.g. anthropic: { api: anthropic, base_url: ..., api_key_env: ANTHROPIC_API_KEY }")
        return MappingProxyType({})
    out = {}
    for name, spec in raw.items():
        ep = join(p, str(name))
        if not isinstance(name, str) or not SLUG.match(name):
            r.error(ep, "endpoint names must be lowercase names", "rename it, e.g. anthropic")
            continue
        e = r.mapping(spec, ep, ("api", "base_url", "api_key_env", "timeout_s"),
                      "write { api: openai, base_url: ..., api_key_env: ... }")
        out[name] = EndpointConfig(
            name=name,
            api=r.choice(e, "api", ep, ENDPOINT_APIS, "openai speaks chat completions (most hosts); "
                         "anthropic speaks messages"),
            base_url=r.url(e, "base_url", ep, "write the API base URL, e.g. https://api.openai.com/v1"),
            api_key_env=r.env_name(e, "api_key_env", ep, "this endpoint's API key"),
            timeout_s=r.number(e, "timeout_s", ep, "write seconds, e.g. 120", default=120.0, lo=0,
                               lo_open=True),
        )
    return MappingProxyType(out)
