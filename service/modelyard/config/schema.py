"""The validated configuration: frozen, slotted dataclasses built once by `load_config`.

Sequences are tuples and mappings are read-only (`MappingProxyType`), so a `Config` can be
shared by every request and swapped whole on reload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROLES: tuple[str, ...] = ("planner", "executor", "reviewer", "explorer", "summarizer", "orchestrator")
ROLE_IDS: Mapping[str, int] = MappingProxyType({name: i + 1 for i, name in enumerate(ROLES)})
SCOPES: tuple[str, ...] = ("route", "report", "read", "admin")
WINDOWS: tuple[str, ...] = ("hour", "day", "month")
CAPABILITIES: tuple[str, ...] = (
    "tools", "vision", "json", "reasoning", "streaming", "fim", "computer_use", "prompt_caching",
)
ENDPOINT_APIS: tuple[str, ...] = ("openai", "anthropic")
# Generic priors by tier (1 cheap worker … 4 frontier); deliberately not tuned to any benchmark.
TIER_PRIORS: Mapping[int, float] = MappingProxyType({1: 0.35, 2: 0.5, 3: 0.65, 4: 0.7})
DEFAULT_PRIOR_STRENGTH = 2.0


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    reflection: bool = False
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_rpcs: int = 1000
    max_metadata_bytes: int = 16 * 1024
    shutdown_grace_s: float = 10.0
    default_deadline_ms: int = 5000
    # "python": grpc.aio serves every call. "rust": Route is served by the Rust front in the core's
    # threads, every other call forwarded to grpc.aio on a private Unix socket.
    front: str = "python"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    path: Path  # absolute, or ":memory:" as given


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url_env: str = "MODELYARD_REDIS_URL"  # the URL (with any password) comes from the environment
    key_prefix: str = "modelyard"
    wait_replicas: int = 0  # > 0: each settle waits for that many Redis replicas to acknowledge it
    replica_id_env: str = "MODELYARD_REPLICA_ID"  # labels this replica's learned changes; host name if unset
    sync_interval_s: float = 1.0  # how often learned deltas are pushed to and pulled from Redis
    compact_interval_s: float = 60.0  # how often one replica writes a full base and trims the log


@dataclass(frozen=True, slots=True)
class StoreConfig:
    kind: str  # "sqlite" | "redis"
    sqlite: SqliteConfig
    redis: RedisConfig
    reservation_ttl_s: float = 600.0
    on_expiry: str = "charge"  # "charge" | "release"
    on_unavailable: str = "fail_closed"  # "fail_closed" | "fail_open"
    fail_open_cap_usd: float = 5.0


@dataclass(frozen=True, slots=True)
class TokenDefaults:
    input: int = 20_000
    output: int = 1_500
    cached_input: int = 0


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    after_failures: int
    min_tier: int


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failures_to_open: int = 5
    open_s: float = 30.0


@dataclass(frozen=True, slots=True)
class DriftConfig:
    enabled: bool = True
    window: float = 20.0
    margin: float = 0.2
    z: float = 3.0


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    explore: bool = True
    seed: int = 0
    half_life_hours: float = 168.0
    job_credit_weight: float = 0.5
    learning: str = "shared"  # "shared" | "per_tenant"
    default_tokens: TokenDefaults = TokenDefaults()
    escalation: Mapping[str, EscalationConfig] = field(default_factory=_empty)  # role name → policy
    breaker: BreakerConfig = BreakerConfig()
    drift: DriftConfig = DriftConfig()


@dataclass(frozen=True, slots=True)
class OtlpConfig:
    protocol: str = "grpc"  # "grpc" | "http/protobuf"
    endpoint: str = "http://127.0.0.1:4317"
    headers_env: str | None = None  # env var with "k=v,k2=v2" headers (e.g. an auth token)


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    enabled: bool = False
    listen: str = "127.0.0.1:9464"  # host:port of the /metrics scrape endpoint


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    enabled: bool = False
    service_name: str = "modelyard"
    otlp: OtlpConfig = OtlpConfig()
    record_content: bool = False
    prometheus: PrometheusConfig = PrometheusConfig()


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    name: str
    api: str  # "openai" (chat completions) | "anthropic" (messages)
    base_url: str
    api_key_env: str
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class PriceConfig:
    """USD per million tokens. All three are None when no price is known (model not routable)."""

    input_per_mtok: float | None
    cached_input_per_mtok: float | None
    output_per_mtok: float | None
    source: str | None
    as_of: dt.date | None
    published: bool = True  # False: the maker publishes no price (numbers, if any, are a host's)
    note: str | None = None

    @property
    def priced(self) -> bool:
        return self.input_per_mtok is not None and self.output_per_mtok is not None


@dataclass(frozen=True, slots=True)
class ParamsConfig:
    """Parameter counts in billions. Mixture-of-experts models give both; dense: total == active."""

    total_b: float | None = None
    active_b: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PriorConfig:
    success: float
    strength: float = DEFAULT_PRIOR_STRENGTH


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    first_token_ms: float = 1000.0
    output_tokens_per_s: float = 50.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    display_name: str
    provider: str
    endpoint: str
    upstream_model: str
    tier: int
    price: PriceConfig
    context_window: int
    params: ParamsConfig
    provenance: tuple[str, ...]
    capabilities: tuple[str, ...]
    prior: PriorConfig
    latency: LatencyConfig
    note: str | None = None

    @property
    def routable(self) -> bool:
        return self.price.priced


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    soft_usd: float
    hard_usd: float


@dataclass(frozen=True, slots=True)
class BudgetsConfig:
    hour: BudgetWindow | None = None
    day: BudgetWindow | None = None
    month: BudgetWindow | None = None


@dataclass(frozen=True, slots=True)
class RolePolicy:
    allowed_models: tuple[str, ...] = ()
    denied_models: tuple[str, ...] = ()
    required_provenance: tuple[str, ...] = ()
    max_cost_per_step_usd: float | None = None


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    required_provenance: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()  # empty = all
    denied_models: tuple[str, ...] = ()
    roles: Mapping[str, RolePolicy] = field(default_factory=_empty)  # role name → extra limits


@dataclass(frozen=True, slots=True)
class KeyConfig:
    id: str
    sha256: str  # lowercase hex SHA-256 of the API key
    scopes: tuple[str, ...]
    budgets: BudgetsConfig = BudgetsConfig()
    description: str | None = None


@dataclass(frozen=True, slots=True)
class TenantConfig:
    id: str
    time_value_usd_per_hour: float
    budgets: BudgetsConfig
    policy: PolicyConfig
    keys: tuple[KeyConfig, ...]


@dataclass(frozen=True, slots=True)
class Config:
    version: int
    source: str
    config_version: str  # first 12 hex of the SHA-256 of the file bytes
    server: ServerConfig
    store: StoreConfig
    routing: RoutingConfig
    telemetry: TelemetryConfig
    endpoints: Mapping[str, EndpointConfig]
    models: tuple[ModelConfig, ...]
    tenants: tuple[TenantConfig, ...]
    _models: Mapping[str, ModelConfig] = field(repr=False, compare=False)
    _tenants: Mapping[str, TenantConfig] = field(repr=False, compare=False)
    _keys: Mapping[str, tuple[TenantConfig, KeyConfig]] = field(repr=False, compare=False)

    def model(self, model_id: str) -> ModelConfig | None:
        return self._models.get(model_id)

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        return self._tenants.get(tenant_id)

    def key_by_hash(self, sha256_hex: str) -> tuple[TenantConfig, KeyConfig] | None:
        return self._keys.get(sha256_hex.lower())
