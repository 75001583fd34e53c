"""What a call costs at the catalog's list prices (USD per million tokens)."""

from __future__ import annotations

from typing import Protocol


class Priced(Protocol):
    @property
    def input_per_mtok(self) -> float: ...
    @property
    def cached_input_per_mtok(self) -> float: ...
    @property
    def output_per_mtok(self) -> float: ...


def call_cost_usd(price: Priced, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
    """Cached tokens are a subset of the input tokens and are billed at the cached price."""
    cached = min(cached_input_tokens, input_tokens)
    return (
        (input_tokens - cached) * price.input_per_mtok
        + cached * price.cached_input_per_mtok
        + output_tokens * price.output_per_mtok
    ) / 1_000_000
