"""Anthropic messages (POST {base_url}/messages), streaming and not.

Anthropic's `input_tokens` EXCLUDES prompt-cache reads and writes, so modelyard's input is
input_tokens + cache_read_input_tokens + cache_creation_input_tokens, of which cache reads are
`cached_input_tokens`. Cache writes are priced as uncached input (the catalog has no write price).
Streams carry usage in `message_start` (input side) and `message_delta` (cumulative output).
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
    ProviderHTTPError,
    ProviderProtocolError,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from modelyard.providers.transport import HttpEndpoint, parse_json

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from(u: dict[str, Any], prev: Usage | None = None) -> Usage:
    """Merge a usage object into what is known; stream events each carry only some fields."""
    p = prev or Usage()
    fresh = _int(u.get("input_tokens")) if "input_tokens" in u else None
    read = _int(u.get("cache_read_input_tokens")) if "cache_read_input_tokens" in u else None
    write = _int(u.get("cache_creation_input_tokens")) if "cache_creation_input_tokens" in u else None
    read = p.cached_input_tokens if read is None else read
    write = p.cache_creation_input_tokens if write is None else write
    if fresh is None:
        fresh = p.input_tokens - p.cached_input_tokens - p.cache_creation_input_tokens
    output = _int(u.get("output_tokens")) if "output_tokens" in u else p.output_tokens
    return Usage(input_tokens=fresh + read + write, cached_input_tokens=read, output_tokens=output,
                 cache_creation_input_tokens=write)


def _tool(t: dict[str, Any]) -> dict[str, Any]:
    fn = t.get("function")
    if not isinstance(fn, dict):
        return t  # already in Anthropic's format
    out = {"name": fn.get("name", ""), "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _message(m: Message) -> dict[str, Any]:
    if m.raw_json:
        doc: dict[str, Any] = json.loads(m.raw_json)
        doc.setdefault("role", "user" if m.role == "tool" else m.role)
        return doc
    return {"role": "user" if m.role == "tool" else m.role, "content": m.content}


def body(req: ChatRequest) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in req.messages if m.role == "system" and not m.raw_json)
    b: dict[str, Any] = {
        "model": req.model,
        "max_tokens": req.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": [_message(m) for m in req.messages if m.role != "system" or m.raw_json],
        "stream": req.stream,
    }
    if system:
        b["system"] = system
    if req.temperature is not None:
        b["temperature"] = req.temperature
    if req.tools_json:
        b["tools"] = [_tool(t) for t in json.loads(req.tools_json)]
    return b


def complete(doc: Any) -> list[Chunk]:
    if not isinstance(doc, dict) or doc.get("type") == "error":
        raise ProviderProtocolError(f"provider error: {doc.get('error') if isinstance(doc, dict) else doc!r}")
    out: list[Chunk] = []
    tools = 0
    for block in doc.get("content") or []:
        if block.get("type") == "text" and block.get("text"):
            out.append(TextDelta(block["text"]))
        elif block.get("type") == "tool_use":
            out.append(ToolCallDelta(index=tools, id=block.get("id", ""), name=block.get("name", ""),
                                     arguments_delta=json.dumps(block.get("input") or {})))
            tools += 1
    if isinstance(doc.get("usage"), dict):
        out.append(UsageUpdate(usage_from(doc["usage"])))
    out.append(Finish(doc.get("stop_reason") or "", doc.get("model") or "", doc.get("id") or ""))
    return out


def _stream_error(doc: dict[str, Any]) -> Exception:
    err = doc.get("error") or {}
    kind = err.get("type", "") if isinstance(err, dict) else ""
    text = err.get("message", kind) if isinstance(err, dict) else str(err)
    if kind == "overloaded_error":
        return ProviderHTTPError(f"overloaded (in stream): {text}", status=529)
    return ProviderProtocolError(f"error event in stream: {text}")


class _StreamState:
    """Turns Anthropic stream events into chunks; usage arrives in pieces and is merged."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.stop = self.model = self.rid = ""
        self.done = False

    def on_event(self, doc: dict[str, Any]) -> list[Chunk]:
        kind = doc.get("type")
        if kind == "message_start":
            msg = doc.get("message") or {}
            self.model, self.rid = msg.get("model") or "", msg.get("id") or ""
            self.usage = usage_from(msg.get("usage") or {}, self.usage)
            return [UsageUpdate(self.usage)]
        if kind == "content_block_start":
            block = doc.get("content_block") or {}
            if block.get("type") == "tool_use":
                i = self.tool_index[_int(doc.get("index"))] = len(self.tool_index)
                return [ToolCallDelta(index=i, id=block.get("id", ""), name=block.get("name", ""))]
            return [TextDelta(block["text"])] if block.get("type") == "text" and block.get("text") else []
        if kind == "content_block_delta":
            delta = doc.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta":
                i = self.tool_index.get(_int(doc.get("index")), 0)
                return [ToolCallDelta(index=i, arguments_delta=delta.get("partial_json", ""))]
            return []
        if kind == "message_delta":
            self.stop = (doc.get("delta") or {}).get("stop_reason") or self.stop
            self.usage = usage_from(doc.get("usage") or {}, self.usage)
            return [UsageUpdate(self.usage)]
        if kind == "message_stop":
            self.done = True
        elif kind == "error":
            raise _stream_error(doc)
        return []


async def stream_chunks(events: AsyncIterator[tuple[str, str]]) -> AsyncGenerator[Chunk, None]:
    state = _StreamState()
    async for _event, data in events:
        doc = parse_json(data, "stream event")
        if not isinstance(doc, dict):
            raise ProviderProtocolError("expected a JSON object in the stream")
        for chunk in state.on_event(doc):
            yield chunk
        if state.done:
            break
    if not state.done:
        raise ProviderProtocolError("stream ended before message_stop")
    yield Finish(state.stop, state.model, state.rid)


class AnthropicProvider(HttpEndpoint):
    api = "anthropic"
    path = "/messages"

    def _headers(self, req: ChatRequest) -> dict[str, str]:
        key = self.api_key()
        return {**req.headers, "x-api-key": key, "anthropic-version": API_VERSION,
                "content-type": "application/json"}

    body = staticmethod(body)
    complete = staticmethod(complete)
    stream_chunks = staticmethod(stream_chunks)
