"""Combining constraints: an operator's policy narrows what a request asks for and never widens it."""

from __future__ import annotations

from collections.abc import Callable

from modelyard.domain import Constraints
from modelyard.errors import InvalidArgument

# An allow-list that nothing can satisfy; the core then reports the "allowed" constraint as the cause.
NOTHING_ALLOWED = ("(no model is in both the request's and the policy's allow lists)",)


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def check_allowed_exist(req: Constraints, known: Callable[[str], object | None]) -> None:
    """An allow list naming only models the catalog does not have is a mistake, not a constraint to
    report as "allowed excluded every model": say which names are unknown."""
    if req.allowed_models and not any(known(m) for m in req.allowed_models):
        names = ", ".join(repr(m) for m in req.allowed_models[:5])
        raise InvalidArgument("constraints.allowed_models",
                              f"no model of the catalog is named {names}; Catalog.ListModels lists the ids")


def narrow(req: Constraints, policy: Constraints) -> Constraints:
    allowed = req.allowed_models
    if policy.allowed_models:
        allowed = tuple(m for m in (allowed or policy.allowed_models) if m in policy.allowed_models)
        allowed = allowed or NOTHING_ALLOWED
    return Constraints(
        max_cost_usd=_min(req.max_cost_usd, policy.max_cost_usd),
        max_latency_ms=_min(req.max_latency_ms, policy.max_latency_ms),
        min_success_probability=_max(req.min_success_probability, policy.min_success_probability),
        allowed_models=allowed,
        denied_models=tuple(dict.fromkeys(req.denied_models + policy.denied_models)),
        required_provenance=tuple(dict.fromkeys(req.required_provenance + policy.required_provenance)),
    )
