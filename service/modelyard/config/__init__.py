"""Configuration: one YAML file, validated once into frozen dataclasses (see CONTRACTS.md §3)."""

from modelyard.config.core_catalog import to_core_catalog
from modelyard.config.errors import ConfigError, Problem
from modelyard.config.load import load_config, parse_config
from modelyard.config.schema import (
    CAPABILITIES,
    ROLE_IDS,
    ROLES,
    SCOPES,
    WINDOWS,
    BreakerConfig,
    BudgetsConfig,
    BudgetWindow,
    Config,
    DriftConfig,
    EndpointConfig,
    EscalationConfig,
    KeyConfig,
    LatencyConfig,
    ModelConfig,
    OtlpConfig,
    ParamsConfig,
    PolicyConfig,
    PriceConfig,
    PriorConfig,
    PrometheusConfig,
    RedisConfig,
    RolePolicy,
    RoutingConfig,
    ServerConfig,
    SqliteConfig,
    StoreConfig,
    TelemetryConfig,
    TenantConfig,
    TokenDefaults,
)

__all__ = [
    "CAPABILITIES", "ROLES", "ROLE_IDS", "SCOPES", "WINDOWS",
    "BreakerConfig", "BudgetWindow", "BudgetsConfig", "Config", "ConfigError", "DriftConfig",
    "EndpointConfig", "EscalationConfig", "KeyConfig", "LatencyConfig", "ModelConfig", "OtlpConfig",
    "ParamsConfig", "PolicyConfig", "PriceConfig", "PriorConfig", "Problem", "PrometheusConfig", "RedisConfig",
    "RolePolicy", "RoutingConfig", "ServerConfig", "SqliteConfig", "StoreConfig", "TelemetryConfig",
    "TenantConfig", "TokenDefaults", "load_config", "parse_config", "to_core_catalog",
]
