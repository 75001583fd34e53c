"""The gRPC server: limits, health, opt-in reflection, signals and graceful shutdown.

SIGTERM/SIGINT set health to NOT_SERVING, stop accepting new calls, let running ones finish within
the grace period, save the learned state and close the store. SIGHUP reloads the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelyard.app import App
from modelyard.errors import ConfigRejected
from modelyard.front import Front
from modelyard.health import COMPONENTS, STORE, StoreMonitor
from modelyard.interceptors import ServiceInterceptor
from modelyard.servicers.admin import AdminServicer
from modelyard.servicers.budgets import BudgetsServicer
from modelyard.servicers.catalog import CatalogServicer
from modelyard.servicers.router import RouterServicer
from modelyard.telemetry import rpc as telemetry_rpc
from modelyard.telemetry import setup as telemetry_setup
from modelyard.telemetry import timing as telemetry_timing
from modelyard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    budgets_pb2,
    budgets_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

log = logging.getLogger("modelyard")

SERVICES = (
    router_pb2.DESCRIPTOR.services_by_name["Router"].full_name,
    catalog_pb2.DESCRIPTOR.services_by_name["Catalog"].full_name,
    budgets_pb2.DESCRIPTOR.services_by_name["Budgets"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
)


STAGE_TIMEOUT_S = 5.0  # a shutdown stage that takes longer is abandoned, logged, and the next one runs
APP_STOP_TIMEOUT_S = 15.0  # saving a large learned state can take seconds


async def _bounded(stage: str, aw: Awaitable[object], timeout_s: float) -> None:
    started = time.monotonic()
    try:
        await asyncio.wait_for(aw, timeout_s)
    except TimeoutError:
        log.error("shutdown: %s did not finish within %.0f s; going on without it", stage, timeout_s)
    except Exception:
        log.exception("shutdown: %s failed; going on", stage)
    else:
        took = time.monotonic() - started
        if took > 1.0:
            log.info("shutdown: %s took %.1f s", stage, took)


class Server:
    """One modelyard server process: `await start()`, then `await wait()` or `await stop()`."""

    def __init__(self, app: App, listen: str | None = None) -> None:
        self.app = app
        cfg = app.runtime.config.server
        self.listen = listen or cfg.listen
        self.health = health.aio.HealthServicer()
        self._stopping = False
        self._stopped = asyncio.Event()
        self.port = 0
        self.store_monitor = StoreMonitor(self.health, app.store)
        self.front: Front | None = None  # server.front: rust (see front.py); made at start
        # Telemetry off: no providers, no OTel interceptor, nothing wrapped.
        self.telemetry = telemetry_setup.setup(app.runtime.config.telemetry)
        telemetry_timing.instrument(app, self.telemetry)
        self.grpc = grpc.aio.server(
            interceptors=[*telemetry_rpc.server_interceptors(self.telemetry), ServiceInterceptor(
                keys=lambda: self.app.runtime.keys,
                default_deadline_s=lambda: self.app.runtime.config.server.default_deadline_ms / 1000,
            )],
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", cfg.max_message_bytes),
                ("grpc.max_send_message_length", cfg.max_message_bytes),
                ("grpc.max_metadata_size", cfg.max_metadata_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        router_pb2_grpc.add_RouterServicer_to_server(RouterServicer(app), self.grpc)
        catalog_pb2_grpc.add_CatalogServicer_to_server(CatalogServicer(app), self.grpc)
        budgets_pb2_grpc.add_BudgetsServicer_to_server(BudgetsServicer(app), self.grpc)
        admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(app), self.grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        if cfg.reflection:
            reflection.enable_server_reflection(
                (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                self.grpc,
            )

    async def start(self) -> int:
        rust = self.app.runtime.config.server.front == "rust"
        front = Front(self.app, self.telemetry) if rust else None
        # With the Rust front, grpc.aio listens only on the front's private socket.
        self.port = self.grpc.add_insecure_port(front.upstream if front else self.listen)
        if not self.port:
            raise OSError(f"server.listen: cannot bind {self.listen}; choose a free HOST:PORT")
        await self.app.start()
        await self.grpc.start()
        if front is not None:
            try:
                self.port = await asyncio.to_thread(front.start, self.listen)
            except (OSError, ValueError):  # a busy port; a store the front cannot reach (rediss://)
                await self.grpc.stop(0)
                await self.app.stop()
                front.stop(0)  # removes its socket directory
                raise
            self.front = front
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        await self.store_monitor.start()  # the store component follows the store from here on
        log.info("modelyard serving on %s (port %d), config %s%s", self.listen, self.port, self.app.runtime.version,
                 ", Route on the Rust front" if self.front else "")
        return self.port

    async def _set_health(self, status: int) -> None:
        await self.health.set("", status)
        for name in (*SERVICES, *(c for c in COMPONENTS if c != STORE)):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        grace = self.app.runtime.config.server.shutdown_grace_s if grace is None else grace
        # Each stage has a bound, so one that hangs (a store that stopped answering, a stuck
        # exporter) is named in the log and the rest of the shutdown still runs.
        await _bounded("health", self._stop_health(), STAGE_TIMEOUT_S)
        if self.front is not None:  # stop taking calls before the server that answers them
            await _bounded("Rust front", asyncio.to_thread(self.front.stop, grace), grace + STAGE_TIMEOUT_S)
        await _bounded("gRPC server", self.grpc.stop(grace), grace + STAGE_TIMEOUT_S)
        await _bounded("app (saving learned state, closing the store)", self.app.stop(), APP_STOP_TIMEOUT_S)
        if self.telemetry is not None:
            # telemetry.shutdown bounds itself (SHUTDOWN_TIMEOUT_S); this is a backstop.
            await _bounded("telemetry", asyncio.to_thread(self.telemetry.shutdown),
                           telemetry_setup.SHUTDOWN_TIMEOUT_S + STAGE_TIMEOUT_S)
        self._stopped.set()
        log.info("modelyard stopped")

    async def _stop_health(self) -> None:
        await self.store_monitor.stop()
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))
        loop.add_signal_handler(signal.SIGHUP, self._reload)

    def _reload(self) -> None:
        with contextlib.suppress(ConfigRejected):
            self.app.reload()

    async def wait(self) -> None:
        await self._stopped.wait()


async def serve(config_path: str | Path, listen: str | None = None) -> None:
    server = Server(App.from_config_file(config_path), listen)
    await server.start()
    server.install_signal_handlers()
    # What start-up made (modules, protobuf descriptors, config, catalog, clients) lives as long as the
    # process: freezing it keeps the collector's periodic full passes to what serving allocates. Without
    # it each full pass walked the whole start-up heap, 30-70 ms during which no request moved.
    gc.collect()
    gc.freeze()
    await server.wait()
