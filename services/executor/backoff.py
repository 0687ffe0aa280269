"""Retries of a node: which failures are retried, and the wait between tries
(exponential, capped, with jitter)."""

from __future__ import annotations

import random

from services.executor.errors import StepError
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


def failure_kind(exc: BaseException) -> str:
    """``timeout``, ``connection``, ``http_<status>`` or ``error``."""
    if isinstance(exc, StepError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    return "error"


def should_retry(policy: RetryPolicy, exc: BaseException) -> bool:
    """Whether ``exc`` is worth another try under ``policy.retry_on``.

    A StepError that is not retryable (templates, config) never is. ``http_5xx``
    matches any ``http_5NN``; ``any`` matches every retryable failure.
    """
    if isinstance(exc, StepError) and not exc.retryable:
        return False
    kind = failure_kind(exc)
    accepted = set(policy.retry_on)
    if "any" in accepted or kind in accepted:
        return True
    return kind.startswith("http_") and f"http_{kind[5]}xx" in accepted
