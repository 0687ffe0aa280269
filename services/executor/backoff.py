"""Waits between retries of a node: exponential, capped, with jitter."""

from __future__ import annotations

import random

from shared.models.graph import RetryPolicy

_RNG = random.Random()  # noqa: S311  # jitter, not cryptography


def retry_delay(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1-based).

    The base is ``backoff_s × 2^(failures-1)`` capped by ``max_backoff_s``; the wait is
    drawn between half the base and the base ("equal jitter"), so replicas retrying
    the same remote service do not all come back at the same instant.
    """
    base = min(policy.max_backoff_s, policy.backoff_s * 2.0 ** max(0, failures - 1))
    draw: float = (rng or _RNG).random()
    return base / 2 + draw * base / 2
