"""Component health on the gRPC health service: one service name per component (config, store,
core), with a small monitor task that tracks the store by pinging it.

The store component is NOT_SERVING while the store does not answer and SERVING again by itself on
recovery; the overall ("") status is left to the server (drain on SIGTERM), so a store outage does
not make an orchestrator restart healthy replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from grpc_health.v1 import health, health_pb2

from modelyard.store import Store

log = logging.getLogger("modelyard")

CONFIG, STORE, CORE = "modelyard.config", "modelyard.store", "modelyard.core"
COMPONENTS = (CONFIG, STORE, CORE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PING_INTERVAL_S = 0.5
PING_TIMEOUT_S = 2.0  # a ping is already bounded by the store's own timeouts; this is a backstop


class StoreMonitor:
    """Sets the STORE component from a ping every `interval_s`; logs each transition once."""

    def __init__(self, servicer: health.aio.HealthServicer, store: Store, *,
                 interval_s: float = PING_INTERVAL_S) -> None:
        self.servicer = servicer
        self.store = store
        self.interval_s = interval_s
        self.up: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        try:
            up = await asyncio.wait_for(self.store.ping(), PING_TIMEOUT_S)
        except TimeoutError:
            up = False
        if up != self.up:
            if self.up is not None:
                (log.info if up else log.error)("store %s", "is reachable again" if up else "is unreachable")
            self.up = up
            await self.servicer.set(STORE, SERVING if up else NOT_SERVING)
        return up

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._run(), name="store-health")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.servicer.set(STORE, NOT_SERVING)
