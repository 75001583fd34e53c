"""Plain data the business functions take and return; the servicers convert proto to and from these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

ROLE_NAMES = {1: "planner", 2: "executor", 3: "reviewer", 4: "explorer", 5: "summarizer", 6: "orchestrator"}
ROLE_BY_NAME = {name: num for num, name in ROLE_NAMES.items()}
STATUS_NAMES = {1: "success", 2: "failure", 3: "error", 4: "timeout", 5: "cancelled"}
JOB_STATUS_NAMES = {1: "succeeded", 2: "failed", 3: "abandoned"}
WINDOW_NAMES = {1: "hour", 2: "day", 3: "month"}
WINDOW_BY_NAME = {name: num for num, name in WINDOW_NAMES.items()}

SUCCESS, FAILURE, ERROR, TIMEOUT, CANCELLED = 1, 2, 3, 4, 5
JOB_SUCCEEDED, JOB_FAILED, JOB_ABANDONED = 1, 2, 3


def usd_to_micros(usd: float) -> int:
    return round(usd * 1_000_000)


def micros_to_usd(micros: int) -> float:
    return micros / 1_000_000


@dataclass(frozen=True, slots=True)
class TaskProfile:
    role: int
    task_class: str
    est_input_tokens: int = 0
    est_output_tokens: int = 0
    est_cached_input_tokens: int = 0
    capabilities: tuple[str, ...] = ()
    min_context_window: int = 0


@dataclass(frozen=True, slots=True)
class Constraints:
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    min_success_probability: float | None = None
    allowed_models: tuple[str, ...] = ()
    denied_models: tuple[str, ...] = ()
    required_provenance: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteInput:
    request_id: str
    job_id: str
    task: TaskProfile
    constraints: Constraints = field(default_factory=Constraints)
    attempt: int = 1
    failed_models: tuple[str, ...] = ()
    explain: bool = False
    explore: bool | None = None
    context_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model_id: str
    provider: str
    endpoint: str
    upstream_model: str


@dataclass(frozen=True, slots=True)
class CandidateView:
    model_id: str
    excluded: bool
    constraint: str
    detail: str
    cost_usd: float
    success_probability: float
    sampled_success: float
    latency_ms: float
    score: float
    evidence: float
    success_low: float = 0.0
    success_high: float = 1.0


@dataclass(frozen=True, slots=True)
class BudgetView:
    scope: str
    subject: str
    window: int
    hard_usd: float | None
    soft_usd: float | None
    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    resets_at: str


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    model: ModelChoice
    fallbacks: tuple[ModelChoice, ...]
    cost_usd: float
    success_probability: float
    latency_ms: float
    cost_per_success_usd: float
    reserved_usd: float
    budget_remaining_usd: float
    exploration: bool
    sticky: bool
    reason: str
    reservation_expires_at: int
    candidates: tuple[CandidateView, ...] = ()
    budgets: tuple[BudgetView, ...] = ()
    replayed: bool = False
    # The step's size as routed: the outcome's usage is learned relative to it.
    est_input_tokens: int = 0
    est_output_tokens: int = 0
    est_cached_input_tokens: int = 0
    # Which try of the step this decision was (retries are learned apart: the task proved hard).
    attempt: int = 1
    # Mean effort of the job's failed tries of this role when routed (None: unknown); its outcome
    # teaches that effort's retry arms (router_core Router::report).
    failed_effort: float | None = None

    @staticmethod
    def from_json_payload(data: bytes) -> Decision:
        """A decision row's payload as releases before store.proto wrote it (JSON); new rows are
        `convert.stored_decision` and read by `convert.decision_from_stored`, which calls this for
        the old ones."""
        raw: dict[str, Any] = json.loads(data)
        raw["model"] = ModelChoice(**raw["model"])
        raw["fallbacks"] = tuple(ModelChoice(**f) for f in raw["fallbacks"])
        raw["candidates"] = tuple(CandidateView(**c) for c in raw["candidates"])
        raw["budgets"] = tuple(BudgetView(**b) for b in raw["budgets"])
        return Decision(**raw)

    def as_replay(self) -> Decision:
        return replace(self, replayed=True)


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    decision_id: str
    status: int
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    model_id: str = ""
    cost_usd: float | None = None
    time_to_first_token_ms: float = 0.0
    # Dispatch settling a call that completed (status SUCCESS): the step's verdict is the
    # harness's, so only usage and latency are learned now (see routing.report_outcome).
    verdict_pending: bool = False


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    decision_id: str
    charged_usd: float
    released_usd: float
    duplicate: bool
    # The report was the verdict on a call Dispatch had settled: learned, not charged again.
    verdict: bool = False


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: str
    status: int
    total_cost_usd: float
    total_latency_ms: float
    steps: int
    models: tuple[str, ...]
    per_model: tuple[tuple[str, int, float], ...]
    duplicate: bool
