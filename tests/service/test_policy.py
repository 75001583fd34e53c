"""The operator's policy narrows a request's constraints and never widens them."""

from __future__ import annotations

import pytest

from modelyard.domain import Constraints
from modelyard.policy import NOTHING_ALLOWED, narrow

CASES = [
    ("no policy keeps the request", Constraints(max_cost_usd=1.0, allowed_models=("a",)), Constraints(),
     Constraints(max_cost_usd=1.0, allowed_models=("a",))),
    ("policy cost cap applies", Constraints(), Constraints(max_cost_usd=0.5), Constraints(max_cost_usd=0.5)),
    ("the tighter cost cap wins", Constraints(max_cost_usd=0.2), Constraints(max_cost_usd=0.5),
     Constraints(max_cost_usd=0.2)),
    ("the higher success floor wins", Constraints(min_success_probability=0.3),
     Constraints(min_success_probability=0.6), Constraints(min_success_probability=0.6)),
    ("allow lists intersect", Constraints(allowed_models=("a", "b")), Constraints(allowed_models=("b", "c")),
     Constraints(allowed_models=("b",))),
    ("policy allow list fills an empty request", Constraints(), Constraints(allowed_models=("c",)),
     Constraints(allowed_models=("c",))),
    ("disjoint allow lists allow nothing", Constraints(allowed_models=("a",)), Constraints(allowed_models=("c",)),
     Constraints(allowed_models=NOTHING_ALLOWED)),
    ("deny lists and provenance add up", Constraints(denied_models=("a",), required_provenance=("x",)),
     Constraints(denied_models=("b", "a"), required_provenance=("y",)),
     Constraints(denied_models=("a", "b"), required_provenance=("x", "y"))),
]


@pytest.mark.parametrize(("name", "req", "policy", "expected"), CASES, ids=[c[0] for c in CASES])
def test_narrow(name: str, req: Constraints, policy: Constraints, expected: Constraints) -> None:
    assert narrow(req, policy) == expected
