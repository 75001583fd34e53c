"""The running configuration: everything derived from one config file, built once and swapped whole.

Readers on the hot path take `app.runtime` once per request and never see half of a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from modelyard.auth import KeyIndex, Principal
from modelyard.budget import WindowLimit
from modelyard.config import Config, to_core_catalog
from modelyard.domain import Constraints


def _limits(budgets: Any) -> Mapping[str, WindowLimit]:
    out = {}
    for name in ("hour", "day", "month"):
        b = getattr(budgets, name, None) if budgets is not None else None
        if b is not None:
            out[name] = WindowLimit(soft_usd=b.soft_usd, hard_usd=b.hard_usd)
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class TenantRuntime:
    id: str
    time_value_usd_per_s: float
    budgets: Mapping[str, WindowLimit]
    key_budgets: Mapping[str, Mapping[str, WindowLimit]]
    policy: Constraints


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    keys: KeyIndex
    tenants: Mapping[str, TenantRuntime]
    catalog: dict[str, Any]

    @property
    def version(self) -> str:
        return self.config.config_version

    def tenant(self, principal: Principal) -> TenantRuntime:
        return self.tenants[principal.tenant]

    def model(self, model_id: str) -> Any:
        return self.config.model(model_id)


def build_runtime(config: Config) -> Runtime:
    entries = []
    tenants = {}
    for t in config.tenants:
        for k in t.keys:
            entries.append((k.sha256, Principal(tenant=t.id, key_id=k.id, scopes=frozenset(k.scopes))))
        tenants[t.id] = TenantRuntime(
            id=t.id,
            time_value_usd_per_s=t.time_value_usd_per_hour / 3600.0,
            budgets=_limits(t.budgets),
            key_budgets=MappingProxyType({k.id: _limits(k.budgets) for k in t.keys}),
            policy=Constraints(
                allowed_models=tuple(t.policy.allowed_models),
                denied_models=tuple(t.policy.denied_models),
                required_provenance=tuple(t.policy.required_provenance),
            ),
        )
    return Runtime(
        config=config, keys=KeyIndex(entries), tenants=MappingProxyType(tenants),
        catalog=to_core_catalog(config),
    )
