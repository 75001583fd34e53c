"""kill -9 of a process mid-way through reserves and settles loses no acknowledged charge and,
after expiry, leaks no reservation."""

from __future__ import annotations

import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from modelyard.store import SqliteStore
from tests.store.store_helpers import T0

KILL_AFTER_ACKS = (120, 300, 47)  # three runs against one file, killed at different points

CHILD = """
import asyncio, sys, uuid
from modelyard.store import SqliteStore, Limit, Reservation, UNLIMITED, WINDOWS

async def worker(store, n, clock):
    i = 0
    while True:
        i += 1
        key = f"k{n % 4}"
        clock[0] += 0.5  # half a second per call: the run crosses hour windows
        now = clock[0]
        did = uuid.uuid4().hex
        r = Reservation(f"req-{did}", did, "acme", key, f"job-{n}", "m", 2, "edit",
                        100 + (i * 37) % 400, now, now + 600, b"payload")
        limits = [Limit(s, sub, w, UNLIMITED) for s, sub in (("tenant", "acme"), ("key", key))
                  for w in WINDOWS]
        await store.reserve(r, limits, now)
        if i % 5 == 0:
            continue  # left open: expiry must close it
        await store.settle(did, "acme", actual_micros=50 + (i * 53) % 500, status=1,
                           model_used="m", input_tokens=1, cached_input_tokens=0,
                           output_tokens=1, latency_ms=1.0, now=now)
        sys.stdout.write(did + "\\n")
        sys.stdout.flush()

async def main(path, t0):
    store = SqliteStore(path)
    await store.open()
    clock = [t0]
    await asyncio.gather(*(worker(store, n, clock) for n in range(8)))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def _run_and_kill(db: Path, acks: int) -> list[str]:
    """Start the child, SIGKILL it after `acks` acks; every decision id it acknowledged."""
    service = Path(__file__).resolve().parents[2] / "service"
    path = os.pathsep.join(p for p in (str(service), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(T0)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env,
    )
    assert child.stdout is not None
    out = b""
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        while out.count(b"\n") < acks:
            assert time.monotonic() < deadline, "child too slow"
            if sel.select(timeout=1):
                chunk = os.read(child.stdout.fileno(), 65536)
                assert chunk, f"child exited early: {child.wait()} {child.stderr.read()!r}"  # type: ignore[union-attr]
                out += chunk
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode()
    out += rest
    # only whole lines were acknowledged; a torn last line (if any) was never flushed as an ack
    return [line for line in out.decode().split("\n")[:-1] if line]


async def test_kill_9_loses_no_settle_and_leaks_no_reservation(tmp_path: Path):
    db = tmp_path / "crash.db"
    acked: list[str] = []
    for acks in KILL_AFTER_ACKS:
        run = _run_and_kill(db, acks)
        assert len(run) >= acks
        acked += run

    store = SqliteStore(db)
    await store.open()
    try:
        await store.expire(T0 + 86400, charge=True)  # past every reservation, within retention
        entries = await store.ledger()
    finally:
        await store.close()

    kinds = {e.decision_id: e.kind for e in entries}
    assert len(kinds) == len(entries)  # one ledger row per decision at most
    assert all(kinds.get(did) == "settle" for did in acked)
    assert len(set(acked)) == len(acked)

    with sqlite3.connect(db) as conn:
        open_left = conn.execute(
            "SELECT COUNT(*) FROM decisions WHERE settled = 0 AND expired = 0").fetchone()[0]
        reserved = conn.execute("SELECT SUM(ABS(reserved_micros)) FROM counters").fetchone()[0]
        spent = conn.execute(
            "SELECT scope, subject, win, SUM(spent_micros) FROM counters"
            " GROUP BY scope, subject, win").fetchall()
        decisions = conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
    assert open_left == 0 and reserved == 0
    assert decisions == len(entries)  # every decision was settled or charged at expiry
    assert len(spent) == (1 + 4) * 3
    for scope, subject, _win, total in spent:
        mine = [e for e in entries if (e.tenant if scope == "tenant" else e.key_id) == subject]
        assert total == sum(e.amount_micros for e in mine), (scope, subject)
