"""Facade over the Rust routing core (`modelyard._core`): the only module that imports it.

Converts domain values to the core's arguments. The core is pure and thread-safe; it releases the
GIL while it scores or learns, so calling it inline from the event loop costs microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelyard import _core
from modelyard.domain import Constraints, RouteInput, TaskProfile

CoreError = _core.CoreError
# Per-job routing memory, and the Rust gRPC front: Rust objects the service holds as they are.
JobTracker = _core.JobTracker
RustFront = _core.Front
# PRAGMA soft_heap_limit through the Rust front's SQLite library (front.py's one-library check).
sqlite_soft_heap_limit = _core.sqlite_soft_heap_limit


class RoutingCore:
    def __init__(self, catalog: dict[str, Any]) -> None:
        self.catalog = catalog
        self._core = _core.Core(json.dumps(catalog))

    def set_catalog(self, catalog: dict[str, Any]) -> None:
        self._core.set_catalog(json.dumps(catalog))
        self.catalog = catalog

    @property
    def native(self) -> _core.Core:
        """The Rust core itself, for the Rust front to route on (`front.py`)."""
        return self._core

    @staticmethod
    def _profile_args(task: TaskProfile, c: Constraints) -> dict[str, Any]:
        return {
            "role": task.role,
            "task_class": task.task_class,
            "est_input_tokens": task.est_input_tokens,
            "est_output_tokens": task.est_output_tokens,
            "est_cached_input_tokens": task.est_cached_input_tokens,
            "capabilities": list(task.capabilities),
            "min_context": task.min_context_window,
            "allowed": list(c.allowed_models),
            "denied": list(c.denied_models),
            "provenance": list(c.required_provenance),
            "max_cost_usd": c.max_cost_usd,
            "max_latency_ms": c.max_latency_ms,
            "min_success": c.min_success_probability,
        }

    def route(
        self, req: RouteInput, *, constraints: Constraints, budget_cap_usd: float | None,
        job_failures: int, sticky_model: str | None, time_value_usd_per_s: float,
        explore: bool, seed: int, now: float, failed_effort: float | None = None,
    ) -> _core.Decision:
        return self._core.route(_core.Request(
            **self._profile_args(req.task, constraints),
            budget_cap_usd=budget_cap_usd,
            attempt=max(1, req.attempt),
            failed_models=list(req.failed_models),
            job_failures=job_failures,
            failed_effort=failed_effort,
            sticky_model=sticky_model,
            context_tokens=req.context_tokens,
            time_value_usd_per_s=time_value_usd_per_s,
            explore=explore,
            seed=seed,
            now=now,
            explain=req.explain,
        ))

    def estimate(
        self, task: TaskProfile, constraints: Constraints, *, time_value_usd_per_s: float, now: float,
    ) -> list[_core.Candidate]:
        return self._core.estimate(_core.Request(
            **self._profile_args(task, constraints), time_value_usd_per_s=time_value_usd_per_s, now=now,
            explore=False,
        ))

    def report(
        self, *, model: str, role: int, task_class: str, status: int, input_tokens: int,
        cached_input_tokens: int, output_tokens: int, latency_ms: float, now: float,
        est_input_tokens: int = 0, est_output_tokens: int = 0, est_cached_input_tokens: int = 0,
        cost_usd: float | None = None, attempt: int = 1, failed_effort: float | None = None,
        learn: str = "all",
    ) -> float | None:
        """Learn from one step. Zero tokens / latency mean "not reported" (nothing learned from
        them). Pass the decision's estimates so the core learns actual/estimated token ratios,
        and the provider-billed `cost_usd` when known (it learns billed/list-price). `attempt` is
        the decision's attempt: outcomes of attempts > 1 teach the core's retry arms, and
        `failed_effort` the one it was routed with. Returns the step's effort (ln of billed over
        the model's typical cost; None when not measurable), for the job's next retry. `learn`:
        "all", "measurements" (a call that completed, verdict pending) or "outcome" (the verdict
        on such a call)."""
        return self._core.report(
            model=model, role=role, task_class=task_class, status=status,
            input_tokens=input_tokens, cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens, latency_ms=latency_ms, now=now,
            est_input_tokens=est_input_tokens, est_output_tokens=est_output_tokens,
            est_cached_input_tokens=est_cached_input_tokens, cost_usd=cost_usd, attempt=max(1, attempt),
            failed_effort=failed_effort, learn=learn,
        )

    def effort(
        self, *, model: str, role: int, task_class: str, status: int, input_tokens: int,
        cached_input_tokens: int, output_tokens: int, now: float, est_input_tokens: int = 0,
        est_output_tokens: int = 0, est_cached_input_tokens: int = 0, cost_usd: float | None = None,
    ) -> float | None:
        """The effort `report` would return for this step now, learning nothing: how a job's
        failed try ran, rebuilt from the store when this replica did not see the failure."""
        return self._core.effort(
            model=model, role=role, task_class=task_class, status=status, now=now,
            input_tokens=input_tokens, cached_input_tokens=cached_input_tokens, output_tokens=output_tokens,
            est_input_tokens=est_input_tokens, est_output_tokens=est_output_tokens,
            est_cached_input_tokens=est_cached_input_tokens, cost_usd=cost_usd,
        )

    def complete_job(
        self, steps: Sequence[tuple[str, int, str] | tuple[str, int, str, int]], *, success: bool, now: float,
    ) -> None:
        """Credit a finished job's steps: (model, role, task_class) or with the step's attempt
        appended; a succeeded job credits only the steps of its last attempt."""
        self._core.complete_job(steps=list(steps), success=success, now=now)

    def arms(self) -> list[_core.ArmStats]:
        return self._core.arms()

    def drain_events(self) -> list[_core.Event]:
        return self._core.drain_events()

    def snapshot(self) -> bytes:
        return self._core.snapshot()

    def restore(self, data: bytes) -> None:
        self._core.restore(data)

    def snapshot_to_path(self, path: Path) -> None:
        """Writes `snapshot()`'s bytes to a new file as they are encoded (never whole in memory)."""
        self._core.snapshot_to_path(path)

    def restore_path(self, path: Path) -> None:
        """`restore` from a file `snapshot_to_path` wrote, read through a buffer."""
        self._core.restore_path(path)

    def restore_shared_path(self, path: Path) -> None:
        """`restore_shared` from a snapshot file, read through a buffer."""
        self._core.restore_shared_path(path)

    def merge(self, data: bytes) -> None:
        self._core.merge(data)

    def track_changes(self) -> None:
        """From now on record every change learning makes, for `take_delta` (shared learning)."""
        self._core.track_changes()

    def pending_changes(self) -> int:
        """How many arms changed since the changes were last taken: what the next save or delta holds."""
        return self._core.pending_changes()

    def take_delta(self) -> bytes | None:
        """The changes since the last call, for the other replicas' `merge_delta`; None if none."""
        return self._core.take_delta()

    def take_deltas(self, max_arms: int) -> _core.DeltaParts:
        """`take_delta` in parts of about `max_arms` arms, each merged on its own; none if nothing changed.
        The changes are taken now; each part is encoded as the iterator reaches it (one in memory at a time)."""
        return self._core.take_deltas(max_arms)

    def take_deltas_and_snapshot_to_path(self, path: Path, max_arms: int) -> _core.DeltaParts:
        """`take_deltas` and `snapshot_to_path` in one step: nothing learned lands between them, so the
        snapshot holds exactly what was sent before plus these parts. Blocks (GIL released) while the
        snapshot is written: run it on a thread."""
        return self._core.take_deltas_and_snapshot_to_path(path, max_arms)

    def merge_delta(self, data: bytes) -> None:
        """Another replica's changes; merged, not recorded as a change of this core's."""
        self._core.merge_delta(data)

    def return_delta(self, data: bytes) -> None:
        """Puts back a delta from `take_delta` that could not be sent: it goes with the next."""
        self._core.return_delta(data)

    def restore_shared(self, data: bytes | bytearray) -> None:
        """Replaces the sums with the replicas' shared state; recorded changes are kept."""
        self._core.restore_shared(data)

    def arm_count(self) -> int:
        return self._core.arm_count()
