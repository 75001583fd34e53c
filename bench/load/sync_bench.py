"""What one learning sync between replicas costs, against the full-snapshot scheme it replaced.

Two replicas (SyncedCore + LearningSync, as the server runs them) share a learned state of
`--classes` task classes x `--models-per-class` models through a private redis-server. Each
round both take `--reports` outcome reports on random classes, then each syncs; per sync we
time the wall clock and count the bytes written to Redis. The baseline, measured in the same
run on the same state: what the previous scheme did per replica per sync (encode its own full
contribution, HSET it, HGETALL every contribution, rebuild the served core as restore(own) +
merge(other)). Also timed once: a base written (compaction) and a new replica catching up from
it. Medians over `--rounds` rounds.

Run from the repo root: python -m bench.load.sync_bench [--classes 10000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.load import targets
from modelyard.config import load_config, to_core_catalog
from modelyard.core import RoutingCore
from modelyard.learning_sync import LearningSync, SyncedCore
from modelyard.store import RedisStore

NAME = "core"


def teach(core: RoutingCore, models: list[str], classes: range, per_class: int, now: float) -> None:
    for c in classes:
        for k in range(per_class):
            core.report(model=models[(c * 7 + k) % len(models)], role=2, task_class=f"class-{c}",
                        status=1 + (c + k) % 2, input_tokens=9000, cached_input_tokens=0, output_tokens=600,
                        latency_ms=1200.0, now=now)


def random_reports(core: RoutingCore, models: list[str], classes: int, n: int, rng: random.Random,
                   now: float) -> None:
    for _ in range(n):
        core.report(model=rng.choice(models), role=2, task_class=f"class-{rng.randrange(classes)}",
                    status=rng.choice((1, 2)), input_tokens=9000, cached_input_tokens=0, output_tokens=600,
                    latency_ms=1200.0, now=now)


class CountingStore(RedisStore):
    """Counts the bytes of the deltas and bases this replica writes."""

    written = 0

    async def append_delta(self, name: str, tag: str, blob: bytes) -> str:
        self.written += len(blob)
        return await super().append_delta(name, tag, blob)


async def run(args: argparse.Namespace, url: str, catalog: dict[str, Any], models: list[str]) -> dict[str, Any]:
    rng = random.Random(args.seed)
    now = time.time()
    stores = [CountingStore(url, key_prefix="syncbench") for _ in range(2)]
    for s in stores:
        await s.open()
    cores = [SyncedCore(catalog) for _ in range(2)]
    syncs = [LearningSync(s, lambda c=c: {"": c}, lambda key: NAME, replica=f"r{i}/bench",  # type: ignore[misc]
                          interval_s=1.0, compact_interval_s=3600.0)
             for i, (s, c) in enumerate(zip(stores, cores, strict=True))]
    # The shared state: half the classes learned on each replica, then one sync each way.
    half = args.classes // 2
    teach(cores[0], models, range(half), args.models_per_class, now)
    teach(cores[1], models, range(half, args.classes), args.models_per_class, now)
    t = time.perf_counter()
    await syncs[0].sync_all()  # also writes the first base (it holds the lease)
    first_sync_s = time.perf_counter() - t
    await syncs[1].sync_all()
    await syncs[0].sync_all()
    arms = cores[0].arm_count()
    assert arms == cores[1].arm_count(), "replicas did not converge"

    delta_s: list[float] = []
    delta_bytes: list[int] = []
    for _ in range(args.rounds):
        for c in cores:
            random_reports(c, models, args.classes, args.reports, rng, now)
        for s, sync in zip(stores, syncs, strict=True):
            before = s.written
            t = time.perf_counter()
            await sync.sync_all()
            delta_s.append(time.perf_counter() - t)
            delta_bytes.append(s.written - before)

    # Baseline: the full-snapshot scheme's work per replica per sync, on this state. Its own
    # client without the store's 1 s socket timeout: a 170 MB HSET does not always fit in it
    # (that scheme failed outright at this size; here we measure the work it would do).
    red = aioredis.Redis.from_url(url)
    others = RoutingCore(catalog)
    others.restore(cores[1].snapshot())
    served = RoutingCore(catalog)
    old_s: list[float] = []
    old_bytes = 0
    for _ in range(args.rounds):
        t = time.perf_counter()
        own = cores[0].snapshot()
        await red.hset("syncbench:old", "r0", own)
        contributions = await red.hgetall("syncbench:old")
        served.restore(own)
        for k, blob in contributions.items():
            if k != b"r0":
                served.merge(blob)
        old_s.append(time.perf_counter() - t)
        old_bytes = len(own)
        await red.hset("syncbench:old", "r1", others.snapshot())

    # A base written, and a new replica catching up from it.
    t = time.perf_counter()
    await syncs[0]._write_base(NAME, cores[0], syncs[0]._scopes[NAME])
    base_s = time.perf_counter() - t
    fresh = SyncedCore(catalog)
    fsync = LearningSync(stores[1], lambda: {"": fresh}, lambda key: NAME, replica="fresh/bench",
                         interval_s=1.0, compact_interval_s=3600.0)
    t = time.perf_counter()
    await fsync.sync_all()
    catch_up_s = time.perf_counter() - t
    assert fresh.arm_count() == cores[1].arm_count(), "the new replica does not hold everything"
    for s in stores:
        await s.close()
    await red.aclose()
    return {
        "arms": arms, "reports_per_replica_per_sync": args.reports, "rounds": args.rounds,
        "delta_sync_ms_median": round(statistics.median(delta_s) * 1e3, 2),
        "delta_bytes_median": int(statistics.median(delta_bytes)),
        "full_snapshot_sync_ms_median": round(statistics.median(old_s) * 1e3, 2),
        "full_snapshot_bytes_written": old_bytes,
        "full_snapshot_bytes_read": old_bytes * 2,
        "first_sync_with_base_ms": round(first_sync_s * 1e3, 1),
        "base_write_ms": round(base_s * 1e3, 1), "catch_up_ms": round(catch_up_s * 1e3, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=10_000)
    ap.add_argument("--models-per-class", type=int, default=10)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--reports", type=int, default=200, help="reports per replica between syncs")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        cfg = load_config(targets.write_bench_config(tmp, n_models=args.models))
        catalog = to_core_catalog(cfg)
        with targets.redis_server(tmp) as url:
            out = asyncio.run(run(args, url, catalog, [m.id for m in cfg.models]))
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['arms']:,} arms shared by 2 replicas; {args.reports} reports per replica between syncs; "
          f"medians of {args.rounds} rounds")
    print(f"  delta sync:         {out['delta_sync_ms_median']:>9.2f} ms  "
          f"{out['delta_bytes_median']:>12,} bytes written")
    print(f"  full-snapshot sync: {out['full_snapshot_sync_ms_median']:>9.2f} ms  "
          f"{out['full_snapshot_bytes_written']:>12,} bytes written, {out['full_snapshot_bytes_read']:,} read")
    print(f"  base write {out['base_write_ms']} ms; new replica catching up {out['catch_up_ms']} ms")


if __name__ == "__main__":
    main()
