"""`RedisStore`: the Store shared by many replicas, on Redis (redis-py asyncio + hiredis).

Reserve and close (settle, expiry) are the versioned Lua scripts in `lua/`, each atomic and
idempotent, touching only one tenant's hash tag; key layout in `_redis_codec.py`. Connection
errors and timeouts become StoreUnavailable after bounded retries; READONLY (a replica promoted
away from us) drops the pool so the next call reconnects to the new primary.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from modelyard.store._redis_codec import (
    Keys,
    job_from_json,
    job_to_json,
    record_fields,
    to_ledger_entry,
    to_record,
)
from modelyard.store.base import (
    KEY,
    RETENTION_S,
    TENANT,
    UNLIMITED,
    VERDICT_PENDING,
    BudgetExceeded,
    DecisionNotFound,
    DecisionRecord,
    DeltaEntry,
    JobNotFound,
    JobRecord,
    LedgerEntry,
    Limit,
    Reservation,
    SettleResult,
    SharedBase,
    StoreError,
    StoreUnavailable,
    WindowUsage,
)
from modelyard.store.spool import StateFile, off_loop, pieces, spool
from modelyard.store.summary import released_micros, summarize_job
from modelyard.store.windows import WINDOWS, window_bounds

log = logging.getLogger("modelyard.store")

SOCKET_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 0.5
RETRIES = 2  # after the first attempt; with the backoff below a dead Redis fails within ~3.5 s
WAIT_TIMEOUT_MS = 500
MAX_CONNECTIONS = 64


BASE_CHUNK = 4 << 20  # a base (or a state) is stored and read in 4 MiB pieces, each well within a socket timeout

STAGING_TTL_MS = 600_000

# KEYS: base hash, log stream, staging hash (holding the chunks c0..). ARGV: pos, its ms and seq
# parts, also, chunk count, total length.
SAVE_BASE_LUA = """
local cur = redis.call('HGET', KEYS[1], 'pos')
if cur then
  local ms, seq = string.match(cur, '(%d+)-(%d+)')
  local nms, nseq = tonumber(ARGV[2]), tonumber(ARGV[3])
  ms, seq = tonumber(ms), tonumber(seq)
  if nms < ms or (nms == ms and nseq <= seq) then
    redis.call('DEL', KEYS[3])
    return 0
  end
end
if redis.call('HLEN', KEYS[3]) ~= tonumber(ARGV[5]) then return redis.error_reply('base chunks missing') end
redis.call('HSET', KEYS[3], 'pos', ARGV[1], 'also', ARGV[4], 'n', ARGV[5], 'len', ARGV[6])
if cur then redis.call('HSET', KEYS[3], 'trimmed', cur) end
redis.call('RENAME', KEYS[3], KEYS[1])
redis.call('PERSIST', KEYS[1])
if cur then redis.call('XTRIM', KEYS[2], 'MINID', cur) end
return 1
"""

# A Dispatch call's verdict: KEYS[1] the decision hash; ARGV[1] VERDICT_PENDING, ARGV[2] the
# verdict. Changes the status only while it is pending, so the first verdict wins, atomically.
VERDICT_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
return 1
"""


def _script(name: str) -> str:
    return resources.files("modelyard.store").joinpath("lua", name).read_text(encoding="utf-8")


class RedisStore:
    """The Store protocol on Redis; see `modelyard.store.base.Store` for the semantics."""

    def __init__(self, url: str, *, key_prefix: str = "modelyard", wait_replicas: int = 0) -> None:
        self.url = url
        self.keys = Keys(key_prefix)
        self.wait_replicas = wait_replicas  # > 0: WAIT for that many replicas after each close
        self._r: aioredis.Redis | None = None
        self._reserve_src, self._close_src = _script("reserve.lua"), _script("close.lua")
        self._known: set[tuple[str, str]] = set()  # (tenant, key_id) already indexed

    # connection ------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check Redis answers; a failed check raises but keeps the client, so later
        calls reconnect by themselves once Redis is back."""
        if self._r is None:
            retry = Retry(ExponentialBackoff(cap=0.5, base=0.1), RETRIES)
            errors = [rex.ConnectionError, rex.TimeoutError, rex.ReadOnlyError]
            # Blocking pool: a burst waits (bounded) for a free connection instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
                retry=retry, retry_on_error=errors)
            self._r = aioredis.Redis(connection_pool=pool, retry=retry, retry_on_error=errors)
            self._reserve = self._r.register_script(self._reserve_src)
            self._close = self._r.register_script(self._close_src)
            self._verdict = self._r.register_script(VERDICT_LUA)
            self._save_base = self._r.register_script(SAVE_BASE_LUA)
        async with self._io() as r:
            await r.ping()

    async def close(self) -> None:
        r, self._r = self._r, None
        if r is not None:
            await r.aclose()
            await r.connection_pool.disconnect()  # a pool passed in is not closed by aclose()

    async def ping(self) -> bool:
        try:
            async with self._io() as r:
                return bool(await r.ping())
        except StoreError:
            return False

    @asynccontextmanager
    async def _io(self) -> AsyncIterator[Any]:
        """The client (typed Any: redis-py's reply types are unions of bytes and str), with errors
        mapped to StoreUnavailable / StoreError."""
        r = self._r
        if r is None:
            raise StoreUnavailable("redis store is not open")
        try:
            yield r
        except rex.ReadOnlyError as exc:  # failover: our connections point at a demoted primary
            await r.connection_pool.disconnect()
            raise StoreUnavailable(f"redis is read-only (failover in progress): {exc}") from exc
        except (TimeoutError, rex.ConnectionError, rex.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"redis unreachable: {exc}") from exc
        except rex.RedisError as exc:
            raise StoreError(f"redis store: {exc}") from exc

    # budgets -------------------------------------------------------------------------------
    async def reserve(
        self, r: Reservation, limits: Sequence[Limit], now: float,
    ) -> tuple[DecisionRecord, bool]:
        if r.estimate_micros < 0:
            raise ValueError(f"estimate_micros must be >= 0, got {r.estimate_micros}")
        k = self.keys
        held = list(dict.fromkeys(
            [(lim.scope, lim.subject, int(lim.window)) for lim in limits]
            + [(s, subj, int(w)) for s, subj in ((TENANT, r.tenant), (KEY, r.key_id)) for w in WINDOWS]))
        bounds = [window_bounds(w, now) for _, _, w in held]
        counters = [k.counter(r.tenant, s, subj, w, b[0]) for (s, subj, w), b in zip(held, bounds, strict=True)]
        enforced = [(i, lim) for i, lim in enumerate(limits) if lim.hard_micros != UNLIMITED]
        args: list[Any] = [r.decision_id, r.estimate_micros, repr(r.expires_at),
                           max(1, math.ceil(r.expires_at - now)) + RETENTION_S, len(counters)]
        args += [max(1, reset - math.floor(now)) + RETENTION_S for _, reset in bounds]
        args.append(len(enforced))
        for _, lim in enforced:
            args += [held.index((lim.scope, lim.subject, int(lim.window))) + 1, lim.hard_micros]
        args += record_fields(r, counters)
        async with self._io() as red:
            if (r.tenant, r.key_id) not in self._known:
                await red.sadd(k.tenants, r.tenant)  # before the script, so expiry can find it
                await red.hset(k.key_owner, r.key_id, r.tenant)
                self._known.add((r.tenant, r.key_id))
            out = await self._reserve(keys=[k.req(r.tenant, r.request_id), k.dec(r.tenant, r.decision_id),
                                            k.open(r.tenant), k.job(r.tenant, r.job_id), *counters], args=args)
        if out[0] == 1:
            existing = await self.get_decision(out[1].decode(), r.tenant)
            if existing is None:
                raise StoreError(f"request {r.request_id!r} points at a missing decision")
            return existing, True
        if out[0] == 2:
            _, lim = enforced[int(out[1]) - 1]
            start_reset = window_bounds(lim.window, now)
            raise BudgetExceeded(lim.scope, lim.subject, int(lim.window), lim.hard_micros,
                                 int(out[2]), int(out[3]), start_reset[1], r.estimate_micros)
        return DecisionRecord(**{f: getattr(r, f) for f in Reservation.__slots__}), False

    async def _close_one(self, tenant: str, decision_id: str, args: list[Any]) -> list[Any] | None:
        """Run close.lua for one decision; None when it does not exist for this tenant."""
        k = self.keys
        async with self._io() as red:
            holds = await red.hget(k.dec(tenant, decision_id), "holds")
            if holds is None:
                return None
            keys = [k.dec(tenant, decision_id), k.open(tenant), k.ledger(tenant), k.ledger_seq(tenant),
                    *holds.decode().split("\n")]
            argv = [args[0], holds, *args[1:]]
            if self.wait_replicas <= 0:
                out = await self._close(keys=keys, args=argv)
            else:  # WAIT must follow the write on the same connection: one pipeline
                pipe = red.pipeline(transaction=False)
                await self._close(keys=keys, args=argv, client=pipe)
                pipe.execute_command("WAIT", self.wait_replicas, WAIT_TIMEOUT_MS)
                out, acked = await pipe.execute()
                if int(acked) < self.wait_replicas:
                    log.warning("close of %s acknowledged by %s of %d redis replicas", decision_id,
                                acked, self.wait_replicas)
        return None if out[0] == -1 else list(out)

    async def find_request(self, request_id: str, tenant: str) -> DecisionRecord | None:
        async with self._io() as red:
            decision_id = await red.get(self.keys.req(tenant, request_id))
        return await self.get_decision(decision_id.decode(), tenant) if decision_id else None

    async def settle(
        self, decision_id: str, tenant: str, *, actual_micros: int, status: int, model_used: str,
        input_tokens: int, cached_input_tokens: int, output_tokens: int, latency_ms: float,
        now: float,
    ) -> SettleResult:
        if actual_micros < 0:
            raise ValueError(f"actual_micros must be >= 0, got {actual_micros}")
        out = await self._close_one(tenant, decision_id, [
            "settle", actual_micros, repr(now), model_used, status, input_tokens,
            cached_input_tokens, output_tokens, repr(float(latency_ms))])
        if out is None:
            raise DecisionNotFound(f"no decision '{decision_id}' for tenant '{tenant}'")
        if out[0] == 1:
            d = await self.get_decision(decision_id, tenant)
            estimate = d.estimate_micros if d else 0
            return SettleResult(decision_id, int(out[1]), released_micros(estimate, int(out[1])),
                                duplicate=True, expired=bool(out[2]))
        d = await self.get_decision(decision_id, tenant)
        estimate = d.estimate_micros if d else actual_micros
        return SettleResult(decision_id, actual_micros, released_micros(estimate, actual_micros),
                            duplicate=False)

    async def record_verdict(self, decision_id: str, tenant: str, status: int) -> bool:
        async with self._io() as red:
            changed = await self._verdict(keys=[self.keys.dec(tenant, decision_id)],
                                          args=[VERDICT_PENDING, status], client=red)
        # (the hash's key carries the tenant: another tenant's id names a key that does not exist)
        return bool(changed)

    async def expire(self, now: float, *, charge: bool) -> int:
        k, closed = self.keys, 0
        async with self._io() as red:
            tenants = [t.decode() for t in await red.smembers(k.tenants)]
        for tenant in sorted(tenants):
            async with self._io() as red:
                due = await red.zrangebyscore(k.open(tenant), "-inf", repr(now))
            for raw in due:
                out = await self._close_one(tenant, raw.decode(), ["expiry", "1" if charge else "0", repr(now), ""])
                if out is None:  # the decision hash outlived its retention: drop the stale index
                    async with self._io() as red:
                        await red.zrem(k.open(tenant), raw)
                elif out[0] == 0:
                    closed += 1
        return closed

    async def usage(self, subjects: Sequence[tuple[str, str]], now: float) -> list[WindowUsage]:
        k, out = self.keys, []
        async with self._io() as red:
            for scope, subject in subjects:
                owner = subject.encode() if scope == TENANT else await red.hget(k.key_owner, subject)
                pipe = red.pipeline(transaction=False)
                for w in WINDOWS:
                    if owner is not None:
                        pipe.hmget(k.counter(owner.decode(), scope, subject, int(w), window_bounds(w, now)[0]),
                                   "spent", "reserved")
                rows = await pipe.execute() if owner is not None else [[None, None]] * len(WINDOWS)
                for w, (spent, reserved) in zip(WINDOWS, rows, strict=True):
                    start, reset = window_bounds(w, now)
                    out.append(WindowUsage(scope, subject, int(w), start, reset, int(spent or 0), int(reserved or 0)))
        return out

    # records -------------------------------------------------------------------------------
    async def get_decision(self, decision_id: str, tenant: str) -> DecisionRecord | None:
        async with self._io() as red:
            h = await red.hgetall(self.keys.dec(tenant, decision_id))
        return to_record(h) if h else None

    async def job_decisions(self, tenant: str, job_id: str) -> list[DecisionRecord]:
        async with self._io() as red:
            ids = await red.lrange(self.keys.job(tenant, job_id), 0, -1)
            pipe = red.pipeline(transaction=False)
            for decision_id in ids:
                pipe.hgetall(self.keys.dec(tenant, decision_id.decode()))
            rows = await pipe.execute() if ids else []
        return [to_record(h) for h in rows if h]

    async def complete_job(
        self, tenant: str, job_id: str, status: int, now: float,
    ) -> tuple[JobRecord, bool]:
        done = self.keys.job_done(tenant, job_id)
        async with self._io() as red:
            stored = await red.get(done)
        if stored is not None:
            return job_from_json(stored), True
        decisions = await self.job_decisions(tenant, job_id) if job_id else []
        if not decisions:
            raise JobNotFound(f"no routed step of job '{job_id}' for tenant '{tenant}'")
        job = summarize_job(tenant, job_id, status, now, decisions)
        async with self._io() as red:
            if await red.set(done, job_to_json(job), nx=True, ex=RETENTION_S):
                return job, False
            stored = await red.get(done)  # a concurrent call summarized it first
        return (job_from_json(stored), True) if stored is not None else (job, False)

    async def ledger(self, *, tenant: str | None = None, since: float = 0.0) -> list[LedgerEntry]:
        k = self.keys
        async with self._io() as red:
            tenants = [tenant] if tenant is not None else [t.decode() for t in await red.smembers(k.tenants)]
            rows: list[LedgerEntry] = []
            for t in tenants:
                rows += [to_ledger_entry(m) for m in await red.zrangebyscore(k.ledger(t), repr(since), "+inf")]
        return sorted(rows, key=lambda e: (e.at, e.tenant, e.seq))

    # learned state -------------------------------------------------------------------------
    async def save_state(self, name: str, blob: bytes, now: float) -> None:
        key = self.keys.state(name)
        async with self._io() as red:
            pipe = red.pipeline(transaction=True)
            pipe.set(key, bytes(blob))
            pipe.incr(self.keys.state_gen(name))  # load_state_into reads in pieces: this tells it of a change
            await pipe.execute()

    async def load_state(self, name: str) -> bytes | None:
        async with self._io() as red:
            blob = await red.get(self.keys.state(name))
        return bytes(blob) if blob is not None else None

    async def save_state_from(self, name: str, write: StateFile, now: float) -> None:
        """Appended to a staging key a chunk at a time, then renamed over the state."""
        key = self.keys.state(name)
        with spool(None, name) as path:
            await off_loop(write, path)
            staging = f"{key}:saving:{path.stem[-8:]}"
            async with self._io() as red:
                try:
                    await red.delete(staging)
                    for chunk in pieces(path, BASE_CHUNK):
                        await red.append(staging, chunk)
                    pipe = red.pipeline(transaction=True)
                    pipe.rename(staging, key)
                    pipe.incr(self.keys.state_gen(name))
                    await pipe.execute()
                finally:
                    await red.delete(staging)

    async def load_state_into(self, name: str, read: StateFile) -> bool:
        """Read in 4 MiB pieces through a spool file; a state replaced while it was read (its
        generation moved, or its length) is read again, so the pieces always come from one save."""
        key, gen_key = self.keys.state(name), self.keys.state_gen(name)
        with spool(None, name) as path:
            for _ in range(3):
                async with self._io() as red:
                    gen, size = await red.get(gen_key), await red.strlen(key)
                    if not size:
                        return False
                    with path.open("wb") as f:
                        for at in range(0, size, BASE_CHUNK):
                            f.write(await red.getrange(key, at, at + BASE_CHUNK - 1))
                    if await red.get(gen_key) == gen and await red.strlen(key) == size == path.stat().st_size:
                        break
            else:
                raise StoreError(f"learned state {name!r} kept changing while it was read; retry")
            await off_loop(read, path)
            return True

    # shared learning (learning_sync.py) ---------------------------------------------------------
    async def append_delta(self, name: str, tag: str, blob: bytes) -> str:
        """Append one replica's changes to core `name`'s log; returns the entry's id."""
        async with self._io() as red:
            entry_id = await red.xadd(self.keys.learn_log(name), {"r": tag, "d": bytes(blob)})
        return str(entry_id.decode())

    async def read_deltas(self, name: str, after: str, count: int) -> tuple[list[DeltaEntry], str]:
        """Up to `count` log entries after id `after`, oldest first, and the position the log is
        trimmed to ("0-0" if never), read together: entries before it may be gone."""
        k = self.keys
        async with self._io() as red:
            pipe = red.pipeline(transaction=True)
            pipe.xrange(k.learn_log(name), min=f"({after}", count=count)
            pipe.hget(k.learn_base(name), "trimmed")
            rows, trimmed = await pipe.execute()
        entries = [DeltaEntry(i.decode(), f[b"r"].decode(), bytes(f[b"d"])) for i, f in rows]
        return entries, trimmed.decode() if trimmed else "0-0"

    async def load_base(self, name: str, into: Path | None = None) -> SharedBase | None:
        """The newest base of core `name`, read chunk by chunk into one buffer (never a second
        copy), or with `into` into that file (its `snapshot` is then the path: the base is never
        in memory); None when none was written."""
        key = self.keys.learn_base(name)
        for _ in range(3):  # a base replaced while it was read is read again
            async with self._io() as red:
                pos, also, n, size = await red.hmget(key, "pos", "also", "n", "len")
                if pos is None:
                    return None
                buffer = bytearray(int(size)) if into is None else None
                with into.open("wb") if into is not None else contextlib.nullcontext() as f:
                    at, complete = 0, True
                    for i in range(int(n)):
                        chunk = await red.hget(key, f"c{i}")
                        if chunk is None or at + len(chunk) > int(size):
                            complete = False
                            break
                        if f is not None:
                            f.write(chunk)
                        elif buffer is not None:
                            buffer[at:at + len(chunk)] = chunk
                        at += len(chunk)
                if not complete or at != int(size) or await red.hget(key, "pos") != pos:
                    continue
            return SharedBase(buffer if buffer is not None else into or b"", pos.decode(), also.decode().split())
        raise StoreError(f"learned base of {name!r} kept changing while it was read; retry")

    async def save_base(self, name: str, blob: bytes | Path, pos: str, also: Sequence[str], tag: str = "") -> bool:
        """Replace the base when `pos` is later than the stored one's, and trim the log to the
        replaced base's position (its entries stay for readers still catching up from it).
        False when a later base is already there. The chunks go to a staging key one command
        each (no command holds the whole base), which one script then renames over the base.
        `blob` may be a snapshot file (`Core.snapshot_to_path`), read a chunk at a time."""
        ms, seq = (int(x) for x in pos.split("-"))
        k = self.keys
        staging = f"{k.learn_base(name)}:{tag or 'next'}"
        parts = pieces(blob, BASE_CHUNK)  # no copies: a base may be hundreds of MB
        count = size = 0
        async with self._io() as red:
            await red.delete(staging)
            for i, chunk in enumerate(parts):
                await red.hset(staging, f"c{i}", chunk)
                await red.pexpire(staging, STAGING_TTL_MS)  # a writer that dies leaves nothing behind
                count, size = i + 1, size + len(chunk)
            done = await self._save_base(keys=[k.learn_base(name), k.learn_log(name), staging],
                                         args=[pos, ms, seq, " ".join(also), count, size])
        return bool(done)

    async def claim_compaction(self, name: str, tag: str, interval_s: float) -> bool:
        """True for one replica per `interval_s`: the one that writes the next base."""
        async with self._io() as red:
            return bool(await red.set(self.keys.learn_lease(name), tag, nx=True, px=int(interval_s * 1000)))

    async def load_contributions(self, name: str) -> dict[str, bytes]:
        """Every replica's full contribution as written before deltas, by replica id."""
        async with self._io() as red:
            h = await red.hgetall(self.keys.learn(name))
        return {k.decode(): bytes(v) for k, v in h.items()}
