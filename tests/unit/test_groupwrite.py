"""GroupWriter: which writes share a statement, and what each caller is told when the
statement fails (the SQL itself is tested against Postgres in
tests/integration/test_executor_group_writes.py)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.executor.groupwrite import GroupWriter


class Recorder:
    """A write that records its batches; ``fail`` decides per batch what it raises."""

    def __init__(self, fail: type[BaseException] | None = None, *, when_over: int = 1) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.fail = fail
        self.when_over = when_over
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[tuple[str, int]]) -> list[int]:
        self.batches.append(items)
        await self.gate.wait()
        if self.fail is not None and len(items) > self.when_over:
            raise self.fail("refused")
        return [value * 10 for _, value in items]


def writer(write: Recorder) -> GroupWriter[tuple[str, int], int]:
    return GroupWriter(write, key=lambda item: item[0], max_batch=3)


async def test_writes_arriving_during_a_statement_form_the_next_one() -> None:
    write = Recorder()
    write.gate.clear()
    group = writer(write)
    first = asyncio.create_task(group.submit(("a", 1)))
    await asyncio.sleep(0.01)  # in flight, alone
    rest = [asyncio.create_task(group.submit((k, n))) for n, k in enumerate("bcdeb", start=2)]
    await asyncio.sleep(0.01)
    write.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    # At most three a batch, and the second "b" waits for a batch without the first.
    assert write.batches == [
        [("a", 1)],
        [("b", 2), ("c", 3), ("d", 4)],
        [("e", 5), ("b", 6)],
    ]


async def test_a_refused_statement_is_sent_again_write_by_write() -> None:
    write = Recorder(asyncpg.exceptions.DataError)  # Postgres refused: nothing was written
    write.gate.clear()
    group = writer(write)
    first = asyncio.create_task(group.submit(("a", 1)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(group.submit((k, n))) for n, k in enumerate("bc", start=2)]
    await asyncio.sleep(0.01)
    write.gate.set()
    assert [await first, *await asyncio.gather(*rest)] == [10, 20, 30]
    assert write.batches[1:] == [[("b", 2), ("c", 3)], [("b", 2)], [("c", 3)]]


@pytest.mark.parametrize(
    "lost", [asyncpg.exceptions.ConnectionDoesNotExistError, ConnectionResetError, TimeoutError]
)
async def test_a_lost_connection_fails_every_write_of_the_batch_once(
    lost: type[Exception],
) -> None:
    # The statement may have committed before the connection went: sending its writes
    # again would claim claimed runs (and drop their messages) or double log lines.
    write = Recorder(lost)
    write.gate.clear()
    group = writer(write)
    first = asyncio.create_task(group.submit(("a", 1)))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(group.submit((k, n))) for n, k in enumerate("bc", start=2)]
    await asyncio.sleep(0.01)
    write.gate.set()
    assert await first == 10
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(r, lost) for r in results)
    assert len(write.batches) == 2  # not retried


async def test_a_fault_in_the_writer_answers_every_caller_and_the_next_write_works() -> None:
    async def wrong(items: list[tuple[str, int]]) -> list[int]:
        return []  # one result short: zip(strict=True) raises in the writer

    group: GroupWriter[tuple[str, int], int] = GroupWriter(wrong, key=lambda item: item[0])
    with pytest.raises(ValueError):
        await asyncio.wait_for(group.submit(("a", 1)), timeout=5)

    async def right(items: list[tuple[str, int]]) -> list[int]:
        return [value for _, value in items]

    group._write = right  # the same writer, now healthy
    assert await asyncio.wait_for(group.submit(("a", 2)), timeout=5) == 2


async def test_a_caller_that_went_away_is_left_out() -> None:
    write = Recorder()
    write.gate.clear()
    group = writer(write)
    first = asyncio.create_task(group.submit(("a", 1)))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(group.submit(("b", 2)))
    kept = asyncio.create_task(group.submit(("c", 3)))
    await asyncio.sleep(0.01)
    gone.cancel()
    write.gate.set()
    assert (await first, await kept) == (10, 30)
    assert write.batches == [[("a", 1)], [("c", 3)]]
