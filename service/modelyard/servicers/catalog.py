"""Catalog service: ListModels and Estimate."""

from __future__ import annotations

import grpc

from modelyard import convert, queries
from modelyard.app import App
from modelyard.interceptors import principal
from modelyard.v1 import catalog_pb2, catalog_pb2_grpc, types_pb2


def _model_info(m, arms: list[queries.ArmView]) -> catalog_pb2.ModelInfo:
    p = m.price
    params = catalog_pb2.Parameters(note=m.params.note or "")
    if m.params.total_b is not None:
        params.total_b = m.params.total_b
    if m.params.active_b is not None:
        params.active_b = m.params.active_b
    return catalog_pb2.ModelInfo(
        model_id=m.id, display_name=m.display_name, provider=m.provider, endpoint=m.endpoint,
        upstream_model=m.upstream_model, tier=m.tier,
        price=catalog_pb2.Price(
            input_per_mtok=p.input_per_mtok or 0.0, cached_input_per_mtok=p.cached_input_per_mtok or 0.0,
            output_per_mtok=p.output_per_mtok or 0.0, source=p.source or "", as_of=str(p.as_of or ""),
            published=p.published, note=p.note or "",
        ),
        context_window=m.context_window, parameters=params, provenance=list(m.provenance),
        capabilities=list(m.capabilities), prior_success=m.prior.success, prior_strength=m.prior.strength,
        estimates=[
            catalog_pb2.LearnedEstimate(
                role=types_pb2.Role.ValueType(a.role), task_class=a.task_class, success_probability=a.success_mean,
                success_low=a.success_low, success_high=a.success_high, cost_usd=a.cost_usd,
                latency_ms=a.latency_ms,
                cost_per_success_usd=a.cost_usd / a.success_mean if a.success_mean > 0 else 0.0,
                evidence=a.evidence,
            )
            for a in arms
        ],
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    async def ListModels(
        self, request: catalog_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListModelsResponse:
        rt = self.app.runtime
        learned = queries.learned_estimates(self.app, principal()) if request.include_estimates else {}
        return catalog_pb2.ListModelsResponse(
            models=[_model_info(m, learned.get(m.id, [])) for m in rt.config.models],
            config_version=rt.version,
        )

    async def Estimate(
        self, request: catalog_pb2.EstimateRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.EstimateResponse:
        task = convert.task_profile(request.task, "task", request.HasField("task"), self.app.runtime.token_defaults)
        cons = convert.constraints(request.constraints, "constraints")
        cands = queries.estimate(self.app, principal(), task, cons)
        return catalog_pb2.EstimateResponse(candidates=[convert.candidate(c) for c in cands])
