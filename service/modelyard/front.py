"""The Rust gRPC front (`server.front: rust`), from the Python side.

The front (router_core/src/front/) owns the public port. It serves `Router/Route` on its own
threads, without the GIL, over this process's cores, store and job tracker; every other call,
and every Route it does not serve itself (anything that ends in an error, a replayed request_id, a
retry of a job this replica has no memory of), reaches the grpc.aio server here unchanged over a
private Unix socket. This module resolves the running config into what the front reads and pushes
it on start and on every reload, hands it the cores, and turns the Routes it served into what the
Python Route would have left behind: the decision counts of Admin.GetStats and, with telemetry on,
the same server span (parented on the caller's traceparent, with the same attributes) and metrics,
recorded on a thread of their own so the front never waits for them. The front sums a batch of Routes
for the metrics and encodes their spans itself (router_core/src/front/spans.rs, `telemetry_spec` says
how), so Python's share is a few calls per batch; only a sampler it cannot describe keeps the
Python-built spans (`_record`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import ReadableSpan, sampling

from modelyard.core import RoutingCore, RustFront, sqlite_soft_heap_limit
from modelyard.domain import ROLE_NAMES, WINDOW_NAMES, Constraints
from modelyard.telemetry import rpc as telemetry_rpc
from modelyard.telemetry import semconv as sc
from modelyard.telemetry.metrics import record_many
from modelyard.telemetry.redact import sensitive_key

if TYPE_CHECKING:
    from modelyard.app import App
    from modelyard.budget import WindowLimit
    from modelyard.runtime import Runtime
    from modelyard.telemetry.setup import Telemetry

log = logging.getLogger("modelyard.front")

ROUTE_METHOD = "/modelyard.v1.Router/Route"
PUMP_INTERVAL_S = 0.05
FRONT_THREADS = 2


def _limits(limits: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, wl in limits.items():
        w: WindowLimit = wl
        out[name] = {"soft_usd": w.soft_usd, "hard_usd": w.hard_usd}
    return out


def _policy(c: Constraints) -> dict[str, Any]:
    return {
        "max_cost_usd": c.max_cost_usd, "max_latency_ms": c.max_latency_ms,
        "min_success_probability": c.min_success_probability, "allowed_models": list(c.allowed_models),
        "denied_models": list(c.denied_models), "required_provenance": list(c.required_provenance),
    }


def front_config(rt: Runtime) -> str:
    """What the front reads of the running config, as JSON (router_core/src/front/config.rs)."""
    cfg = rt.config
    keys = {k.sha256: {"tenant": t.id, "key_id": k.id, "scopes": sorted(k.scopes)}
            for t in cfg.tenants for k in t.keys}
    tenants = {
        tid: {
            "time_value_usd_per_s": t.time_value_usd_per_s,
            "budgets": _limits(t.budgets),
            "key_budgets": {kid: _limits(kb) for kid, kb in t.key_budgets.items()},
            "policy": _policy(t.policy),
            "role_policy": {str(role): _policy(p) for role, p in t.role_policy.items()},
        }
        for tid, t in rt.tenants.items()
    }
    models = {m.id: {"provider": m.provider, "endpoint": m.endpoint, "upstream_model": m.upstream_model}
              for m in cfg.models}
    return json.dumps({
        "version": rt.version, "keys": keys, "tenants": tenants, "models": models,
        "explore": cfg.routing.explore, "seed": cfg.routing.seed,
        "per_tenant": cfg.routing.learning == "per_tenant",
        "reservation_ttl_s": cfg.store.reservation_ttl_s, "default_tokens": list(rt.token_defaults),
        "max_message_bytes": cfg.server.max_message_bytes, "max_metadata_bytes": cfg.server.max_metadata_bytes,
        "max_concurrent_rpcs": cfg.server.max_concurrent_rpcs,
    })


def store_spec(rt: Runtime) -> str:
    """The store the front reserves in: the Python store's own file, or its Redis with the same script."""
    st = rt.config.store
    if st.kind == "sqlite":
        return json.dumps({"kind": "sqlite", "path": str(st.sqlite.path)})
    url = os.environ.get(st.redis.url_env)
    if not url:
        raise ValueError(f"store.redis.url_env: set the environment variable {st.redis.url_env} to the Redis URL")
    script = resources.files("modelyard.store").joinpath("lua", "reserve.lua").read_text(encoding="utf-8")
    return json.dumps({"kind": "redis", "url": url, "prefix": st.redis.key_prefix, "reserve_script": script})


_SERVICE, _, _METHOD = ROUTE_METHOD.lstrip("/").rpartition("/")


def _rpc_attributes() -> dict[str, Any]:
    return {"rpc.system": "grpc", sc.LABEL_RPC_SERVICE: _SERVICE, sc.LABEL_RPC_METHOD: _METHOD, sc.LABEL_GRPC_CODE: 0}


def describe_sampler(sampler: sampling.Sampler) -> dict[str, Any] | None:
    """The tracer provider's sampler as the front's spans.rs applies it, or None when it is not one of the
    SDK's own (always on/off, trace-id ratio, parent-based over those) and only Python can ask it."""
    kind = type(sampler)
    if kind is sampling.StaticSampler:
        return {"kind": "on" if sampler.get_description() == "AlwaysOnSampler" else "off"}
    if kind is sampling.TraceIdRatioBased:
        return {"kind": "ratio", "bound": sampler.bound}  # type: ignore[attr-defined]
    if isinstance(sampler, sampling.ParentBased) and kind.should_sample is sampling.ParentBased.should_sample:
        parts = [describe_sampler(getattr(sampler, f"_{name}", None))  # type: ignore[arg-type]
                 for name in ("root", "remote_parent_sampled", "remote_parent_not_sampled")]
        if all(p is not None for p in parts):
            return {"kind": "parent", "root": parts[0], "remote_sampled": parts[1], "remote_not_sampled": parts[2]}
    return None


def telemetry_spec(tel: Telemetry | None) -> str | None:
    """What the front sums and encodes of its Routes' telemetry (router_core/src/front/spans.rs), as
    JSON; None when the tracer's sampler is not one the front can apply (then `_record` builds the spans)."""
    spans = None
    if tel is not None:
        sampler = describe_sampler(tel.tracer_provider.sampler)
        if sampler is None or tel.front_spans is None:
            return None
        redact = tel.front_spans.redact

        def keep(key: str) -> bool:
            return not (redact and sensitive_key(key))

        fields = {name: name for name in inspect.signature(telemetry_rpc.route_attributes).parameters}
        spans = {
            "name": ROUTE_METHOD,
            "fixed": [[k, v] for k, v in _rpc_attributes().items() if keep(k)],
            # {attribute key: the Route field it carries}, in the Python span's order
            "route": [[k, f] for k, f in telemetry_rpc.route_attributes(**cast(Any, fields)).items() if keep(k)],
            "scrub": sc.REDACTED if redact else None,
            "sampler": sampler,
            "max_batch": tel.front_spans.max_batch,
        }
    return json.dumps({"roles": ROLE_NAMES, "spans": spans})


def check_one_sqlite_library() -> None:
    """The front writes the SQLite store through its own connection, in this process: it must go through
    the SQLite library Python's sqlite3 module uses. Two copies of SQLite in one process do not see each
    other's locks, and concurrent writes corrupt the file ("database disk image is malformed"; measured
    with a core built against a bundled SQLite). soft_heap_limit is a global of one library: set through
    the front's, it must read back through Python's."""
    conn = sqlite3.connect(":memory:")
    try:
        before = conn.execute("PRAGMA soft_heap_limit").fetchone()[0]
        probe = before + 7919
        previous = sqlite_soft_heap_limit(probe)
        seen = conn.execute("PRAGMA soft_heap_limit").fetchone()[0]
        sqlite_soft_heap_limit(previous)
    finally:
        conn.close()
    if seen != probe:
        raise ValueError(
            "server.front: rust with store.kind: sqlite needs the Rust core linked to the SQLite library"
            f" Python's sqlite3 module uses (SQLite {sqlite3.sqlite_version}); this build has its own copy,"
            " and two copies in one process corrupt the database. Rebuild the core on this machine"
            " (`make install`) or set server.front: python")


def listen_address(listen: str) -> str:
    """grpc's `*:PORT` (every interface) as a socket address tokio binds."""
    return f"[::]:{listen[2:]}" if listen.startswith("*:") else listen


class Front:
    """One process's Rust front: `start()` after the App and the grpc.aio server, `stop()` first."""

    def __init__(self, app: App, telemetry: Telemetry | None) -> None:
        self.app = app
        self.telemetry = telemetry
        # A Unix socket path must stay under ~107 bytes: /tmp rather than a long $TMPDIR. mkdtemp
        # makes a private (0700) directory with a random name, wherever it is.
        base = tempfile.gettempdir()
        short = base if len(base) <= 60 else "/tmp"  # noqa: S108
        self._dir = tempfile.mkdtemp(prefix="modelyard-front-", dir=short)
        self.socket = os.path.join(self._dir, "grpc.sock")
        self._native: Any = None
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self._lock = threading.Lock()  # one drain at a time: the pump thread or a stats reader
        self._summed = True  # the front sums and encodes (telemetry_spec); False: Python builds the spans

    @property
    def upstream(self) -> str:
        """Where the grpc.aio server listens for what the front forwards."""
        return f"unix:{self.socket}"

    def start(self, listen: str) -> int:
        app = self.app
        if app.runtime.config.store.kind == "sqlite":
            check_one_sqlite_library()
        self._native = RustFront(front_config(app.runtime), store_spec(app.runtime), app.jobs)
        spec = telemetry_spec(self.telemetry)
        self._summed = self.telemetry is None or spec is not None
        if self._summed:
            self._native.set_telemetry(spec)
        else:
            log.info("telemetry: the tracer's sampler is not one the Rust front applies; its Route spans are built"
                     " in Python")
        for name, core in app.cores().items():
            self._native.set_core(name, core.native)
        app.core_listeners.append(self._core_added)
        app.reload_listeners.append(self._reloaded)
        app.front_sync.append(self.drain)
        port = int(self._native.start(listen_address(listen), self.socket, FRONT_THREADS))
        self._pump = threading.Thread(target=self._run_pump, name="modelyard-front-pump", daemon=True)
        self._pump.start()
        return port

    def stop(self, grace_s: float) -> None:
        """Stops accepting, lets Routes in flight finish, records what they left behind."""
        if self._native is not None:
            self._native.stop(grace_s)
        self._stop.set()
        if self._pump is not None:
            self._pump.join(5)
        self.drain()
        with contextlib.suppress(OSError):
            os.unlink(self.socket)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)

    def stats(self) -> dict[str, Any]:
        return dict(self._native.stats()) if self._native is not None else {}

    def _core_added(self, name: str, core: RoutingCore) -> None:
        self._native.set_core(name, core.native)

    def _reloaded(self, rt: Runtime) -> None:
        self._native.set_config(front_config(rt))

    def _run_pump(self) -> None:
        while not self._stop.wait(PUMP_INTERVAL_S):
            try:
                self.drain()
            except Exception:  # telemetry must never stop the pump
                log.exception("recording the front's Routes failed; going on")

    def drain(self) -> None:
        """Counts the Routes the front served since the last drain, and records their telemetry."""
        if self._native is None:
            return
        with self._lock:
            if self._summed:
                self._record_summary(self._native.drain_summary())
                return
            routed = self._native.drain_routed()
            by_model = Counter(model for _, (_, (model, _, _), *_), _, _ in routed)
            for model, n in by_model.items():
                self.app.stats.decided(model, n)
            if self.telemetry is not None and routed:
                self._record(self.telemetry, routed)

    def _record_summary(self, summary: tuple[Any, ...]) -> None:
        """A batch the front summed: counts per model and label set, the budgets' latest, each job's roles
        once, the latencies, and spans already encoded, which go to the span shipper as they are."""
        by_model, decisions, budgets, job_roles, core_s, store_s, rpc_ms, spans = summary
        for model, n in by_model:
            self.app.stats.decided(model, n)
        tel = self.telemetry
        if tel is None or not by_model:
            return
        if tel.front_spans is not None:
            for encoded, count in spans:
                tel.front_spans.put(encoded, count)
        _record_metrics(tel, decisions, budgets, job_roles, core_s, store_s, rpc_ms)

    @staticmethod
    def _record(tel: Telemetry, routed: list[Any]) -> None:
        """What telemetry/rpc.py records for a Python Route, for a batch of the front's, built in Python (a
        sampler the front cannot apply): each Route's span, and the same metrics as `_record_summary`."""
        rpc_attrs = _rpc_attributes()
        decisions: Counter[tuple[str, str, str, bool, str]] = Counter()
        budgets: dict[tuple[str, str, str, int], float] = {}
        job_roles, core_ss, store_ss, rpc_ms = [], [], [], []
        for who, d, route_budgets, timing in routed:
            tenant, key_id, role_num, task_class, job_id, attempt = who
            decision_id, (model, provider, upstream), fallbacks, cost, success, latency, exploring, sticky, \
                remaining, reserved = d
            start_ns, duration_ns, traceparent, core_s, store_s = timing
            role = telemetry_rpc.role_name(role_num)
            attrs = telemetry_rpc.route_attributes(
                tenant=tenant, key_id=key_id, job_id=job_id, decision_id=decision_id, role=role,
                task_class=task_class, attempt=attempt, model=model, provider=provider, upstream_model=upstream,
                fallbacks=fallbacks, cost_usd=cost, success_probability=success, latency_ms=latency,
                exploration=exploring, sticky=sticky, budget_remaining_usd=remaining, reserved_usd=reserved,
                replayed=False)
            _server_span(tel, start_ns, start_ns + duration_ns, traceparent, {**rpc_attrs, **attrs})
            for scope, subject, window, left in route_budgets:
                if left is not None:
                    budgets[(tenant, scope, subject, window)] = left
            job_roles.append((tenant, job_id, role))
            decisions[(tenant, model, role, exploring, task_class)] += 1
            core_ss.append(core_s)
            store_ss.append(store_s)
            rpc_ms.append(duration_ns / 1e6)
        _record_metrics(tel, decisions.items(), budgets.items(), job_roles, core_ss, store_ss, rpc_ms)


def _record_metrics(tel: Telemetry, decisions: Iterable[tuple[tuple[str, str, str, bool, str], int]],
                    budgets: Iterable[tuple[tuple[str, str, str, int], float]],
                    job_roles: Iterable[tuple[str, str, str]], core_s: Sequence[float], store_s: Sequence[float],
                    rpc_ms: Sequence[float]) -> None:
    """A batch of front Routes' metrics: decisions per label set, each budget window's latest, each job's
    roles, and the three latency histograms (one call each)."""
    m = tel.metrics
    for (tenant, scope, subject, window), left in budgets:
        m.set_budget(tenant, scope, subject, WINDOW_NAMES.get(window, str(window)), left)
    for tenant, job_id, role in job_roles:
        m.job_roles.add(tenant, job_id, role)
    for (tenant, model, role, exploring, task_class), n in decisions:
        m.decisions.add(n, telemetry_rpc.decision_labels(tel, tenant, model, role, exploring, task_class))
    record_many(m.core_duration, core_s, _CORE_LABELS)
    record_many(m.store_duration, store_s, _STORE_LABELS)
    record_many(m.rpc_duration, rpc_ms, _RPC_LABELS)


_CORE_LABELS = {sc.LABEL_OPERATION: "route"}
_STORE_LABELS = {sc.LABEL_OPERATION: "reserve"}
_RPC_LABELS = {sc.LABEL_RPC_SERVICE: _SERVICE, sc.LABEL_RPC_METHOD: _METHOD, sc.LABEL_GRPC_CODE: "OK"}


def _server_span(tel: Telemetry, start_ns: int, end_ns: int, traceparent: str, attributes: dict[str, Any]) -> None:
    """A front Route's server span, as `tracer.start_span(...).end(...)` makes it (the provider's
    sampler asked with the caller's traceparent as parent, its ids, resource and the tracer's
    scope), but built whole and handed to the span processor: the SDK's per-span machinery (span
    object, attribute checks, locks) was about 40 % of recording a front Route."""
    parent_ctx = extract({"traceparent": traceparent}) if traceparent else None
    if tel.span_processor is None or tel.scope is None:  # not built by setup(): the SDK's way
        span = tel.tracer.start_span(ROUTE_METHOD, context=parent_ctx, kind=trace.SpanKind.SERVER,
                                     start_time=start_ns, attributes=attributes)
        span.end(end_time=end_ns)
        return
    tp = tel.tracer_provider
    parent: trace.SpanContext | None = None
    if parent_ctx is not None:
        parent = trace.get_current_span(parent_ctx).get_span_context()
        if not parent.is_valid:
            parent = None
    trace_id = parent.trace_id if parent is not None else tp.id_generator.generate_trace_id()
    sampled = tp.sampler.should_sample(parent_ctx, trace_id, ROUTE_METHOD, trace.SpanKind.SERVER, attributes)
    if not sampled.decision.is_sampled():  # RECORD_ONLY spans are not exported either
        return
    if sampled.attributes:
        attributes = {**attributes, **sampled.attributes}
    for key, value in attributes.items():  # sequences as the SDK stores them
        if isinstance(value, list):
            attributes[key] = tuple(value)
    context = trace.SpanContext(trace_id, tp.id_generator.generate_span_id(), is_remote=False,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                                trace_state=sampled.trace_state)
    tel.span_processor.on_end(ReadableSpan(
        name=ROUTE_METHOD, context=context, parent=parent, resource=tp.resource, attributes=attributes,
        kind=trace.SpanKind.SERVER, start_time=start_ns, end_time=end_ns, instrumentation_scope=tel.scope))
