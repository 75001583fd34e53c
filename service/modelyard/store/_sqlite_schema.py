"""SQLite schema of the embedded store, connection set-up and row → record mapping.

Tables: decisions (one row per reservation, settled in place, with the windows its hold was made
in), counters (spent/reserved per scope, subject, window and window start), ledger (one row per
charge), jobs, state.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from modelyard.store.base import DecisionRecord, JobRecord, LedgerEntry

log = logging.getLogger("modelyard.store")

# 2: state blobs in `state_chunks` (version 1's `state.blob` is still read).
# 3: `state_log`: a learned state's changes since its last full save, as deltas in order.
# 4: fewer pages written per reservation: `decisions.held` instead of the `holds` table, and `seq` a
#    plain rowid (no AUTOINCREMENT, whose sequence row was one more page per commit).
SCHEMA_VERSION = 4

# The decisions table as version 4 has it; `_decisions_to_v4` rebuilds an older one into it.
DECISIONS = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    model TEXT NOT NULL,
    role INTEGER NOT NULL,
    task_class TEXT NOT NULL,
    estimate_micros INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    payload BLOB NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    charged_micros INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 0,
    model_used TEXT NOT NULL DEFAULT '',
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms REAL NOT NULL DEFAULT 0,
    settled_at REAL,
    expired INTEGER NOT NULL DEFAULT 0,
    held TEXT NOT NULL DEFAULT '',
    UNIQUE (tenant, request_id)
);
"""
DECISION_INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_open ON decisions (expires_at)
    WHERE settled = 0 AND expired = 0;
CREATE INDEX IF NOT EXISTS decisions_job ON decisions (tenant, job_id, seq);
"""

SCHEMA = DECISIONS.format(name="decisions") + DECISION_INDEXES + """
CREATE TABLE IF NOT EXISTS counters (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    win INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    spent_micros INTEGER NOT NULL DEFAULT 0,
    reserved_micros INTEGER NOT NULL DEFAULT 0 CHECK (reserved_micros >= 0),
    PRIMARY KEY (scope, subject, win, window_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at);
CREATE TABLE IF NOT EXISTS jobs (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    completed_at REAL NOT NULL,
    total_cost_micros INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    total_latency_ms REAL NOT NULL,
    models TEXT NOT NULL,
    per_model TEXT NOT NULL,
    PRIMARY KEY (tenant, job_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    blob BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state_chunks (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chunk BLOB NOT NULL,
    PRIMARY KEY (name, seq)
);
CREATE TABLE IF NOT EXISTS state_log (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    delta BLOB NOT NULL,
    PRIMARY KEY (name, seq)
);
"""


def connect(path: str | Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL and full fsync."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a COMMIT (hence a settle) is on disk before the call returns, even on power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{path}: schema version {version} is newer than this build ({SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            started = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rebuilt = _decisions_to_v4(conn)
                for statement in _statements(SCHEMA):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if rebuilt:
                log.warning("SQLite store: %s upgraded to schema %d in %.1f s", path, SCHEMA_VERSION,
                            time.monotonic() - started)
    except BaseException:
        conn.close()
        raise
    return conn


_DECISION_COLUMNS = (
    "seq", "decision_id", "request_id", "tenant", "key_id", "job_id", "model", "role", "task_class",
    "estimate_micros", "created_at", "expires_at", "payload", "settled", "charged_micros", "status",
    "model_used", "input_tokens", "cached_input_tokens", "output_tokens", "latency_ms", "settled_at",
    "expired",
)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _decisions_to_v4(conn: sqlite3.Connection) -> bool:
    """An older decisions table rebuilt as version 4's, in the caller's transaction: the same rows and
    seq values; each open reservation's windows taken from its `holds` rows, which are dropped."""
    present = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
    if not present or "held" in present:
        return False
    cols = [c for c in _DECISION_COLUMNS if c in present]  # names from this list only, never the file's
    rows = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    log.warning("SQLite store: upgrading to schema %d, rebuilding the decisions table (%d rows) once; "
                "the server starts when it is done", SCHEMA_VERSION, rows)
    has_holds = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'holds'").fetchone()
    # Version 3 held the tenant's and the key's counter of every window, both made at the same instant.
    held = ("CASE WHEN d.settled = 0 AND d.expired = 0 THEN coalesce((SELECT group_concat(win || ':' ||"
            " window_start, ',') FROM (SELECT DISTINCT win, window_start FROM holds h"
            " WHERE h.decision_id = d.decision_id ORDER BY win)), '') ELSE '' END") if has_holds else "''"
    conn.execute(DECISIONS.format(name="decisions_v4"))
    conn.execute(f"INSERT INTO decisions_v4 ({', '.join(cols)}, held)"  # noqa: S608 - fixed names
                 f" SELECT {', '.join('d.' + c for c in cols)}, {held} FROM decisions d")
    conn.execute("DROP TABLE decisions")
    conn.execute("ALTER TABLE decisions_v4 RENAME TO decisions")
    if has_holds:
        conn.execute("DROP TABLE holds")
    return True


def held_text(windows: Iterable[tuple[int, int]]) -> str:
    """`decisions.held`: the (window, window start) pairs of the tenant's and the key's counters a
    reservation holds, as "win:start,..."."""
    return ",".join(f"{w}:{start}" for w, start in windows)


def held_pairs(text: str) -> list[tuple[int, int]]:
    return [(int(w), int(start)) for w, _, start in (p.partition(":") for p in text.split(",") if p)]


def to_record(row: sqlite3.Row) -> DecisionRecord:
    return DecisionRecord(
        request_id=row["request_id"], decision_id=row["decision_id"], tenant=row["tenant"],
        key_id=row["key_id"], job_id=row["job_id"], model=row["model"], role=row["role"],
        task_class=row["task_class"], estimate_micros=row["estimate_micros"],
        created_at=row["created_at"], expires_at=row["expires_at"], payload=bytes(row["payload"]),
        settled=bool(row["settled"]), charged_micros=row["charged_micros"], status=row["status"],
        model_used=row["model_used"], input_tokens=row["input_tokens"],
        cached_input_tokens=row["cached_input_tokens"], output_tokens=row["output_tokens"],
        latency_ms=row["latency_ms"], settled_at=row["settled_at"], expired=bool(row["expired"]),
    )


def to_ledger_entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        seq=row["seq"], decision_id=row["decision_id"], tenant=row["tenant"],
        key_id=row["key_id"], model=row["model"], amount_micros=row["amount_micros"],
        at=row["at"], kind=row["kind"],
    )


def to_job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        tenant=row["tenant"], job_id=row["job_id"], status=row["status"],
        completed_at=row["completed_at"], total_cost_micros=row["total_cost_micros"],
        steps=row["steps"], total_latency_ms=row["total_latency_ms"],
        models=tuple(json.loads(row["models"])),
        per_model=tuple((m, n, c) for m, n, c in json.loads(row["per_model"])),
    )


def job_params(job: JobRecord) -> tuple[object, ...]:
    return (
        job.tenant, job.job_id, job.status, job.completed_at, job.total_cost_micros, job.steps,
        job.total_latency_ms, json.dumps(list(job.models)),
        json.dumps([list(p) for p in job.per_model]),
    )
