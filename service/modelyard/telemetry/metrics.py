"""modelyard's metric instruments, with label values kept to bounded sets.

Labels are config-defined ids (tenant, key, model), enums (role, status, window) or capped values
(task_class: the first TASK_CLASS_LABEL_CAP distinct values, then "other"). Job and decision ids
are never labels; they go on spans.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation

try:  # private to the SDK: the bulk path below is probed before use and falls back without it
    from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation as _Sdk

    _SdkHistogram: Any = _Sdk
except ImportError:  # pragma: no cover - depends on the installed SDK
    _SdkHistogram = None

from modelyard.telemetry import semconv as sc

log = logging.getLogger("modelyard.telemetry")

BudgetKey = tuple[str, str, str, str]  # tenant, scope, subject, window


class Samples(float):
    """Many measurements of one histogram and label set, recorded in one `record` call (`record_many`).

    Recording a value costs the SDK ~6 µs (a Measurement, its attributes hashed, a lock), three per
    Route the Rust front serves. As a float this is the values' sum, so anything that takes it for one
    measurement still sees a number; `BulkHistogramAggregation`, the aggregation setup() gives every
    histogram, takes the values one by one under one lock, exactly as that many records would."""

    values: Sequence[float]

    def __new__(cls, values: Sequence[float]) -> Samples:
        self = super().__new__(cls, math.fsum(values))
        self.values = values
        return self


def record_many(histogram: Histogram, values: Sequence[float], attributes: dict[str, Any]) -> None:
    """`histogram.record(v, attributes)` for every v, in one call (see Samples) where this SDK takes
    it (`bulk_supported`), else one call per value; like `record`, it drops negative and non-finite
    values with a warning."""
    good = [v for v in values if math.isfinite(v) and v >= 0]
    if len(good) < len(values):
        log.warning("histogram %s: dropped %d negative or non-finite values", getattr(histogram, "name", "?"),
                    len(values) - len(good))
    if not good:
        return
    if bulk_supported():
        histogram.record(Samples(good), attributes)
        return
    for v in good:
        histogram.record(v, attributes)


_bulk: bool | None = None  # bulk_supported()'s answer, once probed
_probe_lock = threading.Lock()


def bulk_supported() -> bool:
    """Whether the installed SDK's explicit-bucket histogram takes `Samples` whole.

    The bulk path leans on the SDK's private aggregation class and its fields; a release may move
    them. So once per process a private provider records the same values both ways and compares what
    a reader sees; anything but an exact match (or any error) turns the bulk path off with one
    warning, and `record_many` records value by value: slower, never wrong."""
    global _bulk
    if _bulk is None:
        with _probe_lock:
            if _bulk is None:
                _bulk = _probe()
                if not _bulk:
                    log.warning("this opentelemetry-sdk's histogram does not take batched values; "
                                "front latencies are recorded one by one (slower, same result)")
    return _bulk


def _probe() -> bool:
    if _SdkHistogram is None:
        return False
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.metrics.view import View

        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], views=[
            View(instrument_name="probe", aggregation=BulkHistogramAggregation(boundaries=(1.0, 10.0)))])
        try:
            hist = provider.get_meter("modelyard.probe").create_histogram("probe")
            values = [0.5, 1.0, 3.0, 20.0, 0.0]
            for v in values:
                hist.record(v, {"path": "one"})
            hist.record(Samples(values), {"path": "bulk"})
            data = reader.get_metrics_data()
        finally:
            provider.shutdown()
        assert data is not None
        [metric] = data.resource_metrics[0].scope_metrics[0].metrics
        points: dict[Any, Any] = {dict(p.attributes or {})["path"]: p for p in metric.data.data_points}
        one, bulk = points["one"], points["bulk"]
        return bool(tuple(one.bucket_counts) == tuple(bulk.bucket_counts) == (3, 1, 1)
                    and one.count == bulk.count == 5 and one.sum == bulk.sum
                    and (one.min, one.max) == (bulk.min, bulk.max))
    except Exception:  # any failure means: do not use the bulk path
        log.debug("bulk histogram probe failed", exc_info=True)
        return False


if _SdkHistogram is not None:
    class _BulkHistogram(_SdkHistogram):
        def aggregate(self, measurement: Any, should_sample_exemplar: bool = True) -> None:
            value = measurement.value
            if type(value) is not Samples:
                super().aggregate(measurement, should_sample_exemplar)
                return
            good = value.values  # finite and non-negative: record_many checked
            agg: Any = self  # the SDK's fields, which it leaves untyped
            with agg._lock:
                if agg._value is None:
                    agg._value = agg._get_empty_bucket_counts()
                counts, bounds = agg._value, agg._boundaries
                for v in good:
                    counts[bisect_left(bounds, v)] += 1
                agg._sum += math.fsum(good)
                if agg._record_min_max:
                    agg._min = min(agg._min, *good)
                    agg._max = max(agg._max, *good)


class BulkHistogramAggregation(ExplicitBucketHistogramAggregation):
    """The SDK's explicit-bucket histogram aggregation, which also takes `Samples` whole (unless the
    probe in `bulk_supported` found that it cannot: then it is the SDK's own, unchanged)."""

    def _create_aggregation(self, *args: Any, **kwargs: Any) -> Any:
        aggregation = super()._create_aggregation(*args, **kwargs)
        # The SDK's own class only (not a subclass it may pick for other settings); while the probe
        # runs (_bulk still None) it is swapped too, since that is what the probe tests.
        if (_SdkHistogram is not None and _bulk is not False
                and type(aggregation) is _SdkHistogram):
            aggregation.__class__ = _BulkHistogram
        return aggregation


class LabelCap:
    """Admits the first `limit` distinct values; every later new value reads as "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return sc.LABEL_OVERFLOW


class JobRoles:
    """Roles seen per open job, for the role_mix label; bounded, oldest jobs forgotten first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._roles: dict[tuple[str, str], set[str]] = {}

    def add(self, tenant: str, job_id: str, role: str) -> None:
        key = (tenant, job_id)
        roles = self._roles.get(key)
        if roles is None:
            if len(self._roles) >= self._limit:
                self._roles.pop(next(iter(self._roles)))
            roles = self._roles[key] = set()
        roles.add(role)

    def pop_mix(self, tenant: str, job_id: str) -> str:
        roles = self._roles.pop((tenant, job_id), None)
        return "+".join(sorted(roles)) if roles else "unknown"


class Metrics:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per GenAI operation")
        self.operation_duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration")
        self.spend = meter.create_counter(
            sc.METRIC_SPEND, unit=sc.UNIT_USD, description="Charged spend by tenant, key and model")
        self.decisions = meter.create_counter(
            sc.METRIC_DECISIONS, unit="{decision}", description="Routing decisions by model, role and exploration")
        self.outcomes = meter.create_counter(
            sc.METRIC_OUTCOMES, unit="{outcome}", description="Reported step outcomes by status")
        self.step_duration = meter.create_histogram(
            sc.METRIC_STEP_DURATION, unit="s", description="Harness-reported latency of a routed step")
        self.job_cost = meter.create_histogram(
            sc.METRIC_JOB_COST, unit=sc.UNIT_USD, description="Cost per finished job by role mix")
        self.job_duration = meter.create_histogram(
            sc.METRIC_JOB_DURATION, unit="s", description="Summed step latency per finished job by role mix")
        self.store_duration = meter.create_histogram(
            sc.METRIC_STORE_DURATION, unit="s", description="Budget store call latency by operation")
        self.core_duration = meter.create_histogram(
            sc.METRIC_CORE_DURATION, unit="s", description="Routing core call latency by operation")
        self.rpc_duration = meter.create_histogram(
            sc.METRIC_RPC_DURATION, unit="ms", description="Server-side RPC latency")
        self._budgets: dict[BudgetKey, float] = {}
        meter.create_observable_gauge(
            sc.METRIC_BUDGET_REMAINING, callbacks=[self._observe_budgets], unit=sc.UNIT_USD,
            description="Remaining budget per tenant/key window, as of the latest decision")
        self.task_class = LabelCap(sc.TASK_CLASS_LABEL_CAP)
        self.job_roles = JobRoles()

    def set_budget(self, tenant: str, scope: str, subject: str, window: str, remaining_usd: float) -> None:
        self._budgets[(tenant, scope, subject, window)] = remaining_usd

    def _observe_budgets(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(remaining, {sc.LABEL_TENANT: tenant, sc.LABEL_SCOPE: scope,
                                    sc.LABEL_SUBJECT: subject, sc.LABEL_WINDOW: window})
            for (tenant, scope, subject, window), remaining in list(self._budgets.items())
        ]
