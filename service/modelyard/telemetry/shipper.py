"""Exports spans that arrive already encoded: the Rust front's Route spans (front.py).

The front encodes each sampled Route's span into OTLP bytes itself (router_core/src/front/spans.rs)
and hands them over in pieces of many spans. They skip the SDK's span objects and its
BatchSpanProcessor, whose queue counts items, not spans; this does that processor's job for them:
a thread of its own, exports of at most `max_batch` spans at least every `delay_s`, at most
`max_queue` spans waiting (past that the oldest are dropped, as the processor drops them), and on
`shutdown` what is left goes out within the time given. It sends through the server's own span
exporter (otlp_export.py), so endpoint, headers, TLS, retries and redaction are the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from modelyard.telemetry.otlp_encode import EncodedSpans

log = logging.getLogger("modelyard.telemetry.export")

DROP_LOG_INTERVAL_S = 10.0  # a full queue during a collector outage warns this often, with the count


class SpanShipper:
    def __init__(self, exporter: SpanExporter, resource: Resource, scope: InstrumentationScope, *,
                 redact: bool, max_queue: int, max_batch: int, delay_s: float) -> None:
        self.exporter = exporter
        self.resource = resource
        self.scope = scope
        #: Whether the exporter redacts: the front scrubs what it encodes the same way.
        self.redact = redact
        self.max_batch = max(1, max_batch)
        self._max_queue = max(self.max_batch, max_queue)
        self._delay_s = delay_s
        self._queue: deque[EncodedSpans] = deque()
        self._queued = 0  # spans in _queue
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._flush_asked = False
        self._busy = False  # a batch is being exported
        self.dropped = 0
        self.exported = 0
        self._dropped_logged = 0
        self._drop_logged_at = -DROP_LOG_INTERVAL_S

    def put(self, encoded: bytes, count: int) -> None:
        """Queues `count` spans encoded as `ScopeSpans.spans` fields; at most `max_batch` in one call."""
        if count <= 0:
            return
        with self._cond:
            if self._stopping:
                self.dropped += count
                return
            self._queue.append(EncodedSpans(encoded, count, self.resource, self.scope))
            self._queued += count
            while self._queued > self._max_queue and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued -= old.count
                self.dropped += old.count
            now = time.monotonic()
            if self.dropped > self._dropped_logged and now - self._drop_logged_at >= DROP_LOG_INTERVAL_S:
                log.warning("span export queue full: dropped %d of the front's spans so far (the collector is"
                            " slow or down)", self.dropped)
                self._dropped_logged, self._drop_logged_at = self.dropped, now
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modelyard-front-spans", daemon=True)
                self._thread.start()
            if self._queued >= self.max_batch:
                self._cond.notify()

    def _take(self) -> list[EncodedSpans]:
        """Up to max_batch spans of the oldest pieces (one piece at least); call holding the lock."""
        batch: list[EncodedSpans] = []
        n = 0
        while self._queue and (not batch or n + self._queue[0].count <= self.max_batch):
            piece = self._queue.popleft()
            self._queued -= piece.count
            n += piece.count
            batch.append(piece)
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._delay_s
                while not (self._stopping or self._flush_asked or self._queued >= self.max_batch):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping and not self._queue:
                    return
                batch = self._take()
                self._busy = bool(batch)
                if not self._queue:
                    self._flush_asked = False
            if batch:
                self._export(batch)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _export(self, batch: list[EncodedSpans]) -> None:
        try:
            self.exporter.export(batch)
            self.exported += sum(p.count for p in batch)
        except Exception:  # an exporter error costs a batch, never the thread
            log.exception("exporting the front's spans failed")

    def force_flush(self, timeout_s: float) -> bool:
        """Waits until everything queued so far has been exported (or failed to be); False on timeout."""
        end = time.monotonic() + timeout_s
        with self._cond:
            if self._thread is None:
                return True
            self._flush_asked = True
            self._cond.notify_all()
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self, timeout_s: float) -> None:
        """Sends what is queued within `timeout_s`, then stops; later spans are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
