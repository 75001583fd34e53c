"""The SQLite store's operations as plain synchronous functions of one connection.

Each mutating function runs as ONE `BEGIN IMMEDIATE … COMMIT` transaction (a savepoint when the
store batches it with others), so a crash leaves either all of its effects or none. They run only
on the store's worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from modelyard.store import spool
from modelyard.store._sqlite_schema import held_pairs, held_text, job_params, to_job, to_ledger_entry, to_record
from modelyard.store.base import (
    KEY,
    TENANT,
    UNLIMITED,
    VERDICT_PENDING,
    BudgetExceeded,
    DecisionNotFound,
    DecisionRecord,
    JobNotFound,
    JobRecord,
    LedgerEntry,
    Limit,
    Reservation,
    SettleResult,
    WindowUsage,
)
from modelyard.store.summary import released_micros, summarize_job
from modelyard.store.windows import WINDOWS, window_bounds


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    """IMMEDIATE takes the write lock up front, so check-then-write cannot race another writer.

    Inside a batch the store already holds BEGIN IMMEDIATE: the call becomes a savepoint, so its
    failure (a refused reservation, say) undoes its own writes only and the batch commits the rest.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT op")
        try:
            yield
            conn.execute("RELEASE op")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            raise
        return
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # sqlite may already have rolled back (e.g. after an I/O error)
            conn.execute("ROLLBACK")
        raise


@contextmanager
def relaxed_sync(conn: sqlite3.Connection) -> Iterator[None]:
    """Commit without fsync (WAL + synchronous=NORMAL), then restore the connection's FULL.

    Only for reservations. A process crash loses nothing (the WAL is in the OS cache); a power loss
    may drop the last un-synced reservations whole — decision (with its holds) and counters in one
    transaction — so none can leak. The next durable commit (a settle, FULL) fsyncs the WAL up to
    itself, so a settled decision's reservation is always on disk before the settle is acked.
    """
    if conn.in_transaction:  # in a batch, whose commit the store makes durable or not as a whole
        yield
        return
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous=FULL")


def _counter(
    conn: sqlite3.Connection, scope: str, subject: str, win: int, start: int,
) -> tuple[int, int]:
    row = conn.execute(
        "SELECT spent_micros, reserved_micros FROM counters"
        " WHERE scope = ? AND subject = ? AND win = ? AND window_start = ?",
        (scope, subject, win, start),
    ).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def _held_windows(r: Reservation, limits: Sequence[Limit]) -> list[int]:
    """The windows whose tenant and key counters the reservation holds: every window (the limits are
    the tenant's and the key's; `decisions.held` can only say which windows, not whose counters)."""
    own = {(TENANT, r.tenant), (KEY, r.key_id)}
    for lim in limits:
        if (lim.scope, lim.subject) not in own:
            raise ValueError(f"limit on {lim.scope} '{lim.subject}': the SQLite store holds only the "
                             f"reservation's tenant ('{r.tenant}') and key ('{r.key_id}') counters")
    return list(dict.fromkeys([int(w) for w in WINDOWS] + [int(lim.window) for lim in limits]))


def _held_counters(tenant: str, key_id: str, windows: Sequence[tuple[int, int]]) -> list[tuple[str, str, int, int]]:
    """The counters a reservation holds: its tenant's and its key's in each (window, start) of `windows`
    (what reserve adds to and what settle or expiry takes back from)."""
    return [(scope, subject, w, start) for scope, subject in ((TENANT, tenant), (KEY, key_id))
            for w, start in windows]


def find_request(conn: sqlite3.Connection, request_id: str, tenant: str) -> DecisionRecord | None:
    row = conn.execute(
        "SELECT * FROM decisions WHERE tenant = ? AND request_id = ?", (tenant, request_id),
    ).fetchone()
    return to_record(row) if row else None


def reserve(
    conn: sqlite3.Connection, r: Reservation, limits: Sequence[Limit], now: float,
) -> tuple[DecisionRecord, bool]:
    if r.estimate_micros < 0:
        raise ValueError(f"estimate_micros must be >= 0, got {r.estimate_micros}")
    with relaxed_sync(conn), transaction(conn):
        existing = find_request(conn, r.request_id, r.tenant)
        if existing is not None:
            return existing, True
        bounds = {int(w): window_bounds(w, now) for w in WINDOWS}
        for lim in limits:
            if lim.hard_micros == UNLIMITED:
                continue
            start, reset = bounds[int(lim.window)]
            spent, reserved = _counter(conn, lim.scope, lim.subject, int(lim.window), start)
            if spent + reserved + r.estimate_micros > lim.hard_micros:
                raise BudgetExceeded(lim.scope, lim.subject, int(lim.window), lim.hard_micros,
                                     spent, reserved, reset, r.estimate_micros)
        windows = [(w, bounds[w][0] if w in bounds else window_bounds(w, now)[0])
                   for w in _held_windows(r, limits)]
        conn.execute(
            "INSERT INTO decisions (request_id, decision_id, tenant, key_id, job_id, model, role,"
            " task_class, estimate_micros, created_at, expires_at, payload, held)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r.request_id, r.decision_id, r.tenant, r.key_id, r.job_id, r.model, r.role,
             r.task_class, r.estimate_micros, r.created_at, r.expires_at, r.payload, held_text(windows)),
        )
        # One executemany rather than a statement per counter: same rows, fewer round trips through
        # the sqlite3 module.
        conn.executemany(
            "INSERT INTO counters (scope, subject, win, window_start, reserved_micros)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET reserved_micros = reserved_micros + excluded.reserved_micros",
            [(*c, r.estimate_micros) for c in _held_counters(r.tenant, r.key_id, windows)],
        )
    # The row just inserted, without reading it back: every other column has its default.
    return DecisionRecord(
        request_id=r.request_id, decision_id=r.decision_id, tenant=r.tenant, key_id=r.key_id,
        job_id=r.job_id, model=r.model, role=r.role, task_class=r.task_class,
        estimate_micros=r.estimate_micros, created_at=r.created_at, expires_at=r.expires_at,
        payload=bytes(r.payload),
    ), False


def _close(
    conn: sqlite3.Connection, d: DecisionRecord, held: str, amount: int, kind: str, model: str, now: float,
) -> None:
    """Take the estimate out of `reserved` and add `amount` to `spent` where it was held."""
    conn.executemany(
        "UPDATE counters SET reserved_micros = reserved_micros - ?, spent_micros = spent_micros + ?"
        " WHERE scope = ? AND subject = ? AND win = ? AND window_start = ?",
        [(d.estimate_micros, amount, *c) for c in _held_counters(d.tenant, d.key_id, held_pairs(held))],
    )
    if kind == "settle" or amount:
        conn.execute(
            "INSERT INTO ledger (decision_id, tenant, key_id, model, amount_micros, at, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (d.decision_id, d.tenant, d.key_id, model, amount, now, kind),
        )


def _closed_result(d: DecisionRecord) -> SettleResult:
    return SettleResult(d.decision_id, d.charged_micros, released_micros(d.estimate_micros,
                        d.charged_micros), duplicate=True, expired=d.expired)


def settle(
    conn: sqlite3.Connection, decision_id: str, tenant: str, *, actual_micros: int, status: int,
    model_used: str, input_tokens: int, cached_input_tokens: int, output_tokens: int,
    latency_ms: float, now: float,
) -> SettleResult:
    if actual_micros < 0:
        raise ValueError(f"actual_micros must be >= 0, got {actual_micros}")
    with transaction(conn):
        row = conn.execute("SELECT * FROM decisions WHERE decision_id = ? AND tenant = ?",
                           (decision_id, tenant)).fetchone()
        if row is None:
            raise DecisionNotFound(f"no decision '{decision_id}' for tenant '{tenant}'")
        d = to_record(row)
        if d.settled or d.expired:
            return _closed_result(d)
        model_used = model_used or d.model
        conn.execute(
            "UPDATE decisions SET settled = 1, charged_micros = ?, status = ?, model_used = ?,"
            " input_tokens = ?, cached_input_tokens = ?, output_tokens = ?, latency_ms = ?,"
            " settled_at = ? WHERE decision_id = ?",
            (actual_micros, status, model_used, input_tokens, cached_input_tokens, output_tokens,
             latency_ms, now, decision_id),
        )
        _close(conn, d, row["held"], actual_micros, "settle", model_used, now)
        return SettleResult(decision_id, actual_micros,
                            released_micros(d.estimate_micros, actual_micros), duplicate=False)


def record_verdict(conn: sqlite3.Connection, decision_id: str, tenant: str, status: int) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE decisions SET status = ? WHERE decision_id = ? AND tenant = ? AND settled = 1"
            " AND status = ?", (status, decision_id, tenant, VERDICT_PENDING))
        return cur.rowcount == 1


def expire(conn: sqlite3.Connection, now: float, *, charge: bool) -> int:
    with transaction(conn):
        rows = conn.execute(
            "SELECT * FROM decisions WHERE settled = 0 AND expired = 0 AND expires_at <= ?"
            " ORDER BY seq", (now,),
        ).fetchall()
        for row in rows:
            d = to_record(row)
            amount = d.estimate_micros if charge else 0
            _close(conn, d, row["held"], amount, "expiry", d.model, now)
            conn.execute("UPDATE decisions SET expired = 1, charged_micros = ? WHERE seq = ?",
                         (amount, row["seq"]))
        return len(rows)


#: Oldest decisions the retention sweep examines per transaction (`forget_decisions`).
RETENTION_BATCH = 1_000


def forget_decisions(conn: sqlite3.Connection, before: float) -> int:
    """Deletes closed (settled or expired) decisions whose reservation expired before `before`,
    among the RETENTION_BATCH oldest rows, so a call costs O(batch) however large the table (rows are
    in creation order; those past the first young one are younger too, up to TTL changes).
    Open reservations stay until the expiry sweep closes them; the ledger keeps its rows."""
    with transaction(conn):
        return conn.execute(
            "DELETE FROM decisions WHERE seq IN (SELECT seq FROM (SELECT seq, expires_at, settled, expired"
            " FROM decisions ORDER BY seq LIMIT ?) WHERE expires_at < ? AND (settled = 1 OR expired = 1))",
            (RETENTION_BATCH, before),
        ).rowcount


def usage(
    conn: sqlite3.Connection, subjects: Sequence[tuple[str, str]], now: float,
) -> list[WindowUsage]:
    out = []
    with transaction(conn, "DEFERRED"):
        for scope, subject in subjects:
            for w in WINDOWS:
                start, reset = window_bounds(w, now)
                spent, reserved = _counter(conn, scope, subject, int(w), start)
                out.append(WindowUsage(scope, subject, int(w), start, reset, spent, reserved))
    return out


def get_decision(conn: sqlite3.Connection, decision_id: str, tenant: str) -> DecisionRecord | None:
    row = conn.execute("SELECT * FROM decisions WHERE decision_id = ? AND tenant = ?",
                       (decision_id, tenant)).fetchone()
    return to_record(row) if row else None


def job_decisions(conn: sqlite3.Connection, tenant: str, job_id: str) -> list[DecisionRecord]:
    rows = conn.execute("SELECT * FROM decisions WHERE tenant = ? AND job_id = ? ORDER BY seq",
                        (tenant, job_id)).fetchall()
    return [to_record(r) for r in rows]


def complete_job(
    conn: sqlite3.Connection, tenant: str, job_id: str, status: int, now: float,
) -> tuple[JobRecord, bool]:
    with transaction(conn):
        row = conn.execute("SELECT * FROM jobs WHERE tenant = ? AND job_id = ?",
                           (tenant, job_id)).fetchone()
        if row is not None:
            return to_job(row), True
        decisions = job_decisions(conn, tenant, job_id) if job_id else []
        if not decisions:
            raise JobNotFound(f"no routed step of job '{job_id}' for tenant '{tenant}'")
        job = summarize_job(tenant, job_id, status, now, decisions)
        conn.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", job_params(job))
        return job, False


def ledger(conn: sqlite3.Connection, tenant: str | None, since: float) -> list[LedgerEntry]:
    rows = conn.execute(
        "SELECT * FROM ledger WHERE at >= ? AND (? IS NULL OR tenant = ?) ORDER BY seq",
        (since, tenant, tenant),
    ).fetchall()
    return [to_ledger_entry(r) for r in rows]


#: A saved state is written in chunks of this size (see `save_state`).
STATE_CHUNK_BYTES = 1 << 20


def save_state(conn: sqlite3.Connection, name: str, blob: bytes | Path, now: float) -> None:
    """The blob goes into `state_chunks` 1 MiB at a time, each chunk bound as a parameter; the
    `state` row keeps the name and time (its own blob column, version 1's, stays empty).

    A core of a million arms saves a 170 MB snapshot. Bound whole, the blob stayed in the cached
    INSERT statement for the connection's life; written through incremental blob I/O over the
    pages freed by the state it replaced, SQLite held twice its size while writing (measured:
    +340 MB peak per save; bench/load/memory_bench.py --restore-server). In chunks the store holds
    about one chunk. `blob` may also be a spool file, read a chunk at a time inside the
    transaction (`SqliteStore.save_state_from`)."""
    chunks = ((name, seq, part) for seq, part in enumerate(spool.pieces(blob, STATE_CHUNK_BYTES)))
    with transaction(conn):
        conn.execute("DELETE FROM state_log WHERE name = ?", (name,))  # the new state holds them
        conn.execute("DELETE FROM state_chunks WHERE name = ?", (name,))
        conn.executemany("INSERT INTO state_chunks VALUES (?, ?, ?)", chunks)
        conn.execute("INSERT INTO state VALUES (?, x'', ?) ON CONFLICT (name) DO UPDATE"
                     " SET blob = x'', updated_at = excluded.updated_at", (name, now))


def append_state_log(conn: sqlite3.Connection, name: str, deltas: Iterable[bytes]) -> tuple[int, int]:
    """Appends `deltas` (in order, read one at a time) to `name`'s log in one transaction; returns the
    log's entries and bytes after it."""
    with transaction(conn):
        row = conn.execute("SELECT coalesce(max(seq), -1) FROM state_log WHERE name = ?", (name,)).fetchone()
        conn.executemany("INSERT INTO state_log VALUES (?, ?, ?)",
                         ((name, row[0] + 1 + i, d) for i, d in enumerate(deltas)))
        return state_log_size(conn, name)


def state_log_size(conn: sqlite3.Connection, name: str) -> tuple[int, int]:
    row = conn.execute("SELECT count(*), coalesce(sum(length(delta)), 0) FROM state_log WHERE name = ?",
                       (name,)).fetchone()
    return int(row[0]), int(row[1])


def state_sizes(conn: sqlite3.Connection, name: str) -> tuple[int, int, int]:
    row = conn.execute("SELECT length(blob) FROM state WHERE name = ?", (name,)).fetchone()
    chunks = conn.execute("SELECT coalesce(sum(length(chunk)), 0) FROM state_chunks WHERE name = ?",
                          (name,)).fetchone()[0]
    return (int(row[0]) if row else 0) + int(chunks), *state_log_size(conn, name)


def load_state_log(conn: sqlite3.Connection, name: str) -> list[bytes]:
    """`name`'s changes since its last full save, oldest first."""
    return [bytes(r[0]) for r in conn.execute(
        "SELECT delta FROM state_log WHERE name = ? ORDER BY seq", (name,))]


def load_state_file(conn: sqlite3.Connection, name: str, path: Path) -> bool:
    """Writes `name`'s state to `path` a chunk at a time; False when none (or an empty one) is
    stored."""
    row = conn.execute("SELECT blob FROM state WHERE name = ?", (name,)).fetchone()
    if row is None:
        return False
    written = 0
    with path.open("wb") as f:
        if row[0]:  # saved by a schema-1 build, before state_chunks
            written += f.write(row[0])
        for (chunk,) in conn.execute(
                "SELECT chunk FROM state_chunks WHERE name = ? ORDER BY seq", (name,)):
            written += f.write(chunk)
    return written > 0


def load_state(conn: sqlite3.Connection, name: str) -> bytes | None:
    row = conn.execute("SELECT blob FROM state WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    if row[0]:  # saved by a schema-1 build, before state_chunks
        return bytes(row[0])
    return b"".join(r[0] for r in conn.execute(
        "SELECT chunk FROM state_chunks WHERE name = ? ORDER BY seq", (name,)))
