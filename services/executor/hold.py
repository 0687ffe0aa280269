"""Runs held back by a workflow's ``max_concurrency``: offered again a little later.

A held run stays ``queued`` (its ``wait_reason`` says why). Its message is kept
(in-progress acks) for ``executor_hold_s`` (±25 %, so held runs do not all come back
together), then a copy is published under a new ``Nats-Msg-Id`` and the original is
acknowledged. A nak would do the same without the copy, but would count as a delivery,
and a run waiting its turn for long must not be dead-lettered for it. A hold takes no
slot of ``executor_concurrency``. On drain every held message is offered again at
once; if the executor dies, JetStream redelivers the message after its ack deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.messaging.topology import Topology
from shared.models.messages import RunMessage

log = structlog.get_logger(__name__)

_RNG = random.Random()  # noqa: S311  # jitter, not cryptography


class Holds:
    def __init__(
        self, js: JetStreamContext, topology: Topology, *, hold_s: float, ack_wait_s: float
    ) -> None:
        self._js = js
        self._topology = topology
        self._hold_s = hold_s
        self._beat_s = ack_wait_s / 3
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def hold(self, msg: Msg, message: RunMessage) -> None:
        task = asyncio.create_task(self._offer_later(msg, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Offer every held run again now (drain)."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _offer_later(self, msg: Msg, message: RunMessage) -> None:
        try:
            await self._wait(msg, self._hold_s * _RNG.uniform(0.75, 1.25))
        finally:
            await self._offer(msg, message)

    async def _wait(self, msg: Msg, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, self._beat_s))
            if end - loop.time() > 0:
                with contextlib.suppress(Exception):  # the next beat or redelivery covers it
                    await msg.in_progress()

    async def _offer(self, msg: Msg, message: RunMessage) -> None:
        try:
            await self._js.publish(
                self._topology.run_subject(message.org_id, message.workflow_id),
                message.to_bytes(),
                stream=self._topology.runs_stream,
                headers={"Nats-Msg-Id": f"{message.run_id}:held:{uuid.uuid4().hex[:12]}"},
            )
            await msg.ack()
        except Exception as exc:  # noqa: BLE001  # unacked: JetStream redelivers it anyway
            log.warning("held run not offered again; left to redelivery", error=repr(exc))
