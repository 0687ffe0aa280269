"""Writes of concurrent runs combined into one statement (group commit).

An executor holds many runs at once (``FLOWCRON_EXECUTOR_CONCURRENCY``), and each
ends its steps and itself with a write. Sent one by one, every write costs a round trip,
a socket write and a read on both sides, and a commit; on a small machine those
dominate a trivial run. A :class:`GroupWriter` sends the writes that arrive while one
statement is in flight as the next statement, one row per write: a write alone goes at
once, so nothing waits for a batch to fill, and under load the round trips are shared.

Every row keeps its own fence (run, organization, claimed attempt) and its own answer
(written, or held out by the fence). If the statement fails, each write of the batch is
sent again alone, so one run's bad value fails that run only. A caller that goes away
(its run cancelled) before its write is sent is left out of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 256


class GroupWriter(Generic[Item, Result]):
    """Sends items through ``write`` (a batch in, one result per item out, in order),
    one batch in flight at a time."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: Item) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await answer

    async def _write_all(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                batch = [(i, a) for i, a in self._waiting[: self._max_batch] if not a.done()]
                del self._waiting[: self._max_batch]
                if batch:
                    self.batches += 1
                    await self._send(batch)
        except asyncio.CancelledError:  # the executor is stopping: nobody waits forever
            for _, answer in [*batch, *self._waiting]:
                answer.cancel()
            self._waiting.clear()
            raise
        finally:
            # In the same step as the last look at _waiting: an item submitted after it
            # starts a writer of its own.
            self._writer = None

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001  # answered below, per item
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("group write failed; each alone", writes=len(batch), error=repr(exc))
            for one in batch:
                await self._send([one])
            return
        for (_, answer), result in zip(batch, results, strict=True):
            _settle(answer, result)


def _settle(
    answer: asyncio.Future[Result], result: Result | None = None, *, exc: Exception | None = None
) -> None:
    if answer.done():  # its caller went away
        return
    if exc is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(result)  # type: ignore[arg-type]
