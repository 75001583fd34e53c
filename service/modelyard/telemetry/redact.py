"""The last gate before export: credentials never leave the process in a span.

The OTel gRPC interceptor reads request metadata (for the trace context and the user agent); an
instrumentation upgrade or a caller's odd header could put `authorization` or an API key on a span.
The rules here drop such attributes and scrub bearer tokens from values. The span exporters apply them
while encoding (otlp_encode, `redact=True`, on the batch export thread, so it costs requests nothing);
`clean_span` applies them to a span, and is what that encoding is tested against.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from modelyard.telemetry import semconv as sc

_BEARER = re.compile(r"(?i)bearer\s+\S+")


@functools.lru_cache(maxsize=1024)
def sensitive_key(key: str) -> bool:
    # Cached: spans repeat the same few dozen attribute names, and this runs for each of them.
    lowered = key.lower()
    return any(part in lowered for part in sc.SENSITIVE_KEY_PARTS)


def has_bearer(text: str) -> bool:
    # "bearer" in the lowercased text is necessary for a match (no other character lowercases to those
    # letters) and several times cheaper than the search, which nearly every value would fail.
    return "bearer" in text.lower() and _BEARER.search(text) is not None


def clean_value(value: Any) -> Any:
    if isinstance(value, str) and has_bearer(value):
        return _BEARER.sub(sc.REDACTED, value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) and has_bearer(v) for v in value):
        return tuple(clean_value(v) for v in value)
    return value


def _dirty(attrs: Mapping[str, Any] | None) -> bool:
    return bool(attrs) and any(sensitive_key(k) or clean_value(v) is not v for k, v in attrs.items())  # type: ignore[union-attr]


def clean_attributes(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: clean_value(v) for k, v in (attrs or {}).items() if not sensitive_key(k)}


def _needs_cleaning(span: ReadableSpan) -> bool:
    description = span.status.description or ""
    return (_dirty(span.attributes) or any(_dirty(e.attributes) for e in span.events)
            or has_bearer(description))


def clean_span(span: ReadableSpan) -> ReadableSpan:
    """`span` itself when it is clean (the usual case), else a scrubbed copy."""
    if not _needs_cleaning(span):
        return span
    status = span.status
    if status.description:
        status = Status(status.status_code, clean_value(status.description))
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=clean_attributes(span.attributes),
        events=[Event(e.name, clean_attributes(e.attributes), e.timestamp) for e in span.events],
        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
    )
