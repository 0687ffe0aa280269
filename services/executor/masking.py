"""Masking secret values in what the executor writes (steps, logs, the run's result).

A secret value of at least :data:`MIN_MASKED_CHARS` characters is replaced by ``***``
wherever it appears inside a string, in any JSON value (keys included). Shorter values
are not masked: replacing every ``"a"`` would mangle everything and hide nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MIN_MASKED_CHARS = 3
MASK = "***"


def masker(secrets: Mapping[str, str]) -> Callable[[Any], Any]:
    """A function that masks ``secrets``' values in a JSON value (identity if none)."""
    values = sorted({v for v in secrets.values() if len(v) >= MIN_MASKED_CHARS}, key=len)
    if not values:
        return _identity
    # Longest first, so a secret containing another is masked whole.
    pattern = re.compile("|".join(re.escape(v) for v in reversed(values)))

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(MASK, value)
        if isinstance(value, Mapping):
            return {mask(k): mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mask(v) for v in value]
        return value

    return mask


def _identity(value: Any) -> Any:
    return value
