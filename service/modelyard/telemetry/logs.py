"""Keeps the OpenTelemetry SDK's own log lines to a trickle while a collector is down.

With the collector refused or blackholed the SDK's OTLP exporters log a failure line and a retry
line per export attempt, per signal: a few lines a second for as long as the collector stays down
(the batch processor's "Queue full" line has its own de-duplication, of consecutive repeats only).
They bury the service's own logs and, under a supervisor that does not drain stderr fast enough,
block the logging lock that request handlers share. `install()` puts one `Throttle` on the SDK's
and the exporters' loggers: the first line of each kind passes, repeats within `INTERVAL_S` are
counted, and the next line that passes says how many were held back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

INTERVAL_S = 60.0
LOGGERS = (
    "opentelemetry.sdk._shared_internal",  # BatchProcessor: "Queue full, dropping span."
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "modelyard.telemetry.export",  # our span exporters (otlp_export.py): the SDK exporters' messages
)


class Throttle(logging.Filter):
    """Lets through one record per (logger, message template) every `interval_s` seconds."""

    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (passed at, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self._interval:
                self._last[key] = (seen[0], seen[1] + 1)
                return False
            self._last[key] = (now, 0)
        if seen is not None and seen[1]:
            # Appended to the rendered message, so a template's own %-placeholders stay intact.
            record.msg, record.args = (f"{record.getMessage()} ({seen[1]} more like this in the last "
                                       f"{now - seen[0]:.0f} s not logged)"), None
        return True

    def reset(self) -> None:
        with self._lock:
            self._last.clear()


THROTTLE = Throttle()


def install() -> None:
    """Puts `THROTTLE` on the SDK's and exporters' loggers (once; later calls change nothing)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if THROTTLE not in logger.filters:
            logger.addFilter(THROTTLE)
