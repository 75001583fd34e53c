"""The providers of the configured endpoints: one pooled httpx client each, created lazily, closed at stop.

Keyed by the endpoint's whole (frozen) config, so a reload that changes an endpoint gets a fresh
client while calls in flight finish on the old one.
"""

from __future__ import annotations

import httpx

from modelyard.config.schema import EndpointConfig
from modelyard.providers.anthropic import AnthropicProvider
from modelyard.providers.base import Provider
from modelyard.providers.breaker import Breakers, RetryPolicy
from modelyard.providers.openai import OpenAIProvider

MAX_CONNECT_S = 10.0
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=60)


class ProviderPool:
    def __init__(self, retry: RetryPolicy | None = None) -> None:
        self.retry = retry or RetryPolicy()
        self.breakers = Breakers()
        self._providers: dict[EndpointConfig, Provider] = {}

    def get(self, ep: EndpointConfig) -> Provider:
        provider = self._providers.get(ep)
        if provider is None:
            # timeout_s bounds the wait for the first byte and every gap between bytes; the caller's
            # deadline bounds the whole call.
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(ep.timeout_s, connect=min(ep.timeout_s, MAX_CONNECT_S)), limits=LIMITS,
            )
            cls = AnthropicProvider if ep.api == "anthropic" else OpenAIProvider
            provider = self._providers[ep] = cls(ep.name, ep.base_url, ep.api_key_env, client, self.retry)
        return provider

    async def aclose(self) -> None:
        providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            await p.aclose()
