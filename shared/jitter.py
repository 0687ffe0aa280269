"""Deterministic jitter: a fire's delay is derived from its schedule and fire time.

The same (schedule, fire time) always gets the same delay, so a preview shows the real
instants and two schedulers agree on them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def jitter_delay(schedule_id: object, fire_time: datetime, jitter_s: int) -> timedelta:
    """A delay in [0, jitter_s) seconds, to the millisecond; zero when jitter_s is 0."""
    if jitter_s <= 0:
        return timedelta(0)
    seed = f"{schedule_id}|{fire_time.timestamp():.6f}".encode()
    value = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "big")
    return timedelta(milliseconds=value % (jitter_s * 1000))
