"""The client's exceptions: one base type carrying the gRPC status code and the server's message verbatim.

`from_rpc_error` is the one place a `grpc.RpcError` becomes a `ModelyardError`; the API key is scrubbed
from any message before it is stored, so it never shows in a traceback, log line or repr.
"""

from __future__ import annotations

import grpc


class ModelyardError(Exception):
    """A call failed. `code` is the gRPC status; `message` is the server's text, unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


class BudgetExceeded(ModelyardError):
    """RESOURCE_EXHAUSTED: a hard budget limit would be exceeded; the message names the window."""


class NoEligibleModel(ModelyardError):
    """FAILED_PRECONDITION: every candidate was excluded (or a config reload was rejected)."""


class AuthError(ModelyardError):
    """UNAUTHENTICATED or PERMISSION_DENIED: unknown key, missing scope, or policy forbids the request."""


class InvalidRequest(ModelyardError, ValueError):
    """INVALID_ARGUMENT: a field is missing or malformed. Also raised locally for unknown role/status names."""

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> None:
        super().__init__(code, message)


class NotFound(ModelyardError):
    """NOT_FOUND: no such decision or job (for the caller's tenant), or no such tenant."""


class Unavailable(ModelyardError):
    """UNAVAILABLE after every retry: the server or its store cannot be reached."""


class DeadlineExceeded(ModelyardError):
    """DEADLINE_EXCEEDED: the call's deadline (`timeout_s`) passed before the server answered."""


_BY_CODE: dict[grpc.StatusCode, type[ModelyardError]] = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: BudgetExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: NoEligibleModel,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: AuthError,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_for(code: grpc.StatusCode, message: str, secret: str = "") -> ModelyardError:
    """The exception for a status code; `secret` (the API key) is replaced by '***' if it occurs."""
    if secret and secret in message:
        message = message.replace(secret, "***")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(message)
    return _BY_CODE.get(code, ModelyardError)(code, message)


def from_rpc_error(err: grpc.RpcError, secret: str = "") -> ModelyardError:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else ""
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "", secret)
