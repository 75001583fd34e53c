"""A bounded async load generator: N workers share a fixed number of calls and a time limit.

`run_load` drives any `async (i) -> None` callable; `summarize` turns latencies into p50/p99 and
requests/s; `median_runs` takes the median of each figure over repeated runs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    idx = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[idx]


async def run_load(
    call: Callable[[int], Awaitable[object]], *, concurrency: int, requests: int, time_limit_s: float = 60.0,
) -> Summary:
    """Run `requests` calls on `concurrency` workers; stop early (and count fewer) at the time limit."""
    latencies: list[float] = []
    errors = 0
    next_i = 0
    deadline = time.perf_counter() + time_limit_s

    async def worker() -> None:
        nonlocal next_i, errors
        while next_i < requests and time.perf_counter() < deadline:
            i = next_i
            next_i += 1
            start = time.perf_counter()
            try:
                await call(i)
            except Exception:
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return Summary(requests=len(latencies), errors=errors, rps=len(latencies) / elapsed if elapsed else 0.0,
                   p50_ms=percentile(latencies, 0.50), p99_ms=percentile(latencies, 0.99))


def median_runs(runs: Sequence[Summary]) -> Summary:
    """The median of each figure across runs (at least 3 runs for a reported number)."""
    return Summary(
        requests=int(statistics.median(r.requests for r in runs)),
        errors=sum(r.errors for r in runs),
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
    )
