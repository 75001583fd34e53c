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
from modelyard.domain import ROLE_BY_NAME, Constraints
from modelyard.policy import narrow


def _policy(p: Any) -> Constraints:
    return Constraints(
        max_cost_usd=getattr(p, "max_cost_per_step_usd", None),
        allowed_models=tuple(p.allowed_models),
        denied_models=tuple(p.denied_models),
        required_provenance=tuple(p.required_provenance),
    )


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
    role_policy: Mapping[int, Constraints]

    def policy_for(self, role: int) -> Constraints:
        """The tenant-wide policy narrowed by the role's own policy, if it has one."""
        return self.role_policy.get(role, self.policy)


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    keys: KeyIndex
    tenants: Mapping[str, TenantRuntime]
    catalog: dict[str, Any]

    @property
    def version(self) -> str:
        return self.config.config_version

    @property
    def token_defaults(self) -> tuple[int, int, int]:
        """(input, output, cached input) tokens of a step whose request estimates none."""
        d = self.config.routing.default_tokens
        return d.input, d.output, d.cached_input

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
            policy=_policy(t.policy),
            role_policy=MappingProxyType({
                ROLE_BY_NAME[name]: narrow(_policy(rp), _policy(t.policy)) for name, rp in t.policy.roles.items()
            }),
        )
    return Runtime(
        config=config, keys=KeyIndex(entries), tenants=MappingProxyType(tenants),
        catalog=to_core_catalog(config),
    )
