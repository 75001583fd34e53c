"""HTTP plumbing shared by the providers: POST with safe retries, SSE lines, and error mapping.

httpx exceptions become `ProviderError`s here and nowhere else. Error messages carry the status and
the provider's own error text, never request headers (they hold the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import httpx

from modelyard.providers.base import (
    ChatRequest,
    Chunk,
    MissingKey,
    ProviderConnectError,
    ProviderError,
    ProviderHTTPError,
    ProviderProtocolError,
    ProviderTimeout,
    is_retryable_status,
)
from modelyard.providers.breaker import RetryPolicy

MAX_ERROR_BODY = 4096
MAX_ERROR_TEXT = 300


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
        err = doc.get("error", doc) if isinstance(doc, dict) else doc
        text = err.get("message", "") if isinstance(err, dict) else str(err)
    except ValueError:
        text = body.decode("utf-8", "replace")
    return " ".join(str(text).split())[:MAX_ERROR_TEXT]


def _retry_after(resp: httpx.Response) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(resp.headers.get("retry-after", ""))
    return None


async def post(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], body: dict[str, Any], *,
    retry: RetryPolicy, deadline: float | None = None,
) -> httpx.Response:
    """Send and return a 2xx response whose body is still unread (the caller must close it).

    Retries only when nothing can have been billed: the connection was refused, or the provider
    answered 429/503/529 before any response body. `deadline` is a `time.monotonic()` instant.
    """
    tries = 0
    while True:
        try:
            resp = await client.send(client.build_request("POST", url, headers=dict(headers), json=body), stream=True)
        except httpx.ConnectError as exc:
            err: ProviderError = ProviderConnectError(f"cannot connect to {url}: {type(exc).__name__}")
            wait = retry.backoff_s(tries)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"no answer from {url} in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ProviderConnectError(f"request to {url} failed: {type(exc).__name__}") from exc
        else:
            if resp.is_success:
                return resp
            raw = await _read_error_body(resp)
            err = ProviderHTTPError(f"HTTP {resp.status_code} from {url}: {_error_text(raw)}",
                                    status=resp.status_code)
            if not is_retryable_status(resp.status_code):
                raise err
            wait = retry.backoff_s(tries, _retry_after(resp))
        tries += 1
        if tries > retry.max_retries or (deadline is not None and time.monotonic() + wait >= deadline):
            raise err
        await asyncio.sleep(wait)


async def _read_error_body(resp: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in resp.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    finally:
        await resp.aclose()
    return b"".join(chunks)[:MAX_ERROR_BODY]


async def read_json(resp: httpx.Response) -> Any:
    try:
        raw = await resp.aread()
    except httpx.TimeoutException as exc:
        raise ProviderTimeout("the provider stopped answering mid-response") from exc
    except httpx.HTTPError as exc:
        raise ProviderProtocolError(f"response body cut short: {type(exc).__name__}") from exc
    return parse_json(raw, "response body")


def parse_json(raw: str | bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ProviderProtocolError(f"malformed JSON in {what}: {str(raw)[:80]!r}") from exc


async def sse(resp: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-events body."""
    event, data = "", list[str]()
    try:
        async for line in resp.aiter_lines():
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "", list[str]()
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
    except httpx.TimeoutException as exc:
        raise ProviderTimeout("the provider stopped streaming (read timeout)") from exc
    except httpx.HTTPError as exc:
        raise ProviderProtocolError(f"stream cut short: {type(exc).__name__}") from exc
    if data:
        yield event, "\n".join(data)


class HttpEndpoint:
    """What both wire formats share: the endpoint's URL, pooled client, retry policy, key lookup and
    the call itself. A format supplies its path, headers and three codecs: the request body, the
    chunks of a whole answer, and the chunks of an SSE stream."""

    api = ""
    path = ""

    def __init__(self, name: str, base_url: str, api_key_env: str, client: httpx.AsyncClient,
                 retry: RetryPolicy | None = None) -> None:
        self.name = name
        self.url = base_url.rstrip("/") + self.path
        self.api_key_env = api_key_env
        self.client = client
        self.retry = retry or RetryPolicy()

    def _headers(self, req: ChatRequest) -> dict[str, str]:
        raise NotImplementedError

    def body(self, req: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, doc: Any) -> list[Chunk]:
        raise NotImplementedError

    def stream_chunks(self, events: AsyncIterator[tuple[str, str]]) -> AsyncIterator[Chunk]:
        raise NotImplementedError

    async def chat(self, req: ChatRequest) -> AsyncGenerator[Chunk, None]:
        resp = await post(self.client, self.url, self._headers(req), self.body(req), retry=self.retry,
                          deadline=req.deadline)
        try:
            if req.stream:
                async for chunk in self.stream_chunks(sse(resp)):
                    yield chunk
            else:
                for chunk in self.complete(await read_json(resp)):
                    yield chunk
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    def api_key(self) -> str:
        """The provider key from the environment; its value never enters a message or a log line."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise MissingKey(f"endpoint '{self.name}': environment variable {self.api_key_env} is not set")
        return key

