"""The last gate before export: credentials never leave the process in a span.

The OTel gRPC interceptor reads request metadata (for the trace context and the user agent); an
instrumentation upgrade or a caller's odd header could put `authorization` or an API key on a span.
This exporter wrapper drops such attributes and scrubs bearer tokens from values. It runs on the
batch export thread, so it costs requests nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from modelyard.telemetry import semconv as sc

_BEARER = re.compile(r"(?i)bearer\s+\S+")


@functools.lru_cache(maxsize=1024)
def sensitive_key(key: str) -> bool:
    # Cached: spans repeat the same few dozen attribute names, and this runs for each of them.
    lowered = key.lower()
    return any(part in lowered for part in sc.SENSITIVE_KEY_PARTS)


def _clean_value(value: Any) -> Any:
    if isinstance(value, str) and _BEARER.search(value):
        return _BEARER.sub(sc.REDACTED, value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) and _BEARER.search(v) for v in value):
        return tuple(_clean_value(v) for v in value)
    return value


def _dirty(attrs: Mapping[str, Any] | None) -> bool:
    return bool(attrs) and any(sensitive_key(k) or _clean_value(v) is not v for k, v in attrs.items())  # type: ignore[union-attr]


def clean_attributes(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _clean_value(v) for k, v in (attrs or {}).items() if not sensitive_key(k)}


def _needs_cleaning(span: ReadableSpan) -> bool:
    description = span.status.description or ""
    return (_dirty(span.attributes) or any(_dirty(e.attributes) for e in span.events)
            or bool(_BEARER.search(description)))


def clean_span(span: ReadableSpan) -> ReadableSpan:
    """`span` itself when it is clean (the usual case), else a scrubbed copy."""
    if not _needs_cleaning(span):
        return span
    status = span.status
    if status.description:
        status = Status(status.status_code, _BEARER.sub(sc.REDACTED, status.description))
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=clean_attributes(span.attributes),
        events=[Event(e.name, clean_attributes(e.attributes), e.timestamp) for e in span.events],
        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Wraps a real exporter; every span passes `clean_span` on its way out."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([clean_span(s) for s in spans])

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        # The batch processor passes what is left of its bound only to exporters that take one.
        try:
            self._inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        except TypeError:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)
