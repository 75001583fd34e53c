"""Adapter from a provider call to the GenAI client span of `telemetry.genai` (`chat {model}`, kind CLIENT).

Dispatch speaks in provider terms (endpoint, `Finish`, `ProviderError`, `Usage`); this module maps
them onto the pinned semconv attributes. Prompt and completion text are never passed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from modelyard.config.schema import EndpointConfig
from modelyard.domain import Decision
from modelyard.providers.base import ChatRequest, Finish, ProviderError, Usage
from modelyard.telemetry import genai
from modelyard.telemetry import semconv as sc


class ChatSpan:
    def __init__(self, call: genai.ChatCall) -> None:
        self._call = call

    def finish(self, f: Finish) -> None:
        self._call.finish(response_model=f.response_model or None, response_id=f.response_id or None,
                          finish_reasons=[f.reason] if f.reason else ())

    def fail(self, exc: ProviderError) -> None:
        self._call.fail(exc.kind, str(exc))

    def usage(self, u: Usage, cost_usd: float) -> None:
        genai.record_usage(self._call, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                           cached_input_tokens=u.cached_input_tokens, cost_usd=cost_usd)


@contextmanager
def chat_span(ep: EndpointConfig, req: ChatRequest, decision: Decision) -> Iterator[ChatSpan]:
    url = urlsplit(ep.base_url)
    attrs: dict[str, Any] = {sc.MY_MODEL: decision.model.model_id, sc.MY_DECISION_ID: decision.decision_id}
    if req.max_output_tokens:
        attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] = req.max_output_tokens
    if req.temperature is not None:
        attrs[sc.GEN_AI_REQUEST_TEMPERATURE] = req.temperature
    with genai.chat_span(decision.model.provider, req.model, server_address=url.hostname,
                         server_port=url.port, attributes=attrs) as call:
        yield ChatSpan(call)
