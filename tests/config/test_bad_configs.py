"""Every bad config is rejected with the file, the field path and a fix in the message."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.config import ConfigError
from tests.config.cfg_helpers import DELETE, minimal, mutate, parse

SOURCE = "deploy/config.yaml"

# (field to change, new value, path the error must name, text the message must contain)
BAD: list[tuple[str, Any, str, str]] = [
    ("models.0.price.output_per_mtok", "abc", "models[0].price.output_per_mtok",
     'must be a number ≥ 0, got "abc" — write the provider\'s list price in USD per million output'),
    ("models.0.price.input_per_mtok", -1, "models[0].price.input_per_mtok", "per million input tokens"),
    ("models.0.price.output_per_mtok", DELETE, "models[0].price.output_per_mtok", "published: false"),
    ("models.0.price", {"published": False}, "models[0].price.note", "say why there is no price"),
    ("models.0.price.as_of", "2025-02-30", "models[0].price.as_of", "YYYY-MM-DD"),
    ("models.0.price.source", "ftp://example.com", "models[0].price.source", "URL of the pricing page"),
    ("models.0.tier", 5, "models[0].tier", "1 (cheap worker) … 4 (frontier)"),
    ("models.0.tier", 2.5, "models[0].tier", "whole number"),
    ("models.0.endpoint", "azure", "models[0].endpoint", "use one of: openai"),
    ("models.0.context_window", "big", "models[0].context_window", "context window in tokens"),
    ("models.0.capabilities", ["tool"], "models[0].capabilities[0]", "did you mean 'tools'"),
    ("models.0.prior", {"success": 1.0}, "models[0].prior.success", "strictly between 0 and 1"),
    ("models.0.prior", {"success": 0.5, "strength": 0}, "models[0].prior.strength", "> 0"),
    ("models.0.params", {"active_b": 5}, "models[0].params.total_b", "always shows both counts"),
    ("models.0.params", {"total_b": 5, "active_b": 137}, "models[0].params.active_b", "subset"),
    ("models.0.params", {}, "models[0].params.note", "not published"),
    ("models.1.id", "small", "models[1].id", "distinct id"),
    ("endpoints.openai.api", "grpc", "endpoints.openai.api", "one of openai | anthropic"),
    ("endpoints.openai.api_key_env", "my key", "endpoints.openai.api_key_env",
     "name of the environment variable"),
    ("server.listen", "localhost", "server.listen", "host:port"),
    ("server.max_concurrent_rpcs", 0, "server.max_concurrent_rpcs", "limit"),
    ("store.kind", "postgres", "store.kind", "sqlite for one node"),
    ("store.on_expiry", "refund", "store.on_expiry", "charge | release"),
    ("store.redis.url_env", "redis://localhost", "store.redis.url_env", "environment variable"),
    ("store.redis.wait_replicas", -1, "store.redis.wait_replicas", "Redis replicas must acknowledge"),
    ("store.redis.sync_interval_s", 0, "store.redis.sync_interval_s", "between learning syncs"),
    ("store.redis.compact_interval_s", 0.5, "store.redis.compact_interval_s", "between bases of the learning log"),
    ("store.redis.replica_id_env", "pod-1", "store.redis.replica_id_env", "environment variable"),
    ("routing.half_life_hours", 0, "routing.half_life_hours", "> 0"),
    ("routing.learning", "global", "routing.learning", "per_tenant"),
    ("routing.escalation", {"executer": {"after_failures": 1, "min_tier": 2}},
     "routing.escalation.executer", "did you mean 'executor'"),
    ("routing.escalation", {"executor": {"after_failures": 1, "min_tier": 7}},
     "routing.escalation.executor.min_tier", "1 cheap … 4 frontier"),
    ("telemetry.otlp.protocol", "http", "telemetry.otlp.protocol", "http/protobuf"),
    ("telemetry.otlp.endpoint", "collector:4317", "telemetry.otlp.endpoint", "collector URL"),
    ("telemetry.prometheus.listen", "9464", "telemetry.prometheus.listen", "scrape endpoint"),
    ("telemetry.prometheus.enabled", "yes", "telemetry.prometheus.enabled", "Prometheus scrape"),
    ("version", 2, "version", "reads version 1"),
    ("tenants.0.keys.0.sha256", "ABC", "tenants[0].keys[0].sha256", "modelyard keys new"),
    ("tenants.0.keys.0.scopes", ["route", "write"], "tenants[0].keys[0].scopes[1]",
     "route, report, read, admin"),
    ("tenants.0.keys.0.scopes", [], "tenants[0].keys[0].scopes", "at least one"),
    ("tenants.1.keys.0.id", "acme-dev", "tenants[1].keys[0].id", "unique across all tenants"),
    ("tenants.1.keys.0.sha256", None, "tenants[1].keys[0].sha256", "64 characters"),
    ("tenants.0.budgets.day", {"soft_usd": 60, "hard_usd": 50}, "tenants[0].budgets.day.soft_usd",
     "≤ the hard limit"),
    ("tenants.0.budgets.week", {"soft_usd": 1, "hard_usd": 2}, "tenants[0].budgets.week", "hour, day, month"),
    ("tenants.0.policy", {"denied_models": ["gpt-9"]}, "tenants[0].policy.denied_models[0]", "models:"),
    ("tenants.0.policy", {"allowed_models": ["smal"]}, "tenants[0].policy.allowed_models[0]",
     "did you mean 'small'"),
    ("tenants.0.policy", {"required_provenance": ["eu-hosted"]},
     "tenants[0].policy.required_provenance[0]", "every route would fail"),
    ("tenants.0.policy", {"roles": {"coder": {}}}, "tenants[0].policy.roles.coder", "known keys"),
    ("tenants.1.id", "acme", "tenants[1].id", "distinct id"),
    ("tenants.0.time_value_usd_per_hour", "sixty", "tenants[0].time_value_usd_per_hour", "in USD"),
]


@pytest.mark.parametrize(("field", "value", "path", "needle"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_config_names_field_and_fix(field: str, value: Any, path: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(mutate(minimal(), field, value), SOURCE)
    lines = [ln for ln in str(info.value).splitlines() if ln.startswith(f"{SOURCE}: {path}: ")]
    assert lines, f"no error names {path}:\n{info.value}"
    assert any(needle in ln for ln in lines), f"no fix hint {needle!r} in:\n{info.value}"
    assert all(" — " in ln for ln in str(info.value).splitlines()), "every line carries a fix"


def test_table_is_large_enough() -> None:
    assert len(BAD) >= 20
