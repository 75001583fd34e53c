"""Type stub for the private native module `modelyard._core` (Rust, router_core/src/bindings.rs).

Import the facade `modelyard.core`, not this module. The core is pure: `now` is seconds since the
Unix epoch passed by the caller, randomness comes from `seed`. Every method is thread-safe and
releases the GIL while it works. Roles: 1 PLANNER … 6 ORCHESTRATOR; statuses: 1 SUCCESS,
2 FAILURE, 3 ERROR, 4 TIMEOUT, 5 CANCELLED (docs/CONTRACTS.md).
"""

import os
from collections.abc import Iterator
from typing import Any

class CoreError(ValueError):
    """Invalid catalog, argument or snapshot; the message starts with the field, e.g.
    "models[3].price_out: must be ≥ 0, got -1"."""

class Candidate:
    """One catalog model's place in a decision."""
    model: str
    excluded: bool
    constraint: str
    """"capabilities", "context_window", "allowed", "denied", "provenance", "circuit_open",
    "failed_earlier", "min_tier", "max_cost", "budget", "max_latency", "min_success"; "" if eligible."""
    detail: str
    cost_usd: float
    success_probability: float
    """Posterior mean of P(success) (pooled: arm ← (model, role) ← model ← catalog prior)."""
    success_low: float
    success_high: float
    """The posterior's 90 % interval of P(success)."""
    sampled_success: float
    """The Thompson draw used for the score (the mean when not exploring or excluded)."""
    latency_ms: float
    score: float
    """(cost + time_value · latency_s) / sampled_success; lower is better."""
    evidence: float
    """Decayed weighted count of this (model, role, task_class) arm's own outcomes."""

class Decision:
    """Read-only view of a decision; `fallbacks` and `reason` are built when read."""
    model: str | None
    """None when nothing is eligible; then `candidates` lists every model and `reason` says why."""
    fallbacks: list[str]
    """Remaining eligible models by ascending score (the optimal try-until-success order)."""
    expected_cost_usd: float
    success_probability: float
    latency_ms: float
    cost_per_success_usd: float
    """expected_cost_usd / success_probability (no time value)."""
    score: float
    exploration: bool
    """True when the pick differs from the greedy (posterior-mean) pick."""
    sticky: bool
    """True when the pick is the requested sticky_model."""
    reason: str
    candidates: list[Candidate]
    """Every model when explain=True or model is None; else empty. Numbers are 0.0 when model is None."""

class ArmStats:
    model: str
    role: int
    task_class: str
    n: float
    successes: float
    failures: float
    mean_success: float
    success_low: float
    """90% interval (normal approximation of the pooled Beta posterior)."""
    success_high: float
    mean_cost_usd: float
    mean_latency_ms: float
    p90_latency_ms: float

class Event:
    kind: str
    """"drift", "breaker_open", "breaker_half_open" or "breaker_closed"."""
    model: str
    """The model; "" for a provider breaker."""
    provider: str
    """The provider of a provider breaker; else ""."""
    role: int
    """Role of a drift event; 0 otherwise."""
    task_class: str
    detail: str
    at: float

class Request:
    """One step's routing request for `Core.route` / `Core.estimate`, built once from keywords.
    est_cached_input_tokens must be ≤ est_input_tokens (checked when routed); seed is an unsigned
    64-bit int; a role outside the enum raises CoreError here."""
    def __init__(
        self, *, role: int, task_class: str, now: float,
        est_input_tokens: int = 0, est_output_tokens: int = 0, est_cached_input_tokens: int = 0,
        capabilities: list[str] = ..., min_context: int = 0,
        allowed: list[str] = ..., denied: list[str] = ..., provenance: list[str] = ...,
        max_cost_usd: float | None = None, max_latency_ms: float | None = None,
        min_success: float | None = None, budget_cap_usd: float | None = None,
        attempt: int = 1, failed_models: list[str] = ..., job_failures: int = 0,
        failed_effort: float | None = None, sticky_model: str | None = None, context_tokens: int = 0,
        time_value_usd_per_s: float = 0.0, explore: bool = True, seed: int = 0,
        explain: bool = False,
    ) -> None: ...

class Core:
    def __init__(self, catalog_json: str) -> None: ...
    def set_catalog(self, catalog_json: str) -> None:
        """Swap catalog and policy whole; learned arms are kept (keyed by model id)."""
    def route(self, request: Request) -> Decision:
        """Pick a model for one step. Same seed + inputs + state → same decision. A pick of a
        half-open model consumes its breaker probe."""
    def estimate(self, request: Request) -> list[Candidate]:
        """Every model's candidate row for `request` (greedy unless request.explore); always
        explained; consumes no probe."""
    def report(
        self, *, model: str, role: int, task_class: str, status: int, now: float,
        input_tokens: int = 0, cached_input_tokens: int = 0, output_tokens: int = 0,
        latency_ms: float = 0.0, weight: float = 1.0,
        est_input_tokens: int = 0, est_output_tokens: int = 0, est_cached_input_tokens: int = 0,
        cost_usd: float | None = None, attempt: int = 1, failed_effort: float | None = None,
        learn: str = "all",
    ) -> float | None:
        """Learn from one step; returns its effort: ln(billed cost / the model's typical cost at
        the step's estimates), read before this step is learned (None for ERROR, TIMEOUT,
        CANCELLED or when no cost, tokens or estimates were reported). `attempt` is the
        decision's attempt: outcomes of attempt > 1 teach the retry arms (pooled into the
        first-try arm x the learned retry hardness), not the first-try arms; tokens, cost and
        latency teach the first-try levels either way. `failed_effort` is the mean effort of the
        job's failed tries the retry was routed with (Request.failed_effort): the outcome also
        teaches that effort bucket's retry arms (above 0: after a long failure; else a short one),
        and the retry arms learn what retries bill against the typical first try. `learn`: "all";
        "measurements" (tokens, cost, latency only: a call that completed before its step's verdict
        is known); "outcome" (the verdict on such a call: success only; breakers untouched; the
        measurements passed give the effort only). Anything else raises CoreError naming `learn`. SUCCESS counts
        as success; FAILURE, ERROR, TIMEOUT as failure;
        CANCELLED is ignored. ERROR/TIMEOUT also feed the model and provider breakers.

        Zero means "not reported": a zero token count, latency, estimate or cost_usd leaves that
        statistic untouched. From SUCCESS/FAILURE steps the core learns, per arm and pooled
        (task_class ← (model, role) ← model ← 1.0), the ratios input_tokens/est_input_tokens,
        output_tokens/est_output_tokens and cost_usd / list-price cost (of the reported tokens,
        or of the est_* tokens when none were reported): their means, and the means of their
        logarithms. route predicts tokens = its estimate x E[ratio] and cost = list price of those
        tokens x E[cost ratio], each the mean ratio as observed. cost_usd must be ≥ 0."""
    def effort(
        self, *, model: str, role: int, task_class: str, status: int, now: float,
        input_tokens: int = 0, cached_input_tokens: int = 0, output_tokens: int = 0,
        est_input_tokens: int = 0, est_output_tokens: int = 0, est_cached_input_tokens: int = 0,
        cost_usd: float | None = None,
    ) -> float | None:
        """The effort `report` would return for this step now, learning nothing (None as for
        report, and for a model the catalog does not have). After the step was learned the
        model's typical cost has moved, so this can differ slightly from report's own answer."""
    def complete_job(
        self, *, steps: list[tuple[str, int, str] | tuple[str, int, str, int]], success: bool, now: float,
    ) -> None:
        """Credit each distinct (model, role, task_class[, attempt]) with routing.job_credit_weight
        (attempt > 1: the retry arms). A succeeded job credits only the steps of its last attempt."""
    def arms(self) -> list[ArmStats]:
        """Leaderboard of (model, role, task_class) arms, decayed to the latest time seen."""
    def drain_events(self) -> list[Event]: ...
    def snapshot(self) -> bytes:
        """Versioned bytes of the learned sums (not breakers, not drift windows)."""
    def restore(self, data: bytes) -> None: ...
    def snapshot_to_path(self, path: str | os.PathLike[str]) -> None:
        """Writes snapshot()'s bytes to a new file as they are encoded."""
    def restore_path(self, path: str | os.PathLike[str]) -> None:
        """restore() from a snapshot file, read through a buffer."""
    def restore_shared_path(self, path: str | os.PathLike[str]) -> None:
        """restore_shared() from a snapshot file, read through a buffer."""
    def merge(self, data: bytes) -> None:
        """Add another snapshot's sums after aligning epochs (commutative, associative)."""
    def track_changes(self) -> None:
        """Record every change learning makes from now on, for `take_delta`."""
    def pending_changes(self) -> int:
        """Arms changed since the changes were last taken (what the next delta holds); 0 untracked."""
    def take_delta(self) -> bytes | None:
        """The changes since the last call as a delta (magic MYRDELTA); None when none."""
    def take_deltas(self, max_arms: int) -> DeltaParts:
        """take_delta in parts of about max_arms arms each, taken now, each encoded as the iterator reaches it."""
    def take_deltas_and_snapshot_to_path(self, path: os.PathLike[str] | str, max_arms: int) -> DeltaParts:
        """take_deltas and snapshot_to_path in one step, the snapshot under the core's read lock."""
    def merge_delta(self, data: bytes) -> None:
        """Another replica's delta: added (clamped at zero), not recorded as a change."""
    def return_delta(self, data: bytes) -> None:
        """Puts a delta `take_delta` gave back into the record (it could not be sent)."""
    def restore_shared(self, data: bytes | bytearray) -> None:
        """Replaces the sums with the replicas' shared state; the record is kept."""
    def arm_count(self) -> int: ...

class JobTracker:
    """Per-job routing memory, least recently used jobs forgotten past `capacity`."""
    def __init__(self, capacity: int = 100_000) -> None: ...
    def context(self, tenant: str, job_id: str, role: int) -> tuple[str | None, int, float | None]:
        """(model to stay on, failures of this role so far in the job, their mean effort or None)."""
    def knows(self, tenant: str, job_id: str) -> bool:
        """Whether an outcome of the job was observed here since start (and not forgotten)."""
    def observe(self, tenant: str, job_id: str, role: int, model: str, status: int,
                effort: float | None = None) -> None: ...
    def forget(self, tenant: str, job_id: str) -> None: ...
    def __len__(self) -> int: ...

class DeltaParts(Iterator[bytes]):
    """Core.take_deltas: the parts of one taken change; each encoded (outside the core's lock) when read."""
    def __next__(self) -> bytes: ...
    def __len__(self) -> int: ...

class Front:
    """The Rust gRPC front: Route served on its own threads over the same cores, store file and job
    tracker; every other call (and every Route it does not serve) forwarded to the Unix socket."""
    def __init__(self, config_json: str, db_path: str, jobs: JobTracker) -> None: ...
    def set_config(self, config_json: str) -> None: ...
    def set_core(self, name: str, core: Core) -> None: ...
    def start(self, listen: str, upstream: str, threads: int = 2) -> int:
        """Binds `listen` (raises OSError naming server.listen when it cannot) and returns the port."""
    def stop(self, grace_s: float) -> None: ...
    def drain_routed(self) -> list[tuple[Any, ...]]:
        """Routes served since the last call: ((tenant, key_id, role, task_class, job_id, attempt),
        (decision_id, (model, provider, upstream_model), fallbacks, cost_usd, success_probability,
        latency_ms, exploration, sticky, budget_remaining_usd, reserved_usd), budgets [(scope,
        subject, window, remaining)], (start_unix_ns, duration_ns, traceparent, core_s, store_s))."""
    def set_telemetry(self, spec_json: str | None = None) -> None:
        """How `drain_summary` sums the Routes and encodes their spans (front.telemetry_spec); None: counts only."""
    def drain_summary(self) -> tuple[Any, ...]:
        """Routes served since the last call, summed: (by_model, decisions, budgets, job_roles, core_s,
        store_s, rpc_ms, spans [(encoded ScopeSpans.spans fields, count)])."""
    def stats(self) -> dict[str, Any]:
        """{"served": n, "dropped": n, "delegated": {reason: n}}."""

def scrub_bearer(text: str, replacement: str) -> str:
    """`text` with every match of redact.py's bearer pattern replaced, as the front's spans are scrubbed."""

def sqlite_soft_heap_limit(limit: int) -> int:
    """PRAGMA soft_heap_limit = limit through the front's SQLite library; returns the previous limit
    (front.py sets it here and reads it back through Python's sqlite3: one library, or two)."""
