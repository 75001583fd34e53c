"""otlp_encode writes the very request the SDK's encoder builds: equal as messages and equal as bytes."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from modelyard.telemetry.otlp_encode import encode_spans
from modelyard.telemetry.redact import clean_span
from tests.telemetry.spans import SCHEMA_URL, provider, remote_parent, route_spans

CTX = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=False,
                  trace_flags=TraceFlags(TraceFlags.SAMPLED))
REMOTE = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True)


def assert_same(spans: Sequence[ReadableSpan], *, redact: bool = False) -> bytes:
    """The fast bytes parse to the SDK's message and equal its serialization (redacted: of `clean_span`'s)."""
    fast = encode_spans(spans, redact=redact)
    official = sdk_encode_spans([clean_span(s) for s in spans] if redact else spans)
    assert fast == official.SerializeToString()
    assert ExportTraceServiceRequest.FromString(fast) == official
    return fast


def span(attributes: Mapping[Any, Any] | None = None, **kwargs: Any) -> ReadableSpan:
    """A hand-built span: its attributes are taken as they are, with none of the SDK's checks."""
    kwargs.setdefault("context", CTX)
    return ReadableSpan(name=kwargs.pop("name", "op"), attributes=attributes, start_time=1_700_000_000_000_000_000,
                        end_time=1_700_000_000_123_456_789, **kwargs)


class Color(enum.IntEnum):
    RED = 7


class Text(str):
    pass


VALUES: dict[str, Any] = {
    "str": "Route", "empty str": "", "non-ascii": "naïve 日本語 🚀", "long str": "x" * 300,
    "longer str": "é" * 20_000, "true": True, "false": False, "zero": 0, "int": 42, "negative": -7,
    "int64 max": 2**63 - 1, "int64 min": -(2**63), "float": 0.61, "float zero": 0.0, "negative zero": -0.0,
    "inf": math.inf, "bytes": b"\x00\xff", "empty bytes": b"", "none": None,
    "str list": ["a", "b", ""], "bool tuple": (True, False), "int list": [1, -1, 2**62],
    "float list": [0.5, -2.0], "bytes list": [b"a"], "empty list": [], "none in list": ["a", None],
    "mixed list": [1, "a", True, 1.5, None, b"z"], "nested list": [[1, 2], [], ["x"]],
    "mapping": {"a": 1, 2: "b", "c": [True]}, "bytearray": bytearray(b"ab"), "int enum": Color.RED,
    "str subclass": Text("sub"),
}
DROPPED: dict[str, Any] = {  # the SDK logs and leaves these attributes out; so must the fast encoder
    "int too big": 2**63, "int too small": -(2**63) - 1, "surrogate": "a\udc80", "set": {1, 2},
    "object": object(), "bad element": [1, 2**64], "bad mapping value": {"k": {1}},
}


def test_realistic_route_spans() -> None:
    assert_same(route_spans(64))


def test_empty_batch_and_spans_without_attributes() -> None:
    assert encode_spans([]) == b"" == sdk_encode_spans([]).SerializeToString()
    assert_same([span(), span({}), span(None, name="", kind=SpanKind.CLIENT)])


@pytest.mark.parametrize("name", list(VALUES))
def test_every_attribute_value_type(name: str) -> None:
    assert_same([span({name: VALUES[name]})])


def test_all_value_types_in_every_place_attributes_go() -> None:
    resource = Resource(dict(VALUES, **{"service.name": "x"}), schema_url=SCHEMA_URL)  # keeps what the SDK allows
    scope = InstrumentationScope("lib", "1.2", SCHEMA_URL, attributes=VALUES)
    assert_same([span(VALUES, events=[Event("e", VALUES, timestamp=5)], links=[Link(REMOTE, VALUES)],
                      resource=resource, instrumentation_scope=scope)])


def test_nan_is_the_same_bytes() -> None:  # NaN != NaN, so the messages never compare equal
    spans = [span({"nan": math.nan, "nans": [math.nan, -math.nan]})]
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


@pytest.mark.parametrize("name", list(DROPPED))
def test_values_the_sdk_cannot_encode_drop_just_that_attribute(name: str) -> None:
    fast = assert_same([span({"before": 1, name: DROPPED[name], "after": 2})])
    [kept] = ExportTraceServiceRequest.FromString(fast).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in kept.attributes] == ["before", "after"]


@pytest.mark.parametrize("key", ["", None, b"bytes-key", b"\xff", 1, "k" * 200, "ключ.名前"])
def test_odd_keys(key: Any) -> None:
    assert_same([span({key: "v", "k": True})])


def test_sdk_spans_with_events_links_status_and_parents() -> None:
    tp, memory = provider()
    tracer = tp.get_tracer("modelyard", "0.1.0", schema_url=SCHEMA_URL)
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER, context=remote_parent()) as server:
        server.add_event("started", {"n": 1, "phase": "prepare"})
        server.add_event("no attributes")
        with tracer.start_as_current_span("child", links=[Link(REMOTE, {"why": "retry"}), Link(CTX)]) as child:
            child.set_status(Status(StatusCode.ERROR, "upstream failed: 503"))
            try:
                raise ValueError("boom")
            except ValueError as exc:
                child.record_exception(exc)  # an event with a long stack trace
        for kind in SpanKind:
            with tracer.start_as_current_span(f"kind {kind.name}", kind=kind) as s:
                s.set_status(StatusCode.OK if kind is SpanKind.CLIENT else StatusCode.ERROR)
    with tracer.start_as_current_span("root"):
        pass
    tp.shutdown()
    spans = memory.get_finished_spans()
    assert len(spans) == 8
    assert_same(spans)


def test_dropped_counts() -> None:
    limits = SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1,
                        max_link_attributes=1)
    tp, memory = provider(limits=limits)
    tracer = tp.get_tracer("modelyard")
    with tracer.start_as_current_span("full", links=[Link(REMOTE, {"a": 1, "b": 2}), Link(CTX)]) as s:
        s.set_attributes({"a": 1, "b": 2, "c": 3})
        s.add_event("e1", {"a": 1, "b": 2})
        s.add_event("e2")
    tp.shutdown()
    fast = assert_same(memory.get_finished_spans())
    [got] = ExportTraceServiceRequest.FromString(fast).resource_spans[0].scope_spans[0].spans
    assert (got.dropped_attributes_count, got.dropped_events_count, got.dropped_links_count) == (1, 1, 1)


def test_hand_built_span_fields() -> None:
    state = TraceState([("vendor", "abc"), ("other", "x=1")])
    assert_same([
        ReadableSpan(name="unfinished", context=SpanContext(1, 2, is_remote=False, trace_state=state)),
        ReadableSpan(name="no status", context=CTX, parent=REMOTE, status=None),  # type: ignore[arg-type]
        ReadableSpan(name="local parent", context=CTX, parent=CTX, kind=SpanKind.PRODUCER,
                     status=Status(StatusCode.ERROR)),
        span(name="ids at the edges", context=SpanContext(2**128 - 1, 2**64 - 1, is_remote=False)),
        span(events=[Event("", None, timestamp=0), Event("late", {"k": "v"}, timestamp=2**63)]),
    ])


def test_many_resources_and_scopes_in_one_batch() -> None:
    res_a, res_b = Resource({"service.name": "a", "zone": 1}), Resource({"service.name": "b"}, SCHEMA_URL)
    res_a2 = Resource({"zone": 1, "service.name": "a"})  # equal to res_a, not the same object, other order
    scopes: list[InstrumentationScope | None] = [
        InstrumentationScope("lib"), InstrumentationScope("lib", "2"), None,
        InstrumentationScope("lib", "2", SCHEMA_URL, {"scope.attr": True}),
        InstrumentationScope("lib", "2"),  # equal to the second
    ]
    spans = [span({"i": i}, resource=res, instrumentation_scope=scope)
             for i, (res, scope) in enumerate((r, s) for _ in range(3) for r in (res_a, res_b, res_a2)
                                              for s in scopes)]
    fast = assert_same(spans)
    request = ExportTraceServiceRequest.FromString(fast)
    assert len(request.resource_spans) == 2
    assert [len(rs.scope_spans) for rs in request.resource_spans] == [4, 4]


def test_large_spans_need_long_lengths() -> None:
    assert_same([span({f"key.{i}": "v" * i for i in range(300)}, name="n" * 1000)])
    assert_same([span({f"{'k' * (100 + i)}.{name}": v for name, v in VALUES.items()}) for i in range(0, 40, 3)])


class Plain(Mapping[str, Any]):
    """A mapping with no copy()."""

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_attributes_in_any_mapping() -> None:
    assert_same([span(Plain({"a": 1, "b": "x"}), events=[Event("e", Plain({"c": True}), 1)])])


# Hypothesis: random attribute dicts, through the SDK's checks (BoundedAttributes) and around them.
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64)
           | st.floats(allow_nan=False) | st.text() | st.binary())
homogeneous = (st.lists(st.booleans()) | st.lists(st.integers(-(2**63), 2**63 - 1)) | st.lists(st.text())
               | st.lists(st.floats(allow_nan=False)) | st.lists(st.binary()))
values = st.recursive(scalars | homogeneous, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
keys = st.text(max_size=40) | st.sampled_from(["rpc.method", "", "modelyard.job_id", "x" * 130])
attributes = st.dictionaries(keys, values, max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes, attributes, st.text(max_size=20), st.sampled_from(list(SpanKind)))
def test_random_attributes_match_the_sdk(attrs: dict[str, Any], event_attrs: dict[str, Any], name: str,
                                         kind: SpanKind) -> None:
    tp, memory = provider()
    with tp.get_tracer("t").start_as_current_span(name, kind=kind, attributes=attrs) as s:
        s.add_event(name, event_attrs)
    tp.shutdown()
    assert_same([*memory.get_finished_spans(), span(attrs, events=[Event(name, event_attrs, 1)], kind=kind)])


with_surrogates = st.text(alphabet=st.integers(0xD800, 0xDFFF).map(chr) | st.characters(), max_size=6)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(with_surrogates, with_surrogates | st.lists(with_surrogates, max_size=3)))
def test_random_strings_with_surrogates(attrs: dict[str, Any]) -> None:  # not UTF-8: the SDK drops them
    assert_same([span(attrs)])


# Redaction while encoding: the same spans as `clean_span` would make, encoded.
DIRTY = [
    {"rpc.grpc.request.metadata.authorization": "Bearer sk-abc", "a": 1},
    {"http.request.header.x-api-key": "sk-abc", "Cookie": "c", "db.password": "p"},
    {"note": "token Bearer sk-abc here", "upper": "BEARER\tsk-abc", "keep": "bearer"},
    {"tokens": ["ok", "Bearer sk-abc"], "ints": [1, 2]},
    {"rpc.method": "Route"},
]


@pytest.mark.parametrize("attrs", DIRTY)
def test_redaction_while_encoding_matches_clean_span(attrs: dict[str, Any]) -> None:
    events = [Event("e", {"note": "Bearer sk-abc", "authorization": "x", "k": 1}, 3), Event("plain", {"k": 1}, 4)]
    spans = [span(attrs, events=events, links=[Link(REMOTE, {"authorization": "kept: links are not cleaned"})],
                  status=Status(StatusCode.ERROR, "denied for Bearer sk-abc")),
             span(attrs, resource=Resource({"service.name": "s", "api_key": "resources are not cleaned"}))]
    assert b"sk-abc" not in assert_same(spans, redact=True)


def test_redaction_of_nested_sequences_matches_clean_span_too() -> None:
    # clean_span looks one level into a sequence; the SDK never lets a nested one onto a span anyway.
    assert_same([span({"nested": (["Bearer sk-abc"],), "flat": ("Bearer sk-abc", ["Bearer sk-abc"])})],
                redact=True)


def test_clean_spans_encode_the_same_with_or_without_redaction() -> None:
    spans = route_spans(16)
    assert encode_spans(spans, redact=True) == encode_spans(spans)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["authorization", "X-Api-Key", "note", "a.b", "user.password", "k"]),
                       st.sampled_from(["Bearer sk-1", "x bearer  y z", "plain", "BEARER", "", 1, True])
                       | st.lists(st.sampled_from(["Bearer sk-2", "ok"]), max_size=3), max_size=6),
       st.sampled_from([None, "", "Bearer sk-3 denied", "denied"]))
def test_random_redaction_matches_clean_span(attrs: dict[str, Any], description: str | None) -> None:
    status = Status(StatusCode.ERROR, description) if description is not None else Status()
    assert_same([span(attrs, events=[Event("e", attrs, 1)], status=status)], redact=True)


def test_redaction_keeps_dropped_counts() -> None:
    # The one intended difference from clean_span, whose copy of a dirty span loses the SDK's counts.
    tp, memory = provider(limits=SpanLimits(max_span_attributes=2))
    with tp.get_tracer("t").start_as_current_span("s", context=remote_parent()) as s:
        s.set_attributes({"a": 1, "authorization": "Bearer sk-abc", "b": 2})
    tp.shutdown()
    fast = encode_spans(memory.get_finished_spans(), redact=True)
    [got] = ExportTraceServiceRequest.FromString(fast).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in got.attributes] == ["b"] and got.dropped_attributes_count == 1
    assert trace.format_trace_id(int.from_bytes(got.trace_id, "big")) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert b"sk-abc" not in fast
