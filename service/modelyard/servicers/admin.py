"""Admin service: ReloadConfig, GetStats, ExportState, ImportState."""

from __future__ import annotations

import time

import grpc

from modelyard.app import App
from modelyard.core import CoreError, RoutingCore
from modelyard.errors import InvalidArgument
from modelyard.interceptors import principal
from modelyard.v1 import admin_pb2, admin_pb2_grpc

MAX_STATE_BYTES = 64 * 1024 * 1024


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    def _core(self) -> RoutingCore:
        """The shared core, or the calling admin's tenant's core when learning is per tenant."""
        return self.app.core_for(principal().tenant)

    async def ReloadConfig(
        self, request: admin_pb2.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReloadConfigResponse:
        previous, rt = self.app.reload()
        return admin_pb2.ReloadConfigResponse(
            config_version=rt.version, previous_version=previous,
            models=len(rt.config.models), tenants=len(rt.config.tenants),
        )

    async def GetStats(
        self, request: admin_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetStatsResponse:
        self.app.sync_front()  # the Rust front's Routes, counted (front.py)
        s = self.app.stats
        with s.lock:
            by_model = s.decisions_by_model.most_common()
        return admin_pb2.GetStatsResponse(
            config_version=self.app.runtime.version, uptime_s=time.time() - s.started_at,
            decisions=s.decisions, outcomes=s.outcomes, jobs_completed=s.jobs_completed,
            arms=sum(c.arm_count() for c in self.app.cores().values()), drift_events=s.drift_events,
            decisions_by_model=[admin_pb2.ModelCount(model_id=m, count=n) for m, n in by_model],
            store=self.app.runtime.config.store.kind,
        )

    async def ExportState(
        self, request: admin_pb2.ExportStateRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ExportStateResponse:
        return admin_pb2.ExportStateResponse(state=self._core().snapshot(), arms=self._core().arm_count())

    async def ImportState(
        self, request: admin_pb2.ImportStateRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ImportStateResponse:
        if not request.state:
            raise InvalidArgument("state", "is empty; pass the bytes ExportState returned")
        if len(request.state) > MAX_STATE_BYTES:
            raise InvalidArgument("state", f"is larger than {MAX_STATE_BYTES} bytes")
        try:
            if request.merge:
                self._core().merge(request.state)
            else:
                self._core().restore(request.state)
        except CoreError as exc:
            raise InvalidArgument("state", f"is not a modelyard state snapshot: {exc}") from exc
        await self.app.save_state()
        return admin_pb2.ImportStateResponse(arms=self._core().arm_count())
