"""Provider pieces without a server: usage mapping per wire format, pricing of it, and the breaker."""

from __future__ import annotations

import pytest

from modelyard.pricing import call_cost_usd
from modelyard.providers import Usage, anthropic, openai
from modelyard.providers.breaker import Breaker, RetryPolicy


class Price:
    input_per_mtok, cached_input_per_mtok, output_per_mtok = 3.0, 0.3, 15.0


@pytest.mark.parametrize(("fmt", "raw", "want"), [
    ("openai", {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}},
     Usage(1000, 400, 100)),
    ("openai", {"prompt_tokens": 10, "completion_tokens": 2}, Usage(10, 0, 2)),
    ("openai", {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}}, Usage(10, 10, 0)),
    ("anthropic", {"input_tokens": 200, "cache_read_input_tokens": 700, "cache_creation_input_tokens": 100,
                   "output_tokens": 50}, Usage(1000, 700, 50, 100)),
    ("anthropic", {"input_tokens": 5, "output_tokens": 1}, Usage(5, 0, 1, 0)),
])
def test_usage_mapping(fmt: str, raw: dict, want: Usage) -> None:
    got = openai.usage_from(raw) if fmt == "openai" else anthropic.usage_from(raw)
    assert got == want


def test_anthropic_stream_usage_merges_start_and_delta() -> None:
    start = anthropic.usage_from({"input_tokens": 200, "cache_read_input_tokens": 700,
                                  "cache_creation_input_tokens": 100, "output_tokens": 1})
    final = anthropic.usage_from({"output_tokens": 50}, start)
    assert final == Usage(1000, 700, 50, 100)
    # cache writes are priced as uncached input: (300 x 3 + 700 x 0.3 + 50 x 15) / 1e6
    assert call_cost_usd(Price(), final.input_tokens, final.cached_input_tokens, final.output_tokens) == \
        pytest.approx(1860e-6)


def test_breaker_opens_on_consecutive_failures_and_error_rate() -> None:
    now = [0.0]
    b = Breaker(failures_to_open=3, open_s=10, clock=lambda: now[0])
    b.record(False), b.record(False)
    assert b.state == "closed"
    b.record(False)
    assert b.state == "open" and not b.acquire()
    now[0] = 10.0
    assert b.state == "half_open" and b.acquire() and not b.acquire()
    b.record(False)
    assert b.state == "open"
    now[0] = 20.0
    assert b.acquire()
    b.record(True)
    assert b.state == "closed"
    rate = Breaker(failures_to_open=100, open_s=10, clock=lambda: now[0])
    for i in range(10):
        rate.record(i % 2 == 0)  # half the calls fail, never many in a row
    assert rate.state == "open"


def test_retry_backoff_is_bounded_and_honours_retry_after() -> None:
    p = RetryPolicy(max_retries=2, base_backoff_s=0.05, max_backoff_s=1.0)
    assert p.backoff_s(0) == 0.05 and p.backoff_s(1) == 0.1
    assert p.backoff_s(0, retry_after_s=0.5) == 0.5 and p.backoff_s(0, retry_after_s=30) == 1.0
