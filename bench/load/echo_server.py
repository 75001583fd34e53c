"""The floor reference: a bare grpc.aio unary server that echoes raw bytes (no proto, no auth).

`--mode sink` instead answers every unary call with empty bytes — an empty OTLP Export response — so
it doubles as a local OTLP/gRPC collector that accepts and drops the modelyard server's telemetry.
Run: python -m bench.load.echo_server --port P [--mode echo|sink]
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

ECHO_METHOD = "/bench.Echo/Echo"


class _AnyUnary(grpc.GenericRpcHandler):
    def __init__(self, echo: bool) -> None:
        async def echo_fn(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return request

        async def sink_fn(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return b""

        # No (de)serializers: the handler sees and returns bytes, the cheapest path grpc.aio has.
        self._handler = grpc.unary_unary_rpc_method_handler(echo_fn if echo else sink_fn)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self._handler


async def serve(port: int, mode: str) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_AnyUnary(echo=mode == "echo"),))
    if not server.add_insecure_port(f"127.0.0.1:{port}"):
        raise OSError(f"cannot bind 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("echo", "sink"), default="echo")
    args = ap.parse_args()
    asyncio.run(serve(args.port, args.mode))


if __name__ == "__main__":
    main()
