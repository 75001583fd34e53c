"""OpenAI-compatible chat completions (POST {base_url}/chat/completions), streaming and not.

Usage comes from the provider's own `usage` object: prompt_tokens (which include the cached ones),
prompt_tokens_details.cached_tokens and completion_tokens; streams ask for it with
`stream_options.include_usage` and get it in the last chunk.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from modelyard.providers.base import (
    ChatRequest,
    Chunk,
    Finish,
    Message,
    ProviderProtocolError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from modelyard.providers.transport import HttpEndpoint, parse_json


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from(u: dict[str, Any]) -> Usage:
    details = u.get("prompt_tokens_details") or {}
    prompt = _int(u.get("prompt_tokens"))
    return Usage(input_tokens=prompt, cached_input_tokens=min(prompt, _int(details.get("cached_tokens"))),
                 output_tokens=_int(u.get("completion_tokens")))


def message(m: Message) -> dict[str, Any]:
    if m.raw_json:
        doc: dict[str, Any] = json.loads(m.raw_json)
        doc.setdefault("role", m.role)
        if m.content and "content" not in doc:
            doc["content"] = m.content
        return doc
    return {"role": m.role, "content": m.content}


def body(req: ChatRequest) -> dict[str, Any]:
    b: dict[str, Any] = {"model": req.model, "messages": [message(m) for m in req.messages], "stream": req.stream}
    if req.max_output_tokens:
        b["max_tokens"] = req.max_output_tokens
    if req.temperature is not None:
        b["temperature"] = req.temperature
    if req.tools_json:
        b["tools"] = json.loads(req.tools_json)
    if req.stream:
        b["stream_options"] = {"include_usage": True}
    return b


def _choice(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ProviderProtocolError("expected a JSON object from the provider")
    if doc.get("error"):
        err = doc["error"]
        raise ProviderProtocolError(f"provider error: {err.get('message', err) if isinstance(err, dict) else err}")
    choices = doc.get("choices") or [{}]
    return choices[0] if isinstance(choices[0], dict) else {}


def complete(doc: Any) -> list[Chunk]:
    """The chunks of a non-streaming answer."""
    msg = _choice(doc).get("message") or {}
    out: list[Chunk] = []
    if msg.get("content"):
        out.append(TextDelta(str(msg["content"])))
    for i, tc in enumerate(msg.get("tool_calls") or []):
        fn = tc.get("function") or {}
        out.append(ToolCallDelta(index=i, id=tc.get("id") or "", name=fn.get("name") or "",
                                 arguments_delta=fn.get("arguments") or ""))
    if isinstance(doc.get("usage"), dict):
        out.append(UsageUpdate(usage_from(doc["usage"])))
    out.append(Finish(_choice(doc).get("finish_reason") or "", doc.get("model") or "", doc.get("id") or ""))
    return out


async def stream_chunks(events: AsyncIterator[tuple[str, str]]) -> AsyncGenerator[Chunk, None]:
    finish: str | None = None
    done = False
    model = rid = ""
    async for _event, data in events:
        if data.strip() == "[DONE]":
            done = True
            break
        doc = parse_json(data, "stream chunk")
        choice = _choice(doc)
        model, rid = doc.get("model") or model, doc.get("id") or rid
        if isinstance(doc.get("usage"), dict):
            yield UsageUpdate(usage_from(doc["usage"]))
        delta = choice.get("delta") or {}
        if delta.get("content"):
            yield TextDelta(str(delta["content"]))
        for tc in delta.get("tool_calls") or []:
            fn = tc.get("function") or {}
            yield ToolCallDelta(index=_int(tc.get("index")), id=tc.get("id") or "", name=fn.get("name") or "",
                                arguments_delta=fn.get("arguments") or "")
        finish = choice.get("finish_reason") or finish
    if not done and finish is None:
        raise ProviderProtocolError("stream ended before its last chunk ([DONE])")
    yield Finish(finish or "", model, rid)


class OpenAIProvider(HttpEndpoint):
    api = "openai"
    path = "/chat/completions"

    def _headers(self, req: ChatRequest) -> dict[str, str]:
        key = self.api_key()
        return {**req.headers, "authorization": f"Bearer {key}", "content-type": "application/json"}

    body = staticmethod(body)
    complete = staticmethod(complete)
    stream_chunks = staticmethod(stream_chunks)
