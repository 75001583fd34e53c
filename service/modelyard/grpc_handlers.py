"""What both server interceptors (the service's and telemetry's binder) do to a method handler.

`rewrap` rebuilds a handler around a wrapped behaviour, keeping its (de)serializers; `WrappedHandlers`
wraps each method's handler once: the inner handler object is the same call after call, so building
the closures and a new RpcMethodHandler on every RPC would be waste. A different inner handler (a
re-registered servicer) is wrapped again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]


def rewrap(handler: grpc.RpcMethodHandler, unary: Callable[[Behavior], Behavior],
           stream: Callable[[Behavior], Behavior]) -> grpc.RpcMethodHandler:
    """`handler` with its unary-unary behaviour passed through `unary` or its unary-stream one through
    `stream`; handlers of other kinds are returned as they are."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary), request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream), request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
    return handler


class WrappedHandlers:
    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler,
            wrap: Callable[..., grpc.RpcMethodHandler], *args: Any) -> grpc.RpcMethodHandler:
        """The wrapper of `handler` for `method`: `wrap(handler, method, *args)`, built once."""
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = wrap(handler, method, *args)
        self._wrapped[method] = (handler, wrapped)
        return wrapped
