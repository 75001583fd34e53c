"""The simulated provider's HTTP server: OpenAI-compatible POST /v1/chat/completions over aiohttp.

Streams SSE (with `stream_options.include_usage` honoured: usage in the last chunk) or answers one
JSON document; the task of an outcome table is named by the `x-modelyard-task` header or by
`metadata.task` in the body. Any bearer key is accepted; it is never logged.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from modelyard.simulate.models import Answer, Simulator

STREAM_PIECES = 8


def _prompt(body: dict[str, Any]) -> str:
    parts = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else ""
        parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def _usage(a: Answer) -> dict[str, Any]:
    return {"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens,
            "total_tokens": a.input_tokens + a.output_tokens,
            "prompt_tokens_details": {"cached_tokens": a.cached_input_tokens}}


def _chunk(rid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _pieces(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)]


async def _stream(request: web.Request, a: Answer, model: str, include_usage: bool) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                                       "x-modelyard-simulated": a.source})
    await resp.prepare(request)
    rid = f"chatcmpl-sim-{uuid.uuid4().hex[:12]}"

    async def send(doc: Any) -> None:
        await resp.write(f"data: {json.dumps(doc) if not isinstance(doc, str) else doc}\n\n".encode())

    await asyncio.sleep(a.first_token_s)
    await send(_chunk(rid, model, {"role": "assistant", "content": ""}))
    pieces = _pieces(a.text, STREAM_PIECES)
    gap = (a.total_s - a.first_token_s) / max(1, len(pieces))
    for i, piece in enumerate(pieces):
        if i:
            await asyncio.sleep(gap)
        await send(_chunk(rid, model, {"content": piece}))
    await send(_chunk(rid, model, {}, "stop"))
    if include_usage:
        await send({"id": rid, "object": "chat.completion.chunk", "model": model, "choices": [], "usage": _usage(a)})
    await send("[DONE]")
    await resp.write_eof()
    return resp


def build_app(sim: Simulator) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": {"message": "body must be JSON with a 'model'",
                                                "type": "invalid_request_error"}}, status=400)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        task = request.headers.get("x-modelyard-task") or str(meta.get("task", ""))
        a = sim.answer(model, _prompt(body), task)
        if a.status:
            kind = "rate_limit_error" if a.status == 429 else "server_error"
            return web.json_response({"error": {"message": a.text, "type": kind}}, status=a.status)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return await _stream(request, a, model, include)
        await asyncio.sleep(a.total_s)
        return web.json_response({
            "id": f"chatcmpl-sim-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": _usage(a),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text}, "finish_reason": "stop"}],
        }, headers={"x-modelyard-simulated": a.source})

    async def models(_: web.Request) -> web.Response:
        names = sorted({*sim.profiles, *(m for _, m in sim.table)})
        return web.json_response({"object": "list", "data": [{"id": n, "object": "model"} for n in names]})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", health)
    return app


async def start(sim: Simulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port (port 0 picks one)."""
    runner = web.AppRunner(build_app(sim), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port
