"""Measurements taken on the event loop reach the SDK when the loop next turns, and none is lost."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from modelyard.telemetry import semconv as sc
from modelyard.telemetry.metrics import Metrics


def _setup() -> tuple[Metrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return Metrics(MeterProvider(metric_readers=[reader]).get_meter("test")), reader


def _points(reader: InMemoryMetricReader, name: str) -> dict[str, float]:
    """{label value of "operation" or "model": sum} for one metric."""
    data = reader.get_metrics_data()
    out: dict[str, float] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != name:
                    continue
                for p in metric.data.data_points:
                    label = dict(p.attributes).get(sc.LABEL_OPERATION) or dict(p.attributes)[sc.LABEL_MODEL]
                    out[str(label)] = p.sum if hasattr(p, "sum") else p.value
    return out


def test_on_the_loop_measurements_wait_for_the_next_turn() -> None:
    metrics, reader = _setup()

    async def rpc() -> None:
        metrics.store_duration.record(0.25, {sc.LABEL_OPERATION: "reserve"})
        metrics.store_duration.record(0.5, {sc.LABEL_OPERATION: "reserve"})
        metrics.decisions.add(1, {sc.LABEL_MODEL: "m1"})
        assert _points(reader, sc.METRIC_STORE_DURATION) == {}  # still queued while the RPC runs
        await asyncio.sleep(0)
        assert _points(reader, sc.METRIC_STORE_DURATION) == {"reserve": 0.75}
        assert _points(reader, sc.METRIC_DECISIONS) == {"m1": 1}

    asyncio.run(rpc())


def test_off_the_loop_measurements_are_recorded_at_once() -> None:
    metrics, reader = _setup()
    metrics.spend.add(0.5, {sc.LABEL_MODEL: "m2"})
    assert _points(reader, sc.METRIC_SPEND) == {"m2": 0.5}


def test_flush_records_what_a_stopped_loop_left_queued() -> None:
    metrics, reader = _setup()

    loop = asyncio.new_event_loop()

    def rpc_then_stop() -> None:
        metrics.core_duration.record(0.125, {sc.LABEL_OPERATION: "route"})
        loop.stop()  # the loop ends before it turns again

    loop.call_soon(rpc_then_stop)
    loop.run_forever()
    assert _points(reader, sc.METRIC_CORE_DURATION) == {}
    metrics.later.flush()
    assert _points(reader, sc.METRIC_CORE_DURATION) == {"route": 0.125}
    loop.close()

    async def next_loop() -> None:
        metrics.core_duration.record(0.25, {sc.LABEL_OPERATION: "route"})
        await asyncio.sleep(0)

    asyncio.run(next_loop())  # a new loop takes the queue over once the old one is closed
    assert _points(reader, sc.METRIC_CORE_DURATION) == {"route": 0.375}


def test_a_second_live_loop_records_directly() -> None:
    metrics, reader = _setup()
    first = asyncio.new_event_loop()

    async def on_first() -> None:
        metrics.rpc_duration.record(1.0, {sc.LABEL_OPERATION: "a"})

    first.run_until_complete(on_first())  # `first` owns the queue and stays open

    async def on_second() -> None:
        metrics.rpc_duration.record(2.0, {sc.LABEL_OPERATION: "b"})
        assert _points(reader, sc.METRIC_RPC_DURATION).get("b") == 2.0

    asyncio.run(on_second())
    first.run_until_complete(asyncio.sleep(0))
    assert _points(reader, sc.METRIC_RPC_DURATION) == {"a": 1.0, "b": 2.0}
    first.close()
