"""Publishing many JetStream messages without a round trip each.

``js.publish`` waits for each acknowledgement in turn (one future and one timer per
message); a scheduler firing thousands of schedules at once spends its time there.
:class:`AckPipeline` writes a whole batch to the connection, each message with its own
reply subject under one inbox, and collects the acknowledgements as they stream back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

Outgoing = tuple[str, bytes, dict[str, str]]  # subject, payload, headers


@dataclass
class _Batch:
    size: int
    results: list[bool | None] = field(default_factory=list)
    remaining: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.remaining = self.size


class AckPipeline:
    """Publishes batches to JetStream and waits for all their acknowledgements at once."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._sub: Subscription | None = None
        self._batches: dict[str, _Batch] = {}
        self._counter = 0

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._prefix}.>", cb=self._on_ack)

    async def close(self) -> None:
        if self._sub is not None and not self._nc.is_closed:
            await self._sub.unsubscribe()
        self._sub = None

    async def publish(
        self, items: Sequence[Outgoing], *, stream: str, timeout: float = 10.0
    ) -> list[bool]:
        """Publish ``items``; True for each one JetStream stored (or had already)."""
        if not items:
            return []
        self._counter += 1
        key = str(self._counter)
        batch = _Batch(len(items))
        self._batches[key] = batch
        try:
            for index, (subject, payload, headers) in enumerate(items):
                await self._nc.publish(
                    subject,
                    payload,
                    reply=f"{self._prefix}.{key}.{index}",
                    headers={**headers, "Nats-Expected-Stream": stream},
                )
            await self._nc.flush(timeout=max(1, int(timeout)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(batch.done.wait(), timeout)
        finally:
            del self._batches[key]
        return [result is True for result in batch.results]

    async def _on_ack(self, msg: Msg) -> None:
        _, key, index = msg.subject.rsplit(".", 2)
        batch = self._batches.get(key)
        if batch is None or batch.results[int(index)] is not None:
            return  # a late answer for a batch that gave up waiting
        # An ack is {"stream":…,"seq":…}; an error {"error":…}; "no responders" is empty.
        batch.results[int(index)] = bool(msg.data) and b'"error"' not in msg.data
        batch.remaining -= 1
        if batch.remaining == 0:
            batch.done.set()


@asynccontextmanager
async def ack_pipeline(nc: Client) -> AsyncIterator[AckPipeline]:
    pipeline = AckPipeline(nc)
    await pipeline.start()
    try:
        yield pipeline
    finally:
        await pipeline.close()
