"""`FailOpenStore`: keeps routing while the real store is down, up to a per-replica local cap.

While the inner store raises StoreUnavailable, reservations are held in this process's memory and
counted against `cap_micros` (estimates while open, actual cost once settled) for the life of the
process; past the cap it fails closed. What is lost: spend approved while the store is down is
never added to the shared counters or the ledger (it is logged at WARNING), so each replica may
overspend a tenant's budget by up to the cap; budgets shown while down read as unused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from modelyard.store.base import (
    VERDICT_PENDING,
    DecisionRecord,
    JobRecord,
    LedgerEntry,
    Limit,
    Reservation,
    SettleResult,
    Store,
    StoreUnavailable,
    WindowUsage,
)
from modelyard.store.spool import StateFile
from modelyard.store.summary import released_micros
from modelyard.store.windows import WINDOWS, window_bounds

log = logging.getLogger("modelyard.store")


class FailOpenStore:
    """Delegates to `inner`; on StoreUnavailable, reserve/settle fall back to a local ledger."""

    def __init__(self, inner: Store, *, cap_micros: int) -> None:
        self.inner = inner
        self.cap_micros = cap_micros
        self.local_spent_micros = 0  # settled locally, never recorded in the shared store
        self.local_held_micros = 0  # estimates of open local reservations
        self._local: dict[str, DecisionRecord] = {}  # decision_id -> record
        self._by_request: dict[tuple[str, str], str] = {}

    def __getattr__(self, name: str) -> object:  # backend extras, e.g. shared learning
        return getattr(self.inner, name)

    async def open(self) -> None:
        try:
            await self.inner.open()
        except StoreUnavailable as exc:
            log.warning("store unavailable at start, failing open (cap %d micros): %s", self.cap_micros, exc)

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def reserve(self, r: Reservation, limits: Sequence[Limit], now: float) -> tuple[DecisionRecord, bool]:
        try:
            return await self.inner.reserve(r, limits, now)
        except StoreUnavailable:
            known = self._by_request.get((r.tenant, r.request_id))
            if known is not None:
                return self._local[known], True
            if self.local_spent_micros + self.local_held_micros + r.estimate_micros > self.cap_micros:
                raise
            rec = DecisionRecord(**{f: getattr(r, f) for f in Reservation.__slots__})
            self._local[r.decision_id] = rec
            self._by_request[(r.tenant, r.request_id)] = r.decision_id
            self.local_held_micros += r.estimate_micros
            log.warning("store down: reserved %d micros locally for %s (tenant %s)", r.estimate_micros,
                        r.decision_id, r.tenant)
            return rec, False

    def _mine(self, decision_id: str, tenant: str) -> DecisionRecord | None:
        rec = self._local.get(decision_id)
        return rec if rec is not None and rec.tenant == tenant else None

    async def find_request(self, request_id: str, tenant: str) -> DecisionRecord | None:
        known = self._by_request.get((tenant, request_id))
        return self._local[known] if known else await self.inner.find_request(request_id, tenant)

    async def get_decision(self, decision_id: str, tenant: str) -> DecisionRecord | None:
        return self._mine(decision_id, tenant) or await self.inner.get_decision(decision_id, tenant)

    async def settle(
        self, decision_id: str, tenant: str, *, actual_micros: int, status: int, model_used: str,
        input_tokens: int, cached_input_tokens: int, output_tokens: int, latency_ms: float,
        now: float,
    ) -> SettleResult:
        rec = self._mine(decision_id, tenant)
        if rec is None:
            return await self.inner.settle(
                decision_id, tenant, actual_micros=actual_micros, status=status, model_used=model_used,
                input_tokens=input_tokens, cached_input_tokens=cached_input_tokens,
                output_tokens=output_tokens, latency_ms=latency_ms, now=now)
        if rec.settled:
            return SettleResult(decision_id, rec.charged_micros,
                                released_micros(rec.estimate_micros, rec.charged_micros), duplicate=True)
        self._local[decision_id] = replace(
            rec, settled=True, charged_micros=actual_micros, status=status, model_used=model_used or rec.model,
            input_tokens=input_tokens, cached_input_tokens=cached_input_tokens, output_tokens=output_tokens,
            latency_ms=latency_ms, settled_at=now)
        self.local_held_micros -= rec.estimate_micros
        self.local_spent_micros += actual_micros
        log.warning("store down: settled %s locally at %d micros (tenant %s, key %s); not in the ledger",
                    decision_id, actual_micros, tenant, rec.key_id)
        return SettleResult(decision_id, actual_micros, released_micros(rec.estimate_micros, actual_micros),
                            duplicate=False)

    async def record_verdict(self, decision_id: str, tenant: str, status: int) -> bool:
        rec = self._mine(decision_id, tenant)
        if rec is None:
            return await self.inner.record_verdict(decision_id, tenant, status)
        if not rec.settled or rec.status != VERDICT_PENDING:
            return False
        self._local[decision_id] = replace(rec, status=status)
        return True

    async def expire(self, now: float, *, charge: bool) -> int:
        return await self.inner.expire(now, charge=charge)

    async def usage(self, subjects: Sequence[tuple[str, str]], now: float) -> list[WindowUsage]:
        try:
            return await self.inner.usage(subjects, now)
        except StoreUnavailable:  # unknown while down: the local cap is the only limit
            return [WindowUsage(scope, subject, int(w), *window_bounds(w, now), 0, 0)
                    for scope, subject in subjects for w in WINDOWS]

    async def job_decisions(self, tenant: str, job_id: str) -> list[DecisionRecord]:
        return await self.inner.job_decisions(tenant, job_id)

    async def complete_job(self, tenant: str, job_id: str, status: int, now: float) -> tuple[JobRecord, bool]:
        return await self.inner.complete_job(tenant, job_id, status, now)

    async def ledger(self, *, tenant: str | None = None, since: float = 0.0) -> list[LedgerEntry]:
        return await self.inner.ledger(tenant=tenant, since=since)

    async def save_state(self, name: str, blob: bytes, now: float) -> None:
        await self.inner.save_state(name, blob, now)

    async def load_state(self, name: str) -> bytes | None:
        return await self.inner.load_state(name)

    async def save_state_from(self, name: str, write: StateFile, now: float) -> None:
        await self.inner.save_state_from(name, write, now)

    async def load_state_into(self, name: str, read: StateFile) -> bool:
        return await self.inner.load_state_into(name, read)
