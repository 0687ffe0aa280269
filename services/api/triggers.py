"""Manual runs triggered together are written and published together (group commit).

``POST /api/workflows/{id}/runs`` without an ``Idempotency-Key`` hands its run to the
:class:`TriggerBatcher`. While one batch is being written, the triggers that arrive
wait and form the next: one ``INSERT`` for all of them, one pipelined JetStream publish
(:class:`~shared.messaging.pipeline.AckPipeline`) and one ``UPDATE`` marking them
published. A trigger alone is written at once, so nothing waits for a batch to fill;
under load the round trips are shared. The "published" marks commit asynchronously
(:data:`MARKS_POOL`). The outbox guarantees are a single trigger's:
rows are committed before their messages are sent, and a run whose publish fails stays
unpublished for the outbox sweep.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from services.api.queries.runs import COLUMNS, TRIGGER_COLUMNS
from shared.db.pool import Pool
from shared.messaging.pipeline import AckPipeline
from shared.messaging.topology import Topology
from shared.outbox import message_from_row

log = structlog.get_logger(__name__)

MAX_BATCH = 500
WRITERS = 1  # batches in flight at once: one, since 2 or 3 measured slower (smaller batches)

# Only workflows of the caller's organization get a run (the join); the others' rows are
# missing from the result and answer 404. FOR KEY SHARE: a workflow being deleted is
# waited for and then left out (404), instead of failing the batch's foreign key check.
_INSERT = f"""
INSERT INTO workflow_runs AS r
    (id, org_id, workflow_id, workflow_version, trigger, status, input)
SELECT u.id, w.org_id, w.id, w.version, 'manual', 'queued', u.input
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[]) AS u(id, workflow_id, org_id, input)
JOIN workflows w ON w.id = u.workflow_id AND w.org_id = u.org_id
FOR KEY SHARE OF w
RETURNING {COLUMNS}
"""
_MARK_PUBLISHED = f"""
UPDATE workflow_runs AS r SET published_at = now()
WHERE r.id = ANY($1::uuid[])
RETURNING {TRIGGER_COLUMNS}
"""


@dataclass
class _Trigger:
    run_id: uuid.UUID
    org_id: uuid.UUID
    workflow_id: uuid.UUID
    input: dict[str, Any]
    answer: asyncio.Future[asyncpg.Record | None]


class TriggerBatcher:
    def __init__(self, pool: Pool, marks: Pool, pipeline: AckPipeline, topology: Topology) -> None:
        self._pool = pool
        self._marks = marks
        self._pipeline = pipeline
        self._topology = topology
        self._waiting: list[_Trigger] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.batches = 0

    async def trigger(
        self, org_id: uuid.UUID, workflow_id: uuid.UUID, run_input: dict[str, Any]
    ) -> asyncpg.Record | None:
        """A new queued run of the workflow (published when JetStream took it), or None
        when the workflow is not the organization's."""
        answer: asyncio.Future[asyncpg.Record | None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Trigger(uuid.uuid4(), org_id, workflow_id, run_input, answer))
        if len(self._writers) < WRITERS:
            writer = asyncio.create_task(self._write_all())
            self._writers.add(writer)
        # Shielded: a caller that goes away does not take the others' batch with it.
        return await asyncio.shield(answer)

    async def _write_all(self) -> None:
        """Write what waits, batch after batch, until nothing does.

        Pipelined: batch N+1 is inserted while batch N is published and marked (one
        publish in flight, so batches stay in order); a batch's callers are answered
        when it is published."""
        publishing: asyncio.Task[None] | None = None
        try:
            while True:
                if not self._waiting:
                    if publishing is None:
                        return
                    await publishing  # triggers may arrive meanwhile: look again
                    publishing = None
                    continue
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                self.batches += 1
                try:
                    inserted, failed = await self._insert_each(batch)
                except Exception as exc:  # noqa: BLE001  # each caller answers it (a 5xx)
                    inserted, failed = [], dict.fromkeys((t.run_id for t in batch), exc)
                if publishing is not None:
                    await publishing
                publishing = asyncio.create_task(self._publish_and_answer(batch, inserted, failed))
        finally:
            # In the same step as the last look at _waiting: a trigger arriving after it
            # (before a done-callback would have run) must start a writer of its own.
            self._writers.discard(asyncio.current_task())
            if publishing is not None:  # cancelled: the inserted runs still get answers
                await asyncio.gather(publishing, return_exceptions=True)

    async def _publish_and_answer(
        self,
        batch: list[_Trigger],
        inserted: list[asyncpg.Record],
        failed: dict[uuid.UUID, BaseException],
    ) -> None:
        rows = {row["id"]: row for row in inserted}
        try:
            rows.update(await self._publish(inserted))
        except Exception as exc:  # noqa: BLE001  # committed runs: the outbox sends them
            log.warning("run publish or mark failed", runs=len(inserted), error=repr(exc))
        for item in batch:
            _settle(item.answer, rows.get(item.run_id), exc=failed.get(item.run_id))

    async def _insert(self, batch: list[_Trigger]) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._pool.fetch(
            _INSERT,
            [t.run_id for t in batch],
            [t.workflow_id for t in batch],
            [t.org_id for t in batch],
            [t.input for t in batch],
        )
        return rows

    async def _insert_each(
        self, batch: list[_Trigger]
    ) -> tuple[list[asyncpg.Record], dict[uuid.UUID, BaseException]]:
        """Insert the batch; if Postgres refuses it, each trigger alone, so that one
        trigger's bad value fails that trigger only, not others' (other organizations')."""
        try:
            return await self._insert(batch), {}
        except Exception as exc:  # noqa: BLE001
            if len(batch) == 1:
                return [], {batch[0].run_id: exc}
        inserted: list[asyncpg.Record] = []
        failed: dict[uuid.UUID, BaseException] = {}
        for item in batch:
            try:
                inserted += await self._insert([item])
            except Exception as exc:  # noqa: BLE001
                failed[item.run_id] = exc
        return inserted, failed

    async def _publish(self, inserted: list[asyncpg.Record]) -> dict[uuid.UUID, asyncpg.Record]:
        """Publish the inserted runs, mark those JetStream took; their rows as marked."""
        if not inserted:
            return {}
        messages = [message_from_row(row) for row in inserted]
        items = [
            (
                self._topology.run_subject(m.org_id, m.workflow_id),
                m.to_bytes(),
                {"Nats-Msg-Id": str(m.run_id)},
            )
            for m in messages
        ]
        stored = await self._pipeline.publish(items, stream=self._topology.runs_stream)
        published = [m.run_id for m, ok in zip(messages, stored, strict=True) if ok]
        if len(published) < len(messages):
            log.warning("run publish failed", runs=len(messages) - len(published))
        if not published:
            return {}
        return {row["id"]: row for row in await self._marks.fetch(_MARK_PUBLISHED, published)}


def _settle(
    answer: asyncio.Future[asyncpg.Record | None],
    row: asyncpg.Record | None = None,
    *,
    exc: BaseException | None = None,
) -> None:
    if answer.done():
        return
    if exc is not None:
        answer.set_exception(exc)
        answer.exception()  # retrieved: its caller may have gone
    else:
        answer.set_result(row)


TRIGGERS = web.AppKey("triggers", TriggerBatcher)
# Commits without waiting for the WAL flush: a "published" mark lost in a Postgres crash
# costs one more publish by the outbox sweep, which JetStream's dedupe window and the
# executor's conditional claim absorb. The runs themselves are written durably.
MARKS_POOL = web.AppKey("marks_pool", Pool)
