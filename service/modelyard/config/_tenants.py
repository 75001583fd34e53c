"""Parser for `tenants:`: time value, budgets per window, policy, and API keys stored by hash."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from types import MappingProxyType
from typing import Any

from modelyard.config._reader import SLUG, Reader, join, show
from modelyard.config.schema import (
    ROLES,
    SCOPES,
    WINDOWS,
    BudgetsConfig,
    BudgetWindow,
    KeyConfig,
    PolicyConfig,
    RolePolicy,
    TenantConfig,
)

SHA256 = re.compile(r"^[0-9a-f]{64}$")
HASH_FIX = ("write the lowercase hex SHA-256 of the key (64 characters); `modelyard keys new` "
            "prints a new key and its hash — the key itself never goes in the file")


class _Refs:
    """What tenants may refer to: the model ids and provenance tags the catalog defines."""

    def __init__(self, model_ids: Collection[str], provenance: Collection[str]) -> None:
        self.model_ids = model_ids
        self.provenance = provenance


def _budgets(r: Reader, raw: Any, p: str) -> BudgetsConfig:
    d = r.mapping(raw, p, WINDOWS, "write budgets per window, e.g. day: { soft_usd: 40, hard_usd: 50 }")
    out: dict[str, BudgetWindow] = {}
    for window, spec in d.items():
        wp = join(p, window)
        w = r.mapping(spec, wp, ("soft_usd", "hard_usd"), "write { soft_usd: 40, hard_usd: 50 }")
        hard = r.number(w, "hard_usd", wp, "write the limit in USD at which routing is refused", lo=0)
        soft = r.number(w, "soft_usd", wp, "write the USD spend after which routing prefers cheaper "
                        "models (≤ hard_usd)", default=hard, lo=0)
        if soft > hard:
            r.error(join(wp, "soft_usd"), f"({soft:g}) is above hard_usd ({hard:g})",
                    "the soft limit must be ≤ the hard limit: lower soft_usd or raise hard_usd")
        out[window] = BudgetWindow(soft_usd=soft, hard_usd=hard)
    return BudgetsConfig(**out)


def _model_refs(r: Reader, d: dict[str, Any], key: str, p: str, refs: _Refs) -> tuple[str, ...]:
    names = r.names(d, key, p, "write model ids from models:", pattern=None)
    for i, name in enumerate(names):
        if name not in refs.model_ids:
            close = difflib.get_close_matches(name, list(refs.model_ids), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "use an id listed under models:"
            r.error(join(join(p, key), i), f"no model with id {show(name)}", hint)
    return names


def _provenance(r: Reader, d: dict[str, Any], p: str, refs: _Refs) -> tuple[str, ...]:
    tags = r.names(d, "required_provenance", p, "write provenance tags such as licensed-data")
    for i, tag in enumerate(tags):
        if tag not in refs.provenance:
            r.error(join(join(p, "required_provenance"), i), f"no model carries provenance {show(tag)}",
                    "every route would fail: tag the qualifying models with it, or fix the spelling "
                    f"(known tags: {', '.join(sorted(refs.provenance)) or 'none'})")
    return tags


def _policy(r: Reader, raw: Any, p: str, refs: _Refs) -> PolicyConfig:
    keys = ("required_provenance", "allowed_models", "denied_models")
    d = r.mapping(raw, p, (*keys, "roles"), "write { required_provenance: [], allowed_models: [], "
                  "denied_models: [] }")
    rp = join(p, "roles")
    roles_raw = r.mapping(d.get("roles"), rp, ROLES, "write limits per role, e.g. executor: { ... }")
    roles = {}
    for role, spec in roles_raw.items():
        sp = join(rp, role)
        s = r.mapping(spec, sp, (*keys, "max_cost_per_step_usd"), "write the role's extra limits")
        roles[role] = RolePolicy(
            allowed_models=_model_refs(r, s, "allowed_models", sp, refs),
            denied_models=_model_refs(r, s, "denied_models", sp, refs),
            required_provenance=_provenance(r, s, sp, refs),
            max_cost_per_step_usd=r.number(s, "max_cost_per_step_usd", sp, "write a USD cap per step",
                                           default=None, lo=0, lo_open=True),
        )
    return PolicyConfig(
        required_provenance=_provenance(r, d, p, refs),
        allowed_models=_model_refs(r, d, "allowed_models", p, refs),
        denied_models=_model_refs(r, d, "denied_models", p, refs),
        roles=MappingProxyType(roles),
    )


def _key(r: Reader, raw: Any, p: str) -> KeyConfig:
    d = r.mapping(raw, p, ("id", "sha256", "scopes", "budgets", "description"),
                  "write { id, sha256, scopes: [route, report, read] }")
    digest = r.text(d, "sha256", p, HASH_FIX, pattern=SHA256, what="64 lowercase hex characters")
    scopes = r.names(d, "scopes", p, "", vocabulary=SCOPES)
    if not scopes and "scopes" in d:
        r.error(join(p, "scopes"), "is empty", "give the key at least one of: " + ", ".join(SCOPES))
    elif "scopes" not in d:
        r.error(join(p, "scopes"), "is required", "give the key at least one of: " + ", ".join(SCOPES))
    return KeyConfig(
        id=r.text(d, "id", p, "write a lowercase id such as acme-dev", pattern=SLUG, what="a lowercase id"),
        sha256=digest,
        scopes=scopes,
        budgets=_budgets(r, d.get("budgets"), join(p, "budgets")),
        description=r.text(d, "description", p, "write a short description", default=None),
    )


def tenants(r: Reader, raw: Any, model_ids: Collection[str],
            provenance: Collection[str]) -> tuple[TenantConfig, ...]:
    refs = _Refs(model_ids, provenance)
    items = r.seq(raw, "tenants", "write tenants: as a list of mappings")
    out: list[TenantConfig] = []
    tenant_ids: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for i, item in enumerate(items):
        p = join("tenants", i)
        d = r.mapping(item, p, ("id", "time_value_usd_per_hour", "budgets", "policy", "keys"),
                      "write { id, time_value_usd_per_hour, budgets, policy, keys }")
        tid = r.text(d, "id", p, "write a lowercase id such as acme", pattern=SLUG, what="a lowercase id")
        if tid in tenant_ids:
            r.error(join(p, "id"), f"'{tid}' is already {tenant_ids[tid]}.id", "give every tenant a distinct id")
        tenant_ids.setdefault(tid, p)
        keys = []
        for j, kraw in enumerate(r.seq(d.get("keys"), join(p, "keys"), "write keys: as a list")):
            kp = join(join(p, "keys"), j)
            k = _key(r, kraw, kp)
            if k.id in key_ids:
                r.error(join(kp, "id"), f"'{k.id}' is already {key_ids[k.id]}.id",
                        "key ids must be unique across all tenants: rename one")
            elif k.sha256 and k.sha256 in hashes:
                r.error(join(kp, "sha256"), f"is the same hash as {hashes[k.sha256]}.sha256",
                        "one key belongs to one tenant: issue a new key with `modelyard keys new`")
            else:
                key_ids[k.id] = kp
                hashes[k.sha256] = kp
                keys.append(k)
        out.append(TenantConfig(
            id=tid,
            time_value_usd_per_hour=r.number(d, "time_value_usd_per_hour", p, "write what an hour of a "
                                             "developer waiting is worth to this tenant, in USD",
                                             default=0.0, lo=0),
            budgets=_budgets(r, d.get("budgets"), join(p, "budgets")),
            policy=_policy(r, d.get("policy"), join(p, "policy"), refs),
            keys=tuple(keys),
        ))
    return tuple(out)
