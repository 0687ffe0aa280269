"""Publishing run messages from run rows (the transactional outbox).

A run row is committed first, then its message is published with
``Nats-Msg-Id`` = run id, then the row is marked published. A crash in between leaves
a ``queued`` row with no ``published_at``, which the scheduler's outbox sweep publishes
again; JetStream drops the duplicate inside its window and the executor's conditional
claim drops it after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import structlog
from nats.js import JetStreamContext

from shared.db.pool import Pool
from shared.messaging.pipeline import AckPipeline
from shared.messaging.topology import Topology
from shared.models.messages import RunMessage, RunPointer

AnyRunMessage = RunMessage | RunPointer

log = structlog.get_logger(__name__)

# Columns that make a RunMessage, for SELECT ... RETURNING lists.
RUN_MESSAGE_COLUMNS = (
    "id AS run_id, org_id, workflow_id, workflow_version, trigger, schedule_id, scheduled_for"
)


def message_from_row(row: asyncpg.Record | dict[str, Any]) -> RunMessage:
    """The message of a run row, selected with ``run_id`` or with the table's ``id``."""
    data = dict(row)
    if "run_id" not in data:
        data["run_id"] = data["id"]
    return RunMessage.model_validate(data)


async def publish_runs(
    js: JetStreamContext,
    topology: Topology,
    messages: Sequence[AnyRunMessage],
    *,
    concurrency: int = 256,
    pipeline: AckPipeline | None = None,
) -> list[uuid.UUID]:
    """Publish each message, waiting for JetStream's ack; return the ids acked.

    With a ``pipeline`` the batch is written at once and the acks collected together
    (the scheduler's path); without, messages are published ``concurrency`` at a time.
    A message whose publish fails is logged and left out of the result, so its row
    stays unpublished and the outbox sweep tries again.
    """
    if pipeline is not None:
        items = [
            (
                topology.run_subject(m.org_id, m.workflow_id),
                m.to_bytes(),
                {"Nats-Msg-Id": str(m.run_id)},
            )
            for m in messages
        ]
        stored = await pipeline.publish(items, stream=topology.runs_stream)
        failed = stored.count(False)
        if failed:
            log.warning("run publish failed", runs=failed)
        return [m.run_id for m, ok in zip(messages, stored, strict=True) if ok]
    gate = asyncio.Semaphore(concurrency)

    async def one(message: AnyRunMessage) -> uuid.UUID | None:
        async with gate:
            try:
                await js.publish(
                    topology.run_subject(message.org_id, message.workflow_id),
                    message.to_bytes(),
                    stream=topology.runs_stream,
                    headers={"Nats-Msg-Id": str(message.run_id)},
                )
            except Exception as exc:  # noqa: BLE001  # any failure leaves the row for the sweep
                log.warning("run publish failed", run_id=str(message.run_id), error=repr(exc))
                return None
            return message.run_id

    results = await asyncio.gather(*(one(m) for m in messages))
    return [r for r in results if r is not None]


# A heap-only (HOT) update: no index of workflow_runs mentions published_at, and the
# table's fillfactor leaves each page room for the rows' new versions (migration 6).
MARK_PUBLISHED = "UPDATE workflow_runs SET published_at = now() WHERE id = ANY($1::uuid[])"


async def mark_published(pool: Pool, run_ids: Iterable[uuid.UUID]) -> None:
    ids = list(run_ids)
    if ids:
        await pool.execute(MARK_PUBLISHED, ids)


async def dispatch(
    pool: Pool,
    js: JetStreamContext,
    topology: Topology,
    messages: Sequence[AnyRunMessage],
    *,
    pipeline: AckPipeline | None = None,
) -> list[uuid.UUID]:
    """Publish and record the publication; the ids published are returned."""
    published = await publish_runs(js, topology, messages, pipeline=pipeline)
    await mark_published(pool, published)
    return published
