"""Domain exceptions of the service layer.

Business code raises these; exactly one place (`interceptors.py`) turns them into gRPC status codes.
Every message is written for the person who has to act on it.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base of every error the service reports to a caller."""


class InvalidArgument(ModelyardError):
    """A request field is missing, malformed or out of range; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class Unauthenticated(ModelyardError):
    """No API key, or a key the config does not know."""


class PermissionDenied(ModelyardError):
    """The key lacks the scope for this method, or policy forbids the request."""


class NotFound(ModelyardError):
    """The decision or job does not exist for the caller's tenant."""


class NoEligibleModel(ModelyardError):
    """Every candidate was excluded by a constraint; the message says which excluded what."""


class BudgetExhausted(ModelyardError):
    """A hard budget limit would be exceeded: which window, how much is left, when it resets."""


class Unavailable(ModelyardError):
    """A dependency (the store) is down and the policy is fail-closed."""


class ConfigRejected(ModelyardError):
    """A reload was asked for and the new file is invalid; the running config stays."""
