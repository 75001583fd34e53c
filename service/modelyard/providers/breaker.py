"""Circuit breakers and the retry rule per provider endpoint.

A breaker opens after `failures_to_open` consecutive failures, or when at least half of the last
`WINDOW` calls failed (with `MIN_CALLS` seen); after `open_s` it lets one probe through (half-open),
whose success closes it and whose failure opens it again. Retries happen only where the request
cannot have been billed twice: refused connections and 429/503/529 before any response byte.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
WINDOW = 20
MIN_CALLS = 10
ERROR_RATE_TO_OPEN = 0.5


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    base_backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def backoff_s(self, retry: int, retry_after_s: float | None = None) -> float:
        wait = self.base_backoff_s * (2 ** retry)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.max_backoff_s)


class Breaker:
    def __init__(self, failures_to_open: int = 5, open_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._state = CLOSED
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=WINDOW)
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.open_s:
            self._state = HALF_OPEN
            self._probing = False
        return self._state

    def available(self) -> bool:
        """Worth routing to: closed, or half-open with its probe not yet taken."""
        state = self.state
        return state == CLOSED or (state == HALF_OPEN and not self._probing)

    def acquire(self) -> bool:
        """Take permission for one call; in half-open only one probe may be in flight."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        self._recent.append(ok)
        if ok:
            self._consecutive = 0
            if self._state == HALF_OPEN:
                self._state = CLOSED
                self._recent.clear()
            self._probing = False
            return
        self._consecutive += 1
        failures = self._recent.count(False)
        if (self._state == HALF_OPEN or self._consecutive >= self.failures_to_open
                or (len(self._recent) >= MIN_CALLS and failures / len(self._recent) >= ERROR_RATE_TO_OPEN)):
            self._state = OPEN
            self._opened_at = self._clock()
            self._probing = False

    def release(self) -> None:
        """A call that proved nothing about the endpoint (the caller cancelled) frees the probe."""
        self._probing = False


class Breakers:
    """One breaker per endpoint name, created on first use."""

    def __init__(self, failures_to_open: int = 5, open_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._by_endpoint: dict[str, Breaker] = {}

    def configure(self, failures_to_open: int, open_s: float) -> None:
        self.failures_to_open, self.open_s = failures_to_open, open_s
        for b in self._by_endpoint.values():
            b.failures_to_open, b.open_s = failures_to_open, open_s

    def get(self, endpoint: str) -> Breaker:
        b = self._by_endpoint.get(endpoint)
        if b is None:
            b = self._by_endpoint[endpoint] = Breaker(self.failures_to_open, self.open_s, self._clock)
        return b

    def unavailable(self) -> set[str]:
        return {name for name, b in self._by_endpoint.items() if not b.available()}
