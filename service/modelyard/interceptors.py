"""The server's one interceptor: authentication and scope, deadlines, and the error table.

Every method needs a scope; health checking and reflection are public. Domain exceptions become
gRPC status codes here and nowhere else. API keys never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from modelyard import errors
from modelyard.auth import Principal, bearer_token
from modelyard.grpc_handlers import WrappedHandlers, rewrap
from modelyard.store import StoreError, StoreUnavailable

log = logging.getLogger("modelyard.rpc")

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")

SCOPES: dict[str, str] = {
    "/modelyard.v1.Router/Route": "route",
    "/modelyard.v1.Router/Dispatch": "route",
    "/modelyard.v1.Router/ReportOutcome": "report",
    "/modelyard.v1.Router/CompleteJob": "report",
    "/modelyard.v1.Catalog/ListModels": "read",
    "/modelyard.v1.Catalog/Estimate": "read",
    "/modelyard.v1.Budgets/GetBudget": "read",
    "/modelyard.v1.Admin/ReloadConfig": "admin",
    "/modelyard.v1.Admin/GetStats": "admin",
    "/modelyard.v1.Admin/ExportState": "admin",
    "/modelyard.v1.Admin/ImportState": "admin",
}
PUBLIC_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

ERROR_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.NoEligibleModel, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConfigRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.BudgetExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


def principal() -> Principal:
    """The authenticated caller of the current RPC."""
    return _principal.get()


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in ERROR_CODES:
        if isinstance(exc, kind):
            if kind is TimeoutError:
                return code, "the request did not finish within its deadline"
            if isinstance(exc, StoreUnavailable):
                return code, f"budget store unavailable and policy is fail-closed: {exc}"
            return code, str(exc)
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return grpc.StatusCode.UNAVAILABLE, "budget store error; retry with the same request id"
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error; the server logged it"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: Callable[[], Any], default_deadline_s: Callable[[], float]) -> None:
        self._keys = keys
        self._default_deadline_s = default_deadline_s
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        scope = SCOPES.get(method)
        if scope is None:
            return handler
        return self._wrapped.get(method, handler, self._wrap, scope)

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str, scope: str) -> grpc.RpcMethodHandler:
        return rewrap(handler, lambda b: self._wrap_unary(b, method, scope),
                      lambda b: self._wrap_stream(b, method, scope))

    def _authorize(self, context: grpc.aio.ServicerContext, method: str, scope: str) -> None:
        who = self._keys().authenticate(bearer_token(context.invocation_metadata()))
        who.require(scope, method.rsplit("/", 1)[-1])
        _principal.set(who)

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        default = self._default_deadline_s()
        return default if remaining is None else min(remaining, default)

    def _wrap_unary(self, behavior: Callable[..., Any], method: str, scope: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                self._authorize(context, method, scope)
                async with asyncio.timeout(self._timeout(context)):
                    return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, message = status_for(exc)
                await context.abort(code, message)

        return wrapper

    def _wrap_stream(self, behavior: Callable[..., Any], method: str, scope: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                self._authorize(context, method, scope)
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code, message = status_for(exc)
                await context.abort(code, message)

        return wrapper
