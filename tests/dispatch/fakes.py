"""Scripted fake providers on loopback speaking the OpenAI or the Anthropic wire format (aiohttp).

Each request takes the next `Step` of the script (the last step repeats). Usage dicts are given in
the provider's own format, so tests pin exactly what the provider would have said.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Step:
    kind: str = "ok"  # ok | status | malformed | cut | hang
    text: str = "Hello from the fake."
    usage: dict[str, Any] | None = None
    status: int = 200
    delay: float = 0.0  # before the response starts
    gap: float = 0.0  # between streamed pieces
    pieces: int = 3
    cut_after: int = 1  # pieces sent before a "cut"
    tool: dict[str, Any] | None = None  # {"id", "name", "arguments": json string}
    headers: dict[str, str] = field(default_factory=dict)


def _split(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


class FakeProvider:
    def __init__(self, api: str, script: list[Step] | None = None) -> None:
        self.api = api
        self.script = list(script or [Step()])
        self.requests: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=f"fake-{api}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def set_script(self, *steps: Step) -> None:
        self.script = list(steps)
        self.requests.clear()

    def start(self) -> FakeProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/messages", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        step = self.script[min(len(self.requests), len(self.script) - 1)]
        self.requests.append({"path": request.path, "headers": dict(request.headers), "body": body})
        await asyncio.sleep(step.delay)
        if step.kind == "hang":
            await asyncio.sleep(3600)
        if step.kind == "status":
            return web.json_response({"error": {"message": f"scripted {step.status}", "type": "fake"}},
                                     status=step.status, headers=step.headers)
        if not body.get("stream"):
            if step.kind == "malformed":
                return web.Response(text='{"choices": [{"message": ', content_type="application/json")
            return web.json_response(self._whole(body, step))
        return await self._stream(request, body, step)

    # whole responses ---------------------------------------------------------------------------
    def _whole(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        if self.api == "anthropic":
            content: list[dict[str, Any]] = [{"type": "text", "text": step.text}]
            if step.tool:
                content.append({"type": "tool_use", "id": step.tool["id"], "name": step.tool["name"],
                                "input": json.loads(step.tool["arguments"])})
            return {"id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"],
                    "content": content, "stop_reason": "end_turn", "usage": step.usage or {}}
        msg: dict[str, Any] = {"role": "assistant", "content": step.text}
        if step.tool:
            msg["tool_calls"] = [{"id": step.tool["id"], "type": "function",
                                  "function": {"name": step.tool["name"], "arguments": step.tool["arguments"]}}]
        return {"id": "chatcmpl-fake", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "usage": step.usage or {}}

    # streams -----------------------------------------------------------------------------------
    def _events(self, body: dict[str, Any], step: Step) -> list[str]:
        pieces = _split(step.text, step.pieces)
        if self.api == "anthropic":
            return self._anthropic_events(body, step, pieces)
        model = body["model"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return json.dumps({"id": "chatcmpl-fake", "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        out = [chunk({"content": p}) for p in pieces]
        if step.tool:
            t = step.tool
            out.append(chunk({"tool_calls": [{"index": 0, "id": t["id"], "type": "function",
                                              "function": {"name": t["name"], "arguments": ""}}]}))
            out.extend(chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})
                       for a in _split(t["arguments"], 2))
        out.append(chunk({}, "stop"))
        if step.usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            out.append(json.dumps({"id": "chatcmpl-fake", "model": model, "choices": [], "usage": step.usage}))
        out.append("[DONE]")
        return [f"data: {e}\n\n" for e in out]

    def _anthropic_events(self, body: dict[str, Any], step: Step, pieces: list[str]) -> list[str]:
        usage = dict(step.usage or {})
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
        ev: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": body["model"], "content": [],
                "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        ]
        ev += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        if step.tool:
            t = step.tool
            ev.append(("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": t["id"], "name": t["name"], "input": {}}}))
            ev += [("content_block_delta", {"type": "content_block_delta", "index": 1,
                                            "delta": {"type": "input_json_delta", "partial_json": a}})
                   for a in _split(t["arguments"], 2)]
            ev.append(("content_block_stop", {"type": "content_block_stop", "index": 1}))
        ev.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                     "usage": {"output_tokens": usage.get("output_tokens", 0)}}))
        ev.append(("message_stop", {"type": "message_stop"}))
        return [f"event: {name}\ndata: {json.dumps(doc)}\n\n" for name, doc in ev]

    async def _stream(self, request: web.Request, body: dict[str, Any], step: Step) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        events = self._events(body, step)
        if step.kind == "malformed":
            events = ["data: {not json\n\n", *events]  # before anything reaches the client
        content_seen = 0
        for e in events:
            is_content = '"content": "' in e or "text_delta" in e
            if step.kind == "cut" and is_content and content_seen >= step.cut_after:
                assert request.transport is not None
                request.transport.close()  # the connection drops mid-stream
                return resp
            await resp.write(e.encode())
            if is_content:
                content_seen += 1
                await asyncio.sleep(step.gap)
        await resp.write_eof()
        return resp
