"""Budgets service: GetBudget."""

from __future__ import annotations

import grpc

from modelyard import convert, queries
from modelyard.app import App
from modelyard.interceptors import principal
from modelyard.v1 import budgets_pb2, budgets_pb2_grpc


class BudgetsServicer(budgets_pb2_grpc.BudgetsServicer):
    def __init__(self, app: App) -> None:
        self.app = app

    async def GetBudget(
        self, request: budgets_pb2.GetBudgetRequest, context: grpc.aio.ServicerContext
    ) -> budgets_pb2.GetBudgetResponse:
        tenant = convert.req_id(request.tenant, "tenant", required=False)
        tenant_id, views = await queries.get_budget(self.app, principal(), tenant)
        return budgets_pb2.GetBudgetResponse(tenant=tenant_id, windows=[convert.budget_window(v) for v in views])
