"""The Redis store's key layout and the encoding of its records (hashes, ledger rows, jobs).

Every key of one tenant shares the hash tag `{<prefix>:t:<tenant>}`, so each Lua script touches a
single Redis Cluster slot; learned state and global indexes live under their own tags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from modelyard.store.base import DecisionRecord, JobRecord, LedgerEntry, Reservation


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    def tag(self, tenant: str) -> str:
        return f"{{{self.prefix}:t:{tenant}}}"

    def req(self, tenant: str, request_id: str) -> str:
        return f"{self.tag(tenant)}:req:{request_id}"

    def dec(self, tenant: str, decision_id: str) -> str:
        return f"{self.tag(tenant)}:dec:{decision_id}"

    def open(self, tenant: str) -> str:
        return f"{self.tag(tenant)}:open"

    def job(self, tenant: str, job_id: str) -> str:
        return f"{self.tag(tenant)}:job:{job_id}"

    def job_done(self, tenant: str, job_id: str) -> str:
        return f"{self.tag(tenant)}:jobdone:{job_id}"

    def ledger(self, tenant: str) -> str:
        return f"{self.tag(tenant)}:ledger"

    def ledger_seq(self, tenant: str) -> str:
        return f"{self.tag(tenant)}:ledger:seq"

    def counter(self, tenant: str, scope: str, subject: str, window: int, start: int) -> str:
        return f"{self.tag(tenant)}:c:{scope}:{subject}:{window}:{start}"

    @property
    def tenants(self) -> str:
        """Set of tenants that ever reserved: where expiry looks for open reservations."""
        return f"{self.prefix}:tenants"

    @property
    def key_owner(self) -> str:
        """Hash key_id -> tenant, so usage() of a key finds the tenant tag its counters are under."""
        return f"{self.prefix}:keyowner"

    def state(self, name: str) -> str:
        return f"{{{self.prefix}:state}}:{name}"

    def state_gen(self, name: str) -> str:
        """Bumped with every save of `state(name)`, so a reader in pieces can tell it changed."""
        return f"{self.state(name)}:gen"

    def learn(self, name: str) -> str:
        """Before deltas: hash replica_id -> that replica's own learned contribution (a core
        snapshot). Read once, to start from it, while no base exists."""
        return f"{{{self.prefix}:learn}}:{name}"

    def learn_log(self, name: str) -> str:
        """Stream of every replica's learned changes (core deltas), see learning_sync.py."""
        return f"{{{self.prefix}:learn}}:{name}:log"

    def learn_base(self, name: str) -> str:
        """Hash: a full snapshot (in chunks) and the log position it includes."""
        return f"{{{self.prefix}:learn}}:{name}:base"

    def learn_lease(self, name: str) -> str:
        """Who writes the next base; expires after the compaction interval."""
        return f"{{{self.prefix}:learn}}:{name}:lease"


def record_fields(r: Reservation, holds: list[str]) -> list[str | bytes]:
    """Field/value pairs of a new decision hash, in the order reserve.lua receives them."""
    values: dict[str, str | bytes] = {
        "request_id": r.request_id, "decision_id": r.decision_id, "tenant": r.tenant,
        "key_id": r.key_id, "job_id": r.job_id, "model": r.model, "role": str(r.role),
        "task_class": r.task_class, "estimate_micros": str(r.estimate_micros),
        "created_at": repr(r.created_at), "expires_at": repr(r.expires_at), "payload": r.payload,
        "settled": "0", "expired": "0", "charged_micros": "0", "status": "0", "model_used": "",
        "input_tokens": "0", "cached_input_tokens": "0", "output_tokens": "0", "latency_ms": "0",
        "settled_at": "", "holds": "\n".join(holds),
    }
    return [x for kv in values.items() for x in kv]


def to_record(h: dict[bytes, bytes]) -> DecisionRecord:
    s = {k.decode(): v for k, v in h.items()}

    def text(name: str) -> str:
        return s[name].decode()

    settled_at = text("settled_at")
    return DecisionRecord(
        request_id=text("request_id"), decision_id=text("decision_id"), tenant=text("tenant"),
        key_id=text("key_id"), job_id=text("job_id"), model=text("model"), role=int(s["role"]),
        task_class=text("task_class"), estimate_micros=int(s["estimate_micros"]),
        created_at=float(s["created_at"]), expires_at=float(s["expires_at"]),
        payload=bytes(s["payload"]), settled=s["settled"] == b"1",
        charged_micros=int(s["charged_micros"]), status=int(s["status"]),
        model_used=text("model_used"), input_tokens=int(s["input_tokens"]),
        cached_input_tokens=int(s["cached_input_tokens"]), output_tokens=int(s["output_tokens"]),
        latency_ms=float(s["latency_ms"]), settled_at=float(settled_at) if settled_at else None,
        expired=s["expired"] == b"1",
    )


def to_ledger_entry(member: bytes) -> LedgerEntry:
    """Parse a ledger zset member: zero-padded per-tenant seq, "|", JSON row (see close.lua)."""
    seq, _, row = member.partition(b"|")
    decision_id, tenant, key_id, model, amount, at, kind = json.loads(row)
    return LedgerEntry(seq=int(seq), decision_id=decision_id, tenant=tenant, key_id=key_id,
                       model=model, amount_micros=int(amount), at=float(at), kind=kind)


def job_to_json(job: JobRecord) -> str:
    return json.dumps([job.tenant, job.job_id, job.status, job.completed_at, job.total_cost_micros,
                       job.steps, job.total_latency_ms, list(job.models),
                       [list(p) for p in job.per_model]])


def job_from_json(raw: bytes) -> JobRecord:
    tenant, job_id, status, completed_at, cost, steps, latency, models, per_model = json.loads(raw)
    return JobRecord(tenant=tenant, job_id=job_id, status=status, completed_at=completed_at,
                     total_cost_micros=cost, steps=steps, total_latency_ms=latency,
                     models=tuple(models), per_model=tuple((m, n, c) for m, n, c in per_model))
