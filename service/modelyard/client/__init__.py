"""Harness client library of modelyard: route each step of a coding agent's job and report what happened.

    from modelyard.client import Client

    with Client("127.0.0.1:50051", api_key) as client, client.job("bugfix/python") as job:
        step = job.route("executor", est_input_tokens=20_000, est_output_tokens=1_500)
        ...  # call step.model.upstream_model
        step.report("success", input_tokens=18_000, output_tokens=1_200, latency_ms=900)
    print(job.total_cost_usd)

`AsyncClient` is the asyncio twin. Every failed call raises a `ModelyardError` (or a subclass).
"""

from modelyard.client._common import DispatchOptions, DispatchResult, ReportOptions, RetryPolicy, RouteOptions
from modelyard.client.aio import AsyncClient, AsyncDispatchStep, AsyncJob, AsyncStep
from modelyard.client.errors import (
    AuthError,
    BudgetExceeded,
    DeadlineExceeded,
    InvalidRequest,
    ModelyardError,
    NoEligibleModel,
    NotFound,
    Unavailable,
)
from modelyard.client.sync import Client, DispatchStep, Job, Step

__all__ = [
    "AsyncClient",
    "AsyncDispatchStep",
    "AsyncJob",
    "AsyncStep",
    "AuthError",
    "BudgetExceeded",
    "Client",
    "DeadlineExceeded",
    "DispatchOptions",
    "DispatchResult",
    "DispatchStep",
    "InvalidRequest",
    "Job",
    "ModelyardError",
    "NoEligibleModel",
    "NotFound",
    "ReportOptions",
    "RetryPolicy",
    "RouteOptions",
    "Step",
    "Unavailable",
]
