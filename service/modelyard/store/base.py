"""The `Store` protocol every budget/decision backend implements, its records and its errors.

Money is integer micro-dollars throughout; times are float epoch seconds (UTC); windows are
`Window` ints (1 hour, 2 day, 3 calendar month) and scopes are "tenant" or "key".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelyard.store.spool import StateFile
from modelyard.store.windows import Window, iso_utc

TENANT = "tenant"
KEY = "key"
UNLIMITED = -1  # a Limit.hard_micros that counts spend without ever refusing
#: How long a decision is kept after its reservation expired, and counters after their window
#: (Redis: TTLs; SQLite: the expiry sweep deletes closed decisions). The ledger is kept for good.
RETENTION_S = 35 * 86400


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter a reservation is held to; hard_micros == UNLIMITED counts without enforcing."""

    scope: str
    subject: str
    window: int
    hard_micros: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """What Route writes: the decision and its hold of `estimate_micros` on the budget."""

    request_id: str
    decision_id: str
    tenant: str
    key_id: str
    job_id: str
    model: str
    role: int
    task_class: str
    estimate_micros: int
    created_at: float
    expires_at: float
    payload: bytes  # the serialized decision, returned verbatim on an idempotent replay


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A stored decision with its settlement state.

    `settled` is set by settle(); `expired` by expire() (then `charged_micros` is the estimate if
    the expiry charged it, else 0). `status` is 0 until settled, then the outcome status 1..5, or
    VERDICT_PENDING for a Dispatch call that completed until record_verdict() gives its verdict.
    """

    request_id: str
    decision_id: str
    tenant: str
    key_id: str
    job_id: str
    model: str
    role: int
    task_class: str
    estimate_micros: int
    created_at: float
    expires_at: float
    payload: bytes
    settled: bool = False
    charged_micros: int = 0
    status: int = 0
    model_used: str = ""
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    settled_at: float | None = None
    expired: bool = False


@dataclass(frozen=True, slots=True)
class SettleResult:
    """charged: added to spend; released: the part of the estimate given back to the budget,
    max(0, estimate - charged). A duplicate repeats the figures of whatever closed the decision
    first (a settle, or an expiry when `expired`)."""

    decision_id: str
    charged_micros: int
    released_micros: int
    duplicate: bool
    expired: bool = False


@dataclass(frozen=True, slots=True)
class WindowUsage:
    scope: str
    subject: str
    window: int
    window_start: int
    resets_at: int
    spent_micros: int
    reserved_micros: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A completed job's summary, frozen at the first complete_job call.

    total_cost_micros counts settled charges, expiry charges and still-open estimates; a step is
    one decision; models are in first-use order (the model used if settled, else the routed one).
    """

    tenant: str
    job_id: str
    status: int
    completed_at: float
    total_cost_micros: int
    steps: int
    total_latency_ms: float
    models: tuple[str, ...]
    per_model: tuple[tuple[str, int, int], ...]  # (model, steps, cost_micros)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One charge: kind "settle" (actual cost) or "expiry" (estimate of an unsettled decision)."""

    seq: int
    decision_id: str
    tenant: str
    key_id: str
    model: str
    amount_micros: int
    at: float
    kind: str


@dataclass(frozen=True, slots=True)
class DeltaEntry:
    """One replica's learned changes in the shared log (see learning_sync.py)."""

    id: str  # the log entry id, "<ms>-<seq>", increasing
    tag: str  # the process that wrote it
    delta: bytes


@dataclass(frozen=True, slots=True)
class SharedBase:
    """A full snapshot of shared learning: every log entry up to `pos`, and the entries `also`.
    `snapshot` is the bytes, or the file they were written to (`load_base(..., into=path)`)."""

    snapshot: bytes | bytearray | Path
    pos: str
    also: list[str]


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or is not open; the caller applies its fail policy."""


def _usd(micros: int) -> str:
    if micros % 10_000 == 0:
        return f"${micros / 1_000_000:.2f}"
    return f"${micros / 1_000_000:.6f}".rstrip("0")


class BudgetExceeded(StoreError):
    """A reservation would push spent + reserved past a hard limit; nothing was written."""

    def __init__(
        self, scope: str, subject: str, window: int, limit_micros: int, spent_micros: int,
        reserved_micros: int, resets_at: int, requested_micros: int = 0,
    ) -> None:
        self.scope = scope
        self.subject = subject
        self.window = window
        self.limit_micros = limit_micros
        self.spent_micros = spent_micros
        self.reserved_micros = reserved_micros
        self.resets_at = resets_at
        self.requested_micros = requested_micros
        super().__init__(str(self))

    def __str__(self) -> str:
        name = Window(self.window).name.lower()
        return (
            f"{self.scope} '{self.subject}' {name} budget exhausted: "
            f"{_usd(self.spent_micros)} of {_usd(self.limit_micros)} spent, "
            f"{_usd(self.reserved_micros)} reserved, resets {iso_utc(self.resets_at)}"
            + (f" (this call needs {_usd(self.requested_micros)})" if self.requested_micros else "")
        )


class DecisionNotFound(StoreError):
    """No such decision for this tenant (also when it belongs to another tenant)."""


class JobNotFound(StoreError):
    """No decision was ever routed for this tenant's job id."""


# Stored status of a decision whose call completed (Dispatch) and whose step verdict is the
# harness's to give (record_verdict); never accepted from a client (not an OutcomeStatus).
VERDICT_PENDING = 6


class Store(Protocol):
    """Budget counters, decisions, ledger, job summaries and learned state; see each method."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the backend answers; never raises."""
        ...

    async def reserve(
        self, r: Reservation, limits: Sequence[Limit], now: float,
    ) -> tuple[DecisionRecord, bool]:
        """Atomically record `r` and hold its estimate on every limit's counter.

        If `r.request_id` already exists for `r.tenant`, return (that record, True) and change
        nothing, even if the limits would now refuse. Otherwise every limit with hard_micros >= 0
        must satisfy spent + reserved + estimate <= hard in the window containing `now`, else
        BudgetExceeded for the first failing limit and nothing is written. On success the estimate
        is added to `reserved` of each limit's counter, plus the tenant's and key's counters of all
        three windows (so usage is always reportable), and (record, False) is returned.
        """
        ...

    async def find_request(self, request_id: str, tenant: str) -> DecisionRecord | None:
        """The decision an earlier reserve() stored for this request id, if any."""
        ...

    async def settle(
        self, decision_id: str, tenant: str, *, actual_micros: int, status: int, model_used: str,
        input_tokens: int, cached_input_tokens: int, output_tokens: int, latency_ms: float,
        now: float,
    ) -> SettleResult:
        """Atomically move the estimate out of `reserved` and add `actual_micros` to `spent` on the
        counters (and windows) the reservation was made in, and append a "settle" ledger row.

        Idempotent: a settled or expired decision yields duplicate=True and changes nothing.
        Raises DecisionNotFound for an unknown id or another tenant's id.
        """
        ...

    async def record_verdict(self, decision_id: str, tenant: str, status: int) -> bool:
        """Atomically replace the status of a decision settled as VERDICT_PENDING with `status` (the
        harness's verdict on a Dispatch call). True the first time; False, changing nothing, for
        any other decision (unknown, another tenant's, open, expired, or given a verdict already)."""
        ...

    async def expire(self, now: float, *, charge: bool) -> int:
        """Close every open reservation with expires_at <= now in one step: charge its estimate
        (ledger kind "expiry") or release it. Returns how many were closed."""
        ...

    async def usage(self, subjects: Sequence[tuple[str, str]], now: float) -> list[WindowUsage]:
        """Windows 1..3 containing `now` of each (scope, subject), in order; zeros if unused."""
        ...

    async def get_decision(self, decision_id: str, tenant: str) -> DecisionRecord | None:
        """None also for another tenant's decision."""
        ...

    async def job_decisions(self, tenant: str, job_id: str) -> list[DecisionRecord]:
        """The job's decisions in creation order."""
        ...

    async def complete_job(
        self, tenant: str, job_id: str, status: int, now: float,
    ) -> tuple[JobRecord, bool]:
        """Record the job's status and summary; later calls return the stored one with True.
        Raises JobNotFound when the tenant never routed a step of this job."""
        ...

    async def ledger(self, *, tenant: str | None = None, since: float = 0.0) -> list[LedgerEntry]:
        """Ledger rows with at >= since (optionally of one tenant), oldest first."""
        ...

    async def save_state(self, name: str, blob: bytes, now: float) -> None:
        """Store learned core state (snapshot bytes) under `name`, replacing the previous one."""
        ...

    async def load_state(self, name: str) -> bytes | None: ...

    async def save_state_from(self, name: str, write: StateFile, now: float) -> None:
        """`save_state` of the state `write(path)` puts in a file (`Core.snapshot_to_path`): the
        store copies it from the file in chunks, so the state is never held whole in memory."""
        ...

    async def load_state_into(self, name: str, read: StateFile) -> bool:
        """Hands `name`'s stored state to `read(path)` as a file (`Core.restore_path`), copied
        out in chunks; False, without calling `read`, when nothing is stored."""
        ...
