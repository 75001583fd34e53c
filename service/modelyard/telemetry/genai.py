"""GenAI client spans and metrics for upstream model calls (Dispatch), per the OTel GenAI conventions.

`chat_span(...)` opens a `chat {model}` CLIENT span under the current RPC span and records
gen_ai.client.operation.duration when it closes; `record_usage(...)` puts token usage and cost on
the span and records gen_ai.client.token.usage. The span is started but not made current: a
provider call lives across the yields of an async generator. With telemetry off both are no-ops.
Prompt and completion text go on the span only with telemetry.record_content.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from modelyard.telemetry import rpc
from modelyard.telemetry import semconv as sc
from modelyard.telemetry.setup import Telemetry


class ChatCall:
    """One upstream call: the span (non-recording when telemetry is off) and its metric attributes."""

    def __init__(self, tel: Telemetry | None, span: trace.Span, metric_attrs: dict[str, Any]) -> None:
        self.tel = tel
        self.span = span
        self.metric_attrs = metric_attrs

    def set(self, key: str, value: Any) -> None:
        if self.tel is not None and value not in (None, ""):
            self.span.set_attribute(key, value)

    def finish(self, *, response_model: str | None = None, response_id: str | None = None,
               finish_reasons: Sequence[str] = (), output_messages: Any = None) -> None:
        """The answer's identity; `output_messages` is recorded only with telemetry.record_content."""
        if self.tel is None:
            return
        if response_model:
            self.metric_attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
        self.set(sc.GEN_AI_RESPONSE_MODEL, response_model)
        self.set(sc.GEN_AI_RESPONSE_ID, response_id)
        if finish_reasons:
            self.span.set_attribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons))
        if self.tel.record_content and output_messages is not None:
            self.span.set_attribute(sc.GEN_AI_OUTPUT_MESSAGES, json.dumps(output_messages, default=str))

    def fail(self, error_type: str, message: str = "") -> None:
        """Marks the call failed; `message` must not hold content or credentials (it is cut to 200)."""
        if self.tel is None:
            return
        self.metric_attrs[sc.ERROR_TYPE] = error_type
        self.span.set_attribute(sc.ERROR_TYPE, error_type)
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, message[:200]))


@contextmanager
def chat_span(
    provider: str, request_model: str, *, server_address: str | None = None, server_port: int | None = None,
    attributes: Mapping[str, Any] | None = None, input_messages: Any = None,
) -> Iterator[ChatCall]:
    """A `chat {request_model}` span around one provider call; `attributes` adds e.g. decision ids."""
    tel = rpc.current()
    if tel is None:
        yield ChatCall(None, trace.INVALID_SPAN, {})
        return
    metric_attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT, sc.GEN_AI_PROVIDER_NAME: provider,
        sc.GEN_AI_REQUEST_MODEL: request_model,
    }
    if server_address:
        metric_attrs[sc.SERVER_ADDRESS] = server_address
    if server_port:
        metric_attrs[sc.SERVER_PORT] = server_port
    attrs = {**metric_attrs, sc.GEN_AI_SYSTEM: provider, **(attributes or {})}
    if tel.record_content and input_messages is not None:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(input_messages, default=str)
    span = tel.tracer.start_span(f"{sc.OPERATION_CHAT} {request_model}", kind=trace.SpanKind.CLIENT,
                                 attributes=attrs)
    call = ChatCall(tel, span, metric_attrs)
    start = time.perf_counter()
    try:
        yield call
    except BaseException as exc:
        if sc.ERROR_TYPE not in metric_attrs:
            call.fail(type(exc).__name__)
        raise
    finally:
        tel.metrics.operation_duration.record(time.perf_counter() - start, metric_attrs)
        span.end()


def record_usage(call: ChatCall, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
                 cost_usd: float | None = None) -> None:
    """Token usage and cost of `call`: span attributes plus gen_ai.client.token.usage (input, output)."""
    if call.tel is None:
        return
    span = call.span
    span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
    span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
    span.set_attribute(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cached_input_tokens)
    if cost_usd is not None:
        span.set_attribute(sc.GEN_AI_USAGE_COST, cost_usd)
    usage = call.tel.metrics.token_usage
    usage.record(input_tokens, {**call.metric_attrs, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_INPUT})
    usage.record(output_tokens, {**call.metric_attrs, sc.GEN_AI_TOKEN_TYPE: sc.TOKEN_TYPE_OUTPUT})
