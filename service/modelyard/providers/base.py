"""The `Provider` seam: one chat call to one endpoint as a stream of chunks, plus the errors it raises.

Every provider (OpenAI-compatible, Anthropic, the simulator behind the OpenAI one) streams the same
chunk types whether or not the upstream call streams, so Dispatch has one code path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str = ""
    raw_json: str = ""  # provider-format JSON object; when set it is sent as the whole message


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str  # the provider's own model name (ModelConfig.upstream_model)
    messages: tuple[Message, ...]
    max_output_tokens: int = 0
    temperature: float | None = None
    tools_json: str = ""
    stream: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)  # x-modelyard-* tags only
    deadline: float | None = None  # time.monotonic() instant; retries stop before it


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens as modelyard prices them: `cached_input_tokens` is a subset of `input_tokens`."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    # Anthropic only: prompt-cache writes. Counted in input_tokens and priced as uncached input
    # (the catalog has no cache-write price; Anthropic bills writes at 1.25x, so this undercounts).
    cache_creation_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """The provider's usage so far (cumulative, not a delta)."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str = ""
    response_model: str = ""
    response_id: str = ""


Chunk = TextDelta | ToolCallDelta | UsageUpdate | Finish


class Provider(Protocol):
    """One endpoint. `chat` yields chunks and ends after a `Finish`, or raises `ProviderError`."""

    name: str
    api: str

    def chat(self, req: ChatRequest) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None: ...


# errors -------------------------------------------------------------------------------------

class ProviderError(Exception):
    """A provider call failed. `fallback` says whether another model may succeed where this failed."""

    kind = "provider_error"  # the `error.type` span attribute
    fallback = True

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ProviderHTTPError(ProviderError):
    """A non-2xx answer. 400/413/422 are the request's own fault: no other model will do better."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status)
        self.kind = str(status)
        self.fallback = status not in (400, 413, 422)


class ProviderConnectError(ProviderError):
    kind = "connect_error"


class ProviderTimeout(ProviderError):
    kind = "timeout"


class ProviderProtocolError(ProviderError):
    """Malformed JSON, an SSE stream cut before its end, or an error event inside the stream."""

    kind = "protocol_error"


class CircuitOpen(ProviderError):
    kind = "circuit_open"


class MissingKey(ProviderError):
    """The endpoint's key variable is unset; the message names the variable, never a value."""

    kind = "missing_key"


def is_retryable_status(status: int) -> bool:
    """Statuses that mean the request was refused before any work was billed."""
    return status in (429, 503, 529)
