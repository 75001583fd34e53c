"""What a call costs at the catalog's list prices (USD per million tokens)."""

from __future__ import annotations

from typing import Protocol


class Priced(Protocol):
    """A price triple; None where the maker publishes no price."""

    @property
    def input_per_mtok(self) -> float | None: ...
    @property
    def cached_input_per_mtok(self) -> float | None: ...
    @property
    def output_per_mtok(self) -> float | None: ...


def call_cost_usd(price: Priced, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
    """Cached tokens are a subset of the input tokens and are billed at the cached price.

    Without a published cached price, cached tokens bill at the input price (no discount assumed).
    Unpriced models cost 0 here; the config keeps them out of routing.
    """
    p_in = price.input_per_mtok or 0.0
    p_cached = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else p_in
    cached = min(cached_input_tokens, input_tokens)
    return ((input_tokens - cached) * p_in + cached * p_cached + output_tokens * (price.output_per_mtok or 0.0)) / 1e6
