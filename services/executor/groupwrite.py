"""Writes of concurrent runs combined into one statement (group commit).

An executor holds many runs at once (``FLOWCRON_EXECUTOR_CONCURRENCY``), and each
ends its steps and itself with a write. Sent one by one, every write costs a round trip,
a socket write and a read on both sides, and a commit; on a small machine those
dominate a trivial run. A :class:`GroupWriter` sends the writes that arrive while one
statement is in flight as the next statement, one row per write: a write alone goes at
once, so nothing waits for a batch to fill, and under load the round trips are shared.

Every row keeps its own fence (run, organization, claimed attempt) and its own answer
(written, or held out by the fence). If Postgres refuses the statement, each write of
the batch is sent again alone, so one run's bad value fails that run only; if the
connection is lost instead, the statement may have committed, and every write of the
batch fails with the error (the handler hands the message back; a redelivery resumes
the run). A caller that goes away (its run cancelled) before its write is sent is left
out of the batch.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 256


def certainly_aborted(exc: BaseException) -> bool:
    """Whether the statement surely wrote nothing: Postgres answered with an error
    (a bad value, a deadlock, a lock timeout). A lost connection or a timeout may come
    after the commit, so the batch's writes must not be sent again as if undone."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    return not str(exc.sqlstate or "").startswith("08")  # connection exceptions


class GroupWriter(Generic[Item, Result]):
    """Sends items through ``write`` (a batch in, one result per item out, in order),
    one batch in flight at a time. Items with the same ``key`` never share a batch: the
    later waits for the next one, so each sees the other's effect (a redelivery's claim
    after the first delivery's, a step's end after its earlier end)."""

    def __init__(
        self,
        write: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        key: Callable[[Item], Hashable],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self._key = key
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: Item) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if self._writer is None or self._writer.done():
            # A context of its own: the writer serves every run, not the first caller's.
            self._writer = asyncio.create_task(self._write_all(), context=contextvars.Context())
        return await answer

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        later: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for waiting in self._waiting:
            item, answer = waiting
            if answer.done():  # its caller went away before it was sent
                continue
            key = self._key(item)
            if key in keys or len(batch) >= self._max_batch:
                later.append(waiting)
                continue
            keys.add(key)
            batch.append(waiting)
        self._waiting = later
        return batch

    async def _write_all(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                if batch:
                    self.batches += 1
                    await self._send(batch)
        except BaseException as exc:  # stopping, or a fault here: nobody waits forever
            for _, answer in [*batch, *self._waiting]:
                if isinstance(exc, asyncio.CancelledError):
                    answer.cancel()
                else:
                    _settle(answer, exc=exc)
            self._waiting.clear()
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.exception("group writer failed")
        finally:
            # In the same step as the last look at _waiting: an item submitted after it
            # starts a writer of its own.
            self._writer = None

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001  # answered below, per item
            if len(batch) == 1 or not certainly_aborted(exc):
                for _, answer in batch:
                    _settle(answer, exc=exc)
                return
            log.warning("group write failed; each alone", writes=len(batch), error=repr(exc))
            for one in batch:
                await self._send([one])
            return
        for (_, answer), result in zip(batch, results, strict=True):
            _settle(answer, result)


def _settle(
    answer: asyncio.Future[Result],
    result: Result | None = None,
    *,
    exc: BaseException | None = None,
) -> None:
    if answer.done():  # its caller went away
        return
    if exc is not None:
        answer.set_exception(exc)
    else:
        answer.set_result(result)  # type: ignore[arg-type]
