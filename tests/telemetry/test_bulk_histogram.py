"""record_many (telemetry/metrics.py) records a batch of values in one call: every reader must see
exactly what one `record` per value would have left."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

from modelyard.telemetry import metrics
from modelyard.telemetry.metrics import BulkHistogramAggregation, record_many

BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _points(temporality: AggregationTemporality) -> tuple[InMemoryMetricReader, MeterProvider]:
    reader = InMemoryMetricReader(preferred_temporality={Histogram: temporality})
    provider = MeterProvider(metric_readers=[reader], views=[
        View(instrument_name="latency", aggregation=BulkHistogramAggregation(boundaries=BOUNDS))])
    return reader, provider


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_many_values_in_one_call_are_the_same_histogram_as_one_call_each(temporality: AggregationTemporality) -> None:
    reader, provider = _points(temporality)
    hist = provider.get_meter("t").create_histogram("latency")
    rng = random.Random(7)
    total = 0
    for _ in range(3):  # three collections: the bulk path must also reset and carry over as the SDK does
        values = [rng.choice([0.0, 0.001, 0.5, 20.0]) if rng.random() < 0.2 else rng.expovariate(5)
                  for _ in range(rng.randint(1, 300))]
        for v in values:
            hist.record(v, {"path": "one-by-one"})
        record_many(hist, values, {"path": "bulk"})
        record_many(hist, [], {"path": "bulk"})
        total += len(values)
        data = reader.get_metrics_data()
        assert data is not None
        [metric] = data.resource_metrics[0].scope_metrics[0].metrics
        by_path = {p.attributes["path"]: p for p in metric.data.data_points}
        one, bulk = by_path["one-by-one"], by_path["bulk"]
        assert bulk.bucket_counts == one.bucket_counts
        assert bulk.count == one.count == (len(values) if temporality is AggregationTemporality.DELTA else total)
        assert bulk.sum == pytest.approx(one.sum) and (bulk.min, bulk.max) == (one.min, one.max)
        assert bulk.explicit_bounds == one.explicit_bounds == BOUNDS
    provider.shutdown()


def test_values_a_histogram_refuses_are_dropped_from_a_batch_too() -> None:
    reader, provider = _points(AggregationTemporality.CUMULATIVE)
    hist = provider.get_meter("t").create_histogram("latency")
    record_many(hist, [0.5, -1.0, float("nan"), float("inf"), 2.0], {})
    data = reader.get_metrics_data()
    assert data is not None
    [point] = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    assert point.count == 2 and point.sum == 2.5 and (point.min, point.max) == (0.5, 2.0)
    provider.shutdown()


@pytest.fixture
def bulk_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK whose private histogram no longer takes batches: here, its aggregate breaks on a field
    the bulk path reads, as a renamed attribute would."""
    def renamed(self: object, measurement: object, should_sample_exemplar: bool = True) -> None:
        raise AttributeError("'_ExplicitBucketHistogramAggregation' object has no attribute '_boundaries'")

    monkeypatch.setattr(metrics._BulkHistogram, "aggregate", renamed)
    monkeypatch.setattr(metrics, "_bulk", None)


def test_the_probe_accepts_the_installed_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_bulk", None)
    assert metrics.bulk_supported() is True


@pytest.mark.usefixtures("bulk_off")
def test_an_sdk_the_bulk_path_does_not_fit_gets_one_record_per_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="modelyard.telemetry"):
        assert metrics.bulk_supported() is False
    assert "recorded one by one" in caplog.text
    reader, provider = _points(AggregationTemporality.CUMULATIVE)
    hist = provider.get_meter("t").create_histogram("latency")
    values = [0.0005, 0.002, 0.5, 0.5, 30.0]
    for v in values:
        hist.record(v, {"path": "one-by-one"})
    record_many(hist, values, {"path": "bulk"})
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = data.resource_metrics[0].scope_metrics[0].metrics
    by_path = {p.attributes["path"]: p for p in metric.data.data_points}
    one, bulk = by_path["one-by-one"], by_path["bulk"]
    assert bulk.bucket_counts == one.bucket_counts == (1, 1, 0, 2, 0, 1)
    expected = (5, sum(values), 0.0005, 30.0)
    assert (bulk.count, bulk.sum, bulk.min, bulk.max) == (one.count, one.sum, one.min, one.max) == expected
    provider.shutdown()


def test_without_the_private_class_the_probe_says_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_SdkHistogram", None)
    monkeypatch.setattr(metrics, "_bulk", None)
    assert metrics.bulk_supported() is False
