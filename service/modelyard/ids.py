"""Time-ordered ids: 32 hex digits, the Unix time in milliseconds (48 bits) then 80 random bits.

Laid out as a UUIDv7 is (without its version and variant bits), for the same reason: ids made one
after another sort one after another, so a B-tree index on them takes each new row at its right edge
rather than at a random leaf. The SQLite store indexes decision ids twice (the decisions table's
unique index, the holds' primary key) and request and job ids once each; with random ids every
Route dirtied a random leaf page of each, and the store wrote ~41-50 KB per Route (bench/README "Time-ordered
ids"). The Rust front makes decision ids the same way (front/route.rs `decision_id`). 80 random bits
keep them unguessable and unique: two ids in the same millisecond collide with odds 2^-80.
"""

from __future__ import annotations

import os
import time

_MS_MASK = (1 << 48) - 1


def time_ordered_id() -> str:
    return f"{(time.time_ns() // 1_000_000) & _MS_MASK:012x}{os.urandom(10).hex()}"
