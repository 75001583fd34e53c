"""Pages and time per lone reservation commit on SQLite: the store's schema against version 3's
reservation tables (a `holds` table with six rows per reservation, `seq` AUTOINCREMENT).

    python -m bench.load.sqlite_pages [--commits 4000] [--runs 3]

Each run: a fresh WAL database (synchronous=NORMAL, as the Rust front commits reservations), 20,000
reservations in one transaction so the trees have depth, then `--commits` reservations each in its
own BEGIN IMMEDIATE ... COMMIT, the statements the store runs (decision row, six counter upserts, and
for version 3 six holds rows). Reported per commit (medians of the runs): microseconds, WAL frames
written (whole pages), and the microseconds of the checkpoint that copies them into the database.
What the Route path pays for the store beyond this (Rust, the front's batching) is in front_ab.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from modelyard.ids import time_ordered_id
from modelyard.store._sqlite_schema import SCHEMA, held_text
from modelyard.store.windows import WINDOWS, window_bounds

V3_HOLDS = """
CREATE TABLE IF NOT EXISTS holds (
    decision_id TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL, win INTEGER NOT NULL,
    window_start INTEGER NOT NULL, PRIMARY KEY (decision_id, scope, subject, win)
) WITHOUT ROWID;
"""
PAGE = 4096
INSERT = ("INSERT INTO decisions (request_id, decision_id, tenant, key_id, job_id, model, role, task_class,"
          " estimate_micros, created_at, expires_at, payload{held}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?{mark})")
UPSERT = ("INSERT INTO counters (scope, subject, win, window_start, reserved_micros) VALUES (?,?,?,?,?)"
          " ON CONFLICT DO UPDATE SET reserved_micros = reserved_micros + excluded.reserved_micros")


def schema(version: int) -> str:
    if version == 4:
        return SCHEMA
    v3 = SCHEMA.replace("seq INTEGER PRIMARY KEY,", "seq INTEGER PRIMARY KEY AUTOINCREMENT,", 1)
    return v3.replace("    held TEXT NOT NULL DEFAULT '',\n", "", 1) + V3_HOLDS


def run(version: int, commits: int, payload: bytes) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="modelyard-pages-") as td:
        path = Path(td) / "s.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.executescript(schema(version))
        held, mark = (", held", ",?") if version == 4 else ("", "")
        insert = INSERT.format(held=held, mark=mark)

        def reserve(now: float) -> None:
            did = time_ordered_id()
            starts = [(int(w), window_bounds(w, now)[0]) for w in WINDOWS]
            row = [time_ordered_id(), did, "acme", "k1", time_ordered_id(), "mid-coder", 1, "bugfix/python",
                   1234, now, now + 600, payload]
            conn.execute(insert, (*row, held_text(starts)) if version == 4 else row)
            for scope, subject in (("tenant", "acme"), ("key", "k1")):
                for w, start in starts:
                    conn.execute(UPSERT, (scope, subject, w, start, 1234))
                    if version == 3:
                        conn.execute("INSERT INTO holds VALUES (?,?,?,?,?)", (did, scope, subject, w, start))

        conn.execute("BEGIN")
        for _ in range(20_000):
            reserve(time.time())
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = Path(f"{path}-wal")
        before = wal.stat().st_size if wal.exists() else 0
        t = time.perf_counter()
        for _ in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            reserve(time.time())
            conn.execute("COMMIT")
        us = (time.perf_counter() - t) / commits * 1e6
        frames = (wal.stat().st_size - before) / (PAGE + 24) / commits
        t = time.perf_counter()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ckpt = (time.perf_counter() - t) / commits * 1e6
        conn.close()
    return {"us_per_commit": us, "pages_per_commit": frames, "checkpoint_us_per_commit": ckpt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    payload = os.urandom(770)  # a load-benchmark Route's stored decision (store.proto; JSON was ~2.1 KB)
    out = {}
    for _ in range(args.runs):  # alternating, so the machine's drift falls on both
        for version in (3, 4):
            out.setdefault(version, []).append(run(version, args.commits, payload))
    medians = {v: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]} for v, rs in out.items()}
    if args.json:
        print(json.dumps({f"schema_{v}": m for v, m in medians.items()}))
        return
    print("| schema | µs per commit | pages per commit | checkpoint µs per commit |\n|---|---:|---:|---:|")
    for v, m in medians.items():
        print(f"| {v} | {m['us_per_commit']:.1f} | {m['pages_per_commit']:.1f} | {m['checkpoint_us_per_commit']:.1f} |")


if __name__ == "__main__":
    main()
