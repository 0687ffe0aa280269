"""The garbage collector tuned for a long-running service."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move what start-up allocated (modules, models, compiled templates) out of the
    collector's reach and collect the young generation less often.

    Full collections over the start-up heap were the API's longest pauses under load,
    and the young-generation collections about 7% of an executor's CPU at 1,000 runs/s
    (py-spy, ``bench/executor.py``). Cyclic garbage is still collected, only in larger
    steps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
