"""A token bucket for "runs started per second" (``FLOWCRON_EXECUTOR_RATE_LIMIT``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """``rate`` tokens per second, holding at most ``max(1, rate)`` (a one-second burst).

    A rate of 0 means no limit: :meth:`available` is then always ``limit``.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self._capacity
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def available(self, limit: int) -> int:
        """How many starts are allowed now, at most ``limit``."""
        if self._rate <= 0:
            return limit
        self._refill()
        return min(limit, int(self._tokens))

    def take(self, count: int) -> None:
        if self._rate > 0:
            self._refill()
            self._tokens -= count

    def wait_s(self) -> float:
        """Seconds until one more start is allowed (0 when one is allowed now)."""
        if self._rate <= 0:
            return 0.0
        self._refill()
        return max(0.0, (1 - self._tokens) / self._rate)
